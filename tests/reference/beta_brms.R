# Posterior summary from brms (NUTS in Stan) for a beta GLMM with the priors hierlm uses by
# default for it (printed by `model.priors`; the fixed effects' priors are on the uncentered
# coefficients, so brms gets `0 + Intercept`), for tests/test_beta_family.py.  Produces
# beta_brms.json, with the time brms took to compile and to sample.
# Data: mlmRev's Gcsemv as tests/reference/beta.R writes it; y = written / 100.
# Run from the repository root: Rscript tests/reference/beta_brms.R
# Needs brms and rstan (Debian: r-cran-brms; Boost headers:
#   ln -s /usr/include /usr/lib/R/site-library/BH/include).
suppressMessages({library(brms); library(jsonlite); library(posterior)})
g <- read.csv("tests/reference/Gcsemv.csv", colClasses = c(school = "character", student = "character"))
g <- subset(g, !is.na(written))
g$y <- g$written / 100
g$gender <- factor(g$gender, levels = c("F", "M"))
g$school <- factor(g$school)
prior <- c(prior(student_t(3, 0, 3.2669830914323295), class = b, coef = Intercept),
           prior(normal(0, 5.073143894946655), class = b, coef = genderM),
           prior(student_t(3, 0, 2.5), class = sd),
           prior(gamma(0.01, 0.01), class = phi))
t0 <- Sys.time()
fit0 <- brm(y ~ 0 + Intercept + gender + (1 | school), data = g, family = Beta(), prior = prior, chains = 0,
            seed = 1)
t1 <- Sys.time()
fit <- update(fit0, chains = 4, iter = 2000, warmup = 1000, cores = 2, seed = 1, refresh = 0)
t2 <- Sys.time()
dr <- as_draws_df(fit)
vars <- grep("^(b_|sd_|phi$)", variables(fit), value = TRUE)
s <- summarise_draws(subset_draws(dr, variable = vars), "mean", "sd", "mcse_mean", "rhat", "ess_bulk")
np <- nuts_params(fit)
out <- list(R_version = R.version.string, brms_version = as.character(packageVersion("brms")),
            rstan_version = as.character(packageVersion("rstan")),
            cases = list(gcse_written_beta = list(
              formula = "y ~ gender + (1|school)", n = nrow(g),
              variables = I(s$variable), mean = I(s$mean), sd = I(s$sd), mcse_mean = I(s$mcse_mean),
              rhat = I(s$rhat), ess_bulk = I(s$ess_bulk),
              divergences = sum(np$Value[np$Parameter == "divergent__"]),
              compile_seconds = as.numeric(difftime(t1, t0, units = "secs")),
              sample_seconds = as.numeric(difftime(t2, t1, units = "secs")))))
write_json(out, "tests/reference/beta_brms.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
