# ICC and Nakagawa's R2 of a negative binomial GLMM (performance, via insight's lognormal
# approximation of the distribution-specific variance, log(1 + 1/mu + 1/theta), with mu from
# the null model refit at the fit's theta).
#
# Produces tests/reference/nb_performance.json for glmmTMB's Owls data read back from
# tests/reference/Owls.csv (written by tests/reference/families.R):
#   glmer.nb(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest))
# performance::icc (adjusted, unadjusted), r2_nakagawa (conditional, marginal) and
# insight::get_variance's components, with the null model's intercept and theta.
#
# Written with R 4.2.2, lme4 1.1-31, performance 0.10.2, insight 0.19.0 (versions stored in
# the JSON).  Usage (from the repository root): Rscript tests/reference/nb_performance.R
suppressPackageStartupMessages({library(lme4); library(performance); library(insight); library(jsonlite)})
here <- "tests/reference"
d <- read.csv(file.path(here, "Owls.csv"))
ref <- fromJSON(file.path(here, "families.json"))
for (col in names(ref$factor_levels$Owls)) d[[col]] <- factor(d[[col]], levels = ref$factor_levels$Owls[[col]])
m <- glmer.nb(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), data = d)
v <- suppressWarnings(get_variance(m))
ic <- suppressWarnings(icc(m))
r2 <- suppressWarnings(r2_nakagawa(m))
nm <- suppressWarnings(null_model(m))
res <- list(owls_nb = list(theta = getME(m, "glmer.nb.theta"), null_intercept = unname(fixef(nm)),
                           null_theta = getME(nm, "glmer.nb.theta"),
                           icc_adjusted = ic$ICC_adjusted, icc_unadjusted = ic$ICC_unadjusted,
                           r2_conditional = as.numeric(r2$R2_conditional),
                           r2_marginal = as.numeric(r2$R2_marginal),
                           var_fixed = v$var.fixed, var_random = v$var.random,
                           var_distribution = v$var.distribution),
            R_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
            performance_version = as.character(packageVersion("performance")),
            insight_version = as.character(packageVersion("insight")))
write_json(res, file.path(here, "nb_performance.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote nb_performance.json\n")
