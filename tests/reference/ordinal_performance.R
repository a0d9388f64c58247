# ICC and Nakagawa's R2 of cumulative link mixed models (performance, via insight's
# distribution-specific variance of the latent scale: pi^2 / 3 for logit, 1 for probit).
#
# Produces tests/reference/ordinal_performance.json: for ordinal::wine,
# clmm(rating ~ temp + contact + (1 | judge)) with the logit and probit links,
# performance::icc (adjusted, unadjusted) and r2_nakagawa (conditional, marginal), and
# insight::get_variance's components.
# The models are fitted on the data read back from tests/reference/wine.csv (written by
# tests/reference/ordinal.R).
#
# Written with R 4.2.2, ordinal 2022.11, performance and insight from Debian (versions
# stored in the JSON).  Usage (from the repository root): Rscript tests/reference/ordinal_performance.R
suppressPackageStartupMessages({library(ordinal); library(performance); library(insight); library(jsonlite)})
here <- "tests/reference"
source(file.path(here, "read_wine.R"))
w <- read_wine(here)
one <- function(link) {
  m <- clmm(rating ~ temp + contact + (1 | judge), data = w, link = link)
  ic <- icc(m)
  r2 <- r2_nakagawa(m)
  v <- get_variance(m)
  list(link = link, icc_adjusted = ic$ICC_adjusted, icc_unadjusted = ic$ICC_unadjusted,
       r2_conditional = as.numeric(r2$R2_conditional), r2_marginal = as.numeric(r2$R2_marginal),
       var_fixed = v$var.fixed, var_random = v$var.random, var_distribution = v$var.distribution)
}
res <- list(cases = list(logit = one("logit"), probit = one("probit")), R_version = R.version.string,
            ordinal_version = as.character(packageVersion("ordinal")),
            performance_version = as.character(packageVersion("performance")),
            insight_version = as.character(packageVersion("insight")))
write_json(res, file.path(here, "ordinal_performance.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote ordinal_performance.json\n")
