"""Parse lme4 model formulas.

An lme4 formula is an R model formula whose right-hand side may hold
random-effects terms in parentheses, ``(expr | group)``.  This module finds
those terms (lme4's ``findbars``), expands the shorthands

* ``(expr || g)``  -> one uncorrelated term per formula term of ``expr``
  (``(1 + x || g)`` = ``(1 | g) + (0 + x | g)``; a factor stays one block, as
  in lme4's ``expandDoubleVerts``),
* ``(expr | a/b)`` -> ``(expr | a) + (expr | b:a)`` (lme4's naming),

and parses the fixed-effects part (lme4's ``nobars``) and the left side of
each bar once into structured terms (:mod:`hierlm.formula.terms`), whose
factors keep their positions in the formula text.  The design layer builds
the model matrices from those structures; no later stage reads the text.

Positions in error messages are 0-based offsets into the formula text,
printed 1-based with a caret under the offending character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import FormulaError
from .terms import TermList, parse_expression, parse_terms

# a grouping factor: a column name, R-syntactic (Unicode letters included) or in backticks
_IDENT = re.compile(r"(?:[^\W\d]|\.(?![0-9]))[\w.]*|`[^`]+`")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | g1:g2:...)``.

    Attributes
    ----------
    expr : str
        Left of the bar, in R syntax (``"1"``, ``"Days"``, ``"0 + Days"``).
    factors : tuple of str
        Columns whose interaction is the grouping factor.
    position : int
        Offset of the term in the formula text (for error messages).
    terms : TermList
        ``expr`` parsed: the term's model matrix (None for a term made by hand
        in a test; the design then parses ``expr``).
    factor_positions : tuple of int
        Offsets of the grouping columns in the formula text.
    """

    expr: str
    factors: tuple[str, ...]
    position: int = field(default=0, compare=False)
    terms: TermList | None = field(default=None, compare=False)
    factor_positions: tuple[int, ...] = field(default=(), compare=False)
    name: str = field(default="", compare=False)

    @property
    def group(self) -> str:
        """Grouping factor name as lme4 prints it (``"cask:batch"``; a third
        level of nesting ``a/b/c`` is ``"c:(b:a)"``)."""
        return self.name or ":".join(self.factors)

    def __str__(self) -> str:
        return f"({self.expr} | {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4 formula.

    Attributes
    ----------
    text : str
        The formula as written.
    response : str
        Left-hand side (R syntax), e.g. ``"log(Reaction)"``.
    fixed : str
        Fixed-effects right-hand side without the bars (R syntax).
    random : tuple of RandomTerm
        Random-effects terms after expanding ``||`` and ``/``, in formula order.
    offsets : tuple of str
        Arguments of the ``offset(...)`` terms of the fixed part (R syntax),
        which are not in ``fixed``: ``"log(size)"`` for ``+ offset(log(size))``.
    fixed_terms : TermList
        ``fixed`` parsed, with positions in ``text``.
    """

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = ()
    fixed_terms: TermList | None = field(default=None, compare=False)
    response_position: int = field(default=0, compare=False)
    offset_positions: tuple[int, ...] = field(default=(), compare=False)

    def variables(self) -> list[tuple[str, int]]:
        """(name, offset in ``text``) of every name the formula reads from the
        data, in order of appearance: the candidate columns."""
        out: list[tuple[str, int]] = []
        exprs = [(self.response, self.response_position)]
        if self.response_parts is not None:  # cbind(successes, failures): its two expressions
            inner = self.response.index("(") + 1
            exprs = [(piece, self.response_position + inner + pos)
                     for _, piece, pos in _split_top(self.response[inner:-1], ",")]
        exprs += list(zip(self.offsets, self.offset_positions or (0,) * len(self.offsets)))
        for e, pos in exprs:
            f = parse_expression(e, self.text, pos)
            out += list(zip(f.variables, f.positions))
        if self.fixed_terms is not None:
            out += self.fixed_terms.variables()
        for t in self.random:
            if t.terms is not None:
                out += t.terms.variables()
            out += list(zip(t.factors, t.factor_positions or (t.position,) * len(t.factors)))
        return sorted(out, key=lambda v: v[1])

    @property
    def response_parts(self) -> tuple[str, ...] | None:
        """The two expressions of a ``cbind(successes, failures)`` response
        (R syntax, e.g. ``("incidence", "size - incidence")``); None for any
        other response."""
        return cbind_parts(self.response)


_CBIND = re.compile(r"cbind\s*\(")
_OFFSET = re.compile(r"offset\s*\(")


def _call_argument(piece: str, pattern: re.Pattern) -> str | None:
    """The text inside ``name( ... )`` when ``piece`` is exactly one call of
    ``pattern``'s function; None otherwise."""
    m = pattern.match(piece)
    if not m or not piece.endswith(")") or not _enclosing_parens(piece[m.end() - 1:]):
        return None
    return piece[m.end(): -1]


def cbind_parts(response: str) -> tuple[str, ...] | None:
    """Split ``cbind(a, b)`` (lme4's binomial response of successes and
    failures) into ``("a", "b")``; None when ``response`` is not a cbind call.

    Raises
    ------
    FormulaError
        ``cbind`` with other than two arguments, or an empty one.
    """
    inner = _call_argument(response.strip(), _CBIND)
    if inner is None:
        return None
    parts = [piece.strip() for _, piece, _ in _split_top(inner, ",")]
    if len(parts) != 2 or not all(parts):
        raise FormulaError(
            f"the response {response!r} must be cbind(successes, failures) with two columns or "
            "expressions, e.g. cbind(incidence, size - incidence)"
        )
    return tuple(parts)


def _check_parentheses(text: str) -> None:
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                raise FormulaError("unbalanced parentheses: this ')' has no matching '('", text, i)
            stack.pop()
    if stack:
        raise FormulaError(
            "unbalanced parentheses: this '(' is never closed; add the missing ')'", text, stack[-1]
        )


def _split_top(text: str, seps: str, offset: int = 0) -> list[tuple[str, str, int]]:
    """Split ``text`` at depth-0 characters in ``seps``.

    Returns (separator before the piece or "", piece, offset of piece).
    """
    out: list[tuple[str, str, int]] = []
    depth = 0
    start = 0
    sep = ""
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in seps:
            out.append((sep, text[start:i], offset + start))
            sep = ch
            start = i + 1
    out.append((sep, text[start:], offset + start))
    return out


def _strip(piece: str, pos: int) -> tuple[str, int]:
    lead = len(piece) - len(piece.lstrip())
    return piece.strip(), pos + lead


def _enclosing_parens(s: str) -> bool:
    """True when ``s`` is ``( ... )`` with the first '(' closed by the last ')'."""
    if not (s.startswith("(") and s.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(s) - 1:
            return False
    return True


def _parse_group(text: str, formula: str, pos: int) -> list[tuple[tuple[str, ...], tuple[int, ...], str]]:
    """Grouping expression -> list of (factor tuple, their offsets, lme4's name)
    (``a/b`` -> [(a,), (b, a)] named "a", "b:a")."""
    parts = _split_top(text, "/", pos)
    groups: list[tuple[tuple[str, ...], tuple[int, ...], str]] = []
    outer: tuple[str, ...] = ()
    outer_pos: tuple[int, ...] = ()
    outer_name = ""
    for _, piece, ppos in parts:
        piece, ppos = _strip(piece, ppos)
        if not piece:
            raise FormulaError("empty grouping factor after '|' or '/'", formula, ppos)
        factors, positions = [], []
        for _, f, fpos in _split_top(piece, ":", ppos):
            f, fpos = _strip(f, fpos)
            if not _IDENT.fullmatch(f):
                raise FormulaError(
                    f"grouping factor {f!r} must be a column name (or a:b, a/b of column names)",
                    formula,
                    fpos,
                )
            factors.append(f[1:-1] if f.startswith("`") else f)
            positions.append(fpos)
        # lme4 names the inner factor of a/b as "b:a", of a/b/c as "c:(b:a)"
        current = tuple(factors) + outer
        current_pos = tuple(positions) + outer_pos
        own = ":".join(factors)
        name = own if not outer_name else (f"{own}:({outer_name})" if ":" in outer_name else f"{own}:{outer_name}")
        groups.append((current, current_pos, name))
        outer, outer_pos, outer_name = current, current_pos, name
    return groups


def _parse_bar(inner: str, formula: str, pos: int) -> list[RandomTerm]:
    """Parse the inside of ``( expr | group )`` (or ``||``)."""
    pieces = _split_top(inner, "|", pos)
    if len(pieces) == 3 and pieces[1][1].strip() == "":
        double = True
        lhs, lpos = pieces[0][1], pieces[0][2]
        rhs, rpos = pieces[2][1], pieces[2][2]
    elif len(pieces) == 2:
        double = False
        lhs, lpos = pieces[0][1], pieces[0][2]
        rhs, rpos = pieces[1][1], pieces[1][2]
    else:
        raise FormulaError("a random-effects term has the form (expr | group)", formula, pos)
    lhs, lpos = _strip(lhs, lpos)
    if not lhs:
        raise FormulaError("nothing left of '|': write (1 | group) for a random intercept", formula, lpos)
    groups = _parse_group(rhs, formula, rpos)
    terms = parse_terms(lhs, formula, lpos)
    if not terms.intercept and not terms.terms:
        raise FormulaError(f"the random-effects term ({lhs} | {rhs.strip()}) has no columns: write "
                           "(1 | group) for a random intercept", formula, lpos)
    parts: list[tuple[str, TermList]]
    if double:
        # lme4's expandDoubleVerts: one uncorrelated term per formula term (a factor stays one block)
        parts = ([("1", TermList(True, ()))] if terms.intercept else [])
        parts += [(f"0 + {t.label}", TermList(False, (t,))) for t in terms.terms]
    else:
        parts = [(lhs, terms)]
    return [RandomTerm(e, g, lpos - 1, terms=tl, factor_positions=gp, name=nm)
            for g, gp, nm in groups for e, tl in parts]


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 formula.

    Parameters
    ----------
    text : str
        For example ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With the position of the problem: unbalanced parentheses, no ``~``,
        no response, a bar outside parentheses, an empty term.
    """
    if not isinstance(text, str):
        raise FormulaError(f"the formula must be a string such as 'y ~ x + (1 | group)', not {type(text).__name__}")
    if not text.strip():
        raise FormulaError("the formula is empty; write e.g. 'y ~ x + (1 | group)'")
    _check_parentheses(text)
    sides = _split_top(text, "~")
    if len(sides) != 2:
        if len(sides) == 1:
            raise FormulaError("the formula has no '~'; write 'response ~ predictors'", text, 0)
        raise FormulaError("the formula has more than one '~'", text, sides[2][2] - 1)
    response, rpos = _strip(sides[0][1], 0)
    if not response:
        raise FormulaError("the formula has no response left of '~'", text, rpos)
    rhs_text, rhs_pos = sides[1][1], sides[1][2]
    if not rhs_text.strip():
        raise FormulaError("nothing right of '~'", text, rhs_pos)

    fixed: list[str] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    offset_pos: list[int] = []
    # the fixed part keeps its place in the text: bars and offsets are blanked
    # out (with the operator before them), so positions stay the formula's
    blank = list(text)
    for sep, raw, raw_pos in _split_top(rhs_text, "+-", rhs_pos):
        piece, pos = _strip(raw, raw_pos)
        if not piece:
            if sep == "-" or (sep == "" and raw_pos == rhs_pos):
                # leading '-' or '+' ("~ -1 + x"): nothing to keep
                continue
            raise FormulaError("empty term (two operators in a row?)", text, pos)
        if _enclosing_parens(piece) and len(_split_top(piece[1:-1], "|")) > 1:
            if sep == "-":
                raise FormulaError("a random-effects term cannot be subtracted", text, pos)
            random.extend(_parse_bar(piece[1:-1], text, pos + 1))
            _blank(blank, raw_pos - (1 if sep else 0), raw_pos + len(raw))
        elif len(_split_top(piece, "|")) > 1:
            bar = pos + piece.index("|")
            raise FormulaError(
                "random-effects terms must be in parentheses: write (expr | group)", text, bar
            )
        elif _call_argument(piece, _OFFSET) is not None:
            # offset(expr): a known term with coefficient 1, not a column of X
            arg = _call_argument(piece, _OFFSET).strip()
            if sep == "-" or not arg:
                raise FormulaError("an offset term is written '+ offset(expression)'", text, pos)
            offsets.append(arg)
            offset_pos.append(pos + piece.index("(") + 1 + (len(_call_argument(piece, _OFFSET))
                                                          - len(_call_argument(piece, _OFFSET).lstrip())))
            _blank(blank, raw_pos - (1 if sep else 0), raw_pos + len(raw))
        else:
            fixed.append(f"{'- ' if sep == '-' else '+ ' if fixed else ''}{piece}")
    fixed_text = " ".join(fixed) if fixed else "1"
    if fixed_text.startswith("- "):
        fixed_text = "1 " + fixed_text
    rest = "".join(blank[rhs_pos:])
    if rest.strip():
        fixed_terms = parse_terms(rest, text, rhs_pos)
    else:  # only random terms: R's intercept
        fixed_terms = TermList(True, ())
    return ParsedFormula(text=text, response=response, fixed=fixed_text, random=tuple(random),
                         offsets=tuple(offsets), fixed_terms=fixed_terms, response_position=rpos,
                         offset_positions=tuple(offset_pos))


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(max(start, 0), end):
        chars[i] = " "
