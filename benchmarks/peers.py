"""How each package fits a scenario, and its estimates in one layout.

Estimates are reported by every package as a dict: ``fixef`` (name ->
value, ``Intercept`` first), ``sd`` (``factor:term`` -> random-effect SD),
``cor`` (``factor:term1:term2`` -> correlation), ``sigma``, ``objective``
(lme4's REML criterion) and ``converged`` (the package's own flag).

Each Python package has ``prepare(scenario, data)``, which imports it and
builds its inputs (not timed), ``fit(inputs)``, the one timed call, and
``estimates(result)``. lme4 runs in ``Rscript`` (``lme4_fit.R``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from harness import R_SCRIPT
from scenarios import Scenario

PACKAGES = ("skmixed", "statsmodels", "mixedlm", "lme4")
IMPORTS = {
    "skmixed": "from skmixed import MixedLinearRegressor",
    "statsmodels": "from statsmodels.regression.mixed_linear_model import MixedLM",
    "mixedlm": "from mixedlm import lmer",
    "lme4": "",
}


def term(name: str) -> str:
    return "Intercept" if name in ("(Intercept)", "Intercept", "const") else name


def layout(fixef, sd, cor, sigma, objective=None, converged=None) -> dict[str, Any]:
    return {
        "fixef": {term(k): float(v) for k, v in fixef.items()},
        "sd": {k: float(v) for k, v in sd.items()},
        "cor": {k: float(v) for k, v in cor.items()},
        "sigma": float(sigma),
        "objective": None if objective is None else float(objective),
        "converged": None if converged is None else bool(converged),
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


def skmixed_prepare(scenario: Scenario, data):
    import pandas as pd

    from skmixed import MixedLinearRegressor

    n = data["y"].size
    X = pd.DataFrame({c: data[c] for c in scenario.fixed}, index=pd.RangeIndex(n))
    groups = pd.DataFrame({f: data[f] for f in scenario.factors})
    slopes = {f: s for f, s in scenario.factors.items() if s} or None
    return MixedLinearRegressor(random_slopes=slopes), X, data["y"], groups


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
    )


# ----------------------------------------------------------------- statsmodels


def statsmodels_prepare(scenario: Scenario, data):
    """One factor: the array API. Crossed factors: one dummy group whose
    variance components are the factors (statsmodels' only way to cross)."""
    import pandas as pd
    from statsmodels.regression.mixed_linear_model import MixedLM

    frame = pd.DataFrame(data)
    exog = pd.DataFrame({"Intercept": np.ones(len(frame))})
    for column in scenario.fixed:
        exog[column] = frame[column]
    if len(scenario.factors) == 1:
        ((factor, slopes),) = scenario.factors.items()
        exog_re = exog[["Intercept", *slopes]]
        model = MixedLM(frame["y"], exog, groups=frame[factor], exog_re=exog_re)
        return model, factor
    frame["one"] = 1
    vc = {f: f"0 + C({f})" for f in scenario.factors}
    fixed = " + ".join(scenario.fixed) or "1"
    model = MixedLM.from_formula(
        f"y ~ {fixed}", groups="one", re_formula="0", vc_formula=vc, data=frame
    )
    return model, None


def statsmodels_fit(inputs):
    model, factor = inputs
    return model.fit(reml=True), factor


def statsmodels_estimates(outcome):
    result, factor = outcome
    if factor is not None:
        cov = result.cov_re
        sd, cor = covariance_entries(factor, list(cov.columns), cov.to_numpy())
    else:
        names = result.model.exog_vc.names
        sd = {
            f"{n}:Intercept": math.sqrt(max(v, 0.0))
            for n, v in zip(names, result.vcomp)
        }
        cor = {}
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


# ------------------------------------------------------------------------ who


@dataclass(frozen=True)
class PythonPeer:
    prepare: Callable[[Scenario, dict[str, np.ndarray]], Any]
    fit: Callable[[Any], Any]
    estimates: Callable[[Any], dict[str, Any]]


PYTHON_PEERS = {
    "skmixed": PythonPeer(skmixed_prepare, skmixed_fit, skmixed_estimates),
    "statsmodels": PythonPeer(
        statsmodels_prepare, statsmodels_fit, statsmodels_estimates
    ),
    "mixedlm": PythonPeer(mixedlm_prepare, mixedlm_fit, mixedlm_estimates),
}


def lme4_command(scenario: Scenario, data_dir: Path, warmup_dir: Path) -> list[str]:
    """``Rscript lme4_fit.R ...``; the mode (fit or baseline) comes last."""
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
