r"""PyMC models of a mixed model's design (the only module that imports PyMC).

Two parameterizations of the same model,
``y = X beta + sum_k Z_k b_k + e``, ``b_k,i ~ N(0, Sigma_k)``, ``e ~ N(0, sigma^2)``:

* **b sampled** (``marginalize=False``): ``b_k,i = L_k z_k,i``, ``z ~ N(0, 1)``
  (non-centered), ``L_k = diag(sd_k) Omega_k`` with an LKJ prior on the
  correlation factor ``Omega_k`` (``pm.LKJCholeskyCov``); scalar and ``||``
  terms get an SD each.  Terms with many observations per level are
  sampled centered instead (:func:`centered_term`).
* **marginalized** (Gaussian, every term on one grouping factor): b is
  integrated out exactly.  For level i with ``A_i = Z_i'Z_i``,
  ``w_i = Z_i'(y_i - X_i beta)`` and ``K_i = sigma^2 I + L' A_i L``,

      -2 log p(y | beta, sigma, L) = n log(2 pi sigma^2) + sum_i log|K_i| - l P log sigma^2
                                     + (RSS(beta) - sum_i |C_i^{-1} L' w_i|^2) / sigma^2,

  ``C_i`` the Cholesky factor of ``K_i`` (Woodbury).  Only sufficient
  statistics (``A_i``, ``Z_i'y``, ``Z_i'X``, ``X'X``, ``X'y``, ``y'y``) enter,
  so a gradient costs O(levels P^3), independent of n.  It is written in
  PyTensor, so every backend compiles it (C for PyMC, numba for nutpie, JAX
  for numpyro).  The random effects are then drawn exactly from
  ``b_i | y, beta, sigma, L ~ N(L K_i^{-1} L' w_i, sigma^2 L K_i^{-1} L')`` for each
  draw (:func:`draw_ranef`).
* **marginalized, crossed or nested** (at most ``DENSE_MARGINAL_MAX_Q``
  random effects in all): the same with one dense q x q factor of
  ``Lambda' Z'Z Lambda + sigma^2 I`` (:func:`marginal_loglik_dense`,
  :func:`draw_ranef_dense`).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..priors import Prior, PriorSet

# PyTensor's C backend warns at import when it finds no BLAS to link; nutpie
# (the default sampler) compiles with numba and never uses that path
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


def pm_dist(prior: Prior, name: str | None, **kw):
    """A PyMC distribution (named, or ``.dist`` when ``name`` is None)."""
    import pymc as pm

    p = prior.params
    fam = prior.family
    if fam == "Flat":
        cls, args = (pm.HalfFlat if kw.pop("positive", False) else pm.Flat), {}
    elif fam == "Normal":
        cls, args = pm.Normal, {"mu": p["mu"], "sigma": p["sigma"]}
    elif fam == "StudentT":
        cls, args = pm.StudentT, {"nu": p["nu"], "mu": p["mu"], "sigma": p["sigma"]}
    elif fam == "HalfNormal":
        cls, args = pm.HalfNormal, {"sigma": p["sigma"]}
    elif fam == "HalfStudentT":
        cls, args = pm.HalfStudentT, {"nu": p["nu"], "sigma": p["sigma"]}
    elif fam == "HalfCauchy":
        cls, args = pm.HalfCauchy, {"beta": p["beta"]}
    elif fam == "Exponential":
        cls, args = pm.Exponential, {"lam": p["lam"]}
    else:  # pragma: no cover  (LKJ is handled by the caller)
        raise ValueError(fam)
    kw.pop("positive", None)
    return cls.dist(**args, **kw) if name is None else cls(name, **args, **kw)


def coords_of(design, priors: PriorSet) -> dict:
    coords = {"fixed": list(design.xnames), "obs_id": np.arange(design.n)}
    for t, r in zip(priors.term_names(), design.remats):
        coords[f"{r.group}__level"] = list(r.levels)
        coords[f"{t}__term"] = list(r.cnames)
        coords[f"{t}__term_bis"] = list(r.cnames)
    return coords


def _fixed_effects(design, priors: PriorSet):
    """beta as one vector 'fixef' (dims 'fixed'), from per-coefficient priors."""
    import pymc as pm
    import pytensor.tensor as pt

    names = list(design.xnames)
    fams = {priors.fixed[n].family for n in names}
    if len(fams) == 1 and fams != {"Flat"}:
        fam = fams.pop()
        keys = priors.fixed[names[0]].params.keys()
        params = {k: np.array([priors.fixed[n].params[k] for n in names]) for k in keys}
        return pm_dist(Prior(fam, params), "fixef", dims="fixed")
    parts = [pm_dist(priors.fixed[n], f"b_{n}") for n in names]
    return pm.Deterministic("fixef", pt.stack(parts), dims="fixed")


def _term_scale(t, r, priors: PriorSet):
    """(sd vector, Cholesky factor L or None) of one term."""
    import pymc as pm
    import pytensor.tensor as pt

    prior = priors.sd[t]
    if r.p == 1:
        sd = pm_dist(prior, f"sd_{t}", positive=True, dims=f"{t}__term", shape=1)
        return sd, None
    if r.p == 2:
        # LKJ(eta) on a 2 x 2 correlation matrix is (rho + 1) / 2 ~ Beta(eta, eta):
        # the same prior with a much smaller graph (faster to compile)
        eta = priors.lkj.params["eta"]
        sd = pm_dist(prior, f"sd_{t}", positive=True, dims=f"{t}__term", shape=2)
        rho = 2.0 * pm.Beta(f"corr01_{t}", eta, eta) - 1.0
        corr = pt.stack([pt.stack([1.0, rho]), pt.stack([rho, 1.0])])
        pm.Deterministic(f"corr_{t}", corr, dims=(f"{t}__term", f"{t}__term_bis"))
        chol = pt.stack([pt.stack([sd[0], 0.0]), pt.stack([sd[1] * rho, sd[1] * pt.sqrt(1.0 - rho**2)])])
        return sd, chol
    chol, corr, sds = pm.LKJCholeskyCov(
        f"chol_{t}", n=r.p, eta=priors.lkj.params["eta"],
        sd_dist=pm_dist(prior, None, positive=True, shape=r.p), compute_corr=True,
    )
    pm.Deterministic(f"sd_{t}", sds, dims=f"{t}__term")
    pm.Deterministic(f"corr_{t}", corr, dims=(f"{t}__term", f"{t}__term_bis"))
    return sds, chol


# observations per level from which a term is sampled centered (b ~ N(0, Sigma))
# rather than non-centered (b = L z): with this much data per level the
# posterior of each b is dominated by its data (Betancourt & Girolami 2015).
CENTERED_MIN_OBS_PER_LEVEL = 20


def centered_term(r, n: int) -> bool:
    return n / r.nlevels >= CENTERED_MIN_OBS_PER_LEVEL


# largest number of random effects for which crossed or nested terms are
# integrated out with one dense q x q Cholesky factor per gradient
DENSE_MARGINAL_MAX_Q = 200


def can_marginalize(design) -> bool:
    """Gaussian designs whose random effects the marginalized path handles."""
    return one_grouping_factor(design) or sum(r.q for r in design.remats) <= DENSE_MARGINAL_MAX_Q


def one_grouping_factor(design) -> bool:
    """True when every random-effects term is on the same grouping factor."""
    return len({r.group for r in design.remats}) == 1


def build_pymc_model(design, priors: PriorSet, marginalize: bool):
    """The PyMC model of ``design`` under ``priors``.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm
    import pytensor.tensor as pt

    terms = priors.term_names()
    with pm.Model(coords=coords_of(design, priors)) as model:
        beta = _fixed_effects(design, priors)
        sigma = pm_dist(priors.sigma, "sigma", positive=True)
        scales = [_term_scale(t, r, priors) for t, r in zip(terms, design.remats)]
        if marginalize and one_grouping_factor(design):
            L = _joint_cholesky(scales)
            pm.Potential("marginal_loglik", marginal_loglik(beta, sigma, L, sufficient_stats(design)))
        elif marginalize:
            Lb = _dense_lambda(scales, design.remats)
            pm.Potential("marginal_loglik", marginal_loglik_dense(beta, sigma, Lb, dense_stats(design)))
        else:
            mu = pt.as_tensor_variable(design.X) @ beta
            for t, r, (sd, chol) in zip(terms, design.remats, scales):
                dims = (f"{r.group}__level", f"{t}__term")
                if centered_term(r, design.n):
                    # many observations per level: the likelihood pins each b
                    # down and the centered form mixes better (no funnel)
                    if chol is None:
                        b = pm.Normal(f"ranef_{t}", 0.0, sd, dims=dims)
                    else:
                        b = pm.MvNormal(f"ranef_{t}", mu=pt.zeros(r.p), chol=chol, dims=dims)
                else:
                    z = pm.Normal(f"z_{t}", 0.0, 1.0, dims=dims)
                    b = z * sd if chol is None else z @ chol.T
                    b = pm.Deterministic(f"ranef_{t}", b, dims=dims)
                mu = mu + (pt.as_tensor_variable(r.Xt) * b[r.codes]).sum(axis=1)
            pm.Normal("y", mu=mu, sigma=sigma, observed=design.y, dims="obs_id")
    return model


def _joint_cholesky(scales):
    """Block-diagonal Cholesky factor of the covariance of all terms on the factor."""
    import pytensor.tensor as pt

    blocks = [pt.diag(sd) if chol is None else chol for sd, chol in scales]
    if len(blocks) == 1:
        return blocks[0]
    return pt.linalg.block_diag(*blocks)


def sufficient_stats(design) -> dict:
    """Per-level Z'Z, Z'y, Z'X and global X'X, X'y, y'y for one grouping factor."""
    remats = design.remats
    codes = remats[0].codes
    Zt = np.column_stack([r.Xt for r in remats])  # n x P, all terms on the factor
    lv = remats[0].nlevels
    P = Zt.shape[1]
    X, y = design.X, design.y
    A = np.zeros((lv, P, P))
    Zy = np.zeros((lv, P))
    ZX = np.zeros((lv, P, X.shape[1]))
    for a in range(P):
        Zy[:, a] = np.bincount(codes, weights=Zt[:, a] * y, minlength=lv)
        for b in range(P):
            A[:, a, b] = np.bincount(codes, weights=Zt[:, a] * Zt[:, b], minlength=lv)
        for j in range(X.shape[1]):
            ZX[:, a, j] = np.bincount(codes, weights=Zt[:, a] * X[:, j], minlength=lv)
    return {"A": A, "Zy": Zy, "ZX": ZX, "XtX": X.T @ X, "Xty": X.T @ y, "yty": float(y @ y),
            "n": design.n, "levels": lv, "P": P}


def marginal_loglik(beta, sigma, L, st: dict):
    """log p(y | beta, sigma, L), random effects integrated out (module docstring)."""
    import pytensor.tensor as pt

    s2 = sigma**2
    P, lv, n = st["P"], st["levels"], st["n"]
    rss = st["yty"] - 2.0 * pt.dot(beta, st["Xty"]) + pt.dot(beta, pt.dot(st["XtX"], beta))
    w = st["Zy"] - pt.dot(st["ZX"].reshape(lv * P, -1), beta).reshape((lv, P))  # Z_i'(y_i - X_i beta)
    A = st["A"]
    if P == 1:
        l2 = L[0, 0] ** 2
        k = A[:, 0, 0] * l2 + s2
        logdet = pt.log(k).sum()
        quad = (l2 * w[:, 0] ** 2 / k).sum()
    elif P == 2:
        # K_i = L' A_i L + s2 I and v_i = L' w_i written out for 2 x 2 blocks:
        # a few elementwise ops, quick to compile for every backend
        l00, l10, l11 = L[0, 0], L[1, 0], L[1, 1]
        a, b, c = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
        k00 = a * l00**2 + 2.0 * b * l00 * l10 + c * l10**2 + s2
        k01 = l11 * (b * l00 + c * l10)
        k11 = c * l11**2 + s2
        v0 = l00 * w[:, 0] + l10 * w[:, 1]
        v1 = l11 * w[:, 1]
        det = k00 * k11 - k01**2
        logdet = pt.log(det).sum()
        quad = ((k11 * v0**2 - 2.0 * k01 * v0 * v1 + k00 * v1**2) / det).sum()
    else:
        LtA = pt.tensordot(L.T, pt.as_tensor_variable(A), axes=[[1], [1]]).dimshuffle(1, 0, 2)  # L'A_i
        K = pt.tensordot(LtA, L, axes=[[2], [0]]) + s2 * pt.eye(P)
        C = pt.linalg.cholesky(K)
        logdet = 2.0 * pt.log(pt.diagonal(C, axis1=1, axis2=2)).sum()
        u = pt.linalg.solve_triangular(C, pt.dot(w, L)[:, :, None], lower=True)
        quad = (u**2).sum()
    return -0.5 * (n * np.log(2 * np.pi) + (n - lv * P) * pt.log(s2) + logdet + (rss - quad) / s2)


def draw_ranef(beta: np.ndarray, sigma: np.ndarray, L: np.ndarray, st: dict, rng) -> np.ndarray:
    """Exact draws of b | y, beta, sigma, L for every posterior draw.

    beta (S, p), sigma (S,), L (S, P, P) -> b (S, levels, P).
    """
    P = st["P"]
    w = st["Zy"][None] - np.einsum("lak,sk->sla", st["ZX"], beta)  # (S, l, P)
    LtAL = np.einsum("sba,lbc,scd->slad", L, st["A"], L)
    K = LtAL + (sigma**2)[:, None, None, None] * np.eye(P)
    C = np.linalg.cholesky(K)  # K = C C'
    Ltw = np.einsum("sba,slb->sla", L, w)
    mean_u = np.linalg.solve(K, Ltw[..., None])[..., 0]
    # u = mean + sigma * C^{-T} z has covariance sigma^2 K^{-1}
    z = rng.standard_normal(mean_u.shape)
    dev = np.linalg.solve(np.swapaxes(C, -1, -2), z[..., None])[..., 0]
    u = mean_u + sigma[:, None, None] * dev
    return np.einsum("sab,slb->sla", L, u)


# ---- crossed and nested terms: one dense factor -------------------------------------
def dense_stats(design) -> dict:
    """Z'Z, Z'y, Z'X (Z of all terms, q columns) and X'X, X'y, y'y."""
    import scipy.sparse as sp

    Z = sp.hstack([r.sparse() for r in design.remats], format="csr")
    X, y = design.X, design.y
    return {"ZtZ": (Z.T @ Z).toarray(), "Zy": Z.T @ y, "ZX": np.asarray(Z.T @ X), "XtX": X.T @ X,
            "Xty": X.T @ y, "yty": float(y @ y), "n": design.n, "q": Z.shape[1]}


def _dense_lambda(scales, remats):
    """Lambda = blockdiag_k(I_levels (x) L_k) as a dense q x q tensor."""
    import pytensor.tensor as pt

    blocks = []
    for (sd, chol), r in zip(scales, remats):
        if chol is None:
            blocks.append(pt.diag(pt.repeat(sd, r.nlevels)))
        else:
            blocks.append(pt.linalg.kron(pt.eye(r.nlevels), chol))
    return blocks[0] if len(blocks) == 1 else pt.linalg.block_diag(*blocks)


def marginal_loglik_dense(beta, sigma, Lb, st: dict):
    """log p(y | beta, sigma, Lambda) with all of b integrated out:
    ``K = Lambda' Z'Z Lambda + sigma^2 I_q`` factored densely (Woodbury)."""
    import pytensor.tensor as pt

    s2 = sigma**2
    n, q = st["n"], st["q"]
    rss = st["yty"] - 2.0 * pt.dot(beta, st["Xty"]) + pt.dot(beta, pt.dot(st["XtX"], beta))
    v = pt.dot(Lb.T, st["Zy"] - pt.dot(st["ZX"], beta))
    K = pt.dot(Lb.T, pt.dot(st["ZtZ"], Lb)) + s2 * pt.eye(q)
    C = pt.linalg.cholesky(K)
    u = pt.linalg.solve_triangular(C, v, lower=True)
    logdet = 2.0 * pt.log(pt.diag(C)).sum()
    return -0.5 * (n * np.log(2 * np.pi) + (n - q) * pt.log(s2) + logdet + (rss - pt.dot(u, u)) / s2)


def draw_ranef_dense(beta, sigma, Lb, st: dict, rng, chunk: int = 256) -> np.ndarray:
    """Exact draws of all of b for each posterior draw: beta (S, p), sigma (S,),
    Lb (S, q, q) -> b (S, q)."""
    S, q = Lb.shape[0], st["q"]
    out = np.empty((S, q))
    for a in range(0, S, chunk):
        L = Lb[a: a + chunk]
        w = st["Zy"][None] - beta[a: a + chunk] @ st["ZX"].T
        K = np.swapaxes(L, 1, 2) @ st["ZtZ"] @ L + (sigma[a: a + chunk] ** 2)[:, None, None] * np.eye(q)
        C = np.linalg.cholesky(K)
        v = np.einsum("sba,sb->sa", L, w)
        mean = np.linalg.solve(K, v[..., None])[..., 0]
        z = rng.standard_normal(mean.shape)
        u = mean + sigma[a: a + chunk, None] * np.linalg.solve(np.swapaxes(C, 1, 2), z[..., None])[..., 0]
        out[a: a + chunk] = np.einsum("sab,sb->sa", L, u)
    return out
