"""Sparse X: the statistics straight from scipy.sparse, equal to the dense fit."""

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy import sparse

from skmixed import MixedLinearRegressor


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model.fit(*args, **kwargs)


def _one_hot_design(seed, n=500, n_categories=30):
    """A one-hot block (a high-cardinality feature), a sparse and a dense column."""
    rng = np.random.default_rng(seed)
    category = rng.integers(0, n_categories, n)
    X = np.zeros((n, n_categories + 1))
    X[np.arange(n), category] = 1.0
    X[:, -1] = rng.normal(size=n) * (rng.random(n) < 0.4)
    X = np.column_stack([X[:, 1:], rng.normal(size=n)])  # drop one level
    a, b = rng.integers(0, 25, n), rng.integers(0, 8, n)
    y = (
        X @ rng.normal(size=X.shape[1])
        + rng.normal(size=25)[a] * (1 + 0.5 * X[:, -1])
        + rng.normal(size=8)[b]
        + rng.normal(size=n)
    )
    groups = pd.DataFrame({"a": a, "b": b})
    return X, y, groups, rng.uniform(0.3, 3.0, n)


CASES = {
    "intercept": dict(groups=["a"], params={}),
    "slope": dict(groups=["a"], params={"random_slopes": [-1]}),
    "crossed": dict(groups=["a", "b"], params={}),
    "crossed slope": dict(groups=["a", "b"], params={"random_slopes": {"a": [-1]}}),
    "no intercept, ML": dict(
        groups=["a"], params={"fit_intercept": False, "method": "ml"}
    ),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csc_array])
def test_sparse_fit_equals_dense_fit(case, weighted, container):
    X, y, groups, w = _one_hot_design(0)
    spec = CASES[case]
    params = dict(spec["params"])
    if isinstance(params.get("random_slopes"), list):
        params["random_slopes"] = [X.shape[1] - 1]
    if isinstance(params.get("random_slopes"), dict):
        params["random_slopes"] = {"a": [X.shape[1] - 1]}
    g = groups[spec["groups"]]
    kwargs = {"sample_weight": w} if weighted else {}
    dense = _fit(MixedLinearRegressor(**params), X, y, groups=g, **kwargs)
    sparse_fit = _fit(
        MixedLinearRegressor(**params), container(X), y, groups=g, **kwargs
    )
    assert sparse_fit.objective_ == pytest.approx(dense.objective_, rel=1e-10)
    np.testing.assert_allclose(sparse_fit.coef_, dense.coef_, rtol=1e-10, atol=1e-10)
    assert sparse_fit.intercept_ == pytest.approx(
        dense.intercept_, rel=1e-10, abs=1e-10
    )
    assert sparse_fit.sigma_ == pytest.approx(dense.sigma_, rel=1e-10)
    np.testing.assert_allclose(
        sparse_fit.fixed_effects_cov_, dense.fixed_effects_cov_, rtol=1e-8, atol=1e-12
    )
    for name in dense.random_effects_:
        np.testing.assert_allclose(
            sparse_fit.random_effects_[name],
            dense.random_effects_[name],
            rtol=1e-8,
            atol=1e-10,
        )
    np.testing.assert_allclose(
        sparse_fit.predict(container(X), g), dense.predict(X, g), rtol=1e-10, atol=1e-10
    )


def test_sparse_bootstrap_equals_dense_bootstrap():
    X, y, groups, w = _one_hot_design(1)
    dense = _fit(MixedLinearRegressor(), X, y, groups=groups["a"], sample_weight=w)
    sparse_fit = _fit(
        MixedLinearRegressor(),
        sparse.csr_matrix(X),
        y,
        groups=groups["a"],
        sample_weight=w,
    )
    a = dense.bootstrap(lambda m: m.coef_[:3], n_boot=4, random_state=0)
    b = sparse_fit.bootstrap(lambda m: m.coef_[:3], n_boot=4, random_state=0)
    np.testing.assert_allclose(b.replicates, a.replicates, rtol=1e-8)


def test_one_hot_encoder_output_in_a_pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(2)
    n = 400
    frame = pd.DataFrame(
        {
            "store": rng.choice([f"s{k}" for k in range(20)], n),
            "item": rng.choice([f"item{k}" for k in range(60)], n),
            "price": rng.normal(size=n),
        }
    )
    y = rng.normal(size=n) + frame["price"] + frame["item"].str.len()
    encode = ColumnTransformer(
        [
            ("item", OneHotEncoder(drop="first"), ["item"]),
            ("price", "passthrough", ["price"]),
        ],
        sparse_threshold=1.0,
    )
    X = frame.drop(columns="store")
    encoded = encode.fit_transform(X)
    assert sparse.issparse(encoded)
    # A sparse matrix holds numbers only: the groups travel as metadata.
    with sklearn.config_context(enable_metadata_routing=True):
        model = MixedLinearRegressor().set_fit_request(groups=True)
        pipe = _fit(make_pipeline(encode, model), X, y, groups=frame["store"])
    dense = _fit(MixedLinearRegressor(), encoded.toarray(), y, groups=frame["store"])
    assert pipe[-1].objective_ == pytest.approx(dense.objective_, rel=1e-10)
    np.testing.assert_allclose(pipe[-1].coef_, dense.coef_, rtol=1e-9, atol=1e-10)


def test_a_large_sparse_x_is_never_densified():
    # 60,000 x 400 one-hot: 192 MB dense; the fit stays far below that.
    rng = np.random.default_rng(3)
    n, p = 60_000, 400
    columns = rng.integers(0, p, n)
    X = sparse.csr_matrix((np.ones(n), (np.arange(n), columns)), shape=(n, p))
    groups = rng.integers(0, 40, n)
    y = rng.normal(size=p)[columns] + rng.normal(size=40)[groups] + rng.normal(size=n)
    tracemalloc.start()
    try:
        model = _fit(MixedLinearRegressor(), X[:, 1:], y, groups=groups)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 60e6, f"peak {peak / 1e6:.0f} MB"
    assert model.coef_.shape == (p - 1,)


def test_a_wide_sparse_x_with_few_rows_equals_dense():
    # n * p no larger than the (p + 2)^2 Gram: reduced dense, centred exactly,
    # so that rank-deficient designs keep the same columns as dense X.
    rng = np.random.default_rng(5)
    X = sparse.random(40, 45, density=0.3, random_state=5, format="csr")
    g = np.repeat(np.arange(8), 5)
    y = rng.normal(size=40)
    dense = _fit(MixedLinearRegressor(), X.toarray(), y, groups=g)
    wide = _fit(MixedLinearRegressor(), X, y, groups=g)
    np.testing.assert_array_equal(wide._design.fixed_kept, dense._design.fixed_kept)
    np.testing.assert_allclose(wide.predict(X, g), dense.predict(X.toarray(), g))


def test_simulate_and_predict_interval_take_sparse_x():
    X, y, groups, _ = _one_hot_design(6, n=200)
    g = groups["a"]
    dense = _fit(MixedLinearRegressor(), X, y, groups=g)
    sparse_fit = _fit(MixedLinearRegressor(), sparse.csr_matrix(X), y, groups=g)
    Xs = sparse.csr_matrix(X[:20])
    np.testing.assert_allclose(
        sparse_fit.simulate(Xs, g[:20], n=2, random_state=0),
        dense.simulate(X[:20], g[:20], n=2, random_state=0),
        rtol=1e-8,
    )
    np.testing.assert_allclose(
        sparse_fit.predict_interval(Xs, g[:20], n_draws=50, random_state=0),
        dense.predict_interval(X[:20], g[:20], n_draws=50, random_state=0),
        rtol=1e-8,
    )


def test_compare_pooling_refuses_sparse_x_by_name():
    from skmixed import compare_pooling

    X, y, groups, _ = _one_hot_design(7, n=120)
    with pytest.raises(TypeError, match="compare_pooling takes dense X"):
        compare_pooling(sparse.csr_matrix(X), y, groups["a"])


def test_displays_take_a_pipeline_with_sparse_one_hot_output():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from skmixed.plotting import EffectDisplay, ShrinkageDisplay

    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {
            "item": rng.choice([f"i{k}" for k in range(15)], 150),
            "price": rng.normal(size=150),
        }
    )
    store = rng.integers(0, 10, 150)
    y = frame["price"] + rng.normal(size=10)[store] + rng.normal(size=150)
    encode = ColumnTransformer(
        [("item", OneHotEncoder(), ["item"]), ("price", "passthrough", ["price"])],
        sparse_threshold=1.0,
    )
    with sklearn.config_context(enable_metadata_routing=True):
        model = MixedLinearRegressor(random_slopes=[15]).set_fit_request(groups=True)
        pipe = _fit(make_pipeline(encode, model), frame, y, groups=store)
        effect = EffectDisplay.from_estimator(pipe, frame, y, "price")
        shrinkage = ShrinkageDisplay.from_estimator(pipe, frame, y, groups=store)
    # the population line along raw price: slope = the fitted coefficient
    prediction = np.asarray(effect.prediction, dtype=float).ravel()
    grid = np.asarray(
        effect.grid["price"] if hasattr(effect.grid, "columns") else effect.grid,
        dtype=float,
    ).ravel()
    slope = np.polyfit(grid, prediction, 1)[0]
    assert slope == pytest.approx(pipe[-1].coef_[-1], rel=1e-8)
    assert (
        len(
            shrinkage.levels_
            if hasattr(shrinkage, "levels_")
            else pipe[-1].groups_["group"]
        )
        == 10
    )


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_a_dense_column_with_a_large_mean_loses_no_digits(weighted):
    # A passed-through numeric column (1e6 + noise, a timestamp say) next to
    # a one-hot block: centred exactly, not by products of raw values.
    rng = np.random.default_rng(9)
    n = 500
    X, _, groups, w = _one_hot_design(9, n=n)
    big = 1e6 + rng.normal(size=n)
    X = np.column_stack([X, big])
    y = X[:, :-1].sum(axis=1) + 0.5 * (big - 1e6) + 3e4 + rng.normal(size=n)
    kwargs = {"sample_weight": w} if weighted else {}
    dense = _fit(MixedLinearRegressor(), X, y, groups=groups["a"], **kwargs)
    wide = _fit(
        MixedLinearRegressor(), sparse.csr_matrix(X), y, groups=groups["a"], **kwargs
    )
    assert wide.objective_ == pytest.approx(dense.objective_, rel=1e-12)
    np.testing.assert_allclose(wide.coef_, dense.coef_, rtol=1e-10)
