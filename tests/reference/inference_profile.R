# Reference values for hierlm.inference.profile: lme4's profile-likelihood and Wald
# confidence intervals, confint(m, method = "profile" | "Wald", oldNames = FALSE).
# lme4 1.1-31 (Debian r-cran-lme4), R 4.2.  Run from the repository root:
#   Rscript tests/reference/inference_profile.R
# Writes tests/reference/inference_profile.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
dd <- "hierlm/datasets/data"
sleep <- read.csv(file.path(dd, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
dye <- read.csv(file.path(dd, "Dyestuff.csv"))
dye2 <- read.csv(file.path(dd, "Dyestuff2.csv"))
pen <- read.csv(file.path(dd, "Penicillin.csv"))
pastes <- read.csv(file.path(dd, "Pastes.csv"))
# quadratic growth term, scaled as the tests build it: D2 = Days^2 / 10
sleep$D2 <- sleep$Days^2 / 10
dsets <- list(sleepstudy = sleep, Dyestuff = dye, Dyestuff2 = dye2, Penicillin = pen, Pastes = pastes)

cases <- list(
  list(id = "sleep_reml", data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", REML = TRUE),
  list(id = "sleep_ml", data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", REML = FALSE),
  list(id = "sleep_int", data = "sleepstudy", formula = "Reaction ~ Days + (1|Subject)", REML = TRUE),
  list(id = "dyestuff", data = "Dyestuff", formula = "Yield ~ 1 + (1|Batch)", REML = TRUE),
  list(id = "penicillin", data = "Penicillin", formula = "diameter ~ 1 + (1|plate) + (1|sample)", REML = TRUE),
  list(id = "sleep_uncorr", data = "sleepstudy", formula = "Reaction ~ Days + (1|Subject) + (0+Days|Subject)",
       REML = TRUE),
  list(id = "sleep_reml_90", data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", REML = TRUE,
       level = 0.9),
  # nested terms; the batch SD's profile reaches 0 before zeta = -1.96 (lower end 0, fit not singular)
  list(id = "pastes_nested", data = "Pastes", formula = "strength ~ 1 + (1|batch/cask)", REML = TRUE),
  # a 3 x 3 term: lme4 warns of non-monotonic profiles for the correlations and interpolates linearly
  list(id = "sleep_quad", data = "sleepstudy", formula = "Reaction ~ Days + (Days + D2|Subject)", REML = TRUE),
  list(id = "dyestuff2_singular", data = "Dyestuff2", formula = "Yield ~ 1 + (1|Batch)", REML = TRUE)
)

as_table <- function(ci) {
  list(names = rownames(ci), columns = colnames(ci),
       lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}

out <- list(lme4_version = as.character(packageVersion("lme4")), R_version = R.version.string)
for (k in cases) {
  level <- if (is.null(k$level)) 0.95 else k$level
  m <- lmer(as.formula(k$formula), dsets[[k$data]], REML = k$REML)
  warns <- character()
  prof <- withCallingHandlers(
    suppressMessages(confint(m, method = "profile", level = level, oldNames = FALSE)),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  wald <- suppressMessages(confint(m, method = "Wald", level = level, oldNames = FALSE))
  out[[k$id]] <- list(id = k$id, data = k$data, formula = k$formula, REML = k$REML, level = level,
                      singular = isSingular(m), profile = as_table(prof), wald = as_table(wald),
                      profile_warnings = unique(warns))
  cat(k$id, "done\n")
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "tests/reference/inference_profile.json")
