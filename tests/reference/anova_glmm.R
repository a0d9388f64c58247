# Wald chi-square tests of GLMM terms: car's Anova (types II and III) on models with
# interactions, for tests/test_anova_single.py.  Produces anova_glmm.json.
# Run from the repository root: Rscript tests/reference/anova_glmm.R
suppressMessages({library(lme4); library(car); library(jsonlite)})
gt <- read.csv("hierlm/datasets/data/grouseticks.csv")
gt$YEAR <- factor(gt$YEAR); gt$BROOD <- factor(gt$BROOD); gt$LOCATION <- factor(gt$LOCATION)
cb <- lme4::cbpp
cb$big <- factor(cb$size > 15)
models <- list(
  grouse = list(formula = "TICKS ~ YEAR * cHEIGHT + (1|BROOD)", family = "poisson", data = gt,
                data_name = "grouseticks"),
  cbpp_int = list(formula = "cbind(incidence, size - incidence) ~ period * big + (1|herd)",
                  family = "binomial", data = cb, data_name = "cbpp (big = size > 15)")
)
tab <- function(a) list(term = rownames(a), Chisq = a[["Chisq"]], Df = a[["Df"]],
                        `Pr(>Chisq)` = a[["Pr(>Chisq)"]])
out <- list(R_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
            car_version = as.character(packageVersion("car")), cases = list())
for (nm in names(models)) {
  m <- models[[nm]]
  g <- glmer(as.formula(m$formula), data = m$data, family = m$family)
  out$cases[[nm]] <- list(data = m$data_name, formula = m$formula, family = m$family,
                          theta = unname(getME(g, "theta")), fixef = as.list(fixef(g)), vcov = unname(as.matrix(vcov(g))),
                          car_II = tab(Anova(g, type = "II")), car_III = tab(Anova(g, type = "III")))
}
write_json(out, "tests/reference/anova_glmm.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
