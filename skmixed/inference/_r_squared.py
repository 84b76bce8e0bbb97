"""Nakagawa's R² and the intraclass correlation, as R's performance package.

For a linear mixed model (Nakagawa & Schielzeth 2013; Johnson 2014 for random
slopes; Nakagawa, Johnson & Schielzeth 2017) the variance of the response is
split into

- the fixed part, ``var(X beta)`` over the training rows (denominator n - 1);
- the random part, per grouping factor the mean over the rows of
  ``z_i' Sigma z_i``, ``z_i`` the row's random-effect covariates (its
  intercept and slopes, read from the fixed-effects model matrix, as
  ``insight::get_variance`` reads them) and ``Sigma`` the factor's covariance:
  with a random intercept only, its variance;
- the residual variance ``sigma^2``.

``R²_marginal = fixed / total`` and ``R²_conditional = (fixed + random) /
total``; the adjusted ICC is ``random / (random + residual)`` and the
unadjusted ICC ``random / total`` (``performance::r2_nakagawa`` and
``performance::icc``).  As there, a grouping factor with one level per row
(an observation-level effect) is left out of the random part, random-effect
terms that are not columns of the fixed part are left out of ``z_i``, and a
singular fit (a variance parameter within 1e-5 of zero) has no random-effect
variance: the conditional R² and the ICCs are NaN, with a warning.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from .._covariance import ThetaLayout
from .._formula import INTERCEPT

SINGULAR_TOLERANCE = 1e-5  # performance's tolerance


@dataclass(frozen=True)
class VarianceComponents:
    """The variance parts of Nakagawa's R² (``insight::get_variance``).

    Attributes
    ----------
    fixed, random, residual : float
        ``var.fixed``, ``var.random`` (NaN for a singular fit) and
        ``var.residual``.
    """

    fixed: float
    random: float
    residual: float

    def to_series(self):
        return pd.Series(
            {"fixed": self.fixed, "random": self.random, "residual": self.residual},
            name="variance",
        )


@dataclass(frozen=True)
class RSquared:
    """Marginal and conditional R² (``performance::r2_nakagawa``).

    Attributes
    ----------
    marginal : float
        The share of the variance the fixed effects explain.
    conditional : float
        The share the fixed and random effects explain together.
    variance : VarianceComponents
    """

    marginal: float
    conditional: float
    variance: VarianceComponents

    def to_series(self):
        """``conditional`` and ``marginal`` as a Series."""
        return pd.Series(
            {"conditional": self.conditional, "marginal": self.marginal}, name="R2"
        )

    def __str__(self):
        return _render(
            "R2 for Mixed Models",
            ["Conditional R2", "Marginal R2"],
            [self.conditional, self.marginal],
        )

    def _repr_html_(self):
        return _render_html(
            "R2 for Mixed Models", self.to_series().rename(_R2_LABELS).to_frame("")
        )


@dataclass(frozen=True)
class ICC:
    """Adjusted and unadjusted intraclass correlation (``performance::icc``).

    Attributes
    ----------
    adjusted : float
        ``random / (random + residual)``: the share of the variance not
        explained by the fixed effects that the grouping explains.
    unadjusted : float
        ``random / (fixed + random + residual)``.
    variance : VarianceComponents
    """

    adjusted: float
    unadjusted: float
    variance: VarianceComponents

    def to_series(self):
        return pd.Series(
            {"adjusted": self.adjusted, "unadjusted": self.unadjusted}, name="ICC"
        )

    def __str__(self):
        return _render(
            "Intraclass Correlation Coefficient",
            ["Adjusted ICC", "Unadjusted ICC"],
            [self.adjusted, self.unadjusted],
        )

    def _repr_html_(self):
        return _render_html(
            "Intraclass Correlation Coefficient",
            self.to_series().rename(_ICC_LABELS).to_frame(""),
        )


_R2_LABELS = {"conditional": "Conditional R2", "marginal": "Marginal R2"}
_ICC_LABELS = {"adjusted": "Adjusted ICC", "unadjusted": "Unadjusted ICC"}


def r_squared(model):
    """Marginal and conditional R² of a mixed model (Nakagawa & Schielzeth).

    As ``performance::r2_nakagawa`` computes it for a Gaussian ``lmer`` fit,
    random slopes included as Johnson (2014).

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model (in memory: it needs the training rows' model matrix).

    Returns
    -------
    RSquared
        ``.marginal``, ``.conditional`` and the ``.variance`` components;
        prints as performance does.

    See Also
    --------
    icc : The intraclass correlation from the same variance components.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> r2 = r_squared(model)
    >>> round(r2.marginal, 4), round(r2.conditional, 4)
    (0.7211, 0.9132)
    >>> print(r2)
    # R2 for Mixed Models
    <BLANKLINE>
      Conditional R2: 0.913
         Marginal R2: 0.721
    """
    variance = variance_components(model)
    total = variance.fixed + variance.random + variance.residual
    if np.isnan(variance.random):
        marginal = variance.fixed / (variance.fixed + variance.residual)
        return RSquared(marginal, np.nan, variance)
    return RSquared(
        variance.fixed / total, (variance.fixed + variance.random) / total, variance
    )


def icc(model):
    """Adjusted and unadjusted intraclass correlation, as ``performance::icc``.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model (in memory).

    Returns
    -------
    ICC
        ``.adjusted`` (random / (random + residual)) and ``.unadjusted``
        (random / total), with the ``.variance`` components.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> print(icc(model))
    # Intraclass Correlation Coefficient
    <BLANKLINE>
        Adjusted ICC: 0.689
      Unadjusted ICC: 0.192
    """
    variance = variance_components(model)
    random, residual = variance.random, variance.residual
    adjusted = random / (random + residual)
    unadjusted = random / (variance.fixed + random + residual)
    return ICC(adjusted, unadjusted, variance)


def variance_components(model):
    """The fixed, random and residual variances of :func:`r_squared`.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> variance_components(model).to_series().round(4)
    fixed       6.3837
    random      1.7013
    residual    0.7681
    Name: variance, dtype: float64
    """
    check_is_fitted(model)
    X = _fixed_model_matrix(model)
    beta = model.fixed_effects_
    fitted = X[list(beta.index)].to_numpy() @ beta.to_numpy()
    fixed = float(np.var(fitted, ddof=1)) if fitted.size > 1 else np.nan
    residual = float(model.sigma_**2)
    if _is_singular(model):
        warnings.warn(
            "Some variance components are (nearly) zero: a singular fit has no "
            "random-effect variance, so the conditional R2 and the ICC are NaN "
            "(as performance::r2_nakagawa and icc).",
            UserWarning,
            stacklevel=3,
        )
        return VarianceComponents(fixed, np.nan, residual)
    return VarianceComponents(fixed, _random_variance(model, X), residual)


def _fixed_model_matrix(model):
    """The training rows' fixed-effects model matrix (``getME(m, "X")``)."""
    train_X = getattr(model, "_train_X", None)
    if train_X is None:
        raise ValueError(
            "R2 and the ICC need the training rows' fixed-effects model matrix, "
            "which a model fitted out of memory (dask) does not keep."
        )
    spec = model._spec
    train_X = train_X.toarray() if hasattr(train_X, "toarray") else np.asarray(train_X)
    names = list(spec.features)
    columns = {name: train_X[:, j] for j, name in enumerate(names)}
    columns[INTERCEPT] = np.ones(train_X.shape[0])  # insight adds it if absent
    kept = list(model.fixed_effects_.index)
    frame = pd.DataFrame({name: columns[name] for name in kept})
    if INTERCEPT not in frame:  # insight adds it for the random intercepts
        frame[INTERCEPT] = columns[INTERCEPT]
    return frame


def _random_variance(model, X):
    """Sum over grouping factors of the mean of ``z_i' Sigma z_i``."""
    n = X.shape[0]
    total = 0.0
    missing = [
        t
        for cov in model.random_effects_cov_.values()
        for t in cov.index
        if t not in X.columns
    ]
    if missing:
        warnings.warn(
            f"Random slopes not present as fixed effects ({', '.join(missing)}): "
            "they are left out of the random-effect variance, as "
            "performance::r2_nakagawa and icc leave them out. Respecify the fixed "
            "part.",
            UserWarning,
            stacklevel=4,
        )
    for name, cov in model.random_effects_cov_.items():
        if model.n_groups_[name] == n:  # an observation-level effect
            continue
        terms = [t for t in cov.index if t in X.columns]
        Z = X[terms].to_numpy()
        Sigma = cov.loc[terms, terms].to_numpy()
        total += float(np.einsum("ij,jk,ik->", Z, Sigma, Z)) / n
    return total


def _is_singular(model):
    """performance's check: a diagonal theta (lower bound 0) below 1e-5."""
    lower = ThetaLayout.from_factors(model._factors).lower
    theta = np.asarray(model.theta_, dtype=float)
    return bool(np.any(np.abs(theta[lower == 0]) < SINGULAR_TOLERANCE))


def _render(title, labels, values):
    width = max(len(label) for label in labels)
    lines = [f"# {title}", ""]
    lines += [f"  {name:>{width}}: {value:.3f}" for name, value in zip(labels, values)]
    return "\n".join(lines)


def _render_html(title, frame):
    table = frame.to_html(float_format="{:.3f}".format)
    return f"<div><p><b>{title}</b></p>{table}</div>"
