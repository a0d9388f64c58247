# Adaptive Gauss-Hermite quadrature fits of a cumulative link mixed model (ordinal's clmm,
# nAGQ = 10), for tests/test_ordinal_family.py.
#
# Produces tests/reference/ordinal_agq.json: clmm(rating ~ temp + contact + (1 | judge),
# nAGQ = 10) on ordinal::wine read back from tests/reference/wine.csv (written by
# tests/reference/ordinal.R), logit and probit links: logLik, thresholds, coefficients, the
# judge SD.
#
# Written with R 4.2.2 and ordinal 2022.11 (versions stored in the JSON).
# Usage (from the repository root): Rscript tests/reference/ordinal_agq.R
suppressPackageStartupMessages({library(ordinal); library(jsonlite)})
here <- "tests/reference"
source(file.path(here, "read_wine.R"))
w <- read_wine(here)
one <- function(link) {
  m <- clmm(rating ~ temp + contact + (1 | judge), data = w, link = link, nAGQ = 10)
  list(link = link, nAGQ = 10, logLik = as.numeric(logLik(m)), thresholds = as.list(m$alpha),
       beta = as.list(m$beta), sd = as.numeric(m$ST$judge), max_grad = max(abs(m$gradient)))
}
res <- list(cases = list(logit = one("logit"), probit = one("probit")), R_version = R.version.string,
            ordinal_version = as.character(packageVersion("ordinal")))
write_json(res, file.path(here, "ordinal_agq.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote ordinal_agq.json\n")
