"""The sleepstudy workflow of the lme4 tutorials, in hierlm.

Run: python examples/sleepstudy.py
"""

import numpy as np
import pandas as pd

import hierlm

sleep = hierlm.datasets.load("sleepstudy")

# Random intercept and slope for Days, correlated (lme4: (Days | Subject))
fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
fit.data_name = "sleepstudy"
print(fit.summary())

# Uncorrelated intercept and slope: (Days || Subject)
fit_uncorr = hierlm.lmer("Reaction ~ Days + (Days || Subject)", sleep)
print("\nUncorrelated model variance components:")
print(fit_uncorr.varcorr.round(3).to_string(index=False))

# ML fits for comparing models by likelihood
ml_full = hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
ml_int = hierlm.lmer("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
print(f"\nAIC (Days|Subject): {ml_full.aic:.1f}   AIC (1|Subject): {ml_int.aic:.1f}")

# Partial pooling: each subject's own least-squares slope vs the model's
own = {
    str(subject): np.polyfit(g["Days"], g["Reaction"], 1)[0]
    for subject, g in sleep.groupby("Subject", observed=True)
}
shrunk = fit.coef()["Subject"]["Days"]
table = pd.DataFrame({"own slope": pd.Series(own), "model slope": shrunk})
print("\nSlopes per subject, no pooling vs partial pooling:")
print(table.round(2).head(6).to_string())

# Predictions: conditional (with the subject's effects) and population-level
new = pd.DataFrame({"Days": [0.0, 5.0, 10.0], "Subject": ["308", "308", "308"]})
print("\nSubject 308:", fit.predict(new).round(1).tolist())
print("Population:", fit.predict(new, re_form="~0").round(1).tolist())
