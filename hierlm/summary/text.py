"""The printed summaries of every fit kind, in lme4's layout.

The layout follows lme4's ``print.summary.merMod``; the summary of a REML or
ML fit is lmerTest's (its fixed-effects table has ``df`` and ``Pr(>|t|)``
columns, Satterthwaite's method by default), that of a Laplace fit glmer's.
MAP and posterior fits keep lme4's blocks with their own columns.  Every
summary ends with the fit's convergence messages, the same way.
"""

from __future__ import annotations

import textwrap

import numpy as np

from ..errors import HierlmError
from ..inference.ddf import check_ddf
from ..inference.ddf import coef_table as ddf_table
from ..rformat import lines_html, text_table
from .format import (
    coefmat_lines, convergence_lines, fixed_corr_lines, format_r, groups_line, named_vector, quantile_line,
    random_effects_table,
)

_DDF_TITLE = {"satterthwaite": "Satterthwaite's", "kenward-roger": "Kenward-Roger's"}


def _method_title(fit) -> str:
    """lme4's ``methTitle``: the ML one ends in a space, as lme4 prints it."""
    return "Linear mixed model fit by REML" if fit.reml else "Linear mixed model fit by maximum likelihood "


def lmm_lines(fit, ddf: str = "none") -> list[str]:
    """lme4's summary of a REML or ML linear mixed model fit; with ``ddf``
    ``"satterthwaite"`` or ``"kenward-roger"``, lmerTest's (t-tests with df and p-values)."""
    ddf = check_ddf(ddf)
    tab, note = None, None
    if ddf != "none":
        try:
            tab = ddf_table(fit, ddf)
        except HierlmError as exc:
            if ddf == "kenward-roger":
                raise
            note = f"t-tests not available: {exc}"
            ddf = "none"
    lines = []
    if ddf == "none":
        lines.append(f"{_method_title(fit)} ['lmerMod']")
    else:
        lines.append(f"{_method_title(fit)}. t-tests use {_DDF_TITLE[ddf]} method [lmerModLmerTest]")
    lines.append(f"Formula: {fit.formula}")
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    lines.append("")
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.reml_criterion:.1f}")
    else:
        vals = [fit.aic, fit.bic, fit.loglik, fit.deviance]
        lines.extend(named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                                  [f"{v:.1f}" for v in vals] + [str(fit.nobs - fit.df)]))
    lines.append("")
    if fit.design.rows_free:
        lines.append("Scaled residuals: not computed (the rows are on the dask cluster)")
    else:
        lines.append("Scaled residuals: ")
        lines.extend(quantile_line(fit.residuals("pearson", scaled=True).to_numpy()))
    lines.append("")
    lines.append("Random effects:")
    lines.extend(random_effects_table(fit))
    lines.append(groups_line(fit))
    lines.append("")
    lines.append("Fixed effects:")
    lines.extend(coefmat_lines(tab if tab is not None else ddf_table(fit, "none")))
    if note:
        lines.append(note)
    lines.extend(fixed_corr_lines(fit))
    lines.extend(convergence_lines(fit))
    return lines


def lmm_short(fit) -> list[str]:
    """lme4's ``print(fit)``: header, criterion, random effects, fixed effects."""
    lines = [f"{_method_title(fit)} ['lmerMod']", f"Formula: {fit.formula}"]
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.reml_criterion:.4f}")
    else:
        lines.append(f"     AIC: {fit.aic:.4f}  BIC: {fit.bic:.4f}  logLik: {fit.loglik:.4f}")
    lines.append("Random effects:")
    lines.extend(random_effects_table(fit))
    lines.append(groups_line(fit))
    lines.append("Fixed Effects:")
    fe = fit.fixef
    lines.extend(text_table([list(fe.index), format_r(fe.to_numpy(), 4)], ["r"] * len(fe)))
    return lines


def _posterior_rows(fit) -> tuple[list[list[str]], list[list[str]]]:
    """(random-effects rows, fixed-effects rows) of a posterior summary."""
    dg = fit.diagnostics
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    re_rows = [["Groups", "Name", "Std.Dev.", "l-95% CI", "u-95% CI", "Rhat", "Bulk_ESS", "Tail_ESS"]]
    for t, r in zip(fit.terms, fit.design.remats):
        for j, c in enumerate(r.cnames):
            row = dg.loc[f"sd_{t}[{c}]"]
            re_rows.append([t if j == 0 else "", c, fmt(row["mean"]), fmt(row["2.5%"]), fmt(row["97.5%"]),
                            f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}", f"{row['ess_tail']:.0f}"])
        for j in range(r.p):
            for i in range(j + 1, r.p):
                row = dg.loc[f"corr_{t}[{r.cnames[j]},{r.cnames[i]}]"]
                re_rows.append(["", f"cor({r.cnames[j]},{r.cnames[i]})", f"{row['mean']:.3f}",
                                f"{row['2.5%']:.3f}", f"{row['97.5%']:.3f}", f"{row['r_hat']:.3f}",
                                f"{row['ess_bulk']:.0f}", f"{row['ess_tail']:.0f}"])
    if "sigma" in dg.index:  # binomial and Poisson have no residual SD (as glmer)
        row = dg.loc["sigma"]
        re_rows.append(["Residual", "", fmt(row["mean"]), fmt(row["2.5%"]), fmt(row["97.5%"]),
                        f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}", f"{row['ess_tail']:.0f}"])
    fe_rows = [["", "Estimate", "Est.Error", "l-95% CI", "u-95% CI", "Rhat", "Bulk_ESS", "Tail_ESS"]]
    for name in fit.design.xnames:
        row = dg.loc[f"fixef[{name}]"]
        fe_rows.append([name] + [fmt(row[k]) for k in ("mean", "sd", "2.5%", "97.5%")]
                       + [f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}", f"{row['ess_tail']:.0f}"])
    return re_rows, fe_rows


def _family_param_rows(fit, names=None, label=None) -> list[list[str]]:
    """brms's "Family Specific Parameters" rows (shape, phi, nu), or of the
    diagnostics' rows ``names`` shown as ``label`` of each: [] when none."""
    dg = fit.diagnostics
    names = [n for n in ("shape", "phi", "nu") if n in dg.index] if names is None else names
    if not names:
        return []
    rows = [["", "Estimate", "Est.Error", "l-95% CI", "u-95% CI", "Rhat", "Bulk_ESS", "Tail_ESS"]]
    for name in names:
        row = dg.loc[name]
        rows.append([label(name) if label else name] + [f"{row[k]:.4g}" for k in ("mean", "sd", "2.5%", "97.5%")]
                    + [f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}", f"{row['ess_tail']:.0f}"])
    return rows


def _title(text: str, cls: str = "glmerMod", width: int = 80) -> list[str]:
    """lme4's ``.prt.methTit``: a title too long for the width is wrapped
    (``strwrap``, indent 2) and the class follows without quotes."""
    if len(text) + 5 + len(cls) > width:
        lines = textwrap.wrap(text, width=width - 3, subsequent_indent="  ", break_on_hyphens=False)
        lines[-1] += f" [{cls}]"
        return lines
    return [f"{text} ['{cls}']"]


def _glmm_header(fit) -> list[str]:
    lines = _title(f"Generalized linear mixed model fit by maximum likelihood ({fit.method_name()})")
    lines += [f" Family: {fit.family.r_name}  ( {fit.family.link} )", f"Formula: {fit.formula}"]
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    return lines


def _random_lines(fit) -> list[str]:
    return random_effects_table(fit) + [groups_line(fit)]


def glmm_lines(fit) -> list[str]:
    """glmer's summary of a Laplace or AGQ fit (clmm's of an ordinal one)."""
    if fit.family.dist.eta_is_mean:
        return ordinal_lines(fit)
    lines = _glmm_header(fit) + [""]
    vals = [fit.aic, fit.bic, fit.loglik, -2.0 * fit.loglik]
    lines += named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                          [f"{v:.1f}" for v in vals] + [str(fit.df_residual)])
    lines += ["", "Scaled residuals: "]
    lines += quantile_line(fit.residuals("pearson", scaled=True).to_numpy())
    lines += ["", "Random effects:"] + _random_lines(fit)
    lines += ["", "Fixed effects:"] + coefmat_lines(fit.coef_table())
    lines += fixed_corr_lines(fit)
    lines += convergence_lines(fit)
    return lines


def _ordinal_head(fit, cond_h: bool = True) -> list[str]:
    """clmm's header: title, formula, data and the one-row table of the fit's
    link, threshold structure, nobs, logLik, AIC, evaluations, max.grad and (in
    the summary, not in print) the condition number of the Hessian."""
    lines = ["Cumulative Link Mixed Model fitted with the Laplace approximation", "",
             f"formula: {fit.formula}"]
    if fit.data_name:
        lines.append(f"data:    {fit.data_name}")
    H = fit.optinfo.hessian
    if H is not None:
        ev = np.linalg.eigvalsh(0.5 * H)
        cond = f"{ev.max() / ev.min():.1e}" if ev.min() > 0 else "NaN"
    else:
        cond = "NaN"
    niter = fit.optinfo.feval_family or fit.optinfo.feval
    cells = [fit.family.link, "flexible", str(fit.nobs), f"{fit.loglik:.2f}", f"{fit.aic:.2f}", str(niter),
             f"{fit.max_grad:.2e}", cond]
    names = ["link", "threshold", "nobs", "logLik", "AIC", "niter", "max.grad", "cond.H"]
    if not cond_h:
        cells, names = cells[:-1], names[:-1]
    widths = [max(len(a), len(b)) for a, b in zip(names, cells)]
    lines += ["", " " + " ".join(a.ljust(w) for a, w in zip(names, widths)) + " ",
              " " + " ".join(b.ljust(w) for b, w in zip(cells, widths)) + " "]
    return lines


def ordinal_lines(fit) -> list[str]:
    """ordinal's ``summary(clmm)``: random effects, coefficients with Wald tests,
    threshold coefficients."""
    lines = _ordinal_head(fit)
    lines += ["", "Random effects:"] + _random_lines(fit)
    lines += ["", "Coefficients:"]
    lines += coefmat_lines(fit.coef_table()) if fit.design.p else ["(none)"]
    lines += ["", "Threshold coefficients:"] + coefmat_lines(fit.threshold_table())
    lines += convergence_lines(fit)
    return lines


def ordinal_short(fit) -> list[str]:
    """ordinal's ``print(clmm)``: the header, random effects and the estimates."""
    lines = _ordinal_head(fit, cond_h=False)
    lines += ["", "Random effects:"] + _random_lines(fit)
    fe = fit.fixef
    if len(fe):
        lines += ["", "Coefficients:"] + named_vector(list(fe.index), format_r(fe.to_numpy(), 4))
    th = fit.thresholds
    lines += ["", "Thresholds:"] + named_vector(list(th.index), format_r(th.to_numpy(), 4))
    lines += fit.convergence.messages
    return lines


def glmm_short(fit) -> list[str]:
    """glmer's ``print(fit)``: header, criteria, random-effect SDs, fixed effects."""
    lines = _glmm_header(fit)
    vals = [fit.aic, fit.bic, fit.loglik, -2.0 * fit.loglik]
    lines += named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                          [f"{v:.4f}" for v in vals] + [str(fit.df_residual)])
    lines.append("Random effects:")
    vc = fit.varcorr
    rows = [["Groups", "Name", "Std.Dev."]]
    sds = format_r(vc.loc[vc["var2"].isna(), "sdcor"], 4)
    k = 0
    last = None
    for _, row in vc[vc["var2"].isna()].iterrows():
        rows.append([row["group"] if row["group"] != last else "", str(row["var1"]), sds[k]])
        last = row["group"]
        k += 1
    lines += text_table(rows, ["l", "l", "l"], indent=" ")
    lines.append(groups_line(fit))
    lines.append("Fixed Effects:")
    fe = fit.fixef
    lines += text_table([list(fe.index), format_r(fe.to_numpy(), 4)], ["r"] * len(fe))
    lines += fit.convergence.messages
    return lines

def _family_line(fit) -> list[str]:
    fam = fit.family
    return [] if fam.is_gaussian else [f" Family: {fam.r_name}  ( {fam.link} )"]


def posterior_lines(fit) -> list[str]:
    """Posterior summary in lme4's layout, with brms's interval and diagnostic columns."""
    post = fit.idata.posterior
    how = fit.plan.describe(fit.terms)
    kind = "linear" if fit.family.is_gaussian else "generalized linear"
    rate = fit.acceptance_rate
    sampler = "proposals from the Laplace approximation" if fit.sampler == "imh" else fit.sampler
    lines = [f"Bayesian {kind} mixed model fit by {fit.method} ({sampler}; {post.sizes['chain']} chains x "
             f"{post.sizes['draw']} draws; {how})"]
    lines += _family_line(fit)
    lines.append(f"Formula: {fit.formula}")
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    re_rows, fe_rows = _posterior_rows(fit)
    lines += ["", "Random effects (posterior mean, 95% interval):"]
    lines += text_table(re_rows, ["l", "l", "r", "r", "r", "r", "r", "r"], indent=" ")
    lines += [groups_line(fit), "", "Fixed effects:"]
    lines += text_table(fe_rows, ["l"] + ["r"] * 7)
    cut = [n for n in fit.diagnostics.index if n.startswith("cutpoints[")]
    if cut:  # an ordinal model's thresholds (brms's Intercept[k]), named as clmm's
        lines += ["", "Thresholds:"] + text_table(_family_param_rows(fit, cut, lambda n: n[10:-1]),
                                                  ["l"] + ["r"] * 7)
    extra = _family_param_rows(fit)
    if extra:
        lines += ["", "Family Specific Parameters:"] + text_table(extra, ["l"] + ["r"] * 7)
    dg = fit.diagnostics
    what = "nothing compiled" if fit.plan.kind in ("engine", "imh") else "compilation included"
    moves = (f"{fit.divergences} divergent transitions" if rate is None
             else f"acceptance rate {rate:.2f}")
    lines += ["", f"Sampling: {fit.seconds:.1f} s ({what}), {moves}, "
                  f"max R-hat {dg['r_hat'].max():.3f}, min bulk ESS {dg['ess_bulk'].min():.0f}"]
    lines += convergence_lines(fit)
    return lines


def map_lines(fit) -> list[str]:
    """MAP fit: estimates at the mode with approximate posterior SDs."""
    what = "likelihood (flat priors)" if fit.flat else "posterior"
    beta = "; fixed effects integrated out too (REML)" if fit.reml else ""
    glmm = not fit.family.is_gaussian
    if glmm:
        # random effects integrated out by the Laplace approximation, no sigma
        lines = [f"Generalized linear mixed model fit by MAP: mode of the Laplace-marginal {what}"]
    else:
        lines = [f"Mixed model fit by MAP: mode of the marginal {what}, random effects integrated out{beta}"]
    lines += _family_line(fit)
    lines.append(f"Formula: {fit.formula}")
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    what_ll = "Laplace log-likelihood" if glmm else "log marginal likelihood"
    lines += ["", f"{what_ll} at the mode: {fit.loglik:.4f}", "",
              "Random effects (mode, approximate posterior SD):"]
    se = fit.se
    rows = [["Groups", "Name", "Std.Dev.", "(SD)", "Corr"]]
    vc = fit.varcorr
    for t, r in zip(fit.term_names, fit.design.remats):
        block = vc[vc["group"] == t]
        for j, c in enumerate(r.cnames):
            sd = block[(block["var1"] == c) & block["var2"].isna()]["sdcor"].iloc[0]
            corr = []
            for i in range(j):
                hit = block[(block["var1"] == r.cnames[i]) & (block["var2"] == c)]
                corr.append(f"{hit['sdcor'].iloc[0]:.2f}")
            rows.append([t if j == 0 else "", c, f"{sd:.4g}", f"{se[f'sd_{t}[{c}]']:.3g}", " ".join(corr)])
    if "sigma" in se.index:  # Gaussian and Student-t models
        rows.append(["Residual", "", f"{fit.sigma:.4g}", f"{se['sigma']:.3g}", ""])
    lines += text_table(rows, ["l", "l", "r", "r", "l"], indent=" ")
    lines += [groups_line(fit), "", "Fixed effects:"]
    lines += coefmat_lines(fit.coef_table())
    cut = [n for n in se.index if n.startswith("threshold[")]
    if cut:  # an ordinal model's thresholds at the mode
        rows = [["", "Estimate", "(SD)"]] + [[n[10:-1], f"{v:.4g}", f"{se[n]:.3g}"]
                                             for n, v in zip(cut, fit.family.params["cutpoints"])]
        lines += ["", "Thresholds (mode, approximate posterior SD):"] + text_table(rows, ["l", "r", "r"])
    post = fit.posterior
    if glmm and post.nextra and not cut:  # the family's parameters (shape, phi; nu) at the mode
        for name, value in zip(post.extra_names(), post.extra_values(fit.phi)):
            if name != "sigma":  # a Student-t model's sigma is in the random effects' table
                lines += ["", f"Family parameter {name} (mode, approximate posterior SD): {value:.4g} "
                          f"({se[name]:.3g})"]
    lines += convergence_lines(fit)
    return lines


class Summary:
    """A printed summary: ``print(fit.summary())``, or displayed in a notebook.

    Attributes
    ----------
    fit : MixedFit
    text : str
    """

    def __init__(self, fit, lines: list[str]):
        self.fit = fit
        self.lines = list(lines)
        self.text = "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        """The same content as the text, its tables as HTML tables."""
        return lines_html(self.lines)


class LMMSummary(Summary):
    """lmerTest's ``summary()`` of a REML or ML fit (lme4's with ``ddf="none"``).

    Parameters
    ----------
    fit : LMMFit
    ddf : {"satterthwaite", "kenward-roger", "none"}
        As lmerTest's ``summary(m, ddf = ...)``: the fixed-effects table gets
        ``df`` and ``Pr(>|t|)`` columns from Satterthwaite's (default) or
        Kenward-Roger's method; ``"none"`` (or ``"lme4"``) prints lme4's summary.
    """

    def __init__(self, fit, ddf: str = "satterthwaite"):
        super().__init__(fit, lmm_lines(fit, ddf))


#: the summary of each fit kind but REML/ML (``fit.kind``), which takes ``ddf``
_LINES = {"glmm": glmm_lines, "map": map_lines, "posterior": posterior_lines}


def summarize(fit, **kw) -> Summary:
    """The printed summary of any fit, by its ``kind``."""
    if fit.kind == "lmm":
        return LMMSummary(fit, **kw)
    if kw:
        raise HierlmError(f"summary() of a {fit.kind} fit takes no options, not {sorted(kw)}")
    return Summary(fit, _LINES[fit.kind](fit))


def short_summary(fit) -> Summary:
    """lme4's ``print(fit)`` for REML/ML and Laplace fits; the summary for the others
    (what ``print(fit)`` and a notebook show)."""
    if fit.kind == "lmm":
        return Summary(fit, lmm_short(fit))
    if fit.kind == "glmm":
        return Summary(fit, ordinal_short(fit) if fit.family.dist.eta_is_mean else glmm_short(fit))
    return summarize(fit)


def short_repr(fit) -> str:
    """The text of :func:`short_summary`."""
    return short_summary(fit).text
