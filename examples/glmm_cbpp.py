"""Contagious bovine pleuropneumonia (lme4's cbpp): a binomial GLMM, as in lme4's glmer examples.

New cases of CBPP (``incidence``) among ``size`` cattle per herd and period.
Run: python examples/glmm_cbpp.py
"""

import numpy as np
import pandas as pd

import hierlm

cbpp = hierlm.datasets.load("cbpp")

# Successes and failures, a random intercept per herd (lme4: glmer(..., family = binomial))
fit = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
fit.data_name = "cbpp"
print(fit.summary())

# The same model written as a proportion with the trials as weights
same = hierlm.glmer("incidence/size ~ period + (1 | herd)", cbpp, weights="size")
print(f"\nproportion + weights: logLik {same.loglik:.4f} (cbind: {fit.loglik:.4f})")

# Odds ratios of each period against period 1, with Wald 95% intervals
tab = fit.coef_table()
z = 1.959964
odds = pd.DataFrame({
    "odds ratio": np.exp(tab["Estimate"]),
    "2.5 %": np.exp(tab["Estimate"] - z * tab["Std. Error"]),
    "97.5 %": np.exp(tab["Estimate"] + z * tab["Std. Error"]),
}).iloc[1:]
print("\nOdds ratios (vs period 1):")
print(odds.round(3).to_string())

# Herd effects on the logit scale, with their conditional SDs
re = fit.ranef(condvar=True)["herd"]
print("\nHerd effects (first 5):")
print(re.head().round(3).to_string())

# Predicted incidence probability: a typical herd (random effect 0) and herd 1
new = pd.DataFrame({"period": ["1", "2", "3", "4"], "herd": ["1"] * 4})
typical = fit.predict(new, re_form="~0", type="response")
herd1 = fit.predict(new, type="response")
print("\nP(new case) by period, typical herd:", typical.round(3).tolist())
print("P(new case) by period, herd 1:      ", herd1.round(3).tolist())

# Is there more variation than the binomial allows?
print("\n" + str(fit.overdispersion()))

# The usual remedy when it is: an observation-level random effect (one level per row)
cbpp["obs"] = np.arange(len(cbpp)).astype(str)
fit_obs = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", cbpp)
print(f"with (1 | obs): AIC {fit_obs.aic:.1f} (without: {fit.aic:.1f})")

# Adaptive Gauss-Hermite quadrature (one scalar random effect): nAGQ = 9
agq = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nAGQ=9)
print("\nnAGQ = 9 fixed effects:", agq.fixef.round(4).tolist())
