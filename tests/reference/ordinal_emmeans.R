# emmeans of clmm fits of ordinal::wine (the "latent" mode, emmeans' default for clm/clmm):
# the means of the latent variable, -mean(thresholds) + x'beta averaged over the grid, with
# asymptotic (z) inference from clmm's Hessian, and their pairwise comparisons.
#
# Produces tests/reference/ordinal_emmeans.json.  Data: tests/reference/wine.csv read back by
# read_wine.R.  Written with R 4.2.2, ordinal 2022.11-16, emmeans; the versions used are in the JSON.
#
# Usage (from the repository root):
#   Rscript tests/reference/ordinal_emmeans.R
suppressMessages({
  library(ordinal)
  library(emmeans)
  library(jsonlite)
})
source("tests/reference/read_wine.R")
w <- read_wine()

table_of <- function(x) {
  s <- as.data.frame(summary(x))
  lapply(s, function(col) if (is.factor(col)) as.character(col) else col)
}

cases <- list()
for (link in c("logit", "probit")) {
  m <- clmm(rating ~ temp * contact + (1 | judge), data = w, link = link)
  e1 <- emmeans(m, ~ temp)
  e2 <- emmeans(m, ~ contact | temp)
  cases[[paste0("wine_", link)]] <- list(
    formula = "rating ~ temp * contact + (1 | judge)", link = link,
    logLik = as.numeric(logLik(m)),
    temp = table_of(e1), temp_pairs = table_of(pairs(e1)),
    contact_by_temp = table_of(e2), contact_by_temp_pairs = table_of(pairs(e2)),
    notes = capture.output(print(e1)))
}
out <- list(R_version = R.version.string,
            ordinal_version = as.character(packageVersion("ordinal")),
            emmeans_version = as.character(packageVersion("emmeans")),
            cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE, na = "null"),
           "tests/reference/ordinal_emmeans.json")
