"""Generalised linear mixed models: lme4's ``glmer`` as scikit-learn estimators.

:class:`MixedLogisticRegression` (binary targets, a classifier) and
:class:`MixedPoissonRegressor` (counts) share the front end of every mixed
model (:mod:`._base`: the specification, the grouping factors, the linear
predictor of new rows) and one fit: penalised IRLS for the conditional modes
(:mod:`._pirls`), the Laplace or adaptive Gauss-Hermite deviance, glmer's two
optimisation stages (:mod:`._glmm_fit`).
"""

import copy
import re
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import linalg
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from ._base import MixedModelFrontEnd, is_dask_collection
from ._covariance import ThetaLayout, factor_to_theta, lower_indices, n_theta
from ._design import (
    INTERCEPT,
    RANK_TOLERANCE,
    dense_column,
    order_factors,
    random_columns,
)
from ._family import make_family
from ._formula import FormulaMatrices, parse_formula
from ._glmm_fit import fit_glmm, glmm_convergence
from ._groups import check_groups
from ._objective import _conditional_variance_blocks
from ._optimize import is_singular
from ._pirls import Rows, fixed_effect_precision
from ._row_metadata import check_offset
from ._sklearn import validate_predict_input
from ._spec import formula_frame, positive_weight_rows, with_row_metadata
from ._targets import accuracy, binary_target, count_target, labels_of, poisson_d2
from ._validation import InstanceOf, Interval, Options, validate_params

# Nodes of the Gauss-Hermite rule that averages a prediction over random
# effects it does not know (an unseen level): exact to 1e-10 for the
# logistic and cloglog curves at the variances met in practice.
MARGINAL_NODES = 40
MAX_QUADRATURE_POINTS = 50  # more nodes than this change nothing but cost
SEPARATION_ETA = 30.0  # see _degenerate_fitted_values


class _MixedGLM(MixedModelFrontEnd):
    """The generalised model, for a family set by the subclass."""

    _family_name = ""
    _scale_parameter = False  # binomial and Poisson: no residual variance
    _model_without_groups = "a generalised linear model"
    _parameter_constraints = {
        "formula": [InstanceOf(str, description="a str"), Options(None)],
        "random_slopes": [
            InstanceOf(list, tuple, dict, description="a list or a dict"),
            Options(None),
        ],
        "random_intercept": [InstanceOf(bool, np.bool_, description="a bool")],
        "covariance": [
            Options("unstructured", "diagonal"),
            InstanceOf(dict, description="a dict"),
        ],
        "fit_intercept": [InstanceOf(bool, np.bool_, description="a bool")],
        "n_quadrature_points": [Interval(int, 1, MAX_QUADRATURE_POINTS)],
        "max_iter": [Interval(int, 1, None)],
        "group_column": [
            InstanceOf(str, list, tuple, description="a str or a list of str"),
            Options(None),
        ],
    }

    def fit(self, X, y=None, groups=None, sample_weight=None, offset=None):
        """Fit the model by maximum likelihood (Laplace or quadrature).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features (a DataFrame keeps its column names); with
            ``formula``, a data frame of the columns it names.
        y : array-like of shape (n_samples,)
            The target (see the class).  With ``formula``, None reads it
            from the formula's left-hand side.
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels, one column per grouping factor.  None fits a model
            without random effects (with a warning).
        sample_weight : array-like of shape (n_samples,), default=None
            Prior weights (see the class); rows of weight 0 are left out.
        offset : array-like of shape (n_samples,), default=None
            A known term of the linear predictor (lme4's ``offset()``).

        Returns
        -------
        self
        """
        validate_params(self)
        if is_dask_collection(X, y, groups, sample_weight, offset):
            raise TypeError(
                f"{type(self).__name__} does not fit dask collections yet (only "
                "MixedLinearRegressor does): compute them into memory first."
            )
        self._group_column = self.group_column
        name = getattr(y, "name", None)
        self._response_name = str(name) if name is not None else "y"
        if self.formula is not None:
            formula, y, sample_weight = self._counts_response(X, y, sample_weight)
            spec, frame = self._formula_model_frame(X, y, groups, formula)
            spec = replace(spec, formula=self.formula)  # as written, for summary
        else:
            spec, frame = self._array_model_frame(X, y, groups)
        frame.y = self._check_target(frame.y)
        frame = positive_weight_rows(with_row_metadata(frame, sample_weight, offset))
        self._spec = spec
        factors, codes = self._make_factors(spec, frame.groups, len(frame.y))
        self._check_quadrature(factors)
        self._fit_rows(frame, factors, codes)
        return self

    def _counts_response(self, X, y, sample_weight):
        """The formula, target and weights to fit (see the classifier's)."""
        return self.formula, y, sample_weight

    def _check_quadrature(self, factors):
        if (
            self.n_quadrature_points > 1
            and factors  # without random effects there is nothing to integrate
            and not (len(factors) == 1 and factors[0].n_terms == 1)
        ):
            raise ValueError(
                f"n_quadrature_points={self.n_quadrature_points} (adaptive "
                "Gauss-Hermite quadrature) needs a single grouping factor with a "
                "single random-effect term, as glmer's nAGQ > 1; use 1 (the "
                "Laplace approximation) for this model."
            )

    def _fit_rows(self, frame, factors, codes):
        n = frame.y.shape[0]
        X = frame.X.toarray() if hasattr(frame.X, "toarray") else frame.X
        X = np.asarray(X, dtype=float)
        fit_intercept = self._spec.fit_intercept
        names = [INTERCEPT] * fit_intercept + list(self._spec.features)
        columns, center, scale = _standardized(X, fit_intercept)
        kept = _independent_columns(columns)
        if len(kept) < columns.shape[1]:
            dropped = [nm for j, nm in enumerate(names) if j not in set(kept)]
            warnings.warn(
                f"fixed-effect model matrix is rank deficient so dropping "
                f"{len(dropped)} column(s): {dropped}. Their coefficients are set "
                "to 0.",
                UserWarning,
                stacklevel=4,
            )
        ordered = order_factors(factors)
        family = make_family(self._family_name, self._link())
        # Slopes are fitted per unit of their column's root mean square, so
        # that theta is of order one whatever the units of the data.
        z_scale = {f.name: _slope_scale(frame.Z, f) for f in ordered}
        self._z_scale = z_scale
        weights = np.ones(n) if frame.weights is None else frame.weights
        offset = np.zeros(n) if frame.offset is None else frame.offset
        rows = Rows(
            np.ascontiguousarray(columns[:, kept]),
            frame.y,
            weights,
            offset,
            [codes[f.name] for f in ordered],
            [random_columns(frame.Z, f, z_scale[f.name]) for f in ordered],
            ordered,
            family,
            family.log_constant(frame.y, weights),
        )
        self._max_iter = self.max_iter
        outcome = fit_glmm(
            rows, np.zeros(len(kept)), self.n_quadrature_points, self.max_iter
        )
        self._family = family
        self._rows = rows
        self._n_quadrature_points = self.n_quadrature_points
        J = _unscaling(center, scale, fit_intercept)
        self._scaling = (J, kept, names)  # for refits (bootstrap, profiles)
        self._beta_scaled = outcome.beta
        self._set_fixed_effects(outcome, J, kept, names, len(ordered))
        self._set_random_effects(outcome, ordered, [f.name for f in factors])
        self._set_criteria(outcome, n, len(kept))
        self._set_convergence(outcome, ordered, J, kept)
        self._set_fitted(rows, outcome)
        self._warn_about_outcome()

    def _set_fixed_effects(self, outcome, J, kept, names, n_factors):
        p_all = J.shape[0]
        beta_s = np.zeros(p_all)
        beta_s[kept] = outcome.beta
        beta = J @ beta_s
        cov_s = np.zeros((p_all, p_all))
        cov_s[np.ix_(kept, kept)] = self._scaled_beta_cov(outcome)
        cov = (J @ cov_s @ J.T)[np.ix_(kept, kept)]
        fit_intercept = self._spec.fit_intercept
        self.intercept_ = float(beta[0]) if fit_intercept else 0.0
        self.coef_ = beta[1:] if fit_intercept else beta
        kept_names = [names[j] for j in kept]
        self.fixed_effects_ = pd.Series(beta[kept], index=kept_names)
        self.fixed_effects_cov_ = pd.DataFrame(
            cov, index=kept_names, columns=kept_names
        )

    def _scaled_beta_cov(self, outcome):
        """lme4's ``vcov``: from the Hessian in (theta, beta) when it is PD.

        ``2 H^{-1}`` restricted to beta (the deviance is -2 log L); else, and
        for a model without random effects, from the fixed-effect block of
        the PIRLS factor (``use.hessian = FALSE``).
        """
        k = outcome.theta.size
        H = outcome.hessian
        if H is not None and k:
            try:
                C = linalg.cho_factor(H)
                inverse = linalg.cho_solve(C, np.eye(H.shape[0]))
                self._vcov_source = "hessian"
                return 2.0 * inverse[k:, k:]
            except linalg.LinAlgError:
                warnings.warn(
                    "the Hessian of the deviance is not positive definite: the "
                    "covariance of the fixed effects is taken from the PIRLS "
                    "factor instead (lme4's use.hessian = FALSE).",
                    UserWarning,
                    stacklevel=5,
                )
        self._vcov_source = "pirls"
        precision = fixed_effect_precision(self._rows, outcome.theta, outcome.modes)
        return linalg.pinvh(precision)

    def _set_random_effects(self, outcome, ordered, user_order):
        fact = outcome.modes.fact
        by_name = {}
        if ordered:
            cond = _conditional_variance_blocks(fact, ordered)
        for k, f in enumerate(ordered):
            T = fact.T[k] / self._z_scale[f.name][:, None]  # the data's units
            b = outcome.modes.u[k] @ T.T
            cond_cov = np.einsum("ij,mjk,lk->mil", T, cond[k], T)
            by_name[f.name] = (f, T, b, cond_cov)
        self._factors = [by_name[nm][0] for nm in user_order]
        self.random_effects_ = {}
        self.random_effects_cov_ = {}
        self.random_effects_cond_cov_ = {}
        self.random_effects_cond_sd_ = {}
        for nm in user_order:
            f, T, b, cond_cov = by_name[nm]
            self.random_effects_[nm] = pd.DataFrame(
                b, index=f.levels, columns=f.term_names
            )
            self.random_effects_cov_[nm] = pd.DataFrame(
                T @ T.T, index=f.term_names, columns=f.term_names
            )
            self.random_effects_cond_cov_[nm] = cond_cov
            self.random_effects_cond_sd_[nm] = pd.DataFrame(
                np.sqrt(np.clip(np.diagonal(cond_cov, axis1=1, axis2=2), 0, None)),
                index=f.levels,
                columns=f.term_names,
            )
        self.theta_ = np.concatenate(
            [
                factor_to_theta(by_name[nm][1], by_name[nm][0].diagonal)
                for nm in user_order
            ]
            or [np.zeros(0)]
        )
        self._theta_scaled = outcome.theta  # optimisation order
        self.groups_ = {f.name: f.levels for f in self._factors}
        self.n_groups_ = {f.name: f.n_levels for f in self._factors}
        lower = ThetaLayout.from_factors(self._factors).lower
        self.is_singular_ = is_singular(self.theta_, lower)

    def _set_criteria(self, outcome, n, p):
        n_params = p + sum(n_theta(f.n_terms, f.diagonal) for f in self._factors)
        self.deviance_ = float(outcome.value)  # -2 log-likelihood
        self.loglik_ = -0.5 * self.deviance_
        self.aic_ = self.deviance_ + 2.0 * n_params
        self.bic_ = self.deviance_ + np.log(n) * n_params
        self.df_resid_ = n - n_params
        self.n_iter_ = max(int(outcome.n_iter), 1)  # IRLS alone: one
        self.objective_ = self.deviance_

    def _set_convergence(self, outcome, ordered, J, kept):
        if outcome.hessian is None:  # no random effects: IRLS is exact
            self.convergence_ = None
            self.converged_ = bool(outcome.converged)
        else:
            names = _theta_names(ordered) + list(self.fixed_effects_.index)
            k = outcome.theta.size
            interior = np.ones(k + outcome.beta.size, dtype=bool)
            lower = ThetaLayout.from_factors(ordered).lower
            interior[:k] = ~(np.isfinite(lower) & (np.abs(outcome.theta) < 1e-4))
            # beta's scale to the data's: the diagonal of the unscaling map.
            d = np.concatenate([np.ones(k), 1.0 / np.abs(np.diag(J)[kept])])
            self.convergence_ = glmm_convergence(outcome, names, interior, d)
            self.converged_ = bool(self.convergence_.converged)
        self._optimizer_message = outcome.message
        layout = [
            f"theta_{f.name}_{j}"
            for f in ordered
            for j in range(n_theta(f.n_terms, f.diagonal))
        ]
        thetas = np.array(outcome.log.thetas).reshape(len(outcome.log.values), -1)
        log = pd.DataFrame(thetas[:, : len(layout)], columns=layout)
        log["deviance"] = outcome.log.values
        self.fit_log_ = log

    def _set_fitted(self, rows, outcome):
        eta = outcome.modes.eta
        self.fitted_linear_predictor_ = eta
        self.fitted_values_ = rows.family.link.inverse(eta)
        self._train_rows = rows

    def _warn_about_outcome(self):
        if not self.converged_:
            messages = [] if self.convergence_ is None else self.convergence_.messages
            detail = "; ".join(messages) or self._optimizer_message
            warnings.warn(
                f"the fit may not have converged ({detail}); the estimates may be "
                "unreliable. See convergence_.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if self.is_singular_:
            warnings.warn(
                "boundary (singular) fit: a random-effect variance is estimated as "
                "zero or the covariance matrix is singular (lme4's isSingular); see "
                "is_singular_ and random_effects_cov_.",
                UserWarning,
                stacklevel=4,
            )
        if _degenerate_fitted_values(self._family, self.fitted_linear_predictor_):
            what = "probabilities" if self._family.name == "binomial" else "means"
            values = "0 or 1" if self._family.name == "binomial" else "0"
            warnings.warn(
                f"fitted {what} numerically {values} occurred (linear predictors "
                f"beyond {SEPARATION_ETA:g} in size): the response is "
                "(quasi-)completely separated, by the fixed effects or within "
                "groups, and the estimates of the coefficients or random effects "
                "involved grow without bound; their standard errors are "
                "meaningless.",
                UserWarning,
                stacklevel=4,
            )

    # ----------------------------------------------------------- prediction

    def _linear_predictor(self, X, groups, random_effects, offset, unseen="warn"):
        """The linear predictor and the variance of its unknown random part.

        ``eta`` adds the random effects of the levels the rows name, for the
        factors in ``random_effects``; ``variance`` is, per row, that of the
        random effects left out (factors not included, unseen levels), which
        a marginal prediction integrates over.  NaN for a formula's
        incomplete rows.
        """
        check_is_fitted(self)
        included = self._included_factors(random_effects)
        if self._spec.matrices is not None:
            if groups is not None:
                raise ValueError(
                    "a formula model reads its grouping factors from X: groups "
                    "must be None."
                )
            frame = self._spec.model_frame(X, new_levels=True)
            Xf, Z, labels, complete = frame.X, frame.Z, frame.groups, frame.complete
        else:
            Xf, groups = validate_predict_input(self, X, groups, accept_sparse=True)
            Z, complete = Xf, None
            labels = None
            if groups is not None:
                labels = self._match_groups(
                    check_groups(groups, Xf.shape[0], allow_missing=True)
                )
        codes = {}
        if labels is not None and included:
            codes = self._prediction_codes(labels, included, unseen)
        eta = self._predict_conditional(Xf, Z, codes)
        variance = self._unknown_variance(Z, codes, Xf.shape[0])
        if complete is not None:
            full_eta = np.full(complete.shape[0], np.nan)
            full_var = np.full(complete.shape[0], np.nan)
            full_eta[complete], full_var[complete] = eta, variance
            eta, variance = full_eta, full_var
        offset = check_offset(offset, eta.shape[0])
        return (eta if offset is None else eta + offset), variance

    def _unknown_variance(self, Z, codes, n):
        """Per row, the variance of the random effects a prediction lacks."""
        variance = np.zeros(n)
        for f in self._factors:
            unknown = (
                np.ones(n, dtype=bool) if f.name not in codes else codes[f.name] < 0
            )
            if not unknown.any():
                continue
            Sigma = self.random_effects_cov_[f.name].to_numpy()
            columns = [np.ones(n)] * f.intercept + [
                dense_column(Z, j) for j in f.slope_columns
            ]
            Zf = np.column_stack(columns)
            variance += np.where(unknown, np.einsum("ni,ij,nj->n", Zf, Sigma, Zf), 0.0)
        return variance

    def _mean(self, eta, variance, marginal):
        """The response-scale prediction, averaged over unknown random effects."""
        link = self._family.link
        if not marginal or not np.any(variance > 0):
            return link.inverse(eta)
        variance = np.where(np.isnan(variance), 0.0, variance)
        if link.name == "log":  # lognormal mean
            return np.exp(np.clip(eta + variance / 2.0, -700.0, 700.0))
        if link.name == "probit":
            return link.inverse(eta / np.sqrt(1.0 + variance))
        nodes, weights = np.polynomial.hermite_e.hermegauss(MARGINAL_NODES)
        weights = weights / weights.sum()
        sd = np.sqrt(variance)
        return sum(w * link.inverse(eta + sd * t) for t, w in zip(nodes, weights))

    def _mean_prediction(
        self, X, groups, random_effects, offset, marginal, unseen="warn"
    ):
        """The response-scale prediction; ``unseen`` as for ``_prediction_codes``.

        ``score`` passes "kind": grouped cross-validation scores new groups
        by design (see :mod:`skmixed.exceptions`).
        """
        eta, variance = self._linear_predictor(
            X, groups, random_effects, offset, unseen
        )
        return self._mean(eta, variance, marginal)

    def linear_predictor(self, X, groups=None, random_effects="all", offset=None):
        """The linear predictor ``eta`` (log-odds, log-mean), offset included.

        Random effects of unseen levels (and of factors not in
        ``random_effects``) are zero here: glmer's ``predict(type = "link")``.
        The classifier's ``decision_function``; a regressor has none in
        scikit-learn, so the Poisson model's is this method (as glum's).

        Parameters
        ----------
        X, groups, random_effects, offset :
            As for :meth:`MixedLinearRegressor.predict`.

        Returns
        -------
        eta : ndarray of shape (n_samples,)
        """
        eta, _ = self._linear_predictor(X, groups, random_effects, offset)
        return eta

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        raw = self.formula is not None
        tags.input_tags.allow_nan = raw
        tags.input_tags.string = raw
        tags.input_tags.categorical = raw
        tags.input_tags.sparse = not raw
        return tags

    def summary(self):
        """glmer's ``summary``: criteria, random effects, z-tests."""
        check_is_fitted(self)
        from .reporting._glmm_summary import summarize_glmm

        return summarize_glmm(self)

    def explore(self, X=None, y=None, groups=None, path=None, *, title=None):
        """The model explorer: one self-contained interactive HTML page.

        Calls :func:`skmixed.explore` (see it for the page's sections and the
        parameters; a model fitted on arrays needs ``X``).

        Returns
        -------
        path : Path or skmixed._explore.ExplorerPage
            The path written, or with ``path=None`` the page (shown inline in
            Jupyter).
        """
        from ._explore import explore  # the explorer reads the estimator

        return explore(self, X, y, groups, path, title=title)

    def _refit(self, rows):
        """A copy of the model fitted to ``rows`` (the design of the fit).

        The bootstrap's refits.  They start where ``fit`` does: from the
        estimates they save 10-25% and, on 5% of poisson_offset's replicates,
        end in an L-BFGS-B line-search failure at the optimum (reported as
        not converged).
        """
        J, kept, names = self._scaling
        model = copy.copy(self)
        model._rows = rows
        outcome = fit_glmm(
            rows,
            np.zeros_like(self._beta_scaled),
            self._n_quadrature_points,
            self._max_iter,
        )
        model._beta_scaled = outcome.beta
        model._set_fixed_effects(outcome, J, kept, names, len(rows.factors))
        model._set_random_effects(
            outcome, rows.factors, [f.name for f in self._factors]
        )
        model._set_criteria(outcome, rows.n, len(kept))
        model._set_convergence(outcome, rows.factors, J, kept)
        model._set_fitted(rows, outcome)
        return model

    def confint(self, method="wald", level=0.95, **kwargs):
        """Confidence intervals of the parameters, as glmer's ``confint``.

        Parameters
        ----------
        method : {"wald", "profile", "bootstrap"}, default="wald"
            ``"wald"``: ``estimate +- z SE`` for the fixed effects (the
            variance parameters get NaN, as in lme4); ``"profile"``:
            profile-likelihood intervals of the Laplace (or quadrature)
            deviance; ``"bootstrap"``: parametric bootstrap percentile
            intervals (``n_boot``, ``random_state``, ``n_jobs``).
        level : float, default=0.95
            Confidence level.
        **kwargs
            Passed to the profile (``parm``) or bootstrap routine.

        Returns
        -------
        intervals : DataFrame
            Columns ``lower`` and ``upper``; rows ``sd_<term>|<factor>``,
            ``cor_<term2>.<term1>|<factor>``, then the fixed effects.
        """
        from .inference._glmm_inference import glmm_confint

        return glmm_confint(self, level=level, method=method, **kwargs)

    def simulate(
        self,
        X,
        groups=None,
        n=1,
        random_state=None,
        use_re="new",
        offset=None,
        sample_weight=None,
    ):
        """Simulate responses from the fitted model (glmer's ``simulate``).

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
            the predicted ones for levels seen in ``fit``.
        offset : array-like of shape (n_samples,), default=None
            Added to the linear predictor.
        sample_weight : array-like of shape (n_samples,), default=None
            Binomial: the numbers of trials (the draws are then proportions
            of successes); Poisson: the exposures (the draws are then rates).

        Returns
        -------
        y_sim : ndarray of shape (n_samples, n)
            Binomial without ``sample_weight``: labels of ``classes_``;
            Poisson without ``sample_weight``: counts.
        """
        from .inference._glmm_inference import simulate_glmm

        return simulate_glmm(
            self, X, groups, n, random_state, use_re, offset, sample_weight
        )

    def sample_posterior(self, n_draws=1000, random_state=None):
        """Draws of the fixed and random effects (``arm::sim``).

        ``beta ~ N(fixed_effects_, fixed_effects_cov_)``; each level's
        random effects from their conditional distribution,
        ``N(random_effects_, random_effects_cond_cov_)``.

        Returns
        -------
        sample : skmixed.inference.PosteriorSample
            ``fixed_effects`` (DataFrame n_draws x p), ``random_effects``
            (dict factor -> ndarray n_draws x m x q); ``sigma`` is None.
        """
        from .inference._glmm_inference import sample_posterior_glmm

        return sample_posterior_glmm(self, n_draws, random_state)

    def bootstrap(self, statistic, n_boot=1000, random_state=None, n_jobs=None):
        """Parametric bootstrap of a statistic of the model (lme4's ``bootMer``).

        Simulates responses at the training rows (new random effects),
        refits the model to each from the estimates and applies
        ``statistic`` to every refitted model.

        Returns
        -------
        result : skmixed.inference.BootstrapResult
        """
        from .inference._glmm_inference import bootstrap_glmm

        return bootstrap_glmm(self, statistic, n_boot, random_state, n_jobs)


_SHARED_DOC = """
    Parameters
    ----------
    formula : str, default=None
        The model in lme4's syntax (``"y ~ x + (1 + x | g)"``), as for
        :class:`MixedLinearRegressor`.
    random_slopes : list, dict or None, default=None
        Columns of ``X`` with a random slope (per factor with a dict).
    random_intercept : bool, default=True
    covariance : {"unstructured", "diagonal"} or dict, default="unstructured"
    {link}
    fit_intercept : bool, default=True
    n_quadrature_points : int, default=1
        1: the Laplace approximation (glmer's default); more: adaptive
        Gauss-Hermite quadrature with that many points (glmer's ``nAGQ``),
        for one grouping factor with one random-effect term only.
    max_iter : int, default=1000
        Maximum iterations of each optimisation stage.
    group_column : str or list of str, default=None
        Column(s) of a DataFrame ``X`` holding the group labels.
"""


class MixedLogisticRegression(ClassifierMixin, _MixedGLM):
    """Mixed-effects logistic (probit, cloglog) regression, as glmer's binomial.

    ``P(y = classes_[1]) = g^{-1}(X beta + Z b)`` with ``b ~ N(0, Sigma)``
    per level of each grouping factor, fitted by maximum likelihood with the
    Laplace approximation (or adaptive quadrature) as lme4's ``glmer``.

    Parameters
    ----------
    formula, random_slopes, random_intercept, covariance, fit_intercept,
    group_column :
        As for :class:`MixedLinearRegressor`.
    link : {"logit", "probit", "cloglog"}, default="logit"
    n_quadrature_points : int, default=1
        1: the Laplace approximation (glmer's default); more: adaptive
        Gauss-Hermite quadrature (glmer's ``nAGQ``), only for a single
        grouping factor with a single random-effect term.
    max_iter : int, default=1000
        Maximum iterations of each optimisation stage.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels; the model gives the probability of ``classes_[1]``.
    fixed_effects_, coef_, intercept_, fixed_effects_cov_ :
        The fixed effects (log-odds scale) and their covariance.
    random_effects_ : dict of str to DataFrame
        Conditional modes of the random effects per factor and level.
    random_effects_cond_sd_, random_effects_cov_, theta_, loglik_, aic_,
    bic_, deviance_, is_singular_, converged_, convergence_, fit_log_ :
        As for :class:`MixedLinearRegressor` (``deviance_`` is -2 log L).

    Notes
    -----
    ``sample_weight`` is glmer's ``weights``: with 0/1 targets a weight of 2
    is the row twice; with a proportion target ``y = successes / trials``
    and ``sample_weight = trials`` it is glmer's ``cbind(successes,
    failures)``.

    Prediction for a level not seen in ``fit`` (or without ``groups``):
    ``predict_proba`` averages the probability over the distribution of the
    unknown random effects (``marginal=True``, the default), which is the
    calibrated probability for a new group; ``marginal=False`` gives
    glmer's ``re.form = NA`` (random effects at zero), which is the
    probability of a typical (median) group and is overconfident for a
    random new one.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(30), 20)
    >>> x = rng.normal(size=(600, 1))
    >>> eta = 0.5 * x[:, 0] + rng.normal(size=30)[groups]
    >>> y = rng.random(600) < 1 / (1 + np.exp(-eta))
    >>> model = MixedLogisticRegression().fit(x, y, groups=groups)
    >>> model.classes_
    array([False,  True])
    >>> model.predict_proba(x[:2], groups=groups[:2]).shape
    (2, 2)
    """

    _family_name = "binomial"
    _numeric_target = False
    _parameter_constraints = {
        **_MixedGLM._parameter_constraints,
        "link": [Options("logit", "probit", "cloglog")],
    }

    def __init__(
        self,
        *,
        formula=None,
        random_slopes=None,
        random_intercept=True,
        covariance="unstructured",
        link="logit",
        fit_intercept=True,
        n_quadrature_points=1,
        max_iter=1000,
        group_column=None,
    ):
        self.formula = formula
        self.random_slopes = random_slopes
        self.random_intercept = random_intercept
        self.covariance = covariance
        self.link = link
        self.fit_intercept = fit_intercept
        self.n_quadrature_points = n_quadrature_points
        self.max_iter = max_iter
        self.group_column = group_column

    def _link(self):
        return self.link

    def _check_target(self, y):
        """0/1 from two labels, or a proportion in [0, 1] (with trials)."""
        y, self.classes_, self._proportions = binary_target(y, type(self).__name__)
        return y

    def _counts_response(self, X, y, sample_weight):
        """glmer's ``cbind(successes, failures) ~ ...``: proportions and trials.

        The formula's right-hand side is fitted to ``successes / trials``
        with ``sample_weight`` times the trials (``trials = successes +
        failures``), which is the binomial model of the counts.
        """
        counts = cbind_response(self.formula)
        if counts is None:
            return self.formula, y, sample_weight
        if y is not None:
            raise ValueError(
                "with a cbind(successes, failures) response, y must be None: the "
                "formula gives the counts."
            )
        successes, failures, rhs = counts
        s, f = (evaluate_response(text, X) for text in (successes, failures))
        trials = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            proportion = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0)
        if sample_weight is not None:
            trials = trials * np.asarray(sample_weight, dtype=float)
        return "~" + rhs, proportion, trials

    def predict_proba(
        self, X, groups=None, random_effects="all", offset=None, marginal=True
    ):
        """Probabilities of ``classes_[0]`` and ``classes_[1]``.

        Parameters
        ----------
        X, groups, random_effects, offset :
            As for :meth:`MixedLinearRegressor.predict`.
        marginal : bool, default=True
            Average over the random effects a row's prediction does not
            know (unseen levels, factors left out): the calibrated
            probability for a new group.  False: those random effects at
            zero (glmer's ``re.form = NA``).

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
        """
        p = self._mean_prediction(X, groups, random_effects, offset, marginal)
        return np.column_stack([1.0 - p, p])

    def decision_function(self, X, groups=None, random_effects="all", offset=None):
        """The log-odds of ``classes_[1]``: :meth:`linear_predictor`."""
        return self.linear_predictor(X, groups, random_effects, offset)

    def predict_log_proba(
        self, X, groups=None, random_effects="all", offset=None, marginal=True
    ):
        """Logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X, groups, random_effects, offset, marginal)
        with np.errstate(divide="ignore"):
            return np.log(proba)

    def predict(self, X, groups=None, random_effects="all", offset=None):
        """The more probable class (:meth:`predict_proba` at least 0.5).

        None for a formula's rows missing a value the formula uses.
        """
        p = self._mean_prediction(X, groups, random_effects, offset, True)
        return labels_of(p, self.classes_)

    def score(self, X, y=None, groups=None, sample_weight=None, offset=None):
        """Accuracy of :meth:`predict` (with ``groups``: seen levels' effects).

        A formula model reads ``y`` from ``X`` when it is None and scores the
        rows with every value the formula uses.
        """
        p = self._mean_prediction(X, groups, "all", offset, True, unseen="kind")
        return accuracy(self._spec, X, y, p, self.classes_, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class MixedPoissonRegressor(RegressorMixin, _MixedGLM):
    """Mixed-effects Poisson regression (log link), as glmer's poisson.

    ``E[y] = exp(X beta + Z b + offset)`` with ``b ~ N(0, Sigma)`` per level
    of each grouping factor, fitted by maximum likelihood with the Laplace
    approximation (or adaptive quadrature) as lme4's ``glmer``.

    Parameters
    ----------
    formula, random_slopes, random_intercept, covariance, fit_intercept,
    group_column :
        As for :class:`MixedLinearRegressor`.
    link : {"log"}, default="log"
    n_quadrature_points : int, default=1
        As for :class:`MixedLogisticRegression`.
    max_iter : int, default=1000

    Attributes
    ----------
    As for :class:`MixedLogisticRegression` (on the log-mean scale), without
    ``classes_``.

    Notes
    -----
    ``sample_weight`` is an exposure when ``y`` is a rate (scikit-learn's
    ``PoissonRegressor`` convention): ``y = counts / exposure`` with
    ``sample_weight = exposure`` is the same fit, log-likelihood included,
    as counts with ``offset = log(exposure)`` (glmer's).

    ``predict`` for unseen levels (or without ``groups``) is the marginal
    mean ``exp(eta + v / 2)`` over the unknown random effects (``v`` their
    variance), the mean a new group has; ``marginal=False`` gives
    ``exp(eta)``, glmer's ``re.form = NA``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedPoissonRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(30), 20)
    >>> x = rng.normal(size=(600, 1))
    >>> y = rng.poisson(np.exp(1 + 0.3 * x[:, 0] + rng.normal(0, .5, 30)[groups]))
    >>> model = MixedPoissonRegressor().fit(x, y, groups=groups)
    >>> round(float(model.coef_[0]), 1)
    0.3
    """

    _family_name = "poisson"
    _parameter_constraints = {
        **_MixedGLM._parameter_constraints,
        "link": [Options("log")],
    }

    def __init__(
        self,
        *,
        formula=None,
        random_slopes=None,
        random_intercept=True,
        covariance="unstructured",
        link="log",
        fit_intercept=True,
        n_quadrature_points=1,
        max_iter=1000,
        group_column=None,
    ):
        self.formula = formula
        self.random_slopes = random_slopes
        self.random_intercept = random_intercept
        self.covariance = covariance
        self.link = link
        self.fit_intercept = fit_intercept
        self.n_quadrature_points = n_quadrature_points
        self.max_iter = max_iter
        self.group_column = group_column

    def _link(self):
        return self.link

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _check_target(self, y):
        return count_target(y, type(self).__name__)

    def predict(self, X, groups=None, random_effects="all", offset=None, marginal=True):
        """The expected count (rate), marginal over unknown random effects."""
        return self._mean_prediction(X, groups, random_effects, offset, marginal)

    def score(self, X, y=None, groups=None, sample_weight=None, offset=None):
        """D^2, the share of Poisson deviance explained (as ``PoissonRegressor``).

        A formula model reads ``y`` from ``X`` when it is None and scores the
        rows with every value the formula uses.
        """
        y_pred = self._mean_prediction(X, groups, "all", offset, True, unseen="kind")
        return poisson_d2(self._spec, X, y, y_pred, sample_weight)


def _standardized(X, fit_intercept):
    """``[1, (X - c) / s]`` (or ``X / s`` without intercept), for the optimiser."""
    n, p = X.shape
    center = X.mean(axis=0) if fit_intercept and n else np.zeros(p)
    scale = X.std(axis=0) if n else np.ones(p)
    if not fit_intercept:
        scale = np.sqrt((X * X).mean(axis=0)) if n else np.ones(p)
    scale = np.where(scale > 0, scale, 1.0)
    columns = (X - center) / scale
    if fit_intercept:
        columns = np.column_stack([np.ones(n), columns])
    return columns, center, scale


def _degenerate_fitted_values(family, eta, limit=SEPARATION_ETA):
    """Linear predictors that only separation reaches.

    Under (quasi-)complete separation the likelihood keeps rising as some
    linear predictors go to infinity, and the fit stops where the curve is
    flat to rounding.  No data put a log-odds (or probit, cloglog index)
    beyond +-30, nor a log-mean below -30, otherwise; a test on the fitted
    probabilities (R's glm.fit) would also flag the cloglog curve, which is
    within 1e-16 of 1 from eta = 3.6 on.
    """
    if family.name == "binomial":
        return bool(np.any(np.abs(eta) > limit))
    return bool(np.any(eta < -limit))


def _slope_scale(Z, factor):
    """Per term of a factor: 1 for the intercept, a slope column's RMS."""
    scale = [1.0] * factor.intercept
    for j in factor.slope_columns:
        column = dense_column(Z, j)
        rms = float(np.sqrt(np.mean(column * column))) if column.size else 0.0
        scale.append(rms if rms > 0 else 1.0)
    return np.asarray(scale)


def _independent_columns(columns, tol=RANK_TOLERANCE):
    """Indices of linearly independent columns, in order (R's ``qr``, tol 1e-7).

    A column is kept when the part of it the columns kept before it do not
    explain has a norm above ``tol`` times its own.  The residuals come from
    the triangular factor of a Householder QR (its columns have the data's
    geometry), by Gram-Schmidt with reorthogonalisation: accurate to rounding,
    where the cross-product matrix squares the condition number and, with as
    many columns as rows, keeps a dependent column whose IRLS system is then
    singular.
    """
    if columns.shape[1] == 0:
        return []
    (R,) = linalg.qr(columns, mode="r", check_finite=False)
    basis = np.zeros((R.shape[0], 0))
    kept = []
    for j in range(R.shape[1]):
        v = R[:, j].copy()
        norm = np.linalg.norm(v)
        if norm == 0:
            continue
        for _ in range(2):
            v -= basis @ (basis.T @ v)
        residual = np.linalg.norm(v)
        if residual > tol * norm:
            kept.append(j)
            basis = np.column_stack([basis, v / residual])
    return kept


def _unscaling(center, scale, fit_intercept):
    """``J`` with ``beta = J beta_scaled`` (inverse of :func:`_standardized`)."""
    p = scale.size
    if not fit_intercept:
        return np.diag(1.0 / scale)
    J = np.zeros((p + 1, p + 1))
    J[0, 0] = 1.0
    J[0, 1:] = -center / scale
    J[1:, 1:] = np.diag(1.0 / scale)
    return J


def _theta_names(factors):
    names = []
    for f in factors:
        rows, cols = lower_indices(f.n_terms, f.diagonal)
        for r, c in zip(rows, cols):
            if r == c:
                names.append(f"{f.name}.{f.term_names[r]}")
            else:
                names.append(f"{f.name}.{f.term_names[r]}.{f.term_names[c]}")
    return names


def cbind_response(formula):
    """``(successes, failures, right-hand side)`` of ``cbind(s, f) ~ ...``.

    None when the response is not a ``cbind``.
    """
    lhs, tilde, rhs = formula.partition("~")
    match = re.fullmatch(r"\s*cbind\s*\((.*)\)\s*", lhs)
    if not tilde or match is None:
        return None
    parts, depth, start, inside = [], 0, 0, match.group(1)
    for i, char in enumerate(inside):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inside[start:i])
            start = i + 1
    parts.append(inside[start:])
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(
            f"cbind() in the response takes two counts, successes and failures; "
            f"got {lhs.strip()!r}."
        )
    return parts[0].strip(), parts[1].strip(), rhs


def evaluate_response(text, X):
    """A response expression (``size - incidence``) evaluated on the rows of X."""
    frame = formula_frame(X)
    matrices = FormulaMatrices.fit(parse_formula(f"{text} ~ 1"), frame)
    return matrices.response(frame)
