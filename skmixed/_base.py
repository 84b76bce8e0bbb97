"""The front end every mixed model shares: specification, factors, prediction.

A model is specified by a formula or by ``random_slopes`` and ``groups``;
both give one :class:`._spec.ModelSpec`, and from it the grouping factors
(:class:`._design.Factor`) and the level codes of the rows.  The linear and
the generalised models differ in what they fit to these, not in how they
read them; nor in how a fitted model's linear predictor adds the random
effects of the levels a row names.
"""

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data

from ._design import Factor, check_identifiable, dense_column
from ._groups import check_groups, encode_levels, lookup_levels, predict_codes
from ._sklearn import no_column_frame_as_array, split_group_columns
from ._spec import (
    ModelFrame,
    array_spec,
    check_formula_spec,
    formula_spec,
    training_frame,
    warn_without_groups,
)

MIN_LEVELS = 5  # fewer levels than this: variance estimates are imprecise


class MixedModelFrontEnd(BaseEstimator):
    """What the mixed models share before and after their fit.

    Subclasses store ``formula``, ``random_slopes``, ``random_intercept``,
    ``covariance``, ``fit_intercept`` and ``group_column``; fitted, they
    have ``_spec``, ``_factors`` (user order), ``intercept_``, ``coef_`` and
    ``random_effects_``.
    """

    _numeric_target = True  # a classifier keeps its labels
    _scale_parameter = True  # a residual variance (lme4's identifiability checks)
    _model_without_groups = "an ordinary linear regression"  # fit without groups

    def _array_model_frame(self, X, y, groups):
        """The specification and model frame of numeric ``X`` and ``groups``."""
        X, groups = split_group_columns(X, groups, self.group_column)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None (only a formula model reads y from X)."
            )
        X, y = validate_data(
            self,
            no_column_frame_as_array(X),
            y,
            y_numeric=self._numeric_target,
            dtype=np.float64,
            accept_sparse=("csr", "csc"),  # reduced without densifying
            ensure_min_features=0 if groups is not None else 1,
        )
        self._check_n_samples(*X.shape)
        if groups is None:
            warn_without_groups(stacklevel=4, model=self._model_without_groups)
        else:
            groups = check_groups(groups, X.shape[0])
        spec = self._array_spec([] if groups is None else list(groups), X.shape[1])
        return spec, ModelFrame(X, X, groups, y)

    def _array_spec(self, factor_names, n_features):
        return array_spec(
            self.get_params(),
            n_features,
            factor_names,
            getattr(self, "feature_names_in_", None),
        )

    def _formula_model_frame(self, X, y, groups, formula=None):
        """The specification and model frame of a formula on a data frame.

        ``formula`` replaces ``self.formula`` (the classifier's
        ``cbind(successes, failures)`` response, read beforehand).
        """
        self._check_formula_params(groups)
        validate_data(self, X, skip_check_array=True)
        spec = formula_spec(self.formula if formula is None else formula, X)
        check_formula_spec(spec, y)
        frame = training_frame(
            spec, X, y, stacklevel=4, labels=not self._numeric_target
        )
        self._response_name = spec.response or self._response_name
        self._check_n_samples(len(frame.y), frame.X.shape[1])
        return spec, frame

    def _check_formula_params(self, groups):
        """With a formula, the array front end's parameters stay at defaults."""
        defaults = {
            "random_slopes": None,
            "random_intercept": True,
            "covariance": "unstructured",
            "fit_intercept": True,
            "group_column": None,
        }
        changed = [k for k, v in defaults.items() if getattr(self, k) != v]
        if changed:
            raise ValueError(
                f"with a formula, {changed} must be left at their defaults: the "
                "formula gives the fixed part, the random-effect terms and the "
                "grouping factors."
            )
        if groups is not None:
            raise ValueError(
                "with a formula, groups must be None: the grouping factors are "
                "columns of X named in the formula's (... | g) terms."
            )

    @staticmethod
    def _check_n_samples(n_samples, n_features):
        """At least 2 samples; against the fixed effects, see _fit_statistics.

        The comparison with the number of fixed effects waits for the rank
        check: redundant columns are dropped first, as lme4 does.
        """
        if n_samples < 2:
            raise ValueError(
                f"n_samples={n_samples} is too few: a residual variance needs at "
                "least 2 samples."
            )

    def _make_factors(self, spec, groups, n_samples):
        """Encode each grouping factor and attach its random-effect terms."""
        codes, levels = {}, {}
        for term in spec.terms:
            labels = groups[term.factor]
            if term.factor in spec.group_levels:  # a formula's: lme4's order
                levels[term.factor] = pd.Index(spec.group_levels[term.factor])
                codes[term.factor] = lookup_levels(labels, levels[term.factor])
            else:
                codes[term.factor], levels[term.factor] = encode_levels(labels)
        return self._factors_from_spec(spec, levels, n_samples), codes

    def _factors_from_spec(self, spec, levels, n_samples):
        factors = []
        for term in spec.terms:
            factor = Factor(
                term.factor,
                levels[term.factor],
                list(term.columns),
                list(term.names),
                term.intercept,
                term.diagonal,
            )
            self._check_factor_size(factor, n_samples)
            factors.append(factor)
        return factors

    def _check_factor_size(self, factor, n_samples):
        check_identifiable(factor, n_samples, self._scale_parameter)
        if factor.n_levels < MIN_LEVELS:
            warnings.warn(
                f"grouping factor {factor.name!r} has only {factor.n_levels} "
                f"level(s); with fewer than {MIN_LEVELS} its variance estimates "
                "will be imprecise.",
                UserWarning,
                stacklevel=5,
            )

    def _feature_names(self, n_features=None):
        """The fixed-effect features' names (a formula's columns, R's names)."""
        spec = getattr(self, "_spec", None)
        if spec is not None:
            return list(spec.features)
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in self.feature_names_in_]
        return [f"x{j}" for j in range(n_features)]

    @staticmethod
    def _prediction_codes(groups, factors, unseen):
        """Level codes of the rows, warning as ``predict_codes`` does.

        The warning points at the caller of ``predict`` or ``score``: five
        frames up (predict_codes, this, _predict_*, _predict, the method).
        """
        codes = {}
        for f in factors:
            codes[f.name] = predict_codes(
                groups[f.name],
                f.levels,
                f.name,
                kind_only=unseen == "kind",
                stacklevel=5,
            )
        return codes

    def _included_factors(self, random_effects):
        """The fitted factors whose random effects a prediction adds."""
        if isinstance(random_effects, str) and random_effects in ("all", "none"):
            return list(self._factors) if random_effects == "all" else []
        names = [f.name for f in self._factors]
        if isinstance(random_effects, str) or not isinstance(
            random_effects, list | tuple
        ):
            raise ValueError(
                "random_effects must be 'all', 'none' or a list of grouping "
                f"factors among {names}; got {random_effects!r}."
            )
        unknown = [r for r in random_effects if r not in names]
        if unknown:
            raise ValueError(
                f"random_effects names unknown grouping factor(s) {unknown}; the "
                f"model's factors are {names}."
            )
        return [f for f in self._factors if f.name in random_effects]

    def _predict_population(self, X):
        return self.intercept_ + X @ self.coef_

    def _predict_conditional(self, X, Z, codes):
        """Fixed part plus the random effects of the factors in ``codes``.

        ``Z`` holds the random-effect slope columns (``X`` itself for array
        models); code -1 (a level not seen in ``fit``) adds nothing.
        """
        y = self._predict_population(X)
        for f in self._factors:
            if f.name not in codes:
                continue
            # Row -1 of the padded table is zero: unseen levels (code -1) get it.
            table = np.zeros((f.n_terms, f.n_levels + 1))
            table[:, :-1] = self.random_effects_[f.name].to_numpy().T
            columns = [None] * f.intercept + list(f.slope_columns)
            for t, j in enumerate(columns):
                effect = table[t].take(codes[f.name])
                y += effect if j is None else effect * dense_column(Z, j)
        return y

    def _match_groups(self, frame):
        """Line up the columns of ``groups`` with the fitted factors."""
        names = [f.name for f in self._factors]
        if frame.shape[1] != len(names):
            raise ValueError(
                f"groups has {frame.shape[1]} column(s) but the model was fitted "
                f"with {len(names)} grouping factor(s): {names}."
            )
        if set(frame.columns) == set(names):
            return frame
        if len(names) == 1 or all(c.startswith("group") for c in frame.columns):
            return frame.set_axis(names, axis=1)  # unnamed labels: by position
        raise ValueError(
            f"groups has factors {list(frame.columns)} but the model was fitted "
            f"with {names}."
        )


def is_dask_collection(*values):
    """Whether any value is a dask collection (checked without importing dask)."""
    return any(hasattr(type(v), "__dask_graph__") for v in values)
