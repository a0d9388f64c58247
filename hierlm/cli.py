"""Command line: ``hierlm fit FORMULA --data NAME_OR_CSV [--ml]`` and ``hierlm demo``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import datasets
from .errors import FormulaError, HierlmError

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


def _fit(formula: str, data_name: str, ml: bool) -> str:
    from .model import Model

    data, label = _load(data_name)
    model = Model(formula, data)
    model.data_name = label
    return str(model.fit("ml" if ml else "reml").summary())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hierlm`` command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="hierlm", description="Mixed-effects models with lme4 formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser("fit", help="fit a linear mixed model and print lme4's summary")
    p_fit.add_argument("formula", help="lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)'")
    p_fit.add_argument("--data", required=True,
                       help=f"a CSV file or a bundled dataset ({', '.join(datasets.names())})")
    p_fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    sub.add_parser("demo", help=f"fit {DEMO_FORMULA} to the bundled sleepstudy data")
    sub.add_parser("datasets", help="list the bundled datasets")
    args = parser.parse_args(argv)

    warnings.showwarning = _show_warning
    try:
        if args.command == "demo":
            print(_fit(DEMO_FORMULA, "sleepstudy", ml=False))
        elif args.command == "datasets":
            print(datasets.list()[["rows", "description"]].to_string())
        else:
            print(_fit(args.formula, args.data, args.ml))
    except FormulaError as exc:
        print(f"error: {exc.short}", file=sys.stderr)
        return 2
    except HierlmError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
