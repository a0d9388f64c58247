# Reference values for fit.tidy() (broom.mixed's tidy on lme4 1.1-31 / lmerTest fits).
# Run from the repository root:  Rscript tests/reference/tidy.R
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(broom.mixed)
  library(jsonlite)
})
dd <- "hierlm/datasets/data"
sleep <- read.csv(file.path(dd, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
cbpp <- read.csv(file.path(dd, "cbpp.csv"))
cbpp$herd <- factor(cbpp$herd)
cbpp$period <- factor(cbpp$period)

m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleep)
z <- lmerTest::lmer(Reaction ~ Days + (Days || Subject), sleep)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
out <- list(
  lmer = as.data.frame(tidy(m, conf.int = TRUE)),
  lmer_ranvals = as.data.frame(tidy(m, effects = "ran_vals")),
  zcp = as.data.frame(tidy(z)),
  glmer = as.data.frame(tidy(g, conf.int = TRUE))
)
writeLines(toJSON(out, digits = NA, na = "null", dataframe = "columns"), "tests/reference/tidy.json")
