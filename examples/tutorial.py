"""The skmixed tutorial: plant biomass by site, end to end.

The workflow of the classic lme4 tutorial, in Python.  One hundred plants grow
in 20 sites; their biomass depends on temperature (Temp) and nitrogen (N), and
each site has its own baseline and its own response to temperature.  In lme4::

    lmer(Biomass ~ Temp + N + (1 + Temp | Site), data = d)

Steps: the pooling spectrum, fitting, the summary, a likelihood-ratio test of
the random slope, residual diagnostics, the random effects (caterpillar
plot), confidence intervals three ways (Wald, profile likelihood, parametric
bootstrap), effect plots with bands, prediction for seen and unseen sites, the
pooling strategies compared by cross-validation, and the model explorer (one
interactive HTML page, merTools' Shiny app without a server).

Usage::

    python examples/tutorial.py [FIGURE_FOLDER]

Figures (and the explorer page, explorer.html) go to FIGURE_FOLDER, else to
$SKMIXED_FIGURES, else to examples/figures/.  Matplotlib's Agg backend is used,
so no screen is needed.
"""

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: write files, never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import GroupKFold, KFold  # noqa: E402

from skmixed import (  # noqa: E402
    CompletePoolingRegressor,
    MixedLinearRegressor,
    NoPoolingRegressor,
    anova,
    compare_pooling,
    explore,
)
from skmixed.datasets import load_biomass  # noqa: E402
from skmixed.plotting import (  # noqa: E402
    CaterpillarDisplay,
    EffectDisplay,
    IntervalDisplay,
    ShrinkageDisplay,
    plot_diagnostics,
)

DEFAULT_FIGURES = Path(__file__).resolve().parent / "figures"
N_BOOT = 200  # bootstrap replicates: enough for a tutorial, fast on 2 cores
SEED = 1
FIRST_SITES = [f"Site{j}" for j in range(1, 6)]

# The figure files this script writes (tests/test_examples.py checks them).
FIGURES = (
    "shrinkage.png",
    "diagnostics.png",
    "caterpillar.png",
    "intervals.png",
    "effects.png",
)
EXPLORER = "explorer.html"  # the model explorer page, beside the figures


def section(title):
    print(f"\n{title}\n{'=' * len(title)}")


def save(figure, folder, name):
    path = folder / name
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    print(f"[saved {path}]")


# --------------------------------------------------------------------------
# 1. The data and the pooling spectrum
# --------------------------------------------------------------------------


def load():
    section("1. The data")
    data = load_biomass()
    print(data.frame.head())
    print(f"{len(data.frame)} plants in {data.groups.nunique()} sites")
    print(f"lme4 formula: {data.formula}")
    return data.X, data.y, data.groups


def pooling_spectrum(X, y, groups, folder):
    """One line for all sites, one line per site, and the compromise between."""
    section("2. The pooling spectrum: the Temp slope of the first sites")
    complete = CompletePoolingRegressor().fit(X, y, groups=groups)
    none = NoPoolingRegressor(group_slopes=["Temp"]).fit(X, y, groups=groups)
    mixed = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    population = mixed.fixed_effects_["Temp"]
    slopes = pd.DataFrame(
        {
            "complete pooling": complete.coef_[0],
            "no pooling": none.group_coef_["Temp"],
            "partial pooling": population + mixed.random_effects_["Site"]["Temp"],
        }
    )
    print(slopes.loc[FIRST_SITES].round(3))
    spread = slopes[["no pooling", "partial pooling"]].std()
    print(
        f"Across the 20 sites the no-pooling slopes have SD {spread.iloc[0]:.2f}; "
        f"partial pooling shrinks them\ntowards the population slope "
        f"{population:.3f} (SD {spread.iloc[1]:.2f}), the noisier a site's own "
        "estimate, the more."
    )
    display = ShrinkageDisplay.from_estimator(mixed, X, y, groups, term="Temp")
    save(display.figure_, folder, "shrinkage.png")


# --------------------------------------------------------------------------
# 3. Fit and read the summary
# --------------------------------------------------------------------------


def fit(X, y, groups):
    section("3. Fit: Biomass ~ Temp + N + (1 + Temp | Site), REML")
    model = MixedLinearRegressor(random_slopes=["Temp"], method="reml")
    model.fit(X, y, groups=groups)
    print(model.summary())
    print(f"\nconverged: {model.converged_}, singular: {model.is_singular_}")

    print("\nDo the sites need their own Temp slope? Likelihood-ratio test")
    print("(lme4's anova(); both models refitted by ML):")
    intercepts = MixedLinearRegressor().fit(X, y, groups=groups)
    table = anova(intercepts, model, names=["(1 | Site)", "(1 + Temp | Site)"])
    print(table.to_string(float_format=lambda v: f"{v:.5g}"))
    return model


# --------------------------------------------------------------------------
# 4. Diagnostics and random effects
# --------------------------------------------------------------------------


def diagnostics(model, folder):
    section("4. Residual diagnostics and the random effects")
    display = plot_diagnostics(model)
    save(display.figure_, folder, "diagnostics.png")
    display = CaterpillarDisplay.from_estimator(model)
    save(display.figure_, folder, "caterpillar.png")
    print("Random effects (BLUPs) of the first sites, with conditional SDs:")
    ranef = model.random_effects_["Site"].loc[FIRST_SITES]
    cond_sd = model.random_effects_cond_sd_["Site"].loc[FIRST_SITES]
    print(ranef.join(cond_sd.add_suffix(" sd")).round(3))


# --------------------------------------------------------------------------
# 5. Inference: three kinds of confidence interval
# --------------------------------------------------------------------------


def intervals(model, folder):
    section("5. 95% confidence intervals: Wald, profile, bootstrap")
    start = time.perf_counter()
    frames = {
        "Wald": model.confint(method="wald"),
        "profile": model.confint(method="profile"),
        f"bootstrap ({N_BOOT})": model.confint(
            method="bootstrap", n_boot=N_BOOT, random_state=SEED
        ),
    }
    table = pd.concat(frames, axis=1)
    print(table.round(3).to_string())
    print(f"({time.perf_counter() - start:.1f} s)")
    print(
        "Wald intervals exist for the fixed effects only; the profile and the "
        "bootstrap also bound the variance parameters."
    )
    display = IntervalDisplay.from_intervals(
        frames,
        estimates=model.fixed_effects_,
        parameters=list(model.fixed_effects_.index),
    )
    save(display.figure_, folder, "intervals.png")


def effects(model, X, y, folder):
    """Population effect of each feature, the other at its mean, with a band."""
    section("6. Effect plots with 95% bands (posterior draws)")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, feature in zip(axes, ["Temp", "N"]):
        EffectDisplay.from_estimator(
            model, X, y, feature, band="posterior", random_state=SEED, ax=ax
        )
    save(figure, folder, "effects.png")


# --------------------------------------------------------------------------
# 7. Prediction for seen and unseen sites
# --------------------------------------------------------------------------


def prediction(model):
    section("7. Prediction: a known site and a new one")
    X_new = pd.DataFrame({"Temp": [1.0, 1.0], "N": [0.0, 0.0]})
    sites = pd.Series(["Site4", "a new site"], name="Site")
    table = pd.DataFrame(
        {
            "Site": sites,
            "conditional": model.predict(X_new, groups=sites),
            "population": model.predict(X_new),
        }
    )
    print(table.round(3).to_string(index=False))
    print(
        "A site seen in fit gets its own random effects; a new site gets the "
        "population prediction (lme4's re.form = ~0)."
    )
    interval = model.predict_interval(
        X_new, groups=sites, level=0.95, random_state=SEED
    )
    print("95% prediction intervals (random-effect and residual uncertainty):")
    print(pd.concat([sites, interval], axis=1).round(3).to_string(index=False))


# --------------------------------------------------------------------------
# 8. Which pooling strategy predicts best?
# --------------------------------------------------------------------------


def compare(X, y, groups):
    section("8. Pooling strategies compared by cross-validation (RMSE)")
    mixed = MixedLinearRegressor(random_slopes=["Temp"])
    for title, cv in [
        ("new plants of known sites (KFold)", KFold(5, shuffle=True, random_state=0)),
        ("new sites (GroupKFold)", GroupKFold(5)),
    ]:
        results = compare_pooling(
            X, y, groups, cv=cv, scoring="neg_root_mean_squared_error", mixed=mixed
        )
        rmse = results.set_index("strategy")[["mean", "sd"]]
        rmse["mean"] = -rmse["mean"]
        print(f"{title}:")
        print(rmse.rename(columns={"mean": "RMSE"}).round(3).to_string())


# --------------------------------------------------------------------------
# 9. The model explorer
# --------------------------------------------------------------------------


def explorer(model, X, y, groups, folder):
    """Everything above on one page, with what-if predictions in the browser."""
    section("9. The model explorer")
    path = explore(model, X, y, groups, path=folder / EXPLORER)
    print(
        f"[saved {path}] ({path.stat().st_size / 1e3:.0f} kB, self-contained: open "
        "it in a browser, offline)"
    )
    print(
        "Tabs: the model, fixed effects, variance components, random effects "
        "(table and caterpillar plot), diagnostics, shrinkage, effect plots, and "
        "what-if predictions with intervals for a chosen or a new site."
    )


def figure_folder(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "figures",
        nargs="?",
        default=os.environ.get("SKMIXED_FIGURES") or DEFAULT_FIGURES,
        help="folder for the figures (default: $SKMIXED_FIGURES or examples/figures/)",
    )
    folder = Path(parser.parse_args(argv).figures)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main(argv=None):
    folder = figure_folder(argv)
    start = time.perf_counter()
    np.set_printoptions(precision=4, suppress=True)
    X, y, groups = load()
    pooling_spectrum(X, y, groups, folder)
    model = fit(X, y, groups)
    diagnostics(model, folder)
    intervals(model, folder)
    effects(model, X, y, folder)
    prediction(model)
    compare(X, y, groups)
    explorer(model, X, y, groups, folder)
    print(f"\nDone in {time.perf_counter() - start:.1f} s; figures in {folder}")


if __name__ == "__main__":
    main()
