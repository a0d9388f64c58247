# Reference values for hierlm.anova, ICC and R2 (lme4 1.1-31, performance).
# Run from the repository root:  Rscript tests/reference/inference_compare.R
suppressPackageStartupMessages({
  library(lme4)
  library(performance)
  library(jsonlite)
})
dd <- "hierlm/datasets/data"
sleep <- read.csv(file.path(dd, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
pen <- read.csv(file.path(dd, "Penicillin.csv"))
pastes <- read.csv(file.path(dd, "Pastes.csv"))
dye <- read.csv(file.path(dd, "Dyestuff.csv"))

anova_table <- function(...) {
  a <- suppressMessages(anova(...))
  df <- as.data.frame(a)
  list(models = rownames(df), npar = df$npar, AIC = df$AIC, BIC = df$BIC, logLik = df$logLik,
       deviance = df$deviance, Chisq = df$Chisq, Df = df$Df, p = df[["Pr(>Chisq)"]])
}

out <- list()
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleep)
m2 <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep)
m0 <- lmer(Reaction ~ 1 + (1 | Subject), sleep)
mi <- lmer(Reaction ~ Days + (1 | Subject), sleep)
out$anova_m1_m2 <- anova_table(m1, m2)
out$anova_three <- anova_table(m0, mi, m1)
out$anova_ml <- anova_table(update(m1, REML = FALSE), update(mi, REML = FALSE))

icc_r2 <- function(m) {
  ic <- performance::icc(m)
  r2 <- performance::r2_nakagawa(m)
  list(icc_adjusted = ic$ICC_adjusted, icc_conditional = ic$ICC_conditional,
       r2_marginal = unname(r2$R2_marginal), r2_conditional = unname(r2$R2_conditional))
}
out$icc <- list(
  sleep_uncond = c(list(formula = "Reaction ~ 1 + (1|Subject)", data = "sleepstudy"), icc_r2(m0)),
  sleep_int = c(list(formula = "Reaction ~ Days + (1|Subject)", data = "sleepstudy"), icc_r2(mi)),
  sleep_slope = c(list(formula = "Reaction ~ Days + (Days|Subject)", data = "sleepstudy"), icc_r2(m1)),
  penicillin = c(list(formula = "diameter ~ 1 + (1|plate) + (1|sample)", data = "Penicillin"),
                 icc_r2(lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen))),
  dyestuff = c(list(formula = "Yield ~ 1 + (1|Batch)", data = "Dyestuff"),
               icc_r2(lmer(Yield ~ 1 + (1 | Batch), dye)))
)
out$versions <- list(lme4 = as.character(packageVersion("lme4")),
                     performance = as.character(packageVersion("performance")),
                     insight = as.character(packageVersion("insight")), R = R.version.string)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "tests/reference/inference_compare.json")
