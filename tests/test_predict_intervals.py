"""predict(interval=...): confidence intervals against the covariance written
out independently (Henderson's mixed-model equations with G^-1), prediction
intervals by their coverage in simulation (a small version of
validation/prediction_coverage.py)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.linalg import block_diag

import hierlm


@pytest.fixture(scope="module")
def fit(sleepstudy):
    return hierlm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)


def _henderson(fit):
    """sigma^2 C, C the inverse of [[X'X, X'Z], [Z'X, Z'Z + sigma^2 G^-1]]."""
    d = fit.design
    Z = sp.hstack([r.sparse() for r in d.remats]).toarray()
    G = block_diag(*[np.kron(np.eye(r.nlevels), S) for r, S in zip(d.remats, fit.covariances())])
    X, s2 = d.X, fit.sigma**2
    C = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + s2 * np.linalg.inv(G)]])
    return s2 * np.linalg.inv(C), Z


def test_confidence_intervals_equal_the_mixed_model_equations(fit, sleepstudy):
    C, Z = _henderson(fit)
    XZ = np.hstack([fit.design.X, Z])
    se = np.sqrt(np.einsum("ij,jk,ik->i", XZ, C, XZ))
    out = fit.predict(interval="confidence", level=0.9)
    assert list(out.columns) == ["fit", "lwr", "upr"]
    np.testing.assert_allclose(out["fit"], fit.fitted(), rtol=1e-12)
    np.testing.assert_allclose((out["upr"] - out["lwr"]) / (2 * stats.norm.ppf(0.95)), se, rtol=1e-7)
    # population level: x' vcov x
    pop = fit.predict(re_form="~0", interval="confidence")
    X = fit.design.X
    se0 = np.sqrt(np.einsum("ij,jk,ik->i", X, fit.vcov.to_numpy(), X))
    np.testing.assert_allclose((pop["upr"] - pop["fit"]) / stats.norm.ppf(0.975), se0, rtol=1e-10)
    # on new data, the same numbers as for the fitted rows
    new = sleepstudy.iloc[[0, 15, 40]]
    np.testing.assert_allclose(fit.predict(new, interval="confidence", level=0.9).to_numpy(),
                               out.iloc[[0, 15, 40]].to_numpy(), rtol=1e-10)


def test_prediction_intervals_add_what_is_not_conditioned_on(fit, sleepstudy):
    s2 = fit.sigma**2
    S = fit.covariances()[0]
    new = pd.DataFrame({"Days": [3.0, 3.0], "Subject": ["308", "new"]})
    conf = fit.predict(new, interval="confidence", allow_new_levels=True)
    pred = fit.predict(new, interval="prediction", allow_new_levels=True)
    z = stats.norm.ppf(0.975)
    v_conf = ((conf["upr"] - conf["fit"]) / z) ** 2
    v_pred = ((pred["upr"] - pred["fit"]) / z) ** 2
    x = np.array([1.0, 3.0])
    assert v_pred.iloc[0] - v_conf.iloc[0] == pytest.approx(s2, rel=1e-10)  # a known subject: + sigma^2
    assert v_pred.iloc[1] - v_conf.iloc[1] == pytest.approx(s2 + x @ S @ x, rel=1e-10)  # a new one: + z'Sz
    assert pred["fit"].iloc[1] == pytest.approx(fit.predict(new.iloc[[1]], re_form="~0").iloc[0])
    with pytest.raises(hierlm.HierlmError, match="interval must be 'confidence' or 'prediction'"):
        fit.predict(interval="wide")
    with pytest.raises(hierlm.HierlmError, match="level must be a number between 0 and 1"):
        fit.predict(interval="prediction", level=95)


def test_prediction_intervals_cover_at_the_nominal_rate():
    """200 data sets from a known model (12 groups x 6 rows): a new row of an
    existing group and a row of a new group, 95% intervals.  Coverage within
    3.5 binomial SEs of 0.95 (the 1,000-replicate study:
    validation/prediction_coverage.py)."""
    from validation.prediction_coverage import coverage

    cov = coverage(200, seed=11)
    se = np.sqrt(0.95 * 0.05 / 200)
    for kind, c in cov.items():
        assert abs(c - 0.95) < 3.5 * se, (kind, c)


def test_intervals_refused_where_not_defined():
    cbpp = hierlm.datasets.load("cbpp")
    g = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp, family="binomial")
    with pytest.raises(hierlm.HierlmError, match="is for REML/ML fits of Gaussian models"):
        g.predict(interval="confidence")


def test_bootstrap_intervals_agree_with_the_normal_ones(fit):
    """method="boot": percentile intervals of 400 refits, for the population curve and for new
    subjects.  For sleepstudy (18 subjects, a well-determined theta) they agree with the
    normal-approximation intervals within 20% of the half-width (the Monte Carlo error of a
    2.5% quantile of 400 draws is ~10% of it)."""
    import warnings

    new = pd.DataFrame({"Days": [0.0, 5.0, 9.0], "Subject": ["new1", "new1", "new2"]})
    for interval, re_form in (("confidence", "~0"), ("prediction", None)):
        normal = fit.predict(new, re_form=re_form, interval=interval, allow_new_levels=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hierlm.ConvergenceWarning)
            boot = fit.predict(new, re_form=re_form, interval=interval, allow_new_levels=True, method="boot",
                               nsim=400, seed=3)
        np.testing.assert_allclose(boot["fit"], normal["fit"], rtol=1e-12)
        half = (normal["upr"] - normal["lwr"]).to_numpy() / 2
        for col in ("lwr", "upr"):
            assert np.all(np.abs(boot[col] - normal[col]).to_numpy() < 0.2 * half), (interval, col)


def test_bootstrap_intervals_reproducible_and_checked(fit):
    import warnings

    new = pd.DataFrame({"Days": [2.0], "Subject": ["309"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hierlm.ConvergenceWarning)
        a = fit.predict(new, re_form="~0", interval="confidence", method="boot", nsim=30, seed=7)
        b = fit.predict(new, re_form="~0", interval="confidence", method="boot", nsim=30, seed=7)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(hierlm.HierlmError, match="method must be 'normal' or 'boot'"):
        fit.predict(new, interval="confidence", method="bayes")
    with pytest.raises(hierlm.HierlmError, match="1 row\\(s\\) are predicted given a fitted group's"):
        fit.predict(new, interval="confidence", method="boot", nsim=10)


def test_boot_mer_use_u_keeps_the_modes(fit):
    """boot_mer(use_u=True) simulates given the conditional modes (lme4's use.u): a subject's
    refitted intercept mode then varies only with the residuals (SD ~11 here), not also with a
    new subject effect (SD ~22 with new random effects); 40 replicates estimate an SD to ~11%."""
    import warnings

    def mode(f):
        return [f.ranef()["Subject"].iloc[0, 0]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hierlm.ConvergenceWarning)
        given = hierlm.boot_mer(fit, mode, nsim=40, seed=1, use_u=True).t.to_numpy().ravel()
        fresh = hierlm.boot_mer(fit, mode, nsim=40, seed=1).t.to_numpy().ravel()
    assert given.std() < 0.75 * fresh.std()
