"""The targets of the binomial and Poisson models: checks, labels, scores.

Shared by the mixed models (:mod:`._glmm`) and their pooling baselines
(:mod:`._pooling_glm`), which read and score targets alike.
"""

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, d2_tweedie_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from ._spec import scored_rows


def inferred(y):
    """An object array of one kind of value (a formula's booleans) as that kind."""
    y = np.asarray(y)
    if y.dtype != object:
        return y
    return pd.Series(y).infer_objects().to_numpy()


def binary_target(y, name):
    """``(y01, classes, proportions)`` of a binary classifier's target.

    Two labels of any kind give 0/1 (``classes[1]`` is 1); floats in [0, 1]
    that are not all 0 and 1 are proportions (successes over the trials given
    as ``sample_weight``), with classes ``[0, 1]``.
    """
    y = inferred(y)
    kind = type_of_target(y, input_name="y")
    if kind == "continuous" and y.dtype.kind == "f":
        if np.any(~np.isfinite(y)) or np.any((y < 0) | (y > 1)):
            raise ValueError(
                f"Unknown label type: {name} needs binary labels or proportions in "
                "[0, 1] (successes / trials, with sample_weight=trials); y is "
                "continuous with values outside [0, 1] or not finite."
            )
        return y.astype(float), np.array([0, 1]), True
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    if encoder.classes_.size != 2:
        raise ValueError(
            f"Only binary classification is supported: {name} needs y with "
            f"exactly 2 classes; got {encoder.classes_.size} class(es) "
            f"{encoder.classes_[:5].tolist()}."
        )
    return encoder.transform(y).astype(float), encoder.classes_, False


def count_target(y, name):
    """A Poisson model's target: non-negative finite counts (or rates)."""
    y = np.asarray(y, dtype=float)
    if np.any(~np.isfinite(y)):
        raise ValueError(f"{name}: y contains NaN or infinity.")
    if np.any(y < 0):
        raise ValueError(
            f"{name} needs non-negative counts (or rates); y has "
            f"{int((y < 0).sum())} negative value(s)."
        )
    return y


def labels_of(p, classes):
    """The more probable class of each row; None where ``p`` is NaN."""
    labels = classes[(np.nan_to_num(p) >= 0.5).astype(int)]
    if np.any(np.isnan(p)):  # a formula's incomplete rows
        labels = np.where(np.isnan(p), None, labels.astype(object))
    return labels


def accuracy(spec, X, y, p, classes, sample_weight=None):
    """Accuracy of the labels of ``p`` on the rows a model can score.

    A formula model reads ``y`` from ``X`` when it is None and scores the rows
    with every value its formula uses.
    """
    y, p, weight = _scored(spec, X, y, p, sample_weight, labels=True)
    predicted = classes[(p >= 0.5).astype(int)]
    return accuracy_score(inferred(y), predicted, sample_weight=weight)


def poisson_d2(spec, X, y, y_pred, sample_weight=None):
    """D^2 (Poisson deviance explained) on the rows a model can score."""
    y, y_pred, weight = _scored(spec, X, y, y_pred, sample_weight)
    return d2_tweedie_score(y, y_pred, sample_weight=weight, power=1)


def _scored(spec, X, y, prediction, sample_weight, labels=False):
    if spec is not None and spec.matrices is not None:
        return scored_rows(spec, X, y, prediction, sample_weight, labels=labels)
    if y is None:
        raise ValueError("score needs y (only a formula model reads it from X).")
    weight = None if sample_weight is None else np.asarray(sample_weight, float)
    return np.asarray(y), prediction, weight
