# Reference values for estimated marginal means and their contrasts, from R's emmeans package, for
# linear mixed models (Kenward-Roger and Satterthwaite df) and a binomial GLMM (asymptotic).
# Written with R 4.2.2, emmeans 1.8.4-1, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, jsonlite 1.8.4
# (the versions actually used are stored in the JSON).
#
# Run from the repository root, AFTER tests/reference/anova_single.R (which writes the CSVs read here):
#   Rscript tests/reference/emmeans.R
# Reads tests/reference/{ham,cake,ChickWeight}.csv and lme4's built-in cbpp; writes
# tests/reference/emmeans.json.  The models and the optimizer control are those of anova_single.R.
#
# emmeans options are left at their defaults (emm_options(lmer.df = "kenward-roger")); the
# Satterthwaite cases pass lmer.df = "satterthwaite" to emmeans().
#
# JSON layout (full precision: digits = NA; every column is a JSON array, even of length 1):
#   {"R_version", "emmeans_version", "lme4_version", "lmerTest_version", "pbkrtest_version",
#    "cases": {<id>: {"model": <model id>, "call": "<R code, with m / g the fitted model>",
#                     "table": {<column>: [...]},   # as.data.frame(summary(x)), R's column names
#                     "by": [...],                  # the summary's by-variables ([] if none)
#                     "mesg": [...]}},              # attr(summary(x), "mesg"): df method, adjustment, ...
#    "models": {<model id>: {"data", "formula", "reml" (LMMs) / "family" (GLMM), "control",
#                            "fixef": {name: value}}}}
# Factor columns (Diet, Product, contrast, ...) are stored as strings.
# NON-FINITE NUMBERS: the asymptotic (GLMM) tables have df = Inf; every non-finite number is stored
# as a string: "Inf" (also "-Inf", "NaN", "NA" if they ever occur), so a column holding one is a
# JSON array that mixes numbers and strings.  The LMM tables hold only finite numbers.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
})
rd <- "tests/reference"

## ---- data: the CSVs written by anova_single.R, with the same factor set-up ------------------------
ham_r <- read.csv(file.path(rd, "ham.csv"))
for (v in c("Consumer", "Product", "Information", "Gender")) ham_r[[v]] <- factor(ham_r[[v]])

cake_r <- read.csv(file.path(rd, "cake.csv"))
cake_r$replicate <- factor(cake_r$replicate)
cake_r$recipe <- factor(cake_r$recipe)
cake_r$temperature <- factor(cake_r$temperature, levels = c(175, 185, 195, 205, 215, 225), ordered = TRUE)

chick_r <- read.csv(file.path(rd, "ChickWeight.csv"))
chick_r$Chick <- factor(chick_r$Chick)
chick_r$Diet <- factor(chick_r$Diet)

data("cbpp", package = "lme4")

## ---- models (as in anova_single.R) ---------------------------------------------------------------
# nloptwrap with tight tolerances, so the fits sit at the optimum (the default tolerances leave the
# chick fit's fixef ~1e-5 off); see anova_single.R.
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-12, ftol_rel = 1e-14,
                                    xtol_rel = 1e-12, maxeval = 1e5))
control_desc <- paste("lmerControl(optimizer = 'nloptwrap', optCtrl = list(ftol_abs = 1e-12,",
                      "xtol_abs = 1e-12, ftol_rel = 1e-14, xtol_rel = 1e-12, maxeval = 1e5))")
model_specs <- list(
  chick = list(data = "ChickWeight.csv", df = chick_r, reml = TRUE,
               formula = "weight ~ Diet * Time + (Time|Chick)"),
  ham = list(data = "ham.csv", df = ham_r, reml = TRUE,
             formula = "Informed.liking ~ Product * Information + Gender + (1|Consumer) + (1|Consumer:Product)"),
  cake = list(data = "cake.csv", df = cake_r, reml = TRUE,
              formula = "angle ~ recipe * temperature + (1|recipe:replicate)")
)
fits <- list()
res_models <- list()
for (id in names(model_specs)) {
  sp <- model_specs[[id]]
  fits[[id]] <- lmerTest::lmer(as.formula(sp$formula), data = sp$df, REML = sp$reml, control = tight)
  res_models[[id]] <- list(data = sp$data, formula = sp$formula, reml = sp$reml, control = control_desc,
                           fixef = as.list(fixef(fits[[id]])))
}
g_formula <- "cbind(incidence, size - incidence) ~ period + (1|herd)"
fits$cbpp <- glmer(as.formula(g_formula), data = cbpp, family = binomial)  # lme4's default control
res_models$cbpp <- list(data = "lme4::cbpp (built in)", formula = g_formula, family = "binomial(logit)",
                        control = "glmerControl() defaults", fixef = as.list(fixef(fits$cbpp)))

## ---- helpers -------------------------------------------------------------------------------------
# a numeric column: a JSON array of numbers, or, if it holds a non-finite value, a mixed array in
# which the non-finite values are the strings "Inf", "-Inf", "NaN", "NA"
num_col <- function(x) {
  x <- unname(as.numeric(x))
  if (all(is.finite(x))) return(I(x))
  lapply(x, function(v) if (is.finite(v)) v else as.character(v))
}
table_list <- function(s) {
  d <- as.data.frame(s)
  out <- list()
  for (cn in names(d)) {
    v <- d[[cn]]
    out[[cn]] <- if (is.numeric(v)) num_col(v) else I(as.character(v))
  }
  out
}

## ---- cases ---------------------------------------------------------------------------------------
# each case: id, model id, and the R code (as text) evaluated with m (the model) in scope; code that
# refers to an earlier case's emmGrid does so through the name `emm` bound by `base` (the id of
# that case).  The stored "call" is the code with `emm` replaced by the base case's call.
chick_bases <- list(
  chick_diet_kr = "emmeans(m, ~ Diet, at = list(Time = 21))",
  chick_diet_satt = "emmeans(m, ~ Diet, at = list(Time = 21), lmer.df = \"satterthwaite\")"
)
cases <- list()
for (b in names(chick_bases)) {
  cases <- c(cases, list(
    list(b, "chick", chick_bases[[b]]),
    list(paste0(b, "_pairs"), "chick", "pairs(emm)", b),
    list(paste0(b, "_pairs_holm"), "chick", "pairs(emm, adjust = \"holm\")", b),
    list(paste0(b, "_pairs_bonferroni"), "chick", "pairs(emm, adjust = \"bonferroni\")", b),
    list(paste0(b, "_pairs_none"), "chick", "pairs(emm, adjust = \"none\")", b),
    list(paste0(b, "_trt_vs_ctrl"), "chick", "contrast(emm, \"trt.vs.ctrl\")", b),
    list(paste0(b, "_trt_vs_ctrl_none"), "chick", "contrast(emm, \"trt.vs.ctrl\", adjust = \"none\")", b),
    list(paste0(b, "_eff"), "chick", "contrast(emm, \"eff\")", b)
  ))
}
cases <- c(cases, list(
  list("ham_product_kr", "ham", "emmeans(m, ~ Product)"),
  list("ham_product_kr_pairs", "ham", "pairs(emm)", "ham_product_kr"),
  list("ham_product_satt", "ham", "emmeans(m, ~ Product, lmer.df = \"satterthwaite\")"),
  list("ham_product_satt_pairs", "ham", "pairs(emm)", "ham_product_satt"),
  list("ham_product_by_information_kr", "ham", "emmeans(m, ~ Product | Information)"),
  list("ham_product_by_information_kr_pairs", "ham", "pairs(emm)", "ham_product_by_information_kr"),
  list("ham_product_x_information_kr", "ham", "emmeans(m, ~ Product * Information)"),
  list("cake_recipe_kr", "cake", "emmeans(m, ~ recipe)"),
  list("cake_recipe_kr_pairs", "cake", "pairs(emm)", "cake_recipe_kr"),
  list("cbpp_period_link", "cbpp", "emmeans(m, ~ period)"),
  list("cbpp_period_response", "cbpp", "emmeans(m, ~ period, type = \"response\")"),
  list("cbpp_period_pairs", "cbpp", "pairs(emm)", "cbpp_period_link"),
  list("cbpp_period_pairs_response", "cbpp", "pairs(emm, type = \"response\")", "cbpp_period_link")
))

grids <- list()   # the emmGrid of each case, for the cases built on it
calls <- list()   # the stored call of each case
res_cases <- list()
for (cs in cases) {
  id <- cs[[1]]; model <- cs[[2]]; code <- cs[[3]]; base <- if (length(cs) >= 4) cs[[4]] else NULL
  env <- new.env()
  env$m <- fits[[model]]
  if (!is.null(base)) env$emm <- grids[[base]]
  # warnings and messages (emmeans' "NOTE: Results may be misleading due to involvement in
  # interactions") are printed with the case id
  x <- withCallingHandlers(eval(parse(text = code), envir = env),
    warning = function(w) message("warning in ", id, ": ", conditionMessage(w)),
    message = function(msg) {
      message("[", id, "] ", conditionMessage(msg), appendLF = FALSE)
      invokeRestart("muffleMessage")
    })
  grids[[id]] <- x
  calls[[id]] <- if (is.null(base)) code else sub("emm", calls[[base]], code, fixed = TRUE)
  s <- summary(x)
  mesg <- attr(s, "mesg")
  byv <- attr(s, "by.vars")
  res_cases[[id]] <- list(model = model, call = calls[[id]], table = table_list(s),
                          by = I(if (is.null(byv)) character(0) else byv),
                          mesg = I(if (is.null(mesg)) character(0) else as.character(mesg)))
}

res <- list(R_version = as.character(getRversion()),
            emmeans_version = as.character(packageVersion("emmeans")),
            lme4_version = as.character(packageVersion("lme4")),
            lmerTest_version = as.character(packageVersion("lmerTest")),
            pbkrtest_version = as.character(packageVersion("pbkrtest")),
            cases = res_cases, models = res_models)
write_json(res, file.path(rd, "emmeans.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(rd, "emmeans.json"), "\n")
