r"""The exact marginal posterior of a Gaussian mixed model, on the REML engine.

Model: ``y = X beta + Z b + e``, ``b = Lambda_theta u``, ``u ~ N(0, sigma^2 I)``,
``e ~ N(0, sigma^2 I)`` and ``beta_j ~ N(mu_j, s_j^2)`` (or flat).  Given
(theta, sigma) both b and beta are Gaussian, so they integrate out exactly
and NUTS samples only the variance parameters: ``log sigma``, the log SD of
every random-effect column and, per term with correlations, Stan's free
reals of the correlation matrix's Cholesky factor (canonical partial
correlations ``tanh(w)``).

The REML engine's factor ``L`` of ``S = Lambda~' A Lambda~ + diag(I_q, 0)``
(``A = [Z X y]'[Z X y]``, :mod:`hierlm.lmm.deviance`) gives all of it: with
``V = Z Lambda Lambda' Z' + I``,

* ``log|V| = log|L_Z|^2``;
* the Schur complement of the Z block, ``L_b L_b'`` (``L_b`` the X/y block
  of L), is ``[X y]' V^{-1} [X y]`` = (``S_xx``, ``s_xy``, ``s_yy``).

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
``dD/dsigma^2 = n / sigma^2 - tr(H^{-1} S_xx) / sigma^4 - rss(beta^) / sigma^4``
(Fisher's identity in matrix form; each factor is one the engine already
has).  The chain rule takes these to the sampled coordinates.

**Draws.**  Per posterior draw, ``beta ~ N(beta^, H^{-1})`` and then
``u | beta ~ N(L_Z^{-T}(l_y - L_xZ' beta), sigma^2 (L_Z L_Z')^{-1})``, ``b = Lambda u``.

The density and its gradient are compiled (numba, cached once for every
model: :mod:`hierlm.bayes.kernels`) and handed to nutpie as a C callback, so
the sampler runs without Python in its loop and nothing is compiled per
model.

Used for models whose engine is the dense one (one factor of the whole
system: sleepstudy, Penicillin, nested designs with a few hundred random
effects).  Larger crossed designs keep the PyMC model with part of b
sampled (:func:`hierlm.bayes.backend.plan_marginalization`).
"""

from __future__ import annotations

import numpy as np

from ..lmm import fit_lmm
from ..lmm.deviance import DenseProfiledDeviance, estimate_cost, make_deviance
from ..params import corr_cholesky_free

_LOG2PI = np.log(2.0 * np.pi)


def engine_supported(design, family, priors) -> bool:
    """True when :class:`EnginePosterior` applies: a Gaussian model without
    weights or offset, Normal or flat fixed-effect priors, and a system
    small enough for the dense engine."""
    if not family.is_gaussian or design.rows_free or design.weights is not None or design.offset is not None:
        return False
    if any(priors.fixed[n].family not in ("Normal", "Flat") for n in design.xnames):
        return False
    return estimate_cost(design, products=False).engine == "dense"


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
        dev = make_deviance(design)
        if not isinstance(dev, DenseProfiledDeviance):  # pragma: no cover  (engine_supported checks)
            raise TypeError("EnginePosterior needs the dense engine")
        self.dev = dev
        self.A = dev.A
        self.q, self.p, self.m, self.n = dev.qr, dev.p, dev.m, dev.n
        names = list(design.xnames)
        normal = np.array([priors.fixed[n].family == "Normal" for n in names], dtype=bool)
        s0 = np.array([priors.fixed[n].params["sigma"] if nm else 1.0 for n, nm in zip(names, normal)])
        self.mu0 = np.array([priors.fixed[n].params["mu"] if nm else 0.0 for n, nm in zip(names, normal)])
        self.P0 = np.where(normal, 1.0 / s0**2, 0.0)
        self.const = self.n * _LOG2PI + float(np.sum(np.log(2 * np.pi * s0[normal] ** 2))) - self.p * _LOG2PI
        self.terms = priors.term_names()
        pos, self.layout = 1, []
        for r in design.remats:
            nc = r.p * (r.p - 1) // 2
            self.layout.append((slice(pos, pos + r.p), slice(pos + r.p, pos + r.p + nc)))
            pos += r.p + nc
        self.size = pos
        self.theta_slices = design.theta_slices()
        self.ntheta = self.theta_slices[-1].stop
        self._Iz = np.diag(np.r_[np.ones(self.q), np.zeros(self.p + 1)])
        self._eta = float(priors.lkj.params["eta"])
        self._terms = np.array([(r.p, r.nlevels, dev.offsets[k], self.layout[k][0].start)
                                for k, r in enumerate(design.remats)], dtype=np.int64)
        # numba and the compiled density load with the first engine posterior, not at import
        from . import kernels

        self._k = kernels
        self._priors = np.array([kernels.pack_prior(priors.sigma)] + [kernels.pack_prior(priors.sd[t])
                                                                       for t in self.terms])

    # ---- parameters ----------------------------------------------------------
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
        val, g, ok = self._k.marginal_logp(np.asarray(phi, dtype=float), self.A, self.q, self._terms, self._priors,
                                   self._eta, self.P0, self.mu0, float(self.n), self.const, grad)
        if not (ok and np.isfinite(val) and (not grad or np.all(np.isfinite(g)))):
            return -np.inf, np.zeros(self.size)
        return val, g

    # ---- exact draws of what was integrated out ---------------------------------
    def draw(self, phis: np.ndarray, rng, chunk: int = 256):
        """Exact draws of beta and b for each row of ``phis`` (S, size).

        Returns ``(beta (S, p), [b_k (S, levels_k, p_k)])``.
        """
        S_all = phis.shape[0]
        q, p, m = self.q, self.p, self.m
        beta = np.empty((S_all, p))
        bz = np.empty((S_all, q))
        dev = self.dev
        for a in range(0, S_all, chunk):
            ph = phis[a: a + chunk]
            s = ph.shape[0]
            sig = np.exp(ph[:, 0])
            thetas = np.empty((s, self.ntheta))
            _, sds, Ls = self.natural_many(ph)
            for k, r in enumerate(self.design.remats):
                T = sds[k][:, :, None] * Ls[k] / sig[:, None, None]
                thetas[:, self.theta_slices[k]] = T[:, r.tril_rows, r.tril_cols]
            Lam = np.broadcast_to(np.eye(m), (s, m, m)).copy()
            Lam.reshape(s, -1)[:, dev.lam_pos] = thetas[:, dev.lam_theta]
            L = np.linalg.cholesky(np.swapaxes(Lam, 1, 2) @ self.A @ Lam + self._Iz)
            Lb = L[:, q:, q:]
            Sc = Lb @ np.swapaxes(Lb, 1, 2)
            s2 = (sig**2)[:, None]
            H = np.diag(self.P0)[None] + Sc[:, :p, :p] / s2[:, :, None]
            Hc = np.linalg.cholesky(H)
            h = self.P0 * self.mu0 + Sc[:, :p, p] / s2
            bh = np.linalg.solve(H, h[..., None])[..., 0]
            # beta ~ N(beta^, H^{-1}) = beta^ + Hc^{-T} z
            z = rng.standard_normal((s, p))
            beta[a: a + s] = bh + np.linalg.solve(np.swapaxes(Hc, 1, 2), z[..., None])[..., 0]
            if q:
                rhs = L[:, m - 1, :q] - np.einsum("sp,spq->sq", beta[a: a + s], L[:, q: q + p, :q])
                rhs += sig[:, None] * rng.standard_normal((s, q))
                u = np.linalg.solve(np.swapaxes(L[:, :q, :q], 1, 2), rhs[..., None])[..., 0]
                bz[a: a + s] = np.einsum("sab,sb->sa", Lam[:, :q, :q], u)
        out = []
        for k, r in enumerate(self.design.remats):
            out.append(bz[:, dev.offsets[k]: dev.offsets[k + 1]].reshape(S_all, r.nlevels, r.p))
        return beta, out


def pack_model(post: EnginePosterior) -> np.ndarray:
    """The buffer :func:`hierlm.bayes.kernels.logp_callback` reads the model from."""
    head = np.array([0.0, post.m, post.q, len(post._terms), float(post.n), post.const, post._eta, post.size])
    buf = np.concatenate([head, post.A.ravel(), post._terms.ravel().astype(float), post._priors.ravel(), post.P0,
                          post.mu0])
    buf[0] = buf.size
    return np.ascontiguousarray(buf)


def nutpie_model(post: EnginePosterior, initial_point):
    """A nutpie model of the marginal posterior, sampled through the compiled
    callbacks; its draws are the unconstrained vector ``phi``.

    ``initial_point(seed)`` gives each chain's start.  Built on nutpie's
    model class for compiled callbacks (``CompiledPyMCModel``; the bayes
    extra pins the nutpie versions whose fields this fills).
    """
    from nutpie.compile_pymc import CompiledPyMCModel

    size = post.size
    return CompiledPyMCModel(
        _n_dim=size, dims={}, _coords={}, _shapes={"phi": (size,)},
        compiled_logp_func=post._k.logp_callback, compiled_expand_func=post._k.expand_callback,
        initial_point_func=initial_point, shared_data={}, user_data=pack_model(post), n_expanded=size,
        shape_info=(["phi"], [slice(0, size)], [(size,)]), logp_func=None, expand_func=None,
    )
