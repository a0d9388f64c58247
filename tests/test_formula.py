"""The lme4 formula grammar: findbars/nobars, ||, /, positions in errors."""

import pytest

from hierlm.errors import FormulaError
from hierlm.formula import RandomTerm, parse_formula
from hierlm.formula.parse import to_formulaic


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
    assert [t.group for t in f3.random] == ["a", "b:a", "c:b:a"]


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
    assert to_formulaic("I(x^2)") == "I(x**2)"
    assert to_formulaic("factor(Days)") == "C(Days)"


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
