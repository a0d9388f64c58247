# Linear mixed models with prior weights and offsets, as lme4 1.1-31 fits them, for
# tests/test_lmm_weights.py.  Produces lmm_weights.json.
# Run from the repository root: Rscript tests/reference/lmm_weights.R
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-12, ftol_rel = 1e-14, maxeval = 1e5))

sleep <- read.csv("hierlm/datasets/data/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject)
sleep$w <- 1 + sleep$Days %% 3                       # precision weights 1, 2, 3
base <- sleep$Reaction[sleep$Days == 0]; names(base) <- sleep$Subject[sleep$Days == 0]
sleep$logbase <- log(base[as.character(sleep$Subject)])
chick <- read.csv("tests/reference/ChickWeight.csv")
chick$Chick <- factor(chick$Chick); chick$Diet <- factor(chick$Diet)
chick$w <- 1 + as.integer(as.character(chick$Chick)) %% 3   # per-chick weights 1, 2, 3
ham <- read.csv("tests/reference/ham.csv")
for (v in c("Consumer", "Product", "Information", "Gender")) ham[[v]] <- factor(ham[[v]])
ham$w <- ham$Age / mean(ham$Age)
pen <- read.csv("hierlm/datasets/data/Penicillin.csv")
pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
pen$w <- rep(c(0.5, 1, 2), length.out = nrow(pen))
pen$off <- 0.1 * as.integer(pen$sample)

cases <- list(
  chick_weights = list(data = "chick", formula = "weight ~ Diet * Time + (Time | Chick)", REML = TRUE,
                       weights = "w", offset = NULL),
  sleep_weights_reml = list(data = "sleep", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE,
                            weights = "w", offset = NULL),
  sleep_weights_ml = list(data = "sleep", formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE,
                          weights = "w", offset = NULL),
  sleep_log_offset = list(data = "sleep", formula = "log(Reaction) ~ Days + offset(logbase) + (Days | Subject)",
                          REML = TRUE, weights = NULL, offset = NULL),
  sleep_offset_arg = list(data = "sleep", formula = "log(Reaction) ~ Days + (1 | Subject)", REML = TRUE,
                          weights = "w", offset = "logbase"),
  ham_crossed_weights = list(data = "ham",
                             formula = "Informed.liking ~ Product * Information + (1 | Consumer) + (1 | Consumer:Product)",
                             REML = TRUE, weights = "w", offset = NULL),
  penicillin_both = list(data = "pen", formula = "diameter ~ 1 + offset(off) + (1 | plate) + (1 | sample)",
                         REML = FALSE, weights = "w", offset = NULL)
)
datasets <- list(sleep = sleep, chick = chick, ham = ham, pen = pen)
out <- list(R_version = R.version.string, lme4_version = as.character(packageVersion("lme4")),
            lmerTest_version = as.character(packageVersion("lmerTest")), cases = list())
for (nm in names(cases)) {
  cs <- cases[[nm]]
  df <- datasets[[cs$data]]
  args <- list(formula = as.formula(cs$formula), data = df, REML = cs$REML, control = tight)
  if (!is.null(cs$weights)) args$weights <- df[[cs$weights]]
  if (!is.null(cs$offset)) args$offset <- df[[cs$offset]]
  m <- do.call(lmerTest::lmer, args)
  re1 <- ranef(m)[[1]]
  out$cases[[nm]] <- list(
    data = cs$data, formula = cs$formula, reml = cs$REML, weights = cs$weights, offset = cs$offset,
    theta = I(unname(getME(m, "theta"))), sigma = sigma(m), fixef = as.list(fixef(m)),
    vcov = unname(as.matrix(vcov(m))), logLik = as.numeric(logLik(m)),
    deviance_or_reml = if (cs$REML) REMLcrit(m) else deviance(m), AIC = AIC(m),
    ranef_first = unname(as.matrix(re1)), ranef_first_group = names(ranef(m))[1],
    ranef_first_levels = I(rownames(re1)),
    fitted = I(unname(fitted(m))), resid_response = I(unname(residuals(m, type = "response"))),
    resid_pearson = I(unname(residuals(m, type = "pearson"))),
    resid_scaled = I(unname(residuals(m, type = "pearson", scaled = TRUE))),
    predict_pop = I(unname(predict(m, newdata = df[1:6, ], re.form = NA))),
    predict_cond = I(unname(predict(m, newdata = df[1:6, ]))),
    satterthwaite_df = I(unname(summary(m)$coefficients[, "df"])),
    satterthwaite_p = I(unname(summary(m)$coefficients[, "Pr(>|t|)"]))
  )
  if (nm %in% c("sleep_weights_reml", "sleep_offset_arg")) {
    ci <- suppressMessages(confint(m, oldNames = FALSE))
    out$cases[[nm]]$confint_profile <- list(parm = I(rownames(ci)), lower = I(unname(ci[, 1])),
                                            upper = I(unname(ci[, 2])))
  }
}
write_json(out, "tests/reference/lmm_weights.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
