"""A formula model's design rows as data the explorer's JavaScript evaluates.

The what-if predictions of a formula model must equal ``model.predict``: the
page rebuilds R's model matrix row for the raw values the user sets.  Each
part of the formula (the fixed part, each random-effect term) is described
as :class:`~skmixed._formula.FormulaMatrices` holds it after fit:

- ``variables``: what each variable (``Temp``, ``poly(Time, 2)``,
  ``Variety``, ``I(x^2)``) evaluates to.  A numeric variable of numeric
  inputs is an expression tree (constants, columns, arithmetic, the math
  functions, and ``poly``/``scale``/``center`` with the coefficients learned
  at fit), evaluated in the page with the same operations in the same order
  as :class:`~skmixed._formula._Evaluator`.  A variable of categorical
  inputs only (``Variety``, ``factor(cyl)``, ``C(f, sum)``) is a lookup
  table computed here by the model's own code, one entry per combination of
  its inputs' levels: a factor's level code, or a numeric variable's values.
- ``terms``: per term, the variables it multiplies and how each factor is
  coded there (1: contrasts, whose matrix is embedded; 2: one indicator per
  level), as ``_ModelMatrix.transform`` multiplies them (the first variable
  varying fastest).

So the page needs no model-matrix logic of its own beyond the product, and
the numbers it multiplies come from the fit.
"""

import ast
import itertools
import re

import numpy as np
import pandas as pd

from .._formula import _MATH, _TRANSFORMS, INTERCEPT, _names_in, contrast_matrix

MAX_TABLE = 20_000  # combinations of levels one lookup table may hold

_BINARY = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
}
_COMPARE = {
    ast.Gt: ">",
    ast.Lt: "<",
    ast.GtE: ">=",
    ast.LtE: "<=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}


def formula_inputs(matrices, frame):
    """The raw columns the page asks for, and which are categorical.

    Returns ``(numeric, categorical)``: lists of column names of the data
    (the response and the columns that only name groups left out).  A
    column is categorical when it is not numeric in ``frame`` or when a
    factor variable of the formula reads it (``factor(cyl)``).
    """
    parts = [matrices._fixed, *matrices._random]
    used, factor_columns = [], set()
    for part in parts:
        for text, var in part.variables.items():
            names = _columns_of(text, frame)
            used += names
            if var.is_factor:
                factor_columns |= set(names)
    used = list(dict.fromkeys(used))
    categorical = [c for c in used if c in factor_columns or not _is_numeric(frame[c])]
    numeric = [c for c in used if c not in categorical]
    return numeric, categorical


def _is_numeric(series):
    return pd.api.types.is_numeric_dtype(series.dtype) and not (
        pd.api.types.is_bool_dtype(series.dtype)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def _columns_of(text, frame):
    if text in frame.columns:
        return [text]
    return [n for n in dict.fromkeys(_names_in(text)) if n in frame.columns]


def level_values(frame, column):
    """The levels a categorical input offers: its observed values, in R's
    order (categories, else sorted), and one row of ``frame`` holding each."""
    series = frame[column]
    observed = series.dropna()
    if isinstance(series.dtype, pd.CategoricalDtype):
        values = [c for c in series.cat.categories if (observed == c).any()]
    else:
        values = list(pd.unique(observed))
        try:
            values = sorted(values)
        except TypeError:
            values = sorted(values, key=str)
    rows = [int(np.flatnonzero((series == v).to_numpy())[0]) for v in values]
    return values, rows


def formula_recipe(matrices, frame, categorical):
    """The JSON-able description of every part of the formula (see module).

    ``categorical`` maps each categorical input to ``(values, rows)`` of
    :func:`level_values`.
    """
    return {
        "fixed": _part_recipe(matrices._fixed, frame, categorical),
        "random": [_part_recipe(p, frame, categorical) for p in matrices._random],
    }


def _part_recipe(part, frame, categorical):
    variables = list(part.variables)
    recipes = [
        _variable_recipe(part, part.variables[t], frame, categorical) for t in variables
    ]
    terms = [
        [[variables.index(text), int(code)] for text, code in zip(term, codes)]
        for term, codes in zip(part.terms, part.codes)
    ]
    return {
        "intercept": bool(part.intercept),
        "names": list(part.names),
        "keep": [j for j, n in enumerate(part.names) if n != INTERCEPT],
        "variables": recipes,
        "terms": terms,
    }


def _variable_recipe(part, var, frame, categorical):
    columns = _columns_of(var.text, frame)
    if var.is_factor or (columns and all(c in categorical for c in columns)):
        return _table_recipe(part, var, frame, columns, categorical)
    return {
        "kind": "expression",
        "name": var.name,
        "expr": _Translator(frame.columns, var.state).run(var.text),
    }


def _table_recipe(part, var, frame, columns, categorical):
    """The variable on every combination of its inputs' levels, by the
    model's own evaluation; keys are the levels' indices joined by ","."""
    choices = [range(len(categorical[c][0])) for c in columns]
    size = int(np.prod([len(c) for c in choices])) if choices else 1
    if size > MAX_TABLE:
        raise ValueError(
            f"the explorer cannot tabulate {var.name}: its inputs {columns} have "
            f"{size} combinations of levels (at most {MAX_TABLE})."
        )
    combos = list(itertools.product(*choices))
    rows = frame.iloc[[0] * len(combos)].reset_index(drop=True)
    for j, c in enumerate(columns):
        source = [categorical[c][1][combo[j]] for combo in combos]
        rows[c] = frame[c].iloc[source].reset_index(drop=True)
    value = part._evaluate(var, rows)
    keys = [",".join(map(str, combo)) for combo in combos]
    recipe = {"kind": "table", "name": var.name, "columns": columns}
    if var.is_factor:
        matrix = contrast_matrix(var.contrast, var.levels)[0]
        recipe.update(
            factor=True,
            n_levels=len(var.levels),
            contrasts=np.asarray(matrix, dtype=float).tolist(),
            table=dict(zip(keys, np.asarray(value).astype(int).tolist())),
        )
    else:
        recipe.update(
            factor=False, table=dict(zip(keys, np.asarray(value, float).tolist()))
        )
    return recipe


class _Translator:
    """The expression tree of a numeric variable, for the page to evaluate.

    Walks the expression as :class:`~skmixed._formula._Evaluator` does, so
    that the stateful calls get the same slots (innermost first, arguments
    before keywords) and so their learned parameters.
    """

    def __init__(self, columns, state):
        self.columns, self.state, self.calls = set(columns), state, 0

    def run(self, text):
        if text in self.columns:
            return {"op": "column", "name": text}
        source = re.sub(r"\bas\.(factor|numeric)\s*\(", r"as_\1(", text)
        tree = ast.parse(source.replace("^", "**").strip(), mode="eval")
        return self.visit(tree.body)

    def visit(self, node):
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise ValueError(
                f"the explorer cannot evaluate {ast.unparse(node)!r} in the page."
            )
        return method(node)

    def visit_Constant(self, node):
        return {"op": "constant", "value": node.value}

    def visit_Name(self, node):
        if node.id in self.columns:
            return {"op": "column", "name": node.id}
        if node.id in ("TRUE", "FALSE"):
            return {"op": "constant", "value": node.id == "TRUE"}
        raise ValueError(f"the formula uses {node.id!r}, not a column of the data.")

    def visit_Attribute(self, node):
        return self.visit_Name(ast.Name(ast.unparse(node)))

    def visit_UnaryOp(self, node):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            return self.visit(None)
        operand = self.visit(node.operand)
        return operand if isinstance(node.op, ast.UAdd) else {"op": "neg", "a": operand}

    def visit_BinOp(self, node):
        op = _BINARY.get(type(node.op))
        if op is None:
            return self.visit(None)
        return {"op": op, "a": self.visit(node.left), "b": self.visit(node.right)}

    def visit_Compare(self, node):
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            return self.visit(None)
        return {
            "op": _COMPARE[type(node.ops[0])],
            "a": self.visit(node.left),
            "b": self.visit(node.comparators[0]),
        }

    def visit_Call(self, node):
        name = ast.unparse(node.func).replace("as_", "as.")
        args = [self.visit(a) for a in node.args]
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords}
        if name in ("I", "as.numeric"):
            return args[0]
        if name in _MATH:
            base = args[1] if len(args) > 1 else kwargs.get("base")
            return {"op": "math", "fn": name, "a": args[0], "base": base}
        if name in _TRANSFORMS:
            slot = self.calls
            self.calls += 1
            params = self.state[slot]
            kind = "poly" if name == "poly" else "scale"
            return {"op": kind, "a": args[0], "params": _params(params)}
        raise ValueError(f"the explorer cannot evaluate {name}() in the page.")


def _params(params):
    return {
        k: np.asarray(v, dtype=float).tolist() if isinstance(v, np.ndarray) else v
        for k, v in params.items()
    }
