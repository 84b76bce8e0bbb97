"""skmixed in a scikit-learn workflow: Pipeline, GridSearchCV, grouped CV.

A mixed model is tuned like any other scikit-learn regressor.  Two things are
specific to grouped data:

- the group labels must reach ``fit`` and ``score`` inside the Pipeline and the
  search.  scikit-learn's metadata routing carries them: enable it, and let
  the estimator request ``groups``;
- the folds must keep each group whole (``GroupKFold``) when the question is
  how well the model predicts *new* groups, whose random effects are unknown
  (their prediction is the population one).

The second half shows the alternative for tools that only ever pass ``X``
(scoring strings, ``permutation_importance``): keep the labels as a column of
``X`` and name it with ``group_column``.

Run it with ``python examples/sklearn_workflow.py``; it takes a few seconds.
"""

import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmixed import MixedLinearRegressor
from skmixed.datasets import simulate_biomass

N_SPLITS = 5


def load_data():
    """Biomass of 10 plants in each of 40 sites (a fresh simulation)."""
    data = simulate_biomass(n_sites=40, plants_per_site=10, random_state=0)
    return data.X, data.y, data.groups


def routed_pipeline():
    """Scale the features (keeping pandas column names), then the mixed model.

    ``set_fit_request`` / ``set_score_request`` ask the routing machinery to
    hand ``groups`` to the model; StandardScaler asks for nothing.
    """
    model = (
        MixedLinearRegressor()
        .set_fit_request(groups=True)
        .set_score_request(groups=True)
    )
    scaler = StandardScaler().set_output(transform="pandas")
    return Pipeline([("scale", scaler), ("model", model)])


def grid_search(X, y, groups):
    """Tune the random-effects structure and the fitting method by grouped CV.

    ``random_slopes`` names columns of the scaled DataFrame, which keeps
    ``Temp`` and ``N`` thanks to ``set_output(transform="pandas")``.  With the
    default ``scoring=None`` the score is the model's own ``score`` (R^2),
    which receives the routed groups; GroupKFold holds whole sites out, so it
    measures the population prediction for new sites.
    """
    param_grid = [
        # (1 | Site): covariance has nothing to choose with one term.
        {"model__random_slopes": [None], "model__method": ["reml", "ml"]},
        # (1 + Temp | Site) and (1 + Temp || Site).
        {
            "model__random_slopes": [["Temp"]],
            "model__covariance": ["unstructured", "diagonal"],
            "model__method": ["reml", "ml"],
        },
    ]
    search = GridSearchCV(
        routed_pipeline(), param_grid, cv=GroupKFold(n_splits=N_SPLITS), n_jobs=1
    )
    # GroupKFold takes `groups` for splitting; the model takes it for fit/score.
    return search.fit(X, y, groups=groups)


def print_search(search):
    print("Grid search over the random-effects structure (GroupKFold, R^2)")
    results = search.cv_results_
    for params, mean, sd in zip(
        results["params"], results["mean_test_score"], results["std_test_score"]
    ):
        shown = ", ".join(f"{k.split('__')[1]}={v!r}" for k, v in params.items())
        print(f"  {mean:.4f} +- {sd:.4f}  {shown}")
    print(f"Best parameters: {search.best_params_}")
    print(f"Best CV R^2:     {search.best_score_:.4f}")
    print(
        "(Held-out sites get the population prediction, which barely depends on "
        "the random-effects structure; KFold, with sites seen in training, "
        "would score the conditional predictions instead.)"
    )
    model = search.best_estimator_["model"]
    print("Best model's fixed effects (refitted on all the data):")
    print(model.fixed_effects_.round(3).to_string())


def group_column_workflow(X, y, groups):
    """Scoring strings never pass metadata to ``predict`` (sklearn #27977).

    Keep the site as a column of ``X`` instead: a ColumnTransformer scales the
    numeric columns and passes ``Site`` through, and ``group_column="Site"``
    tells the model where its groups are.  Any scoring string then sees the
    right (conditional or population) predictions.  No routing is needed:
    run it with routing off, where ``groups=`` goes to the splitter.
    """
    frame = X.assign(Site=groups.to_numpy())
    preprocess = ColumnTransformer(
        [("scale", StandardScaler(), ["Temp", "N"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = Pipeline(
        [
            ("preprocess", preprocess),
            (
                "model",
                MixedLinearRegressor(random_slopes=["Temp"], group_column="Site"),
            ),
        ]
    )
    scores = cross_validate(
        pipe,
        frame,
        y,
        groups=groups,
        cv=GroupKFold(n_splits=N_SPLITS),
        scoring=["neg_root_mean_squared_error", "r2"],
    )
    rmse = -scores["test_neg_root_mean_squared_error"]
    print("\ngroup_column='Site', scoring strings, GroupKFold:")
    print(f"  RMSE per fold: {rmse.round(3)}  mean {rmse.mean():.3f}")
    print(f"  R^2 mean:      {scores['test_r2'].mean():.4f}")


def main():
    X, y, groups = load_data()
    with sklearn.config_context(enable_metadata_routing=True):
        search = grid_search(X, y, groups)
    print_search(search)
    group_column_workflow(X, y, groups)


if __name__ == "__main__":
    main()
