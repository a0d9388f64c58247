r"""Penalized iteratively reweighted least squares (PIRLS) for GLMMs.

For given covariance parameters theta (and, in lme4's second stage, fixed
effects beta) the conditional modes of the spherical random effects ``u``
(``b = Lambda u``) minimize the penalized deviance

    pdev(u) = sum(dev.resid(y, mu)) + |u|^2,   mu = g^{-1}(offset + X beta + Z Lambda u).

Each Fisher-scoring step solves the penalized weighted least-squares system
(Bates et al. 2015; lme4's ``pwrssUpdate``; MixedModels.jl's ``pirls!``)

    [Lambda'Z'WZ Lambda + I   Lambda'Z'WX] [u   ]   [Lambda'Z'W zeta]
    [X'WZ Lambda              X'WX       ] [beta] = [X'W zeta       ]

with working weights ``W = wt mu_eta^2 / V(mu)`` and working response
``zeta = eta + (y - mu) / mu_eta`` (the beta rows only in lme4's first stage,
nAGQ = 0; with beta fixed ``zeta`` is reduced by ``X beta``).  Steps that
increase the penalized deviance are halved, as in lme4.

Blocked algebra as in :mod:`hierlm.lmm.deviance`: the first (largest) term's
block of the system is block diagonal, one p1 x p1 block per level, and is
eliminated level by level; what remains (the other terms' u and, jointly,
beta: m unknowns) is a dense Schur complement factored by LAPACK.  Every
product is accumulated from per-observation values (the level code and the
row of ``Z_k Lambda_k`` of each term), so Z is never formed.  The Schur
complement is

    S = sum_o w_o v_o v_o' - sum_i G_i' M_i^{-1} G_i + diag(I, 0)

with ``v_o`` observation o's scaled row of the remaining columns,
``M_i = sum_{o in i} w_o x_o x_o' + I`` (x_o the first term's scaled row) and
``G_i = sum_{o in i} w_o x_o v_o'``; the second sum is expanded over the
pairs of observations sharing a level of the first term, whose positions in S
are precomputed once.

Two stopping rules.  ``lme4=True`` is lme4's: stop at the first relative
change of the penalized deviance below 1e-7, and take ``log|L|^2`` from the
factor of that last step, computed at the weights of the step's start.
Started from lme4's ``lp0`` this reproduces lme4's deviance function to
rounding (it differs from the exact Laplace approximation by up to about
1e-3 deviance units, which moves lme4's optimum by up to ~5e-4 and its
Hessian-based standard errors by ~1% on cbpp).  Otherwise the iteration
stops when the linear predictor changes by less than ``tol``
(1e-12 relative by default, far below lme4's 1e-7 relative change of the
penalized deviance; Newton steps converge quadratically, so this costs about
one more step): the Laplace deviance is then a smooth function of the
parameters to about 1e-10, which the finite-difference Hessian behind lme4's
``vcov`` (steps of 1e-4, so errors are multiplied by 1e8) needs.  ``log|L|^2``
uses the weights of the last step's start, as lme4 does; after a step below
1e-12 that makes no difference.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..errors import HierlmError


class PirlsError(HierlmError):
    """PIRLS did not converge (the conditional modes could not be found)."""


@dataclass
class Scaled:
    """Per-observation rows of ``Z Lambda`` (and X) at one theta."""

    theta: np.ndarray
    T1: np.ndarray
    x1: np.ndarray      # (n, p1) first term, scaled
    v: np.ndarray       # (n, s) remaining columns, scaled (Z part) [+ X]
    joint: bool


@dataclass
class Factor:
    """The blocked Cholesky factor at one theta and one set of weights."""

    Minv: np.ndarray    # (l1, p1, p1)
    logdet1: float      # log det of the first term's blocks
    L: np.ndarray | None  # (m, m) lower Cholesky factor of S (None when m == 0)
    m: int

    def logdet_Z(self, qr: int) -> float:
        """log |L_Z|^2 (lme4's ldL2): the random-effects part of the factor."""
        if self.L is None or qr == 0:
            return self.logdet1
        return self.logdet1 + 2.0 * float(np.log(np.diagonal(self.L)[:qr]).sum())


@dataclass
class Mode:
    """Converged PIRLS state at one set of parameters."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray       # spherical random effects (q,)
    eta: np.ndarray     # linear predictor without the offset
    mu: np.ndarray
    factor: Factor      # at the weights of the last iteration
    scaled: Scaled
    pdev: float         # sum of deviance residuals + |u|^2
    iterations: int


class PirlsSystem:
    """Precomputed structure of a GLMM's design for PIRLS.

    Parameters
    ----------
    design : Design
    family : Family
    y, wt, ntrials, offset : numpy.ndarray
        Response on the family's scale, prior weights, binomial trials (R's
        ``n``) and offset (zeros when none).
    schur : {"auto", "pairs", "dense"}
        How the Schur complement is formed (see :meth:`_positions`); the
        result is the same.
    """

    def __init__(self, design, family, y, wt, ntrials, offset, schur: str = "auto"):
        self.schur = schur
        self.design = design
        self.family = family
        self.y, self.wt, self.ntrials = y, wt, ntrials
        self.offset = offset
        self.X = design.X
        self.n, self.p = self.X.shape
        remats = design.remats
        self.remats = remats
        self.slices = design.theta_slices()
        re1 = remats[0]
        self.re1, self.rest = re1, remats[1:]
        self.code1 = re1.codes
        self.l1, self.p1 = re1.nlevels, re1.p
        self.q1 = re1.q
        self.q = sum(r.q for r in remats)
        self.qr = self.q - self.q1
        self.rest_off = np.cumsum([0] + [r.q for r in self.rest])
        n = self.n
        cols = [r.codes[:, None] * r.p + np.arange(r.p) + self.rest_off[k] for k, r in enumerate(self.rest)]
        self.cols_u = np.hstack(cols).astype(np.int64) if cols else np.zeros((n, 0), dtype=np.int64)
        self.cols_j = np.hstack([self.cols_u, np.broadcast_to(self.qr + np.arange(self.p), (n, self.p))])
        self.aic_const = family.aic_constant(y, ntrials, wt)
        self.level_counts = np.bincount(self.code1, minlength=self.l1)
        self._pos = {}

    # ---- scaled rows ------------------------------------------------------
    def set_family(self, family) -> None:
        """Use ``family`` (the same distribution and link with other parameter values, e.g.
        another negative binomial shape) from now on."""
        self.family = family
        self.aic_const = family.aic_constant(self.y, self.ntrials, self.wt)

    def scale(self, theta: np.ndarray, joint: bool) -> Scaled:
        theta = np.asarray(theta, dtype=float)
        re1 = self.re1
        T1 = re1.T(theta[self.slices[0]])
        x1 = re1.Xt * T1[0, 0] if re1.p == 1 else re1.Xt @ T1
        parts = []
        for k, r in enumerate(self.rest):
            T = r.T(theta[self.slices[k + 1]])
            parts.append(r.Xt * T[0, 0] if r.p == 1 else r.Xt @ T)
        if joint:
            parts.append(self.X)
        v = np.hstack(parts) if parts else np.zeros((self.n, 0))
        return Scaled(theta, T1, x1, v, joint)

    def _positions(self, joint: bool) -> dict:
        """Index arrays that place per-observation products into S (cached per mode).

        Two ways to form ``sum_i G_i' M_i^{-1} G_i``:

        * ``"pairs"``: over the pairs of observations sharing a first-term
          level, ``sum_{o, o'} w_o w_o' (x_o' M^{-1} x_o') v_o v_o'``; costs
          ``sum_i n_i^2 s^2`` products: cheap when levels hold few
          observations (grouseticks' INDEX: one each);
        * ``"dense"``: G as a dense (levels p1) x m matrix, then
          ``G' (M^{-1} G)`` by BLAS: ``l1 p1 m^2`` flops, better when levels
          hold many observations and m is small.
        """
        if joint not in self._pos:
            cols = self.cols_j if joint else self.cols_u
            m = self.qr + (self.p if joint else 0)
            s = cols.shape[1]
            n, l1, p1 = self.n, self.l1, self.p1
            out = {"m": m, "s": s, "cols": cols, "diag_z": np.arange(self.qr) * (m + 1)}
            cost_pairs = float(np.sum(self.level_counts.astype(float) ** 2)) * s * s
            cost_dense = n * s * (s + p1) + 0.05 * l1 * p1 * m * m  # BLAS flops are ~20x cheaper
            method = self.schur if self.schur != "auto" else ("pairs" if cost_pairs <= cost_dense else "dense")
            out["method"] = method
            if m and method == "pairs":
                order = np.argsort(self.code1, kind="stable")
                counts = self.level_counts
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                rep = counts[self.code1[order]]
                first_pos = np.repeat(np.arange(n), rep)
                within = np.arange(first_pos.size) - np.repeat(np.cumsum(rep) - rep, rep)
                second_pos = starts[self.code1[order][first_pos]] + within
                pa, pb = order[first_pos], order[second_pos]
                out.update(pa=pa, pb=pb, pdiag=pa == pb, plevel=self.code1[pa],
                           pos=(cols[pa][:, :, None] * m + cols[pb][:, None, :]).ravel())
            elif m:
                rows = self.code1[:, None] * p1 + np.arange(p1)
                out.update(gpos=(rows[:, :, None] * m + cols[:, None, :]).ravel(),
                           dpos=(cols[:, :, None] * m + cols[:, None, :]).ravel())
            self._pos[joint] = out
        return self._pos[joint]

    # ---- factorization ------------------------------------------------------
    def factor(self, sc: Scaled, w: np.ndarray) -> Factor | None:
        """Blocked Cholesky factor of the PWLS system at weights ``w``."""
        x1, code1, l1, p1 = sc.x1, self.code1, self.l1, self.p1
        if p1 == 1:
            M = np.bincount(code1, weights=w * x1[:, 0] ** 2, minlength=l1) + 1.0
            logdet1 = float(np.log(M).sum())
            Minv = (1.0 / M)[:, None, None]
        else:
            M = np.empty((l1, p1, p1))
            for a in range(p1):
                for b in range(a + 1):
                    val = np.bincount(code1, weights=w * x1[:, a] * x1[:, b], minlength=l1)
                    M[:, a, b] = val
                    M[:, b, a] = val
            M[:, np.arange(p1), np.arange(p1)] += 1.0
            Lc = np.linalg.cholesky(M)
            logdet1 = float(2.0 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum())
            Minv = np.linalg.inv(M)
        ps = self._positions(sc.joint)
        m, v = ps["m"], sc.v
        if m == 0:
            return Factor(Minv, logdet1, None, 0)
        if ps["method"] == "pairs":
            pa, pb = ps["pa"], ps["pb"]
            if p1 == 1:
                c = w[pa] * w[pb] * x1[pa, 0] * x1[pb, 0] * Minv[ps["plevel"], 0, 0]
            else:
                c = w[pa] * w[pb] * np.einsum("ka,kab,kb->k", x1[pa], Minv[ps["plevel"]], x1[pb])
            coef = -c
            coef[ps["pdiag"]] += w[pa[ps["pdiag"]]]
            vals = (coef[:, None, None] * v[pa][:, :, None]) * v[pb][:, None, :]
            S = np.bincount(ps["pos"], weights=vals.ravel(), minlength=m * m)
        else:
            G = np.bincount(ps["gpos"], weights=((w[:, None] * x1)[:, :, None] * v[:, None, :]).ravel(),
                            minlength=l1 * p1 * m).reshape(l1, p1, m)
            K = G * Minv[:, 0, :, None] if p1 == 1 else np.matmul(Minv, G)
            S = np.bincount(ps["dpos"], weights=((w[:, None] * v)[:, :, None] * v[:, None, :]).ravel(),
                            minlength=m * m)
            S -= (G.reshape(l1 * p1, m).T @ K.reshape(l1 * p1, m)).ravel()
        S[ps["diag_z"]] += 1.0
        S = S.reshape(m, m)
        # S is symmetric: its transpose (Fortran order) factored in place gives L in S
        _, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            return None
        return Factor(Minv, logdet1, S, m)

    def solve(self, sc: Scaled, f: Factor, w: np.ndarray, zeta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Solve the PWLS system for the working response ``zeta``.

        Returns
        -------
        u1 : (l1, p1) first term's spherical effects
        xr : (m,) the remaining unknowns (other terms' u, then beta if joint)
        """
        x1, code1, l1, p1 = sc.x1, self.code1, self.l1, self.p1
        wz = w * zeta
        r1 = np.empty((l1, p1))
        for a in range(p1):
            r1[:, a] = np.bincount(code1, weights=wz * x1[:, a], minlength=l1)
        if f.m == 0:
            return np.einsum("lab,lb->la", f.Minv, r1) if p1 > 1 else r1 * f.Minv[:, 0, :], np.zeros(0)
        ps = self._positions(sc.joint)
        m, cols = ps["m"], ps["cols"]
        t1 = np.einsum("lab,lb->la", f.Minv, r1) if p1 > 1 else r1 * f.Minv[:, 0, :]
        h = w * np.einsum("oa,oa->o", x1, t1[code1]) if p1 > 1 else w * x1[:, 0] * t1[code1, 0]
        red = np.bincount(cols.ravel(), weights=(sc.v * (wz - h)[:, None]).ravel(), minlength=m)
        # f.L holds L in its lower triangle (C order): its transpose is U = L' in Fortran order
        xr, info = lapack.dpotrs(f.L.T, red, lower=0)
        if info != 0:  # pragma: no cover - only for invalid arguments
            raise PirlsError(f"LAPACK dpotrs failed (info {info})")
        tt = w * np.einsum("oa,oa->o", sc.v, xr[cols])
        for a in range(p1):
            r1[:, a] -= np.bincount(code1, weights=tt * x1[:, a], minlength=l1)
        u1 = np.einsum("lab,lb->la", f.Minv, r1) if p1 > 1 else r1 * f.Minv[:, 0, :]
        return u1, xr

    # ---- linear predictor and deviance ------------------------------------
    def linear(self, sc: Scaled, u1: np.ndarray, xr: np.ndarray, beta: np.ndarray | None) -> np.ndarray:
        """eta (without offset) = X beta + Z Lambda u from the blocked unknowns."""
        x1 = sc.x1
        eta = x1[:, 0] * u1[self.code1, 0] if self.p1 == 1 else np.einsum("oa,oa->o", x1, u1[self.code1])
        if sc.v.shape[1]:
            cols = self.cols_j if sc.joint else self.cols_u
            eta = eta + np.einsum("oa,oa->o", sc.v, xr[cols])
        if not sc.joint:
            eta = eta + self.X @ beta
        return eta

    def moments(self, eta: np.ndarray):
        """mu, mu_eta, working weights and working residuals at eta (no offset)."""
        fam = self.family
        e = eta + self.offset
        mu = fam.linkinv(e)
        d = fam.mu_eta(e)
        with np.errstate(divide="ignore", invalid="ignore"):
            w, res = fam.working(self.y, mu, d, self.wt)
        return mu, w, res

    def observed(self, mode: Mode) -> Mode:
        """``mode`` with its factor at the observed information of the random
        effects, for a family whose Laplace approximation uses it (beta, as
        glmmTMB); the mode itself unchanged."""
        with np.errstate(divide="ignore", invalid="ignore"):
            w = self.family.observed_weights(self.y, mode.eta + self.offset, self.wt)
        if w is None:
            return mode
        f = self.factor(mode.scaled, w)
        if f is None:
            raise PirlsError("the observed information of the random effects is not positive definite at the "
                             "conditional modes")
        return replace(mode, factor=f)

    def dev_resid(self, mu: np.ndarray) -> np.ndarray:
        return self.family.dev_resid(self.y, mu, self.wt)

    def aic(self, mu: np.ndarray) -> float:
        return self.family.aic(self.y, self.ntrials, mu, self.wt, self.aic_const)

    # ---- PIRLS ------------------------------------------------------------
    def pirls(self, theta, beta=None, eta0=None, state=None, tol: float = 1e-12, maxit: int = 100,
              tol_pwrss: float = 1e-7, lme4: bool = False) -> Mode:
        """Conditional modes at theta (and beta, or jointly with beta when
        ``beta`` is None: lme4's nAGQ = 0 stage).

        Parameters
        ----------
        theta : array
        beta : array or None
        eta0 : array, optional
            Starting linear predictor (without offset), e.g. lme4's ``lp0``.
        state : Mode, optional
            Start from this state's u (and beta when joint) instead.
        tol : float
            Stop when the linear predictor changes by less than this.
        maxit : int
        tol_pwrss : float
            lme4's criterion (relative change of the penalized deviance),
            accepted when ``tol`` is not met within ``maxit`` iterations.
        lme4 : bool
            Stop as lme4's ``pwrssUpdate`` does: at the first relative
            change of the penalized deviance below ``tol_pwrss`` (``tol`` is
            not used), halving steps on any increase.
        """
        joint = beta is None
        sc = self.scale(theta, joint)
        if state is not None:
            u_old = state.u.copy()
            beta_old = state.beta.copy() if joint else np.asarray(beta, dtype=float)
            u1, xr = self._split(u_old, beta_old if joint else None)
            eta = self.linear(sc, u1, xr, None if joint else beta_old)
        else:
            if eta0 is None:
                eta0 = self.family.linkfun(self.family.mustart(self.y, self.wt, self.ntrials)) - self.offset
            eta = np.asarray(eta0, dtype=float)
            u_old, beta_old = None, None
        pdev_old = np.inf
        beta_fixed = None if joint else np.asarray(beta, dtype=float)
        for it in range(1, maxit + 1):
            _, w, res = self.moments(eta)
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(res))):
                raise PirlsError("non-finite working weights in PIRLS")
            f = self.factor(sc, w)
            if f is None:
                raise PirlsError("PIRLS: the penalized weighted system is not positive definite")
            zeta = eta + res
            if not joint:
                zeta = zeta - self.X @ beta_fixed
            u1, xr = self.solve(sc, f, w, zeta)
            u_new, b_new = self._join(u1, xr, joint, beta_fixed)
            eta_new = self.linear(sc, u1, xr, beta_fixed)
            mu_new = self.family.linkinv(eta_new + self.offset)
            pdev = float(self.dev_resid(mu_new).sum() + u_new @ u_new)
            if lme4 and np.isfinite(pdev) and abs((pdev_old - pdev) / pdev) < tol_pwrss:
                # lme4's criterion, checked before any step halving
                return self.observed(Mode(sc.theta, b_new, u_new, eta_new, mu_new, f, sc, pdev, it))
            # (an increase at rounding level is no reason to halve: it would stall the iteration)
            slack = 0.0 if lme4 else 1e-10 * abs(pdev_old)
            if (not np.isfinite(pdev) or pdev > pdev_old + slack) and u_old is not None:
                # step halving towards the previous iterate, as lme4's pwrssUpdate
                for _ in range(10):
                    u_new = 0.5 * (u_old + u_new)
                    if joint:
                        b_new = 0.5 * (beta_old + b_new)
                    u1, xr = self._split(u_new, b_new if joint else None)
                    eta_new = self.linear(sc, u1, xr, beta_fixed)
                    mu_new = self.family.linkinv(eta_new + self.offset)
                    pdev = float(self.dev_resid(mu_new).sum() + u_new @ u_new)
                    if np.isfinite(pdev) and pdev <= pdev_old:
                        break
                if not np.isfinite(pdev) or pdev - pdev_old > tol_pwrss:
                    raise PirlsError("PIRLS step-halvings failed to reduce the deviance")
            step = float(np.max(np.abs(eta_new - eta))) if eta.size else 0.0
            done = not lme4 and step < tol * (1.0 + float(np.max(np.abs(eta_new))))
            if not done and not lme4 and it == maxit and abs(pdev_old - pdev) < tol_pwrss * abs(pdev):
                done = True
            eta, u_old, beta_old, pdev_old = eta_new, u_new, b_new, pdev
            if done:
                return self.observed(Mode(sc.theta, b_new, u_new, eta_new, mu_new, f, sc, pdev, it))
        raise PirlsError(f"PIRLS did not converge in {maxit} iterations")

    def _split(self, u: np.ndarray, beta: np.ndarray | None):
        u1 = u[: self.q1].reshape(self.l1, self.p1)
        xr = u[self.q1:]
        if beta is not None:
            xr = np.concatenate([xr, beta])
        return u1, xr

    def _join(self, u1, xr, joint, beta_fixed):
        u = np.concatenate([u1.ravel(), xr[: self.qr]])
        beta = xr[self.qr:] if joint else beta_fixed
        return u, beta

    # ---- criteria --------------------------------------------------------------
    def laplace(self, mode: Mode) -> float:
        """lme4's Laplace deviance: ``ldL2 + |u|^2 + aic`` (-2 log-likelihood)."""
        return mode.factor.logdet_Z(self.qr) + float(mode.u @ mode.u) + self.aic(mode.mu)

    def agq(self, mode: Mode, rule: tuple[np.ndarray, np.ndarray]) -> float:
        """lme4's adaptive Gauss-Hermite deviance (one scalar term).

        As lme4's ``glmerAGQ``: per level, the quadrature of
        ``exp(-(devc(u) - devc(u_hat)) / 2)`` around the conditional mode,
        with nodes scaled by the conditional SD ``1 / L_ii``, where ``devc``
        is the level's sum of deviance residuals plus ``u^2``; the result is
        ``sum(devc(u_hat)) + ldL2 - 2 sum(log(mult))``.  Like lme4 this uses
        deviance residuals, not the full log-likelihood, so it differs from
        the Laplace deviance by the saturated model's constant.
        """
        z, wq = rule
        code1, l1 = self.code1, self.l1
        u = mode.u
        sd = np.sqrt(mode.factor.Minv[:, 0, 0])
        x1 = mode.scaled.x1[:, 0]
        base = mode.eta - x1 * u[code1] + self.offset  # eta without the random effect
        devc0 = np.bincount(code1, weights=self.dev_resid(mode.mu), minlength=l1) + u * u
        mult = np.zeros(l1)
        for zk, wk in zip(z, wq):
            if zk == 0.0:
                mult += wk
                continue
            uk = u + zk * sd
            mu = self.family.linkinv(base + x1 * uk[code1])
            devc = np.bincount(code1, weights=self.dev_resid(mu), minlength=l1) + uk * uk
            # w_k exp(-(devc - devc0)/2 - log dnorm(z_k)) / sqrt(2 pi)
            mult += wk * np.exp(-0.5 * (devc - devc0) + 0.5 * zk * zk)
        return float(devc0.sum() + mode.factor.logdet1 - 2.0 * np.log(mult).sum())

    # ---- after the fit -----------------------------------------------------
    def b_blocks(self, theta: np.ndarray, u: np.ndarray) -> list[np.ndarray]:
        """Random effects b = Lambda u, one (levels, p) array per term."""
        out, start = [], 0
        for r, sl in zip(self.remats, self.slices):
            uk = u[start: start + r.q].reshape(r.nlevels, r.p)
            out.append(uk @ r.T(theta[sl]).T)
            start += r.q
        return out

    def condvar(self, mode: Mode, w: np.ndarray) -> list[np.ndarray]:
        """Conditional covariance blocks of b per term and level (lme4's
        ``condVar``: ``Lambda (L L')^{-1} Lambda'`` at beta, sigma = 1)."""
        sc = self.scale(mode.theta, joint=False)
        f = self.factor(sc, w)
        p1, l1, qr = self.p1, self.l1, self.qr
        V1 = f.Minv.copy()
        rest_blocks = []
        if qr:
            # G (l1 p1 x qr): sum_o w_o x_o v_o' by level; K = M^{-1} G
            G = np.zeros((l1 * p1, qr))
            rows = (self.code1[:, None] * p1 + np.arange(p1))  # (n, p1)
            for a in range(p1):
                for c in range(self.cols_u.shape[1]):
                    np.add.at(G, (rows[:, a], self.cols_u[:, c]), w * sc.x1[:, a] * sc.v[:, c])
            K = np.einsum("lab,lbk->lak", f.Minv, G.reshape(l1, p1, qr)).reshape(l1 * p1, qr)
            Linv = solve_triangular(f.L, np.eye(qr), lower=True, check_finite=False)
            Wm = Linv @ K.T  # (qr, l1 p1)
            Wl = Wm.reshape(qr, l1, p1)
            V1 += np.einsum("kla,klb->lab", Wl, Wl)
            for k, r in enumerate(self.rest):
                blk = Linv[:, self.rest_off[k]: self.rest_off[k + 1]].reshape(qr, r.nlevels, r.p)
                rest_blocks.append(np.einsum("kla,klb->lab", blk, blk))
        out = []
        for r, sl, V in zip(self.remats, self.slices, [V1] + rest_blocks):
            T = r.T(mode.theta[sl])
            out.append(T @ V @ T.T)
        return out

    def unscaled_vcov(self, mode: Mode, w: np.ndarray) -> np.ndarray:
        """(R_X' R_X)^{-1} of the joint system at the weights ``w`` (lme4's
        ``unsc()``: vcov(beta) when the Hessian is not used)."""
        sc = self.scale(mode.theta, joint=True)
        f = self.factor(sc, w)
        qr, p = self.qr, self.p
        RX = f.L[qr: qr + p, qr: qr + p]
        Linv = solve_triangular(RX, np.eye(p), lower=True, check_finite=False)
        return Linv.T @ Linv
