r"""The exact marginal posterior of a Gaussian mixed model, on the REML engine.

Model: ``y = X beta + Z b + e``, ``b = Lambda_theta u``, ``u ~ N(0, sigma^2 I)``,
``e ~ N(0, sigma^2 I)`` and ``beta_j ~ N(mu_j, s_j^2)`` (or flat).  Given
(theta, sigma) both b and beta are Gaussian, so they integrate out exactly
and NUTS samples only the variance parameters: ``log sigma``, the log SD of
every random-effect column and, per term with correlations, Stan's free
reals of the correlation matrix's Cholesky factor (canonical partial
correlations ``tanh(w)``).

The REML engine's algebra gives all of it.  With ``S = Lambda~' A Lambda~ +
diag(I_q, 0)`` (``A = [Z X y]'[Z X y]``, :mod:`hierlm.lmm.deviance`) and
``V = Z Lambda Lambda' Z' + I``: ``log|V| = log|S_ZZ|`` and the Schur
complement of the Z block is ``[X y]' V^{-1} [X y]`` = (``S_xx``, ``s_xy``,
``s_yy``).  As in the engine, the first term (the factor with the most
levels) is eliminated level by level (``M_i = T1' A11_i T1 + I``), and the
rest (the other terms, X and y: R columns) is factored densely, so a
gradient costs ``O(levels p1 R^2 + R^3)``, whatever n is.

With the prior precision ``P0 = diag(1/s_j^2)`` (0 for flat coefficients),
``H = P0 + S_xx / sigma^2``, ``h = P0 mu + s_xy / sigma^2``, ``beta^ = H^{-1} h``:

    -2 log p(y | theta, sigma) = n log(2 pi sigma^2) + log|V| + log|H|
                                 + s_yy / sigma^2 + mu' P0 mu - h' beta^
                                 + sum_normal log(2 pi s_j^2) - p log(2 pi)

(all flat: the REML likelihood ``(n - p) log(2 pi sigma^2) + log|V| +
log|R_X|^2 + r^2 / sigma^2``).

**Gradient.**  With ``D`` the right-hand side, ``dD/dS`` is
``blockdiag(S_ZZ^{-1}, 0) + K G K'``, ``K = [-S_ZZ^{-1} S_Z,xy; I]`` and
``G = dD/d[X y]'V^{-1}[X y] = ([beta^; -1][beta^; -1]' + blockdiag(H^{-1}, 0)) / sigma^2``;
then ``dD/dtheta_t = 2 tr(dD/dS  Lambda~' A dLambda~/dtheta_t)`` and
``dD/dsigma^2 = n / sigma^2 - tr(H^{-1} S_xx) / sigma^4 - rss(beta^) / sigma^4``.
By the blocked inverse, the blocks of ``dD/dS`` that this trace reads come
from the rest's ``W_r = dD/dS^`` (``S^`` its Schur complement) and the
first term's ``M_i^{-1}`` (``marginal_logp`` in ``hierlm/bayes/_kernels.c``).  The
chain rule takes these to the sampled coordinates.

**Draws.**  Per posterior draw, ``beta ~ N(beta^, H^{-1})``, then the rest's
``u_r | beta`` from the reduced factor, then level by level
``u_1i | u_r, beta ~ N(M_i^{-1} T1' Z1_i'(y - X beta - Z_r b_r), sigma^2 M_i^{-1})``,
``b = Lambda u``.

The density, its gradient and the draws are C compiled when the package is
installed (:mod:`hierlm.bayes.kernels`), reading the model from one buffer
(``EnginePosterior._buf``); nutpie calls the density as a C callback, so the
sampler runs without Python in its loop and nothing is compiled at run
time.

Used when the rest has at most ``ENGINE_MAX_REST`` columns: any number of
levels of the first term (sleepstudy, radon-like data), crossed and nested
designs with a few dozen levels in the other terms (Penicillin, Pastes).
Larger crossed designs (InstEval) keep the PyMC model with part of b
sampled (:func:`hierlm.bayes.backend.plan_marginalization`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..lmm import fit_lmm
from ..lmm.deviance import gram_of, log_weights
from ..params import corr_cholesky_free

_LOG2PI = np.log(2.0 * np.pi)


# largest rest block (the other terms' random effects, X and y) factored
# densely at each gradient, and largest first-term rows of it kept dense
ENGINE_MAX_REST = 150
ENGINE_MAX_ENTRIES = 2e7


def engine_supported(design, family, priors) -> bool:
    """True when :class:`EnginePosterior` applies: a Gaussian model (prior
    weights and offsets included), Normal or flat fixed-effect priors, and at most
    ``ENGINE_MAX_REST`` columns once the first term is eliminated level by
    level (the other terms' random effects, X and y): any number of levels
    of the first term (sleepstudy, radon-like data), crossed and nested
    designs with a few dozen levels in the other terms (Penicillin, Pastes)."""
    if not family.is_gaussian or design.rows_free:
        return False
    if any(priors.fixed[n].family not in ("Normal", "Flat") for n in design.xnames):
        return False
    r1 = design.remats[0]
    rest = sum(r.q for r in design.remats[1:]) + design.p + 1
    return rest <= ENGINE_MAX_REST and r1.q * rest <= ENGINE_MAX_ENTRIES


def _kernels():
    """The compiled kernels' module, loaded with the first engine posterior (or
    unpickling of one), not at import."""
    from . import kernels

    return kernels


class EnginePosterior:
    """Log density and gradient of the marginal posterior (module docstring).

    Parameters
    ----------
    design : Design
    priors : hierlm.priors.PriorSet

    Attributes
    ----------
    size : int
        Length of the unconstrained vector: ``log sigma``, then per term
        ``log sd`` (p_k values) and the correlation's free reals.
    """

    def __init__(self, design, priors):
        self.design, self.priors = design, priors
        g = gram_of(design, dense=False)
        r1 = design.remats[0]
        self.l1, self.p1 = r1.nlevels, r1.p
        self.qr, self.p, self.n = g.qr, g.p, g.n
        R = self.R = g.qr + g.p + 1
        # the first term's blocks, its rows of the rest (dense: R is small),
        # and the rest's own block (symmetric)
        A1r = g.A1r.toarray().reshape(self.l1, self.p1, R)
        Arr = np.empty((R, R))
        Arr[:g.qr, :g.qr] = g.ZrZr.toarray()
        Arr[:g.qr, g.qr:] = g.ZrXY
        Arr[g.qr:, :g.qr] = g.ZrXY.T
        Arr[g.qr:, g.qr:] = g.XY
        names = list(design.xnames)
        normal = np.array([priors.fixed[n].family == "Normal" for n in names], dtype=bool)
        s0 = np.array([priors.fixed[n].params["sigma"] if nm else 1.0 for n, nm in zip(names, normal)])
        mu0 = np.array([priors.fixed[n].params["mu"] if nm else 0.0 for n, nm in zip(names, normal)])
        P0 = np.where(normal, 1.0 / s0**2, 0.0)
        # the blocks are those of the rows scaled by sqrt(w) (y less the offset): the
        # density of the weighted model adds sum(log w) / 2
        const = (self.n * _LOG2PI + float(np.sum(np.log(2 * np.pi * s0[normal] ** 2))) - self.p * _LOG2PI
                 - log_weights(design))
        self.terms = priors.term_names()
        pos, self.layout = 1, []
        for r in design.remats:
            nc = r.p * (r.p - 1) // 2
            self.layout.append((slice(pos, pos + r.p), slice(pos + r.p, pos + r.p + nc)))
            pos += r.p + nc
        self.size = pos
        offs = np.cumsum([0] + [r.q for r in design.remats[1:]])
        self.offsets = offs
        terms = np.array([(r.p, r.nlevels, 0 if k == 0 else offs[k - 1], self.layout[k][0].start)
                          for k, r in enumerate(design.remats)], dtype=float)
        kernels = self._k = _kernels()
        prior_rows = np.array([kernels.pack_prior(priors.sigma)] + [kernels.pack_prior(priors.sd[t])
                                                                     for t in self.terms])
        # the model as the one buffer the kernels and nutpie's callbacks read (kept once:
        # not beside it as separate arrays); its layout is in hierlm/bayes/_kernels.c
        head = np.array([0.0, self.l1, self.p1, R, self.qr, len(terms), float(self.n), const,
                         float(priors.lkj.params["eta"]), self.size])
        self._buf = np.concatenate([head, np.asarray(g.A11, dtype=float).ravel(), A1r.ravel(), Arr.ravel(),
                                    terms.ravel(), prior_rows.ravel(), P0, mu0])
        self._buf[0] = self._buf.size

    # ---- parameters ----------------------------------------------------------

    def __getstate__(self) -> dict:
        # a fit is pickled without the kernels' module, which is loaded again on unpickling
        return {k: v for k, v in self.__dict__.items() if k != "_k"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._k = _kernels()
    def natural(self, phi: np.ndarray):
        """phi -> (sigma, [sd_k], [L_k correlation Cholesky factors])."""
        sigma, sds, Ls = self.natural_many(np.asarray(phi, dtype=float)[None])
        return float(sigma[0]), [x[0] for x in sds], [x[0] for x in Ls]

    def natural_many(self, phis: np.ndarray):
        """Rows of phis -> (sigma (S,), [sd_k (S, p_k)], [L_k (S, p_k, p_k)])."""
        sds, Ls = [], []
        for (sd_sl, c_sl), r in zip(self.layout, self.design.remats):
            sds.append(np.exp(phis[:, sd_sl]))
            Ls.append(self._k.corr_cholesky_many(np.ascontiguousarray(phis[:, c_sl]), r.p) if r.p > 1
                      else np.ones((phis.shape[0], 1, 1)))
        return np.exp(phis[:, 0]), sds, Ls

    def free(self, sigma: float, covs: list[np.ndarray], sd_floor: float = 0.0) -> np.ndarray:
        """The unconstrained vector of sigma and each term's covariance
        matrix; SDs below ``sd_floor * sigma`` are raised to it and
        correlations kept inside (-1, 1) (a singular fit's start)."""
        phi = np.empty(self.size)
        phi[0] = np.log(sigma)
        for (sd_sl, c_sl), S in zip(self.layout, covs):
            sd = np.sqrt(np.maximum(np.diag(S), (sd_floor * sigma) ** 2))
            phi[sd_sl] = np.log(sd)
            if S.shape[0] > 1:
                C = S / np.outer(sd, sd)
                np.fill_diagonal(C, 1.0)
                try:
                    Lc = np.linalg.cholesky(0.98 * C + 0.02 * np.eye(S.shape[0]))
                except np.linalg.LinAlgError:
                    Lc = np.eye(S.shape[0])
                phi[c_sl] = corr_cholesky_free(Lc)
        return phi

    def start(self) -> np.ndarray:
        """Where the chains start (jittered by the sampler): the REML estimates,
        SDs at least 5% of sigma."""
        fit = fit_lmm(self.design, True, {"calc_derivs": False})
        return self.free(fit.sigma, fit.covariances(), sd_floor=0.05)

    # ---- density -----------------------------------------------------------------
    def logp(self, phi: np.ndarray) -> float:
        """Log posterior density of phi (up to the LKJ normalizing constant)."""
        return self.logp_grad(phi, grad=False)[0]

    def logp_grad(self, phi: np.ndarray, grad: bool = True):
        """(log posterior density, its gradient) at phi; ``(-inf, 0)`` where
        a factorization fails (an extreme point)."""
        val, g, ok = self._k.marginal_logp(self._buf, phi, grad)
        if not (ok and np.isfinite(val) and (not grad or np.all(np.isfinite(g)))):
            return -np.inf, np.zeros(self.size)
        return val, g

    # ---- exact draws of what was integrated out ---------------------------------
    def draw(self, phis: np.ndarray, rng):
        """Exact draws of beta and b for each row of ``phis`` (S, size).

        Returns ``(beta (S, p), [b_k (S, levels_k, p_k)])``.
        """
        phis = np.ascontiguousarray(phis, dtype=float)
        S = phis.shape[0]
        Zb = rng.standard_normal((S, self.p))
        Zr = rng.standard_normal((S, self.qr))
        Z1 = rng.standard_normal((S, self.l1, self.p1))
        beta, b_rest, b_first, good = self._k.draw_effects(self._buf, phis, Zb, Zr, Z1)
        if not good.all():  # pragma: no cover  (the sampler only keeps points where the factor exists)
            raise ModelError(f"{int((~good).sum())} posterior draws have no Cholesky factor")
        out = [b_first]
        for k, r in enumerate(self.design.remats[1:]):
            out.append(b_rest[:, self.offsets[k]: self.offsets[k + 1]].reshape(S, r.nlevels, r.p))
        return beta, out


def nutpie_model(post: EnginePosterior, initial_point):
    """A nutpie model of the marginal posterior, sampled through the compiled
    callbacks; its draws are the unconstrained vector ``phi``.

    ``initial_point(seed)`` gives each chain's start.  Built on nutpie's
    model class for compiled callbacks (``CompiledPyMCModel``; the bayes
    extra pins the nutpie versions whose fields this fills).
    """
    from nutpie.compile_pymc import CompiledPyMCModel

    size = post.size
    logp_cb, expand_cb = post._k.callbacks()
    return CompiledPyMCModel(
        _n_dim=size, dims={}, _coords={}, _shapes={"phi": (size,)},
        compiled_logp_func=logp_cb, compiled_expand_func=expand_cb,
        initial_point_func=initial_point, shared_data={}, user_data=post._buf, n_expanded=size,
        shape_info=(["phi"], [slice(0, size)], [(size,)]), logp_func=None, expand_func=None,
    )
