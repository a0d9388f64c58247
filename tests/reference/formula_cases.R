# lme4 reference fits for formula features (transformations, interactions, ordered
# factors, logicals, double bars, no-intercept terms, nested/crossed groupings, NA rows).
# Usage (from the repository root):
#   Rscript tests/reference/formula_cases.R tests/reference/formula_reference.json
# Needs Debian packages r-base-core r-cran-lme4 r-cran-jsonlite.
#
# Data: the bundled CSVs in hierlm/datasets/data/.  Factor columns (levels in numeric
# order where the labels are integers, otherwise sorted):
#   sleepstudy: Subject;  Penicillin: plate, sample;  Pastes: batch, cask, sample;
#   cbpp: herd, period.
# Derived columns (tests/test_formula_parity.py builds exactly the same in pandas):
#   sleepstudy$Days2 = Days                                   (numeric copy, used with I())
#   sleepstudy$week  = factor(ifelse(Days < 5, "early", "late"))  levels early, late
#   sleepstudy$phase = ordered factor, levels lo < mid < hi:  Days 0-2 lo, 3-6 mid, 7-9 hi
#                      (contr.poly contrasts -> phase.L, phase.Q)
#   sleepstudy$late  = Days >= 5                              (logical)
#   sleepstudy_na    = sleepstudy with Reaction set to NA in rows 3, 50, 101 (1-based);
#                      lme4 drops them (na.omit), nobs 177
#   cbpp: incidence, size numeric (integers); the response is I(incidence/size)
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly=TRUE)
out <- if (length(args) >= 1) args[1] else "tests/reference/formula_reference.json"
ddir <- "hierlm/datasets/data"

read_data <- function(file, factors) {
  d <- read.csv(file.path(ddir, file), stringsAsFactors=FALSE,
                colClasses=setNames(rep("character", length(factors)), factors))
  for (f in factors) {
    x <- d[[f]]; u <- unique(x)
    lev <- if (all(grepl("^-?[0-9]+$", u))) u[order(as.numeric(u))] else sort(u, method="radix")
    d[[f]] <- factor(x, levels=lev)
  }
  d
}

sleepstudy <- read_data("sleepstudy.csv", "Subject")
sleepstudy$Days2 <- sleepstudy$Days
sleepstudy$week <- factor(ifelse(sleepstudy$Days < 5, "early", "late"))
sleepstudy$phase <- ordered(cut(sleepstudy$Days, breaks=c(-Inf, 2, 6, Inf), labels=c("lo", "mid", "hi")))
sleepstudy$late <- sleepstudy$Days >= 5
stopifnot(identical(levels(sleepstudy$week), c("early", "late")),
          identical(levels(sleepstudy$phase), c("lo", "mid", "hi")), is.logical(sleepstudy$late))
sleepstudy_na <- sleepstudy
sleepstudy_na$Reaction[c(3, 50, 101)] <- NA
Penicillin <- read_data("Penicillin.csv", c("plate", "sample"))
Pastes <- read_data("Pastes.csv", c("batch", "cask", "sample"))
cbpp <- read_data("cbpp.csv", c("herd", "period"))

dsets <- list(sleepstudy=sleepstudy, sleepstudy_na=sleepstudy_na, Penicillin=Penicillin,
              Pastes=Pastes, cbpp=cbpp)
SLEEP_DERIVED <- paste("Days2 = Days; week = factor(ifelse(Days < 5, 'early', 'late'));",
                       "phase = ordered(lo: Days 0-2, mid: 3-6, hi: 7-9); late = Days >= 5 (logical)")
derived_for <- list(
  sleepstudy=SLEEP_DERIVED,
  sleepstudy_na=paste("sleepstudy with Reaction = NA in rows 3, 50, 101 (1-based; 0-based 2, 49, 100);",
                      SLEEP_DERIVED),
  Penicillin="none", Pastes="none",
  cbpp="none (response I(incidence/size), incidence and size numeric)")

cases <- list(
  list(id="sleep_I_sq", data="sleepstudy", formula="Reaction ~ Days + I(Days^2) + (Days|Subject)", REML=TRUE),
  list(id="sleep_I_Days2", data="sleepstudy", formula="Reaction ~ Days + I(Days2^2) + (1|Subject)", REML=TRUE),
  list(id="sleep_log_resp", data="sleepstudy", formula="log(Reaction) ~ Days + (1|Subject)", REML=TRUE),
  list(id="sleep_poly2", data="sleepstudy", formula="Reaction ~ poly(Days, 2) + (1|Subject)", REML=TRUE),
  list(id="sleep_scale", data="sleepstudy", formula="Reaction ~ scale(Days) + (1|Subject)", REML=TRUE),
  list(id="sleep_sqrt_resp", data="sleepstudy", formula="sqrt(Reaction) ~ Days + (1|Subject)", REML=TRUE),
  list(id="sleep_star", data="sleepstudy", formula="Reaction ~ Days * week + (1|Subject)", REML=TRUE),
  list(id="sleep_colon", data="sleepstudy", formula="Reaction ~ Days:week + (1|Subject)", REML=TRUE),
  list(id="sleep_ordered", data="sleepstudy", formula="Reaction ~ phase + (1|Subject)", REML=TRUE),
  list(id="sleep_logical", data="sleepstudy", formula="Reaction ~ late + (1|Subject)", REML=TRUE),
  list(id="sleep_double_bar", data="sleepstudy", formula="Reaction ~ Days + (Days||Subject)", REML=TRUE),
  list(id="sleep_two_terms", data="sleepstudy", formula="Reaction ~ Days + (1|Subject) + (0+Days|Subject)", REML=TRUE),
  list(id="sleep_re_zero_int", data="sleepstudy", formula="Reaction ~ Days + (0 + Days|Subject)", REML=TRUE),
  list(id="sleep_re_minus1", data="sleepstudy", formula="Reaction ~ Days + (Days - 1|Subject)", REML=TRUE),
  list(id="sleep_fe_zero_int", data="sleepstudy", formula="Reaction ~ 0 + Days + (1|Subject)", REML=TRUE),
  list(id="sleep_re_factor", data="sleepstudy", formula="Reaction ~ Days + (0 + week|Subject)", REML=TRUE),
  # (1 + week||Subject): intercept + full 2x2 block for weekearly/weeklate is over-parameterised (the
  # intercept variance can be absorbed into the week block); lme4 warns of a degenerate Hessian and the
  # individual SDs are not identified (another optimizer gives other SDs at the same criterion).
  list(id="sleep_double_bar_factor", data="sleepstudy", formula="Reaction ~ Days + (1 + week||Subject)", REML=TRUE),
  list(id="pastes_explicit_nested", data="Pastes", formula="strength ~ 1 + (1|batch) + (1|batch:cask)", REML=TRUE),
  list(id="pastes_slash_ml", data="Pastes", formula="strength ~ 1 + (1|batch/cask)", REML=FALSE),
  list(id="penicillin_crossed_ml", data="Penicillin", formula="diameter ~ 1 + (1|plate) + (1|sample)", REML=FALSE),
  list(id="cbpp_proportion", data="cbpp", formula="I(incidence/size) ~ period + (1|herd)", REML=TRUE),
  list(id="sleep_na_rows", data="sleepstudy_na", formula="Reaction ~ Days + (Days|Subject)", REML=TRUE)
)

vc_list <- function(m) {
  vc <- VarCorr(m); res <- list()
  for (g in names(vc)) { v <- vc[[g]]; s <- attr(v, "stddev"); cr <- attr(v, "correlation")
    res[[length(res)+1]] <- list(group=g, names=names(s), sd=unname(s), corr=unname(cr)) }
  res }

results <- list()
for (k in cases) {
  dat <- dsets[[k$data]]
  t0 <- Sys.time()
  warns <- character(0)
  m <- withCallingHandlers(lme4::lmer(as.formula(k$formula), dat, REML=k$REML),
                           warning=function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  el <- as.numeric(Sys.time() - t0, units="secs")
  re <- ranef(m, condVar=TRUE)
  rdf <- as.data.frame(re)
  ranefs <- list(grp=as.character(rdf$grpvar), term=as.character(rdf$term), level=as.character(rdf$grp),
                 condval=rdf$condval, condsd=rdf$condsd)
  r <- list(id=k$id, data=k$data, formula=k$formula, family="gaussian", REML=k$REML,
            derived=derived_for[[k$data]],
            fixef=as.list(fixef(m)), se=as.list(sqrt(diag(as.matrix(vcov(m))))),
            theta=unname(getME(m, "theta")), sigma=sigma(m),
            varcorr=vc_list(m), deviance=if (k$REML) NA else deviance(m),
            reml_criterion=if (k$REML) unname(REMLcrit(m)) else NA,
            logLik=as.numeric(logLik(m)), AIC=AIC(m), BIC=BIC(m), df=attr(logLik(m), "df"),
            nobs=nobs(m), ngroups=as.list(ngrps(m)), singular=isSingular(m), lme4_seconds=el,
            ranef=ranefs, lme4_warnings=as.list(warns))
  results[[k$id]] <- r
  cat(k$id, "done", el, "s", if (length(warns)) paste("WARNING:", paste(warns, collapse="; ")), "\n")
}
writeLines(toJSON(results, auto_unbox=TRUE, digits=NA, pretty=TRUE, na="null"), out)
