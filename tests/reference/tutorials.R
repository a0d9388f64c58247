# R's numbers for the piglet and barn owl tutorials (docs/tutorials/piglets.md, owls.md).
#
# Reads (under tests/reference/, made by docs/tutorials/make_data.py, simulated from
# known values with the shape of the original studies):
#   tutorial_piglets.csv  animal, treatm (A-D, one per animal), time (0-7), BW; 60 animals x 8 weeks
#   tutorial_owls.csv     Brood, Ring (unique across broods), Implant (C, Cort), days (a factor:
#                         1, 2, 3, 5, 7, 9), logCort; 206 rows, 106 nestlings, 30 broods
# Produces tutorials.json with the numbers each page prints:
#   piglets
#     m0       BW ~ 1 + (1 | animal), REML: REML criterion, variance components, fixed
#              effect, ICC (performance::icc, adjusted and conditional)
#     aicc     BW ~ time + (time | animal), + I(time^2), + treatm, all by ML: K, logLik, AIC,
#              AICc, Delta_AICc, AICc weights.  AICcmodavg is not installed here, so AICc is
#              computed by hand, AIC + 2 K (K + 1) / (n - K - 1), as AICcmodavg::aictab does
#     fit      BW ~ time + I(time^2) + treatm + (time | animal), REML, lmerTest: variance
#              components, correlation, fixed effects with SEs, Satterthwaite df, t and p,
#              scaled-residual quantiles, the type III anova (Satterthwaite), coef() of the
#              first 8 animals
#     pb       pbkrtest::PBmodcomp(m3, m2): the treatment by parametric bootstrap.  RANDOM:
#              set.seed(1), nsim = 200 (as the page), and set.seed(20240501), nsim = 2000 for
#              a steadier p-value; serial (cl = 1), so the seeds reproduce it
#   owls
#     reml, ml     logCort ~ Implant * days + (1 | Ring) by REML and by ML: variance components
#     nested       logCort ~ Implant * days + (1 | Brood/Ring), REML: REML criterion, variance
#                  components, fixed effects
#     anova        anova(reml, nested) (both refitted by ML): npar, AIC, BIC, logLik, deviance,
#                  Chisq, Df, p
#     crossed      logCort ~ Implant * days + (1 | Brood) + (1 | Ring), REML criterion
#
# Written with R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, performance 0.10.2,
# jsonlite 1.8.4 (versions stored in the JSON).  About two minutes, most of it the 2000
# bootstrap refits.  Usage (from the repository root): Rscript tests/reference/tutorials.R
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(performance)
  library(jsonlite)
})
here <- "tests/reference"

pigs <- read.csv(file.path(here, "tutorial_piglets.csv"), colClasses = c(animal = "character", treatm = "character"))
pigs$animal <- factor(pigs$animal)
pigs$treatm <- factor(pigs$treatm)
owls <- read.csv(file.path(here, "tutorial_owls.csv"),
                 colClasses = c(Brood = "character", Ring = "character", Implant = "character", days = "character"))
owls$Brood <- factor(owls$Brood)
owls$Ring <- factor(owls$Ring)
owls$Implant <- factor(owls$Implant)
owls$days <- factor(owls$days, levels = c("1", "2", "3", "5", "7", "9"))

varcorr <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  list(group = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
}
fixef_table <- function(m) {
  ct <- coef(summary(m))
  out <- list(names = rownames(ct), estimate = unname(ct[, "Estimate"]), se = unname(ct[, "Std. Error"]))
  if ("df" %in% colnames(ct)) out$df <- unname(ct[, "df"])
  out$t <- unname(ct[, "t value"])
  if ("Pr(>|t|)" %in% colnames(ct)) out$p <- unname(ct[, "Pr(>|t|)"])
  out
}
basics <- function(m, formula) {
  ll <- logLik(m)
  Filter(Negate(is.null), list(formula = formula, REML = isREML(m), nobs = nobs(m), reml_criterion = if (isREML(m)) unname(getME(m, "devcomp")$cmp[["REML"]]) else NULL,
       deviance = if (!isREML(m)) deviance(m) else NULL, logLik = as.numeric(ll), df = attr(ll, "df"), AIC = AIC(m),
       sigma = sigma(m), varcorr = varcorr(m), fixef = as.list(fixef(m)),
       singular = isSingular(m), messages = m@optinfo$conv$lme4$messages))
}
anova_table <- function(a) {
  df <- as.data.frame(a)
  list(models = rownames(df), npar = df$npar, AIC = df$AIC, BIC = df$BIC, logLik = df$logLik,
       deviance = df$deviance, Chisq = df$Chisq, Df = df$Df, p = df[["Pr(>Chisq)"]])
}

out <- list()

# ---- piglets -------------------------------------------------------------------
pig <- list()
m0 <- lmer(BW ~ 1 + (1 | animal), pigs)
ic <- performance::icc(m0)
pig$m0 <- c(basics(m0, "BW ~ 1 + (1 | animal)"),
            list(icc_adjusted = ic$ICC_adjusted, icc_conditional = ic$ICC_conditional))

m1 <- lmer(BW ~ time + (time | animal), pigs, REML = FALSE)
m2 <- lmer(BW ~ time + I(time^2) + (time | animal), pigs, REML = FALSE)
m3 <- lmer(BW ~ time + I(time^2) + treatm + (time | animal), pigs, REML = FALSE)
aicc_table <- function(models) {
  n <- nobs(models[[1]])
  K <- sapply(models, function(m) attr(logLik(m), "df"))
  LL <- sapply(models, function(m) as.numeric(logLik(m)))
  AIC <- -2 * LL + 2 * K
  AICc <- AIC + 2 * K * (K + 1) / (n - K - 1)
  o <- order(AICc)
  d <- AICc - min(AICc)
  w <- exp(-d / 2) / sum(exp(-d / 2))
  list(models = names(models)[o], K = unname(K[o]), LL = unname(LL[o]), AIC = unname(AIC[o]),
       AICc = unname(AICc[o]), Delta_AICc = unname(d[o]), AICcWt = unname(w[o]), Cum.Wt = cumsum(unname(w[o])),
       n = n, note = "AICcmodavg not installed: AICc = AIC + 2K(K+1)/(n-K-1) computed by hand")
}
pig$aicc <- aicc_table(list(linear = m1, quadratic = m2, "quadratic + treatment" = m3))
pig$ml <- list(linear = basics(m1, "BW ~ time + (time | animal)"),
               quadratic = basics(m2, "BW ~ time + I(time^2) + (time | animal)"),
               quadratic_treatment = basics(m3, "BW ~ time + I(time^2) + treatm + (time | animal)"))

fit <- lmer(BW ~ time + I(time^2) + treatm + (time | animal), pigs)
a <- anova(fit)  # lmerTest: type III, Satterthwaite
cf <- coef(fit)$animal
pig$fit <- c(basics(fit, "BW ~ time + I(time^2) + treatm + (time | animal)"),
             list(coef_table = fixef_table(fit),
                  scaled_residuals = unname(quantile(residuals(fit, type = "pearson", scaled = TRUE))),
                  anova = list(terms = rownames(a), SumSq = a[["Sum Sq"]], MeanSq = a[["Mean Sq"]],
                               NumDF = a$NumDF, DenDF = a$DenDF, F = a[["F value"]], p = a[["Pr(>F)"]],
                               heading = attr(a, "heading")),
                  coef_head = list(animals = head(rownames(cf), 8), columns = colnames(cf),
                                   values = unname(as.matrix(head(cf, 8))))))

pb_case <- function(big, small, nsim, seed) {
  set.seed(seed)
  t0 <- proc.time()[["elapsed"]]
  pb <- suppressWarnings(PBmodcomp(big, small, nsim = nsim))
  tab <- pb$test
  list(nsim = nsim, seed = seed, stat = tab["LRT", "stat"], df = tab["LRT", "df"],
       p_chisq = tab["LRT", "p.value"], p_pb = tab["PBtest", "p.value"],
       npos = unname(pb$samples[["npos"]]), n_extreme = pb$n.extreme,
       seconds = proc.time()[["elapsed"]] - t0, printed = capture.output(print(pb)))
}
pig$pb <- list(large = "BW ~ time + I(time^2) + treatm + (time | animal)",
               small = "BW ~ time + I(time^2) + (time | animal)", ML = TRUE,
               note = "random: PBmodcomp simulates from the small model; set.seed() before each run",
               nsim200 = pb_case(m3, m2, 200, 1), nsim2000 = pb_case(m3, m2, 2000, 20240501))
out$piglets <- pig

# ---- owls ----------------------------------------------------------------------
owl <- list()
f <- "logCort ~ Implant * days"
reml <- lmer(logCort ~ Implant * days + (1 | Ring), owls)
ml <- lmer(logCort ~ Implant * days + (1 | Ring), owls, REML = FALSE)
nested <- lmer(logCort ~ Implant * days + (1 | Brood/Ring), owls)
crossed <- lmer(logCort ~ Implant * days + (1 | Brood) + (1 | Ring), owls)
owl$reml <- basics(reml, paste(f, "+ (1 | Ring)"))
owl$ml <- basics(ml, paste(f, "+ (1 | Ring)"))
owl$nested <- c(basics(nested, paste(f, "+ (1 | Brood/Ring)")), list(coef_table = fixef_table(nested)))
owl$anova <- anova_table(suppressMessages(anova(reml, nested, model.names = c("reml", "nested"))))
owl$crossed <- basics(crossed, paste(f, "+ (1 | Brood) + (1 | Ring)"))
owl$n <- list(rows = nrow(owls), rings = nlevels(owls$Ring), broods = nlevels(owls$Brood))
out$owls <- owl

out$R_version <- R.version.string
for (p in c("lme4", "lmerTest", "pbkrtest", "performance", "Matrix", "jsonlite"))
  out[[paste0(p, "_version")]] <- as.character(packageVersion(p))
write_json(out, file.path(here, "tutorials.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote tutorials.json\n")
