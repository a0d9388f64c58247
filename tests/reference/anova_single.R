# Reference values for single-model ANOVA tables of linear mixed models (lmerTest's anova() and
# drop1(), with Satterthwaite's and Kenward-Roger's denominator df) and Wald chi-square tables of a
# GLMM (car::Anova).  Written with R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, car 3.1-1,
# jsonlite 1.8.4 (the versions actually used are stored in the JSON).
#
# Run from the repository root:  Rscript tests/reference/anova_single.R
#
# Writes:
#   tests/reference/ham.csv          lmerTest's `ham` (all 6 columns)
#   tests/reference/cake.csv         lme4's `cake` (temperature written as its labels)
#   tests/reference/ChickWeight.csv  datasets::ChickWeight as a plain data.frame (Chick, Diet as labels)
#   tests/reference/anova_single.json
# The CSVs are then READ BACK and every model is fitted on the read-back data, so that the Python
# tests fit exactly the same numbers.  tests/reference/emmeans.R reads the same CSVs.
#
# JSON layout (full precision: digits = NA; every vector is a JSON array, even of length 1):
#   {"R_version", "lme4_version", "lmerTest_version", "pbkrtest_version", "car_version",
#    "cases": {<id>: {"data", "formula", "reml", "control", "theta": [...], "sigma",
#                     "fixef": {name: value},
#                     "anova": {"<type>_<ddf>": {"term": [...], "Sum Sq": [...], "Mean Sq": [...],
#                                                "NumDF": [...], "DenDF": [...], "F value": [...],
#                                                "Pr(>F)": [...]}},
#                     "drop1": {"Satterthwaite": {...same columns...}, "Kenward-Roger": {...}},
#                     "hypotheses_III": {<term>: {"rows": [...], "columns": [...],
#                                                 "matrix": [[row 1], [row 2], ...]}},
#                     "warnings": [...]}},
#    "glmm": {"cbpp": {"data", "formula", "family", "fixef", "vcov": {"names", "matrix"},
#                      "car_II": {"term", "Chisq", "Df", "Pr(>Chisq)"}, "car_III": {...},
#                      "warnings": [...]}}}
#   <type> is one of III, II, I; <ddf> one of Satterthwaite, Kenward-Roger (Kenward-Roger is
#   REML-only, so the ML case chick_ml has Satterthwaite tables and drop1 only).
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(car)
  library(jsonlite)
})
rd <- "tests/reference"

## ---- data: write the CSVs ----------------------------------------------------------------------
data("ham", package = "lmerTest")
write.csv(ham, file.path(rd, "ham.csv"), row.names = FALSE)

data("cake", package = "lme4")
cake_out <- data.frame(replicate = as.character(cake$replicate), recipe = as.character(cake$recipe),
                       temperature = as.character(cake$temperature), angle = cake$angle,
                       temp = cake$temp)
write.csv(cake_out, file.path(rd, "cake.csv"), row.names = FALSE)

# ChickWeight is a nlme "groupedData" with an ordered Chick factor; write a plain data.frame
chick_out <- data.frame(weight = as.numeric(datasets::ChickWeight$weight),
                        Time = as.numeric(datasets::ChickWeight$Time),
                        Chick = as.character(datasets::ChickWeight$Chick),
                        Diet = as.character(datasets::ChickWeight$Diet))
write.csv(chick_out, file.path(rd, "ChickWeight.csv"), row.names = FALSE)

## ---- data: read them back and rebuild the factors ------------------------------------------------
ham_r <- read.csv(file.path(rd, "ham.csv"))
for (v in c("Consumer", "Product", "Information", "Gender")) ham_r[[v]] <- factor(ham_r[[v]])

cake_r <- read.csv(file.path(rd, "cake.csv"))
cake_r$replicate <- factor(cake_r$replicate)
cake_r$recipe <- factor(cake_r$recipe)
# ordered factor: R's default contrasts give it contr.poly
cake_r$temperature <- factor(cake_r$temperature, levels = c(175, 185, 195, 205, 215, 225), ordered = TRUE)

chick_r <- read.csv(file.path(rd, "ChickWeight.csv"))
chick_r$Chick <- factor(chick_r$Chick)  # unordered (the original is ordered by final weight)
chick_r$Diet <- factor(chick_r$Diet)

# a missing cell: diet 4 never weighed before day 10 (lme4 drops the aliased Diet4:earlyyes)
chick_gap <- chick_r
chick_gap$early <- factor(ifelse(chick_gap$Time < 10, "yes", "no"), levels = c("no", "yes"))
chick_gap <- chick_gap[!(chick_gap$Diet == "4" & chick_gap$early == "yes"), ]
write.csv(chick_gap, file.path(rd, "ChickWeight_gap.csv"), row.names = FALSE)
chick_gap <- read.csv(file.path(rd, "ChickWeight_gap.csv"))
chick_gap$Chick <- factor(chick_gap$Chick)
chick_gap$Diet <- factor(chick_gap$Diet)
chick_gap$early <- factor(chick_gap$early, levels = c("no", "yes"))

stopifnot(nrow(ham_r) == 648, nrow(cake_r) == 270, nrow(chick_r) == 578,
          identical(as.numeric(ham_r$Informed.liking), as.numeric(ham$Informed.liking)),
          identical(as.numeric(cake_r$angle), as.numeric(cake$angle)),
          identical(as.numeric(chick_r$weight), as.numeric(datasets::ChickWeight$weight)))

## ---- helpers -------------------------------------------------------------------------------------
# I(): keep JSON arrays for length-1 vectors under auto_unbox = TRUE
anova_cols <- c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")
tab_list <- function(a, cols) {
  out <- list(term = I(rownames(a)))
  for (cn in cols) out[[cn]] <- I(unname(as.numeric(a[[cn]])))
  out
}
mat_list <- function(M) list(rows = I(rownames(M)), columns = I(colnames(M)),
                             matrix = lapply(seq_len(nrow(M)), function(i) I(unname(M[i, ]))))
named_vec <- function(x) as.list(x)  # {name: value}

## ---- linear mixed models -------------------------------------------------------------------------
# All LMMs are fitted with nloptwrap (lme4's default optimizer) but with much tighter tolerances than
# its defaults, so that the stored values are those at the optimum.  With the defaults the chick
# fits stop early: chick_ml warns "Model failed to converge with max|grad| = 0.0041" and its fixef
# are off by ~2e-5 and its Satterthwaite DenDF by ~0.006; chick (REML) by ~9e-6 and ~0.0016.
# (ham and cake agree with the default fits to ~1e-12 in fixef and ~2e-6 in DenDF.)
# tests/reference/emmeans.R uses the same control.
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-12, ftol_rel = 1e-14,
                                    xtol_rel = 1e-12, maxeval = 1e5))
control_desc <- paste("lmerControl(optimizer = 'nloptwrap', optCtrl = list(ftol_abs = 1e-12,",
                      "xtol_abs = 1e-12, ftol_rel = 1e-14, xtol_rel = 1e-12, maxeval = 1e5))")
# warnings raised while fitting / computing a case are recorded in the JSON ("warnings")
with_warnings <- function(expr, sink) withCallingHandlers(expr, warning = function(w) {
  assign("warns", c(get("warns", envir = sink), conditionMessage(w)), envir = sink)
  message("warning: ", conditionMessage(w))
  invokeRestart("muffleWarning")
})
lmm_cases <- list(
  ham = list(data = "ham.csv", df = ham_r, REML = TRUE,
             formula = "Informed.liking ~ Product * Information + Gender + (1|Consumer) + (1|Consumer:Product)"),
  cake = list(data = "cake.csv", df = cake_r, REML = TRUE,
              formula = "angle ~ recipe * temperature + (1|recipe:replicate)"),
  chick = list(data = "ChickWeight.csv", df = chick_r, REML = TRUE,
               formula = "weight ~ Diet * Time + (Time|Chick)"),
  chick_ml = list(data = "ChickWeight.csv", df = chick_r, REML = FALSE,
                  formula = "weight ~ Diet * Time + (Time|Chick)"),
  chick_gap = list(data = "ChickWeight_gap.csv", df = chick_gap, REML = TRUE,
                   formula = "weight ~ Diet * early + (1|Chick)")
)

res <- list(R_version = as.character(getRversion()),
            lme4_version = as.character(packageVersion("lme4")),
            lmerTest_version = as.character(packageVersion("lmerTest")),
            pbkrtest_version = as.character(packageVersion("pbkrtest")),
            car_version = as.character(packageVersion("car")),
            cases = list())

for (id in names(lmm_cases)) {
  cs <- lmm_cases[[id]]
  cat("== fitting", id, "\n")
  sink <- new.env(); sink$warns <- character(0)
  m <- with_warnings(lmerTest::lmer(as.formula(cs$formula), data = cs$df, REML = cs$REML,
                                    control = tight), sink)
  ddfs <- if (cs$REML) c("Satterthwaite", "Kenward-Roger") else "Satterthwaite"
  out <- list(data = cs$data, formula = cs$formula, reml = cs$REML, control = control_desc,
              theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
              fixef = named_vec(fixef(m)), anova = list(), drop1 = list())
  for (type in c("III", "II", "I")) for (ddf in ddfs) {
    a <- with_warnings(anova(m, type = type, ddf = ddf), sink)
    out$anova[[paste(type, ddf, sep = "_")]] <- tab_list(a, anova_cols)
  }
  for (ddf in ddfs) out$drop1[[ddf]] <- tab_list(with_warnings(drop1(m, ddf = ddf), sink), anova_cols)
  # lmerTest's type III hypotheses.  NB: when a factor is not coded by contr.treatment (cake's
  # ordered temperature: contr.poly), lmerTest builds them from a treatment-coded refit and maps
  # them back through zapsmall(ginv(X) %*% Xorig), i.e. rounded to getOption("digits") = 7
  # significant digits.  Hence the rounded entries (0.2390457, ...) here, and cake's type III
  # "recipe" row is ~1.6e-7 (relative) off the value from the exact map (Sum Sq 10.1858599 vs
  # lmerTest's 10.1858615); its other rows agree to ~1e-15.
  hyp <- attr(anova(m, type = "III"), "hypotheses")
  out$hypotheses_III <- lapply(hyp, mat_list)
  # lme4's own single-model table (sequential sums of squares, no df) and R's printed type III table
  a4 <- anova(m, ddf = "lme4")
  out$lme4 <- list(term = I(rownames(a4)), npar = I(a4[["npar"]]), `Sum Sq` = I(a4[["Sum Sq"]]),
                   `Mean Sq` = I(a4[["Mean Sq"]]), `F value` = I(a4[["F value"]]))
  out$printed_III <- I(capture.output(print(anova(m, type = "III"))))
  out$warnings <- I(sink$warns)
  res$cases[[id]] <- out
}

## ---- GLMM: cbpp ------------------------------------------------------------------------------------
cat("== fitting cbpp\n")
data("cbpp", package = "lme4")
g_formula <- "cbind(incidence, size - incidence) ~ period + (1|herd)"
sink <- new.env(); sink$warns <- character(0)
g <- with_warnings(glmer(as.formula(g_formula), data = cbpp, family = binomial), sink)  # lme4's defaults
chisq_cols <- c("Chisq", "Df", "Pr(>Chisq)")
V <- as.matrix(vcov(g))
res$glmm <- list(cbpp = list(
  data = "lme4::cbpp (built in)", formula = g_formula, family = "binomial(logit)",
  fixef = named_vec(fixef(g)),
  vcov = list(names = I(colnames(V)), matrix = lapply(seq_len(nrow(V)), function(i) I(unname(V[i, ])))),
  car_II = tab_list(car::Anova(g, type = "II"), chisq_cols),
  car_III = tab_list(car::Anova(g, type = "III"), chisq_cols),
  warnings = I(sink$warns)
))

write_json(res, file.path(rd, "anova_single.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(rd, "anova_single.json"), "\n")
