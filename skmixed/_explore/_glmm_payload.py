"""The explorer page's data for a generalised mixed model (glmer's view).

The same sections as the linear model's (:mod:`._payload`), read from a
fitted :class:`~skmixed.MixedLogisticRegression` or
:class:`~skmixed.MixedPoissonRegressor` as glmer reports it: the criteria
(AIC, BIC, log-likelihood, deviance, residual df), the family and link, Wald
z-tests on the link scale (log-odds, log-rate) with the exponentiated ratios
where they mean something, variance components without a residual, and
randomized quantile residuals (:func:`skmixed.inference.quantile_residuals`)
for the diagnostics.  The predictor adds the Gauss-Hermite rule the model's
``predict`` averages an unseen level's prediction with.  Nothing here is new
statistics: every number is the fitted model's.
"""

import numpy as np

from ._payload import (
    MAX_LEVELS,
    RESIDUAL_SEED,
    _formula,
    _predictor,
    _qq,
    _subsample,
    _variance_section,
)

# What exp(beta) is, per link (None: no ratio is shown).
RATIOS = {"logit": "odds ratio", "log": "rate ratio"}
SCALES = {
    "logit": "log-odds",
    "probit": "probit",
    "cloglog": "complementary log-log",
    "log": "log-rate",
}


def glmm_page_data(model, summary, data, title):
    """The page's data (see :func:`._payload.page_data`), for a GLMM."""
    return {
        "title": title or f"skmixed explorer: {_formula(model, summary)}",
        "model": _model_section(model, summary),
        "fixed": _fixed_section(model, summary),
        "variance": _variance_section(model, summary),
        "factors": [_factor(model, f) for f in model._factors],
        "diagnostics": _diagnostics(model),
        "predictor": _glmm_predictor(model, data),
        "data": data.points(),
    }


def _model_section(model, summary):
    n_points = int(model._n_quadrature_points)
    messages = list(getattr(model.convergence_, "messages", None) or [])
    messages += [m for m in summary.messages or [] if m not in messages]
    return {
        "formula": _formula(model, summary),
        "family": summary.family,
        "link": summary.link,
        "method": (
            "Laplace approximation"
            if n_points == 1
            else f"adaptive Gauss-Hermite quadrature, {n_points} points"
        ),
        "criterion_name": "deviance",
        "criterion": model.deviance_,
        "loglik": model.loglik_,
        "aic": model.aic_,
        "bic": model.bic_,
        "deviance": model.deviance_,
        "df_resid": model.df_resid_,
        "sigma": None,
        "n_obs": int(model._rows.n),
        "n_groups": {k: int(v) for k, v in model.n_groups_.items()},
        "converged": bool(model.converged_),
        "singular": bool(model.is_singular_),
        "n_iter": int(model.n_iter_),
        "messages": [str(m) for m in messages],
        "summary": str(summary),
    }


def _fixed_section(model, summary):
    table = summary.fixed_effects
    intervals = model.confint(level=0.95)  # Wald: glmer's default for the betas
    names = list(model.fixed_effects_.index)
    link = model._family.link.name
    return {
        "names": names,
        "estimate": model.fixed_effects_.to_numpy(),
        "std_error": table.loc[names, "std_error"].to_numpy(),
        "df": [None] * len(names),
        "z_value": table.loc[names, "z_value"].to_numpy(),
        "p_value": table.loc[names, "p_value"].to_numpy(),
        "lower": intervals.loc[names, "lower"].to_numpy(),
        "upper": intervals.loc[names, "upper"].to_numpy(),
        "level": 0.95,
        "scale": SCALES.get(link, link),
        "ratio": RATIOS.get(link),
    }


def _factor(model, factor):
    name = factor.name
    rows = model._rows
    k = [f.name for f in rows.factors].index(name)
    codes = np.asarray(rows.codes[k])
    n_rows = np.bincount(codes[codes >= 0], minlength=factor.n_levels)
    effects = model.random_effects_[name]
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
        "no_pooling": None,
    }


def _diagnostics(model):
    """DHARMa's two panels of randomized quantile residuals (training rows,
    conditional on the random effects) and the random effects' normal QQ."""
    from ..inference import quantile_residuals
    from ..plotting._diagnostics import RandomEffectsQQDisplay
    from ..plotting._quantile_residuals import (
        QuantileResidualsVsFittedDisplay,
        UniformQQDisplay,
    )

    u = quantile_residuals(model, random_state=RESIDUAL_SEED)
    fitted = np.asarray(model.fitted_values_, dtype=float)
    rvf = QuantileResidualsVsFittedDisplay._compute(u, fitted, rank=False)
    uniform = UniformQQDisplay._compute(u)
    rows = _subsample(len(u))
    shown = _subsample(len(uniform.sample_quantiles))
    out = {
        "kind": "quantile",
        "n": int(len(u)),
        "fitted": fitted[rows],
        "residuals": u[rows],
        "smooth": None,
        "bins": {
            "centers": rvf.bin_centers,
            "quartiles": rvf.bin_quartiles,
        },
        "qq": [
            {
                "name": "quantile residuals (uniform)",
                "uniform": True,
                "theoretical": uniform.theoretical_quantiles[shown],
                "sample": uniform.sample_quantiles[shown],
                "line": [0.0, 1.0],
                "ks_pvalue": uniform.ks_pvalue,
            }
        ],
    }
    if model.random_effects_:
        displays = RandomEffectsQQDisplay._compute(model).qq_displays
        out["qq"] += [_qq(d) for d in displays]
    return out


def _glmm_predictor(model, data):
    """The linear model's predictor with the model's link, no residual, and
    the marginal mean's Gauss-Hermite rule (``_MixedGLM._mean``)."""
    from .._glmm import MARGINAL_NODES

    out = _predictor(model, data)
    nodes, weights = np.polynomial.hermite_e.hermegauss(MARGINAL_NODES)
    out.update(
        {
            "link": model._family.link.name,
            "family": model._family.name,
            "response": _response_label(model),
            "sigma": None,
            "marginal": {"nodes": nodes, "weights": weights / weights.sum()},
            "offset": _offset_input(model),
        }
    )
    return out


def _offset_input(model):
    """The what-if's offset input (range and mean of the fit's offsets), or
    None for a model fitted without one."""
    offset = np.asarray(model._rows.offset, dtype=float)
    if not np.any(offset != 0):
        return None
    return {
        "min": float(offset.min()),
        "max": float(offset.max()),
        "value": float(f"{offset.mean():.4g}"),
    }


def _response_label(model):
    name = getattr(model, "_response_name", None) or "y"
    if hasattr(model, "classes_"):
        if getattr(model, "_proportions", False):
            return f"proportion {name}"
        return f"P({name} = {model.classes_[1]})"
    return f"mean {name}"
