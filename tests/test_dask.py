"""Fitting on dask collections: the in-memory model, without gathering the rows."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from skmixed import MixedLinearRegressor  # noqa: E402
from skmixed._design import (  # noqa: E402
    add_statistics,
    fixed_columns,
    random_columns,
    sufficient_statistics,
)
from skmixed._objective import make_deviance  # noqa: E402

from ._simulate import simulate  # noqa: E402
from .conftest import load_case  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process: quick to start."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def fit_quietly(model, X, y, groups=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y, groups=groups)


@pytest.fixture(scope="module")
def slopes_data():
    """One factor, correlated random slope; partitions of uneven size."""
    X, y, g = simulate(0, n_groups=40, group_size=25)
    frame = X.assign(y=y, g=g)
    ddf = dd.from_pandas(frame, npartitions=7, sort=False)
    return X, y, g, ddf


@pytest.fixture(scope="module")
def crossed_data():
    """Three crossed factors, int and str labels, one binary fixed effect."""
    rng = np.random.default_rng(1)
    n = 6000
    s, d, ds = rng.integers(0, 200, n), rng.integers(0, 80, n), rng.integers(0, 12, n)
    service = rng.integers(0, 2, n).astype(float)
    y = (
        3.0
        + 0.2 * service
        + 0.5 * rng.normal(size=200)[s]
        + 0.7 * rng.normal(size=80)[d]
        + 0.3 * rng.normal(size=12)[ds]
        + rng.normal(size=n)
    )
    X = pd.DataFrame({"service": service})
    G = pd.DataFrame({"s": s, "d": [f"d{v:02d}" for v in d], "ds": ds})
    ddf = dd.from_pandas(pd.concat([X, G], axis=1).assign(y=y), npartitions=5)
    return X, y, G, ddf


def close(a, b, rtol, what=""):
    """Equal to ``rtol`` relative to the largest entry (or to 1 if smaller)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    atol = rtol * max(1.0, float(np.abs(b).max(initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def assert_same_fit(dask_model, memory_model, rtol=1e-8):
    """Every estimate of the two fits agrees to ``rtol`` (relative to its size)."""

    def check(a, b, what):
        close(a, b, rtol, what)

    check(dask_model.objective_, memory_model.objective_, "objective")
    check(dask_model.intercept_, memory_model.intercept_, "intercept")
    check(dask_model.coef_, memory_model.coef_, "coef")
    check(dask_model.sigma_, memory_model.sigma_, "sigma")
    check(dask_model.theta_, memory_model.theta_, "theta")
    check(dask_model.fixed_effects_cov_, memory_model.fixed_effects_cov_, "vcov")
    assert list(dask_model.random_effects_) == list(memory_model.random_effects_)
    for name, ranef in memory_model.random_effects_.items():
        other = dask_model.random_effects_[name]
        assert list(other.index) == list(ranef.index), name
        assert list(other.columns) == list(ranef.columns), name
        check(other, ranef, f"BLUPs of {name}")
        check(
            dask_model.random_effects_cov_[name],
            memory_model.random_effects_cov_[name],
            name,
        )
        check(
            dask_model.random_effects_cond_sd_[name],
            memory_model.random_effects_cond_sd_[name],
            f"conditional SDs of {name}",
        )


# ------------------------------------------------------------ same fit as in memory


def test_single_factor_with_slopes_matches_in_memory(client, slopes_data):
    X, y, g, ddf = slopes_data
    model = MixedLinearRegressor(random_slopes=["x1"])
    memory = model.fit(X, y, groups=g)
    on_dask = MixedLinearRegressor(random_slopes=["x1"]).fit(
        ddf[["x1", "x2"]], ddf["y"], groups=ddf["g"]
    )
    assert_same_fit(on_dask, memory)
    assert list(on_dask.feature_names_in_) == ["x1", "x2"]
    assert on_dask.n_features_in_ == 2


def test_dask_arrays_with_other_chunks_match_in_memory(client, slopes_data):
    X, y, g, _ = slopes_data
    memory = MixedLinearRegressor(random_slopes=[0]).fit(
        X.to_numpy(), y, groups=g.to_numpy()
    )
    on_dask = MixedLinearRegressor(random_slopes=[0]).fit(
        da.from_array(X.to_numpy(), chunks=(300, 1)),
        da.from_array(y, chunks=250),  # rechunked to X's row chunks
        da.from_array(g.to_numpy(), chunks=400),
    )
    assert_same_fit(on_dask, memory)
    assert list(on_dask.random_effects_) == ["group"]


def group_codes(G):
    return np.column_stack([pd.factorize(G[c])[0] for c in G])


def dask_inputs(kind, X, y, G, ddf):
    if kind == "frame":
        return ddf[list(X)], ddf["y"], ddf[list(G)]
    groups = group_codes(G)
    return (
        da.from_array(X.to_numpy(), chunks=(1000, 1)),
        da.from_array(y, chunks=1000),
        da.from_array(groups, chunks=(1500, 2)),
    )


@pytest.mark.parametrize("kind", ["frame", "arrays"])
def test_crossed_factors_give_the_same_statistics_and_fit(client, crossed_data, kind):
    X, y, G, ddf = crossed_data
    on_dask = MixedLinearRegressor().fit(*dask_inputs(kind, X, y, G, ddf))
    if kind == "arrays":  # unnamed columns: the in-memory fit names them alike
        X, G = X.to_numpy(), group_codes(G)
    memory = MixedLinearRegressor().fit(X, y, groups=G)
    a, b = on_dask._design, memory._design
    assert [(f.name, f.n_levels) for f in a.factors] == [
        (f.name, f.n_levels) for f in b.factors
    ]
    close(a.stats.WtW, b.stats.WtW, 1e-12)
    close(a.stats.first.ZtW, b.stats.first.ZtW, 1e-12)
    close(a.stats.others.Z2tZ2, b.stats.others.Z2tZ2, 1e-12)
    close(a.stats.others.Z2tW, b.stats.others.Z2tW, 1e-12)
    assert (a.stats.others.Z2tZ1 != b.stats.others.Z2tZ1).nnz == 0  # counts: exact
    # The same objective function, so the same optimum ...
    deviance_a, deviance_b = make_deviance(a, True), make_deviance(b, True)
    for theta in ([0.5, 0.7, 0.3], [1.0, 0.1, 0.0], [0.2, 2.0, 1.0]):
        theta = np.array(theta)
        assert deviance_a(theta) == pytest.approx(deviance_b(theta), rel=1e-12)
    close(on_dask.objective_, memory.objective_, 1e-10)
    close(on_dask.coef_, memory.coef_, 1e-8)
    close(on_dask.intercept_, memory.intercept_, 1e-8)
    # ... and, with the exact gradient for random intercepts, the same fit.
    assert_same_fit(on_dask, memory)


def test_crossed_reference_fit_of_lme4(client):
    case = load_case("penicillin")
    ref = case.fit_reference("REML")
    ddf = dd.from_pandas(case.frame.assign(**case.groups.astype(str)), npartitions=4)
    model = MixedLinearRegressor(**case.estimator_params("REML")).fit(
        ddf[case.fixed_columns], ddf[case.response], groups=ddf[case.factors]
    )
    assert model.objective_ == pytest.approx(ref["objective"], rel=1e-6)
    assert model.intercept_ == pytest.approx(ref["fixef"]["Intercept"], rel=1e-5)
    assert model.sigma_ == pytest.approx(ref["sigma"], rel=1e-5)


def test_fitted_values_are_lazy_dask_arrays(client, slopes_data):
    X, y, g, ddf = slopes_data
    memory = MixedLinearRegressor(random_slopes=["x1"]).fit(X, y, groups=g)
    on_dask = MixedLinearRegressor(random_slopes=["x1"]).fit(
        ddf[["x1", "x2"]], ddf["y"], groups=ddf["g"]
    )
    for name in ("fitted_values_", "residuals_"):
        value = getattr(on_dask, name)
        assert isinstance(value, da.Array)
        assert value.shape == (len(y),)  # one chunk per partition, sizes known
        np.testing.assert_allclose(
            value.compute(), getattr(memory, name), rtol=1e-10, atol=1e-10
        )


def test_empty_partitions_count_for_nothing(client, slopes_data):
    X, y, g, ddf = slopes_data
    first = ddf.partitions[0].index.compute()[0]
    kept = ddf.map_partitions(lambda p: p.iloc[0:0] if p.index[0] == first else p)
    rows = kept.compute()
    memory = MixedLinearRegressor(random_slopes=["x1"]).fit(
        rows[["x1", "x2"]], rows["y"], groups=rows["g"]
    )
    model = MixedLinearRegressor(random_slopes=["x1"])
    model.fit(kept[["x1", "x2"]], kept["y"], groups=kept["g"])
    assert_same_fit(model, memory)
    predicted = model.predict(kept[["x1", "x2"]], groups=kept["g"]).compute()
    np.testing.assert_allclose(
        predicted, memory.predict(rows[["x1", "x2"]], groups=rows["g"]), rtol=1e-12
    )
    assert model.fitted_values_.shape == (len(rows),)


# ----------------------------------------------------------- predict and score


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
def test_predict_and_score_on_dask(client, slopes_data):
    X, y, g, ddf = slopes_data
    model = MixedLinearRegressor(random_slopes=["x1"]).fit(X, y, groups=g)
    new = ddf.assign(g=ddf["g"].where(ddf["x2"] > 0, "unseen"))
    expected = model.predict(X, groups=new["g"].compute())
    predicted = model.predict(new[["x1", "x2"]], groups=new["g"])
    assert isinstance(predicted, dd.Series)
    assert predicted.npartitions == ddf.npartitions
    np.testing.assert_allclose(predicted.compute().to_numpy(), expected, rtol=1e-12)
    assert (predicted.compute().index == ddf.index.compute()).all()
    population = model.predict(ddf[["x1", "x2"]]).compute().to_numpy()
    np.testing.assert_allclose(population, model.predict(X), rtol=1e-12)

    array_model = MixedLinearRegressor(random_slopes=[0]).fit(X.to_numpy(), y, g)
    as_array = array_model.predict(
        da.from_array(X.to_numpy(), chunks=(300, 2)),
        da.from_array(g.to_numpy(), chunks=300),
    )
    assert isinstance(as_array, da.Array) and as_array.chunks == ((300, 300, 300, 100),)
    np.testing.assert_allclose(
        as_array.compute(), array_model.predict(X.to_numpy(), g), rtol=1e-12
    )

    weights = ddf["x2"].abs()
    score = model.score(
        ddf[["x1", "x2"]], ddf["y"], groups=ddf["g"], sample_weight=weights
    )
    assert isinstance(score, float)
    assert score == pytest.approx(
        model.score(X, y, groups=g, sample_weight=X["x2"].abs()), rel=1e-12
    )
    assert model.score(ddf[["x1", "x2"]], ddf["y"]) == pytest.approx(
        model.score(X, y), rel=1e-12
    )


def test_group_column_on_a_dask_frame(client, slopes_data):
    X, y, g, ddf = slopes_data
    memory = MixedLinearRegressor(random_slopes=["x1"]).fit(X, y, groups=g)
    model = MixedLinearRegressor(random_slopes=["x1"], group_column="g")
    model.fit(ddf[["x1", "g", "x2"]], ddf["y"])
    assert_same_fit(model, memory)
    assert list(model.feature_names_in_) == ["x1", "x2"]
    predicted = model.predict(ddf[["x1", "g", "x2"]]).compute().to_numpy()
    np.testing.assert_allclose(predicted, memory.predict(X, groups=g), rtol=1e-12)
    with pytest.raises(ValueError, match="group_column"):
        model.fit(ddf[["x1", "g", "x2"]], ddf["y"], groups=ddf["g"])


def test_without_groups_and_with_a_redundant_column(client, slopes_data):
    X, y, g, ddf = slopes_data
    redundant = ddf[["x1", "x2"]].assign(x3=ddf["x1"] * 2.0)
    with pytest.warns(UserWarning, match="without groups"):
        no_groups = MixedLinearRegressor().fit(ddf[["x1", "x2"]], ddf["y"])
    ols = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]), y, rcond=None)[0]
    np.testing.assert_allclose(
        [no_groups.intercept_, *no_groups.coef_], ols, rtol=1e-10
    )
    with pytest.warns(UserWarning, match="rank deficient"):
        model = MixedLinearRegressor().fit(redundant, ddf["y"], groups=ddf["g"])
    with pytest.warns(UserWarning, match="rank deficient"):
        memory = MixedLinearRegressor().fit(X.assign(x3=X["x1"] * 2.0), y, groups=g)
    assert model.coef_[2] == 0.0
    assert_same_fit(model, memory)


# --------------------------------------------------- validation, as in memory


def with_value(ddf, column, row, value):
    frame = ddf.compute()
    frame[column] = frame[column].astype(
        object if value is None else frame[column].dtype
    )
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return dd.from_pandas(frame, npartitions=ddf.npartitions, sort=False)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("x2", np.nan, "Input X contains NaN"),
        ("x1", np.inf, "Input X contains infinity"),
        ("y", np.nan, "Input y contains NaN"),
        ("g", None, "missing labels"),
    ],
)
def test_bad_values_raise_the_in_memory_errors(
    client, slopes_data, column, value, message
):
    bad = with_value(slopes_data[3], column, 777, value)
    with pytest.raises(ValueError, match=message):
        MixedLinearRegressor().fit(bad[["x1", "x2"]], bad["y"], groups=bad["g"])


def test_inputs_that_cannot_be_matched_row_by_row(client, slopes_data):
    X, y, g, ddf = slopes_data
    model = MixedLinearRegressor()
    with pytest.raises(ValueError, match="partitioned alike"):
        model.fit(
            ddf[["x1", "x2"]], ddf["y"].repartition(npartitions=2), groups=ddf["g"]
        )
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        model.fit(
            da.from_array(X.to_numpy()),
            da.from_array(y[:-1]),
            da.from_array(g.to_numpy(), chunks=100),
        )
    with pytest.raises(TypeError, match="y is a ndarray, not a dask"):
        model.fit(ddf[["x1", "x2"]], y, groups=ddf["g"])
    with pytest.raises(ValueError, match="target y is None"):
        model.fit(ddf[["x1", "x2"]], None, groups=ddf["g"])
    with pytest.raises(ValueError, match="random slope column 'nope'"):
        MixedLinearRegressor(random_slopes=["nope"]).fit(
            ddf[["x1", "x2"]], ddf["y"], ddf["g"]
        )
    tiny = ddf.head(2, npartitions=-1)  # two rows of one group
    with pytest.raises(ValueError, match="> 1 sampled level"):
        MixedLinearRegressor().fit(
            dd.from_pandas(tiny[["x1", "x2"]], 1),
            dd.from_pandas(tiny["y"], 1),
            dd.from_pandas(tiny["g"], 1),
        )


def test_predict_checks_features_before_computing(client, slopes_data):
    X, y, g, ddf = slopes_data
    model = MixedLinearRegressor().fit(X, y, groups=g)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(ddf[["x1"]], groups=ddf["g"])
    with pytest.raises(TypeError, match="groups is a Series, not a dask"):
        model.predict(ddf[["x1", "x2"]], groups=g)


# ------------------------------------------------------------ formula models

FORMULA = "y ~ poly(x, 2) * f + (1 + x | g)"


@pytest.fixture(scope="module")
def formula_data():
    """Raw columns: a categorical (R's order: its categories), strings, gaps."""
    rng = np.random.default_rng(7)
    n, n_groups = 480, 16
    g = rng.integers(0, n_groups, n)
    x = rng.uniform(0.5, 4.0, n)
    f = rng.choice(["lo", "mid", "hi"], n)
    slope = 0.3 * rng.normal(size=n_groups)
    y = (
        1.0
        + 0.5 * x
        - 0.2 * x**2
        + 0.7 * (f == "hi")
        + rng.normal(size=n_groups)[g]
        + slope[g] * x
        + rng.normal(size=n)
    )
    frame = pd.DataFrame(
        {
            "y": y,
            "x": x,
            "f": pd.Categorical(f, categories=["mid", "lo", "hi"]),
            "g": [f"g{k:02d}" for k in g],
        }
    )
    frame.loc[[3, 100, 250], "x"] = np.nan
    frame.loc[[17], "y"] = np.nan
    frame.loc[[400], "g"] = None
    return frame, dd.from_pandas(frame, npartitions=5, sort=False)


def test_formula_fit_on_dask_matches_in_memory(client, formula_data):
    frame, ddf = formula_data
    with pytest.warns(UserWarning, match=r"^5 row\(s\) with a missing value"):
        memory = MixedLinearRegressor(formula=FORMULA).fit(frame)
    with pytest.warns(UserWarning, match=r"^5 row\(s\) with a missing value"):
        on_dask = MixedLinearRegressor(formula=FORMULA).fit(ddf)
    names = on_dask._spec.features
    assert names == memory._spec.features
    assert names[:4] == ["poly(x, 2)1", "poly(x, 2)2", "flo", "fhi"]
    close(
        pd.Series(on_dask.coef_, index=names)[memory._spec.features],
        memory.coef_,
        1e-8,
    )
    assert_same_fit(on_dask, memory)
    assert on_dask._design.stats.n == memory._design.stats.n == len(frame) - 5
    assert isinstance(on_dask.fitted_values_, da.Array)
    close(on_dask.fitted_values_.compute(), memory.fitted_values_, 1e-10)
    close(on_dask.residuals_.compute(), memory.residuals_, 1e-10)


def test_formula_transforms_learned_on_partitions_equal_in_memory(client, formula_data):
    """poly (one pass per degree), scale and levels, on transformed arguments."""
    from skmixed._dask import learn_formula, row_partitions
    from skmixed._formula import FormulaMatrices, parse_formula

    frame, ddf = formula_data
    formula = "y ~ poly(log(x), 3) + scale(I(x^2)) + center(x) + f + (0 + x | g)"
    memory = FormulaMatrices.fit(parse_formula(formula), frame)
    on_dask = learn_formula(formula, ddf._meta, row_partitions(ddf, y=None))
    assert on_dask.fixed_names == memory.fixed_names
    assert on_dask.random_names == memory.random_names
    assert on_dask.group_levels == memory.group_levels
    table, expected = on_dask._variable_table(), memory._variable_table()
    for key, var in expected.items():
        assert table[key].levels == var.levels, key
        for slot, params in var.state.items():
            for name, value in params.items():
                close(table[key].state[slot][name], value, 1e-12, f"{key} {name}")
    poly = expected["fixed", "poly(log(x), 3)"].state[0]
    assert poly["alpha"].shape == (3,) and poly["norm2"].shape == (5,)
    close(on_dask.fixed(frame)[0], memory.fixed(frame)[0], 1e-12, "model matrices")


def test_formula_predict_and_score_on_dask(client, formula_data):
    frame, _ = formula_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(formula=FORMULA).fit(frame)
    new = frame.assign(g=frame["g"].where(frame["x"] > 1.0, "unseen"))
    ddf = dd.from_pandas(new, npartitions=4, sort=False)
    predicted = model.predict(ddf)
    assert isinstance(predicted, dd.Series)
    assert predicted.npartitions == 4
    expected = model.predict(new)
    # x missing (y is not needed; a missing g is a new level)
    assert np.isnan(expected).sum() == 3
    np.testing.assert_allclose(predicted.compute().to_numpy(), expected, rtol=1e-12)
    population = model.predict(ddf, random_effects="none").compute().to_numpy()
    np.testing.assert_allclose(
        population, model.predict(new, random_effects="none"), rtol=1e-12
    )
    assert model.score(ddf) == pytest.approx(model.score(new), rel=1e-12)
    weights = ddf["x"].fillna(1.0)
    assert model.score(
        ddf.drop(columns="y"), ddf["y"].fillna(0.0), sample_weight=weights
    ) == pytest.approx(
        model.score(
            new.drop(columns="y"),
            new["y"].fillna(0.0),
            sample_weight=new["x"].fillna(1.0),
        ),
        rel=1e-12,
    )
    with pytest.raises(ValueError, match="groups must be None"):
        model.predict(ddf, groups=ddf["g"])


# -------------------------------------------------- the pieces and the promises


def test_statistics_of_row_blocks_add_up():
    X, y, g = simulate(3, n_groups=15, group_size=10)
    rng = np.random.default_rng(0)
    codes = [pd.factorize(g)[0], rng.integers(0, 6, len(y))]
    model = fit_quietly(
        MixedLinearRegressor(random_slopes={"a": ["x1"]}),
        X,
        y,
        pd.DataFrame({"a": g, "b": codes[1]}),
    )
    design = model._design
    order = [["a", "b"].index(f.name) for f in design.factors]

    def stats(rows):
        Xr, yr = X.to_numpy()[rows], y[rows]
        W = fixed_columns(Xr, yr, True, design.scaling)
        Zs = [
            random_columns(Xr, f, s)
            for f, s in zip(design.factors, design.scaling.z_scale)
        ]
        return sufficient_statistics(
            W, [codes[k][rows] for k in order], Zs, design.factors, n=len(rows)
        )

    rows = np.arange(len(y))
    whole = stats(rows)
    summed = add_statistics(
        add_statistics(stats(rows[:50]), stats(rows[50:50])), stats(rows[50:])
    )
    assert summed.n == whole.n
    close(summed.WtW, whole.WtW, 1e-12)
    close(summed.first.ZtZ, whole.first.ZtZ, 1e-12)
    close(summed.first.ZtW, whole.first.ZtW, 1e-12)
    close(summed.others.Z2tZ1.toarray(), whole.others.Z2tZ1.toarray(), 1e-12)
    close(summed.others.Z2tZ2, whole.others.Z2tZ2, 1e-12)
    close(summed.others.Z2tW, whole.others.Z2tW, 1e-12)


def test_import_skmixed_does_not_import_dask():
    code = (
        "import sys, skmixed; "
        "print(sorted(m for m in sys.modules if m.startswith(('dask', 'distributed'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


LARGER_THAN_A_WORKER = textwrap.dedent(
    """
    import json, resource, sys
    from distributed import Client, LocalCluster
    from skmixed import MixedLinearRegressor
    from tests._lazy_data import lazy_data

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    if __name__ == "__main__":
        n_rows, limit = int(sys.argv[1]), sys.argv[2]
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            memory_limit=limit, dashboard_address=None,
        ) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("skmixed"))
            workers = sorted(client.scheduler_info()["workers"])
            X, y, g = lazy_data(n_rows, 1000, 250_000)
            before = peak_mib()
            model = MixedLinearRegressor(random_slopes=[0]).fit(X, y, groups=g)
            print(json.dumps(dict(
                before=before, after=peak_mib(), n=int(model._design.stats.n),
                coef=model.coef_.tolist(), sigma=model.sigma_,
                same_workers=workers == sorted(client.scheduler_info()["workers"]),
            )))
    """
)


@pytest.mark.slow
def test_data_larger_than_a_worker_never_reach_the_driver(tmp_path):
    """14M rows (430 MiB) on workers limited to 400 MiB each; driver measured.

    The driver runs in a fresh process so that its peak resident memory
    (``ru_maxrss``) reflects this fit alone; the workers are processes of
    their own, so their memory is not counted in it.
    """
    n_rows, limit_mib = 14_000_000, 400
    data_mib = n_rows * 4 * 8 / 2**20
    assert data_mib > limit_mib
    script = tmp_path / "driver.py"
    script.write_text(LARGER_THAN_A_WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script), str(n_rows), f"{limit_mib}MiB"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] == n_rows
    assert result["same_workers"]  # no worker was restarted for lack of memory
    assert result["after"] - result["before"] < data_mib / 8
    # x0's slope varies by group (SD 0.5, 1000 groups): its SE is about 0.016
    np.testing.assert_allclose(result["coef"], [0.5, -0.3], atol=0.05)
    assert result["sigma"] == pytest.approx(1.0, abs=0.01)
