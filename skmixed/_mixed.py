"""MixedLinearRegressor: lme4's ``lmer`` as a scikit-learn estimator."""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from ._base import MixedModelFrontEnd
from ._base import is_dask_collection as _is_dask_collection
from ._convergence import diagnose, exact_fit_convergence
from ._covariance import (
    ThetaLayout,
    factor_to_theta,
    n_theta,
)
from ._design import (
    INTERCEPT,
    build_design,
    fits_exactly,
    order_factors,
)
from ._groups import check_groups, lookup_levels
from ._objective import (
    Estimates,
    blas_threads_for,
    estimates,
    factorize,
    make_deviance_and_gradient,
    objective,
)
from ._objective_krylov import allow_probe_noise, krylov_options
from ._optimize import FitLog, OptimizeOutcome, is_singular, optimize_design
from ._row_metadata import add_offset, check_offset, subtract_offset
from ._sklearn import (
    validate_predict_input,
)
from ._spec import (
    positive_weight_rows,
    scored_rows,
    with_row_metadata,
)
from ._validation import (
    InstanceOf,
    Interval,
    Options,
    validate_params,
)


class MixedLinearRegressor(RegressorMixin, MixedModelFrontEnd):
    """Linear mixed-effects model fitted by REML or ML, as lme4's ``lmer``.

    The model is ``y = X beta + Z b + e`` with random effects
    ``b ~ N(0, Sigma)`` per level of each grouping factor and residuals
    ``e ~ N(0, sigma^2)``.  It is fitted by minimising the profiled deviance
    over the relative covariance factor ``theta`` (Bates et al. 2015), after
    one pass over the data that reduces it to per-group sufficient
    statistics.

    Parameters
    ----------
    formula : str, default=None
        The model in lme4's syntax, e.g. ``"yield ~ nitro * Variety +
        (1 | Block/Variety)"``.  ``X`` is then a pandas or polars DataFrame of
        raw columns (numeric, string, categorical, boolean) and the formula
        says everything: the fixed part as R's ``model.matrix`` builds it
        (contrasts, interactions, ``poly``, ``I()``, ``scale``, ``log`` ...,
        with R's column names), the random-effect terms ``(1 + x | g)``,
        ``(0 + x | g)``, ``(1 + x || g)``, ``(1 | a/b)``, ``(1 | a:b)`` and
        their grouping factors.  ``random_slopes``, ``random_intercept``,
        ``covariance``, ``fit_intercept`` and ``group_column`` must then stay
        at their defaults.  None: the model is given by those parameters.
    random_slopes : list of str or int, dict or None, default=None
        Columns of ``X`` that get a random slope.  A list applies to every
        grouping factor; a dict ``{factor: [columns]}`` gives per-factor
        slopes.  Names require ``X`` to be a DataFrame; integers index the
        columns of ``X``.
    random_intercept : bool, default=True
        Give each level a random intercept.  ``False`` with random slopes is
        lme4's ``(0 + x | g)``.
    covariance : {"unstructured", "diagonal"} or dict, default="unstructured"
        Covariance of a level's random effects: ``"unstructured"`` is lme4's
        ``(1 + x | g)`` (correlated), ``"diagonal"`` is ``(1 + x || g)``.  A
        dict ``{factor: covariance}`` sets it per factor.
    method : {"reml", "ml"}, default="reml"
        Restricted or full maximum likelihood.
    fit_intercept : bool, default=True
        Include a fixed intercept (``False`` is lme4's ``y ~ 0 + ...``).
    max_iter : int, default=1000
        Maximum number of optimiser iterations.
    group_column : str or list of str, default=None
        Column(s) of a DataFrame ``X`` that hold the group labels.  When set,
        ``fit``, ``predict`` and ``score`` take the groups out of ``X`` (and
        refuse a ``groups`` argument), so that tools which only pass ``X``
        (scorers, ``permutation_importance``) keep the labels with the data.
        ``n_features_in_`` and ``feature_names_in_`` then describe ``X``
        without these columns.
    solver : {"auto", "cholesky", "krylov"}, default="auto"
        The linear algebra of the profiled deviance.  ``"cholesky"``: the
        exact blocked Cholesky factorisation (a dense block for the levels
        of every factor but the largest).  ``"krylov"``: preconditioned
        conjugate gradients, stochastic Lanczos quadrature for the
        log-determinant and stochastic trace estimates for the gradient,
        all sparse over the non-zeros of ``Z'Z`` (several grouping factors,
        one random-effect term each).  ``"auto"``: Krylov for such models
        when the dense block would have at least
        ``skmixed._objective_krylov.KRYLOV_MIN_DENSE`` columns, else
        Cholesky.  Profile intervals, the bootstrap, posterior simulation
        and Kenward-Roger's method need the exact path.
    random_state : None, int, RandomState or Generator, default=None
        The probe vectors of the Krylov path (drawn once per fit, so that
        its criterion is a deterministic function of theta); an int makes
        Krylov fits reproducible.  Unused by the exact path.

    Attributes
    ----------
    intercept_ : float
        Fixed intercept (0.0 when ``fit_intercept=False``).
    coef_ : ndarray of shape (n_features_in_,)
        Fixed-effect coefficients; 0.0 for columns dropped as redundant.
    sigma_ : float
        Residual standard deviation (lme4's ``sigma()``).
    random_effects_ : dict of str to DataFrame
        Per grouping factor, the predicted random effects (BLUPs, lme4's
        ``ranef()``), indexed by level, columns ``"Intercept"`` and the slope
        feature names.
    random_effects_cov_ : dict of str to DataFrame
        Per grouping factor, the estimated covariance matrix of one level's
        random effects (lme4's ``VarCorr()``), terms by terms.
    random_effects_cond_sd_ : dict of str to DataFrame
        Conditional standard deviations of the BLUPs (lme4's
        ``ranef(condVar = TRUE)``), shaped as ``random_effects_``.
    random_effects_cond_cov_ : dict of str to ndarray of shape (m, q, q)
        Conditional covariance of each level's random effects.
    fixed_effects_ : Series
        Intercept (if any) and coefficients of the columns in the fit.
    fixed_effects_cov_ : DataFrame
        Covariance matrix of ``fixed_effects_`` (lme4's ``vcov()``).
    objective_ : float
        REML criterion (``method="reml"``) or deviance (``"ml"``) at the
        optimum, exactly as lme4 reports it.
    objective_se_ : float
        Standard error of ``objective_`` (so also of ``aic_``, ``bic_`` and
        twice ``loglik_``) from the Krylov path's probe vectors; 0.0 where
        it is exact: the exact path, and Krylov fits whose later factors
        have at most 6,000 levels in all (their log-determinant is then
        computed exactly at the optimum).
    loglik_, aic_, bic_ : float
        Log-likelihood (restricted, for REML), AIC and BIC as lme4's.
    theta_ : ndarray
        Relative covariance factors, factor after factor in the order of
        ``groups``, each lme4's lower triangle by columns.
    converged_ : bool
        Whether the optimiser reported convergence and the optimum passed
        lme4's convergence checks (see ``convergence_``).
    convergence_ : Convergence
        lme4's ``checkConv`` at the optimum: the gradient and Hessian of the
        criterion in theta (lme4's units and names), the scaled gradient,
        the Hessian's eigenvalues, which parameters were checked (those off
        the boundary) and the messages, also issued as ConvergenceWarning.
        A zero or negative eigenvalue means the model may not be
        identifiable; the message names the parameters involved.
    n_iter_ : int
        Optimiser iterations.
    is_singular_ : bool
        Whether the fit is on the boundary, by lme4's ``isSingular`` rule: a
        diagonal entry of theta (in the units of the data) below 1e-4, as
        for a variance of zero or a correlation of +-1.
    groups_ : dict of str to Index
        Levels of each grouping factor seen in ``fit``.
    n_groups_ : dict of str to int
        Number of levels of each grouping factor.
    fitted_values_, residuals_ : ndarray of shape (n_samples,)
        Conditional fitted values and residuals on the training data; lazy
        dask arrays when ``fit`` was given dask collections (see Notes).
    fit_log_ : DataFrame
        Every objective evaluation of the optimiser: theta and the value.
    solver_ : {"cholesky", "krylov"}
        The solver the fit used (``solver="auto"`` resolved).
    n_features_in_ : int
        Number of features, not counting the ``group_column`` columns.
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names (without ``group_column``).

    See Also
    --------
    sklearn.linear_model.LinearRegression : The model without random effects.
    CompletePoolingRegressor : One regression line for every group.
    NoPoolingRegressor : A separate fixed-effect line per group.

    Notes
    -----
    ``groups`` is a 1-D array of labels (one grouping factor) or a 2-D array
    or DataFrame with one column per factor, crossed or nested; nested
    factors are written as the outer factor plus an interaction column, as
    lme4 expands ``(1 | a/b)`` into ``(1 | a) + (1 | a:b)``.

    ``X``, ``y``, ``groups`` (and ``sample_weight`` in ``score``) may be
    dask DataFrames, Series or arrays partitioned alike along the rows
    (``pip install skmixed[dask]``).  ``fit`` then reduces every partition
    to sufficient statistics where it lies and sums them, so only
    statistics of the size of the number of levels reach the calling
    process; the estimates equal those of the same rows in memory.
    ``fitted_values_`` and ``residuals_`` are then dask arrays computed on
    demand, ``predict`` returns a dask Series (for a dask DataFrame ``X``)
    or a dask array, and ``score`` computes R^2 on the cluster.

    Without ``groups`` the model has no random effects (an ordinary linear
    regression, with a warning); scikit-learn's tools that call
    ``fit(X, y)`` need this.  In ``predict``, levels not seen in ``fit``
    get a zero random effect, that is the population prediction.

    In scikit-learn's meta-estimators (``Pipeline``, ``cross_validate``,
    ``GridSearchCV``) ``groups`` travels by metadata routing: enable it with
    ``sklearn.set_config(enable_metadata_routing=True)`` and request it with
    ``set_fit_request(groups=True)``, ``set_predict_request(groups=True)``
    and ``set_score_request(groups=True)``.  Scorers never pass metadata to
    ``predict`` (scikit-learn issue #27977), so cross-validate with the
    default ``scoring=None``: ``score`` receives the routed groups.  Its R^2
    then measures conditional predictions when the test groups were seen in
    training (``KFold``) and population predictions when they were not
    (``GroupKFold``: unseen levels get a zero random effect).  A scoring
    string such as ``"neg_mean_squared_error"`` always scores population
    predictions, unless the groups are a column of ``X`` (``group_column``).

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> model.coef_.round(1)
    array([2.])
    >>> model.predict(X[:2], groups=groups[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        "formula": [InstanceOf(str), Options(None)],
        "random_slopes": [
            InstanceOf(
                list, tuple, dict, str, int, description="a list, dict, str, int"
            ),
            Options(None),
        ],
        "random_intercept": [InstanceOf(bool)],
        "covariance": [Options("unstructured", "diagonal"), InstanceOf(dict)],
        "method": [Options("reml", "ml")],
        "fit_intercept": [InstanceOf(bool)],
        "max_iter": [Interval(int, 1, None)],
        "group_column": [
            InstanceOf(str, list, tuple, description="a str or a list of str"),
            Options(None),
        ],
        "solver": [Options("auto", "cholesky", "krylov")],
        "random_state": [
            InstanceOf(
                int,
                np.random.RandomState,
                np.random.Generator,
                description="an int, RandomState or Generator",
            ),
            Options(None),
        ],
    }

    def __init__(
        self,
        *,
        formula=None,
        random_slopes=None,
        random_intercept=True,
        covariance="unstructured",
        method="reml",
        fit_intercept=True,
        max_iter=1000,
        group_column=None,
        solver="auto",
        random_state=None,
    ):
        self.formula = formula
        self.random_slopes = random_slopes
        self.random_intercept = random_intercept
        self.covariance = covariance
        self.method = method
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.group_column = group_column
        self.solver = solver
        self.random_state = random_state

    def fit(self, X, y=None, groups=None, sample_weight=None, offset=None):
        """Fit the model by REML or ML.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features; a DataFrame keeps its column names.  With
            ``groups``, ``X`` may have no columns (``y ~ 1 + (1 | g)``).
            With ``formula``: a pandas or polars DataFrame of the raw columns
            the formula names (numeric, string, categorical, boolean).
        y : array-like of shape (n_samples,), default=None
            The response.  Required without ``formula``; with it, None takes
            the response from the formula's left-hand side.
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels, one column per grouping factor.  None fits a model
            without random effects (with a warning).  Must be None when
            ``group_column`` or ``formula`` is set.
        sample_weight : array-like of shape (n_samples,), default=None
            lme4's prior weights (``lmer(..., weights = w)``): precision
            weights, the residual variance of row i is ``sigma_**2 / w_i``.
            Not frequencies: a weight of 2 is one row measured twice as
            precisely, not two rows.  Rows of weight 0 are left out.
        offset : array-like of shape (n_samples,), default=None
            A known term of the linear predictor, with coefficient one
            (lme4's ``offset()``); pass the offset of new rows to
            ``predict`` too.

        Returns
        -------
        self : MixedLinearRegressor
        """
        validate_params(self)
        self._group_column = self.group_column  # what predict splits off X
        # The response's name (a named Series) for the summary's formula line.
        name = getattr(y, "name", None)
        self._response_name = str(name) if name is not None else "y"
        if _is_dask_collection(X, y, groups, sample_weight, offset):
            from ._dask import fit_dask  # dask is an optional dependency

            return fit_dask(self, X, y, groups, sample_weight, offset)
        if self.formula is not None:
            spec, frame = self._formula_model_frame(X, y, groups)
        else:
            spec, frame = self._array_model_frame(X, y, groups)
        if np.unique(frame.y).size == 2:  # 0/1 or booleans: a binary target
            warnings.warn(
                "y has two distinct values: a binary target. MixedLinearRegressor "
                "fits a linear probability model (predictions may leave [0, 1]); "
                "MixedLogisticRegression models the log-odds (glmer's binomial).",
                UserWarning,
                stacklevel=2,
            )
        # All rows have fitted values; those of weight zero carry no
        # information, so the statistics (and the levels) are the others'.
        rows = with_row_metadata(frame, sample_weight, offset, keep_zero_weights=True)
        frame = positive_weight_rows(rows)
        self._spec = spec
        factors, codes = self._make_factors(spec, frame.groups, len(frame.y))
        self._fit_design(frame, factors, codes, self.method == "reml")
        self._set_fitted_values(rows, frame, codes)
        # The rows, for bootstrap refits.
        self._train_X, self._train_Z, self._train_codes = frame.X, frame.Z, codes
        self._train_weights, self._train_offset = frame.weights, frame.offset
        return self

    def _set_fitted_values(self, rows, frame, codes):
        """``fitted_values_`` and ``residuals_`` of every row given.

        Rows of weight zero (not in ``frame``) are predicted as new rows:
        their levels may be unseen (the population prediction for them).
        """
        if rows is not frame:
            codes = {
                f.name: lookup_levels(rows.groups[f.name], f.levels)
                for f in self._factors
            }
        fitted = self._predict_conditional(rows.X, rows.Z, codes)
        self.fitted_values_ = add_offset(fitted, rows.offset)
        self.residuals_ = rows.y - self.fitted_values_
        # Pearson residuals scale by sqrt(w): the weights of these rows.
        self._residual_weights = rows.weights

    def _fit_design(self, frame, factors, codes, reml):
        """Run the stages: design, optimisation, estimates; set attributes."""
        spec = self._spec
        fixed_names = [INTERCEPT] * spec.fit_intercept + list(spec.features)
        ordered = order_factors(factors)
        krylov = krylov_options(self.solver, self.random_state, ordered)
        self.solver_ = "cholesky" if krylov is None else "krylov"
        with blas_threads_for(ordered):
            design = build_design(
                frame.X,
                subtract_offset(frame.y, frame.offset),
                codes,
                ordered,
                fixed_names,
                spec.fit_intercept,
                Z=frame.Z,
                weights=frame.weights,
                sparse_others=krylov is not None,
            )
            design.stats.krylov = krylov
            outcome = self._fit_statistics(design, [f.name for f in factors], reml)
        self._warn_about_outcome(outcome)

    def _fit_statistics(self, design, user_order, reml, start=None):
        """Optimise from the design's statistics; set the fitted attributes.

        Everything but ``fitted_values_`` and ``residuals_``, which need the
        rows; shared by the in-memory and dask paths and bootstrap refits
        (which pass ``start``, the scaled theta to start from).
        """
        # What inference reads after fit: the fitted state, never the
        # parameters (set_params after fit must not relabel the fit).
        self._method = "reml" if reml else "ml"
        if start is None:
            self._max_iter = self.max_iter
        outcome, fact, est = _optimize_and_estimate(design, reml, self._max_iter, start)
        self._design = design  # sufficient statistics, reused by inference
        self._theta_scaled = outcome.theta  # optimisation order and scale
        self._set_fixed_effects(design, est)
        self._set_random_effects(design, est, fact, user_order)
        self._set_criteria(design, fact, reml, outcome)
        self._exact_fit = outcome.exact_fit  # sigma_ = 0: no inference
        if outcome.exact_fit:
            self.convergence_ = exact_fit_convergence(design, outcome)
        else:
            self.convergence_ = diagnose(
                design, reml, outcome, make_deviance_and_gradient(design, reml)
            )
            if design.stats.krylov is not None:  # the gradient's probe noise
                self.convergence_ = allow_probe_noise(
                    design, reml, self.convergence_, outcome.theta
                )
        self.converged_ = self.convergence_.converged
        self._set_fit_log(design, outcome)
        return outcome

    def _warn_about_outcome(self, outcome):
        if not outcome.converged:
            warnings.warn(
                f"the optimiser did not converge ({outcome.message}); the estimates "
                "may be unreliable. Try a larger max_iter.",
                ConvergenceWarning,
                stacklevel=4,
            )
        for message in self.convergence_.messages:
            warnings.warn(
                f"{message}. See convergence_.", ConvergenceWarning, stacklevel=4
            )
        if self.is_singular_:
            warnings.warn(
                "boundary (singular) fit: a random-effect variance is estimated as "
                "zero or the covariance matrix is singular (lme4's isSingular); see "
                "is_singular_ and random_effects_cov_.",
                UserWarning,
                stacklevel=4,
            )

    def _set_fixed_effects(self, design, est):
        fit_intercept = self._spec.fit_intercept
        n_candidates = len(design.scaling.x_scale) + fit_intercept
        beta_s = np.zeros(n_candidates)
        cov_s = np.zeros((n_candidates, n_candidates))
        kept = design.fixed_kept
        beta_s[kept] = est.beta
        cov_s[np.ix_(kept, kept)] = est.beta_cov
        J, offset = design.scaling.fixed_jacobian(fit_intercept)
        beta = offset + J @ beta_s
        cov = (J @ cov_s @ J.T)[np.ix_(kept, kept)]
        self.intercept_ = float(beta[0]) if fit_intercept else 0.0
        self.coef_ = beta[1:] if fit_intercept else beta
        self.fixed_effects_ = pd.Series(beta[kept], index=design.fixed_names)
        self.fixed_effects_cov_ = pd.DataFrame(
            cov, index=design.fixed_names, columns=design.fixed_names
        )
        self.sigma_ = est.sigma * design.scaling.y_scale

    def _set_random_effects(self, design, est, fact, user_order):
        by_name = {}
        for k, f in enumerate(design.factors):
            scale = design.scaling.random_effect_scale(k)
            T = fact.T[k] / design.scaling.z_scale[k][:, None]
            cov = self.sigma_**2 * (T @ T.T)
            by_name[f.name] = dict(
                factor=f,
                T=T,
                ranef=pd.DataFrame(
                    est.random_effects[k] * scale, index=f.levels, columns=f.term_names
                ),
                cov=pd.DataFrame(cov, index=f.term_names, columns=f.term_names),
                cond_cov=est.conditional_cov[k] * np.outer(scale, scale),
            )
        self._factors = [by_name[name]["factor"] for name in user_order]
        self.random_effects_ = {n: by_name[n]["ranef"] for n in user_order}
        self.random_effects_cov_ = {n: by_name[n]["cov"] for n in user_order}
        self.random_effects_cond_cov_ = {n: by_name[n]["cond_cov"] for n in user_order}
        self.random_effects_cond_sd_ = {
            n: pd.DataFrame(
                np.sqrt(
                    np.clip(
                        np.diagonal(by_name[n]["cond_cov"], axis1=1, axis2=2), 0, None
                    )
                ),
                index=by_name[n]["factor"].levels,
                columns=by_name[n]["factor"].term_names,
            )
            for n in user_order
        }
        self.theta_ = np.concatenate(
            [
                factor_to_theta(by_name[n]["T"], by_name[n]["factor"].diagonal)
                for n in user_order
            ]
            or [np.zeros(0)]
        )
        self.groups_ = {f.name: f.levels for f in self._factors}
        self.n_groups_ = {f.name: f.n_levels for f in self._factors}

    def _set_criteria(self, design, fact, reml, outcome):
        n, p = design.stats.n, design.n_fixed
        fit_intercept = self._spec.fit_intercept
        features = design.fixed_kept[design.fixed_kept >= fit_intercept]
        shift = design.scaling.objective_shift(n, p, features - fit_intercept, reml)
        shift -= design.stats.log_weights  # prior weights: lme4's -sum(log w)
        # Only the Krylov path's log-determinant is an estimate.
        self.objective_se_ = float(getattr(fact, "logdet_se", 0.0))
        if outcome.exact_fit:  # sigma = 0: the likelihood is unbounded
            self.objective_ = -np.inf
        else:
            self.objective_ = float(objective(fact, n, reml) + shift)
        n_params = p + 1 + sum(n_theta(f.n_terms, f.diagonal) for f in design.factors)
        self.loglik_ = -0.5 * self.objective_
        self.aic_ = self.objective_ + 2.0 * n_params
        self.bic_ = self.objective_ + np.log(n) * n_params
        self.n_iter_ = outcome.n_iter
        # lme4's isSingular: on theta in the units of the data.
        lower = np.concatenate(
            [ThetaLayout.from_factors(self._factors).lower, np.zeros(0)]
        )
        self.is_singular_ = is_singular(self.theta_, lower)

    def _set_fit_log(self, design, outcome):
        columns = [
            f"theta_{f.name}_{j}"
            for f in design.factors
            for j in range(n_theta(f.n_terms, f.diagonal))
        ]
        frame = pd.DataFrame(
            np.array(outcome.log.thetas).reshape(len(outcome.log.values), len(columns)),
            columns=columns,
        )
        frame["objective_scaled"] = outcome.log.values
        self.fit_log_ = frame

    def predict(self, X, groups=None, random_effects="all", offset=None):
        """Predict with all, some or none of the random effects.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in ``fit``: numeric features, or with ``formula`` a data frame
            of the columns the formula names (the grouping factors among
            them; the response is not needed).
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels as in ``fit``.  With them, the prediction adds each
            level's predicted random effects (zero for levels not seen in
            ``fit``); without them it is the population prediction (lme4's
            ``re.form = ~0``).  Must be None when ``group_column`` or
            ``formula`` is set.
        random_effects : "all", "none" or list of str, default="all"
            Which grouping factors' random effects to add: all of them
            (lme4's ``re.form = NULL``), none (``re.form = NA``, the
            population prediction) or those named (``re.form = ~(1 | g)``).
        offset : array-like of shape (n_samples,), default=None
            The rows' offset, added to the prediction (as ``fit``'s).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            With ``formula``, NaN for rows missing a value the formula uses.
        """
        return self._predict(X, groups, random_effects, offset, unseen="warn")

    def _predict(self, X, groups, random_effects, offset, unseen):
        """``predict``; ``unseen="kind"`` warns only of labels of another kind.

        ``score`` passes "kind": it scores grouped cross-validation folds,
        whose groups are new by design (see :mod:`skmixed.exceptions`).
        """
        check_is_fitted(self)
        factors = self._included_factors(random_effects)
        if _is_dask_collection(X, groups, offset):
            from ._dask import predict_dask

            return predict_dask(self, X, groups, random_effects, offset)
        if self._spec.matrices is not None:
            y_pred = self._predict_formula(X, groups, factors, unseen)
        else:
            y_pred = self._predict_arrays(X, groups, factors, unseen)
        return add_offset(y_pred, check_offset(offset, y_pred.shape[0]))

    def _predict_arrays(self, X, groups, factors, unseen):
        X, groups = validate_predict_input(self, X, groups, accept_sparse=True)
        if groups is None or not factors:
            return self._predict_population(X)
        frame = self._match_groups(check_groups(groups, X.shape[0], allow_missing=True))
        return self._predict_conditional(
            X, X, self._prediction_codes(frame, factors, unseen)
        )

    def _predict_formula(self, X, groups, factors, unseen):
        """A formula model's predictions; NaN where a used value is missing."""
        if groups is not None:
            raise ValueError(
                "a formula model reads its grouping factors from X: groups must "
                "be None."
            )
        frame = self._spec.model_frame(X, new_levels=True)
        codes = self._prediction_codes(frame.groups, factors, unseen)
        y = np.full(frame.complete.shape[0], np.nan)
        y[frame.complete] = self._predict_conditional(frame.X, frame.Z, codes)
        return y

    def score(self, X, y=None, groups=None, sample_weight=None, offset=None):
        """R^2 of ``predict(X, groups)``.

        With ``groups`` (or ``group_column``) the predictions include the
        random effects of seen levels; without, they are population
        predictions.  This is the score of ``cross_validate`` and
        ``GridSearchCV`` with ``scoring=None``, the one scoring path that
        receives routed ``groups`` (see Notes of the class).  A formula
        model reads ``y`` from ``X`` when it is None, and scores the rows
        that have every value the formula uses.
        """
        if _is_dask_collection(X, y, groups, sample_weight, offset):
            from ._dask import score_dask

            return score_dask(self, X, y, groups, sample_weight, offset)
        y_pred = self._predict(X, groups, "all", offset, unseen="kind")
        if self._spec.matrices is None:
            if y is None:
                raise ValueError(
                    "score needs y (only a formula model reads it from X)."
                )
            return r2_score(y, y_pred, sample_weight=sample_weight)
        y, y_pred, weight = scored_rows(self._spec, X, y, y_pred, sample_weight)
        return r2_score(y, y_pred, sample_weight=weight)

    def summary(self, ddf="satterthwaite"):
        """lme4's ``summary``: criteria, variance components, t-tests.

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger"}, default="satterthwaite"
            The t-tests of the fixed effects, as lmerTest's ``summary(m,
            ddf = ...)``: Satterthwaite's degrees of freedom, or
            Kenward-Roger's standard errors (pbkrtest's adjusted covariance)
            and degrees of freedom (REML fits only).

        Returns
        -------
        summary : :class:`skmixed.reporting.Summary`
            ``str(summary)`` is lme4's printed layout, with lmerTest's
            degrees of freedom and p-values; notebooks show
            it as HTML.  Its ``fixed_effects`` and ``random_effects``
            attributes hold the tables as DataFrames.

        Examples
        --------
        >>> from skmixed import MixedLinearRegressor
        >>> from skmixed.datasets import load_biomass
        >>> X, y, groups = load_biomass(return_X_y_groups=True)
        >>> model = MixedLinearRegressor(random_slopes=["Temp"])
        >>> summary = model.fit(X, y, groups=groups).summary()
        >>> print(summary)  # doctest: +ELLIPSIS
        Linear mixed model fit by REML. t-tests use Satterthwaite's method
        Formula: Biomass ~ Temp + N + (1 + Temp | Site)
        <BLANKLINE>
        REML criterion at convergence: 327.2
        ...
        >>> summary.fixed_effects.columns.tolist()
        ['estimate', 'std_error', 't_value', 'df', 'p_value']
        """
        check_is_fitted(self)
        from .reporting import summarize  # reporting reads the estimator

        return summarize(self, ddf=ddf)

    def confint(self, method="wald", level=0.95, **kwargs):
        """Confidence intervals of the parameters, as lme4's ``confint``.

        Parameters
        ----------
        method : {"wald", "profile", "bootstrap"}, default="wald"
            ``"wald"``: ``estimate +- z SE`` for the fixed effects only (the
            variance parameters get NaN, as in lme4); ``"profile"``:
            profile-likelihood intervals; ``"bootstrap"``: parametric
            bootstrap percentile intervals.
        level : float, default=0.95
            Confidence level.
        **kwargs
            Passed to the profile or bootstrap routine.

        Returns
        -------
        intervals : DataFrame
            Columns ``lower`` and ``upper``; rows ``sd_<term>|<factor>``,
            ``cor_<term2>.<term1>|<factor>``, ``sigma``, then the fixed
            effects (``Intercept`` and the features).

        Examples
        --------
        >>> from skmixed import MixedLinearRegressor
        >>> from skmixed.datasets import load_biomass
        >>> X, y, groups = load_biomass(return_X_y_groups=True)
        >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
        >>> model.confint().round(2)
                           lower  upper
        sd_Intercept|Site    NaN    NaN
        sigma                NaN    NaN
        Intercept           9.59  10.66
        Temp               -0.08   0.39
        N                   1.89   2.34
        """
        check_is_fitted(self)
        if method == "wald":
            if kwargs:
                raise TypeError(
                    f"confint(method='wald') takes no further arguments; got "
                    f"{sorted(kwargs)}."
                )
            from .inference._wald import wald_confint

            return wald_confint(self, level=level)
        if method == "profile":
            from .inference._profile import profile_confint

            return profile_confint(self, level=level, **kwargs)
        if method == "bootstrap":
            from .inference._bootstrap import bootstrap_confint

            return bootstrap_confint(self, level=level, **kwargs)
        raise ValueError(
            f"method must be 'wald', 'profile' or 'bootstrap'; got {method!r}."
        )

    def bootstrap(
        self, statistic, n_boot=1000, random_state=None, n_jobs=None, progress="auto"
    ):
        """Parametric bootstrap of a statistic of the model (lme4's ``bootMer``).

        Simulates responses from the fitted model (new random effects and
        residuals), refits the model to each from the estimates and applies
        ``statistic`` to every refitted model.

        Parameters
        ----------
        statistic : callable
            ``statistic(refitted_model)`` returning a scalar or an array of
            fixed shape, e.g. ``lambda m: m.predict(X_grid)``.
        n_boot : int, default=1000
            Number of replicates.
        random_state : None, int, SeedSequence or Generator
            The replicates do not depend on ``n_jobs``.
        n_jobs : int, default=None
            Processes for the refits (joblib).
        progress : {"auto", True, False}, default="auto"
            Progress bar on stderr (``"auto"``: on a terminal, for long runs).

        Returns
        -------
        result : skmixed.inference.BootstrapResult
            ``observed``, ``replicates`` (n_boot x shape of the statistic),
            ``converged``, ``percentile_interval(level)``, ``std_error()``.
        """
        from .inference._bootstrap import bootstrap

        return bootstrap(self, statistic, n_boot, random_state, n_jobs, progress)

    def sample_posterior(self, n_draws=1000, random_state=None):
        """Draws of the fixed effects, random effects and sigma (``arm::sim``).

        Parameters
        ----------
        n_draws : int, default=1000
        random_state : None, int, SeedSequence or Generator

        Returns
        -------
        sample : skmixed.inference.PosteriorSample
            ``fixed_effects`` (DataFrame n_draws x p), ``random_effects``
            (dict factor -> ndarray n_draws x m x q), ``sigma`` (ndarray).
        """
        from .inference._posterior import sample_posterior

        return sample_posterior(self, n_draws, random_state)

    def simulate(
        self, X, groups=None, n=1, random_state=None, use_re="new", offset=None
    ):
        """Simulate responses from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels as in ``predict``; None makes every row a new level.
        n : int, default=1
            Number of simulated responses.
        random_state : None, int, SeedSequence or Generator
        use_re : {"new", "fitted"}, default="new"
            New random effects for every level (lme4's ``use.u = FALSE``) or
            the predicted ones for levels seen in ``fit`` (``use.u = TRUE``).
        offset : array-like of shape (n_samples,), default=None
            The rows' offset, added to each draw.

        Returns
        -------
        y_sim : ndarray of shape (n_samples, n)
        """
        from .inference._simulate import simulate

        return simulate(self, X, groups, n, random_state, use_re, offset)

    def predict_interval(
        self,
        X,
        groups=None,
        level=0.95,
        n_draws=1000,
        include=("fixed", "random", "residual"),
        random_state=None,
        offset=None,
    ):
        """Prediction intervals for new rows (``merTools::predictInterval``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels as in ``predict``.
        level : float, default=0.95
        n_draws : int, default=1000
        include : iterable of {"fixed", "random", "residual"}
            Sources of uncertainty to include.
        random_state : None, int, SeedSequence or Generator
        offset : array-like of shape (n_samples,), default=None
            The rows' offset, added to the prediction and the bounds.

        Returns
        -------
        intervals : DataFrame
            Columns ``fit``, ``lower``, ``upper``.
        """
        from .inference._posterior import predict_interval

        return predict_interval(
            self, X, groups, level, n_draws, include, random_state, offset
        )

    def explore(self, X=None, y=None, groups=None, path=None, *, title=None):
        """The model explorer: one self-contained interactive HTML page.

        Calls :func:`skmixed.explore` (see it for the page's sections and the
        parameters).

        Returns
        -------
        path : Path or skmixed._explore.ExplorerPage
            The path written, or with ``path=None`` the page (shown inline in
            Jupyter).
        """
        from ._explore import explore  # the explorer reads the estimator

        return explore(self, X, y, groups, path, title=title)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A formula model takes raw data frames: strings, categoricals and
        # missing values (rows left out, as lme4's na.omit).
        raw = self.formula is not None
        tags.input_tags.allow_nan = raw
        tags.input_tags.string = raw
        tags.input_tags.categorical = raw
        tags.input_tags.sparse = not raw  # numeric X: scipy.sparse too
        return tags


def _optimize_and_estimate(design, reml, max_iter, start=None):
    """Minimise the profiled deviance; the factorisation and estimates there.

    ``start`` is None for a fit (see :func:`._optimize.optimize_design` for
    the starts) and the estimates for a refit.  Raises FloatingPointError if
    the deviance is not finite at the optimum, which only degenerate data (or
    a bootstrap sample) can cause.  When the fixed effects fit y exactly (a
    constant y, or no more rows than fixed effects), see :func:`_exact_fit`.
    """
    if design.stats.n <= design.n_fixed or fits_exactly(design.stats):
        # As many fixed effects as rows, or y a linear function of X.
        return _exact_fit(design)
    outcome = optimize_design(design, reml, max_iter, start)
    fact = factorize(design.stats, design.factors, outcome.theta)
    if fact is None or not np.isfinite(outcome.value):
        raise FloatingPointError("the deviance is not finite at the optimum")
    return outcome, fact, estimates(fact, design.factors, design.stats.n, reml)


def _exact_fit(design):
    """The fit of a response the fixed effects fit exactly (a constant y).

    The likelihood is unbounded (sigma -> 0), so there is no optimum.  As
    lme4 (which reports sigma = 0 and failed convergence checks), the fit
    keeps the least-squares coefficients with sigma = 0 and zero variances;
    its convergence checks fail with a message saying why.
    """
    WtW, p = design.stats.WtW, design.n_fixed
    beta = np.linalg.lstsq(WtW[:p, :p], WtW[:p, p], rcond=None)[0]
    shapes = [(f.n_levels, f.n_terms) for f in design.factors]
    est = Estimates(
        beta,
        np.zeros((p, p)),
        0.0,
        [np.zeros((m, q)) for m, q in shapes],
        [np.zeros((m, q, q)) for m, q in shapes],
    )
    lower = ThetaLayout.from_factors(design.factors).lower
    theta = np.where(np.isfinite(lower), lower, 0.0)
    message = "no optimisation (an exact fit)"
    outcome = OptimizeOutcome(theta, lower, -np.inf, True, 0, message, FitLog(), True)
    return outcome, _ZeroVariances([np.zeros((q, q)) for _, q in shapes]), est


@dataclass
class _ZeroVariances:
    """What the fitted attributes read of a factorisation, for an exact fit."""

    T: list  # per factor, the relative covariance factor: zero
