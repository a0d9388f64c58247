"""Hostile and odd inputs: a clear package error or the number R gives, never a silently wrong one.

Each case asserts the package's exception class and a message that names
the problem, or the value R computes for the same input (R reads integers,
numbers stored as objects and datetimes as doubles).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm import priors
from hierlm.bayes.sample import SamplerError
from hierlm.errors import DataError, FormulaError, HierlmError, ModelError
from hierlm.family import FamilyError
from hierlm.plots import PlotError
from hierlm.priors import PriorError


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(2)
    n = 80
    x = rng.integers(0, 240, n).astype(np.uint8)
    y = 100 + 0.5 * x.astype(float) + rng.normal(0, 5, n)
    return pd.DataFrame({"y": y, "x": x, "g": np.repeat(np.arange(8), 10),
                         "yu": np.clip(y, 0, 255).astype(np.uint8)})


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def test_integer_columns_are_doubles_in_formula_arithmetic(small):
    # R: I(x^2) of an integer column is a double; a uint8 squared must not wrap at 256
    fit = _quiet(hierlm.lmer, "y ~ I(x^2) + (1 | g)", small)
    np.testing.assert_array_equal(fit.design.X[:, 1], small["x"].to_numpy(float) ** 2)
    fit = _quiet(hierlm.lmer, "I(yu - 100) ~ 1 + (1 | g)", small)
    assert fit.fixef.iloc[0] == pytest.approx((small["yu"].to_numpy(float) - 100).mean())


def test_integer_grouping_keeps_its_labels(small):
    fit = _quiet(hierlm.lmer, "y ~ x + (1 | g)", small)
    assert list(fit.ranef()["g"].index[:3]) == ["0", "1", "2"]


def test_numbers_stored_as_objects_are_numbers(small):
    d = small.assign(xo=small["x"].astype(object))
    assert list(_quiet(hierlm.lmer, "y ~ xo + (1 | g)", d).fixef.index) == ["(Intercept)", "xo"]


def test_values_that_print_alike_are_refused(small):
    d = small.assign(m=[1 if i % 2 else "1" for i in range(len(small))])
    with pytest.raises(DataError, match="column 'm' holds values of different types that print alike"):
        hierlm.lmer("y ~ m + (1 | g)", d)


def test_datetimes_are_numbers(small):
    d = small.assign(t=pd.date_range("2020-01-01", periods=len(small), freq="D"))
    fit = _quiet(hierlm.lmer, "y ~ t + (1 | g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "t"]
    # seconds since the epoch, as R's POSIXct
    assert fit.design.X[1, 1] - fit.design.X[0, 1] == pytest.approx(86400.0)


def test_one_level_grouping_factor_is_refused(small):
    with pytest.raises(ModelError, match="grouping factors must have > 1 sampled level: 'one' has 1"):
        hierlm.lmer("y ~ x + (1 | one)", small.assign(one="a"))
    with pytest.raises(ModelError, match="> 1 sampled level"):
        hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | one)",
                     hierlm.datasets.load("cbpp").assign(one="h"))


def test_overflowing_response_is_refused():
    d = hierlm.datasets.load("sleepstudy")
    with pytest.raises(ModelError, match="not finite .* rescale it"):
        hierlm.lmer("Reaction ~ Days + (1 | Subject)", d.assign(Reaction=d["Reaction"] * 1e300))


def test_non_finite_start_is_refused():
    with pytest.raises(HierlmError, match="start must be finite"):
        hierlm.lmer("Reaction ~ Days + (1 | Subject)", hierlm.datasets.load("sleepstudy"), start=[np.nan])


@pytest.mark.parametrize("make, fragment", [
    (lambda: priors.Normal(np.nan, 1), "mu must be a finite number"),
    (lambda: priors.Normal(0, np.inf), "sigma must be a finite number"),
    (lambda: priors.Normal("a", 1), "mu must be a number"),
    (lambda: priors.HalfStudentT(3, None), "sigma must be a number"),
])
def test_priors_must_be_finite_numbers(make, fragment):
    with pytest.raises(priors.PriorError, match=fragment):
        make()
    assert issubclass(priors.PriorError, HierlmError)


def test_column_named_one_in_backticks_is_used(small):
    d = small.assign(**{"1": np.linspace(0, 1, len(small))})
    fit = _quiet(hierlm.lmer, "y ~ `1` + (1 | g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "`1`"]


def test_unicode_grouping_name(small):
    fit = _quiet(hierlm.lmer, "y ~ x + (1 | Gruppé)", small.rename(columns={"g": "Gruppé"}))
    assert fit.ngroups == {"Gruppé": 8}


def test_formula_code_is_not_run(small):
    with pytest.raises(FormulaError, match="only named functions may be called"):
        hierlm.lmer('y ~ I(__import__("os").getpid()) + (1 | g)', small)


# ---------------------------------------------------------------------------
# The hostile-input table: formula syntax, data types and values, API misuse.
# Each case: the package's exception class and a fragment of its message that
# names the problem.
# ---------------------------------------------------------------------------
S = hierlm.datasets.load("sleepstudy")
C = hierlm.datasets.load("cbpp")
L, G, M = hierlm.lmer, hierlm.glmer, hierlm.Model
F = "Reaction ~ Days + (Days | Subject)"
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = L(F, S)
    gfit = G("cbind(incidence, size - incidence) ~ period + (1 | herd)", C)

TABLE = [
    # formula syntax
    ('empty formula', FormulaError, "the\\ formula\\ is\\ empty;\\ write\\ e\\.g\\.\\ 'y\\ \\~\\ x\\ \\+\\ \\(1\\ \\|", lambda: L("", S)),
    ('only spaces', FormulaError, "the\\ formula\\ is\\ empty;\\ write\\ e\\.g\\.\\ 'y\\ \\~\\ x\\ \\+\\ \\(1\\ \\|", lambda: L("   ", S)),
    ('formula not str', FormulaError, "the\\ formula\\ must\\ be\\ a\\ string\\ such\\ as\\ 'y\\ \\~\\ x\\ \\+", lambda: L(42, S)),
    ('formula list', FormulaError, "the\\ formula\\ must\\ be\\ a\\ string\\ such\\ as\\ 'y\\ \\~\\ x\\ \\+", lambda: L(["y ~ x"], S)),
    ('two tildes', FormulaError, "the\\ formula\\ has\\ more\\ than\\ one\\ '\\~'", lambda: L("Reaction ~ Days ~ Days + (1|Subject)", S)),
    ('no tilde', FormulaError, "the\\ formula\\ has\\ no\\ '\\~';\\ write\\ 'response\\ \\~", lambda: L("Reaction + (1|Subject)", S)),
    ('no response', FormulaError, "the\\ formula\\ has\\ no\\ response\\ left\\ of\\ '\\~'", lambda: L("~ Days + (1|Subject)", S)),
    ('nothing right', FormulaError, "nothing\\ right\\ of\\ '\\~'", lambda: L("Reaction ~ ", S)),
    ('bar outside parens', FormulaError, 'random\\-effects\\ terms\\ must\\ be\\ in\\ parentheses:', lambda: L("Reaction ~ Days | Subject", S)),
    ('empty group', FormulaError, "empty\\ grouping\\ factor\\ after\\ '\\|'\\ or\\ '/'", lambda: L("Reaction ~ Days + (1 | )", S)),
    ('empty lhs of bar', FormulaError, "nothing\\ left\\ of\\ '\\|':\\ write\\ \\(1\\ \\|\\ group\\)\\ for\\ a", lambda: L("Reaction ~ Days + ( | Subject)", S)),
    ('unclosed paren', FormulaError, "unbalanced\\ parentheses:\\ this\\ '\\('\\ is\\ never", lambda: L("Reaction ~ Days + (1|Subject", S)),
    ('extra close paren', FormulaError, "unbalanced\\ parentheses:\\ this\\ '\\)'\\ has\\ no", lambda: L("Reaction ~ Days) + (1|Subject)", S)),
    ('double plus', FormulaError, 'empty\\ term\\ \\(two\\ operators\\ in\\ a\\ row\\?\\)', lambda: L("Reaction ~ Days + + (1|Subject)", S)),
    ('subtracted bar', FormulaError, 'a\\ random\\-effects\\ term\\ cannot\\ be\\ subtracted', lambda: L("Reaction ~ Days - (1|Subject)", S)),
    ('no random term', FormulaError, 'the\\ formula\\ has\\ no\\ random\\-effects\\ term\\ such\\ as', lambda: L("Reaction ~ Days", S)),
    ('unknown column fixed', FormulaError, "unknown\\ column\\ 'Dayz';\\ did\\ you\\ mean\\ 'Days'\\?", lambda: L("Reaction ~ Dayz + (1|Subject)", S)),
    ('unknown column group', FormulaError, "unknown\\ column\\ 'Subjekt';\\ did\\ you\\ mean", lambda: L("Reaction ~ Days + (1|Subjekt)", S)),
    ('unknown column response', FormulaError, "unknown\\ column\\ 'Reactoin';\\ did\\ you\\ mean", lambda: L("Reactoin ~ Days + (1|Subject)", S)),
    ('unknown function', FormulaError, "unknown\\ function\\ 'foo'\\ in\\ 'foo\\(Days\\)':\\ a", lambda: L("Reaction ~ foo(Days) + (1|Subject)", S)),
    ('dunder call', FormulaError, "the\\ name\\ '__import__'\\ is\\ not\\ allowed\\ in", lambda: L("Reaction ~ __import__('os') + (1|Subject)", S)),
    ('attribute access', FormulaError, "unknown\\ column\\ 'Days\\.real';\\ did\\ you\\ mean", lambda: L("Reaction ~ Days.real + (1|Subject)", S)),
    ('lambda', FormulaError, "lambda\\ not\\ allowed\\ in\\ 'I\\(\\(lambda:\\ 1\\)\\(\\)\\)':\\ a", lambda: L("Reaction ~ I((lambda: 1)()) + (1|Subject)", S)),
    ('subscript', FormulaError, "subscript\\ not\\ allowed\\ in\\ 'I\\(Days\\[0\\]\\)':\\ a", lambda: L("Reaction ~ I(Days[0]) + (1|Subject)", S)),
    ('group is expression', FormulaError, "grouping\\ factor\\ 'log\\(Subject\\)'\\ must\\ be\\ a\\ column", lambda: L("Reaction ~ Days + (1|log(Subject))", S)),
    ('group is number', FormulaError, "grouping\\ factor\\ '1'\\ must\\ be\\ a\\ column\\ name\\ \\(or", lambda: L("Reaction ~ Days + (1|1)", S)),
    ('zero bar', FormulaError, 'the\\ random\\-effects\\ term\\ \\(0\\ \\|\\ Subject\\)\\ has\\ no', lambda: L("Reaction ~ Days + (0|Subject)", S)),
    ('triple bar', FormulaError, 'a\\ random\\-effects\\ term\\ has\\ the\\ form\\ \\(expr\\ \\|', lambda: L("Reaction ~ Days + (1|||Subject)", S)),
    ('bar in bar', FormulaError, "grouping\\ factor\\ '\\(1\\|Subject\\)'\\ must\\ be\\ a\\ column", lambda: L("Reaction ~ Days + (1|(1|Subject))", S)),
    ('tilde in term', FormulaError, "'Days\\ \\~\\ 1'\\ is\\ not\\ a\\ sum\\ of\\ terms\\ \\(a\\ '\\~'\\ or\\ '\\|'", lambda: L("Reaction ~ Days + (Days ~ 1|Subject)", S)),
    ('string literal term', FormulaError, "cannot\\ parse\\ the\\ terms\\ ''a'':\\ String\\ literals", lambda: L("Reaction ~ 'a' + (1|Subject)", S)),
    ('number term 2', FormulaError, "cannot\\ parse\\ the\\ terms\\ '2':\\ Numeric\\ literals", lambda: L("Reaction ~ 2 + (1|Subject)", S)),
    ('slash empty', FormulaError, "empty\\ grouping\\ factor\\ after\\ '\\|'\\ or\\ '/'", lambda: L("Reaction ~ Days + (1|Subject/)", S)),
    ('unbalanced backtick', FormulaError, "cannot\\ parse\\ the\\ terms\\ '`Days':\\ Formula\\ ended", lambda: L("Reaction ~ `Days + (1|Subject)", S)),
    ('backtick unknown', FormulaError, "unknown\\ column\\ 'Day\\ s';\\ did\\ you\\ mean\\ 'Days'\\?", lambda: L("Reaction ~ `Day s` + (1|Subject)", S)),
    ('zero weight in lmm', DataError, 'weights\\ of\\ a\\ linear\\ mixed\\ model\\ must\\ be\\ positive;\\ zero\\ in\\ 18\\ row', lambda: L("Reaction ~ Days + (1|Subject)", S, weights=S["Days"])),
    ('negative weight in lmm', DataError, 'weights\\ must\\ not\\ be\\ negative', lambda: L("Reaction ~ Days + (1|Subject)", S, weights=S["Days"] - 1)),
    ('cbind in lmm', ModelError, 'cbind\\(\\)\\ responses\\ are\\ for\\ binomial\\ generalized', lambda: L("cbind(Reaction, Days) ~ 1 + (1|Subject)", S)),
    ('cbind three args', FormulaError, "the\\ response\\ 'cbind\\(incidence,\\ size,\\ size\\)'", lambda: G("cbind(incidence, size, size) ~ period + (1|herd)", C)),
    ('cbind one arg', FormulaError, "the\\ response\\ 'cbind\\(incidence\\)'\\ must\\ be", lambda: G("cbind(incidence) ~ period + (1|herd)", C)),
    ('re_form bad', FormulaError, "re_form\\ must\\ start\\ with\\ '\\~',\\ e\\.g\\.\\ '\\~\\(1\\ \\|", lambda: fit.predict(re_form="(1|Subject)")),
    ('re_form unknown group', FormulaError, "re_form\\ names\\ grouping\\ factor\\ 'Nope',\\ not\\ in", lambda: fit.predict(re_form="~(1|Nope)")),
    ('re_form type', HierlmError, "re_form\\ must\\ be\\ None,\\ False,\\ '\\~0'\\ or\\ a\\ formula", lambda: fit.predict(re_form=3)),
    ('comma in formula', FormulaError, "cannot\\ parse\\ the\\ terms\\ 'Days,\\ Subject':\\ Unknown", lambda: L("Reaction ~ Days, Subject + (1|Subject)", S)),
    ('semicolon', FormulaError, "cannot\\ parse\\ the\\ terms\\ 'Days;\\ \\(1\\|Subject\\)':", lambda: L("Reaction ~ Days; (1|Subject)", S)),
    ('hash', FormulaError, "cannot\\ parse\\ the\\ terms\\ 'Days\\ \\#\\ c':\\ Unknown", lambda: L("Reaction ~ Days # c + (1|Subject)", S)),
    # data types and values
    ('data is list', DataError, 'data\\ must\\ be\\ a\\ pandas\\ DataFrame,\\ not\\ list', lambda: L(F, [1, 2, 3])),
    ('data is None', DataError, 'data\\ must\\ be\\ a\\ pandas\\ DataFrame,\\ not\\ NoneType', lambda: L(F, None)),
    ('data is ndarray', DataError, 'data\\ must\\ be\\ a\\ pandas\\ DataFrame,\\ not\\ ndarray', lambda: L(F, np.zeros((3, 3)))),
    ('empty frame', DataError, 'the\\ data\\ has\\ no\\ rows', lambda: L(F, S.iloc[:0])),
    ('all NA response', DataError, 'every\\ row\\ has\\ a\\ missing\\ value\\ \\(columns', lambda: L(F, S.assign(Reaction=np.nan))),
    ('na_action raise', DataError, "1\\ row\\(s\\)\\ have\\ missing\\ values\\ in\\ 'Reaction'\\ \\(1\\);", lambda: L(F, S.assign(Reaction=np.where(S.index == 3, np.nan, S.Reaction)), na_action="raise")),
    ('na_action bad', DataError, "na_action\\ must\\ be\\ 'omit'\\ or\\ 'raise',\\ not\\ 'drop'", lambda: L(F, S, na_action="drop")),
    ('inf in response', DataError, "column\\ 'Reaction'\\ has\\ 1\\ infinite\\ value\\(s\\),", lambda: L(F, S.assign(Reaction=np.where(S.index == 3, np.inf, S.Reaction)))),
    ('inf in predictor', DataError, "column\\ 'Days'\\ has\\ 1\\ infinite\\ value\\(s\\),\\ first\\ at", lambda: L(F, S.assign(Days=np.where(S.index == 3, np.inf, S.Days)))),
    ('string response', DataError, "the\\ response\\ 'Subject'\\ is\\ not\\ numeric\\ \\(it\\ holds", lambda: L("Subject ~ Days + (1|Subject)", S)),
    ('response log negative', DataError, 'the\\ response\\ log\\(Days\\ \\-\\ 5\\)\\ is\\ not\\ finite\\ in\\ 108', lambda: L("log(Days - 5) ~ 1 + (1|Subject)", S)),
    ('predictor log zero', DataError, 'the\\ fixed\\-effects\\ model\\-matrix\\ column', lambda: L("Reaction ~ log(Days) + (1|Subject)", S)),
    ('predictor sqrt negative', DataError, 'the\\ fixed\\-effects\\ model\\-matrix\\ column', lambda: L("Reaction ~ sqrt(Days - 5) + (1|Subject)", S)),
    ('one level group', ModelError, 'grouping\\ factors\\ must\\ have\\ >\\ 1\\ sampled\\ level:', lambda: L("Reaction ~ Days + (1|g)", S.assign(g="a"))),
    ('levels = n', ModelError, 'number\\ of\\ levels\\ of\\ each\\ grouping\\ factor\\ must', lambda: L("Reaction ~ Days + (1|i)", S.assign(i=np.arange(len(S))))),
    ('too many random effects', ModelError, 'number\\ of\\ observations\\ \\(=180\\)\\ <=\\ number\\ of', lambda: L("Reaction ~ 1 + (Days|g)", S.assign(g=np.arange(len(S)) // 2))),
    ('mixed types column', DataError, "column\\ 'm'\\ holds\\ values\\ of\\ different\\ types\\ that", lambda: L("Reaction ~ m + (1|Subject)", S.assign(m=[1 if i % 2 else "1" for i in range(len(S))]))),
    ('p >= n', ModelError, 'the\\ model\\ has\\ 180\\ fixed\\ effects\\ for\\ 180', lambda: L("Reaction ~ factor(r) + (1|Subject)", S.assign(r=np.arange(len(S))))),
    ('binomial response > 1', DataError, "the\\ binomial\\ response\\ 'Days'\\ must\\ lie\\ in\\ \\[0,\\ 1\\]", lambda: G("Days ~ 1 + (1|Subject)", S)),
    ('binomial negative count', DataError, "cbind\\(\\)\\ column\\ 'incidence\\ \\-\\ 5'\\ has\\ negative", lambda: G("cbind(incidence - 5, size) ~ period + (1|herd)", C)),
    ('binomial noninteger count', DataError, "cbind\\(\\)\\ column\\ 'incidence\\ \\+\\ 0\\.5'\\ has", lambda: G("cbind(incidence + 0.5, size) ~ period + (1|herd)", C)),
    ('poisson negative', DataError, "the\\ Poisson\\ response\\ 'y'\\ must\\ be\\ a\\ count\\ >=\\ 0;", lambda: G("y ~ 1 + (1|Subject)", S.assign(y=-S.Days), family="poisson")),
    ('poisson noninteger', DataError, "the\\ Poisson\\ response\\ 'y'\\ must\\ be\\ a\\ whole\\-number", lambda: G("y ~ 1 + (1|Subject)", S.assign(y=S.Days + 0.5), family="poisson")),
    ('constant binomial', HierlmError, 'the\\ response\\ is\\ constant:\\ a\\ GLMM\\ needs\\ at\\ least', lambda: G("y ~ 1 + (1|Subject)", S.assign(y=0), family="binomial")),
    ('negative weights', DataError, 'weights\\ must\\ not\\ be\\ negative;\\ negative\\ in\\ 56', lambda: G("incidence/size ~ period + (1|herd)", C, weights=-C["size"])),
    ('weights wrong length', DataError, 'weights\\ has\\ 2\\ values\\ but\\ the\\ data\\ has\\ 56\\ rows;', lambda: G("incidence/size ~ period + (1|herd)", C, weights=[1, 2])),
    ('weights unknown column', DataError, "weights='sise'\\ is\\ not\\ a\\ column\\ of\\ the\\ data;\\ did", lambda: G("incidence/size ~ period + (1|herd)", C, weights="sise")),
    ('offset wrong length', DataError, 'offset\\ has\\ 2\\ values\\ but\\ the\\ data\\ has\\ 56\\ rows;', lambda: G("incidence ~ period + (1|herd)", C, family="poisson", offset=[1, 2])),
    ('weights nan', DataError, 'weights\\ is\\ missing\\ or\\ infinite\\ in\\ 56\\ row\\(s\\),', lambda: G("incidence/size ~ period + (1|herd)", C, weights=np.full(len(C), np.nan))),
    ('y huge', ModelError, 'the\\ profiled\\ deviance\\ is\\ not\\ finite\\ at\\ any', lambda: L(F, S.assign(Reaction=S.Reaction * 1e300))),
    ('duplicate column names', DataError, "the\\ data\\ has\\ more\\ than\\ one\\ column\\ named\\ 'Days';", lambda: L(F, pd.concat([S, S[["Days"]]], axis=1))),
    # API misuse
    ('method unknown', HierlmError, "method\\ must\\ be\\ one\\ of\\ \\('reml',\\ 'ml',\\ 'laplace',", lambda: M(F, S).fit("bayes")),
    ('method laplace lmm', HierlmError, "method\\ 'laplace'\\ is\\ for\\ generalized\\ linear\\ mixed\\ models", lambda: M(F, S).fit("laplace")),
    ('method reml glmm', HierlmError, 'a\\ binomial\\ model\\ is\\ fit\\ by\\ maximum\\ likelihood', lambda: M("cbind(incidence, size - incidence) ~ period + (1|herd)", C, family="binomial").fit("reml")),
    ('family unknown', FamilyError, "family\\ 'tweedie'\\ is\\ not\\ supported;\\ available:", lambda: M(F, S, family="tweedie")),
    ('family not str', FamilyError, 'family\\ must\\ be\\ a\\ name\\ \\(gaussian,.*not\\ NoneType', lambda: M(F, S, family=None)),
    ('link bad', FamilyError, "link\\ 'log1p'\\ is\\ not\\ available\\ for\\ family", lambda: M("cbind(incidence, size - incidence) ~ period + (1|herd)", C, family="binomial", link="log1p")),
    ('link gaussian', FamilyError, "link\\ 'log'\\ is\\ not\\ available\\ for\\ the\\ gaussian", lambda: M(F, S, link="log")),
    ('control unknown', HierlmError, "unknown\\ control\\ option\\(s\\)\\ \\['xtol'\\]\\ for\\ a", lambda: L(F, S, xtol=1e-3)),
    ('start wrong length', HierlmError, "start\\ must\\ have\\ 3\\ values\\ \\(theta,\\ lme4's\\ order\\),", lambda: L(F, S, start=[1.0])),
    ('start nan', HierlmError, 'start\\ must\\ be\\ finite,\\ not\\ \\[nan,\\ 0\\.0,\\ 1\\.0\\]', lambda: L(F, S, start=[np.nan, 0, 1])),
    ('start string', HierlmError, "start\\ must\\ be\\ numbers\\ \\(theta,\\ lme4's\\ order\\),", lambda: L(F, S, start="abc")),
    ('maxeval negative', HierlmError, 'control\\ option\\ maxeval\\ must\\ be\\ a\\ positive', lambda: L(F, S, maxeval=-1)),
    ('nAGQ bad', HierlmError, 'nAGQ\\ must\\ be\\ an\\ integer\\ from\\ 0\\ to\\ 25,\\ not\\ 30', lambda: G("cbind(incidence, size - incidence) ~ period + (1|herd)", C, nAGQ=30)),
    ('nAGQ vector term', HierlmError, 'nAGQ\\ >\\ 1\\ is\\ only\\ available\\ for\\ models\\ with\\ a', lambda: G("cbind(incidence, size - incidence) ~ period + (period|herd)", C, nAGQ=5)),
    ('glmer gaussian', HierlmError, 'glmer\\ fits\\ binomial,\\ Poisson,\\ negative\\ binomial\\ and\\ Gamma\\ models;', lambda: G(F, S, family="gaussian")),
    ('map option unknown', HierlmError, "unknown\\ option\\(s\\)\\ \\['foo'\\]\\ for\\ MAP\\ of\\ a\\ gaussian", lambda: M(F, S).fit("map", foo=1)),
    ('map priors string', HierlmError, "priors\\ must\\ be\\ 'flat'\\ or\\ a\\ PriorSet", lambda: M(F, S).fit("map", priors="weak")),
    ('nuts option unknown', HierlmError, "unknown\\ option\\(s\\)\\ \\['steps'\\]\\ for\\ NUTS;\\ valid:", lambda: M(F, S).fit("nuts", steps=10)),
    ('nuts draws zero', SamplerError, 'draws\\ must\\ be\\ an\\ integer\\ >=\\ 1,\\ not\\ 0', lambda: M(F, S).fit("nuts", draws=0)),
    ('set_prior unknown', PriorError, "no\\ parameter\\ 'Dayz'\\ in\\ this\\ model;\\ valid\\ prior", lambda: M(F, S).set_prior("Dayz", priors.Normal(0, 1))),
    ('set_prior not prior', PriorError, 'a\\ prior\\ must\\ be\\ made\\ by\\ hierlm\\.priors\\ \\(Normal,', lambda: M(F, S).set_prior("Days", 3)),
    ('prior nan', PriorError, 'Normal:\\ mu\\ must\\ be\\ a\\ finite\\ number,\\ not\\ nan', lambda: priors.Normal(np.nan, 1)),
    ('prior negative sd', PriorError, 'Normal:\\ sigma\\ must\\ be\\ a\\ positive\\ number,\\ not', lambda: priors.Normal(0, -1)),
    ('predict newdata list', DataError, 'newdata\\ must\\ be\\ a\\ pandas\\ DataFrame,\\ not\\ list', lambda: fit.predict([1, 2])),
    ('predict new level', DataError, "new\\ level\\(s\\)\\ \\['999'\\]\\ of\\ grouping\\ factor", lambda: fit.predict(S.assign(Subject="999").head(2))),
    ('predict missing column', DataError, "newdata\\ lacks\\ column\\(s\\)\\ \\['Subject'\\]\\ that\\ the", lambda: fit.predict(S[["Days"]])),
    ('predict type bad', HierlmError, "type\\ must\\ be\\ 'link'\\ or\\ 'response',\\ not\\ 'prob'", lambda: fit.predict(type="prob")),
    ('fitted type bad', HierlmError, "type\\ must\\ be\\ 'link'\\ or\\ 'response',\\ not\\ 'mu'", lambda: fit.fitted(type="mu")),
    ('residuals type bad', HierlmError, "type\\ must\\ be\\ one\\ of\\ 'response',\\ 'pearson',", lambda: fit.residuals(type="studentized")),
    ('simulate nsim 0', HierlmError, 'nsim\\ must\\ be\\ a\\ positive\\ integer,\\ not\\ 0', lambda: fit.simulate(0)),
    ('simulate nsim float', HierlmError, 'nsim\\ must\\ be\\ a\\ positive\\ integer,\\ not\\ 1\\.5', lambda: fit.simulate(1.5)),
    ('confint level', HierlmError, 'level\\ must\\ be\\ in\\ \\(0,\\ 1\\)\\ \\(e\\.g\\.\\ 0\\.95\\),\\ not\\ 95', lambda: fit.confint(level=95)),
    ('confint method', HierlmError, "confint\\ method\\ must\\ be\\ 'profile',\\ 'wald'\\ or", lambda: fit.confint(method="bca")),
    ('confint parm', HierlmError, "parm\\ 'nope'\\ is\\ not\\ a\\ parameter\\ of\\ this\\ model;", lambda: fit.confint(parm="nope")),
    ('summary ddf', HierlmError, "ddf\\ must\\ be\\ one\\ of\\ 'satterthwaite',", lambda: fit.summary(ddf="wald")),
    ('coef_table ddf', HierlmError, "ddf\\ must\\ be\\ one\\ of\\ 'satterthwaite',", lambda: fit.coef_table(ddf=3)),
    ('anova bad type', HierlmError, 'type\\ must\\ be\\ 1,\\ 2\\ or\\ 3', lambda: hierlm.anova(fit, type=4)),
    ('anova mixed kinds', HierlmError, 'anova:\\ gfit\\ is\\ a\\ GLMMFit;\\ likelihood\\-ratio', lambda: hierlm.anova(fit, gfit)),
    ('refit wrong length', HierlmError, 'newresp\\ has\\ 3\\ values;\\ the\\ fit\\ used\\ 180\\ rows', lambda: fit.refit([1, 2, 3])),
    ('refit nan', HierlmError, 'newresp\\ has\\ missing\\ or\\ infinite\\ values', lambda: fit.refit(np.full(len(S), np.nan))),
    ('boot nsim', HierlmError, 'nsim\\ must\\ be\\ a\\ positive\\ integer\\ \\(the\\ number\\ of', lambda: hierlm.boot_mer(fit, lambda f: f.fixef, nsim=0)),
    ('boot seed', HierlmError, 'seed\\ must\\ be\\ None\\ or\\ a\\ non\\-negative\\ integer,', lambda: hierlm.boot_mer(fit, lambda f: f.fixef, nsim=2, seed=-1)),
    ('boot glmm', HierlmError, 'boot_mer:\\ fit\\ is\\ a\\ GLMMFit;\\ the\\ parametric', lambda: hierlm.boot_mer(gfit, lambda f: f.fixef, nsim=2)),
    ('pb_test same', HierlmError, "pb_test:\\ small\\ \\('Reaction\\ \\~\\ Days\\ \\+\\ \\(Days\\ \\|", lambda: hierlm.pb_test(fit, fit, nsim=2)),
    ('plot kind', PlotError, "unknown\\ plot\\ kind\\ 'histogram';\\ valid\\ kinds:", lambda: fit.plot("histogram")),
    ('plot group', PlotError, "shrinkage:\\ 'Nope'\\ is\\ not\\ a\\ grouping\\ factor\\ of", lambda: fit.plot("shrinkage", group="Nope")),
    ('dataset unknown', DataError, "no\\ bundled\\ dataset\\ 'iris';\\ available:", lambda: hierlm.datasets.load("iris")),
    ('to_bambi glmm', HierlmError, 'to_bambi\\(\\)\\ is\\ not\\ available\\ for\\ binomial\\ fits', lambda: gfit.to_bambi()),
    ('overdispersion bernoulli', HierlmError, 'overdispersion\\ cannot\\ be\\ assessed\\ for\\ a\\ 0/1', lambda: G("y ~ 1 + (1|Subject)", S.assign(y=(S.Days > 4).astype(int))).overdispersion()),
    ('icc cauchit', HierlmError, 'no\\ distribution\\-specific\\ variance\\ for\\ the', lambda: M("cbind(incidence, size - incidence) ~ period + (1|herd)", C, family="binomial", link="cauchit").fit().icc()),
    ('compare empty', HierlmError, 'compare\\ needs\\ at\\ least\\ one\\ model', lambda: hierlm.compare({})),
]


@pytest.mark.parametrize("name, cls, fragment, call", TABLE, ids=[t[0] for t in TABLE])
def test_hostile_table(name, cls, fragment, call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(cls, match=fragment):
            call()
    assert issubclass(cls, HierlmError)


# the command line: a bad input is one line on stderr and exit code 2, no traceback
@pytest.mark.parametrize("argv, fragment", [
    (["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"], "unknown column 'Dayz'"),
    (["fit", "Reaction ~ Days + (1 | Subject", "--data", "sleepstudy"], "unbalanced parentheses"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "iris"], "no bundled dataset 'iris'"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "no_such_file.csv"], "no such file"),
    (["fit", "Reaction ~ I(__import__('os').getpid()) + (1 | Subject)", "--data", "sleepstudy"],
     "only named functions"),
    (["fit", "Reaction ~ Days", "--data", "sleepstudy"], "no random-effects term"),
])
def test_cli_reports_bad_input_in_one_line(argv, fragment, capsys):
    from hierlm.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_sorting_the_callers_frame_afterwards_changes_nothing():
    d = hierlm.datasets.load("sleepstudy")
    fit = _quiet(hierlm.lmer, "Reaction ~ Days + (Days | Subject)", d)
    before = fit.fitted().copy()
    covariate_rows = fit.model.data.iloc[fit.design.prepared.rows]["Days"].to_numpy().copy()
    d.sort_values("Reaction", inplace=True)
    d["Days"] = 0
    pd.testing.assert_series_equal(fit.fitted(), before)
    np.testing.assert_array_equal(fit.model.data.iloc[fit.design.prepared.rows]["Days"].to_numpy(), covariate_rows)


def test_logical_response_is_zero_one():
    """R's lmer reads a logical response as 0/1 (lme4 1.1-31 on sleepstudy with
    b = Days > 4 prints (Intercept) -0.1818, Days 0.1515): the design is
    balanced, so the estimates are least squares', exactly -2/11 and 5/33."""
    d = hierlm.datasets.load("sleepstudy")
    fit = _quiet(hierlm.lmer, "b ~ Days + (1 | Subject)", d.assign(b=d["Days"] > 4))
    np.testing.assert_allclose(fit.fixef.to_numpy(), [-2 / 11, 5 / 33], atol=1e-10)


def test_predict_codes_new_data_as_the_fit(small):
    """Datetimes, durations and small integer types in newdata are the numbers
    the fit used (predict on the fit's own rows = fitted)."""
    d = hierlm.datasets.load("sleepstudy")
    d["dur"] = pd.to_timedelta(d["Days"], unit="D")
    d["t"] = pd.Timestamp("2020-01-01") + d["dur"]
    for formula in ("Reaction ~ dur + (1 | Subject)", "Reaction ~ t + (1 | Subject)"):
        fit = _quiet(hierlm.lmer, formula, d)
        np.testing.assert_allclose(fit.predict(d.head(3)).to_numpy(), fit.fitted().to_numpy()[:3])
    fit = _quiet(hierlm.lmer, "y ~ I(x^2) + (1 | g)", small)  # x is uint8
    np.testing.assert_allclose(fit.predict(small.head(4)).to_numpy(), fit.fitted().to_numpy()[:4])
    # a uint8 column that is also a grouping factor is still squared without wrapping
    fit = _quiet(hierlm.lmer, "y ~ I(x^2) + (1 | g) + (1 | x)", small)
    np.testing.assert_array_equal(fit.design.X[:, 1], small["x"].to_numpy(float) ** 2)


def test_factor_of_integers_keeps_r_level_names(small):
    d = small.assign(k=np.tile([1, 2, 3, 4], len(small) // 4))
    assert list(_quiet(hierlm.lmer, "y ~ factor(k) + (1 | g)", d).fixef.index) == \
        ["(Intercept)", "factor(k)2", "factor(k)3", "factor(k)4"]


def test_offset_with_a_constant_predicts_on_new_data():
    cb = hierlm.datasets.load("cbpp")
    fit = _quiet(hierlm.glmer, "incidence ~ period + offset(log(size * pi)) + (1 | herd)", cb, family="poisson")
    np.testing.assert_allclose(fit.predict(cb.head(3)).to_numpy(), fit.predict().to_numpy()[:3])
