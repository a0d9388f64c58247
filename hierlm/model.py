"""The user-facing model: a formula on a data frame, fit by one of the engines.

``Model.fit(method)`` maps a method to one engine's entry point and hands it
the design; each engine validates its own options:

=================  ========================================  ==========================
method             engine                                    fit
=================  ========================================  ==========================
``"reml"``/``"ml"``  :func:`hierlm.lmm.fit_lmm` (Gaussian)      :class:`~hierlm.lmm.LMMFit`
``"laplace"``      :func:`hierlm.glmm.fit_glmm` (binomial,    :class:`~hierlm.glmm.GLMMFit`
                   Poisson; ``"ml"`` is an alias)
``"map"``          :func:`hierlm.bayes.fit_map`               :class:`~hierlm.bayes.MAPFit`
``"nuts"``         :func:`hierlm.bayes.fit_nuts`              :class:`~hierlm.bayes.BayesFit`
=================  ========================================  ==========================
"""

from __future__ import annotations

import logging

import pandas as pd

from .bayes import fit_imh, fit_map, fit_nuts
from .bayes.backend import MarginalPlan, build_pymc_model, plan_marginalization
from .bayes.sample import check_counts
from .design.build import build_design
from .design.distributed import dask_design, is_dask_frame
from .errors import HierlmError
from .family import FamilyError, make_family
from .glmm import fit_glmm
from .lmm import fit_lmm
from .lmm.deviance import check_memory, estimate_cost
from .plots import prior_predictive
from .priors import PriorSet

FAMILIES = ("gaussian", "binomial", "poisson", "negbinomial", "gamma", "student")
METHODS = ("reml", "ml", "laplace", "nuts", "map", "imh")


def _check_size(design) -> None:
    """The REML/ML engine's memory check on a design before its Gram blocks exist."""
    check_memory(design, estimate_cost(design, products=False))


class Model:
    """A mixed model: an lme4 formula on a data frame.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        A dask DataFrame stays on its cluster: the model's Gram blocks are
        made there by map-reduce (:mod:`hierlm.design.distributed`) and
        the REML/ML fit runs on them; the fit then has no rows here
        (``fitted()``, ``residuals()`` are refused; ``predict(newdata)``
        works, e.g. on each partition with ``ddf.map_partitions``).
    family : str
        ``"gaussian"`` (the linear mixed model), ``"binomial"`` or
        ``"poisson"`` (generalized linear mixed models, fit as lme4's
        ``glmer``).
    na_action : {"omit", "raise"}
        ``"omit"`` drops rows with missing values in the formula's columns
        (with a warning giving the count), as lme4's ``na.omit``.
    link : str, optional
        Link of a binomial (``logit``, ``probit``, ``cloglog``, ``cauchit``,
        ``log``) or Poisson (``log``, ``identity``, ``sqrt``) model; default
        the canonical one.
    weights, offset : str or array-like, optional
        Prior weights (GLMMs: e.g. the trials of a proportion response;
        linear mixed models: precision weights, residual variance
        ``sigma^2 / w``) and an offset, as a column name or one value per row.

    Examples
    --------
    >>> import hierlm
    >>> m = hierlm.Model("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    >>> fit = m.fit("reml")
    >>> round(fit.fixef["Days"], 3)
    10.467
    """

    def __init__(self, formula: str, data: pd.DataFrame, family: str = "gaussian", na_action: str = "omit",
                 link: str | None = None, weights=None, offset=None):
        if not isinstance(family, str):
            raise FamilyError(f"family must be a name ({', '.join(FAMILIES)}), not {type(family).__name__}")
        if family == "gaussian" and link not in (None, "identity"):
            raise FamilyError(f"link {link!r} is not available for the gaussian family (identity only)")
        self.formula = formula
        #: the family and link (a :class:`hierlm.family.Family`)
        self.family = make_family(family, link)
        family = self.family.name
        if is_dask_frame(data):
            if weights is not None or offset is not None:
                raise HierlmError("weights and offsets are not taken with a dask DataFrame")
            # the rows stay on the cluster: the design holds their Gram blocks
            self.design = dask_design(formula, data, na_action=na_action, family=family, check=_check_size)
            self.data = data
        else:
            self.design = build_design(formula, data, na_action=na_action, family=family, weights=weights,
                                       offset=offset)
            # a shallow copy: the caller sorting or editing their frame in place
            # afterwards must not change this model's rows (pandas copies on write)
            self.data = data.copy(deep=False) if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        self.data_name: str | None = None
        self._priors = None

    @property
    def priors(self):
        """The priors of Bayesian fits (a :class:`hierlm.priors.PriorSet`; print it to see them)."""
        if self.design.rows_free:
            raise HierlmError("priors are for Bayesian fits, which need the data's rows: a model on a dask "
                              "DataFrame is fit by 'reml' or 'ml'; for a Bayesian fit use a pandas DataFrame "
                              "(ddf.compute(), or a sample of it)")
        if self._priors is None:
            self._priors = PriorSet(self.design, family=self.family)
        return self._priors

    def set_prior(self, target: str, prior) -> "Model":
        """Set a prior for Bayesian fits; returns the model (for chaining).

        Parameters
        ----------
        target : str
            ``"fixed"`` (all coefficients but the intercept), a coefficient
            name (``"Days"``, ``"(Intercept)"``), ``"sd"`` (all random-effect
            SDs), ``"sd|Subject"`` (one grouping factor's SDs), ``"lkj"``,
            ``"sigma"``.
        prior : hierlm.priors.Prior or float
            e.g. ``hierlm.priors.Normal(0, 10)``; for ``"lkj"`` an eta.
        """
        self.priors.set(target, prior)
        return self

    def sample_prior_predictive(self, draws: int = 500, random_seed=None):
        """Draws from the priors and the prior predictive distribution.

        Returns
        -------
        arviz.InferenceData
            ``prior`` with the posterior's names (``fixef``, ``sigma``,
            ``sd_<group>``, ``corr_<group>``, ``ranef_<group>``; none of the
            PyMC model's internal variables), ``prior_predictive`` (``y``)
            and ``observed_data``.
        """
        import pymc as pm

        check_counts(draws, 0, 1)
        log = logging.getLogger("pymc")
        level = log.level
        log.setLevel(logging.WARNING)  # PyMC's "Sampling: [...]" line names its internal variables
        try:
            with build_pymc_model(self.design, self.priors, MarginalPlan("none"), self.family):
                idata = pm.sample_prior_predictive(draws=draws, random_seed=random_seed)
        finally:
            log.setLevel(level)
        names = ["fixef", "sigma"] + [f"{v}_{t}" for t in self.priors.term_names() for v in ("sd", "corr", "ranef")]
        idata.prior = idata.prior[[v for v in names if v in idata.prior]]
        return idata

    def plot_prior_predictive(self, draws: int = 100, *, kind: str = "kde", random_seed=None, ax=None,
                              figsize=None):
        """Prior predictive check: data sets simulated from the priors against
        the data (:func:`hierlm.plots.prior_predictive`)."""
        return prior_predictive(self, draws, kind=kind, random_seed=random_seed, ax=ax, figsize=figsize)

    def to_pymc(self, marginalize: bool | None = False):
        """The PyMC model of this model under its priors, to extend or to
        sample with any PyMC sampler.

        Parameters
        ----------
        marginalize : bool or None
            False (default): every effect sampled, non-centered with LKJ
            priors on the correlations (``z_<group>``, ``ranef_<group>``,
            ``sd_<group>``, ``corr_<group>``, ``fixef``, ``sigma``).  None:
            what ``fit("nuts", backend="pymc")`` samples, with the random
            effects integrated out where that pays
            (:func:`hierlm.bayes.backend.plan_marginalization`); such a model
            has no ``ranef_`` variables.

        Returns
        -------
        pymc.Model
        """
        plan = plan_marginalization(self.design, self.priors, marginalize, self.family)
        return build_pymc_model(self.design, self.priors, plan, self.family)

    def cost(self):
        """What a REML/ML fit of this model will cost, before paying it.

        Returns
        -------
        hierlm.lmm.deviance.Cost
            The engine, the size of its dense block, the products per
            evaluation, the peak memory of its matrices and a rough time per
            deviance evaluation (a fit takes 15 to 60).  ``print(model.cost())``
            gives one line.  A fit that would not fit in memory raises
            :class:`hierlm.TooLargeError` instead, before building anything.
        """
        if not self.family.is_gaussian:
            raise HierlmError("cost() estimates REML/ML fits of Gaussian models")
        return estimate_cost(self.design)

    def fit(self, method: str | None = None, **control):
        """Fit the model.

        Parameters
        ----------
        method : {"reml", "ml", "nuts", "map", "imh", "laplace"}, optional
            Restricted or full maximum likelihood (lme4's numbers); NUTS
            sampling of the posterior; the mode of the marginal posterior;
            or (Gaussian models) independence Metropolis-Hastings on the
            marginal posterior from its Laplace approximation, the fast
            exact sampler for big crossed designs (:mod:`hierlm.bayes.imh`).
            Default ``"reml"``.  Binomial and Poisson models are fit by
            maximum likelihood as lme4's ``glmer`` (``"laplace"``, the
            default, or its alias ``"ml"``; there is no REML): ``nAGQ=1``
            (Laplace), ``nAGQ=0`` or ``nAGQ`` up to 25 quadrature points for
            one scalar random-effects term; other options are those of
            :func:`hierlm.glmer`.
        **control
            For ``"reml"``/``"ml"``, optimizer settings: ``xtol_abs``,
            ``ftol_abs``, ``ftol_rel``, ``maxeval``, ``calc_derivs``,
            ``check_singular_tol``, ``check_conv_grad_tol``, ``start``,
            ``progress`` (None: a line on stderr every 10 s once a fit has
            run 10 s; True: every evaluation; False: none).
            For ``"nuts"``: ``draws=1000``, ``tune=1000``, ``chains=4``,
            ``sampler`` (``"nutpie"``, ``"pymc"``, ``"numpyro"``; default the
            first installed in that order), ``random_seed``,
            ``progressbar=True``, ``marginalize`` (default ``None``: integrate
            out all random effects when every term is on one grouping factor
            or there are at most 200; otherwise the fixed effects and the
            smallest terms, sampling the large ones; ``False`` samples
            everything),
            ``target_accept`` (default 0.8 on the engine, 0.9 for the PyMC
            model of a Gaussian model, 0.95 for other families), ``log_likelihood`` (default: when it
            fits in memory), ``backend`` (default: ``"engine"``, the exact
            marginal posterior of the variance parameters on the REML
            engine, sampled by nutpie with nothing compiled, for Gaussian
            models with Normal or flat fixed-effect priors whose terms after
            the first have at most ~150 random effects; ``"pymc"``: the
            PyMC model, see :meth:`to_pymc`), ``max_draws`` (default 5 x
            ``draws`` with nutpie: chains that fail the convergence check
            after ``draws`` go on until they pass; ``draws``: no extension).
            Binomial and Poisson models sample their
            random effects, starting the chains at the Laplace fit.
            For ``"imh"``: ``draws=1000``, ``tune=200``, ``chains=4``,
            ``df=20`` (the proposal's degrees of freedom), ``random_seed``,
            ``log_likelihood``.
            For ``"map"``: ``priors`` (``"flat"`` for maximum likelihood),
            ``reml=False`` (integrate beta out too; Gaussian models only:
            binomial and Poisson models use the Laplace-marginal posterior).

        Returns
        -------
        LMMFit, BayesFit or MAPFit
        """
        gaussian = self.family.is_gaussian
        if method is None:
            method = "reml" if gaussian else "laplace"
        key = str(method).lower()
        if key not in METHODS:
            raise HierlmError(f"method must be one of {METHODS}, not {method!r}")
        where = dict(model=self, data_name=self.data_name)
        if self.design.rows_free and key not in ("reml", "ml"):
            raise HierlmError(f"a model on a dask DataFrame is fit by 'reml' or 'ml' (from its Gram blocks, the "
                              f"rows staying on the cluster), not {method!r}; for {method!r} fit a pandas "
                              "DataFrame (ddf.compute(), or a sample of it)")
        offered = self.family.dist.fits  # each family's own list (hierlm.family.Distribution.fits)
        # 'laplace' on a Gaussian model and 'reml' on a GLMM get their own advice below
        if key not in offered and not (gaussian and key == "laplace") and not (key == "reml" and "laplace" in offered):
            raise HierlmError(f"{method!r} is not offered for {self.family.a_name} model; use one of "
                              f"{', '.join(map(repr, offered))}")
        if key == "nuts":
            return fit_nuts(self.design, self.family, self.priors, control, **where)
        if key == "imh":
            return fit_imh(self.design, self.family, self.priors, control, **where)
        if key == "map":
            unknown = set(control) - ({"priors", "reml"} if gaussian else {"priors"})
            if unknown:
                valid = "priors, reml" if gaussian else "priors (there is no REML for GLMMs)"
                raise HierlmError(f"unknown option(s) {sorted(unknown)} for MAP of {self.family.a_name} model; "
                                  f"valid: {valid}")
            priors = control.get("priors")
            return fit_map(self.design, self.family, self.priors if priors is None else priors,
                           reml=bool(control.get("reml", False)), **where)
        if gaussian:
            if key == "laplace":
                raise HierlmError("method 'laplace' is for generalized linear mixed models (binomial, Poisson, "
                                  "negbinomial, gamma); a gaussian model is fit by 'reml' or 'ml'")
            return fit_lmm(self.design, key == "reml", control, **where)
        if key == "reml":
            raise HierlmError(f"{self.family.a_name} model is fit by maximum likelihood (Laplace or adaptive "
                              "Gauss-Hermite quadrature, as glmer; there is no REML): use fit('laplace'), "
                              "not 'reml'")
        control = dict(control)
        nagq = control.pop("nAGQ", 1)
        return fit_glmm(self.design, self.family, nagq, control, **where)

    def __repr__(self) -> str:
        d = self.design
        return (f"Model({self.formula!r}, family={self.family.name!r}: n={d.n}, "
                f"{d.p} fixed effects, groups {d.groups()})")


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, na_action: str = "omit", weights=None, offset=None,
         **control):
    """Fit a linear mixed model by REML (default) or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        lme4 formula; ``offset(expr)`` terms add a known part to the linear
        predictor.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        A dask DataFrame is fit from Gram blocks made on its cluster (see
        :class:`Model`): the same numbers as the pandas DataFrame.
    reml : bool
        REML (True) or maximum likelihood (False).
    na_action : {"omit", "raise"}
    weights : str or array-like, optional
        Prior weights (a column name or one positive value per row): the
        residual variance of row i is ``sigma^2 / w_i`` (precision weights,
        e.g. the number of measurements a row averages), as lme4.
    offset : str or array-like, optional
        An offset as a column name or one value per row (as R's
        ``offset=``; it is not evaluated on ``newdata`` by ``predict``,
        where a formula ``offset()`` is).
    **control
        Optimizer settings, see :meth:`Model.fit`.

    Returns
    -------
    LMMFit
    """
    return Model(formula, data, na_action=na_action, weights=weights, offset=offset).fit(
        "reml" if reml else "ml", **control)


def glmer(formula: str, data: pd.DataFrame, family: str = "binomial", link: str | None = None, nAGQ: int = 1,
          weights=None, offset=None, na_action: str = "omit", **control):
    """Fit a generalized linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        lme4 formula.  A binomial response may be 0/1 (or a two-level
        factor, first level = failure), ``cbind(successes, failures)`` or a
        proportion with ``weights=`` the trials; ``offset(log(exposure))``
        terms are allowed in the fixed part.
    data : pandas.DataFrame
    family : {"binomial", "poisson", "negbinomial", "gamma", "beta", "ordinal"}
        R's spellings are accepted (``Gamma``, ``nbinom2``, ``beta_family``,
        ``cumulative``).  The negative binomial's shape is estimated as lme4's
        ``glmer.nb`` does, the beta's precision as glmmTMB, an ordinal
        model's thresholds as ordinal's ``clmm``.
    link : str, optional
        Binomial: ``logit`` (default), ``probit``, ``cloglog``, ``cauchit``,
        ``log``; Poisson: ``log`` (default), ``identity``, ``sqrt``;
        negative binomial: ``log`` (default), ``sqrt``, ``identity``; Gamma:
        ``inverse`` (default), ``log``, ``identity``; beta: ``logit``
        (default), ``probit``, ``cloglog``; ordinal: ``logit`` (default),
        ``probit`` (the latent variable's distribution).
    nAGQ : int
        1: Laplace approximation (default); 0: the faster first stage only
        (beta estimated inside PIRLS); 2 to 25: adaptive Gauss-Hermite
        quadrature, for a single scalar random-effects term.
    weights, offset : str or array-like, optional
        Prior weights and an offset: a column name or one value per row.
    na_action : {"omit", "raise"}
    **control
        ``start`` (theta vector or ``{"theta": ..., "fixef": ...}``),
        ``calc_derivs`` (True), ``use_hessian`` (None: as lme4),
        ``nAGQ0initStep`` (True), ``xtol_abs``, ``ftol_abs``, ``maxeval``,
        ``tol_pirls``, ``maxit``, ``boundary_tol``, ``check_singular_tol``,
        ``check_conv_grad_tol``, ``check_conv_hess_tol``.

    Returns
    -------
    hierlm.glmm.GLMMFit

    Examples
    --------
    >>> import hierlm
    >>> cbpp = hierlm.datasets.load("cbpp")
    >>> fit = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    >>> round(fit.fixef["period2"], 3)
    -0.992
    """
    if family == "gaussian":
        raise HierlmError("glmer fits binomial, Poisson, negative binomial and Gamma models; for "
                          "family='gaussian' use hierlm.lmer")
    model = Model(formula, data, family=family, na_action=na_action, link=link, weights=weights, offset=offset)
    return model.fit("laplace", nAGQ=nAGQ, **control)
