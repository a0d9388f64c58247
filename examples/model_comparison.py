"""The sleepstudy inference workflow: LRT, profile and bootstrap intervals,
ICC of the unconditional means model, and an AICc table of growth models.

Run:  python examples/model_comparison.py   (HIERLM_NSIM=1000 for more bootstrap refits)
"""

import os
import warnings

import hierlm

nsim = int(os.environ.get("HIERLM_NSIM", 200))
sleep = hierlm.datasets.load("sleepstudy")

# 1. Are the random intercept and slope correlated?  m2 drops the correlation.
m1 = hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
m2 = hierlm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "refitting model(s) with ML (instead of REML)"
    print(hierlm.anova(m1=m1, m2=m2), "\n")
    # the same test by parametric bootstrap (pbkrtest's PBmodcomp): the LRT's
    # null distribution simulated from m2 instead of chi-square(1)
    print(hierlm.pb_test(m1, m2, nsim=nsim, seed=1), "\n")

# 2. Fixed-effect tests with Satterthwaite df (lmerTest's summary table)
print(m1.coef_table(), "\n")

# 3. Profile-likelihood and parametric-bootstrap intervals
print("Profile intervals:\n", m1.confint(method="profile"), "\n")
print(f"Bootstrap intervals ({nsim} refits):\n", m1.confint(method="boot", nsim=nsim, seed=1), "\n")

# 4. How much of the variance lies between subjects?  The unconditional means model
m0 = hierlm.lmer("Reaction ~ 1 + (1 | Subject)", sleep)
print("ICC of the unconditional means model:\n", m0.icc(), "\n")

# 5. Growth models compared by AICc (refit by ML: their fixed effects differ)
growth = {
    "intercept only": m0,
    "linear": hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep),
    "quadratic": hierlm.lmer("Reaction ~ Days + I(Days^2) + (Days | Subject)", sleep),
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    print(hierlm.compare(growth, criterion="AICc").round(3).to_string())
