# Reference fits for the ordinal (cumulative link) mixed model family, from ordinal::clmm
# (Laplace approximation, the default nAGQ = 1; flexible thresholds).
#
# Produces (under tests/reference/):
#   wine.csv      ordinal::wine (72 ratings of 8 wines by 9 judges), all columns
#   soup.csv      ordinal::soup (1847 sureness ratings by 185 respondents), all columns
#   ordinal.json  clmm fits: logLik, df, AIC, max |gradient|, thresholds, beta, vcov (with
#                 its row names as clmm gives them), SEs, random-intercept variance and SD,
#                 conditional modes and conditional variances, fitted probabilities of the
#                 observed category for the first 20 rows (with those rows' response codes
#                 1..K); per case also a "default" sub-list, the same model fitted with
#                 clmm's default control, to show how much the tight control moves it
# The models are fitted on the data READ BACK from the CSV files (factors re-created with
# the original level order; rating and SURENESS as ordered factors).
#
# Cases:
#   wine_logit   rating ~ temp + contact + (1 | judge), link = "logit"
#   wine_probit  rating ~ temp + contact + (1 | judge), link = "probit"
#   soup_probit  SURENESS ~ PROD + (1 | RESP),          link = "probit"
#   soup_logit   SURENESS ~ PROD + (1 | RESP),          link = "logit"
#
# Control: each case is first fitted with clmm.control(gradTol = 1e-8, maxIter = 1000,
# maxLineIter = 200).  These tighten only the inner Newton search for the conditional modes
# (the outer optimizer is nlminb with its defaults, rel.tol = 1e-10, in both fits).  Where
# that inner search cannot reach 1e-8 clmm warns ("iteration limit reached" / "step factor
# reduced below minimum when updating the random effects") and the Laplace objective it
# optimises is then evaluated at inexact modes (a noisier, sometimes spuriously higher
# logLik); such a fit counts as failed and the case falls back to clmm's default control
# (gradTol = 1e-4).  "control" says which one the case's main fields come from; "tight"
# (the tight attempt, with its warning count) and "default" sub-lists hold both fits.
# Parameterisation notes: with one scalar random-effect term clmm optimises over
# (thresholds, beta, log(SD)) ("ST1" in vcov_names is that log-SD parameter); thresholds
# enter as logit/probit P(Y <= j) = alpha_j - x'beta - b.
#
# Written with R 4.2.2, ordinal 2022.11.16, jsonlite 1.8.4 (versions stored in the JSON).
# Usage (from the repository root): Rscript tests/reference/ordinal.R
suppressPackageStartupMessages({library(ordinal); library(jsonlite)})
here <- "tests/reference"

# Write a data frame, read it back, and re-create numeric / factor / ordered columns.
roundtrip <- function(orig, file) {
  write.csv(orig, file.path(here, file), row.names = FALSE)
  d <- read.csv(file.path(here, file), colClasses = "character", check.names = FALSE)
  for (v in names(orig)) {
    x <- orig[[v]]
    d[[v]] <- if (is.factor(x)) factor(d[[v]], levels = levels(x), ordered = is.ordered(x))
              else as.numeric(d[[v]])
  }
  stopifnot(isTRUE(all.equal(d, orig, check.attributes = FALSE)))
  d
}
wine <- roundtrip(ordinal::wine, "wine.csv")
soup <- roundtrip(ordinal::soup, "soup.csv")

tight <- clmm.control(gradTol = 1e-8, maxIter = 1000, maxLineIter = 200)
tight_txt <- "clmm.control(gradTol = 1e-8, maxIter = 1000, maxLineIter = 200)"

estimates <- function(m) {
  list(logLik = as.numeric(logLik(m)), max_grad = max(abs(m$gradient)),
       thresholds = as.list(m$alpha), beta = as.list(m$beta),
       sd = unname(unlist(m$ST)), variance = unname(unlist(m$ST))^2,
       optimizer_convergence = m$optRes$convergence, optimizer_message = m$optRes$message)
}

one <- function(id, fml, d, link, group, yvar) {
  fit <- function(control) eval(bquote(clmm(.(fml), data = d, link = .(link), control = .(control))))
  m0 <- fit(list())
  warns <- character(0)
  m1 <- tryCatch(withCallingHandlers(fit(tight), warning = function(w) {
          warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning")}),
        error = function(e) {warns <<- c(warns, paste("error:", conditionMessage(e))); NULL})
  ok <- !is.null(m1) && length(warns) == 0
  m <- if (ok) m1 else m0
  control <- if (ok) tight_txt else "default"
  tight_info <- c(list(control = tight_txt, n_warnings = length(warns)),
                  if (length(warns)) list(first_warning = warns[1]),
                  if (!is.null(m1)) estimates(m1))
  ll <- logLik(m)
  V <- as.matrix(vcov(m))
  re <- ranef(m, condVar = TRUE)[[group]]
  vc <- VarCorr(m)[[group]]
  list(id = id, n = nrow(d), formula = paste(deparse(fml), collapse = ""), link = link,
       control = control,
       logLik = as.numeric(ll), df = attr(ll, "df"), AIC = AIC(m),
       max_grad = max(abs(m$gradient)), gradient = as.list(m$gradient),
       thresholds = as.list(m$alpha), beta = as.list(m$beta),
       vcov = unname(V), vcov_names = rownames(V), se = as.list(sqrt(diag(V))),
       variance = as.numeric(vc), sd = unname(unlist(m$ST)),
       log_sd = log(unname(unlist(m$ST))),
       ranef_levels = rownames(re), ranef = re[, 1],
       condVar = as.numeric(attr(re, "condVar")[[1]]),
       fitted_head = unname(head(fitted(m), 20)),
       y_head = as.integer(head(d[[yvar]], 20)),
       optimizer_convergence = m$optRes$convergence, optimizer_message = m$optRes$message,
       niter = m$Niter, neval = m$neval,
       tight = tight_info, default = c(list(control = "default"), estimates(m0)))
}

fw <- rating ~ temp + contact + (1 | judge)
fs <- SURENESS ~ PROD + (1 | RESP)
res <- list(cases = list(
              wine_logit = one("wine_logit", fw, wine, "logit", "judge", "rating"),
              wine_probit = one("wine_probit", fw, wine, "probit", "judge", "rating"),
              soup_probit = one("soup_probit", fs, soup, "probit", "RESP", "SURENESS"),
              soup_logit = one("soup_logit", fs, soup, "logit", "RESP", "SURENESS")),
            R_version = R.version.string, ordinal_version = as.character(packageVersion("ordinal")),
            jsonlite_version = as.character(packageVersion("jsonlite")))
write_json(res, file.path(here, "ordinal.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote ordinal.json\n")
