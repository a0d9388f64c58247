# Reference fits for the beta GLMM family (glmmTMB's beta_family(), logit link).
#
# Produces (under tests/reference/):
#   Gcsemv.csv   mlmRev::Gcsemv (GCSE scores of 1905 students in 73 schools), all columns
#   beta.json    glmmTMB fits: logLik, fixed effects, SDs, phi, vcov, conditional modes
#                and fitted means per case
# The models are fitted on the data READ BACK from the CSV file.
#
# Cases (responses are scores out of 100 turned into proportions):
#   written  written / 100 ~ gender + (1 | school)        (no 0 or 1 among them)
#   course   the coursework score, 18 of whose 1725 values are exactly 100: squeezed
#            as Smithson & Verkuilen (2006), (y (n - 1) + 0.5) / n, y = course / 100,
#            then y ~ gender + (1 | school)
#
# Written with R 4.2.2, glmmTMB 1.1.5, mlmRev 1.0-8, jsonlite 1.8.4 (versions stored
# in the JSON).  Usage (from the repository root): Rscript tests/reference/beta.R
suppressPackageStartupMessages({library(glmmTMB); library(mlmRev); library(jsonlite)})
here <- "tests/reference"
data(Gcsemv)
write.csv(Gcsemv, file.path(here, "Gcsemv.csv"), row.names = FALSE)
g <- read.csv(file.path(here, "Gcsemv.csv"), colClasses = c(school = "character", student = "character"))
g$school <- factor(g$school, levels = levels(Gcsemv$school))
g$gender <- factor(g$gender, levels = levels(Gcsemv$gender))

d1 <- subset(g, !is.na(written))
d1$y <- d1$written / 100
d2 <- subset(g, !is.na(course))
n2 <- nrow(d2)
d2$y <- ((d2$course / 100) * (n2 - 1) + 0.5) / n2

one <- function(id, d) {
  m <- glmmTMB(y ~ gender + (1 | school), data = d, family = beta_family())
  re <- ranef(m)$cond$school
  list(id = id, n = nrow(d), formula = "y ~ gender + (1 | school)", family = "beta_family(link = 'logit')",
       logLik = as.numeric(logLik(m)), df = attr(logLik(m), "df"), AIC = AIC(m),
       fixef = as.list(fixef(m)$cond), sd_school = sqrt(as.numeric(VarCorr(m)$cond$school)),
       phi = sigma(m), vcov = unname(as.matrix(vcov(m)$cond)), vcov_names = rownames(vcov(m)$cond),
       ranef_levels = rownames(re), ranef = re[, 1],
       fitted_head = unname(head(fitted(m), 20)), y_head = head(d$y, 20),
       convergence = m$fit$convergence, pdHess = m$sdr$pdHess)
}
res <- list(cases = list(written = one("written", d1), course = one("course", d2)),
            R_version = R.version.string, glmmTMB_version = as.character(packageVersion("glmmTMB")),
            mlmRev_version = as.character(packageVersion("mlmRev")),
            TMB_version = as.character(packageVersion("TMB")))
write_json(res, file.path(here, "beta.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote beta.json\n")
