# Reference values for hierlm.lmlist (lme4 1.1-31's lmList, pooled summary).
# Run from the repository root:  Rscript tests/reference/lmlist.R
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
dd <- "hierlm/datasets/data"
sleep <- read.csv(file.path(dd, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
# w is constant within subject 308: aliased with its intercept there (NA)
sleep$w <- ifelse(sleep$Subject == "308", 1, sleep$Days %% 3)

one <- function(fm) {
  s <- summary(fm)
  co <- coef(fm)
  list(groups = rownames(co), terms = colnames(co), coef = unname(as.matrix(co)),
       se = unname(s$coefficients[, 2, ]), t = unname(s$coefficients[, 3, ]),
       p = unname(s$coefficients[, 4, ]), RSE = s$RSE,
       df = attr(lme4:::pooledSD(fm), "df"),
       r2 = unname(sapply(fm, function(m) summary(m)$r.squared)), nobs = unname(sapply(fm, nobs)))
}
out <- list(
  sleep = one(lmList(Reaction ~ Days | Subject, sleep)),
  quad = one(lmList(Reaction ~ Days + I(Days^2) | Subject, sleep)),
  aliased = one(lmList(Reaction ~ Days + w | Subject, sleep))
)
writeLines(toJSON(out, digits = NA, na = "null", auto_unbox = TRUE), "tests/reference/lmlist.json")
