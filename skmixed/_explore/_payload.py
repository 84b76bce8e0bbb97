"""What the explorer page shows, read from a fitted model as plain data.

:func:`page_data` gathers everything the page draws and computes into one
JSON-able dict: nothing here is new statistics.  The summary, the Wald
intervals, the random effects and their conditional covariances, the
diagnostics (the plotting displays' own computations) and the no-pooling
estimates of the shrinkage plot are the fitted model's; the ``predictor``
entry holds what the page needs to predict in the browser (coefficients,
covariances, the inputs and, for a formula model, the model matrix's recipe
from :mod:`._formula_js`).

The predictor is on the scale of the linear predictor with the model's
``link`` (the identity for the linear model): the page applies its inverse
to the prediction and to the interval's bounds.  A generalised model
(:class:`~skmixed.MixedLogisticRegression`,
:class:`~skmixed.MixedPoissonRegressor`) adds ``marginal``, the
Gauss-Hermite rule its ``predict`` averages an unseen level's prediction
with, and its sections follow glmer: z-tests, no residual variance, and
randomized quantile residuals in the diagnostics.
"""

import math
import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from .._formula import INTERCEPT
from ._formula_js import formula_inputs, formula_recipe, level_values

MAX_POINTS = 2_000  # data points drawn per scatter (an even subsample beyond)
MAX_LEVELS = 5_000  # levels per factor in the tables and plots


RESIDUAL_SEED = 0  # the uniform draws of the randomized quantile residuals


def is_generalized(model):
    """Whether ``model`` is a generalised mixed model (a GLMM estimator)."""
    from .._glmm import _MixedGLM

    return isinstance(model, _MixedGLM)


def check_model(model):
    """The model if the explorer can show it; clear errors otherwise."""
    from .._mixed import MixedLinearRegressor

    if not isinstance(model, MixedLinearRegressor) and not is_generalized(model):
        raise TypeError(
            "explore() takes a fitted skmixed MixedLinearRegressor, "
            "MixedLogisticRegression or MixedPoissonRegressor; got "
            f"{type(model).__name__}."
        )
    check_is_fitted(model, "fixed_effects_")
    if is_generalized(model):
        return model
    if getattr(model, "_train_X", None) is None:
        raise ValueError(
            "the model keeps no training rows (it was fitted on dask "
            "collections); the explorer needs a model fitted in memory."
        )
    return model


def page_data(model, X=None, y=None, groups=None, title=None):
    """Everything the page shows, as JSON-able values (see the module)."""
    data = _Data.of(model, X, y, groups)
    summary = model.summary()
    if is_generalized(model):
        from ._glmm_payload import glmm_page_data

        return _jsonable(glmm_page_data(model, summary, data, title))
    factors = [_factor(model, f, data) for f in model._factors]
    return _jsonable(
        {
            "title": title or f"skmixed explorer: {_formula(model, summary)}",
            "model": _model_section(model, summary),
            "fixed": _fixed_section(model, summary),
            "variance": _variance_section(model, summary),
            "factors": factors,
            "diagnostics": _diagnostics(model),
            "predictor": _predictor(model, data),
            "data": data.points(),
        }
    )


# --------------------------------------------------------------------------- #
# The data the page describes                                                  #
# --------------------------------------------------------------------------- #


class _Data:
    """The rows the page describes: the inputs' ranges and levels, the data
    points of the effect plots, and (formula) the raw frame's levels."""

    def __init__(self, inputs, frame, y, categorical=None):
        self.inputs, self.frame, self.y = inputs, frame, y
        self.categorical = categorical or {}

    @classmethod
    def of(cls, model, X, y, groups):
        if model._spec.matrices is not None:
            return cls._formula(model, X, y, groups)
        return cls._arrays(model, X, y, groups)

    @classmethod
    def _arrays(cls, model, X, y, groups):
        names = list(model._spec.features)
        if X is None and is_generalized(model):
            raise ValueError(
                "explore() of a generalised model needs the rows it describes: "
                "explore(model, X, y, groups) (the fit keeps its features only "
                "standardized)."
            )
        if X is None:
            values = np.asarray(model._train_X, dtype=float)
            if y is None:
                y = np.asarray(model.fitted_values_) + np.asarray(model.residuals_)
        else:
            from ..plotting._inputs import model_features

            values, groups = model_features(model, X, groups)
            if groups is not None:  # not drawn, but they must fit the rows
                from .._groups import check_groups

                check_groups(groups, values.shape[0], allow_missing=True)
        frame = pd.DataFrame(values, columns=names)
        inputs = [_numeric_input(c, frame[c]) for c in names]
        return cls(inputs, frame, _response(y, len(frame), model))

    @classmethod
    def _formula(cls, model, X, y, groups):
        matrices = model._spec.matrices
        if X is None:
            raise ValueError(
                "explore() of a formula model needs the data frame it was "
                "fitted on (its variables' ranges and levels): "
                "explore(model, X=data)."
            )
        if groups is not None:
            raise ValueError(
                "a formula model reads its grouping factors from X: groups must "
                "be None."
            )
        from .._spec import formula_frame

        frame = formula_frame(X)
        missing = [
            c
            for c in matrices.variables
            if c not in frame.columns and c != model._spec.response
        ]
        if missing:
            raise ValueError(
                f"X lacks the column(s) {missing} that the formula "
                f"{model._spec.formula!r} uses."
            )
        numeric, categorical = formula_inputs(matrices, frame)
        complete = matrices.complete_rows(frame)
        frame = frame[complete].reset_index(drop=True)
        levels = {c: level_values(frame, c) for c in categorical}
        inputs = []
        for c in [c for c in frame.columns if c in numeric or c in categorical]:
            if c in numeric:
                inputs.append(_numeric_input(c, frame[c]))
            else:
                inputs.append(_categorical_input(c, levels[c][0], frame[c]))
        labels = is_generalized(model) and hasattr(model, "classes_")
        if y is None and model._spec.response in frame.columns:
            y = matrices.response(frame, labels=labels)
        elif y is not None:
            y = np.asarray(y, dtype=None if labels else float).ravel()[complete]
        data = cls(inputs, frame, _response(y, len(frame), model), levels)
        data.recipe = formula_recipe(matrices, frame, levels)
        return data

    def points(self):
        """Each input's values (numbers; level indices for a categorical one)
        and the response, on at most MAX_POINTS rows."""
        rows = _subsample(len(self.frame))
        columns = {}
        spec_values = self.categorical_values
        for spec in self.inputs:
            values = self.frame[spec["name"]].iloc[rows]
            if spec["kind"] == "categorical":
                lookup = {_label(v): i for i, v in enumerate(spec_values(spec))}
                columns[spec["name"]] = [lookup.get(_label(v)) for v in values]
            else:
                columns[spec["name"]] = values.to_numpy(dtype=float)
        y = None if self.y is None else self.y[rows]
        return {"n": int(len(self.frame)), "shown": len(rows), "x": columns, "y": y}

    def categorical_values(self, spec):
        return self.categorical[spec["name"]][0]


def _response(y, n, model=None):
    if y is None:
        return None
    if model is not None and is_generalized(model):
        from ..inference._quantile_residuals import _outcomes

        y = np.asarray(y).ravel()  # labels as 0/1 (the class of classes_[1])
        if y.shape[0] == n:
            return _outcomes(model, y, n)
    y = np.asarray(y, dtype=float).ravel()
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} values but X has {n} rows.")
    return y


def _numeric_input(name, values):
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"the column {name!r} has no finite value.")
    return {
        "name": str(name),
        "kind": "numeric",
        "min": float(finite.min()),
        "max": float(finite.max()),
        "value": float(f"{finite.mean():.4g}"),  # where the what-if starts
    }


def _categorical_input(name, values, column):
    counts = column.value_counts()
    return {
        "name": str(name),
        "kind": "categorical",
        "levels": [_label(v) for v in values],
        "values": [_raw(v) for v in values],
        "counts": [int(counts.get(v, 0)) for v in values],
        "value": 0,  # the first level: R's reference level
    }


def _label(value):
    from .._formula import r_label

    return r_label(value)


def _raw(value):
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer | float | np.floating):
        return float(value)
    return str(value)


def _subsample(n):
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(int))


# --------------------------------------------------------------------------- #
# The sections                                                                 #
# --------------------------------------------------------------------------- #


def _formula(model, summary):
    return str(getattr(summary, "formula", None) or model._spec.formula or "")


def _model_section(model, summary):
    reml = model._method == "reml"
    convergence = getattr(model, "convergence_", None)
    messages = list(getattr(convergence, "messages", []) or [])
    messages += [m for m in getattr(summary, "messages", []) or [] if m not in messages]
    return {
        "formula": _formula(model, summary),
        "method": "REML" if reml else "ML",
        "criterion_name": "REML criterion" if reml else "deviance",
        "criterion": model.objective_,
        "loglik": model.loglik_,
        "aic": model.aic_,
        "bic": model.bic_,
        "sigma": model.sigma_,
        "n_obs": int(len(model._train_X)),
        "n_groups": {k: int(v) for k, v in model.n_groups_.items()},
        "converged": bool(model.converged_),
        "singular": bool(model.is_singular_),
        "n_iter": int(model.n_iter_),
        "messages": [str(m) for m in messages],
        "summary": str(summary),
    }


def _fixed_section(model, summary):
    table = summary.fixed_effects
    intervals = model.confint(method="wald", level=0.95)
    names = list(model.fixed_effects_.index)
    column = table.get
    return {
        "names": names,
        "estimate": model.fixed_effects_.to_numpy(),
        "std_error": _values(column("std_error"), names),
        "df": _values(column("df"), names),
        "t_value": _values(column("t_value"), names),
        "p_value": _values(column("p_value"), names),
        "lower": intervals.loc[names, "lower"].to_numpy(),
        "upper": intervals.loc[names, "upper"].to_numpy(),
        "level": 0.95,
    }


def _values(series, names):
    if series is None:
        return [None] * len(names)
    return [series.get(n) for n in names]


def _variance_section(model, summary):
    rows = []
    for name, cov in model.random_effects_cov_.items():
        sd = np.sqrt(np.clip(np.diag(cov.to_numpy()), 0, None))
        corr = None
        if len(sd) > 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                corr = cov.to_numpy() / np.outer(sd, sd)
        rows.append(
            {
                "group": name,
                "terms": list(cov.index),
                "variance": np.diag(cov.to_numpy()),
                "sd": sd,
                "corr": corr,
            }
        )
    sigma = getattr(model, "sigma_", None)  # None: no residual (GLMM)
    return {
        "blocks": rows,
        "sigma": sigma,
        "residual_variance": None if sigma is None else sigma**2,
    }


def _factor(model, factor, data):
    name = factor.name
    effects = model.random_effects_[name]
    codes = np.asarray(model._train_codes[name])
    n_rows = np.bincount(codes[codes >= 0], minlength=factor.n_levels)
    levels = [str(v) for v in effects.index]
    return {
        "name": name,
        "levels": levels[:MAX_LEVELS],
        "n_levels": len(levels),
        "terms": list(factor.term_names),
        "intercept": bool(factor.intercept),
        "slope_columns": [int(c) for c in factor.slope_columns],
        "effects": effects.to_numpy()[:MAX_LEVELS],
        "cond_sd": model.random_effects_cond_sd_[name].to_numpy()[:MAX_LEVELS],
        "n_rows": n_rows[:MAX_LEVELS],
        "cov": model.random_effects_cov_[name].to_numpy(),
        "population": [
            float(model.fixed_effects_.get(t, 0.0)) for t in factor.term_names
        ],
        "no_pooling": _no_pooling(model, factor, data),
    }


def _no_pooling(model, factor, data):
    """Each level's own least-squares estimates of the factor's terms (the
    shrinkage plot's), or None where they cannot be computed."""
    from ..plotting._shrinkage import _formula_data, _no_pooling

    try:
        if model._spec.matrices is not None:
            X, y, codes, spec = _formula_data(model, data.frame, data.y, None, factor)
        else:
            X = np.asarray(model._train_X, dtype=float)
            y = np.asarray(model.fitted_values_) + np.asarray(model.residuals_)
            codes, spec = np.asarray(model._train_codes[factor.name]), factor
        with warnings.catch_warnings():
            # NoPoolingRegressor's (collinear columns dropped): not the user's
            warnings.simplefilter("ignore", UserWarning)
            table = _no_pooling(spec, X, y, codes)
    except (ValueError, np.linalg.LinAlgError):
        return None
    return table.to_numpy()[:MAX_LEVELS]


def _diagnostics(model):
    from ..plotting._diagnostics import (
        QQDisplay,
        RandomEffectsQQDisplay,
        ResidualsVsFittedDisplay,
    )

    rvf = ResidualsVsFittedDisplay._compute(model)
    qq = QQDisplay._compute(rvf.residuals, name="Pearson residuals")
    rows = _subsample(len(rvf.fitted))
    out = {
        "n": int(len(rvf.fitted)),
        "fitted": rvf.fitted[rows],
        "residuals": rvf.residuals[rows],
        "smooth": None if rvf.smooth is None else list(rvf.smooth),
        "qq": [_qq(qq)],
    }
    if model.random_effects_:
        displays = RandomEffectsQQDisplay._compute(model).qq_displays
        out["qq"] += [_qq(d) for d in displays]
    return out


def _qq(display):
    rows = _subsample(len(display.sample_quantiles))
    return {
        "name": display.name,
        "theoretical": display.theoretical_quantiles[rows],
        "sample": display.sample_quantiles[rows],
        "line": list(display.reference_line),
    }


def _predictor(model, data):
    """What the page needs to predict: see :func:`predict_rows` for the
    arithmetic it repeats."""
    spec = model._spec
    full = [INTERCEPT] * spec.fit_intercept + list(spec.features)
    kept = [full.index(n) for n in model.fixed_effects_.index]
    out = {
        "kind": "array" if spec.matrices is None else "formula",
        "link": "identity",
        "response": _response_name(model),
        "fit_intercept": bool(spec.fit_intercept),
        "intercept": model.intercept_,
        "coef": np.asarray(model.coef_, dtype=float),
        "features": list(spec.features),
        "kept": kept,
        "vcov": model.fixed_effects_cov_.to_numpy(),
        "sigma": getattr(model, "sigma_", None),  # None: no residual (GLMM)
        "inputs": data.inputs,
        "factors": [
            {
                "name": f.name,
                "cond_cov": model.random_effects_cond_cov_[f.name][:MAX_LEVELS],
            }
            for f in model._factors
        ],
    }
    if spec.matrices is not None:
        out["recipe"] = data.recipe
    return out


def _response_name(model):
    spec = model._spec
    if spec.response:
        return spec.response
    return getattr(model, "_response_name", "y")


# --------------------------------------------------------------------------- #
# JSON                                                                         #
# --------------------------------------------------------------------------- #


def _jsonable(value):
    """Plain Python values; NaN and infinities as None (JSON's null)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, pd.Series | pd.Index):
        return _jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if pd.isna(value):
        return None
    return str(value)
