# Posterior summaries from brms (NUTS in Stan) for a negative binomial and a Gamma GLMM and a
# Student-t linear mixed model, with
# the priors hierlm uses by default for these models (printed by `model.priors`; the fixed
# effects' priors are on the uncentered coefficients, so brms gets `0 + Intercept`), for
# tests/test_glmm_families.py.  Produces families_brms.json, with the time brms took to
# compile and to sample.
# Run from the repository root: Rscript tests/reference/families_brms.R
# Needs brms and rstan (Debian: r-cran-brms; Boost headers:
#   ln -s /usr/include /usr/lib/R/site-library/BH/include).
suppressMessages({library(brms); library(jsonlite); library(posterior)})
owls <- read.csv("tests/reference/Owls.csv")
owls$FoodTreatment <- factor(owls$FoodTreatment, levels = c("Deprived", "Satiated"))
owls$SexParent <- factor(owls$SexParent, levels = c("Female", "Male"))
owls$Nest <- factor(owls$Nest)
sleep <- read.csv("hierlm/datasets/data/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)

cases <- list(
  owls_nb = list(
    data = owls, family = negbinomial(),
    formula = SiblingNegotiation ~ 0 + Intercept + FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest),
    prior = c(prior(student_t(3, 0, 4.787689846266288), class = b, coef = Intercept),
              prior(normal(0, 5.007568756160044), class = b, coef = FoodTreatmentSatiated),
              prior(normal(0, 5.080650710818064), class = b, coef = SexParentMale),
              prior(normal(0, 5.67993088311976), class = b, coef = FoodTreatmentSatiated:SexParentMale),
              prior(student_t(3, 0, 2.5), class = sd),
              prior(gamma(0.01, 0.01), class = shape))),
  sleep_gamma = list(
    data = sleep, family = Gamma(link = "log"),
    formula = Reaction ~ 0 + Intercept + Days + (Days | Subject),
    prior = c(prior(student_t(3, 0, 4.637421893485842), class = b, coef = Intercept),
              prior(normal(0, 0.8679671672171726), class = b, coef = Days),
              prior(student_t(3, 0, 2.5), class = sd),
              prior(lkj(1), class = cor),
              prior(gamma(0.01, 0.01), class = shape))),
  sleep_student = list(
    data = sleep, family = student(),
    formula = Reaction ~ 0 + Intercept + Days + (Days | Subject),
    prior = c(prior(normal(288.6508, 265.3533233607552), class = b, coef = Intercept),
              prior(normal(0, 48.89151175485448), class = b, coef = Days),
              prior(student_t(3, 0, 59.33928587999999), class = sd),
              prior(student_t(3, 0, 59.33928587999999), class = sigma),
              prior(lkj(1), class = cor),
              prior(gamma(2, 0.1), class = nu)))
)
out <- list(R_version = R.version.string, brms_version = as.character(packageVersion("brms")),
            rstan_version = as.character(packageVersion("rstan")), cases = list())
for (nm in names(cases)) {
  cs <- cases[[nm]]
  t0 <- Sys.time()
  fit0 <- brm(cs$formula, data = cs$data, family = cs$family, prior = cs$prior, chains = 0, seed = 1)
  t1 <- Sys.time()
  fit <- update(fit0, chains = 4, iter = 2000, warmup = 1000, cores = 2, seed = 1, refresh = 0)
  t2 <- Sys.time()
  dr <- as_draws_df(fit)
  vars <- grep("^(b_|sd_|cor_|shape$|sigma$|nu$)", variables(fit), value = TRUE)
  s <- summarise_draws(subset_draws(dr, variable = vars), "mean", "sd", "mcse_mean", "rhat", "ess_bulk")
  np <- nuts_params(fit)
  out$cases[[nm]] <- list(
    variables = I(s$variable), mean = I(s$mean), sd = I(s$sd), mcse_mean = I(s$mcse_mean), rhat = I(s$rhat),
    ess_bulk = I(s$ess_bulk), divergences = sum(np$Value[np$Parameter == "divergent__"]),
    compile_seconds = as.numeric(difftime(t1, t0, units = "secs")),
    sample_seconds = as.numeric(difftime(t2, t1, units = "secs")))
}
write_json(out, "tests/reference/families_brms.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
