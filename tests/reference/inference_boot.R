# Reference values for hierlm's parametric bootstrap: pbkrtest::PBmodcomp and
# lme4's confint(method = "boot") (lme4 1.1-31, pbkrtest 0.5.2).
# Run from the repository root:  Rscript tests/reference/inference_boot.R
# (about 3-4 minutes: 2 x 2000 refits for PBmodcomp, 2 x 2000 for each confint)
#
# The bootstrap samples themselves (PBmodcomp's reference distribution, bootMer's t)
# are stored too, rounded to 7 significant digits, so that the tests can compare
# hierlm's bootstrap distribution with R's (the samples differ: agreement is statistical).
suppressPackageStartupMessages({
  library(lme4)
  library(pbkrtest)
  library(jsonlite)
})
dd <- "hierlm/datasets/data"
sleep <- read.csv(file.path(dd, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
dye <- read.csv(file.path(dd, "Dyestuff.csv"))
dye$Batch <- factor(dye$Batch)

out <- list()

# ---- PBmodcomp ---------------------------------------------------------------
# pbkrtest refits REML models by ML; cl = 1 (the default without options) runs serially,
# so set.seed makes the reference distribution reproducible (PBmodcomp's own seed
# argument is not used by pbkrtest 0.5.2).
pb_case <- function(big, small, nsim, seed, formula_big, formula_small) {
  set.seed(seed)
  t0 <- proc.time()[["elapsed"]]
  pb <- PBmodcomp(big, small, nsim = nsim)
  el <- proc.time()[["elapsed"]] - t0
  tab <- pb$test
  list(formula_big = formula_big, formula_small = formula_small, nsim = nsim, seed = seed,
       stat = tab["LRT", "stat"], df = tab["LRT", "df"], p_chisq = tab["LRT", "p.value"],
       p_pb = tab["PBtest", "p.value"], npos = unname(pb$samples[["npos"]]),
       n_extreme = pb$n.extreme, ref = signif(as.numeric(pb$ref), 7), seconds = el,
       printed = capture.output(print(pb)))
}
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleep)
m2 <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep)
out$pb_m1_m2 <- pb_case(m1, m2, 2000, 20240501,
                        "Reaction ~ Days + (Days | Subject)",
                        "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
mi <- lmer(Reaction ~ Days + (1 | Subject), sleep)
m0 <- lmer(Reaction ~ 1 + (1 | Subject), sleep)
out$pb_days <- pb_case(mi, m0, 500, 20240502,
                       "Reaction ~ Days + (1 | Subject)", "Reaction ~ 1 + (1 | Subject)")

# ---- confint(method = "boot") ------------------------------------------------
# confint() does not return the bootMer object, so bootMer is run again from the same
# seed with lme4's own bootFun (copied from confint.merMod) to keep the samples; the
# script checks that confint() of those samples is the table confint() printed.
boot_fun <- function(x) {
  th <- x@theta
  nvec <- lengths(x@cnms)
  ss <- lme4:::Cv_to_Sv(th, n = nvec, s = sigma(x))
  c(setNames(ss, lme4:::profnames(x, FALSE, useSc = TRUE)), fixef(x))
}
boot_case <- function(m, formula, data, nsim, seed) {
  set.seed(seed)
  t0 <- proc.time()[["elapsed"]]
  ci <- suppressMessages(confint(m, method = "boot", nsim = nsim, oldNames = FALSE))
  el <- proc.time()[["elapsed"]] - t0
  set.seed(seed)
  bb <- suppressMessages(bootMer(m, boot_fun, nsim = nsim))
  ci2 <- confint(bb, type = "perc")
  stopifnot(isTRUE(all.equal(unname(ci), unname(ci2))), identical(rownames(ci), names(bb$t0)))
  t <- bb$t
  colnames(t) <- names(bb$t0)
  list(formula = formula, data = data, REML = isREML(m), nsim = nsim, seed = seed,
       names = rownames(ci), columns = colnames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]),
       t0 = unname(bb$t0), nfail = attr(bb, "bootFail"),
       t = lapply(seq_len(ncol(t)), function(j) signif(t[, j], 7)), seconds = el)
}
out$boot_sleep <- boot_case(m1, "Reaction ~ Days + (Days | Subject)", "sleepstudy", 2000, 20240503)
dy <- lmer(Yield ~ 1 + (1 | Batch), dye)
out$boot_dyestuff <- boot_case(dy, "Yield ~ 1 + (1 | Batch)", "Dyestuff", 2000, 20240504)

out$versions <- list(lme4 = as.character(packageVersion("lme4")),
                     pbkrtest = as.character(packageVersion("pbkrtest")),
                     R = R.version.string, RNG = RNGkind())
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = FALSE, na = "null"),
           "tests/reference/inference_boot.json")
