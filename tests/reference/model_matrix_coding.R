# R's coding of factors and logicals in a model matrix, for
# tests/test_model_frame.py (lme4 1.1-31):
# * a term whose margins are missing (y ~ f:h) gets one indicator per level
#   of each factor (R's TermCode rule), and lme4 drops the column(s) that
#   make the matrix rank deficient;
# * a logical column is a factor FALSE/TRUE as a term and 0/1 in arithmetic;
# * a %in% b is the interaction a:b.
# Writes coding.csv (the data) and model_matrix_coding.json beside this script.
#
#   Rscript tests/reference/model_matrix_coding.R
suppressMessages(library(lme4))
library(jsonlite)
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
set.seed(11)
n <- 120
d <- data.frame(
  f = sample(c("a", "b", "c"), n, replace = TRUE),
  h = sample(c("x", "y"), n, replace = TRUE),
  g = sample(paste0("g", 1:8), n, replace = TRUE),
  x = round(rnorm(n), 4),
  b = runif(n) < 0.4
)
d$y <- round(1 + 0.5 * d$x + (d$f == "b") - 0.7 * (d$h == "y") * (d$f != "a") + d$b * d$x +
             rnorm(8)[as.integer(factor(d$g))] + rnorm(n), 4)
write.csv(d, file.path(here, "coding.csv"), row.names = FALSE)
cases <- list(
  f_h = "y ~ f:h + (1 | g)",
  x_f_h = "y ~ x + f:h + (1 | g)",
  f_x = "y ~ f:x + (1 | g)",
  h_fhx = "y ~ h + f:h:x + (1 | g)",
  nointercept_x_f = "y ~ 0 + x + f + (1 | g)",
  f_fh = "y ~ f + f:h + (1 | g)",
  logical_arith = "y ~ I(b * x) + b + (1 | g)",
  logical_inter = "y ~ b:x + (1 | g)",
  logical_slope = "y ~ b * x + (1 | g) + (0 + b | g)",
  logical_margin = "y ~ b:h + (1 | g)",
  in_x_f = "y ~ x %in% f + (1 | g)",
  in_f_x = "y ~ f + x %in% f + (1 | g)",
  in_sum = "y ~ (x + h) %in% f + (1 | g)"
)
out <- list()
for (id in names(cases)) {
  m <- lmer(as.formula(cases[[id]]), data = d, REML = TRUE)
  out[[id]] <- list(
    formula = cases[[id]], fixef = as.list(fixef(m)),
    reml_criterion = REMLcrit(m), sigma = sigma(m)
  )
}
out[["_meta"]] <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE, null = "null"),
           file.path(here, "model_matrix_coding.json"))
