"""The lme4 formula grammar: findbars/nobars, ||, /, positions in errors."""

import pytest

from hierlm.errors import FormulaError
from hierlm.formula import RandomTerm, parse_formula
from hierlm.formula.terms import parse_expression, parse_terms


def test_random_slope():
    f = parse_formula("Reaction ~ Days + (Days|Subject)")
    assert f.response == "Reaction"
    assert f.fixed == "Days"
    assert f.random == (RandomTerm("Days", ("Subject",)),)


def test_several_bars_same_group():
    f = parse_formula("y ~ x + (1|g) + (0 + x|g)")
    assert [str(t) for t in f.random] == ["(1 | g)", "(0 + x | g)"]


def test_double_bar_splits_terms():
    f = parse_formula("y ~ x + (x || g)")
    assert f.random == (RandomTerm("1", ("g",)), RandomTerm("0 + x", ("g",)))


def test_double_bar_without_intercept_and_interaction():
    f = parse_formula("y ~ (0 + a*b || g)")
    assert [t.expr for t in f.random] == ["0 + a", "0 + b", "0 + a:b"]


def test_nesting_slash_uses_lme4_names():
    f = parse_formula("strength ~ 1 + (1|batch/cask)")
    assert [t.group for t in f.random] == ["batch", "cask:batch"]
    f3 = parse_formula("y ~ (1|a/b/c)")
    # lme4 1.1-31: names(ngrps(lmer(y ~ (1|a/b/c), d))) has "c:(b:a)"
    assert [t.group for t in f3.random] == ["a", "b:a", "c:(b:a)"]
    assert f3.random[2].factors == ("c", "b", "a")


def test_interaction_group():
    f = parse_formula("y ~ 1 + service + (1|dept:service)")
    assert f.random[0].factors == ("dept", "service")
    assert f.fixed == "1 + service"


def test_minus_one_and_functions_kept_in_fixed_part():
    f = parse_formula("log(y) ~ I(x^2) - 1 + poly(z, 2) + (1|g)")
    assert f.response == "log(y)"
    assert f.fixed == "I(x^2) - 1 + poly(z, 2)"


def test_only_random_terms_gives_intercept():
    assert parse_formula("y ~ (1|g)").fixed == "1"


def test_r_power_translates_to_formulaic():
    # each factor: R's label (deparse) and the expression formulaic evaluates
    f = parse_expression("I(x^2)")
    assert (f.label, f.expr, f.variables) == ("I(x^2)", "I(x ** 2)", ("x",))
    f = parse_expression("factor(Days)")
    assert (f.label, f.expr) == ("factor(Days)", "C(Days)")
    f = parse_expression("as.factor(Days)")
    assert (f.label, f.expr) == ("as.factor(Days)", "C(Days)")
    f = parse_expression("poly(x, 2, raw=TRUE)")
    assert (f.label, f.variables) == ("poly(x, 2, raw = TRUE)", ("x", "TRUE"))


def test_terms_are_structures():
    t = parse_terms("(a + b)^2 + I(x/2) - 1")
    assert not t.intercept
    assert [term.label for term in t.terms] == ["a", "b", "I(x/2)", "a:b"]
    assert [f.kind for f in t.terms[3].factors] == ["column", "column"]


def test_backticks_unicode_and_a_column_named_1():
    f = parse_formula("y ~ `my x` + `1` + I(`my x`^2) + (1 | Gruppé) + (1 | `grp name`)")
    labels = [t.label for t in f.fixed_terms.terms]
    assert labels == ["`my x`", "`1`", "I(`my x`^2)"]
    assert [t.factors[0].expr for t in f.fixed_terms.terms[:2]] == ["my x", "1"]
    assert f.fixed_terms.intercept
    assert [t.group for t in f.random] == ["Gruppé", "grp name"]


def test_variables_carry_their_positions():
    text = "log(y) ~ x + I(z^2) + offset(log(n)) + (w | g)"
    got = parse_formula(text).variables()
    assert [v for v, _ in got] == ["y", "x", "z", "n", "w", "g"]
    assert all(text[p: p + len(v)] == v for v, p in got)


@pytest.mark.parametrize(
    "formula, position, fragment",
    [
        ("Reaction ~ Days + (Days|Subject", 18, "never closed"),
        ("Reaction ~ Days) + (Days|Subject)", 15, "no matching"),
        ("Reaction ~ Days + Days|Subject", 22, "must be in parentheses"),
        ("~ Days + (1|Subject)", 0, "no response"),
        ("Reaction ~ ", 10, "nothing right"),
        ("Reaction ~ Days + ( | Subject)", 20, "nothing left of '|'"),
        ("Reaction ~ Days + (1 | )", 23, "empty grouping factor"),
        ("Reaction ~ Days + + (1|Subject)", 18, "empty term"),
    ],
)
def test_syntax_errors_name_the_position(formula, position, fragment):
    with pytest.raises(FormulaError, match=fragment) as info:
        parse_formula(formula)
    assert info.value.position == position
    assert isinstance(info.value, ValueError)
    # the message shows the formula with a caret under the position
    lines = str(info.value).splitlines()
    assert lines[-1].index("^") - 2 == position


def test_no_tilde():
    with pytest.raises(FormulaError, match="no '~'"):
        parse_formula("Reaction + (1|Subject)")


# coefficient names as lme4 1.1-31 printed them for the same formulas
# (names(fixef(lmer(f, d))) on a data frame with these columns)
R_NAMES = {
    "y ~ C(f, contr.sum) + (1|g)": ["(Intercept)", "C(f, contr.sum)1", "C(f, contr.sum)2"],
    "y ~ C(f, contr.helmert) + (1|g)": ["(Intercept)", "C(f, contr.helmert)1", "C(f, contr.helmert)2"],
    "y ~ poly(x, 2, raw = TRUE) + (1|g)": ["(Intercept)", "poly(x, 2, raw = TRUE)1", "poly(x, 2, raw = TRUE)2"],
    "y ~ I(x/2) + log(x+1) + (1|g)": ["(Intercept)", "I(x/2)", "log(x + 1)"],
    "y ~ `my x` + I(`my x`^2) + (1|g)": ["(Intercept)", "`my x`", "I(`my x`^2)"],
    "y ~ `1` + (1|g)": ["(Intercept)", "`1`"],
    "y ~ 0 + f + x:f + (1|g)": ["fa", "fb", "fc", "fa:x", "fb:x", "fc:x"],
    "y ~ f*x + (1|g)": ["(Intercept)", "fb", "fc", "x", "fb:x", "fc:x"],
}


@pytest.mark.parametrize("formula", list(R_NAMES))
def test_coefficient_names_are_rs(formula):
    import numpy as np
    import pandas as pd

    import hierlm

    rng = np.random.default_rng(1)
    n = 60
    d = pd.DataFrame({"y": rng.normal(size=n), "x": rng.uniform(1, 3, n), "g": np.repeat(list("abcdef"), 10),
                      "f": pd.Categorical(np.tile(list("abc"), 20))})
    d["my x"] = rng.normal(size=n)
    d["1"] = rng.normal(size=n)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierlm.lmer(formula, d)
    assert list(fit.fixef.index) == R_NAMES[formula]
    if formula.startswith("y ~ `1`"):  # the column named 1 is used, not dropped
        assert fit.design.X.shape[1] == 2 and np.allclose(fit.design.X[:, 1], d["1"])


@pytest.mark.parametrize("expr, fragment", [
    ('I(__import__("os").getpid())', "only named functions"),
    ("I(Days.__class__)", "attribute '__class__'"),
    ('np.load("x")', "np.load is not an elementwise function"),
    ('eval("1")', "unknown function 'eval'"),
    ("I((lambda: 1)())", "lambda not allowed"),
    ("I(Days[0])", "subscript not allowed"),
    ("__builtins__", "not allowed"),
])
def test_formulas_are_not_python(expr, fragment):
    """A formula is evaluated, so only columns, numbers, arithmetic and the
    listed functions are accepted: a user's formula cannot run their Python."""
    with pytest.raises(FormulaError, match=fragment):
        parse_formula(f"Reaction ~ {expr} + (1 | Subject)")


def test_allowed_calls_in_formulas():
    f = parse_formula("y ~ np.log1p(x) + sqrt(x) + log.x + C(f, contr.treatment(base=2)) + (1 | g)")
    assert [t.label for t in f.fixed_terms.terms] == ["np.log1p(x)", "sqrt(x)", "log.x",
                                                      "C(f, contr.treatment(base = 2))"]


def test_three_level_nesting_uses_lme4s_names():
    """lme4 1.1-31 on this design: names(ngrps(m)) is c:(b:a), b:a, a and the
    levels of c:(b:a) are labelled "1:1:1", ..."""
    import warnings

    import numpy as np
    import pandas as pd

    import hierlm

    rng = np.random.default_rng(1)
    d = pd.DataFrame({"y": rng.normal(size=120), "a": np.repeat([1, 2, 3], 40), "b": np.tile([1, 2, 3, 4], 30),
                      "c": np.tile([1, 2], 60)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierlm.lmer("y ~ (1|a/b/c)", d)
    assert list(fit.ngroups) == ["c:(b:a)", "b:a", "a"]
    assert list(fit.ranef()["c:(b:a)"].index[:3]) == ["1:1:1", "1:1:2", "1:1:3"]


def test_r_power_binds_as_in_r():
    """R's ^ binds tighter than unary minus, * and +: -x^2 is -(x^2), a*b^2 is
    a*(b^2), x^2 + 1 is (x^2) + 1 (Python's ^ would read them otherwise)."""
    import warnings

    import numpy as np
    import pandas as pd

    import hierlm

    rng = np.random.default_rng(0)
    d = pd.DataFrame({"y": rng.normal(size=60), "x": rng.normal(size=60), "a": rng.normal(size=60),
                      "b": rng.normal(size=60), "g": np.repeat(list("abcdef"), 10)})
    for text, want in [("I(-x^2)", -d.x**2), ("I(a*b^2)", d.a * d.b**2), ("I(x^2 + 1)", d.x**2 + 1),
                       ("I(2^x^2)", 2.0 ** (d.x**2)), ("I((-x)^3)", (-d.x) ** 3)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = hierlm.lmer(f"y ~ {text} + (1 | g)", d)
        np.testing.assert_allclose(fit.design.X[:, 1], want.to_numpy(), err_msg=text)
    assert [parse_expression(e).label for e in ("I(-x^2)", "I((-x)^2)", "I(2^x^2)", "I(a*b^2)")] == \
        ["I(-x^2)", "I((-x)^2)", "I(2^x^2)", "I(a * b^2)"]


def test_labels_keep_rs_parentheses_and_evaluate_as_r():
    import warnings

    import numpy as np
    import pandas as pd

    import hierlm

    # R 4.2: names(fixef(...)) keep the parentheses of -(x + 1) and 2 * (x > 0)
    assert parse_expression("I(-(x+1))").label == "I(-(x + 1))"
    assert parse_expression("I(2*(x>0))").label == "I(2 * (x > 0))"
    assert parse_expression("I((x>0) & (z<1))").label == "I((x > 0) & (z < 1))"
    with pytest.raises(FormulaError, match="parenthesize comparisons joined by & or |"):
        parse_expression("I(x > 0 & z < 1)")
    # R's a %in% b is the interaction a:b (formulaic's would be a/b); values
    # in tests/reference/model_matrix_coding.json
    fixed = parse_formula("y ~ f + x %in% f + (1 | g)").fixed_terms
    assert [t.label for t in fixed.terms] == ["f", "f:x"]
    # inside a call it is R's value matching, not a formula operator: refused as written
    with pytest.raises(FormulaError, match=r"'I\(x %in% c\(1,2\)\)'"):
        parse_formula("y ~ I(x %in% c(1,2)) + (1 | g)")
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"y": rng.normal(size=60), "x": rng.normal(size=60), "g": np.repeat(list("abcdef"), 10),
                      "my.var": rng.normal(size=60), "ab": rng.normal(size=60), "_0__": rng.normal(size=60)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierlm.lmer("y ~ I(my.var*2) + (1 | g)", d)  # a dotted column inside a call
        np.testing.assert_allclose(fit.design.X[:, 1], 2 * d["my.var"])
        # a backticked name's placeholder never captures a column of the same spelling
        fit = hierlm.lmer("y ~ I(`ab` * 2) + _0__ + (1 | g)", d)
        assert list(fit.fixef.index) == ["(Intercept)", "I(ab * 2)", "`_0__`"]


def test_r_power_leaves_strings_alone():
    f = parse_expression("I(f == 'a^b')")
    assert f.expr == "I(f == 'a^b')" and f.label == 'I(f == "a^b")'
    # an error position after a ^ refers to the user's text, not to the ** text Python saw
    with pytest.raises(FormulaError) as err:
        parse_expression("I(x^2 ^ ^)", "I(x^2 ^ ^)", 0)
    assert err.value.position == 8


def test_leading_minus_one_after_a_space():
    # "y ~ -1 + x" (the space after ~) was "empty term"; lme4 reads it as no intercept
    f = parse_formula("y ~ -1 + x + (1 | g)")
    assert not f.fixed_terms.intercept and [t.label for t in f.fixed_terms.terms] == ["x"]
