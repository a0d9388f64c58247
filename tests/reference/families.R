# Reference fits for the negative binomial (NB2) and Gamma GLMM families.
#
# Produces (all under tests/reference/):
#   families.json     lme4 (glmer.nb / glmer) and glmmTMB reference values per case
#   Salamanders.csv   glmmTMB::Salamanders, all columns, factors written as labels
#   Owls.csv          glmmTMB::Owls, all columns, factors written as labels
# Every model is fitted on the data READ BACK from the CSV files (not on the
# in-memory package data), so the Python side fits exactly the same numbers
# (write.csv keeps 15 significant digits, so e.g. Salamanders$cover can differ
# from the package data in the last digits).
#
# Written with R 4.2.2 (Patched 2022-11-10 r83330), lme4 1.1-31, glmmTMB 1.1.5
# (TMB 1.9.2, Matrix 1.5-3), MASS 7.3-58.2, jsonlite 1.8.4; the versions actually
# used are stored in the JSON.
#
# Usage (from the repository root):
#   Rscript tests/reference/families.R
#
# Data and factor columns (levels given explicitly when reading back):
#   Salamanders.csv   site  = factor, levels R-1, R-2, ..., R-23 in the order R had
#                             (glmmTMB's original is an *ordered* factor; read back
#                             it is a plain factor with the same level order; it is
#                             only used as a grouping factor, so this changes nothing)
#                     mined = factor, levels "yes", "no"   (R's order, not sorted!)
#                     spp   = factor, levels GP, PR, DM, EC-A, EC-L, DES-L, DF
#                             (R's order, not sorted!)
#                     cover, sample, DOP, Wtemp, DOY, count: numeric/integer
#   Owls.csv          Nest          = factor, 27 levels in R's (alphabetical) order
#                     FoodTreatment = factor, levels Deprived, Satiated
#                     SexParent     = factor, levels Female, Male
#                     ArrivalTime, SiblingNegotiation, BroodSize, NegPerChick,
#                     logBroodSize: numeric/integer
#   hierlm/datasets/data/sleepstudy.csv  Subject = factor(Subject) (integer labels,
#                                        so levels in numeric order 308, ..., 372)
#   tests/reference/ChickWeight.csv      Chick = factor(Chick) (levels 1..50, numeric
#                                        order; NOT datasets::ChickWeight's ordered
#                                        factor), Diet = factor(Diet) (levels 1..4)
# The exact level order of every factor is also stored in the JSON ("factor_levels").
#
# lme4 fits use the default glmerControl() (glmer.nb: its default tol = 5e-05 and
# interval = log(theta0) + c(-3, 3) around the Poisson-based start theta0); glmmTMB
# fits use the default glmmTMBControl().  Warnings and messages raised during a fit
# are recorded per case ("warnings", "messages") and echoed on stderr.
t_start <- Sys.time()
load_warn <- character(0)
withCallingHandlers(
  suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(MASS); library(jsonlite)}),
  warning = function(w) { load_warn <<- c(load_warn, conditionMessage(w)); invokeRestart("muffleWarning") })
for (w in load_warn) cat("WARNING [loading packages]: ", w, "\n", sep = "", file = stderr())

refdir <- "tests/reference"
out <- file.path(refdir, "families.json")
ver <- function(p) packageDescription(p)$Version

# ---- data: write the glmmTMB data sets, then read everything back -------------
orig_sal <- glmmTMB::Salamanders
orig_owls <- glmmTMB::Owls
write.csv(orig_sal, file.path(refdir, "Salamanders.csv"), row.names = FALSE)
write.csv(orig_owls, file.path(refdir, "Owls.csv"), row.names = FALSE)

read_back <- function(file, orig) {
  d <- read.csv(file, stringsAsFactors = FALSE)
  stopifnot(identical(names(d), names(orig)), nrow(d) == nrow(orig))
  for (f in names(orig)[vapply(orig, is.factor, NA)])
    d[[f]] <- factor(d[[f]], levels = levels(orig[[f]]))
  d
}
Salamanders <- read_back(file.path(refdir, "Salamanders.csv"), orig_sal)
Owls <- read_back(file.path(refdir, "Owls.csv"), orig_owls)
# the read-back data must match the package data (up to write.csv's 15 digits)
for (p in list(list(Salamanders, orig_sal), list(Owls, orig_owls)))
  for (v in names(p[[2]])) {
    a <- p[[1]][[v]]; b <- p[[2]][[v]]
    if (is.factor(b)) stopifnot(identical(as.character(a), as.character(b)), !anyNA(a))
    else stopifnot(isTRUE(all.equal(as.numeric(a), as.numeric(b), tolerance = 1e-13)))
  }

sleepstudy <- read.csv("hierlm/datasets/data/sleepstudy.csv")
sleepstudy$Subject <- factor(sleepstudy$Subject)
ChickWeight <- read.csv(file.path(refdir, "ChickWeight.csv"))
ChickWeight$Chick <- factor(ChickWeight$Chick)
ChickWeight$Diet <- factor(ChickWeight$Diet)

datasets <- list(
  Salamanders = list(file = "Salamanders.csv", data = Salamanders),
  Owls = list(file = "Owls.csv", data = Owls),
  sleepstudy = list(file = "hierlm/datasets/data/sleepstudy.csv", data = sleepstudy),
  ChickWeight = list(file = "ChickWeight.csv", data = ChickWeight))
factor_levels <- lapply(datasets, function(ds) {
  d <- ds$data
  lapply(d[vapply(d, is.factor, NA)], function(x) I(levels(x)))
})

# ---- cases ---------------------------------------------------------------------
F_SAL <- "count ~ spp + mined + (1 | site)"
F_OWL <- "SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest)"
F_SLEEP <- "Reaction ~ Days + (Days | Subject)"
F_CHICK <- "weight ~ Diet * Time + (1 | Chick)"
F_SLEEP1 <- "Reaction ~ Days + (1 | Subject)"
cases <- list(
  list(id = "sal_nb", pkg = "lme4", fun = "glmer.nb", data = "Salamanders", formula = F_SAL),
  list(id = "owls_nb", pkg = "lme4", fun = "glmer.nb", data = "Owls", formula = F_OWL),
  list(id = "sal_nb_tmb", pkg = "glmmTMB", fam = "nbinom2", data = "Salamanders", formula = F_SAL),
  list(id = "owls_nb_tmb", pkg = "glmmTMB", fam = "nbinom2", data = "Owls", formula = F_OWL),
  list(id = "sleep_gamma", pkg = "lme4", fun = "glmer", link = "log", data = "sleepstudy", formula = F_SLEEP),
  list(id = "chick_gamma", pkg = "lme4", fun = "glmer", link = "log", data = "ChickWeight", formula = F_CHICK),
  list(id = "sleep_gamma_inverse", pkg = "lme4", fun = "glmer", link = "inverse", data = "sleepstudy",
       formula = F_SLEEP1),
  list(id = "sleep_gamma_tmb", pkg = "glmmTMB", fam = "Gamma", link = "log", data = "sleepstudy",
       formula = F_SLEEP),
  list(id = "chick_gamma_tmb", pkg = "glmmTMB", fam = "Gamma", link = "log", data = "ChickWeight",
       formula = F_CHICK)
)

# the fitting call, built as a language object so that g@call shows real names
fit_call <- function(k) {
  fo <- str2lang(k$formula)
  dn <- as.name(k$data)
  if (k$pkg == "lme4" && k$fun == "glmer.nb")
    bquote(glmer.nb(.(fo), data = .(dn)))
  else if (k$pkg == "lme4")
    bquote(glmer(.(fo), data = .(dn), family = Gamma(link = .(k$link))))
  else if (k$fam == "nbinom2")
    bquote(glmmTMB(.(fo), data = .(dn), family = nbinom2))
  else
    bquote(glmmTMB(.(fo), data = .(dn), family = Gamma(link = .(k$link))))
}

# serialisable glmerControl() (and the glmer.nb extras)
ctrl_list <- function(ctrl) {
  cc <- unclass(ctrl)
  list(optimizer = I(cc$optimizer), restart_edge = cc$restart_edge, boundary.tol = cc$boundary.tol,
       calc.derivs = cc$calc.derivs, use.last.params = cc$use.last.params, tolPwrss = cc$tolPwrss,
       compDev = cc$compDev, nAGQ0initStep = cc$nAGQ0initStep, optCtrl = cc$optCtrl,
       check.conv.grad = cc$checkConv$check.conv.grad,
       check.conv.singular = cc$checkConv$check.conv.singular,
       check.conv.hess = cc$checkConv$check.conv.hess, nAGQ = 1L)
}

named <- function(x) as.list(x)                       # named vector -> JSON object
arr <- function(x) I(unname(as.vector(x)))           # always a JSON array
mat <- function(m) { m <- as.matrix(m); dimnames(m) <- NULL; m }  # rows of a matrix

lme4_values <- function(g, k, d) {
  vc <- as.data.frame(VarCorr(g))
  re <- ranef(g)
  re1 <- re[[1]]
  nd <- d[1:5, ]
  r <- list(
    formula_R = paste(deparse(formula(g), width.cutoff = 500L), collapse = " "),
    family = family(g)$family, link = family(g)$link,
    fixef = named(fixef(g)), fixef_names = I(names(fixef(g))),
    theta = arr(getME(g, "theta")), theta_names = I(names(getME(g, "theta"))),
    sigma = sigma(g),
    logLik = as.numeric(logLik(g)), deviance = deviance(g), AIC = AIC(g), BIC = BIC(g),
    df = attr(logLik(g), "df"), nobs = nobs(g), ngrps = named(ngrps(g)),
    vcov = mat(vcov(g)), vcov_names = I(colnames(as.matrix(vcov(g)))),
    varcorr = list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = arr(vc$vcov),
                   sdcor = arr(vc$sdcor)),
    ranef = list(group = names(re)[1], terms = I(colnames(re1)), levels = I(rownames(re1)),
                 values = mat(re1)),
    fitted = arr(fitted(g)),
    resid_deviance = arr(residuals(g, type = "deviance")),
    resid_pearson = arr(residuals(g, type = "pearson")),
    resid_response = arr(residuals(g, type = "response")),
    predict_newdata_rows = I(1:5),
    predict_response = arr(predict(g, newdata = nd, type = "response")),
    predict_response_re_form_NA = arr(predict(g, newdata = nd, type = "response", re.form = NA)),
    predict_link = arr(predict(g, newdata = nd)),
    predict_link_re_form_NA = arr(predict(g, newdata = nd, re.form = NA)),
    singular = isSingular(g),
    optimizer = I(g@optinfo$optimizer),
    conv_messages = I(as.character(unlist(g@optinfo$conv$lme4$messages))),
    control = ctrl_list(glmerControl()),
    summary = I(capture.output(summary(g))))
  if (k$fun == "glmer.nb") {
    r$nb_shape <- getME(g, "glmer.nb.theta")
    r$nevals <- if (!is.null(attr(g, "nevals"))) attr(g, "nevals") else NULL
    r$call_family <- paste(deparse(g@call$family, width.cutoff = 500L), collapse = " ")
    r$control$glmer.nb <- list(tol = 5e-05, interval = "log(theta0) + c(-3, 3)",
                               initCtrl = "list(limit = 20, eps = 2 * tol)")
  }
  r
}

tmb_values <- function(g, k, d) {
  vc <- VarCorr(g)$cond
  V <- vcov(g)$cond
  list(
    formula_R = paste(deparse(formula(g), width.cutoff = 500L), collapse = " "),
    family = family(g)$family, link = family(g)$link,
    fixef = named(fixef(g)$cond), fixef_names = I(names(fixef(g)$cond)),
    sigma = sigma(g),
    logLik = as.numeric(logLik(g)), AIC = AIC(g), BIC = BIC(g), df = attr(logLik(g), "df"),
    nobs = nobs(g),
    varcorr = lapply(vc, function(v) {
      sd <- attr(v, "stddev")
      list(terms = I(names(sd)), stddev = arr(sd), corr = mat(attr(v, "correlation")))
    }),
    vcov = mat(V), vcov_names = I(colnames(V)),
    convergence = g$fit$convergence, optimizer_message = g$fit$message,
    pdHess = g$sdr$pdHess,
    control = "glmmTMBControl() defaults (optimizer nlminb)")
}

results <- list()
for (k in cases) {
  d <- datasets[[k$data]]$data
  warns <- character(0); msgs <- character(0)
  t0 <- Sys.time()
  g <- tryCatch(
    withCallingHandlers(eval(fit_call(k), envir = globalenv()),
      warning = function(w) {
        warns <<- c(warns, conditionMessage(w))
        cat("WARNING [", k$id, "]: ", conditionMessage(w), "\n", sep = "", file = stderr())
        invokeRestart("muffleWarning")
      },
      message = function(m) {
        msgs <<- c(msgs, sub("\n$", "", conditionMessage(m)))
        cat("MESSAGE [", k$id, "]: ", conditionMessage(m), sep = "", file = stderr())
        invokeRestart("muffleMessage")
      }),
    error = function(e) e)
  el <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  r <- list(package = k$pkg, data = datasets[[k$data]]$file, formula = k$formula,
            call = paste(deparse(fit_call(k), width.cutoff = 500L), collapse = " "))
  if (inherits(g, "error")) {
    cat("ERROR [", k$id, "]: ", conditionMessage(g), "\n", sep = "", file = stderr())
    r$error <- conditionMessage(g)
  } else {
    vals <- withCallingHandlers(
      if (k$pkg == "lme4") lme4_values(g, k, d) else tmb_values(g, k, d),
      warning = function(w) {
        warns <<- c(warns, paste("(extracting values)", conditionMessage(w)))
        cat("WARNING [", k$id, ", extracting values]: ", conditionMessage(w), "\n", sep = "",
            file = stderr())
        invokeRestart("muffleWarning")
      })
    r <- c(r, vals)
  }
  r$warnings <- I(warns)
  r$messages <- I(msgs)
  r$seconds <- el
  results[[k$id]] <- r
  cat(sprintf("%-20s %6.2f s  logLik %s\n", k$id, el,
              if (is.null(r$logLik)) "NA" else format(r$logLik, digits = 12)))
}

res <- list(
  R_version = R.version.string, lme4_version = ver("lme4"), glmmTMB_version = ver("glmmTMB"),
  MASS_version = ver("MASS"), TMB_version = ver("TMB"), Matrix_version = ver("Matrix"),
  jsonlite_version = ver("jsonlite"), load_warnings = I(load_warn),
  factor_levels = factor_levels,
  note = "made by tests/reference/families.R (Rscript tests/reference/families.R from the repo root)",
  cases = results)
write_json(res, out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null", null = "null")
cat(sprintf("wrote %s; total %.1f s\n", out, as.numeric(difftime(Sys.time(), t_start, units = "secs"))))
