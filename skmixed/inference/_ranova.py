"""Likelihood-ratio tests of the random-effect terms, as lmerTest's ``ranova``.

Each random-effect term (one bar of lme4's ``findbars``, ``(1 | Block)``,
``(1 + Time | Chick)``) is either removed, when it has no term but the
intercept, or reduced by one term of its left side at a time (``Time in
(1 + Time | Chick)`` refits with ``(1 | Chick)``; a left side left with
nothing becomes ``1``).  Each reduced model is refitted by the same method
(REML or ML) to the same rows, and compared with the full model by a
likelihood-ratio test.  With no random term left the reduced model is a
linear model (lmerTest fits it with ``lm`` and takes its REML or ML
log-likelihood).

The refits need no data frame: the model keeps its training rows (the
fixed-effect columns, the random-effect columns and the level codes), and a
reduced model is a subset of the random-effect columns.
"""

import copy
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from .._design import INTERCEPT, Factor
from .._design import random_terms as design_random_terms
from .._formula import findbars_order, r_deparse
from .._formula import random_terms as formula_random_terms
from .._spec import ModelFrame
from ._anova_table import AnovaTable
from ._lrt import n_parameters

COLUMNS = ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]


@dataclass(frozen=True)
class Bar:
    """One random-effect term ``(lhs | factor)`` and its left side's terms.

    ``columns`` are the term's random-effect columns (indices into the
    model frame's ``Z``, the intercept apart) and ``names`` their names;
    ``lhs_terms`` maps each term of the left side to its columns.
    """

    factor: str
    text: str  # as lmerTest deparses it: "1 + Time | Chick"
    intercept: bool
    columns: tuple
    names: tuple
    lhs_terms: tuple  # ((label, columns), ...)
    correlated: bool = True


def ranova(model, reduce_terms=True):
    """Likelihood-ratio tests of the random-effect terms (lmerTest's ``ranova``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model (REML or ML; the reduced models are fitted the same
        way).
    reduce_terms : bool, default=True
        Reduce a term with slopes by one slope at a time (lmerTest's
        default); with ``False`` every term is removed whole.

    Returns
    -------
    table : AnovaTable
        A DataFrame with one row for the model (``<none>``) and one per
        reduced model (``(1 | Block)``, ``Time in (1 + Time | Chick)``), and
        lmerTest's columns ``npar``, ``logLik`` (REML or ML, as the fit),
        ``AIC``, ``LRT`` (twice the loss in log-likelihood), ``Df`` (the
        parameters removed) and ``Pr(>Chisq)``; it prints as lmerTest.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor, ranova
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> print(ranova(model))
    ANOVA-like table for random-effects: Single term deletions
    <BLANKLINE>
    Model:
    Biomass ~ Temp + N + (1 + Temp | Site)
                              npar  logLik    AIC   LRT Df Pr(>Chisq)
    <none>                       7 -163.62 341.24
    Temp in (1 + Temp | Site)    5 -174.48 358.96 21.72  2  1.921e-05 ***
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    from ..reporting._summary import model_formula

    check_is_fitted(model)
    if getattr(model, "_train_X", None) is None:
        raise ValueError(
            "ranova refits the model to its training rows, which this fit did "
            "not keep (a dask fit); refit it in memory."
        )
    bars = model_bars(model)
    reductions = reduced_bars(bars, reduce_terms)
    rows = [_log_likelihood_row(model)]
    names = ["<none>"]
    for name, reduced in reductions:
        rows.append(_refit_row(model, reduced))
        names.append(name)
    table = _lr_table(pd.DataFrame(rows, index=pd.Index(names, dtype=object)))
    heading = [
        "ANOVA-like table for random-effects: Single term deletions",
        "",
        "Model:",
        model_formula(model),
    ]
    return AnovaTable(table, heading=heading)


# --------------------------------------------------------------------------- #
# The random-effect terms and their reductions                                 #
# --------------------------------------------------------------------------- #


def model_bars(model):
    """The model's random-effect terms as lme4's ``findbars`` lists them."""
    spec = model._spec
    if spec.matrices is not None:
        return _formula_bars(spec.matrices)
    return _array_bars(model)


def _formula_bars(matrices):
    parsed = matrices.parsed
    lhs_terms = formula_random_terms(matrices)
    bars, start = [], 0
    spans = []
    for term, names in zip(parsed.random, matrices.random_names):
        slopes = [n for n in names if n != INTERCEPT]
        spans.append(range(start, start + len(slopes)))
        start += len(slopes)
    for i in findbars_order(parsed):
        term, terms = parsed.random[i], lhs_terms[i]
        span = list(spans[i])
        assign = terms.assign[terms.intercept :]
        names = [n for n in matrices.random_names[i] if n != INTERCEPT]
        lhs = tuple(
            (label, tuple(span[j] for j in np.flatnonzero(assign == k)))
            for k, label in enumerate(terms.labels, 1)
        )
        text = f"{r_deparse(term.expression)} | {term.grouping_name}"
        bars.append(
            Bar(
                term.grouping_name,
                text,
                terms.intercept,
                tuple(span),
                tuple(names),
                lhs,
                term.correlated,
            )
        )
    return bars


def _array_bars(model):
    bars = []
    for factor in model._factors:
        slopes = list(factor.term_names[factor.intercept :])
        columns = list(factor.slope_columns)
        texts = design_random_terms(factor)
        if factor.diagonal and factor.n_terms > 1:
            parts = [(True, [], [])] * factor.intercept
            parts += [(False, [c], [n]) for c, n in zip(columns, slopes)]
            correlated = False
        else:
            parts = [(factor.intercept, columns, slopes)]
            correlated = True
        for (intercept, cols, names), text in zip(parts, texts):
            lhs = tuple((n, (c,)) for c, n in zip(cols, names))
            bars.append(
                Bar(
                    factor.name,
                    text[1:-1],
                    bool(intercept),
                    tuple(cols),
                    tuple(names),
                    lhs,
                    correlated,
                )
            )
    return bars


def reduced_bars(bars, reduce_terms=True):
    """lmerTest's reduced models: (row name, the bars of the reduced model)."""
    out = []
    for i, bar in enumerate(bars):
        others = bars[:i], bars[i + 1 :]
        scope = _drop_scope(bar) if reduce_terms else []
        if not scope:
            out.append((f"({bar.text})", [*others[0], *others[1]]))
            continue
        for label in scope:
            reduced = [*others[0], _drop(bar, label), *others[1]]
            out.append((f"{label} in ({bar.text})", reduced))
    return out


def _drop_scope(bar):
    """The left side's terms that are in no other of its terms (drop.scope)."""
    labels = [label for label, _ in bar.lhs_terms]
    variables = [set(label.split(":")) for label in labels]
    return [
        label
        for k, label in enumerate(labels)
        if not any(variables[k] <= v for j, v in enumerate(variables) if j != k)
    ]


def _drop(bar, label):
    """``bar`` without the left-side term ``label`` (``1`` when none is left)."""
    lhs = tuple((lab, cols) for lab, cols in bar.lhs_terms if lab != label)
    removed = set(dict(bar.lhs_terms)[label])
    keep = [k for k, c in enumerate(bar.columns) if c not in removed]
    return replace(
        bar,
        intercept=bar.intercept or not lhs,
        columns=tuple(bar.columns[k] for k in keep),
        names=tuple(bar.names[k] for k in keep),
        lhs_terms=lhs,
    )


def bars_to_factors(model, bars):
    """The grouping factors of a model with these random-effect terms."""
    levels = {f.name: f.levels for f in model._factors}
    by_factor = {}
    for bar in bars:
        by_factor.setdefault(bar.factor, []).append(bar)
    factors = []
    for name, parts in by_factor.items():
        # lme4 keeps one copy of a random effect given twice on a factor
        # ((1 | g) + (1 | g), which reducing (0 + x | g) next to (1 | g) gives)
        intercept = any(b.intercept for b in parts)
        slopes = list(dict.fromkeys(p for b in parts for p in zip(b.columns, b.names)))
        n_terms = intercept + len(slopes)
        diagonal = n_terms > 1 and (
            len(parts) > 1 or not all(b.correlated for b in parts)
        )
        factors.append(
            Factor(
                name,
                levels[name],
                [c for c, _ in slopes],
                [INTERCEPT] * intercept + [n for _, n in slopes],
                intercept,
                diagonal,
            )
        )
    return factors


# --------------------------------------------------------------------------- #
# Refits and the table                                                         #
# --------------------------------------------------------------------------- #


def _response(model):
    """The response the fit saw (the offset, if any, subtracted)."""
    fitted = model._predict_conditional(
        model._train_X, model._train_Z, model._train_codes
    )
    return fitted + np.asarray(model.residuals_, dtype=float)


def _log_likelihood_row(model):
    return {"npar": n_parameters(model), "logLik": float(model.loglik_)}


def _refit_row(model, bars):
    y = _response(model)
    reml = model._method == "reml"
    if not bars:
        return _linear_model_row(model, y, reml)
    factors = bars_to_factors(model, bars)
    codes = {f.name: model._train_codes[f.name] for f in factors}
    frame = ModelFrame(
        model._train_X, model._train_Z, None, y, weights=model._train_weights
    )
    new = copy.copy(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="boundary \\(singular\\) fit")
        new._fit_design(frame, factors, codes, reml)
    return _log_likelihood_row(new)


def _linear_model_row(model, y, reml):
    """lm's REML or ML log-likelihood (``logLik.lm``) with no random term."""
    X = model._train_X
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
    if model._spec.fit_intercept:
        X = np.column_stack([np.ones(X.shape[0]), X])
    X = X[:, model._design.fixed_kept]
    w = model._train_weights
    w = np.ones(X.shape[0]) if w is None else np.asarray(w, dtype=float)
    root = np.sqrt(w)
    Q, R = np.linalg.qr(X * root[:, None])
    beta = np.linalg.solve(R, Q.T @ (y * root))
    rss = float(np.sum(w * (y - X @ beta) ** 2))
    n, p = X.shape
    m = n - p if reml else n
    value = 0.5 * np.sum(np.log(w))
    value -= 0.5 * m * (np.log(2 * np.pi) + 1 - np.log(m) + np.log(rss))
    if reml:
        value -= np.sum(np.log(np.abs(np.diag(R))))
    return {"npar": p + 1, "logLik": float(value)}


def _lr_table(frame):
    """lmerTest's ``mk_LRtab``: LRT of each row against the first."""
    full = frame.iloc[0]
    table = pd.DataFrame(index=frame.index)
    table["npar"] = frame["npar"].astype(int)
    table["logLik"] = frame["logLik"]
    table["AIC"] = -2.0 * frame["logLik"] + 2.0 * frame["npar"]
    lrt = 2.0 * (full["logLik"] - frame["logLik"])
    df = full["npar"] - frame["npar"]
    table["LRT"] = lrt.where(np.arange(len(frame)) > 0)
    table["Df"] = df.where(np.arange(len(frame)) > 0).astype(float)
    valid = table["Df"].to_numpy() > 0
    p = np.full(len(frame), np.nan)
    lrt, df = table["LRT"].to_numpy(), table["Df"].to_numpy()
    p[valid] = stats.chi2.sf(lrt[valid], df[valid])
    table["Pr(>Chisq)"] = p
    return table[COLUMNS]
