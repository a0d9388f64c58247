# Reference fits of Student-t linear mixed models by glmmTMB's t_family (the Laplace
# approximation, sigma and the degrees of freedom estimated), the targets of hierlm's
# Student-t MAP with flat priors.
#
# Produces tests/reference/student_tmb.json.  The data are read from the CSV files the
# package bundles (hierlm/datasets/data), so both sides fit the same numbers.
#
# Written with R 4.2.2, glmmTMB 1.1.5 (TMB 1.9.2); the versions used are stored in the JSON.
#
# Usage (from the repository root):
#   Rscript tests/reference/student_tmb.R
suppressMessages({
  library(glmmTMB)
  library(jsonlite)
})

source("tests/reference/read_bundled.R")
sleepstudy <- read_bundled("sleepstudy")
ChickWeight <- read_bundled("ChickWeight")

cases <- list(
  sleep_student = list(data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)"),
  chick_student = list(data = "ChickWeight", formula = "weight ~ Time + (1 | Chick)")
)

one <- function(k) {
  d <- get(k$data)
  fo <- as.formula(k$formula)
  t0 <- Sys.time()
  m <- glmmTMB(fo, data = d, family = t_family())
  secs <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  vc <- VarCorr(m)$cond
  varcorr <- lapply(vc, function(S) list(terms = colnames(S), stddev = unname(attr(S, "stddev")),
                                        corr = unname(attr(S, "correlation"))))
  fx <- fixef(m)$cond
  V <- vcov(m)$cond
  list(data = k$data, formula = k$formula, call = deparse(m$call),
       logLik = as.numeric(logLik(m)), df = attr(logLik(m), "df"), nobs = nobs(m),
       fixef = as.list(fx), fixef_names = names(fx),
       sigma = sigma(m), nu = unname(family_params(m)[["Student-t df"]]),
       varcorr = varcorr, vcov = unname(V), vcov_names = colnames(V),
       convergence = m$fit$convergence, optimizer_message = m$fit$message, pdHess = m$sdr$pdHess,
       seconds = secs)
}

out <- list(R_version = R.version.string,
            glmmTMB_version = as.character(packageVersion("glmmTMB")),
            TMB_version = as.character(packageVersion("TMB")),
            cases = lapply(cases, one))
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE), "tests/reference/student_tmb.json")
