# ICC and Nakagawa's R2 of Gamma GLMMs with the log link (performance, via insight's
# distribution-specific variance, which for this link is the delta method's variance of
# log y: sigma^2, glmer's dispersion; the random-effect variances are lme4's VarCorr, which
# for a Gamma model are sigma * theta, as glmer prints them).
#
# Produces tests/reference/gamma_performance.json, for the bundled sleepstudy and ChickWeight
# data (hierlm/datasets/data, read back so that both sides fit the same numbers).
#
# Written with R 4.2.2, lme4 1.1-31, performance 0.10.2, insight 0.19.0 (versions stored in
# the JSON).  Usage (from the repository root): Rscript tests/reference/gamma_performance.R
suppressPackageStartupMessages({library(lme4); library(performance); library(insight); library(jsonlite)})
source("tests/reference/read_bundled.R")
sleepstudy <- read_bundled("sleepstudy")
ChickWeight <- read_bundled("ChickWeight")
cases <- list(
  sleep_gamma = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)"),
  sleep_gamma1 = list(data = "sleepstudy", formula = "Reaction ~ Days + (1 | Subject)"),
  chick_gamma = list(data = "ChickWeight", formula = "weight ~ Diet * Time + (1 | Chick)")
)
one <- function(k) {
  m <- suppressWarnings(glmer(as.formula(k$formula), data = get(k$data), family = Gamma(link = "log")))
  v <- suppressWarnings(get_variance(m))
  ic <- suppressWarnings(icc(m))
  r2 <- suppressWarnings(r2_nakagawa(m))
  list(data = k$data, formula = k$formula, logLik = as.numeric(logLik(m)), sigma = sigma(m),
       icc_adjusted = ic$ICC_adjusted, icc_unadjusted = ic$ICC_unadjusted,
       r2_conditional = as.numeric(r2$R2_conditional), r2_marginal = as.numeric(r2$R2_marginal),
       var_fixed = v$var.fixed, var_random = v$var.random, var_distribution = v$var.distribution)
}
res <- list(cases = lapply(cases, one), R_version = R.version.string,
            lme4_version = as.character(packageVersion("lme4")),
            performance_version = as.character(packageVersion("performance")),
            insight_version = as.character(packageVersion("insight")))
write_json(res, "tests/reference/gamma_performance.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote gamma_performance.json\n")
