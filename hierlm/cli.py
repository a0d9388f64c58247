"""Command line: ``hierlm fit FORMULA --data NAME_OR_CSV [--ml | --map | --nuts | --imh] [--family F]
[--plot KIND --out PATH] [--output text|json|csv]``, ``hierlm demo``, ``hierlm datasets`` and
``hierlm --version``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__, datasets, plots
from .errors import FormulaError, HierlmError
from .model import Model
from .rformat import text_table

DEMO_FORMULA = "Reaction ~ Days + (Days | Subject)"


def _load(name: str):
    import pandas as pd

    path = Path(name)
    if path.suffix.lower() in (".csv", ".gz") or path.exists():
        if not path.exists():
            raise HierlmError(f"no such file: {name}")
        try:
            return pd.read_csv(path), path.stem
        except Exception as exc:  # pandas raises several kinds
            raise HierlmError(f"cannot read {name} as CSV: {exc}") from exc
    return datasets.load(name), name


def _fit_model(formula: str, data_name: str, ml: bool, sampling: dict | None = None, family: str = "gaussian",
               link: str | None = None, map_fit: bool = False, sampler: str = "nuts"):
    data, label = _load(data_name)
    model = Model(formula, data, family=family, link=link)
    model.data_name = label
    if sampling is not None:  # a posterior by ``sampler``: "nuts" or "imh"
        return model.fit(sampler, **sampling)
    if map_fit:
        return model.fit("map")
    offered = model.family.dist.fits
    if "laplace" not in offered and "reml" not in offered:  # Student-t: Bayesian fits only
        raise HierlmError(f"{model.family.a_name} model has no maximum likelihood fit here (lme4 has none): "
                          "add --map (the posterior mode) or --nuts (the posterior)")
    if not model.family.is_gaussian:
        return model.fit("laplace")  # a GLMM is fit by maximum likelihood (--ml or not)
    return model.fit("ml" if ml else "reml")


def _estimates(fit) -> dict[str, float]:
    """Fixed effects, SDs, correlations and sigma of a fit, by their printed names."""
    out = {name: float(v) for name, v in fit.fixef.items()}
    vc = fit.varcorr
    for _, row in vc.iterrows():
        if row["group"] == "Residual":
            out["sigma"] = float(row["sdcor"])
        elif row["var2"] is None or (isinstance(row["var2"], float) and np.isnan(row["var2"])):
            out[f"sd {row['group']} {row['var1']}"] = float(row["sdcor"])
        else:
            out[f"cor {row['group']} {row['var1']},{row['var2']}"] = float(row["sdcor"])
    return out


def _posterior_name(name: str) -> str:
    """The posterior variable of one of :func:`_estimates`' names (``"sd Subject Days"`` ->
    ``"sd_Subject[Days]"``)."""
    if name == "sigma":
        return name
    kind, _, rest = name.partition(" ")
    if kind in ("sd", "cor"):
        group, _, cols = rest.partition(" ")
        return f"{'sd' if kind == 'sd' else 'corr'}_{group}[{cols}]"
    return f"fixef[{name}]"


def _demo(out: str | None) -> str:
    """REML, MAP and NUTS on sleepstudy side by side, what partial pooling did, and the
    shrinkage plot (the whole idea of the package in a few seconds)."""
    start = time.perf_counter()
    try:
        import matplotlib  # noqa: F401
        import nutpie  # noqa: F401
    except ImportError as exc:
        raise HierlmError(f"hierlm demo fits by NUTS and draws a plot, which need the Bayesian extras "
                          f"({exc.name} is missing): pip install 'hierlm[bayes]', or pip install \".[bayes]\" "
                          "in a clone") from None
    data = datasets.load("sleepstudy")
    model = Model(DEMO_FORMULA, data)
    reml = model.fit("reml")
    mode = model.fit("map")
    post = model.fit("nuts", random_seed=1, progressbar=False)
    est = [_estimates(f) for f in (reml, mode, post)]
    dg = post.diagnostics
    rows = [["", "REML", "MAP", "NUTS mean", "95% interval"]]
    for name in est[0]:
        lo, hi = dg.loc[_posterior_name(name), ["2.5%", "97.5%"]]
        rows.append([name] + [f"{e[name]:.4g}" for e in est] + [f"[{lo:.4g}, {hi:.4g}]"])
    pool = plots.pooling_estimates(reml)
    own, part = pool["no_pooling"]["Days"], pool["partial_pooling"]["Days"]
    moved = (own - part).abs()
    far = moved.idxmax()
    paragraph = (
        f"Partial pooling: each of the {len(own)} subjects has its own intercept and slope, but the model "
        f"pulls them towards the population line ({reml.fixef['(Intercept)']:.1f} ms + "
        f"{reml.fixef['Days']:.2f} ms a day). The subjects' own least-squares slopes range from "
        f"{own.min():.1f} to {own.max():.1f} ms a day; the model's from {part.min():.1f} to {part.max():.1f}. "
        f"Subject {far} moves furthest: its own slope {own[far]:.1f} becomes {part[far]:.1f}, because its "
        "data alone are noisy and the other subjects say such slopes are rare. REML, MAP (the posterior "
        "mode with the random effects integrated out) and NUTS (the whole posterior) agree here; the "
        "posterior intervals also carry the uncertainty of the variance parameters.")
    paths = _save_plots(reml, ["shrinkage"], out or "hierlm-demo-shrinkage.png", None, None)
    seconds = time.perf_counter() - start
    lines = [f"{DEMO_FORMULA} on the bundled sleepstudy data (180 rows, 18 subjects)", ""]
    lines += text_table(rows, ["l", "r", "r", "r", "r"])
    lines += ["", *textwrap.wrap(paragraph, 88), "", f"wrote {paths[0]} (the shrinkage plot)",
              f"{seconds:.1f} s; the full lme4-style summary: hierlm fit \"{DEMO_FORMULA}\" --data sleepstudy"]
    return "\n".join(lines)


def _fit(formula: str, data_name: str, ml: bool) -> str:
    return str(_fit_model(formula, data_name, ml).summary())


def _machine_output(fit, kind: str) -> str:
    """``--output json``: the fit's numbers for scripts; ``csv``: broom.mixed's tidy table."""
    tab = fit.tidy()
    if kind == "csv":
        return tab.to_csv(index=False).rstrip("\n")
    doc = {"formula": fit.formula, "fit": fit.fit_label, "family": fit.family.name, "link": fit.family.link,
           "nobs": int(fit.nobs), "ngroups": {k: int(v) for k, v in fit.ngroups.items()},
           "converged": bool(fit.converged), "estimates": json.loads(tab.to_json(orient="records"))}
    for name in ("loglik", "aic", "bic"):
        value = getattr(fit, name, None)
        if value is not None:
            doc[name] = float(value)
    return json.dumps(doc, indent=2)


def _plot_paths(kinds: list[str], out: str | None) -> list[Path]:
    """One file per plot: ``--out`` is the file for one plot, the folder for several."""
    if out is None:
        return [Path(f"{k}.png") for k in kinds]
    if len(kinds) == 1:
        return [Path(out)]
    return [Path(out) / f"{k}.png" for k in kinds]


def _save_plots(fit, kinds: list[str], out: str | None, group: str | None, x: str | None) -> list[Path]:
    import matplotlib

    # a file is written, nothing is shown: Agg unless the user chose a backend
    if getattr(matplotlib.rcParams, "_get_backend_or_none", lambda: None)() is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for kind, path in zip(kinds, _plot_paths(kinds, out)):
        kw = {}
        if group is not None and kind in ("shrinkage", "caterpillar", "facets", "predictions"):
            kw["group"] = group
        if x is not None and kind in ("facets", "predictions"):
            kw["x"] = x
        if x is not None and kind == "diagnostics":
            kw["covariate"] = x
        fig = plots.plot(fit, kind, **kw)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fig.savefig(path, dpi=100)
        except (OSError, ValueError) as exc:
            raise HierlmError(f"cannot write {path}: {exc}") from exc
        finally:
            plt.close(fig)
        written.append(path)
    return written


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hierlm`` command; returns the exit code."""
    # ArviZ announces its coming refactor once per machine, at its first import: not
    # about the user's model, and it would open the first `hierlm demo`
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    parser = argparse.ArgumentParser(prog="hierlm", description="Mixed-effects models with lme4 formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser("fit", help="fit a linear mixed model and print lme4's summary")
    p_fit.add_argument("formula", help="lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)'")
    p_fit.add_argument("--data", required=True,
                       help=f"a CSV file or a bundled dataset ({', '.join(datasets.names())})")
    p_fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    p_fit.add_argument("--family", default="gaussian",
                       help="gaussian (default), binomial, poisson, negbinomial, Gamma, beta, ordinal or "
                            "student: binomial to ordinal are fit by the Laplace approximation, as lme4's glmer / "
                            "glmer.nb (beta: as glmmTMB's beta_family; ordinal: as ordinal's clmm, the response "
                            "ordered categories or whole numbers); student (a robust model) by --map or --nuts")
    p_fit.add_argument("--link", default=None, help="link of the family (default its canonical one)")
    p_fit.add_argument("--output", choices=("text", "json", "csv"), default="text",
                       help="text: the lme4-style summary (default); json: the fit's numbers for scripts; "
                            "csv: broom.mixed's tidy table")
    p_fit.add_argument("--nuts", action="store_true",
                       help="sample the posterior by NUTS (default priors) instead of REML")
    p_fit.add_argument("--imh", action="store_true",
                       help="sample the posterior of a Gaussian model by independence Metropolis-Hastings "
                            "from its Laplace approximation (fast for big crossed designs)")
    p_fit.add_argument("--map", action="store_true",
                       help="the posterior mode with the random effects integrated out (default priors) "
                            "instead of REML or the Laplace fit")
    p_fit.add_argument("--draws", type=int, default=1000,
                       help="draws per chain (with --nuts or --imh); NUTS chains that have not converged "
                            "go on, up to --max-draws")
    p_fit.add_argument("--max-draws", type=int, default=None,
                       help="most draws per chain of NUTS chains extended until they converge "
                            "(default 5 x --draws; equal to --draws: no extension)")
    p_fit.add_argument("--chains", type=int, default=4, help="chains (with --nuts or --imh)")
    p_fit.add_argument("--seed", type=int, default=None, help="random seed (with --nuts or --imh)")
    p_fit.add_argument("--plot", action="append", metavar="KIND", choices=plots.KINDS,
                       help=f"also draw a plot of the fit (repeatable): {', '.join(plots.KINDS)}")
    p_fit.add_argument("--out", metavar="PATH",
                       help="file for the plot (default KIND.png); with several --plot, a folder")
    p_fit.add_argument("--group", help="grouping factor for the plot (default the first)")
    p_fit.add_argument("--x", help="covariate for facets/predictions, or residuals vs it in diagnostics")
    parser.add_argument("--version", action="version", version=f"hierlm {__version__}")
    p_demo = sub.add_parser("demo", help=f"REML, MAP and NUTS fits of {DEMO_FORMULA} to the bundled sleepstudy "
                                         "data side by side, and the shrinkage plot")
    p_demo.add_argument("--out", default=None, help="where to write the shrinkage plot "
                                                    "(default hierlm-demo-shrinkage.png here)")
    sub.add_parser("datasets", help="list the bundled datasets")
    args = parser.parse_args(argv)

    warnings.showwarning = _show_warning
    try:
        if args.command == "demo":
            print(_demo(args.out))
        elif args.command == "datasets":
            print(datasets.list()[["rows", "description"]].to_string())
        else:
            if args.plot is None and (args.out or args.group or args.x):
                raise HierlmError("--out, --group and --x go with --plot KIND")
            posterior = [k for k in args.plot or [] if k in plots.POSTERIOR_KINDS]
            if posterior and not (args.nuts or args.imh):
                raise HierlmError(
                    f"--plot {posterior[0]} needs a posterior fit: add --nuts (or --imh). "
                    f"Plots of REML/ML fits: {', '.join(k for k in plots.KINDS if k not in plots.POSTERIOR_KINDS)}"
                )
            chosen = [f for f, on in (("--nuts", args.nuts), ("--imh", args.imh), ("--map", args.map),
                                       ("--ml", args.ml)) if on]
            if len(chosen) > 1:
                raise HierlmError(f"{chosen[0]} and {chosen[1]} exclude each other")
            sampling = None
            if args.nuts or args.imh:
                # NUTS tunes as long as it draws; the independence sampler needs a fifth
                tune = args.draws if args.nuts else max(args.draws // 5, 20)
                sampling = {"draws": args.draws, "tune": tune, "chains": args.chains, "random_seed": args.seed}
                if args.max_draws is not None:
                    if not args.nuts:
                        raise HierlmError("--max-draws goes with --nuts")
                    sampling["max_draws"] = args.max_draws
            fit = _fit_model(args.formula, args.data, args.ml, sampling, family=args.family, link=args.link,
                             map_fit=args.map, sampler="imh" if args.imh else "nuts")
            print(fit.summary() if args.output == "text" else _machine_output(fit, args.output))
            if args.plot:
                for path in _save_plots(fit, args.plot, args.out, args.group, args.x):
                    print(f"wrote {path}")
    except FormulaError as exc:
        print(f"error: {exc.short}", file=sys.stderr)
        return 2
    except HierlmError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
