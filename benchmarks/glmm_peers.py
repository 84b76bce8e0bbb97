"""How each package fits a GLMM scenario, and the Laplace log-likelihood at
its estimates.

Estimates are reported in the layout of ``peers.py`` (``fixef``, ``sd``,
``cor``, ``converged``; ``sigma`` is NaN, there is none) with ``loglik``, the
package's own log-likelihood (None when it reports none comparable: the
variational fit of statsmodels). :func:`laplace_loglik` evaluates glmer's
Laplace log-likelihood (``nAGQ = 1``) at any package's estimates with
skmixed's PIRLS, so that every fit is judged by the same criterion.

Each Python package has ``prepare(scenario, data)`` (import, inputs: not
timed), ``fit(inputs)`` (the one timed call) and ``estimates(result)``, as in
``peers.py``, whose :class:`peers.PythonPeer` they fill. lme4's ``glmer`` runs
in ``Rscript`` (``glmer_fit.R``).
"""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
from glmm_scenarios import GlmmScenario
from peers import PythonPeer, covariance_entries, layout

PACKAGES = ("skmixed", "skmixed_diag", "statsmodels", "mixedlm", "gpboost", "lme4")
IMPORTS = {
    "skmixed": "from skmixed import MixedLogisticRegression",
    "skmixed_diag": "from skmixed import MixedLogisticRegression",
    "statsmodels": "from statsmodels.genmod.bayes_mixed_glm import "
    "BinomialBayesMixedGLM",
    "mixedlm": "from mixedlm import glmer",
    "gpboost": "from gpboost import GPModel",
    "lme4": "",
}
# The import probe imports the package by this name.
MODULES = {"skmixed_diag": "skmixed"}


def glmm_layout(fixef, sd, cor, loglik, converged, **extra):
    loglik = None if loglik is None else float(loglik)
    return layout(fixef, sd, cor, math.nan, None, converged, loglik=loglik, **extra)


def _frame_inputs(scenario: GlmmScenario, data):
    import pandas as pd

    n = data["y"].size
    X = pd.DataFrame({c: data[c] for c in scenario.fixed}, index=pd.RangeIndex(n))
    groups = pd.DataFrame({f: data[f] for f in scenario.factors})
    offset = data[scenario.offset] if scenario.offset else None
    return X, groups, offset


# --------------------------------------------------------------------- skmixed


def skmixed_estimator(scenario: GlmmScenario, covariance="unstructured"):
    from skmixed import MixedLogisticRegression, MixedPoissonRegressor

    slopes = {f: s for f, s in scenario.factors.items() if s} or None
    if scenario.family == "poisson":
        return MixedPoissonRegressor(random_slopes=slopes, covariance=covariance)
    return MixedLogisticRegression(random_slopes=slopes, covariance=covariance)


def skmixed_prepare(scenario: GlmmScenario, data, covariance="unstructured"):
    X, groups, offset = _frame_inputs(scenario, data)
    return skmixed_estimator(scenario, covariance), X, data["y"], groups, offset


def skmixed_diag_prepare(scenario: GlmmScenario, data):
    """The uncorrelated model ``(1 | g) + (0 + x1 | g)``: what GPBoost and
    statsmodels fit, for a like-for-like comparison."""
    return skmixed_prepare(scenario, data, covariance="diagonal")


def skmixed_fit(inputs):
    model, X, y, groups, offset = inputs
    return model.fit(X, y, groups=groups, offset=offset)


def skmixed_estimates(model):
    sd, cor = {}, {}
    for factor, cov in model.random_effects_cov_.items():
        s, c = covariance_entries(factor, list(cov.columns), cov.to_numpy())
        sd.update(s)
        cor.update(c)
    cor = {k: v for k, v in cor.items() if v == v}  # diagonal: NaN, none fitted
    if model.covariance == "diagonal":
        cor = {k: 0.0 for k in cor}
    return glmm_layout(
        model.fixed_effects_.to_dict(), sd, cor, model.loglik_, model.converged_
    )


# ----------------------------------------------------------------- statsmodels


def statsmodels_prepare(scenario: GlmmScenario, data):
    """Random intercepts and slopes as independent variance components: the
    columns of ``exog_vc`` are one indicator per group (``ident`` 0) and, per
    slope, the covariate on that group's rows (``ident`` 1, ...), built
    sparse (``from_formula`` would build them dense)."""
    from scipy import sparse
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    if scenario.family != "binomial":
        raise ValueError("only the binomial family is benchmarked for statsmodels")
    n = data["y"].size
    (factor, slopes), *rest = scenario.factors.items()
    if rest:
        raise ValueError("one grouping factor only")
    codes = data[factor]
    m = int(codes.max()) + 1
    blocks, ident = [], []
    for k, column in enumerate([None, *slopes]):
        values = np.ones(n) if column is None else data[column]
        blocks.append(sparse.csr_array((values, (np.arange(n), codes)), shape=(n, m)))
        ident += [k] * m
    exog_vc = sparse.hstack(blocks, format="csr")
    exog = np.column_stack([np.ones(n), *(data[c] for c in scenario.fixed)])
    model = BinomialBayesMixedGLM(
        data["y"],
        exog,
        exog_vc,
        np.array(ident),
        fep_names=["Intercept", *scenario.fixed],
        vcp_names=[f"{factor}:{t}" for t in ["Intercept", *slopes]],
    )
    return model


def statsmodels_fit(model):
    return model.fit_vb()


def statsmodels_estimates(result):
    """Posterior means of the variational approximation: the fixed effects,
    and the SDs as ``exp`` of the posterior means of the log SDs."""
    model = result.model
    fixef = dict(zip(model.fep_names, result.fe_mean))
    sd = {n: math.exp(v) for n, v in zip(model.vcp_names, result.vcp_mean)}
    cor = {}
    if len(model.vcp_names) == 2:
        intercept, slope = model.vcp_names
        cor = {f"{intercept}:{slope.split(':')[1]}": 0.0}
    retvals = result.optim_retvals
    return glmm_layout(fixef, sd, cor, None, bool(retvals.success))


# --------------------------------------------------------------------- mixedlm


def mixedlm_prepare(scenario: GlmmScenario, data):
    import pandas as pd
    from mixedlm import families, glmer, glmerControl

    frame = pd.DataFrame(data)
    family = families.Poisson() if scenario.family == "poisson" else None
    family = family or families.Binomial()
    offset = data[scenario.offset] if scenario.offset else None
    return glmer, scenario.formula, frame, family, offset, glmerControl()


def mixedlm_fit(inputs):
    glmer, formula, frame, family, offset, control = inputs
    return glmer(formula, frame, family=family, offset=offset, control=control)


def mixedlm_estimates(result):
    sd, cor = {}, {}
    for factor, group in result.VarCorr().groups.items():
        s, c = covariance_entries(factor, list(group.term_names), group.cov)
        sd.update(s)
        cor.update(c)
    return glmm_layout(result.fixef(), sd, cor, result.logLik().value, result.converged)


# --------------------------------------------------------------------- gpboost


def gpboost_prepare(scenario: GlmmScenario, data):
    """Grouping codes, the slopes as random coefficients of their factor
    (independent of its intercept: GPBoost has no correlation between them),
    X with an explicit intercept, the offset."""
    import gpboost

    factors = list(scenario.factors)
    likelihood = "poisson" if scenario.family == "poisson" else "bernoulli_logit"
    columns = {
        "group_data": np.column_stack([data[f] for f in factors]),
        "likelihood": likelihood,
    }
    slopes = [(k + 1, s) for k, f in enumerate(factors) for s in scenario.factors[f]]
    if slopes:
        columns["group_rand_coef_data"] = np.column_stack([data[s] for _, s in slopes])
        columns["ind_effect_group_rand_coef"] = [k for k, _ in slopes]
    n = data["y"].size
    X = np.column_stack([np.ones(n), *(data[c] for c in scenario.fixed)])
    offset = data[scenario.offset] if scenario.offset else None
    names = (factors, [f"{factors[k - 1]}:{s}" for k, s in slopes], scenario.fixed)
    return gpboost.GPModel, columns, data["y"], X, offset, names


def gpboost_fit(inputs):
    """Building the model and the fit are both timed (as in ``peers.py``)."""
    GPModel, columns, y, X, offset, names = inputs
    return GPModel(**columns).fit(y=y, X=X, offset=offset), names


def gpboost_estimates(outcome):
    """The variances of the intercepts in ``group_data`` order, then of the
    random coefficients (no error variance for these likelihoods)."""
    model, (factors, coefficients, fixed) = outcome
    cov = model.get_cov_pars(format_pandas=False).ravel()
    coef = model.get_coef(format_pandas=False).ravel()
    names = [f"{f}:Intercept" for f in factors] + coefficients
    sd = {n: math.sqrt(max(v, 0.0)) for n, v in zip(names, cov)}
    cor = {f"{c.split(':')[0]}:Intercept:{c.split(':')[1]}": 0.0 for c in coefficients}
    fixef = dict(zip(["Intercept", *fixed], coef))
    maxit = model.params["maxit"]  # -999: GPBoost's default, 1000
    converged = model._get_num_optim_iter() < (1000 if maxit == -999 else maxit)
    # GPBoost's own Laplace approximation of the log-likelihood.
    loglik = -model.get_current_neg_log_likelihood()
    return glmm_layout(fixef, sd, cor, loglik, converged)


PYTHON_PEERS = {
    "skmixed": PythonPeer(skmixed_prepare, skmixed_fit, skmixed_estimates),
    "skmixed_diag": PythonPeer(skmixed_diag_prepare, skmixed_fit, skmixed_estimates),
    "statsmodels": PythonPeer(
        statsmodels_prepare, statsmodels_fit, statsmodels_estimates
    ),
    "mixedlm": PythonPeer(mixedlm_prepare, mixedlm_fit, mixedlm_estimates),
    "gpboost": PythonPeer(gpboost_prepare, gpboost_fit, gpboost_estimates),
}


# ------------------------------------------- the Laplace log-likelihood, anyone's


class _CapturedRowsError(Exception):
    pass


def laplace_rows(scenario: GlmmScenario, data):
    """skmixed's ``Rows`` for the scenario's data, with the fixed-effect and
    random-effect columns unscaled (intercept, then ``scenario.fixed``; the
    slopes as they are), so that any package's ``beta`` and ``Sigma`` apply
    as they are.

    The rows are those skmixed's own ``fit`` builds (it is stopped just
    before its optimisation).
    """
    import dataclasses

    model, X, y, groups, offset = skmixed_prepare(scenario, data)

    def stop(rows, *args, **kwargs):
        raise _CapturedRowsError(rows)

    with mock.patch("skmixed._glmm.fit_glmm", stop):
        try:
            model.fit(X, y, groups=groups, offset=offset)
        except _CapturedRowsError as captured:
            rows = captured.args[0]
    n = data["y"].size
    design = np.column_stack([np.ones(n), *(data[c] for c in scenario.fixed)])
    # The random-effect columns as the data has them too (skmixed fits slopes
    # per unit of their RMS): None for an intercept, then the slopes.
    Zs = [
        [None] * f.intercept + [np.asarray(data[s], dtype=float) for s in terms]
        for f in rows.factors
        for terms in [scenario.factors[f.name]]
    ]
    return dataclasses.replace(rows, X=np.ascontiguousarray(design), Zs=Zs)


def covariance(estimates, factor, terms):
    """A factor's random-effect covariance from the reported SDs and
    correlations (a correlation not reported is 0)."""
    names = ["Intercept", *terms]
    sd = np.array([estimates["sd"][f"{factor}:{t}"] for t in names])
    corr = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i):
            value = estimates["cor"].get(f"{factor}:{names[j]}:{names[i]}", 0.0)
            corr[i, j] = corr[j, i] = value
    return corr * np.outer(sd, sd)


def laplace_loglik(rows, scenario: GlmmScenario, estimates) -> float:
    """glmer's Laplace log-likelihood at a package's (Sigma, beta).

    The conditional modes are found by skmixed's PIRLS at the package's
    theta with beta held (glmer's second stage), the deviance is
    ``-2 log p(y | u) + |u|^2 + log |L|^2`` with all constants.
    """
    from skmixed._covariance import factor_to_theta, semidefinite_cholesky
    from skmixed._pirls import laplace_deviance, pirls

    theta = []
    for f in rows.factors:
        # No residual scale in these families: theta is the lower triangle
        # of Sigma's Cholesky factor itself.
        T = semidefinite_cholesky(
            covariance(estimates, f.name, scenario.factors[f.name])
        )
        theta.append(factor_to_theta(T, f.diagonal))
    beta = np.array(
        [estimates["fixef"][n] for n in ["Intercept", *scenario.fixed]], dtype=float
    )
    modes = pirls(rows, np.concatenate(theta), beta)
    return -0.5 * laplace_deviance(modes)
