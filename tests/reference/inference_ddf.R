# Reference values for hierlm.inference.ddf: lmerTest's coefficient tables with Satterthwaite's and
# Kenward-Roger's denominator degrees of freedom (lmerTest 3.1-3, pbkrtest 0.5.2, lme4 1.1-31).
# Run from the repository root:  Rscript tests/reference/inference_ddf.R
# Reads the CSVs bundled in hierlm/datasets/data/ and writes tests/reference/inference_ddf.json.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})
dd <- "hierlm/datasets/data"
rd <- function(name, factors) {
  x <- read.csv(file.path(dd, paste0(name, ".csv")), colClasses = "character")
  for (v in names(x)) x[[v]] <- if (v %in% factors) factor(x[[v]]) else as.numeric(x[[v]])
  x
}
sleep <- rd("sleepstudy", "Subject")
# R's factor() sorts "308" < "309" < ... as the bundled loader does (all labels have 3 digits)
dsets <- list(sleepstudy = sleep, Dyestuff = rd("Dyestuff", "Batch"), Dyestuff2 = rd("Dyestuff2", "Batch"),
              Penicillin = rd("Penicillin", c("plate", "sample")),
              Pastes = rd("Pastes", c("batch", "cask", "sample")))
# rows 3, 10, 17, ... (1-based) dropped: in Python, .drop(index=range(2, n, 7))
dsets$sleepstudy_unbal <- dsets$sleepstudy[-seq(3, nrow(sleep), by = 7), ]
dsets$Penicillin_unbal <- dsets$Penicillin[-seq(3, nrow(dsets$Penicillin), by = 5), ]
cases <- list(
  list(id = "sleep_reml", data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", REML = TRUE),
  list(id = "sleep_ml", data = "sleepstudy", formula = "Reaction ~ Days + (Days|Subject)", REML = FALSE),
  list(id = "sleep_int", data = "sleepstudy", formula = "Reaction ~ Days + (1|Subject)", REML = TRUE),
  list(id = "dyestuff", data = "Dyestuff", formula = "Yield ~ 1 + (1|Batch)", REML = TRUE),
  list(id = "penicillin_crossed", data = "Penicillin", formula = "diameter ~ 1 + (1|plate) + (1|sample)",
       REML = TRUE),
  list(id = "pastes_nested", data = "Pastes", formula = "strength ~ 1 + (1|batch/cask)", REML = TRUE),
  # unbalanced subsets (every 7th / 5th row dropped), where Kenward-Roger's adjustment of the
  # standard errors is not zero and its df differ from Satterthwaite's
  list(id = "sleep_unbal", data = "sleepstudy_unbal", formula = "Reaction ~ Days + (Days|Subject)", REML = TRUE),
  list(id = "penicillin_unbal", data = "Penicillin_unbal", formula = "diameter ~ 1 + (1|plate) + (1|sample)",
       REML = TRUE),
  # a singular fit (theta = 0): Satterthwaite gives n - 1 = 29, Kenward-Roger groups - 1 = 5
  list(id = "dyestuff2_singular", data = "Dyestuff2", formula = "Yield ~ 1 + (1|Batch)", REML = TRUE)
)
# lmerTest's summary() coefficient table, and its printed "Fixed effects:" block
# I(): one-coefficient models keep JSON arrays
coef_list <- function(co) list(names = I(rownames(co)), Estimate = I(unname(co[, "Estimate"])),
                               SE = I(unname(co[, "Std. Error"])), df = I(unname(co[, "df"])),
                               t = I(unname(co[, "t value"])), p = I(unname(co[, "Pr(>|t|)"])))
printed <- function(s) {
  out <- capture.output(print(s))
  i <- which(out == "Fixed effects:")
  # the table (and the stars' legend), up to a blank line or lme4's optimizer messages
  j <- which((out == "" | startsWith(out, "optimizer")) & seq_along(out) > i)
  out[(i + 1):(if (length(j)) j[1] - 1 else length(out))]
}
contrast <- function(m, L, ddf) {
  r <- contest(m, L, joint = FALSE, ddf = ddf)
  list(L = L, Estimate = r$Estimate, SE = r[["Std. Error"]], df = r$df, t = r[["t value"]],
       p = r[["Pr(>|t|)"]])
}
res <- list(versions = list(R = as.character(getRversion()), lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest")),
                            pbkrtest = as.character(packageVersion("pbkrtest"))))
for (k in cases) {
  m <- suppressMessages(lmerTest::lmer(as.formula(k$formula), dsets[[k$data]], REML = k$REML))
  s <- summary(m)
  r <- list(id = k$id, data = k$data, formula = k$formula, REML = k$REML, theta = I(unname(getME(m, "theta"))),
            satterthwaite = coef_list(s$coefficients), satterthwaite_printed = printed(s),
            header = capture.output(print(s))[1:2])
  if (k$REML) {
    skr <- summary(m, ddf = "Kenward-Roger")
    r$kenward_roger <- coef_list(skr$coefficients)
    r$kenward_roger_printed <- printed(skr)
    # pbkrtest directly: adjusted covariance of beta and the ddf of each coefficient
    va <- as.matrix(vcovAdj(m))
    r$pbkrtest_vcovAdj <- unname(va)
    r$pbkrtest_ddf <- I(sapply(seq_len(ncol(va)), function(i) get_Lb_ddf(m, diag(ncol(va))[i, ])))
  }
  if (k$id %in% c("sleep_reml", "sleep_ml", "sleep_unbal")) {
    # a general contrast: the mean reaction time at day 5
    r$contrast_sat <- contrast(m, c(1, 5), "Satterthwaite")
    if (k$REML) r$contrast_kr <- contrast(m, c(1, 5), "Kenward-Roger")
  }
  res$cases[[k$id]] <- r
  cat(k$id, "done\n")
}
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "tests/reference/inference_ddf.json")
