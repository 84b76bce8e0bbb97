"""The GLMM estimators against lme4's glmer on the nine cases of tests/data/glmer.

The references were fitted with tight controls (``tolPwrss = 1e-10``, bobyqa
``rhoend = 1e-10``), so the optimum is known to about 1e-6 in the
parameters.  What is asserted, and why:

- the log-likelihood at or above glmer's (1e-6 relative): we never stop at a
  worse optimum (for probit and cloglog lme4's own loglik is off the exact
  Laplace value by up to ~2e-5, hence relative, not absolute);
- fixed effects within 1 % of their standard error, random-effect SDs within
  1 % (relative), conditional modes within 1 % of their conditional SD: an
  error that size is invisible beside the uncertainty of the estimate;
- standard errors within 1 %: lme4's come from second differences of its
  deviance (``deriv12``, step 1e-4, on a deviance known to about 1e-10),
  ours from differences of the exact gradient in other coordinates (the
  fixed effects of standardised columns), so they agree to the error of
  those differences; measured, the worst cases are 0.37 % (contraception,
  where lme4 warns of a very large eigenvalue from the scale of age^2) and
  0.30 % (verbagg), the others under 0.2 %.  (With second differences of
  the deviance, step 1e-4, our grouseticks SEs were 0.74 % off: the PIRLS
  noise divided by the squared step.)
- Wald intervals within 3 % of the SE: an endpoint is ``beta +- 1.96 SE``,
  so its error is at most 1 % + 1.96 x 1 % of an SE.
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from tests._glmm_data import GLMER_CASES, fitted_glmer_case, load_glmer_case

LOGLIK_RTOL = 1e-6
SE_RTOL = 0.01


@pytest.fixture(params=GLMER_CASES)
def fitted(request):
    return fitted_glmer_case(request.param)


def _fixef(case):
    ref = case.fit_ref
    return pd.Series(ref["fixef"]), pd.Series(ref["fixef_se"])


def test_loglik_at_or_above_glmer(fitted):
    case, model = fitted
    reference = case.loglik
    assert model.loglik_ >= reference - LOGLIK_RTOL * abs(reference)
    # ... and not far above: the same optimum, not a different model.
    assert model.loglik_ <= reference + 1e-5 * abs(reference)
    assert model.converged_
    assert model.is_singular_ == case.fit_ref["is_singular"]
    # A clean fit: no convergence or singularity warning (lme4's
    # contraception fit warns of a large eigenvalue; ours, on standardised
    # columns, does not).
    assert case.fit_warnings == []


def test_fixed_effects_within_one_percent_of_their_se(fitted):
    case, model = fitted
    fixef, se = _fixef(case)
    assert list(model.fixed_effects_.index) == list(fixef.index)
    error = (model.fixed_effects_ - fixef).abs() / se
    assert error.max() < 0.01, error
    assert model.intercept_ == model.fixed_effects_["Intercept"]
    assert_allclose(model.coef_, model.fixed_effects_.to_numpy()[1:])


def test_standard_errors_and_vcov_close_to_glmer(fitted):
    case, model = fitted
    _, se = _fixef(case)
    ours = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    assert_allclose(ours, se.to_numpy(), rtol=SE_RTOL)
    # The whole matrix, on the correlation scale too.
    vcov = np.asarray(case.fit_ref["vcov"], dtype=float)
    cov = model.fixed_effects_cov_.to_numpy()
    assert_allclose(cov, cov.T)
    assert_allclose(cov / np.outer(ours, ours), vcov / np.outer(se, se), atol=0.01)


def test_random_effect_sds_and_correlations(fitted):
    case, model = fitted
    reference = case.random_reference()
    assert set(model.random_effects_cov_) == set(reference)
    for group, ref in reference.items():
        Sigma = model.random_effects_cov_[group]
        assert list(Sigma.columns) == ref["terms"]
        sd = np.sqrt(np.diag(Sigma.to_numpy()))
        assert_allclose(sd, ref["sd"], rtol=0.01)
        assert_allclose(Sigma.to_numpy() / np.outer(sd, sd), ref["corr"], atol=0.01)


def test_conditional_modes_within_one_percent_of_their_sd(fitted):
    case, model = fitted
    for group, ref in case.random_reference().items():
        modes = model.random_effects_[group]
        assert sorted(modes.index) == sorted(ref["levels"])
        modes = modes.loc[ref["levels"], ref["terms"]].to_numpy()
        error = np.abs(modes - ref["ranef"]) / ref["condsd"]
        assert error.max() < 0.01, (group, error.max())
        cond_sd = model.random_effects_cond_sd_[group].loc[ref["levels"]]
        assert_allclose(cond_sd.to_numpy(), ref["condsd"], rtol=0.01)
        # The conditional covariances hold those SDs on their diagonal.
        cov = model.random_effects_cond_cov_[group]
        order = [
            list(model.random_effects_[group].index).index(v) for v in ref["levels"]
        ]
        assert_allclose(
            np.sqrt(np.diagonal(cov[order], axis1=1, axis2=2)), cond_sd.to_numpy()
        )


def test_criteria_consistent_and_as_glmer(fitted):
    case, model = fitted
    ref = case.fit_ref
    n_params = ref["df"]
    n = ref["nobs"]
    assert model.deviance_ == pytest.approx(-2.0 * model.loglik_, rel=1e-14)
    assert model.aic_ == pytest.approx(model.deviance_ + 2 * n_params, rel=1e-14)
    assert model.bic_ == pytest.approx(
        model.deviance_ + np.log(n) * n_params, rel=1e-14
    )
    assert model.df_resid_ == ref["df_resid"] == n - n_params
    # lme4's AIC/BIC leave out the saturated log-likelihood for nAGQ > 1.
    saturated = ref.get("saturated_loglik", 0.0)
    assert_allclose(model.aic_, ref["aic"] - 2 * saturated, rtol=LOGLIK_RTOL)
    assert_allclose(model.bic_, ref["bic"] - 2 * saturated, rtol=LOGLIK_RTOL)


def test_fitted_values_and_linear_predictor(fitted):
    case, model = fitted
    ref = case.fit_ref
    eta_ref = np.asarray(ref["linear_predictor"])
    assert_allclose(model.fitted_values_, ref["fitted"], rtol=1e-3)
    assert_allclose(model.fitted_linear_predictor_, eta_ref, atol=1e-3)
    eta = model.linear_predictor(case.X, case.groups, offset=case.offset)
    assert_allclose(eta, model.fitted_linear_predictor_, rtol=1e-10, atol=1e-10)
    if case.estimator_class.__name__ == "MixedLogisticRegression":
        proba = model.predict_proba(case.X, case.groups, offset=case.offset)
        assert_allclose(proba[:, 1], model.fitted_values_, rtol=1e-10)
        assert_allclose(proba.sum(axis=1), 1.0)
    else:
        mean = model.predict(case.X, case.groups, offset=case.offset)
        assert_allclose(mean, model.fitted_values_, rtol=1e-10)


def _unknown_variance(case, model):
    """Per row, Var(z'b) summed over factors: z = (1, slope columns)."""
    variance = np.zeros(len(case.frame))
    for random in case.spec["random"]:
        Sigma = model.random_effects_cov_[random["group"]].to_numpy()
        Z = np.column_stack(
            [
                np.ones(len(case.frame)) if c == "Intercept" else case.frame[c]
                for c in random["columns"]
            ]
        )
        variance += np.einsum("ni,ij,nj->n", Z, Sigma, Z)
    return variance


def test_population_prediction_is_predict_re0(fitted):
    case, model = fitted
    ref = case.fit_ref
    kwargs = dict(random_effects="none", offset=case.offset)
    eta = model.linear_predictor(case.X, **kwargs)
    assert_allclose(eta, ref["predict_re0_link"], atol=1e-3)
    if case.estimator_class.__name__ == "MixedLogisticRegression":
        mean = model.predict_proba(case.X, marginal=False, **kwargs)[:, 1]
        marginal = model.predict_proba(case.X, **kwargs)[:, 1]
    else:
        mean = model.predict(case.X, marginal=False, **kwargs)
        marginal = model.predict(case.X, **kwargs)
    assert_allclose(mean, ref["predict_re0"], rtol=1e-3)
    # marginal=True integrates over b ~ N(0, Sigma): brute force, the
    # trapezoidal rule on a fine grid (exponentially accurate here).
    sd = np.sqrt(_unknown_variance(case, model))
    nodes = np.linspace(-9.0, 9.0, 721)
    weights = stats.norm.pdf(nodes)
    link = model._family.link
    expected = (
        link.inverse(eta[:, None] + sd[:, None] * nodes) @ weights / weights.sum()
    )
    assert_allclose(marginal, expected, rtol=1e-8, atol=1e-12)
    if case.spec["link"] in ("logit", "probit"):  # symmetric: toward 1/2
        assert np.all(np.abs(marginal - 0.5) <= np.abs(mean - 0.5))
    if case.spec["link"] == "log":  # the lognormal mean exceeds the median
        assert np.all(marginal > mean)


def test_wald_intervals(fitted):
    case, model = fitted
    ref = case.fit_ref["wald_ci"]
    _, se = _fixef(case)
    ci = model.confint().loc[ref["names"]]  # the fixed effects' rows
    assert np.all(np.abs(ci["lower"].to_numpy() - ref["lower"]) < 0.03 * se.to_numpy())
    assert np.all(np.abs(ci["upper"].to_numpy() - ref["upper"]) < 0.03 * se.to_numpy())
    # Our own interval is estimate +- z SE exactly, for any level.
    ours = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    ci90 = model.confint(level=0.9).loc[ref["names"]]
    z = stats.norm.ppf(0.95)
    assert_allclose(ci90["upper"] - model.fixed_effects_, z * ours)
    assert_allclose(model.fixed_effects_ - ci90["lower"], z * ours)


def test_bernoulli_rows_equal_aggregated_binomial():
    """cbpp: 842 animals or 56 herd-periods, the same fit up to lchoose."""
    case_b, binomial = fitted_glmer_case("cbpp_binomial")
    case_r, bernoulli = fitted_glmer_case("cbpp_bernoulli")
    constant = case_r.spec["binomial_constant"]
    assert constant == pytest.approx(185.4757, abs=1e-4)
    assert bernoulli.loglik_ == pytest.approx(binomial.loglik_ - constant, abs=1e-7)
    assert_allclose(
        bernoulli.fixed_effects_, binomial.fixed_effects_, rtol=1e-5, atol=1e-6
    )
    assert_allclose(bernoulli.theta_, binomial.theta_, rtol=1e-5)
    assert_allclose(
        bernoulli.random_effects_["herd"],
        binomial.random_effects_["herd"].loc[bernoulli.random_effects_["herd"].index],
        atol=1e-5,
    )
    # The constant is glmer's, computed from the binomial rows.
    assert binomial._rows.log_constant == pytest.approx(constant, rel=1e-12)
    assert bernoulli._rows.log_constant == 0.0


def test_quadrature_table():
    """cbpp with nAGQ = 1, 3, 5, 9, 25: loglik, fixef and theta as glmer's."""
    case = load_glmer_case("cbpp_binomial")
    rows = case.spec["nagq_table"]
    logliks = []
    for row in rows:
        model = case.fit(n_quadrature_points=int(row["nAGQ"]))
        reference = row["loglik"]
        assert model.loglik_ >= reference - LOGLIK_RTOL * abs(reference), row["nAGQ"]
        assert model.loglik_ == pytest.approx(reference, rel=1e-7)
        fixef = pd.Series(row["fixef"])
        assert_allclose(model.fixed_effects_[fixef.index], fixef, atol=1e-4)
        assert_allclose(model.theta_, row["theta"], rtol=1e-4)
        logliks.append(model.loglik_)
    # The quadrature converges: each rule is closer to the 25-point value.
    distance = np.abs(np.array(logliks[:-1]) - logliks[-1])
    assert np.all(np.diff(distance) < 0), distance
    assert distance[-1] < 1e-5
