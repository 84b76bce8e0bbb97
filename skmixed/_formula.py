"""lme4 model formulas: the bar terms, and R's model matrices for both parts.

``parse_formula`` splits ``"y ~ x * f + (1 + x | g)"`` into the response, the
fixed part and the random-effect terms, expanding lme4's ``||`` and ``a/b`` as
lme4 does. :class:`FormulaMatrices` learns from a training frame everything a
model matrix depends on (factor levels, ``poly``/``scale`` coefficients) and
builds, for that frame or new rows, the matrices R's ``model.matrix`` and
lme4's ``lFormula`` would build: the same columns, in the same order, with the
same names (``Intercept`` for R's ``(Intercept)``).

The formula algebra (``*``, ``:``, ``/``, ``^``, ``-``, ``0 +``) is parsed by
formulaic; the encoding is R's, done here: formulaic's materializer follows
patsy, whose names, column order, contrast rule and ``poly`` differ from R's.
Each variable (``Variety``, ``poly(Time, 2)``, ``I(Time^2)``) is evaluated by a
small interpreter of R-like expressions that knows the functions listed in
``SUPPORTED_FUNCTIONS``; anything else is refused with a ValueError.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError

__all__ = [
    "FormulaMatrices",
    "FormulaSummary",
    "ParsedFormula",
    "RandomTerm",
    "combine_formula_summaries",
    "parse_formula",
]

INTERCEPT = "Intercept"

_CONTRASTS = {
    # R's spellings (C(x, contr.sum), C(x, sum), C(x, "contr.sum")) and patsy's
    **{f"contr.{k}": k for k in ("treatment", "sum", "helmert", "poly", "SAS")},
    **{k: k for k in ("treatment", "sum", "helmert", "poly", "SAS")},
    **{"Treatment": "treatment", "Sum": "sum", "Helmert": "helmert", "Poly": "poly"},
}

_MATH = {
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
}
SUPPORTED_FUNCTIONS = (
    *sorted(_MATH),
    "I",
    "poly",
    "scale",
    "center",
    "C",
    "factor",
    "ordered",
    "as.factor",
    "as.numeric",
)
_UNSUPPORTED_HINTS = {
    "offset": (
        "offset() is not supported in formulas: pass the offset as "
        "fit(..., offset=...) and predict(..., offset=...)"
    ),
    "ns": "spline bases (ns, bs) are not supported",
    "bs": "spline bases (ns, bs) are not supported",
}


# --------------------------------------------------------------------------- #
# Parsing: the bars                                                            #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(expression | grouping)`` after expansion.

    Attributes
    ----------
    expression : str
        The left of the bar, a one-sided model formula (``"1 + x"``, ``"0 + x"``).
    grouping : tuple of str
        The variables whose interaction is the grouping factor, in label order:
        ``("Variety", "Block")`` for lme4's ``Variety:Block``.
    grouping_name : str
        lme4's name of the grouping factor (``"Variety:Block"``, ``"c:(b:a)"``).
    correlated : bool
        False for the terms lme4 makes from ``||``.
    """

    expression: str
    grouping: tuple[str, ...]
    grouping_name: str
    correlated: bool = True


@dataclass(frozen=True)
class ParsedFormula:
    """A model formula split as lme4's ``findbars``/``nobars`` split it.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : str or None
        The left of ``~`` (None for a one-sided formula).
    fixed : str
        The fixed part, a one-sided formula (``"1"`` when only bars remain).
    random : tuple of RandomTerm
        The random-effect terms, ``||`` and ``/`` expanded, in formula order.
    """

    formula: str
    response: str | None
    fixed: str
    random: tuple[RandomTerm, ...] = field(default_factory=tuple)


def parse_formula(formula):
    """Split an lme4 formula into response, fixed part and random-effect terms.

    Parameters
    ----------
    formula : str
        ``"y ~ fixed + (lhs | g) + ..."``; the grouping may be ``g``, ``a:b`` or
        ``a/b`` (``(1 | a/b)`` is ``(1 | a) + (1 | b:a)``), the bar ``|`` or
        ``||`` (``(1 + x || g)`` is ``(1 | g) + (0 + x | g)``).

    Returns
    -------
    ParsedFormula

    Raises
    ------
    ValueError
        On syntax lme4 would refuse or that is not supported here.

    Examples
    --------
    >>> p = parse_formula("yield ~ nitro + (1 | Block/Variety)")
    >>> p.fixed, [t.grouping_name for t in p.random]
    ('nitro', ['Block', 'Variety:Block'])
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string; got {type(formula).__name__}.")
    response, rhs = _split_tilde(formula)
    fixed, bars = _extract_bars(rhs)
    _check_no_bar(fixed, "the fixed part")
    _expand_terms(fixed)  # refuse bad syntax now, not at fit
    random = []
    for lhs, bar, grouping in bars:
        random.extend(_expand_bar(lhs, bar, grouping))
    return ParsedFormula(formula, response, fixed, tuple(random))


def _split_tilde(formula):
    depth_zero = [i for i, c in _top_level(formula) if c == "~"]
    if len(depth_zero) != 1:
        raise ValueError(
            f"formula {formula!r} must contain one '~', as in 'y ~ x + (1 | g)'."
        )
    lhs, rhs = formula[: depth_zero[0]].strip(), formula[depth_zero[0] + 1 :]
    if "|" in lhs:
        raise ValueError(f"the response {lhs!r} cannot contain a bar '|'.")
    if not rhs.strip():
        raise ValueError(f"formula {formula!r} has nothing right of '~'.")
    return (lhs or None), rhs


def _top_level(text):
    """Yield (index, char) of the characters outside any parentheses."""
    depth = 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {text!r}.")
            continue
        if depth == 0 and c != "(":
            yield i, c
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in {text!r}.")


def _matching_paren(text, start):
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in {text!r}.")


def _extract_bars(rhs):
    """Remove the top-level ``(... | ...)`` groups; return (fixed, bars)."""
    list(_top_level(rhs))  # balance check
    pieces, bars, i = [], [], 0
    while i < len(rhs):
        if rhs[i] != "(":
            pieces.append(rhs[i])
            i += 1
            continue
        end = _matching_paren(rhs, i)
        inner = rhs[i + 1 : end]
        split = _split_bar(inner)
        if split is None or _is_call_paren(rhs, i):
            pieces.append(rhs[i : end + 1])
        else:
            _check_added(rhs, i, end)
            bars.append(split)
            pieces.append(" ")
        i = end + 1
    fixed = re.sub(r"(\+\s*)+\+", "+", "".join(pieces)).strip()
    fixed = re.sub(r"^\+|\+$", "", fixed).strip()
    return (fixed or "1"), bars


def _is_call_paren(text, i):
    return bool(re.search(r"[A-Za-z0-9_.]$", text[:i].rstrip()))


def _check_added(rhs, start, end):
    before = rhs[:start].rstrip()
    after = rhs[end + 1 :].lstrip()
    if (before and before[-1] not in "+~") or (after and after[0] != "+"):
        raise ValueError(
            f"the random-effect term {rhs[start : end + 1]!r} must be added to the "
            "formula with '+' (as in 'y ~ x + (1 | g)'); it cannot be subtracted, "
            "multiplied or interacted."
        )


def _split_bar(inner):
    """(lhs, bar, rhs) for ``lhs | rhs`` or ``lhs || rhs``; None without a bar."""
    bars = [i for i, c in _top_level(inner) if c == "|"]
    if not bars:
        return None
    if len(bars) == 2 and bars[1] == bars[0] + 1:
        lhs, bar, rhs = inner[: bars[0]], "||", inner[bars[1] + 1 :]
    elif len(bars) == 1:
        lhs, bar, rhs = inner[: bars[0]], "|", inner[bars[0] + 1 :]
    else:
        raise ValueError(
            f"the term '({inner})' has more than one bar; write one bar per term, "
            "'(lhs | g)' or '(lhs || g)'."
        )
    if not lhs.strip():
        raise ValueError(
            f"the random-effect term '({inner})' has nothing left of the bar; "
            "write '(1 | g)' for a random intercept."
        )
    if not rhs.strip():
        raise ValueError(
            f"the random-effect term '({inner})' has no grouping factor right of "
            "the bar, as in '(1 | g)'."
        )
    _check_no_bar(lhs, f"the left of the bar in '({inner})'")
    return lhs.strip(), bar, rhs.strip()


def _check_no_bar(text, where):
    if "|" in text:
        raise ValueError(
            f"{where} contains a bar '|' that is not a random-effect term: nested "
            "or unparenthesised bars are not supported; write '(lhs | g)' terms "
            "added with '+'."
        )


_NAME = r"(?:`[^`]+`|[A-Za-z.][A-Za-z0-9._]*)"


def _parse_grouping(text):
    """``a/b:c`` → list of interactions (tuples of names), outermost first."""
    compact = re.sub(r"\s+", "", text)
    if not re.fullmatch(rf"{_NAME}(?:[:/]{_NAME})*", compact):
        raise ValueError(
            f"unsupported grouping factor {text!r}: the right of a bar may be a "
            "variable g, an interaction a:b or a nesting a/b. Give each grouping "
            "factor its own term: (1 | g1) + (1 | g2), not (1 | g1 + g2)."
        )
    return [
        tuple(name.strip("`") for name in part.split(":"))
        for part in compact.split("/")
    ]


def _expand_slash(text):
    """lme4's expandSlash: ``a/b/c`` → a, b:a, c:(b:a) with their variables."""
    out, outer_vars, outer = [], (), None
    for part in _parse_grouping(text):
        variables, name = part + outer_vars, ":".join(part)
        if outer is not None:  # R deparses a right-nested ':' with parentheses
            name += f":({outer})" if ":" in outer else f":{outer}"
        out.append((variables, name))
        outer_vars, outer = variables, name
    return out


def _expand_bar(lhs, bar, grouping):
    terms = []
    for variables, name in _expand_slash(grouping):
        if bar == "|":
            _expand_terms(lhs)  # refuse bad syntax now
            terms.append(RandomTerm(lhs, variables, name, True))
            continue
        intercept, labels = _expand_terms(lhs)
        parts = (["1"] if intercept else []) + [f"0 + {lab}" for lab in labels]
        terms.extend(RandomTerm(p, variables, name, False) for p in parts)
    return terms


# --------------------------------------------------------------------------- #
# R's term algebra (formulaic parses, R orders)                                #
# --------------------------------------------------------------------------- #


def _protect(text):
    """Hide calls and backticked names from formulaic behind placeholders.

    formulaic rewrites the Python inside calls (``I((x + 1)^2)`` loses its
    parentheses); R's names need the text as written.
    """
    mapping, out, i = {}, [], 0
    while i < len(text):
        m = re.compile(r"`[^`]+`|[A-Za-z.][A-Za-z0-9._]*\s*\(").match(text, i)
        if m is None:
            out.append(text[i])
            i += 1
            continue
        if m.group().startswith("`"):
            end, original = m.end(), m.group()[1:-1]
        else:
            end = _matching_paren(text, m.end() - 1) + 1
            original = text[i:end]
        key = f"_skmixed{len(mapping)}_"
        mapping[key] = original
        out.append(key)
        i = end
    return "".join(out), mapping


def _expand_terms(rhs):
    """(has intercept, term labels) of a one-sided formula, ordered as R's terms."""
    intercept, terms, _ = _terms(rhs)
    return intercept, [":".join(t) for t in terms]


def _terms(rhs):
    """(intercept, terms as tuples of variable texts, variables) in R's order."""
    if "%" in rhs:
        raise ValueError(f"'%in%' and other %-operators are not supported: {rhs!r}.")
    protected, mapping = _protect(rhs)
    try:
        parsed = list(Formula(protected, _ordering="none"))
    except FormulaicError as exc:
        message = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", str(exc)).strip()
        raise ValueError(f"could not parse {rhs!r}: {message}") from exc
    intercept, terms, variables = False, [], []
    for term in parsed:
        texts = [mapping.get(f.expr, f.expr) for f in term.factors]
        if texts == ["1"]:
            intercept = True
            continue
        for text in texts:
            _check_functions(text)
            if text not in variables:
                variables.append(text)
        terms.append(texts)
    order = {v: i for i, v in enumerate(variables)}
    terms = [tuple(sorted(t, key=order.get)) for t in terms]
    unique = list(dict.fromkeys(terms))
    return intercept, sorted(unique, key=len), variables


def _check_functions(text):
    for name in re.findall(r"([A-Za-z.][A-Za-z0-9._]*)\s*\(", text):
        if name in SUPPORTED_FUNCTIONS:
            continue
        hint = _UNSUPPORTED_HINTS.get(name, f"the function {name}() is not supported")
        raise ValueError(
            f"{hint} (in {text!r}); the supported functions are "
            f"{', '.join(SUPPORTED_FUNCTIONS)}."
        )


# --------------------------------------------------------------------------- #
# R's names                                                                    #
# --------------------------------------------------------------------------- #


def r_number(value):
    """A number as R's ``as.character``/``deparse`` writes it (15 digits)."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    fixed = np.format_float_positional(value, precision=15, unique=True, trim="-")
    sci = np.format_float_scientific(value, precision=14, unique=True, trim="-")
    mantissa, exponent = sci.split("e")
    sci = f"{mantissa}e{exponent[0]}{int(exponent[1:]):02d}"
    return fixed if len(fixed) <= len(sci) else sci


def r_label(value):
    """A level as R prints it: TRUE/FALSE, numbers as R writes them."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return r_number(value)
    return str(value)


_SPACED = {"+", "-", "*", "==", "!=", "<", ">", "<=", ">=", "&", "|", "=", "~"}
_OPENERS = _SPACED | {"(", "[", ",", "^", "/", ":"}


def r_deparse(text):
    """Respace an expression as R's ``deparse`` does (``poly(x,2)`` → ``poly(x, 2)``).

    Examples
    --------
    >>> r_deparse("I(x^2)"), r_deparse("log(x+1)"), r_deparse("scale(x,center=TRUE)")
    ('I(x^2)', 'log(x + 1)', 'scale(x, center = TRUE)')
    """
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text
    out, previous = [], None
    for tok in tokens:
        s = tok.string
        if tok.type == tokenize.NUMBER:
            s = r_number(float(s))
        elif tok.type == tokenize.STRING:
            s = '"' + ast.literal_eval(s) + '"'
        unary = s in ("+", "-") and (previous is None or previous in _OPENERS)
        if s == ",":
            out.append(", ")
        elif s in _SPACED and not unary:
            out.append(f" {s} ")
        else:
            out.append(s)
        previous = s if tok.type == tokenize.OP else "a"
    return "".join(out)


# --------------------------------------------------------------------------- #
# Evaluating one variable (an R expression)                                    #
# --------------------------------------------------------------------------- #


@dataclass
class _Factor:
    """A categorical variable as R's model frame holds it."""

    values: np.ndarray  # object array of raw labels, None/NaN for missing
    levels: list | None  # None: learn the sorted observed values at fit
    ordered: bool = False
    contrast: str | None = None


def _column(frame, name):
    if name not in frame.columns:
        raise ValueError(
            f"the formula uses {name!r}, which is not a column of the data."
        )
    s = frame[name]
    if isinstance(s.dtype, pd.CategoricalDtype):
        values = np.asarray(s.astype(object).where(s.notna(), None), dtype=object)
        return _Factor(values, list(s.cat.categories), bool(s.cat.ordered))
    if pd.api.types.is_bool_dtype(s.dtype):
        return _Factor(s.to_numpy(dtype=object), [False, True])
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=float, na_value=np.nan)
    values = np.asarray(s.astype(object).where(s.notna(), None), dtype=object)
    return _Factor(values, None)


class _DeferredError(Exception):
    """A stateful call's parameters are still being learned: no value yet."""


class _Evaluator(ast.NodeVisitor):
    """Evaluate one R-like expression on a frame, with stateful transforms.

    ``state`` holds the learned parameters of each stateful call, by slot
    (the calls in evaluation order, innermost first).  When ``learning`` (slot
    -> learner in progress) is given, the first call without parameters adds
    ``(learner, partial sums of its argument)`` to ``sums`` under its slot and
    stops the evaluation (:class:`_DeferredError`); without it, every call must
    have its parameters.
    """

    def __init__(self, frame, state, learning=None, sums=None):
        self.frame, self.state, self.calls = frame, state, 0
        self.learning, self.sums = learning, sums

    def run(self, text):
        source = re.sub(r"\bas\.(factor|numeric)\s*\(", r"as_\1(", text)
        source = source.replace("^", "**")
        if text in self.frame.columns:  # names that are not Python identifiers
            return _column(self.frame, text)
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"could not read the expression {text!r}.") from exc
        return self.visit(tree.body)

    def generic_visit(self, node):
        raise ValueError(
            f"unsupported syntax {ast.unparse(node)!r} in a formula expression."
        )

    def visit_Constant(self, node):
        return node.value

    def visit_Name(self, node):
        if node.id in self.frame.columns:
            return _column(self.frame, node.id)
        if node.id in ("TRUE", "FALSE"):
            return node.id == "TRUE"
        raise ValueError(
            f"the formula uses {node.id!r}, which is not a column of the data."
        )

    def visit_Attribute(self, node):  # R names with dots: Petal.Width
        return self.visit_Name(ast.Name(_dotted(node)))

    def visit_UnaryOp(self, node):
        value = _numeric(self.visit(node.operand), ast.unparse(node))
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        return self.generic_visit(node)

    def visit_BinOp(self, node):
        ops = {
            ast.Add: np.add,
            ast.Sub: np.subtract,
            ast.Mult: np.multiply,
            ast.Div: np.divide,
            ast.Pow: np.power,
            ast.BitAnd: np.logical_and,
            ast.BitOr: np.logical_or,
        }
        if type(node.op) not in ops:
            return self.generic_visit(node)
        text = ast.unparse(node)
        left = _numeric(self.visit(node.left), text)
        right = _numeric(self.visit(node.right), text)
        with np.errstate(all="ignore"):
            return ops[type(node.op)](np.asarray(left, float), right)

    def visit_Compare(self, node):
        ops = {
            ast.Gt: np.greater,
            ast.Lt: np.less,
            ast.GtE: np.greater_equal,
            ast.LtE: np.less_equal,
            ast.Eq: np.equal,
            ast.NotEq: np.not_equal,
        }
        if len(node.ops) != 1 or type(node.ops[0]) not in ops:
            return self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.comparators[0])
        if isinstance(left, _Factor):
            left = left.values
        with np.errstate(invalid="ignore"):
            return ops[type(node.ops[0])](left, right).astype(bool)

    def visit_Call(self, node):
        name = _dotted(node.func).replace("as_", "as.")
        if name == "C":
            return self._contrast(node)
        args = [self.visit(a) for a in node.args]
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords}
        text = ast.unparse(node)
        if name in _MATH:
            return _math(name, args, kwargs, text)
        if name == "I":
            return args[0]
        if name in ("factor", "as.factor", "ordered"):
            return _as_factor(args[0], ordered=name == "ordered")
        if name == "as.numeric":
            return _numeric(args[0], text)
        if name in ("poly", "scale", "center"):
            return self._stateful(name, args, kwargs, text)
        _check_functions(f"{name}()")
        return self.generic_visit(node)  # pragma: no cover - refused above

    def _contrast(self, node):
        if len(node.args) != 2 or node.keywords:
            raise ValueError(
                f"C() takes a variable and a contrast: {ast.unparse(node)!r}."
            )
        spec = node.args[1]
        key = spec.value if isinstance(spec, ast.Constant) else _dotted(spec)
        if key not in _CONTRASTS:
            raise ValueError(
                f"unknown contrast {key!r} in {ast.unparse(node)!r}; use one of "
                "contr.treatment, contr.sum, contr.helmert, contr.poly, contr.SAS "
                "(or sum, Sum, treatment, Treatment, helmert, Helmert, poly, Poly)."
            )
        factor = _as_factor(self.visit(node.args[0]))
        return _Factor(factor.values, factor.levels, factor.ordered, _CONTRASTS[key])

    def _stateful(self, name, args, kwargs, text):
        x = _numeric(args[0], text)
        slot = self.calls
        self.calls += 1
        learn, apply = _TRANSFORMS[name]
        if slot in self.state:
            return apply(x, self.state[slot])
        if self.learning is None:
            raise ValueError(f"the parameters of {text!r} were not learned.")
        learner = self.learning.get(slot) or learn(*args[1:], **kwargs)
        x = np.asarray(x, dtype=float)
        if not np.isfinite(x).all():
            raise ValueError(
                f"the argument of {r_deparse(text.replace('**', '^'))} is not "
                "finite on some complete rows of the training data."
            )
        self.sums[slot] = (learner, learner.summarize(x))
        raise _DeferredError


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise ValueError(f"unsupported syntax {ast.unparse(node)!r} in a formula.")


def _numeric(value, text):
    if isinstance(value, _Factor):
        raise ValueError(f"{text!r} does arithmetic on a categorical variable.")
    if isinstance(value, np.ndarray) and value.dtype == object:
        raise ValueError(f"{text!r} needs numbers; it got labels.")
    return value


def _as_factor(value, ordered=False):
    if isinstance(value, _Factor):
        return _Factor(value.values, value.levels, ordered or value.ordered)
    values = np.asarray(value)
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), None, values.astype(object))
    return _Factor(values.astype(object), None, ordered)


def _math(name, args, kwargs, text):
    x = np.asarray(_numeric(args[0], text), dtype=float)
    with np.errstate(all="ignore"):
        out = _MATH[name](x)
        if name == "log" and (len(args) > 1 or "base" in kwargs):
            out = out / np.log(kwargs.get("base", args[1] if len(args) > 1 else 0))
    return out


# Stateful transforms: (learner class, apply(x, params)).  A learner takes the
# call's other arguments; ``summarize(x)`` reduces the argument on some rows to
# partial sums, ``combine`` adds two of them and ``update(total)`` takes the
# sums over all rows, one pass at a time, until ``params`` is set.  Fitting on
# a frame and on the partitions of a dask DataFrame run the same steps.


def _outer_transform_slot(text):
    """The slot of the stateful call ``text`` is, if it is one (else None).

    Calls are numbered innermost first, so the outermost is the last.
    """
    source = re.sub(r"\bas\.(factor|numeric)\s*\(", r"as_\1(", text)
    try:
        node = ast.parse(source.replace("^", "**").strip(), mode="eval").body
    except SyntaxError:
        return None
    names = [
        c.func.id
        for c in ast.walk(node)
        if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
    ]
    outer = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    if not outer or node.func.id not in _TRANSFORMS:
        return None
    return sum(name in _TRANSFORMS for name in names) - 1


class _PolyLearner:
    """R's ``poly(x, degree)``: the three-term recurrence, one pass per degree.

    Pass 0 gives the count, the mean and enough distinct values to check
    the degree; pass k (1..degree) evaluates the monic orthogonal polynomial
    P_k with the coefficients so far and sums P_k^2 (R's ``norm2``) and
    (x - mean) P_k^2 (giving ``alpha``).  The result equals R's QR-based
    coefficients up to rounding.
    """

    def __init__(self, degree=1, raw=False):
        self.degree, self.raw = int(degree), bool(raw)
        if self.degree < 1:
            raise ValueError("'degree' must be at least 1 in poly().")
        self.alpha, self.norm2, self.xbar = [], [1.0], None
        self.params = {"degree": self.degree, "raw": True} if self.raw else None

    def summarize(self, x):
        if self.raw:
            return {}
        k = len(self.norm2) - 1  # the polynomial this pass measures
        if k == 0:
            distinct = np.unique(x)[: self.degree + 1]
            return {"n": float(x.size), "sum": float(x.sum()), "distinct": distinct}
        P = _monic_polynomials(x, self.alpha, self.norm2, k)[:, k]
        squares = P**2
        return {"n2": float(squares.sum()), "xn2": float((x - self.xbar) @ squares)}

    def combine(self, a, b):
        out = {k: a[k] + b[k] for k in a if k != "distinct"}
        if "distinct" in a:  # the smallest degree + 1 distinct values suffice
            both = np.concatenate([a["distinct"], b["distinct"]])
            out["distinct"] = np.unique(both)[: self.degree + 1]
        return out

    def update(self, total):
        if self.raw:
            return
        if "distinct" in total:
            if self.degree >= len(np.unique(total["distinct"])):
                raise ValueError(
                    "'degree' must be less than number of unique points in poly()."
                )
            self.xbar = total["sum"] / total["n"]
            self.alpha.append(self.xbar)
            self.norm2.append(total["n"])
            return
        self.norm2.append(total["n2"])
        if len(self.alpha) < self.degree:
            self.alpha.append(total["xn2"] / total["n2"] + self.xbar)
        if len(self.norm2) == self.degree + 2:
            self.params = {
                "degree": self.degree,
                "raw": False,
                "alpha": np.array(self.alpha),
                "norm2": np.array(self.norm2),
            }

    def seen(self, name):
        """What its values show, from the (finite) argument and the parameters."""
        return _Seen(False, ncols=self.degree)


def _monic_polynomials(x, alpha, norm2, degree):
    """P_0..P_degree at ``x`` (columns): R's ``predict.poly`` recurrence."""
    Z = np.ones((len(x), degree + 1))
    if degree >= 1:
        Z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
    return Z


def _poly_apply(x, p):
    """R's ``predict.poly``; columns named 1..degree."""
    degree = p["degree"]
    if p["raw"]:
        return np.column_stack([x**k for k in range(1, degree + 1)])
    Z = _monic_polynomials(x, p["alpha"], p["norm2"], degree)
    return Z[:, 1:] / np.sqrt(p["norm2"][2:])


class _ScaleLearner:
    """R's ``scale(x, center, scale)`` from combinable moments (one pass)."""

    def __init__(self, center=True, scale=True):
        self.center, self.scale, self.params = center, scale, None

    @staticmethod
    def summarize(x):
        mean = float(x.mean()) if x.size else 0.0
        return {"n": x.size, "mean": mean, "m2": float(((x - mean) ** 2).sum())}

    def combine(self, a, b):
        """Chan, Golub and LeVeque's update of count, mean and sum of squares."""
        if a["n"] == 0 or b["n"] == 0:
            return b if a["n"] == 0 else a
        n = a["n"] + b["n"]
        delta = b["mean"] - a["mean"]
        mean = a["mean"] + delta * (b["n"] / n)
        m2 = a["m2"] + b["m2"] + delta**2 * (a["n"] * b["n"] / n)
        return {"n": n, "mean": mean, "m2": m2}

    def update(self, total):
        center, scale, n = self.center, self.scale, total["n"]
        shift = total["mean"] if center is True else float(center or 0.0)
        if scale is True:  # R: the root mean square about the centre, n - 1
            squares = total["m2"] + n * (total["mean"] - shift) ** 2
            spread = np.sqrt(squares / max(n - 1, 1))
        else:
            spread = 1.0 if scale is False else float(scale)
        self.params = {"center": shift, "scale": spread}

    def seen(self, name):
        """What its values show, from the (finite) argument and the parameters."""
        values = np.array([self.params["center"], self.params["scale"]], dtype=float)
        if not np.isfinite(values).all() or values[1] == 0:
            raise ValueError(
                f"{name} is not finite on some complete rows of the training data."
            )
        return _Seen(False)


def _center_learner():
    return _ScaleLearner(True, False)


def _scale_apply(x, p):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x - p["center"]) / p["scale"]


_TRANSFORMS = {
    "poly": (_PolyLearner, _poly_apply),
    "scale": (_ScaleLearner, _scale_apply),
    "center": (_center_learner, _scale_apply),
}


# --------------------------------------------------------------------------- #
# Contrasts                                                                    #
# --------------------------------------------------------------------------- #


def contrast_matrix(kind, labels):
    """R's ``contr.<kind>(k)``: the k×(k-1) matrix and its column suffixes."""
    k = len(labels)
    if k < 2:
        raise ValueError(
            "contrasts can be applied only to factors with 2 or more levels"
        )
    eye = np.eye(k)
    if kind == "treatment":
        return eye[:, 1:], list(labels[1:])
    if kind == "SAS":
        return eye[:, :-1], list(labels[:-1])
    names = [str(j) for j in range(1, k)]
    if kind == "sum":
        return np.vstack([np.eye(k - 1), -np.ones(k - 1)]), names
    if kind == "helmert":
        H = np.zeros((k, k - 1))
        for j in range(k - 1):
            H[: j + 1, j] = -1.0
            H[j + 1, j] = j + 1.0
        return H, names
    return _contr_poly(k), [".L", ".Q", ".C", *[f"^{j}" for j in range(4, k)]][: k - 1]


def _contr_poly(k):
    """R's make.poly: orthonormal polynomials in the scores 1..k."""
    scores = np.arange(1.0, k + 1)
    X = np.vander(scores - scores.mean(), k, increasing=True)
    Q, R = np.linalg.qr(X)
    Z = Q * np.diag(R)
    Z /= np.sqrt((Z**2).sum(axis=0))
    return Z[:, 1:]


# --------------------------------------------------------------------------- #
# One model matrix (R's model.matrix on a one-sided formula)                   #
# --------------------------------------------------------------------------- #


@dataclass
class _Seen:
    """What the rows show of one evaluated variable; combinable across rows.

    A factor's declared levels (categories) and observed values, or a numeric
    variable's number of columns.
    """

    factor: bool
    levels: list | None = None  # declared (categories), None: sorted observed
    observed: list = field(default_factory=list)
    ordered: bool = False
    contrast: str | None = None
    ncols: int = 1


def _seen(name, value):
    if isinstance(value, _Factor) or _is_labels(value):
        factor = value if isinstance(value, _Factor) else _as_factor(value)
        observed = pd.unique(pd.Series(factor.values, dtype=object).dropna())
        return _Seen(
            True, factor.levels, observed.tolist(), factor.ordered, factor.contrast
        )
    value = np.asarray(value, dtype=float)
    if not np.isfinite(value).all():  # log(0), sqrt(-1), ...
        raise ValueError(
            f"{name} is not finite on some complete rows of the training data."
        )
    return _Seen(False, ncols=1 if value.ndim == 1 else value.shape[1])


def _merge_seen(name, a, b):
    if a.factor != b.factor or a.ncols != b.ncols:
        raise ValueError(
            f"{name} is not of one kind on all rows (categorical on some, numeric "
            "on others, or with different numbers of columns)."
        )
    if not a.factor:
        return a
    levels = a.levels if b.levels is None else b.levels
    if a.levels is not None and b.levels is not None and a.levels != b.levels:
        levels = list(dict.fromkeys([*a.levels, *b.levels]))
    observed = list(dict.fromkeys([*a.observed, *b.observed]))
    return _Seen(True, levels, observed, a.ordered, a.contrast)


@dataclass
class _VariableSummary:
    """One variable on some rows: what they show (None while stateful calls
    are still learned) and the partial sums of the calls being learned."""

    seen: _Seen | None
    sums: dict  # slot -> (learner, partial sums)


def _merge_variable(name, a, b):
    seen = b.seen if a.seen is None else a.seen
    if a.seen is not None and b.seen is not None:
        seen = _merge_seen(name, a.seen, b.seen)
    sums = dict(a.sums)
    for slot, (learner, part) in b.sums.items():
        sums[slot] = (
            (learner, part)
            if slot not in sums
            else (learner, learner.combine(sums[slot][1], part))
        )
    return _VariableSummary(seen, sums)


@dataclass
class _Variable:
    """What fit learned of one variable: its kind, levels and transform state."""

    text: str
    name: str  # R's deparsed name
    state: dict  # slot -> parameters of each stateful call, once learned
    levels: list | None = None  # factors only
    contrast: str | None = None
    by_index: bool = False  # C(x, contr.treatment): R names the columns 2..k
    colnames: list | None = None  # numeric matrices (poly): suffixes
    learning: dict = field(default_factory=dict)  # slot -> learner in progress
    learned: bool = False

    @property
    def is_factor(self):
        return self.levels is not None

    def summarize(self, rows):
        """This variable on some complete rows (see :class:`_VariableSummary`)."""
        sums = {}
        try:
            value = _Evaluator(rows, self.state, self.learning, sums).run(self.text)
        except _DeferredError:
            return _VariableSummary(None, sums)
        return _VariableSummary(_seen(self.name, value), sums)

    def learn(self, summary):
        """Take the summary of all the training rows (one pass)."""
        seen = summary.seen
        for slot, (learner, total) in summary.sums.items():
            learner = self.learning.setdefault(slot, learner)
            learner.update(total)
            if learner.params is not None:
                self.state[slot] = learner.params
                del self.learning[slot]
                if slot == _outer_transform_slot(self.text):
                    # poly(...), scale(...): the value needs no further pass
                    seen = learner.seen(self.name)
        if seen is None:
            return
        if seen.factor:
            self.levels = _learn_levels(seen.levels, seen.observed)
            self.by_index = seen.contrast is not None
            self.contrast = seen.contrast or ("poly" if seen.ordered else "treatment")
        elif seen.ncols > 1:
            self.colnames = [str(j) for j in range(1, seen.ncols + 1)]
        self.learned = True


class _ModelMatrix:
    """R's ``model.matrix(~ rhs, frame)`` learned on one frame, applied to any."""

    def __init__(self, rhs):
        self.rhs = rhs
        self.intercept, self.terms, texts = _terms(rhs)
        self.variables = {t: _Variable(t, _r_name(t), {}) for t in texts}

    @property
    def learned(self):
        return all(v.learned for v in self.variables.values())

    def finish(self):
        """The columns' codings and names, once every variable is learned."""
        self.codes = _term_codes(self.intercept, self.terms, self.variables)
        self.names = self._column_names()

    def _column_names(self):
        names = [INTERCEPT] if self.intercept else []
        for term, codes in zip(self.terms, self.codes):
            parts = [[""]]
            for text, code in zip(term, codes):
                parts.append(_variable_names(self.variables[text], code))
            names.extend(":".join(p) for p in _product(parts[1:]))
        return names

    def transform(self, frame):
        n = len(frame)
        blocks = [np.ones((n, 1))] if self.intercept else []
        values = {t: self._evaluate(v, frame) for t, v in self.variables.items()}
        for term, codes in zip(self.terms, self.codes):
            block = np.ones((n, 1))
            for text, code in zip(term, codes):
                cols = _variable_columns(self.variables[text], values[text], code)
                # the first variable varies fastest, as in R
                block = (cols[:, :, None] * block[:, None, :]).reshape(n, -1)
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.empty((n, 0))

    def _evaluate(self, var, frame):
        value = _Evaluator(frame, var.state).run(var.text)
        if not var.is_factor:
            if isinstance(value, _Factor) or _is_labels(value):
                raise ValueError(f"{var.name} was numeric when fitted; it is not now.")
            value = np.asarray(value, dtype=float)
            return value.reshape(len(frame), -1)
        factor = value if isinstance(value, _Factor) else _as_factor(value)
        return _codes(var, factor)


def _r_name(text):
    return r_deparse(text) if "(" in text else text


def _is_labels(value):
    return isinstance(value, np.ndarray) and value.dtype.kind in "bOSU"


def _learn_levels(declared, observed):
    """R's levels: the declared ones observed, in order, else the sorted values."""
    if declared is not None:  # lme4's drop.unused.levels keeps the order
        seen = set(observed)
        return [lev for lev in declared if lev in seen]
    try:
        return sorted(observed)
    except TypeError:
        return sorted(observed, key=str)


def _codes(var, factor):
    """Integer codes of the levels learned at fit; -1 for missing."""
    values = pd.Series(factor.values, dtype=object)
    lookup = {lev: i for i, lev in enumerate(var.levels)}
    codes = values.map(lambda v: lookup.get(v, -2) if not pd.isna(v) else -1)
    unseen = values[codes.to_numpy() == -2]
    if len(unseen):
        raise ValueError(
            f"{var.name} has the level {r_label(unseen.iloc[0])!r}, not seen when "
            f"fitting (known levels: {', '.join(map(r_label, var.levels))})."
        )
    return codes.to_numpy(dtype=int)


def _term_codes(intercept, terms, variables):
    """R's TermCode: 1 = contrasts, 2 = one indicator per level.

    A factor is coded by contrasts in a term when the term without it is the
    intercept or is contained in an earlier term; without an intercept the
    first factor of the first term holding one gets indicators (R's
    ``modelmatrix``).
    """
    codes = []
    for j, term in enumerate(terms):
        row = []
        for text in term:
            rest = set(term) - {text}
            contained = not rest or any(rest <= set(t) for t in terms[:j])
            row.append(1 if contained else 2)
        codes.append(row)
    if not intercept:
        for j, term in enumerate(terms):
            factors = [i for i, t in enumerate(term) if variables[t].is_factor]
            if factors:
                codes[j][factors[0]] = 2
                break
    return codes


def _variable_names(var, code):
    if not var.is_factor:
        return (
            [var.name] if var.colnames is None else [var.name + c for c in var.colnames]
        )
    labels = [r_label(lev) for lev in var.levels]
    if code == 2:
        return [var.name + lab for lab in labels]
    if var.by_index:  # C() calls contr.<kind>(k), whose names are indices
        labels = [str(j) for j in range(1, len(labels) + 1)]
    return [var.name + c for c in contrast_matrix(var.contrast, labels)[1]]


def _variable_columns(var, value, code):
    if not var.is_factor:
        return value
    k = len(var.levels)
    matrix = np.eye(k) if code == 2 else contrast_matrix(var.contrast, var.levels)[0]
    out = matrix[np.clip(value, 0, None)]
    out[value < 0] = np.nan
    return out


def _product(parts):
    """Name combinations with the first part varying fastest."""
    combos = [[]]
    for part in parts:
        combos = [c + [p] for p in part for c in combos]
    return combos


# --------------------------------------------------------------------------- #
# The public object                                                            #
# --------------------------------------------------------------------------- #


def _as_pandas(frame):
    """A pandas DataFrame from pandas, polars (no pyarrow needed) or a mapping."""
    if type(frame).__module__.startswith("polars"):
        columns = {}
        for name in frame.columns:
            s = frame[name]
            if str(s.dtype).startswith("Enum"):
                columns[name] = pd.Categorical(
                    s.cast(str).to_numpy(), categories=list(s.dtype.categories)
                )
            else:
                columns[name] = s.to_numpy()
        return pd.DataFrame(columns)
    if isinstance(frame, pd.DataFrame):
        return frame.reset_index(drop=True)
    return pd.DataFrame(frame)


def _names_in(text):
    """Column names an expression may read (identifiers, dotted, backticked)."""
    if text.startswith("`"):
        return [text.strip("`")]
    return re.findall(r"[A-Za-z.][A-Za-z0-9._]*\b(?!\s*\()", text)


class FormulaMatrices:
    """The matrices of an lme4 formula, learned on a training frame.

    Build with :meth:`fit`; the other methods accept the training frame or new
    rows (pandas or polars). Categorical levels, ``poly`` coefficients and
    ``scale``/``center`` parameters are those of the training rows without a
    missing value (lme4's ``na.omit``); unused categories are dropped (lme4's
    ``drop.unused.levels``).

    Rows spread over partitions (a dask DataFrame) fit the same way without
    being gathered: :meth:`start` on the columns, then passes of
    :meth:`summarize` per partition, :func:`combine_formula_summaries` and
    :meth:`learn` until :attr:`fitted` (one pass, one more per degree of a
    ``poly``).  :meth:`fit` runs these steps with the frame as the one
    partition.

    Attributes
    ----------
    parsed : ParsedFormula
    intercept : bool
        Whether the fixed part has an intercept (the column ``"Intercept"``).
    fixed_names : list of str
        R's names of the fixed-effect columns.
    random_names : list of list of str
        R's names of each random term's columns.
    group_levels : dict
        Grouping-factor name → its levels in lme4's order (training rows).
    variables : tuple of str
        The data columns the formula reads.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [0.5, 1, 2, 3],
    ...                    "f": ["b", "a", "b", "a"], "g": ["u", "u", "v", "v"]})
    >>> m = FormulaMatrices.fit(parse_formula("y ~ x * f + (1 | g)"), df)
    >>> m.fixed_names
    ['Intercept', 'x', 'fb', 'x:fb']
    >>> m.random_names, list(m.groups(df)["g"])
    ([['Intercept']], ['u', 'u', 'v', 'v'])
    """

    def __init__(self, parsed):
        self.parsed = parsed
        self._fixed = _ModelMatrix(parsed.fixed)
        self._random = [_ModelMatrix(t.expression) for t in parsed.random]
        self._response = None
        self.intercept = self._fixed.intercept
        self.group_levels = None

    @classmethod
    def fit(cls, parsed, frame):
        """Learn levels and transform parameters on ``frame``'s complete rows.

        The same steps as on the partitions of a dask DataFrame, with the
        frame as the one partition: :meth:`start`, then :meth:`summarize`
        and :meth:`learn` until :attr:`fitted`.
        """
        frame = _as_pandas(frame)
        self = cls.start(parsed, frame)
        while not self.fitted:
            self.learn(self.summarize(frame))
        return self

    # Learning from summaries: one pass over the rows per call of learn.

    @classmethod
    def start(cls, parsed, columns):
        """An unfitted instance for the columns of ``columns`` (a frame; may be
        empty, as a dask DataFrame's ``_meta``)."""
        if isinstance(parsed, str):
            parsed = parse_formula(parsed)
        self = cls(parsed)
        columns = _as_pandas(columns)
        self.variables = tuple(self._variables(columns))
        response = parsed.response
        if response is not None and (
            response in columns.columns
            or all(n in columns.columns for n in _names_in(response))
        ):
            self._response = _Variable(response, _r_name(response), {})
        return self

    @property
    def fitted(self):
        """Whether every level and transform parameter has been learned."""
        return self.group_levels is not None and all(
            var.learned for var in self._variable_table().values()
        )

    def _variable_table(self):
        """(part, text) -> _Variable: the fixed part's, each random term's
        (by index) and the response's."""
        table = {}
        for key, part in [("fixed", self._fixed), *enumerate(self._random)]:
            table.update({(key, t): var for t, var in part.variables.items()})
        if self._response is not None:
            table["response", self._response.text] = self._response
        return table

    def summarize(self, frame):
        """A :class:`FormulaSummary` of some rows (one partition) for :meth:`learn`.

        Its size grows with the levels, not the rows; summaries of disjoint
        rows combine with :func:`combine_formula_summaries`.
        """
        frame = _as_pandas(frame)
        rows = frame[self.complete_rows(frame)].reset_index(drop=True)
        variables = {
            key: var.summarize(rows)
            for key, var in self._variable_table().items()
            if not var.learned
        }
        groups = None if self.group_levels is not None else _group_keys(self, rows)
        return FormulaSummary(len(frame), len(rows), variables, groups)

    def learn(self, summary):
        """Take the summary of all the training rows; one step of fitting."""
        if summary.n_complete == 0:
            raise ValueError(
                "no row is complete: every row misses a value the formula uses."
            )
        table = self._variable_table()
        for key, variable in summary.variables.items():
            table[key].learn(variable)
        if summary.groups is not None:
            self.group_levels = _group_levels(summary.groups)
        if self.fitted:
            for part in (self._fixed, *self._random):
                part.finish()
            self.fixed_names = self._fixed.names
            self.random_names = [part.names for part in self._random]
        return self

    def _variables(self, frame):
        texts = [*self._fixed.variables]
        for part in self._random:
            texts += list(part.variables)
        if self.parsed.response is not None:
            texts.append(self.parsed.response)
        names = []
        for text in texts:
            names += [text] if text in frame.columns else _names_in(text)
        for term in self.parsed.random:
            names += list(term.grouping)
        used = [n for n in dict.fromkeys(names) if n in frame.columns]
        missing = [t for t in self.parsed.random for g in t.grouping if g not in frame]
        if missing:
            raise ValueError(
                f"the grouping factor {missing[0].grouping_name!r} needs columns "
                f"{missing[0].grouping} of the data."
            )
        return used

    def complete_rows(self, frame, *, new_levels=False):
        """Boolean mask of the rows with no missing value in a used variable.

        The response counts only when its column is in ``frame``.  With
        ``new_levels`` (predictions) a missing label of a grouping factor
        does not count: it is a new level, as lme4's ``allow.new.levels``.
        """
        frame = _as_pandas(frame)
        mask = np.ones(len(frame), dtype=bool)
        response = set(_names_in(self.parsed.response or "")) | {self.parsed.response}
        skipped = self._grouping_only(frame) if new_levels else set()
        for name in getattr(self, "variables", ()) or self._variables(frame):
            if name in frame.columns:
                if name not in skipped:
                    mask &= ~frame[name].isna().to_numpy()
            elif name not in response:
                raise ValueError(
                    f"the formula uses {name!r}, not a column of the data."
                )
        return mask

    def _grouping_only(self, frame):
        """The columns used only to name groups, not in any model matrix."""
        texts = [*self._fixed.variables]
        for part in self._random:
            texts += list(part.variables)
        used = set()
        for text in texts:
            used |= {text} if text in frame.columns else set(_names_in(text))
        return {g for t in self.parsed.random for g in t.grouping} - used

    def response(self, frame, labels=False):
        """The response as a float vector (``labels``: class labels allowed).

        A classifier's response may be labels (strings, booleans, a
        categorical column), returned as they are.
        """
        if self.parsed.response is None:
            raise ValueError("the formula has no response (nothing left of '~').")
        state = {} if self._response is None else self._response.state
        value = _Evaluator(_as_pandas(frame), state).run(self.parsed.response)
        if labels and np.ndim(getattr(value, "values", value)) == 1:
            return np.asarray(value.values if isinstance(value, _Factor) else value)
        if isinstance(value, _Factor) or _is_labels(value) or np.ndim(value) != 1:
            raise ValueError(f"the response {self.parsed.response!r} must be numeric.")
        return np.asarray(value, dtype=float)

    def fixed(self, frame):
        """(n × p fixed-effects matrix, R's column names).

        Rows that :meth:`complete_rows` drops are NaN; a level of the fixed part
        unseen at fit on another row raises ValueError.
        """
        return self._on_complete(self._fixed, frame), list(self.fixed_names)

    def random(self, frame):
        """One (n × q matrix, R's column names) per random-effect term."""
        return [(self._on_complete(p, frame), list(p.names)) for p in self._random]

    def _on_complete(self, part, frame):
        frame = _as_pandas(frame)
        # A missing group label does not touch the matrices: rows lacking
        # one are the caller's to drop (fit) or keep (predict, a new level).
        keep = self.complete_rows(frame, new_levels=True)
        out = np.full((len(frame), len(part.names)), np.nan)
        out[keep] = part.transform(frame[keep].reset_index(drop=True))
        return out

    def groups(self, frame):
        """One string column per grouping factor (lme4's names and labels).

        Interactions are labelled ``"a:b"``; missing values are None. Levels
        unseen at fit are kept (new groups).
        """
        frame = _as_pandas(frame)
        out = {}
        for term in self.parsed.random:
            if term.grouping_name not in out:
                out[term.grouping_name] = _group_labels(frame, term.grouping)
        return pd.DataFrame(out, index=range(len(frame)), dtype=object)


def _group_labels(frame, variables):
    """Each row's level label (``"a:b"`` for interactions); None if missing.

    Labels are made once per distinct value (or combination), not per row:
    a million rows of a few thousand levels cost a factorisation.
    """
    codes, labels = [], []
    for v in variables:
        column = frame[v]
        missing = column.isna().to_numpy()
        if pd.api.types.infer_dtype(column, skipna=True).startswith("mixed"):
            # By (type, value): 1 and True are one key to a hash table but
            # two labels ("1", "TRUE"), two levels to lme4.
            keys = [None if m else (type(x), x) for x, m in zip(column, missing)]
            code, uniques = pd.factorize(pd.Series(keys, dtype=object))
            uniques = [value for _, value in uniques]
        else:
            code, uniques = pd.factorize(column)
        codes.append(np.where(missing, -1, code))
        labels.append(np.array([r_label(value) for value in uniques], dtype=object))
    # One code per combination, built up a variable at a time (each step
    # re-factorised, so the keys stay below rows x levels).
    combined = np.zeros(len(frame), dtype=np.int64)
    for code, lab in zip(codes, labels):
        combined, _ = pd.factorize(combined * (len(lab) + 1) + (code + 1))
    first = np.unique(combined, return_index=True)[1]
    text = np.array(
        [
            None
            if any(code[row] < 0 for code in codes)
            else ":".join(lab[code[row]] for lab, code in zip(labels, codes))
            for row in first
        ],
        dtype=object,
    )
    return text[combined] if len(frame) else np.empty(0, dtype=object)


@dataclass
class FormulaSummary:
    """What :meth:`FormulaMatrices.learn` needs of some rows; O(levels) in size.

    Attributes
    ----------
    n_rows, n_complete : int
        The rows given, and those without a missing value the formula uses.
    variables : dict
        (part, variable text) -> what the rows show of each variable still
        being learned, with the partial sums of its stateful calls.
    groups : dict or None
        Grouping-factor name -> :class:`_GroupKeys` of the rows (first pass).
    """

    n_rows: int
    n_complete: int
    variables: dict
    groups: dict | None = None


def combine_formula_summaries(a, b):
    """The :class:`FormulaSummary` of the rows of ``a`` and ``b`` together."""
    variables = dict(a.variables)
    for key, summary in b.variables.items():
        if key in variables:
            summary = _merge_variable(key[1], variables[key], summary)
        variables[key] = summary
    groups = a.groups
    if a.groups is not None:
        groups = {k: _merge_group_keys(a.groups[k], b.groups[k]) for k in a.groups}
    return FormulaSummary(
        a.n_rows + b.n_rows, a.n_complete + b.n_complete, variables, groups
    )


@dataclass
class _GroupKeys:
    """The distinct value combinations of a grouping factor's variables, and
    the categories of those that are categorical (R's level order)."""

    keys: pd.DataFrame
    categories: dict


def _group_keys(matrices, rows):
    out = {}
    for term in matrices.parsed.random:
        if term.grouping_name in out:
            continue
        columns = list(term.grouping)
        keys = pd.DataFrame({v: rows[v].astype(object) for v in columns})
        categories = {
            v: list(rows[v].cat.categories)
            for v in columns
            if isinstance(rows[v].dtype, pd.CategoricalDtype)
        }
        out[term.grouping_name] = _GroupKeys(
            keys.drop_duplicates(ignore_index=True), categories
        )
    return out


def _merge_group_keys(a, b):
    keys = pd.concat([a.keys, b.keys], ignore_index=True)
    categories = dict(a.categories)
    for v, levels in b.categories.items():
        categories[v] = list(dict.fromkeys([*categories.get(v, []), *levels]))
    return _GroupKeys(keys.drop_duplicates(ignore_index=True), categories)


def _group_levels(groups):
    """Grouping-factor name -> labels in lme4's order: sorted by each variable's
    R level order (its categories, else its sorted values)."""
    levels = {}
    for name, found in groups.items():
        keys, variables = found.keys, list(found.keys.columns)
        order = pd.DataFrame(
            {v: _level_codes(keys[v], found.categories.get(v)) for v in variables}
        ).assign(label=_group_labels(keys, variables))
        ordered = order.sort_values(variables).drop_duplicates("label")
        levels[name] = ordered["label"].tolist()
    return levels


def _level_codes(values, categories):
    levels = _learn_levels(categories, values.unique().tolist())
    return values.map({lev: i for i, lev in enumerate(levels)})


# --------------------------------------------------------------------------- #
# The terms of the fixed part (R's terms object, for F-tests by term)          #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class FixedTerms:
    """The terms of a fixed part as R's ``terms`` and ``model.matrix`` know them.

    Attributes
    ----------
    labels : list of str
        R's ``term.labels`` (``"nitro"``, ``"nitro:Variety"``,
        ``"poly(Time, 2)"``), in R's order.
    intercept : bool
    assign : ndarray of int
        R's ``assign``: for each column of the fixed-effect matrix (intercept
        first) its term, 0 for the intercept and ``k`` for ``labels[k - 1]``.
    variables : list of tuple of str
        Each term's variables (R's names), in the term's order.
    factors : list of tuple of bool
        Whether each of those variables is categorical (R's ``dataClasses``
        ``"factor"``/``"ordered"``; anything else is numeric).
    """

    labels: list
    intercept: bool
    assign: np.ndarray
    variables: list
    factors: list


def fixed_terms(matrices):
    """The :class:`FixedTerms` of a fitted :class:`FormulaMatrices`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [0.5, 1, 2, 3, 1, 2],
    ...                    "f": list("abcabc"), "g": list("uuuvvv")})
    >>> t = fixed_terms(FormulaMatrices.fit(parse_formula("y ~ x * f + (1 | g)"), df))
    >>> t.labels, t.assign.tolist()
    (['x', 'f', 'x:f'], [0, 1, 2, 2, 3, 3])
    """
    return _part_terms(matrices._fixed)


def random_terms(matrices):
    """The terms of the left side of each random-effect bar, in formula order.

    One :class:`FixedTerms` per term of ``matrices.parsed.random``: the
    terms of ``(1 + Time | Chick)`` are ``["Time"]``, with the intercept.
    """
    return [_part_terms(part) for part in matrices._random]


def findbars_order(parsed):
    """Indices of ``parsed.random`` in lme4's ``findbars`` order.

    lme4 lists the terms of a nested grouping ``(1 | a/b)`` innermost
    first (``1 | b:a``, then ``1 | a``); other terms keep formula order.
    """
    _, rhs = _split_tilde(parsed.formula)
    _, bars = _extract_bars(rhs)
    order, start = [], 0
    for lhs, bar, grouping in bars:
        n_groupings = len(_expand_slash(grouping))
        per_grouping = len(_expand_bar(lhs, bar, grouping)) // n_groupings
        blocks = [
            list(range(start + k * per_grouping, start + (k + 1) * per_grouping))
            for k in range(n_groupings)
        ]
        order += [i for block in reversed(blocks) for i in block]
        start += n_groupings * per_grouping
    return order


def _part_terms(part):
    assign = [0] * part.intercept
    for k, (term, codes) in enumerate(zip(part.terms, part.codes), start=1):
        width = 1
        for text, code in zip(term, codes):
            width *= len(_variable_names(part.variables[text], code))
        assign += [k] * width
    variables = [tuple(part.variables[t].name for t in term) for term in part.terms]
    return FixedTerms(
        labels=[":".join(v) for v in variables],
        intercept=part.intercept,
        assign=np.asarray(assign, dtype=int),
        variables=variables,
        factors=[
            tuple(part.variables[t].is_factor for t in term) for term in part.terms
        ],
    )


GRID_ROWS = 20_000  # beyond this, term_grid_matrices samples random cells


def term_grid_matrices(matrices, seed=0):
    """The fixed-effect matrices lmerTest's type III contrasts are built from.

    On a grid of every combination of the factors' levels, each row
    repeated with random values of the numeric variables (the matrices'
    columns are then functions of the variables, so the linear relations
    between them are those of any data with every cell present):

    - ``X``: the model matrix as fitted (the factors' own contrasts);
    - ``X_treatment``: the same with ``contr.treatment`` for every factor,
      and its column names;
    - ``rdX``: lmerTest's rank-deficient matrix (``get_rdX``): the
      intercept, then per term ``model.matrix(~ 0 + term)`` (an indicator
      per level of each factor), and its column names.

    Returns
    -------
    dict with keys ``X``, ``X_treatment``, ``treatment_names``, ``rdX``,
    ``rd_names``.
    """
    part = matrices._fixed
    rng = np.random.default_rng(seed)
    factors = [v for v in part.variables.values() if v.is_factor]
    widths = [
        1 if v.colnames is None else len(v.colnames)
        for v in part.variables.values()
        if not v.is_factor
    ]
    n_cells = math.prod(len(v.levels) for v in factors)
    repeats = 2 * (sum(widths) + 1)
    n = n_cells * repeats
    if n <= GRID_ROWS:
        grid = np.indices([len(v.levels) for v in factors]).reshape(len(factors), -1)
        grid = np.tile(grid, repeats)
    else:
        # many factors: random cells, as many rows as every term has cells
        # (times the numeric columns); the caller checks the rank
        n = GRID_ROWS
        grid = np.stack([rng.integers(len(v.levels), size=n) for v in factors])
    values = {}
    for text, var in part.variables.items():
        if var.is_factor:
            values[text] = grid[[f.text for f in factors].index(text)]
        else:
            width = 1 if var.colnames is None else len(var.colnames)
            values[text] = rng.standard_normal((n, width))

    def assemble(kind):
        blocks = [np.ones((n, 1))] if part.intercept else []
        names = ["(Intercept)"] if part.intercept else []
        for term, codes in zip(part.terms, part.codes):
            block, labels = np.ones((n, 1)), [""]
            for text, code in zip(term, codes):
                var = part.variables[text]
                if kind == "rd":
                    code = 2
                if var.is_factor and code == 1 and kind != "as fitted":
                    matrix = contrast_matrix("treatment", var.levels)[0]
                    cols = matrix[values[text]]
                    suffixes = [r_label(lev) for lev in var.levels[1:]]
                elif var.is_factor and code == 2:
                    cols = np.eye(len(var.levels))[values[text]]
                    suffixes = [r_label(lev) for lev in var.levels]
                else:
                    cols = _variable_columns(var, values[text], code)
                    suffixes = _variable_names(var, code)
                    suffixes = [s[len(var.name) :] for s in suffixes]
                block = (cols[:, :, None] * block[:, None, :]).reshape(n, -1)
                names_here = [var.name + s for s in suffixes]
                labels = [(f"{a}:{b}" if a else b) for b in names_here for a in labels]
            blocks.append(block)
            names += labels
        return np.hstack(blocks) if blocks else np.empty((n, 0)), names

    X, _ = assemble("as fitted")
    X_treatment, treatment_names = assemble("treatment")
    rdX, rd_names = assemble("rd")
    return {
        "X": X,
        "X_treatment": X_treatment,
        "treatment_names": treatment_names,
        "rdX": rdX,
        "rd_names": rd_names,
    }


@dataclass(frozen=True)
class FixedVariable:
    """One variable of the fixed part as fitted: its expression, its levels
    (factors; None for a numeric variable) and the parameters of its
    stateful calls (``poly``, ``scale``, ``center``) by slot."""

    text: str
    levels: list | None
    state: dict


def fixed_variables(matrices):
    """The :class:`FixedVariable` of each variable of the fixed part, in
    formula order (what a reference grid of marginal means is built on)."""
    return [
        FixedVariable(text, None if var.levels is None else list(var.levels), var.state)
        for text, var in matrices._fixed.variables.items()
    ]


def fixed_matrix(matrices, frame):
    """The fixed-effects model matrix of ``frame``'s rows, every column R's
    ``model.matrix`` gives, reading only the fixed part's variables (the
    rows of a reference grid need no response nor group labels)."""
    return matrices._fixed.transform(_as_pandas(frame).reset_index(drop=True))
