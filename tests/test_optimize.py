"""The optimiser never settles on a worse point, and says when a fit is suspect.

- From a point on a boundary face (a variance of zero) the search leaves
  the face when the criterion falls off it; without the face probes it
  would stay (so the test can fail).
- The optimum does not depend on the start (hypothesis: random designs,
  starts on faces and inside).
- Non-finite criteria are handled without a floating-point warning.
- The convergence diagnostics equal lme4's derivatives and flag a model
  that is not identifiable (Orthodont), in the fit and in the summary.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedLinearRegressor
from skmixed._covariance import ThetaLayout
from skmixed._objective import make_deviance, make_deviance_and_gradient
from skmixed._optimize import minimize_deviance

DATA = Path(__file__).parent / "data"


def quietly(model, X, y, groups):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singular fits, few levels
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, groups=groups)


def minimize_from(model, theta0, *, faces=True):
    """Re-minimise a fitted model's criterion from ``theta0`` (scaled units)."""
    design, reml = model._design, model.method == "reml"
    layout = ThetaLayout.from_factors(design.factors)
    return minimize_deviance(
        make_deviance(design, reml),
        np.asarray(theta0, dtype=float),
        layout.lower,
        gradient=make_deviance_and_gradient(design, reml),
        layout=layout if faces else None,
    )


def scaled_objective(model):
    """The criterion at the fit, in the scaled units the optimiser sees."""
    deviance = make_deviance(model._design, model.method == "reml")
    return deviance(model._theta_scaled)


def large_scale_case():
    """x1 ~ N(5e4, 1e4^2): lme4's start lands on a face (intercept SD 0)."""
    frame = pd.read_csv(DATA / "observed" / "large_scale_slope_s3.csv")
    model = MixedLinearRegressor(random_slopes=["x1"])
    return quietly(model, frame[["x1"]], frame["y"], frame["g"])


def test_the_search_leaves_a_face_the_criterion_falls_off():
    model = large_scale_case()
    # T = [[0, 0], [0, 3.9]]: the intercept variance is zero, and the
    # gradient in T[0, 0] is exactly zero there by symmetry.
    face = [0.0, 0.0, 3.9137]
    stuck = minimize_from(model, face, faces=False)
    freed = minimize_from(model, face)
    assert stuck.value > freed.value + 1.0  # without probes it stays
    assert freed.value <= scaled_objective(model) + 1e-8
    assert freed.theta[0] > 0.5


def test_the_fit_beats_lme4_from_its_start():
    model = large_scale_case()
    reference = json.loads(
        (DATA / "observed" / "large_scale_slope_s3.json").read_text()
    )
    lme4 = reference["fits"]["REML"]
    best = min(lme4["criterion"], lme4["polished"]["criterion"])
    assert model.objective_ <= best + 1e-6 * abs(best)


def test_non_finite_values_are_handled_without_warnings():
    # The criterion is infinite past theta = 2.5 (as where a factorisation
    # fails); the minimum of the finite part lies on that edge.
    def deviance(theta):
        return np.inf if theta[0] > 2.5 else float((theta[0] - 3.0) ** 2 + 1.0)

    def value_and_gradient(theta):
        value = deviance(theta)
        return value, np.array([2.0 * (theta[0] - 3.0)])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        outcome = minimize_deviance(
            deviance, np.array([1.0]), np.array([0.0]), gradient=value_and_gradient
        )
    assert np.isfinite(outcome.value)
    assert outcome.theta[0] == pytest.approx(2.5, abs=1e-3)


@st.composite
def designs(draw):
    """Small one-factor designs with binary, uncentred or plain slopes."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_groups = draw(st.integers(8, 30))
    size = draw(st.integers(3, 12))
    kind = draw(st.sampled_from(["binary", "uncentred", "normal"]))
    n = n_groups * size
    g = np.repeat(np.arange(n_groups), size)
    if kind == "binary":
        x = (rng.random(n) < 0.3).astype(float)
    elif kind == "uncentred":
        x = rng.uniform(0, 21, n)
    else:
        x = rng.normal(size=n)
    sd = np.array(
        draw(st.lists(st.sampled_from([0.0, 0.3, 1.0]), min_size=2, max_size=2))
    )
    b = rng.normal(size=(n_groups, 2)) * sd
    y = 1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
    method = draw(st.sampled_from(["reml", "ml"]))
    return pd.DataFrame({"x": x}), y, g, method


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(), st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3))
def test_the_optimum_does_not_depend_on_the_start(design, start):
    X, y, g, method = design
    model = quietly(MixedLinearRegressor(random_slopes=["x"], method=method), X, y, g)
    best = scaled_objective(model)
    start = np.array(start)
    for theta0 in (np.abs(start), [0.0, start[1], abs(start[2])], [0.0, 0.0, 1.0]):
        other = minimize_from(model, np.maximum(theta0, [0.0, -np.inf, 0.0]))
        assert best <= other.value + 1e-6 * abs(other.value)


def test_a_lower_optimum_on_the_singular_face_is_found():
    """8 groups of 3 (a random example of the property above, ML): from
    lme4's start the search stops at an interior optimum (lme4 too: deviance
    93.49799), 0.33 above the one at a correlation of 1 (93.16765, lme4 from
    theta = (1.1, 0.76, 0))."""
    x = np.array([
        -1.738266398496882, -1.3366427931811324, -1.361106708564987,
        -0.35161713127840977, -2.3125815796967033, -0.18889719608460778,
        -0.957229228096346, 0.8936001849299788, 0.956847237579234,
        1.3922582291390866, 0.7674701130947078, -0.053029778757267734,
        0.8597939889439096, 1.5054811563838433, -0.6535945334170485,
        0.610351145830187, -0.042673827710852374, 1.4400167254152394,
        -0.8368950200968434, -0.3015466095655266, 0.36233859316943917,
        0.25811026702099754, -1.6394479624476481, 0.360155232237386,
    ])  # fmt: skip
    y = np.array([
        1.6165469541678734, -0.2831340349125011, -0.9834061381377341,
        -0.7457991044661907, -0.8178022392690183, 0.68277811511506,
        -1.909031735122117, 2.0067388137368387, 0.2152522818611472,
        -2.4426341025248233, -2.331824106916021, 0.30279335102784755,
        1.4504475806499992, 2.664723833285862, 1.7620489399529173,
        1.7657863429555833, 1.0370418588330956, 5.973368610090301,
        3.6463493597798333, 2.5521799788827018, 2.4801001800292055,
        -2.399371000076238, 0.8345114983346789, -2.0601794172470673,
    ])  # fmt: skip
    g = np.repeat(np.arange(8), 3)
    model = quietly(
        MixedLinearRegressor(random_slopes=["x"], method="ml"),
        pd.DataFrame({"x": x}),
        y,
        g,
    )
    assert model.objective_ == pytest.approx(93.16765, abs=1e-4)
    assert model.is_singular_


def derivs():
    return json.loads((DATA / "derivs" / "derivs.json").read_text())


@pytest.mark.parametrize(
    "name, slopes, method",
    [
        ("sleepstudy_REML", ["Days"], "reml"),
        ("sleepstudy_ML", ["Days"], "ml"),
    ],
)
def test_the_derivatives_equal_lme4s(name, slopes, method):
    frame = pd.read_csv(DATA / "sleepstudy.csv")
    model = MixedLinearRegressor(random_slopes=slopes, method=method)
    model.fit(frame[["Days"]], frame["Reaction"], groups=frame["Subject"])
    reference = derivs()[name]
    convergence = model.convergence_
    names = [n.replace("(Intercept)", "Intercept") for n in reference["theta_names"]]
    assert convergence.parameters == names
    # lme4's Hessian is by finite differences with step 1e-4, at its theta.
    np.testing.assert_allclose(
        convergence.hessian, np.array(reference["hessian"]), rtol=2e-3
    )
    assert np.abs(convergence.gradient).max() < 1e-3
    assert convergence.ok and model.converged_
    assert np.all(convergence.hessian_eigenvalues > 0)


def test_the_crossed_derivatives_equal_lme4s():
    frame = pd.read_csv(DATA / "penicillin.csv")
    groups = frame[["plate", "sample"]]
    model = MixedLinearRegressor().fit(
        np.zeros((len(frame), 0)), frame["diameter"], groups=groups
    )
    reference = derivs()["penicillin_REML"]
    np.testing.assert_allclose(
        model.convergence_.hessian, np.array(reference["hessian"]), rtol=2e-3, atol=1e-3
    )


def orthodont():
    frame = pd.read_csv(DATA / "observed" / "orthodont.csv")
    X = frame[["age", "SexFemale", "age_SexFemale"]]
    return X, frame["distance"], frame["Subject"]


def test_an_unidentifiable_model_is_not_converged():
    # Sex is constant within Subject: the intercept and Sex effects of a
    # subject are confounded, so the criterion is flat along one direction
    # of theta (lme4: "degenerate Hessian with 1 negative eigenvalues").
    X, y, g = orthodont()
    model = MixedLinearRegressor(random_slopes=["SexFemale"])
    with pytest.warns(ConvergenceWarning, match="may not be identifiable") as record:
        model.fit(X, y, groups=g)
    assert not model.converged_
    assert not model.convergence_.ok
    message = " ".join(str(w.message) for w in record)
    assert "Subject.SexFemale" in message
    eigenvalues = model.convergence_.hessian_eigenvalues
    assert np.abs(eigenvalues).min() < 1e-6 * np.abs(eigenvalues).max()
    text = str(model.summary())
    assert "optimizer (L-BFGS-B) convergence code: 0 (OK)" in text
    assert "degenerate Hessian" in text


def test_a_boundary_fit_checks_only_its_interior_parameters():
    frame = pd.read_csv(DATA / "dyestuff2.csv")
    model = quietly(
        MixedLinearRegressor(),
        np.zeros((len(frame), 0)),
        frame["Yield"],
        frame["Batch"],
    )
    assert model.is_singular_
    assert not model.convergence_.interior.any()
    assert model.converged_ and model.convergence_.messages == []
