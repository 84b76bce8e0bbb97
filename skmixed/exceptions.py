"""Warnings of skmixed that users may want to filter by category."""

__all__ = ["UnseenLevelsWarning"]


class UnseenLevelsWarning(UserWarning):
    """Predictions for group labels the model did not see in ``fit``.

    Rows whose level of a grouping factor was not seen get no random effect
    for that factor: the population prediction for it (lme4's
    ``allow.new.levels = TRUE``).  That is what grouped cross-validation
    (``GroupKFold``) asks for, and a silent error when the labels were meant
    to match but do not (integers at fit, the same numbers as strings at
    predict).  The warning is given when no label matches a fitted level,
    when the labels are of another kind than the fitted ones, or when most
    rows are unseen.  Silence it where unseen groups are intended::

        warnings.filterwarnings("ignore", category=UnseenLevelsWarning)
    """
