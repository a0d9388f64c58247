r"""Formula terms as structures: each term's factors, their R labels, the columns they read.

The right-hand side of a formula (and the left side of each bar) is parsed
once, by formulaic's parser, into a :class:`TermList`: whether it has an
intercept, and its terms, each a product (R's ``a:b``) of :class:`Factor`\ s.
A factor is a data column (``Days``, ```my x```) or a call (``I(x^2)``,
``log(size)``, ``poly(x, 2)``) and carries

* ``label``: its name as R prints it in a coefficient name (R's
  ``deparse``: ``I(x^2)``, ``poly(x, 2, raw = TRUE)``, a non-syntactic
  column in backticks);
* ``expr``: the expression formulaic evaluates (Python syntax: R's ``^`` is
  ``**``, ``factor(x)`` is ``C(x)``, R's ``TRUE`` is a name in the context);
* ``variables``: the data columns it reads, found in the expression's
  syntax tree (not by scanning text), with their positions in the formula.

The design layer builds matrices from these structures with formulaic's own
machinery and names the columns from them; nothing later rewrites formula
text.
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, field

from ..errors import FormulaError

#: names that are constants inside a formula, not data columns (unless the
#: data has a column of that name: the design decides)
CONSTANTS = frozenset({"TRUE", "FALSE", "T", "F", "pi", "True", "False", "None", "contr.poly",
                       "contr.treatment", "contr.sum", "contr.helmert"})

#: functions a formula may call (formulas are code: nothing else is evaluated):
#: formulaic's transforms, the numpy functions hierlm's design provides by
#: their R names, R's factor()/as.factor(), and numpy's elementwise functions
#: as ``np.<name>``
FUNCTIONS = frozenset({
    "I", "C", "poly", "scale", "center", "standardize", "bs", "cr", "cs", "cc", "lag", "log", "log2", "log10",
    "exp", "exp2", "exp10", "sqrt", "log1p", "expm1", "abs", "sin", "cos", "tan", "tanh", "round", "floor",
    "ceiling", "factor", "as_factor",
})
_NUMPY_EXTRA = frozenset({"clip", "where", "round"})

_BACKTICKED = re.compile(r"`[^`]*`")
_R_SYNTACTIC = re.compile(r"(?:[^\W\d_]|\.(?![0-9]))[\w.]*|\.")
_R_RESERVED = frozenset({"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE",
                         "NULL", "Inf", "NaN", "NA", "in"})


def r_name(name: str) -> str:
    """A column name as R prints it in a coefficient: backticked unless syntactic."""
    if _R_SYNTACTIC.fullmatch(name) and name not in _R_RESERVED:
        return name
    return f"`{name}`"


@dataclass(frozen=True)
class Factor:
    """One factor of a formula term: a data column or a call.

    Attributes
    ----------
    label : str
        As R names it in coefficient names (``Days``, ``I(x^2)``, ```my x```).
    expr : str
        What formulaic evaluates (the column name for a column; Python
        syntax for a call).
    kind : {"column", "call"}
    variables : tuple of str
        Data columns the factor reads.
    positions : tuple of int
        Offset of each variable in the formula text (-1 when not known).
    """

    label: str
    expr: str
    kind: str
    variables: tuple[str, ...]
    positions: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Term:
    """A product of factors (R's ``a:b``; a single factor is a main effect)."""

    factors: tuple[Factor, ...]

    @property
    def label(self) -> str:
        return ":".join(f.label for f in self.factors)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class TermList:
    """One side of a model matrix: an intercept or not, and the terms in R's order
    (by degree, then as written).

    Attributes
    ----------
    intercept : bool
    terms : tuple of Term
    """

    intercept: bool
    terms: tuple[Term, ...]

    @property
    def factors(self) -> list[Factor]:
        """Every distinct factor, in order of appearance."""
        out: dict[str, Factor] = {}
        for t in self.terms:
            for f in t.factors:
                out.setdefault(f.expr, f)
        return list(out.values())

    def variables(self) -> list[tuple[str, int]]:
        """(column, offset in the formula) of every data column read, in order."""
        return [(v, p) for f in self.factors for v, p in zip(f.variables, f.positions or (-1,) * len(f.variables))]

    def __str__(self) -> str:
        parts = ["1" if self.intercept else "0"] + [t.label for t in self.terms]
        if self.intercept and self.terms:
            parts = parts[1:]
        return " + ".join(parts)


# ---------------------------------------------------------------------------
# Backticked names: quoted out before Python sees an expression
# ---------------------------------------------------------------------------
def _quote_out(text: str) -> tuple[str, dict[str, str]]:
    """Replace each ```name``` by an identifier of the same length (so offsets
    stay), returning the text and placeholder -> column name."""
    names: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        k = len(names)
        while True:  # a placeholder that is not a name the text already uses
            ph = f"_{k:x}".ljust(len(m.group(0)), "_")
            if len(ph) > len(m.group(0)):  # ```` or `a` with many names: longer placeholder
                ph = f"_q{k}_"
            if not re.search(rf"(?<![\w.]){re.escape(ph)}(?![\w.])", text) and ph not in names:
                break
            k += 1
        names[ph] = m.group(0)[1:-1]
        return ph

    # R's as.factor(x): 'as' is a Python keyword; as_factor has the same length
    text = re.sub(r"(?<![\w.`])as\.factor(?=\s*\()", "as_factor", _BACKTICKED.sub(sub, text))
    return text, names


# ---------------------------------------------------------------------------
# R's deparse of an expression (for labels) and its Python form (for evaluation)
# ---------------------------------------------------------------------------
_R_BINARY = {ast.Add: " + ", ast.Sub: " - ", ast.Mult: " * ", ast.Div: "/", ast.Pow: "^",
             ast.Mod: " %% ", ast.FloorDiv: " %/% ", ast.BitAnd: " & ", ast.BitOr: " | ", ast.BitXor: " xor ",
             ast.LShift: " << ", ast.RShift: " >> ", ast.MatMult: " %*% "}
_R_COMPARE = {ast.Eq: " == ", ast.NotEq: " != ", ast.Lt: " < ", ast.LtE: " <= ", ast.Gt: " > ", ast.GtE: " >= "}
_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.Mod: 2, ast.FloorDiv: 2, ast.Pow: 4}


def _is_logical(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr))


def _deparse(node: ast.AST, names: dict[str, str]) -> str:
    """R's ``deparse`` of a Python syntax tree of an R expression."""
    d = lambda n: _deparse(n, names)  # noqa: E731
    if isinstance(node, ast.Name):
        if node.id == "as_factor":
            return "as.factor"
        return r_name(names[node.id]) if node.id in names else node.id
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return f'"{node.value}"'
        if isinstance(node.value, bool):
            return "TRUE" if node.value else "FALSE"
        if isinstance(node.value, float) and node.value.is_integer() and abs(node.value) < 1e15:
            return str(int(node.value))
        return repr(node.value)
    if isinstance(node, ast.Attribute):  # R's dotted names: log.x
        return f"{d(node.value)}.{node.attr}"
    if isinstance(node, ast.UnaryOp):
        op = {ast.USub: "-", ast.UAdd: "+", ast.Not: "!"}.get(type(node.op), "")
        operand = d(node.operand)
        if isinstance(node.operand, ast.Compare) or (
                isinstance(node.operand, ast.BinOp) and not isinstance(node.operand.op, ast.Pow)):
            operand = f"({operand})"  # -(x + 1): the parentheses R keeps
        return op + operand
    if isinstance(node, ast.BinOp):
        left, right = d(node.left), d(node.right)
        # comparisons and & | inside arithmetic: written in parentheses (the only way they parse as R's)
        if isinstance(node.left, ast.Compare) or _is_logical(node.left):
            left = f"({left})"
        if isinstance(node.right, ast.Compare) or _is_logical(node.right):
            right = f"({right})"
        prec = _PRECEDENCE.get(type(node.op), 3)
        if (isinstance(node.left, ast.BinOp) and _PRECEDENCE.get(type(node.left.op), 3) < prec) or (
                isinstance(node.left, ast.UnaryOp) and isinstance(node.op, ast.Pow)):
            left = f"({left})"
        right_prec = _PRECEDENCE.get(type(node.right.op), 3) if isinstance(node.right, ast.BinOp) else 99
        # ^ is right-associative: 2^x^2 is 2^(x^2), printed without parentheses
        if right_prec < prec or (right_prec == prec and not isinstance(node.op, ast.Pow)):
            right = f"({right})"
        if isinstance(node.op, ast.Pow) and isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Pow):
            left = f"({left})"
        return left + _R_BINARY.get(type(node.op), " ? ") + right
    if isinstance(node, ast.Compare):
        out = d(node.left)
        for op, c in zip(node.ops, node.comparators):
            out += _R_COMPARE.get(type(op), " ? ") + d(c)
        return out
    if isinstance(node, ast.Call):
        args = [d(a) for a in node.args] + [f"{k.arg} = {d(k.value)}" for k in node.keywords]
        return f"{d(node.func)}({', '.join(args)})"
    return ast.unparse(node)


class _ToPython(ast.NodeTransformer):
    """R's meaning in Python syntax: ``factor(x)`` and ``as.factor(x)`` are
    formulaic's ``C(x)`` (R's ``^`` became ``**`` before parsing, see
    :func:`_r_power`)."""

    def visit_Call(self, node):  # noqa: N802
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("factor", "as_factor"):
            node.func = ast.Name("C", ast.Load())
        return node

    def visit_Attribute(self, node):  # noqa: N802
        # R's dotted name (my.var) is a column: formulaic looks it up in backticks;
        # np.<function> and contr.<contrast> stay attribute access
        name = _dotted_name(node)
        if name is not None and name.split(".")[0] not in ("np", "contr"):
            return ast.Name(f"`{name}`", ast.Load())
        return node


def _variables(tree: ast.AST, names: dict[str, str], offset: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Names an expression reads that are not functions (``log``, ``np.log``)
    or keyword names, with their offsets: the candidate data columns.  R's
    dotted names (``log.x``) are one name; backticked ones are restored."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    inside = set()  # nodes that are part of a longer dotted name
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute):
            inside.add(id(n.value))
    out: dict[str, int] = {}
    for n in ast.walk(tree):
        if id(n) in called or id(n) in inside or not isinstance(n, (ast.Name, ast.Attribute)):
            continue
        name = _dotted_name(n)
        if name is None:
            continue
        name = names.get(name, name)
        out.setdefault(name, offset + n.col_offset)
    return tuple(out), tuple(out.values())


def _check_safe(tree: ast.AST, text: str, formula: str, offset: int) -> None:
    """Formulas are code: refuse anything but column names, constants,
    arithmetic and calls of :data:`FUNCTIONS` (no dunder names, no attribute
    access but R's dotted names and ``np.<elementwise function>``, no
    lambdas, comprehensions or subscripts), so that evaluating a user's
    formula cannot run the user's Python."""
    import numpy as np

    def refuse(node, why):
        pos = offset + getattr(node, "col_offset", 0)
        raise FormulaError(f"{why} in {text!r}: a formula may use columns, numbers, arithmetic and the "
                           f"functions {', '.join(sorted(FUNCTIONS - {'as_factor'}))} (or np.<ufunc>)",
                           formula or None, pos if formula else None)

    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Compare) and any(isinstance(c, ast.BinOp) and isinstance(c.op, (ast.BitAnd, ast.BitOr))
                                              for c in [n.left, *n.comparators]):
            # Python's & and | bind more tightly than comparisons, R's more loosely:
            # x > 0 & z < 1 would be read as x > (0 & z) < 1
            refuse(n, "parenthesize comparisons joined by & or |, as (x > 0) & (z < 1),")
        if isinstance(n, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr,
                          ast.Subscript, ast.Starred, ast.Await, ast.Yield, ast.YieldFrom, ast.IfExp)):
            refuse(n, f"{type(n).__name__.lower()} not allowed")
        if isinstance(n, ast.Name) and n.id.startswith("__"):
            refuse(n, f"the name {n.id!r} is not allowed")
        if isinstance(n, ast.Attribute) and n.attr.startswith("_"):
            refuse(n, f"the attribute {n.attr!r} is not allowed")
        if id(n) in calls:
            if isinstance(n, ast.Name):
                if n.id not in FUNCTIONS:
                    refuse(n, f"unknown function {n.id!r}")
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "np":
                if not (isinstance(getattr(np, n.attr, None), np.ufunc) or n.attr in _NUMPY_EXTRA):
                    refuse(n, f"np.{n.attr} is not an elementwise function")
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "contr":
                pass  # formulaic's contrasts: contr.treatment(base=2)
            else:
                refuse(n, "only named functions may be called")
        elif isinstance(n, ast.Attribute):
            if _dotted_name(n) is None:
                refuse(n, "attribute access is not allowed")


def _dotted_name(node: ast.AST) -> str | None:
    """``log.x`` (R's dotted name, a Python attribute chain) -> "log.x"; None for other nodes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted_name(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _r_power(text: str) -> tuple[str, list[int]]:
    """R's ``^`` as Python's ``**`` outside string literals, before Python
    parses the expression: Python's ``^`` (xor) binds more loosely than
    ``+`` and unary minus, so ``x^2 + 1`` would read as ``x ** 3`` and
    ``-x^2`` as ``(-x) ** 2``.  Returns the text and, for each character of
    it, its offset in ``text`` (for error positions)."""
    out, where, quote = [], [], None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "^":
            out += ["*", "*"]
            where += [i, i]
            continue
        out.append(ch)
        where.append(i)
    return "".join(out), where


def parse_expression(text: str, formula: str = "", offset: int = 0) -> Factor:
    """An R expression (a response, an offset, a cbind column, a call) as a :class:`Factor`.

    Raises
    ------
    FormulaError
        When the expression is not valid syntax, with its position.
    """
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    quoted, names = _quote_out(stripped)
    if quoted in names:  # one backticked column (any name: it is only looked up)
        name = names[quoted]
        return Factor(r_name(name), name, "column", (name,), (offset + lead,))
    source, where = _r_power(quoted)
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        k = min(max(0, (exc.offset or 1) - 1), len(where) - 1) if where else 0
        pos = offset + lead + (where[k] if where else 0)
        raise FormulaError(f"cannot read the expression {stripped!r}: {exc.msg}", formula or None,
                           pos if formula else None) from None
    dotted = _dotted_name(tree)
    if dotted is not None and dotted not in CONSTANTS and not keyword.iskeyword(dotted):
        if any(part.startswith("__") for part in dotted.split(".")):
            raise FormulaError(f"the name {dotted!r} is not allowed in a formula", formula or None,
                               offset + lead if formula else None)
        return Factor(r_name(dotted), dotted, "column", (dotted,), (offset + lead,))
    _check_safe(tree, stripped, formula, offset + lead)
    label = _deparse(tree, names)
    variables, positions = _variables(tree, names, 0)
    positions = tuple(offset + lead + where[min(p, len(where) - 1)] for p in positions)
    expr = _restore(ast.unparse(_ToPython().visit(tree)), names)
    return Factor(label, expr, "call", variables, positions)


def parse_terms(text: str, formula: str = "", offset: int = 0) -> TermList:
    """Parse one side of a model matrix (R syntax) into a :class:`TermList`.

    Parameters
    ----------
    text : str
        E.g. ``"Days"``, ``"0 + f"``, ``"a*b + I(x^2)"``, ``"(a + b)^2"``.
    formula : str
        The whole formula, for error messages.
    offset : int
        Offset of ``text`` in ``formula``.
    """
    plain = _plain_terms(text, formula, offset)
    if plain is not None:
        return plain
    if "%in%" in _BACKTICKED.sub("", text):
        # R's a %in% b is the interaction a:b (b + a %in% b is b + b:a);
        # formulaic reads it as a/b, with a main effect of b too.  ':' binds
        # tighter than %in% in R, but both are associative, so the terms agree
        text = _in_as_interaction(text)
    import formulaic

    quoted, names = _quote_out(text)
    # formulaic's operators are R's (+ - : * / ^ %in%); its parser reads the
    # algebra, the factors are read again here from their source text
    try:
        parsed = formulaic.Formula(quoted)
    except Exception as exc:  # formulaic's errors are not ValueErrors
        raise FormulaError(f"cannot parse the terms '{text.strip()}': {exc}", formula or None) from None
    if not isinstance(parsed, formulaic.formula.SimpleFormula):
        raise FormulaError(f"'{text.strip()}' is not a sum of terms (a '~' or '|' where a term belongs?)",
                           formula or None)
    intercept = False
    terms: list[tuple[Factor, ...]] = []
    cache: dict[str, Factor] = {}
    first: dict[str, int] = {}  # where each factor first appears (R orders a term's factors so)
    for term in parsed:
        factors = []
        for fa in term.factors:
            if fa.eval_method.name == "LITERAL":
                if fa.expr == "1":
                    intercept = True
                    break
                raise FormulaError(f"the constant {fa.expr!r} cannot be a term of a model formula "
                                   "(only 1 or 0 for the intercept)", formula or None)
            tok = fa.token
            if tok is not None and tok.source_start is not None:
                src = quoted[tok.source_start: tok.source_end + 1]
                start = tok.source_start
            else:  # pragma: no cover  (formulaic keeps the source of every factor)
                src, start = fa.expr, 0
            key = src.strip()
            if key not in cache:
                lead = len(src) - len(src.lstrip())
                cache[key] = parse_expression(_restore(key, names), formula, offset + start + lead)
            first[key] = min(first.get(key, start), start)
            factors.append(key)
        else:
            if factors:
                terms.append(tuple(factors))
    # R's term label lists the variables in the order they first appear in
    # the formula (x:f after f is "f:x"; a %in% b is "a:b")
    ordered = [tuple(cache[k] for k in sorted(t, key=lambda k: first[k])) for t in terms]
    return TermList(intercept, tuple(Term(t) for t in ordered))


def _in_as_interaction(text: str) -> str:
    """``%in%`` between terms replaced by ``:`` (same length, so positions in
    error messages stay those of the user's formula).  Inside a call
    (``I(x %in% c(1, 2))``, R's value matching) or a backticked name it is
    left as written, for the parser to report."""
    out, calls, i, quoted = [], [], 0, False
    while i < len(text):
        ch = text[i]
        if ch == "`":
            quoted = not quoted
        elif not quoted and ch == "(":
            before = text[:i].rstrip()
            calls.append(bool(before) and (before[-1].isalnum() or before[-1] in "._"))
        elif not quoted and ch == ")" and calls:
            calls.pop()
        elif not quoted and not any(calls) and text.startswith("%in%", i):
            out.append(" :  ")
            i += 4
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_PLAIN_TOKEN = re.compile(r"\s*(?:([+-])|((?:[^\W\d]|\.(?![0-9]))[\w.]*|`[^`]+`|[01](?![\w.])))")


def _plain_terms(text: str, formula: str, offset: int) -> TermList | None:
    """The common case without formulaic's parser: a sum of column names, ``1``,
    ``0`` or ``- 1`` (``Days``, ``0 + Days``, ``-1 + x``); None for anything else.

    formulaic's parser costs about a millisecond a call, which is most of the
    set-up time of a small model.
    """
    pos, need_term, sign, first = 0, True, "+", True
    intercept, factors = True, []
    while text[pos:].strip():
        m = _PLAIN_TOKEN.match(text, pos)
        if m is None:
            return None
        op, tok = m.group(1), m.group(2)
        if op:
            if need_term and not first:
                return None  # two operators in a row
            sign, need_term = op, True
        else:
            if not need_term:
                return None  # two names in a row
            if tok in ("0", "1"):
                intercept = (tok == "1") != (sign == "-")
            else:
                name = tok[1:-1] if tok.startswith("`") else tok
                if sign == "-" or name in CONSTANTS or keyword.iskeyword(name) or tok.startswith("__"):
                    return None  # removing a term, or not a column: formulaic's parser decides
                if all(f.expr != name for f in factors):
                    factors.append(Factor(r_name(name), name, "column", (name,), (offset + m.start(2),)))
            need_term, sign = False, "+"
        first = False
        pos = m.end()
    if need_term:
        return None
    return TermList(intercept, tuple(Term((f,)) for f in factors))


def _restore(text: str, names: dict[str, str]) -> str:
    for ph, name in names.items():
        text = re.sub(rf"\b{re.escape(ph)}\b", lambda m, name=name: f"`{name}`", text)
    return text
