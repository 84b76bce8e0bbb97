"""What the displays need to know of a generalised model: its response scale.

A generalised model's population prediction is drawn on the response scale
(a probability, an expected count): the linear predictor ``eta`` through the
inverse link, random effects at zero (glmer's ``re.form = NA``).  Bands are
made on the scale of ``eta``, where the fixed effects are normal, and mapped
through the (monotone) inverse link, so that they stay within (0, 1) for a
probability and above 0 for a count.
"""

import numpy as np
from sklearn.pipeline import Pipeline


def final_model(estimator):
    """The model itself, or a Pipeline's last step."""
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def is_generalized(estimator):
    """Whether ``estimator`` (or a Pipeline's last step) is a generalised model.

    A mixed one, or a complete- or no-pooling baseline for a binary or count
    target.
    """
    from .._glmm import _MixedGLM
    from .._pooling_glm import _GeneralizedBaseline

    return isinstance(final_model(estimator), _MixedGLM | _GeneralizedBaseline)


def is_generalized_mixed(estimator):
    """Whether ``estimator`` (or a Pipeline's last step) is a generalised mixed one."""
    from .._glmm import _MixedGLM

    return isinstance(final_model(estimator), _MixedGLM)


def link_prediction(model, X_grid):
    """``eta`` of the rows without random effects and without offset.

    A complete-pooling baseline's line (its groups are ignored).
    """
    if not hasattr(model, "random_effects_"):
        return np.asarray(model._line_prediction(X_grid, None), dtype=float)
    return np.asarray(model.linear_predictor(X_grid, random_effects="none"), float)


def to_response(model, eta):
    """``eta`` through the model's inverse link (a linear model's unchanged)."""
    if not is_generalized(model):
        return eta
    return model._family.link.inverse(np.asarray(eta, dtype=float))


def response_data(model, y):
    """Outcomes as numbers to draw: 1 for ``classes_[1]``, else 0; counts as given."""
    if y is None:
        return None
    values = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y).ravel()
    classes = getattr(model, "classes_", None)
    if classes is not None and not getattr(model, "_proportions", False):
        return (values == classes[1]).astype(float)
    return values.astype(float)


def response_label(model, name):
    """The y label of a generalised model's prediction (``P(y = 1)``)."""
    classes = getattr(model, "classes_", None)
    if classes is None or not is_generalized(model):
        return name if not is_generalized(model) else f"E[{name}]"
    return f"P({name} = {classes[1]})"
