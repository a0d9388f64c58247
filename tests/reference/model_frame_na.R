# R's model-frame semantics with missing values: transforms (scale, poly) are
# evaluated on every row of the data, then the incomplete rows are dropped.
# Reference values for tests/test_model_frame.py (lme4 1.1-31), on R's
# airquality data (Ozone has 37 missing values, Solar.R 7), written beside
# this script as airquality.csv and model_frame_na.json.
#
#   Rscript tests/reference/model_frame_na.R
suppressMessages(library(lme4))
library(jsonlite)
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
write.csv(airquality, file.path(here, "airquality.csv"), row.names = FALSE, na = "")
cases <- list(
  list(id = "scale_temp", formula = "log(Ozone) ~ scale(Temp) + Wind + Solar.R + (1 | Month)"),
  list(id = "poly_temp", formula = "Ozone ~ poly(Temp, 2) + Wind + (1 | Month)")
)
out <- list()
for (cs in cases) {
  m <- lmer(as.formula(cs$formula), data = airquality, REML = TRUE)
  out[[cs$id]] <- list(
    formula = cs$formula, nobs = nobs(m), fixef = as.list(fixef(m)),
    sigma = sigma(m), theta = getME(m, "theta"), reml_criterion = REMLcrit(m),
    logLik = as.numeric(logLik(m)),
    messages = m@optinfo$conv$lme4$messages
  )
}
out[["_meta"]] <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE, null = "null"),
           file.path(here, "model_frame_na.json"))
