"""Per-row metadata of a fit: prior weights and offsets.

Both arrive beside ``X`` (as ``sample_weight=`` and ``offset=``, routable by
scikit-learn's metadata routing) and both are lme4's:

- ``sample_weight`` are lme4's prior weights (``lmer(..., weights = w)``):
  precision weights, ``Var(e_i) = sigma^2 / w_i``.  A weight of 2 is not two
  copies of the row (that would change the number of observations the
  variance is estimated from); it is one row measured twice as precisely.
  Rows of weight zero carry no information and are left out of the fit, as
  scikit-learn's convention asks (lme4 keeps them and reports an infinite
  criterion).
- ``offset`` is a known term added to the linear predictor with coefficient
  one (lme4's ``offset()``): it is subtracted from ``y`` before the fit and
  added back to predictions.
"""

import numpy as np


def check_sample_weight(sample_weight, n_samples, *, whole_data=True):
    """``sample_weight`` as float64 of shape (n_samples,), or None.

    ``whole_data=False`` for a part of the rows (a dask partition), where
    every weight may be zero.

    Raises
    ------
    ValueError
        For a wrong length, a non-finite or negative weight, or all weights 0.
    """
    if sample_weight is None:
        return None
    weight = _as_float_vector(sample_weight, n_samples, "sample_weight")
    if np.any(weight < 0):
        raise ValueError(
            "sample_weight must be non-negative (lme4's prior weights are "
            f"precisions, Var(e_i) = sigma^2 / w_i); got {int((weight < 0).sum())} "
            "negative weight(s)."
        )
    if whole_data and not np.any(weight > 0):
        raise ValueError("sample_weight is zero on every row: nothing to fit.")
    return weight


def check_offset(offset, n_samples):
    """``offset`` as float64 of shape (n_samples,), or None."""
    if offset is None:
        return None
    return _as_float_vector(offset, n_samples, "offset")


def _as_float_vector(values, n_samples, name):
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if values.ndim == 0:  # a scalar applies to every row, as scikit-learn's
        values = np.full(n_samples, float(values))
    if values.ndim != 1 or values.shape[0] != n_samples:
        raise ValueError(
            f"{name} must have shape ({n_samples},) like the rows of X; got "
            f"shape {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return values


def add_offset(y_pred, offset):
    """Predictions with the offset added (None: none)."""
    return y_pred if offset is None else y_pred + offset


def subtract_offset(y, offset):
    """The response the model fits: ``y`` minus the offset (None: none)."""
    return y if offset is None else y - offset
