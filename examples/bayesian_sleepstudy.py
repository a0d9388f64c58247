"""REML, ML, MAP and NUTS on sleepstudy, side by side.

Run: python examples/bayesian_sleepstudy.py   (about 15 s; NUTS compiles once)
"""

import warnings

import pandas as pd

import hierlm

sleep = hierlm.datasets.load("sleepstudy")
model = hierlm.Model("Reaction ~ Days + (Days | Subject)", sleep)
model.data_name = "sleepstudy"

print("Default priors (brms-like, scaled to the data):")
print(model.priors)

reml = model.fit("reml")
ml = model.fit("ml")
map_default = model.fit("map")                 # mode of the marginal posterior
map_flat = model.fit("map", priors="flat")     # = ML
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    nuts = model.fit("nuts", draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)


def row(fit):
    vc = fit.varcorr
    return pd.Series({
        "(Intercept)": fit.fixef["(Intercept)"],
        "Days": fit.fixef["Days"],
        "sd (Intercept)": vc.loc[0, "sdcor"],
        "sd Days": vc.loc[1, "sdcor"],
        "corr": vc.loc[2, "sdcor"],
        "sigma": vc.iloc[-1]["sdcor"],
    })


table = pd.DataFrame({
    "REML": row(reml), "ML": row(ml), "MAP (flat)": row(map_flat),
    "MAP (default priors)": row(map_default), "NUTS (posterior mean)": row(nuts),
})
print("\nEstimates side by side:")
print(table.round(3).to_string())

print()
print(nuts.summary())

# the posterior of a subject's slope shrinks towards the population slope
slope = nuts.draws("ranef_Subject")[:, :, 1] + nuts.draws("fixef")[:, [1]]
print("\nSubject 308's slope: posterior mean %.2f, 95%% interval (%.2f, %.2f)" % (
    slope[:, 0].mean(), *pd.Series(slope[:, 0]).quantile([0.025, 0.975])))
