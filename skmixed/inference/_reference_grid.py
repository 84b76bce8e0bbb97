"""emmeans' reference grid of a formula model, and the marginal means on it.

Every combination of the levels of the fixed part's factors (categorical
columns, or ``factor(x)`` of a column), each covariate at its mean on the
training rows or at the values ``at`` gives; a grid row's linear function of
the fixed effects is its row of R's model matrix (the fitted contrasts,
``poly()``, ``scale()`` and interactions included); a marginal mean averages
the rows of one level of ``specs`` with equal weights.
"""

import ast
import re

import numpy as np
import pandas as pd

from .._formula import fixed_matrix, fixed_variables, r_label

_FACTOR_CALL = re.compile(
    r"^\s*(?:factor|as\.factor|ordered|as\.ordered|C)\s*\(\s*"
    r"(`[^`]+`|[A-Za-z.][A-Za-z0-9._]*)\s*[,)]"
)


def _formula_matrices(model):
    spec = getattr(model, "_spec", None)
    if spec is None or spec.matrices is None:
        raise ValueError(
            "marginal means need the factors of a formula model: fit the model "
            "with formula=... (categorical columns as its factors). A model "
            "fitted on numeric X has no factors to average over; use "
            "skmixed.inference.satterthwaite for its coefficients."
        )
    return spec.matrices


def _grid_variables(matrices):
    """The data variables of the fixed part: factors (name -> levels) and
    covariates (names), in the order the formula first uses them."""
    factors, covariates, coerced = {}, [], set()
    columns = set(matrices.variables)
    for var in fixed_variables(matrices):
        text = var.text
        if var.levels is not None:
            name = _factor_name(text, columns)
            if name in factors and factors[name] != list(var.levels):
                raise ValueError(
                    f"{name} has different levels in different terms "
                    f"({text}); marginal means need one set of levels."
                )
            factors[name] = list(var.levels)
            if name != text:  # factor(x) of a column: numbers in emmeans' grid
                coerced.add(name)
        else:
            names = [text] if text in columns else _argument_names(text, columns)
            covariates += [n for n in names if n not in covariates]
    covariates = [c for c in covariates if c not in factors]
    return factors, covariates, coerced


def _factor_name(text, columns):
    if text in columns:
        return text
    match = _FACTOR_CALL.match(text)
    if match and match.group(1).strip("`") in columns:
        return match.group(1).strip("`")
    raise ValueError(
        f"marginal means cannot put {text} in the reference grid: make it a "
        "categorical column of the data and use the column in the formula."
    )


def _argument_names(text, columns):
    source = re.sub(r"\bas\.(factor|numeric)\s*\(", r"as_\1(", text)
    try:
        node = ast.parse(source.replace("^", "**").strip(), mode="eval")
    except SyntaxError:
        return [c for c in columns if c in text]
    found = []
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else None
        if isinstance(sub, ast.Attribute):  # R's dotted names
            name = ast.unparse(sub)
        if name in columns and name not in found:
            found.append(name)
    return found


def _covariate_mean(model, matrices, name, data):
    """A covariate's mean on the training rows (emmeans' ``cov.reduce``)."""
    if data is not None:
        frame = pd.DataFrame(data).reset_index(drop=True)
        keep = matrices.complete_rows(frame)
        return float(np.mean(np.asarray(frame[name], dtype=float)[keep]))
    features = list(model._spec.features)
    train_X = getattr(model, "_train_X", None)
    if name in features and train_X is not None:
        return float(np.mean(np.asarray(train_X[:, features.index(name)])))
    for var in fixed_variables(matrices):
        if var.levels is not None or _argument_names(var.text, {name}) != [name]:
            continue
        for params in var.state.values():
            if not params.get("raw", True) and "alpha" in params:
                return float(params["alpha"][0])  # poly(): the mean of x
            if "center" in params and params["center"] != 0:
                return float(params["center"])  # scale(), center()
    raise ValueError(
        f"the mean of the covariate {name!r} is not known from the fit: pass "
        f"the training data (data=...) or fix it with at={{{name!r}: value}}."
    )


def _reference_grid(model, at, data):
    """(grid frame, grid variables in emmeans' order, factor levels, covariates)."""
    matrices = _formula_matrices(model)
    factors, covariates, coerced = _grid_variables(matrices)
    at = dict(at or {})
    unknown = set(at) - set(factors) - set(covariates)
    if unknown:
        raise ValueError(
            f"at names {sorted(unknown)}, not variables of the fixed part "
            f"(factors {list(factors)}, covariates {covariates})."
        )
    values = {}
    for name, levels in factors.items():
        chosen = levels
        if name in at:
            wanted = list(np.atleast_1d(np.asarray(at[name], dtype=object)))
            labels = {r_label(lev): lev for lev in levels}
            chosen = [labels.get(r_label(w), labels.get(str(w))) for w in wanted]
            if any(c is None for c in chosen):
                raise ValueError(f"at gives levels of {name} it does not have.")
        values[name] = chosen
    for name in covariates:
        if name in at:
            values[name] = [float(v) for v in np.atleast_1d(at[name])]
        else:
            values[name] = [_covariate_mean(model, matrices, name, data)]
    order = [n for n in [*factors, *covariates]]
    grid = _expand_grid({n: values[n] for n in order})
    frame = pd.DataFrame(
        {
            n: pd.Categorical(grid[n], categories=factors[n])
            if n in factors
            else np.asarray(grid[n], dtype=float)
            for n in order
        }
    )
    return frame, values, factors, coerced


def _expand_grid(values):
    """R's ``expand.grid``: the first variable varying fastest."""
    names = list(values)
    sizes = [len(values[n]) for n in names]
    total = int(np.prod(sizes)) if sizes else 1
    out, repeat = {}, 1
    for name, size in zip(names, sizes):
        index = (np.arange(total) // repeat) % size
        out[name] = [values[name][i] for i in index]
        repeat *= size
    return out


def _grid_linfct(model, frame):
    """The fixed-effects model-matrix rows of the grid (every column R's
    ``model.matrix`` has, the ones a rank-deficient fit dropped included)."""
    return fixed_matrix(model._spec.matrices, frame)


def means_linfct(model, specs, at, data):
    """The marginal means' labels (Index) and linear functions ``L``."""
    frame, values, factors, coerced = _reference_grid(model, at, data)
    unknown = [s for s in specs if s not in values]
    if unknown:
        raise ValueError(
            f"specs names {unknown}, not factors of the fixed part "
            f"({list(factors)}) nor covariates given several values in at."
        )
    X = _grid_linfct(model, frame)
    keys = [tuple(_label(frame[s].iloc[i]) for s in specs) for i in range(len(frame))]
    combos = _expand_grid({s: [_label(v) for v in values[s]] for s in specs})
    wanted = list(zip(*[combos[s] for s in specs]))
    rows = {key: [] for key in wanted}
    for i, key in enumerate(keys):
        rows[key].append(i)
    L = np.vstack([X[rows[key]].mean(axis=0) for key in wanted])
    if len(specs) == 1:
        index = pd.Index([k[0] for k in wanted], name=specs[0])
    else:
        index = pd.MultiIndex.from_tuples(wanted, names=specs)
    averaged = [n for n in factors if n not in specs]
    averaged += [
        n for n in values if n not in factors and n not in specs and len(values[n]) > 1
    ]
    covariates = {
        n: (v[0] if len(v) == 1 else list(v))
        for n, v in values.items()
        if n not in factors
    }
    numeric = [s for s in specs if s not in factors or _numeric_labels(factors[s])]
    numeric_grid = [s for s in specs if s not in factors or s in coerced]
    info = dict(
        averaged_over=averaged,
        covariates=covariates,
        numeric=numeric,
        numeric_grid=numeric_grid,
    )
    return index, L, info


def _label(value):
    return r_label(value)


def _numeric_labels(levels):
    try:
        [float(r_label(lev)) for lev in levels]
    except ValueError:
        return False
    return True
