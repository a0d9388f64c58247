"""A growth-curve analysis to the end: does the treatment matter, which treatments differ,
what to expect of a new animal, and how each animal looks on its own.

The data are R's ChickWeight (bundled): the weights of 50 chicks on four diets, weighed
every other day from day 0 to day 21 (some chicks drop out).  The same steps finish any
growth study of animals under treatments (piglets, lambs, ...).

Run:  python examples/growth_curves.py
"""

import pandas as pd

import hierlm

chick = hierlm.datasets.load("ChickWeight")

# 1. Each chick its own intercept and growth rate; the diets may change both.
m = hierlm.lmer("weight ~ Diet * Time + (Time | Chick)", chick)
print(m.summary(), "\n")

# 2. Does the diet matter?  lmerTest's type III F tests (Satterthwaite's df); Diet:Time
#    tests whether the diets grow the chicks at different rates.
print(hierlm.anova(m), "\n")
print(hierlm.anova(m, ddf="kenward-roger"), "\n")

# 3. Mean weight per diet at day 21 and which diets differ (Tukey-adjusted), as R's emmeans.
emm = hierlm.emmeans(m, "Diet", at={"Time": 21})
print(emm, "\n")
print(emm.pairs(), "\n")
print(emm.contrast("trt.vs.ctrl"), "\n")  # each diet against diet 1 (Dunnett)

# 4. A new chick on diet 3: the population curve with its confidence band, and the range
#    in which a new chick's weight will fall (its own curve and the residual variance added).
new = pd.DataFrame({"Diet": "3", "Time": [0.0, 7.0, 14.0, 21.0], "Chick": "new"})
print("Population curve, diet 3:\n", m.predict(new, re_form="~0", interval="confidence"), "\n")
print("A new chick on diet 3:\n", m.predict(new, interval="prediction", allow_new_levels=True), "\n")

# 5. No pooling: a straight line per chick (lme4's lmList), with each chick's R^2.
per_chick = hierlm.lmlist("weight ~ Time | Chick", chick)
table = per_chick.coef.assign(R2=per_chick.r2, n=per_chick.nobs)
print("Per-chick least-squares lines (first 10):\n", table.head(10), "\n")
print(f"Median R^2 of the per-chick lines: {per_chick.r2.median():.3f}")
