"""Fuzzing the formula layer and lmer: any failure must be the package's own error.

Hypothesis draws formulas from lme4's grammar (terms, operators, calls,
bars, nesting, backticks, numbers, stray characters) and fits them to a
small frame.  A drawn formula may be wrong; what it may not do is raise
anything but a :class:`hierlm.errors.HierlmError` (a low-level exception
leaking out is a bug: the user gets no message that names the problem), and
a fit it returns must have finite estimates.
Derandomized (a fixed sequence of examples), so the run is the same in CI every time.
``HIERLM_FUZZ_SCALE=5 python -m pytest tests/test_fuzz.py`` runs five times
as many (10,000 parses), for a longer check outside CI.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import hierlm  # noqa: E402
from hierlm.errors import HierlmError  # noqa: E402
from hierlm.formula import parse_formula  # noqa: E402

SCALE = int(os.environ.get("HIERLM_FUZZ_SCALE", "1"))
COLUMNS = ["y", "x", "z", "f", "g", "h", "my x", "1", "o", "b", "n"]


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 48
    d = pd.DataFrame({
        "y": rng.normal(10, 2, n), "x": rng.normal(size=n), "z": rng.integers(0, 5, n),
        "f": rng.choice(["a", "b", "c"], n), "g": np.repeat(list("abcdefgh"), 6),
        "h": np.tile(list("pq"), n // 2), "my x": rng.normal(size=n), "1": rng.uniform(size=n),
        "o": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"], ordered=True),
        "b": rng.random(n) > 0.5, "n": rng.integers(1, 9, n),
    })
    d.loc[3, "x"] = np.nan
    return d


FRAME = _frame()

# mostly the frame's columns (so that most formulas fit), sometimes odd names
names = st.sampled_from(["x", "z", "f", "o", "b", "n", "`my x`", "`1`"] * 3
                        + ["q", "x.y", "TRUE", "1", "0", "g", "I(x**2)", "I(x^2 + 1)", "I(-z^2)"])
calls = st.sampled_from(["log", "sqrt", "exp", "I", "scale", "poly", "factor", "as.factor", "C", "np.log",
                         "eval", "abs", "offset", "cbind", "__import__"])
ops = st.sampled_from([" + ", " + ", ":", "*", " - ", "/", "^"] * 3 + [" %in% ", "**", " | ", " || ", ", ", " ~ "])
junk = st.sampled_from(["", "(", ")", "`", "'", "\"", "[", "]", "=", "#", "\\", "é", "  ", "-", "+", "~", "|"])


@st.composite
def expressions(draw, depth=0):
    kind = draw(st.sampled_from([0, 0, 1, 2, 3, 4] if depth < 2 else [0, 1]))
    if kind <= 1:
        return draw(names)
    if kind == 2:
        args = draw(st.lists(expressions(depth + 1), min_size=1, max_size=2))
        extra = draw(st.sampled_from(["", ", 2", ", raw = TRUE", ", 0", ", contr.poly"]))
        return f"{draw(calls)}({', '.join(args)}{extra})"
    if kind == 3:
        return f"{draw(expressions(depth + 1))}{draw(ops)}{draw(expressions(depth + 1))}"
    return f"({draw(expressions(depth + 1))})"


@st.composite
def formulas(draw):
    lhs = draw(st.sampled_from(["y"] * 6 + ["log(y)", "cbind(n, n)", "", "y + x", "`my x`", "I(y^2)"]))
    fixed = draw(expressions())
    groups = st.sampled_from(["g", "h", "g/h", "g:h", "f"] * 4 + ["`g`", "x", "", "g/", "1"])
    bars = draw(st.lists(st.tuples(expressions(), groups, st.sampled_from(["|", "||"])), min_size=1, max_size=2))
    rhs = " + ".join([fixed] + [f"({e} {bar} {grp})" for e, grp, bar in bars])
    text = f"{lhs} ~ {rhs}"
    if draw(st.integers(0, 3)) == 0:  # a stray character somewhere
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(junk) + text[pos:]
    return text


def _only_package_errors(fn, *args, **kw):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kw)
    except HierlmError:
        return None


@settings(max_examples=2000 * SCALE, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(formulas())
def test_parse_formula_raises_only_package_errors(text):
    _only_package_errors(parse_formula, text)


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(formulas())
def test_lmer_raises_only_package_errors(text):
    fit = _only_package_errors(hierlm.lmer, text, FRAME, calc_derivs=False)
    if fit is not None:  # a fit is a fit: no silently non-finite estimate
        assert np.all(np.isfinite(fit.fixef.to_numpy())) and np.isfinite(fit.sigma), text
        assert np.all(np.isfinite(fit.theta)), text


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
       .flatmap(lambda t: st.sampled_from([t, f"y ~ {t}", f"y ~ x + ({t} | g)"])))
def test_arbitrary_text_raises_only_package_errors(text):
    _only_package_errors(parse_formula, text)
    _only_package_errors(hierlm.lmer, text, FRAME)
