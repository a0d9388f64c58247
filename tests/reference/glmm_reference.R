# lme4 reference fits for generalized linear mixed models (glmer): links, nAGQ,
# response forms (cbind, proportion + weights, 0/1), offsets, random slopes.
# Usage (from the repository root):
#   Rscript tests/reference/glmm_reference.R [tests/reference/glmm_reference.json]
# Needs R with lme4 and jsonlite (Debian: r-base-core r-cran-lme4 r-cran-jsonlite).
#
# Data: the bundled CSVs in hierlm/datasets/data/.  Factor columns (levels in numeric
# order where the labels are integers, otherwise sorted):
#   cbpp: herd, period;  grouseticks: INDEX, BROOD, YEAR, LOCATION.
# Derived columns (tests/test_glmm.py builds exactly the same in pandas):
#   cbpp$t              = as.numeric(period)         (1..4, numeric)
#   grouseticks$TICKS01 = as.numeric(TICKS > 0)      (0/1 response)
#   grouseticks$h       = cHEIGHT / 100              (height in 100s, for the random slope)
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly=TRUE)
out <- if (length(args) >= 1) args[1] else "tests/reference/glmm_reference.json"
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

cbpp <- read_data("cbpp.csv", c("herd", "period"))
cbpp$t <- as.numeric(cbpp$period)
grouseticks <- read_data("grouseticks.csv", c("INDEX", "BROOD", "YEAR", "LOCATION"))
grouseticks$TICKS01 <- as.numeric(grouseticks$TICKS > 0)
grouseticks$h <- grouseticks$cHEIGHT / 100
dsets <- list(cbpp=cbpp, grouseticks=grouseticks)

CB <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GT <- "TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)"
cases <- list(
  list(id="cbpp_laplace", data="cbpp", formula=CB, family="binomial", link="logit", nAGQ=1),
  list(id="cbpp_nagq0", data="cbpp", formula=CB, family="binomial", link="logit", nAGQ=0),
  list(id="cbpp_agq9", data="cbpp", formula=CB, family="binomial", link="logit", nAGQ=9),
  list(id="cbpp_agq25", data="cbpp", formula=CB, family="binomial", link="logit", nAGQ=25),
  list(id="cbpp_probit", data="cbpp", formula=CB, family="binomial", link="probit", nAGQ=1),
  list(id="cbpp_cloglog", data="cbpp", formula=CB, family="binomial", link="cloglog", nAGQ=1),
  list(id="cbpp_probit_agq9", data="cbpp", formula=CB, family="binomial", link="probit", nAGQ=9),
  list(id="cbpp_weights", data="cbpp", formula="incidence/size ~ period + (1 | herd)",
       family="binomial", link="logit", nAGQ=1, weights="size"),
  list(id="cbpp_poisson_offset", data="cbpp", formula="incidence ~ period + offset(log(size)) + (1 | herd)",
       family="poisson", link="log", nAGQ=1),
  list(id="cbpp_slope", data="cbpp", formula="cbind(incidence, size - incidence) ~ t + (t | herd)",
       family="binomial", link="logit", nAGQ=1),
  list(id="grouse_poisson", data="grouseticks", formula=GT, family="poisson", link="log", nAGQ=1),
  list(id="grouse_sqrt", data="grouseticks", formula=GT, family="poisson", link="sqrt", nAGQ=1),
  list(id="grouse_bernoulli", data="grouseticks",
       formula="TICKS01 ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", family="binomial", link="logit", nAGQ=1),
  list(id="grouse_bernoulli_slope", data="grouseticks", formula="TICKS01 ~ h + (1 + h | YEAR:LOCATION)",
       family="binomial", link="logit", nAGQ=1),
  list(id="grouse_poisson_slope", data="grouseticks", formula="TICKS ~ YEAR + h + (1 + h | BROOD) + (1 | INDEX)",
       family="poisson", link="log", nAGQ=1)
)

# the GLMM FAQ's overdispersion check (Bolker)
overdisp_fun <- function(model) {
  rdf <- df.residual(model)
  rp <- residuals(model, type="pearson")
  chisq <- sum(rp^2)
  list(chisq=chisq, ratio=chisq / rdf, rdf=rdf, p=pchisq(chisq, df=rdf, lower.tail=FALSE))
}

results <- list()
for (k in cases) {
  dat <- dsets[[k$data]]
  fam <- get(k$family)(link=k$link)
  t0 <- Sys.time()
  m <- if (is.null(k$weights)) glmer(as.formula(k$formula), dat, family=fam, nAGQ=k$nAGQ)
       else glmer(as.formula(k$formula), dat, family=fam, nAGQ=k$nAGQ, weights=dat[[k$weights]])
  el <- as.numeric(Sys.time() - t0, units="secs")
  vc <- as.data.frame(VarCorr(m))
  rdf <- as.data.frame(ranef(m, condVar=TRUE))
  nd <- dat[1:6, ]
  r <- list(
    id=k$id, data=k$data, formula=k$formula, family=k$family, link=k$link, nAGQ=k$nAGQ,
    weights=if (is.null(k$weights)) NULL else k$weights,
    fixef=as.list(fixef(m)), se=as.list(sqrt(diag(as.matrix(vcov(m))))),
    theta=I(unname(getME(m, "theta"))),
    varcorr=list(grp=I(vc$grp), var1=I(vc$var1), var2=I(vc$var2), vcov=I(vc$vcov), sdcor=I(vc$sdcor)),
    deviance=deviance(m), logLik=as.numeric(logLik(m)), AIC=AIC(m), BIC=BIC(m),
    df=attr(logLik(m), "df"), df_resid=df.residual(m), nobs=nobs(m), ngroups=as.list(ngrps(m)),
    singular=isSingular(m), messages=m@optinfo$conv$lme4$messages,
    ranef=list(grp=as.character(rdf$grpvar), term=as.character(rdf$term), level=as.character(rdf$grp),
               condval=rdf$condval, condsd=rdf$condsd),
    fitted=unname(fitted(m)), pearson=unname(residuals(m, type="pearson")),
    deviance_resid=unname(residuals(m, type="deviance")),
    predict_link_new=unname(predict(m, newdata=nd)),
    predict_response_new=unname(predict(m, newdata=nd, type="response")),
    predict_population_new=unname(predict(m, newdata=nd, re.form=NA, type="response")),
    lme4_seconds=el)
  if (k$family == "poisson" || k$data == "cbpp") r$overdispersion <- overdisp_fun(m)
  if (k$id %in% c("cbpp_laplace", "grouse_poisson", "cbpp_probit_agq9"))
    r$summary <- capture.output(print(summary(m)))
  results[[k$id]] <- r
  cat(k$id, "done", el, "s\n")
}
results[["_meta"]] <- list(lme4=as.character(packageVersion("lme4")), R=R.version.string,
                           note="made by tests/reference/glmm_reference.R")
writeLines(toJSON(results, auto_unbox=TRUE, digits=NA, pretty=TRUE, na="null", null="null"), out)
