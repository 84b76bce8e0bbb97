"""How each package fits a scenario, and its estimates in one layout.

Estimates are reported by every package as a dict: ``fixef`` (name ->
value, ``Intercept`` first), ``sd`` (``factor:term`` -> random-effect SD),
``cor`` (``factor:term1:term2`` -> correlation), ``sigma``, ``objective``
(lme4's REML criterion) and ``converged`` (the package's own flag).
GPBoost fits by maximum likelihood only: its ``objective`` is None and
``ml_objective`` holds its deviance (-2 log-likelihood, lme4's ``deviance()``).

Each Python package has ``prepare(scenario, data)``, which imports it and
builds its inputs (not timed), ``fit(inputs)``, the one timed call, and
``estimates(result)``. lme4 runs in ``Rscript`` (``lme4_fit.R``); its ``ml``
mode fits by ML, the reference for GPBoost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from harness import R_SCRIPT
from scenarios import Scenario

PACKAGES = (
    "skmixed",
    "skmixed-cholesky",
    "statsmodels",
    "mixedlm",
    "gpboost",
    "gpboost-cholesky",
    "lme4",
)
IMPORTS = {
    "skmixed": "from skmixed import MixedLinearRegressor",
    "skmixed-cholesky": "from skmixed import MixedLinearRegressor",
    "statsmodels": "from statsmodels.regression.mixed_linear_model import MixedLM",
    "mixedlm": "from mixedlm import lmer",
    "gpboost": "from gpboost import GPModel",
    "gpboost-cholesky": "from gpboost import GPModel",
    "lme4": "",
}


def term(name: str) -> str:
    return "Intercept" if name in ("(Intercept)", "Intercept", "const") else name


def layout(fixef, sd, cor, sigma, objective=None, converged=None, **extra):
    return {
        "fixef": {term(k): float(v) for k, v in fixef.items()},
        "sd": {k: float(v) for k, v in sd.items()},
        "cor": {k: float(v) for k, v in cor.items()},
        "sigma": float(sigma),
        "objective": None if objective is None else float(objective),
        "converged": None if converged is None else bool(converged),
        **extra,
    }


def covariance_entries(factor: str, names: list[str], cov) -> tuple[dict, dict]:
    """SDs and correlations of one factor's covariance matrix, named."""
    cov = np.asarray(cov, dtype=float)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    names = [term(n) for n in names]
    sds = {f"{factor}:{n}": s for n, s in zip(names, sd)}
    cors = {
        f"{factor}:{names[j]}:{names[i]}": cov[i, j] / (sd[i] * sd[j])
        if sd[i] * sd[j] > 0
        else math.nan
        for i in range(len(names))
        for j in range(i)
    }
    return sds, cors


# --------------------------------------------------------------------- skmixed


def skmixed_prepare(scenario: Scenario, data, solver="auto"):
    """``solver="auto"`` (skmixed) or ``"cholesky"`` (skmixed-cholesky, the
    exact path whatever the size); the Krylov path's probes from seed 0."""
    import pandas as pd

    from skmixed import MixedLinearRegressor

    n = data["y"].size
    X = pd.DataFrame({c: data[c] for c in scenario.fixed}, index=pd.RangeIndex(n))
    groups = pd.DataFrame({f: data[f] for f in scenario.factors})
    slopes = {f: s for f, s in scenario.factors.items() if s} or None
    model = MixedLinearRegressor(random_slopes=slopes, solver=solver, random_state=0)
    return model, X, data["y"], groups


def skmixed_fit(inputs):
    model, X, y, groups = inputs
    return model.fit(X, y, groups=groups)


def skmixed_estimates(model):
    sd, cor = {}, {}
    for factor, cov in model.random_effects_cov_.items():
        s, c = covariance_entries(factor, list(cov.columns), cov.to_numpy())
        sd.update(s)
        cor.update(c)
    return layout(
        model.fixed_effects_.to_dict(),
        sd,
        cor,
        model.sigma_,
        model.objective_,
        model.converged_,
        solver=model.solver_,
    )


# ----------------------------------------------------------------- statsmodels


def statsmodels_group(scenario: Scenario) -> str | None:
    """The factor statsmodels can group by: the only one, or the one all the
    others (random intercepts only) are nested in. None when crossed."""
    for outer in scenario.factors:
        others = [f for f in scenario.factors if f != outer]
        if all(
            scenario.nested_in.get(f) == outer and not scenario.factors[f]
            for f in others
        ):
            return outer
    return None


def statsmodels_prepare(scenario: Scenario, data):
    """One factor: the array API. A factor with others nested in it: groups
    by it, the nested ones as variance components within its groups. Crossed
    factors: one dummy group whose variance components are the factors
    (statsmodels' only way to cross them)."""
    import pandas as pd
    from statsmodels.regression.mixed_linear_model import MixedLM

    frame = pd.DataFrame(data)
    exog = pd.DataFrame({"Intercept": np.ones(len(frame))})
    for column in scenario.fixed:
        exog[column] = frame[column]
    fixed = " + ".join(scenario.fixed) or "1"
    outer = statsmodels_group(scenario)
    if outer is not None and len(scenario.factors) == 1:
        exog_re = exog[["Intercept", *scenario.factors[outer]]]
        model = MixedLM(frame["y"], exog, groups=frame[outer], exog_re=exog_re)
        return model, outer
    if outer is not None:
        slopes = scenario.factors[outer]
        vc = {f: f"0 + C({f})" for f in scenario.factors if f != outer}
        model = MixedLM.from_formula(
            f"y ~ {fixed}",
            groups=outer,
            re_formula=" + ".join(["1", *slopes]),
            vc_formula=vc,
            data=frame,
        )
        return model, outer
    frame["one"] = 1
    vc = {f: f"0 + C({f})" for f in scenario.factors}
    model = MixedLM.from_formula(
        f"y ~ {fixed}", groups="one", re_formula="0", vc_formula=vc, data=frame
    )
    return model, None


def statsmodels_fit(inputs):
    model, factor = inputs
    return model.fit(reml=True), factor


def statsmodels_estimates(outcome):
    result, factor = outcome
    sd, cor = {}, {}
    if factor is not None:
        cov = result.cov_re
        names = ["Intercept", *list(cov.columns)[1:]]  # statsmodels: "Group"
        sd, cor = covariance_entries(factor, names, cov.to_numpy())
    if result.model.exog_vc is not None:
        names = result.model.exog_vc.names
        sd.update(
            {
                f"{n}:Intercept": math.sqrt(max(v, 0.0))
                for n, v in zip(names, result.vcomp)
            }
        )
    # statsmodels' REML log-likelihood has lme4's constants: -2 llf = REMLcrit.
    return layout(
        result.fe_params.to_dict(),
        sd,
        cor,
        math.sqrt(result.scale),
        -2.0 * result.llf,
        result.converged,
    )


# --------------------------------------------------------------------- mixedlm


def mixedlm_prepare(scenario: Scenario, data):
    import pandas as pd
    from mixedlm import lmer

    return lmer, scenario.formula, pd.DataFrame(data)


def mixedlm_fit(inputs):
    lmer, formula, frame = inputs
    return lmer(formula, frame, REML=True)


def mixedlm_estimates(result):
    sd, cor = {}, {}
    for factor, group in result.VarCorr().groups.items():
        s, c = covariance_entries(factor, list(group.term_names), group.cov)
        sd.update(s)
        cor.update(c)
    return layout(
        result.fixef(), sd, cor, result.sigma, result.REMLcrit(), result.converged
    )


# --------------------------------------------------------------------- gpboost


def gpboost_prepare(scenario: Scenario, data, method="iterative"):
    """Grouping codes, random-coefficient covariates (each tied to its factor
    by ``ind_effect_group_rand_coef``) and X with an explicit intercept.

    ``method`` is GPBoost's ``matrix_inversion_method``: ``"iterative"``
    (gpboost: conjugate gradients and stochastic Lanczos, its default for
    several grouped random effects) or ``"cholesky"`` (gpboost-cholesky)."""
    import gpboost

    factors = list(scenario.factors)
    columns = {
        "group_data": np.column_stack([data[f] for f in factors]),
        "likelihood": "gaussian",
        "matrix_inversion_method": method,
    }
    slopes = [(k + 1, s) for k, f in enumerate(factors) for s in scenario.factors[f]]
    if slopes:
        columns["group_rand_coef_data"] = np.column_stack([data[s] for _, s in slopes])
        columns["ind_effect_group_rand_coef"] = [k for k, _ in slopes]
    n = data["y"].size
    X = np.column_stack([np.ones(n), *(data[c] for c in scenario.fixed)])
    names = (factors, [f"{factors[k - 1]}:{s}" for k, s in slopes], scenario.fixed)
    return gpboost.GPModel, columns, data["y"], X, names


def gpboost_fit(inputs):
    """Building the model (its random-effect structures) and the ML fit are
    both timed: lmer's timed call also builds its model."""
    GPModel, columns, y, X, names = inputs
    return GPModel(**columns).fit(y=y, X=X), names


def gpboost_estimates(outcome):
    """Error variance first, then the intercepts' variances in ``group_data``
    order, then the random coefficients'; no correlations (there are none)."""
    model, (factors, coefficients, fixed) = outcome
    cov = model.get_cov_pars(format_pandas=False)
    coef = model.get_coef(format_pandas=False).ravel()
    names = [f"{f}:Intercept" for f in factors] + coefficients
    sd = {n: math.sqrt(max(v, 0.0)) for n, v in zip(names, cov[1:])}
    fixef = dict(zip(["Intercept", *fixed], coef))
    maxit = model.params["maxit"]  # -999: GPBoost's default, 1000
    converged = model._get_num_optim_iter() < (1000 if maxit == -999 else maxit)
    # GPBoost has no REML: its criterion is the ML deviance, -2 log-likelihood,
    # by default approximated (CG and stochastic Lanczos for the determinant).
    deviance = 2.0 * model.get_current_neg_log_likelihood()
    return layout(
        fixef, sd, {}, math.sqrt(cov[0]), None, converged, ml_objective=deviance
    )


def gpboost_exact_deviance(scenario: Scenario, data, estimates) -> float:
    """The exact ML deviance at GPBoost's estimates, by Cholesky factorisation.

    GPBoost's own value (``ml_objective``) comes from its default iterative
    methods, whose log-determinant is a stochastic estimate (off by about 2 on
    ``insteval``); this one has lme4's ``deviance()`` constants. It runs in the
    parent process, so that it adds nothing to the fit's time or memory.
    """
    GPModel, columns, y, X, (factors, coefficients, fixed) = gpboost_prepare(
        scenario, data, method="cholesky"
    )
    model = GPModel(**columns, num_parallel_threads=1)
    names = [f"{f}:Intercept" for f in factors] + coefficients
    sd = [estimates["sigma"]] + [estimates["sd"][n] for n in names]
    beta = np.array([estimates["fixef"][n] for n in ["Intercept", *fixed]])
    nll = model.neg_log_likelihood(cov_pars=np.square(sd), y=y, fixed_effects=X @ beta)
    return 2.0 * nll


# ------------------------------------------------------------------------ who


@dataclass(frozen=True)
class PythonPeer:
    prepare: Callable[[Scenario, dict[str, np.ndarray]], Any]
    fit: Callable[[Any], Any]
    estimates: Callable[[Any], dict[str, Any]]


PYTHON_PEERS = {
    "skmixed": PythonPeer(skmixed_prepare, skmixed_fit, skmixed_estimates),
    "skmixed-cholesky": PythonPeer(
        partial(skmixed_prepare, solver="cholesky"), skmixed_fit, skmixed_estimates
    ),
    "statsmodels": PythonPeer(
        statsmodels_prepare, statsmodels_fit, statsmodels_estimates
    ),
    "mixedlm": PythonPeer(mixedlm_prepare, mixedlm_fit, mixedlm_estimates),
    "gpboost": PythonPeer(gpboost_prepare, gpboost_fit, gpboost_estimates),
    "gpboost-cholesky": PythonPeer(
        partial(gpboost_prepare, method="cholesky"), gpboost_fit, gpboost_estimates
    ),
}


def lme4_command(scenario: Scenario, data_dir: Path, warmup_dir: Path) -> list[str]:
    """``Rscript lme4_fit.R ...``; the mode (fit, baseline or ml) comes last."""
    kinds = {
        name: "factor" if name in scenario.factors else kind
        for name, kind in scenario.columns().items()
    }
    columns = ",".join(f"{name}:{kind}" for name, kind in kinds.items())
    return [
        "Rscript",
        str(R_SCRIPT),
        str(data_dir),
        str(warmup_dir),
        scenario.formula,
        columns,
        "fit",
    ]
