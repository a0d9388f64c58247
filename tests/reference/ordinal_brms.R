# Posterior summary from brms (NUTS in Stan) for a cumulative-logit mixed model with brms's
# DEFAULT priors (recorded in the JSON from prior_summary()), for comparison with the
# ordinal family.  Produces ordinal_brms.json, with the time brms took to compile and to
# sample (and their sum).
# Model: rating ~ temp + contact + (1 | judge), family = cumulative("logit");
# 4 chains, iter = 2000, warmup = 1000, seed = 1, cores = 2.  brms's thresholds
# b_Intercept[1..4] follow logit P(Y <= j) = Intercept[j] - x'b - u, as in ordinal::clmm.
# Data: ordinal's wine as tests/reference/ordinal.R writes it (tests/reference/wine.csv).
# Run from the repository root (after ordinal.R): Rscript tests/reference/ordinal_brms.R
# Needs brms, rstan and posterior (Debian: r-cran-brms; Boost headers:
#   ln -s /usr/include /usr/lib/R/site-library/BH/include).
suppressMessages({library(brms); library(jsonlite); library(posterior)})
w <- read.csv("tests/reference/wine.csv", colClasses = "character")
w$rating <- factor(w$rating, levels = as.character(1:5), ordered = TRUE)
w$temp <- factor(w$temp, levels = c("cold", "warm"))
w$contact <- factor(w$contact, levels = c("no", "yes"))
w$judge <- factor(w$judge, levels = as.character(1:9))
tc <- system.time(
  fit0 <- brm(rating ~ temp + contact + (1 | judge), data = w, family = cumulative("logit"),
              chains = 0, seed = 1))
ts <- system.time(
  fit <- update(fit0, chains = 4, iter = 2000, warmup = 1000, cores = 2, seed = 1, refresh = 0))
ps <- as.data.frame(prior_summary(fit))
priors <- lapply(seq_len(nrow(ps)), function(i)
  list(prior = ps$prior[i], class = ps$class[i], coef = ps$coef[i], group = ps$group[i],
       source = ps$source[i]))
dr <- as_draws_df(fit)
vars <- grep("^(b_|sd_)", variables(fit), value = TRUE)
s <- summarise_draws(subset_draws(dr, variable = vars), "mean", "sd", "median",
                     ~quantile(.x, c(.025, .975)), "rhat", "ess_bulk", "ess_tail", "mcse_mean")
out <- list(R_version = R.version.string, brms_version = as.character(packageVersion("brms")),
            rstan_version = as.character(packageVersion("rstan")),
            posterior_version = as.character(packageVersion("posterior")),
            cases = list(wine_logit = list(
              formula = "rating ~ temp + contact + (1|judge)", family = "cumulative('logit')",
              n = nrow(w), chains = 4, iter = 2000, warmup = 1000, seed = 1,
              priors = priors,
              variables = I(s$variable), mean = I(s$mean), sd = I(s$sd), median = I(s$median),
              q2.5 = I(s[["2.5%"]]), q97.5 = I(s[["97.5%"]]), mcse_mean = I(s$mcse_mean),
              rhat = I(s$rhat), ess_bulk = I(s$ess_bulk), ess_tail = I(s$ess_tail),
              divergences = rstan::get_num_divergent(fit$fit),
              compile_seconds = unname(tc["elapsed"]), sample_seconds = unname(ts["elapsed"]),
              total_seconds = unname(tc["elapsed"] + ts["elapsed"]))))
write_json(out, "tests/reference/ordinal_brms.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote ordinal_brms.json\n")
