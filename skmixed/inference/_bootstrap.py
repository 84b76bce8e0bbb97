"""Parametric bootstrap, as lme4's ``bootMer``, and percentile intervals.

Each replicate simulates ``y*`` from the fitted model (new random effects
for every level and new residuals, lme4's ``use.u = FALSE``), refits the
model to it starting from the estimates, and applies a statistic to the
refitted model.

The rows and the factor coding do not change between replicates, so a refit
needs only the products with the new response: ``Z'y*``, ``X'y*`` and
``y*'y*``.  They are computed by :func:`skmixed._design.sufficient_statistics`
on the simulated responses alone, a few replicates at a time, and spliced into
the fitted model's statistics.  The rows come from ``fit``, which keeps a
reference to the validated ``X`` and the level codes (``_train_X``,
``_train_codes``).

Every replicate draws from its own generator, spawned from ``random_state``
with :class:`numpy.random.SeedSequence`, and its statistics are computed
column by column, so the replicates are the same whatever ``n_jobs`` and
however they are shared between processes (to the last bit in one process;
across processes up to the rounding of SIMD sums, which can depend on how
arrays happen to be aligned in memory).
"""

import copy
import math
import sys
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from scipy import sparse
from sklearn.utils.validation import check_is_fitted

from .._covariance import lower_indices, sd_and_correlation
from .._design import (
    fixed_columns,
    random_columns,
    scaled_fixed_products,
    sufficient_statistics,
    weight_columns,
)
from .._objective import (
    blas_threads_for,
)
from .._row_metadata import add_offset
from ._simulate import ResponseSimulator, seed_sequence
from ._wald import (
    check_exact_solver,
    check_inference_defined,
    check_level,
    lme4_factor_order,
    parameter_names,
)

MEMORY_PER_CHUNK = 4_000_000  # values of simulated y held at once per worker
MAX_CHUNK = 32


class RefitError(ArithmeticError):
    """A bootstrap refit without a valid optimum (numerically degenerate y*)."""


@dataclass
class BootstrapResult:
    """Replicates of a statistic from :func:`bootstrap` (lme4's ``boot`` object).

    Attributes
    ----------
    observed : ndarray
        The statistic of the fitted model (bootMer's ``t0``).
    replicates : ndarray of shape (n_boot, *observed.shape)
        The statistic of each refitted model (bootMer's ``t``); NaN where a
        refit failed.
    converged : ndarray of shape (n_boot,)
        Whether each refit's optimiser converged.
    index : Index or None
        The labels, when the statistic returned a pandas Series.
    """

    observed: np.ndarray
    replicates: np.ndarray
    converged: np.ndarray
    index: pd.Index | None = None

    @property
    def n_boot(self):
        return self.replicates.shape[0]

    def std_error(self):
        """Bootstrap standard error of the statistic (NaN replicates ignored)."""
        return np.nanstd(self.replicates, axis=0, ddof=1)

    def percentile_interval(self, level=0.95):
        """Percentile interval: ``(lower, upper)``, each shaped as ``observed``."""
        level = check_level(level)
        probabilities = [(1 - level) / 2, (1 + level) / 2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN entries
            lower, upper = np.nanquantile(self.replicates, probabilities, axis=0)
        return lower, upper


def bootstrap(
    model, statistic, n_boot=1000, random_state=None, n_jobs=None, progress="auto"
):
    """Parametric bootstrap of any statistic of a fitted model (``bootMer``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted on in-memory data.
    statistic : callable
        ``statistic(refitted_model)`` returning a scalar or an array (or a
        pandas Series) of fixed shape, e.g. ``lambda m: m.predict(X_grid)``
        for a confidence band of the population prediction.
    n_boot : int, default=1000
        Number of bootstrap replicates.
    random_state : None, int, SeedSequence or Generator
        Seeds the replicates; the result does not depend on ``n_jobs``.
    n_jobs : int, default=None
        Processes to run the refits in (joblib; None is 1, -1 all cores).
    progress : {"auto", True, False}, default="auto"
        Show a progress bar on stderr; "auto" shows it when stderr is a
        terminal and the run lasts more than two seconds.

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import bootstrap
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 10)
    >>> X = rng.normal(size=(100, 1))
    >>> y = 1 + X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=100)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> result = bootstrap(model, lambda m: m.coef_[0], n_boot=20, random_state=0)
    >>> result.replicates.shape
    (20,)
    >>> lower, upper = result.percentile_interval(0.9)
    >>> bool(lower < model.coef_[0] < upper)
    True
    """
    check_is_fitted(model)
    check_inference_defined(model, "a parametric bootstrap")
    check_exact_solver(model, "a parametric bootstrap")
    n_boot = _check_n_boot(n_boot)
    if getattr(model, "_train_X", None) is None:
        raise ValueError(
            "bootstrap needs the training rows, which this model does not keep "
            "(fitted on out-of-memory data?); refit it on in-memory X and groups."
        )
    if progress not in ("auto", True, False):
        raise ValueError(f"progress must be 'auto', True or False; got {progress!r}.")
    first = statistic(model)
    index = first.index if isinstance(first, pd.Series) else None
    observed = np.asarray(first, dtype=float)
    seeds = seed_sequence(random_state).spawn(n_boot)
    replicates = np.full((n_boot,) + observed.shape, np.nan)
    converged = np.zeros(n_boot, dtype=bool)
    n_workers = effective_n_jobs(n_jobs)
    bar = ProgressBar(n_boot, progress)
    chunks = _run_chunks(model, statistic, observed.shape, seeds, n_jobs, n_workers)
    for indices, values, ok in chunks:
        replicates[indices] = values
        converged[indices] = ok
        bar.update(len(indices))
    bar.close()
    return BootstrapResult(observed, replicates, converged, index)


def _check_n_boot(n_boot):
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer):
        raise TypeError(f"n_boot must be an integer; got {n_boot!r}.")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot}.")
    return int(n_boot)


def _run_chunks(model, statistic, shape, seeds, n_jobs, n_workers):
    """Yield ``(indices, values, converged)`` per chunk of replicates."""
    n_boot, n = len(seeds), model._train_X.shape[0]
    size = max(1, min(MAX_CHUNK, MEMORY_PER_CHUNK // max(n, 1)))
    if n_workers > 1:  # several chunks per worker, so the load stays balanced
        size = max(1, min(size, math.ceil(n_boot / (4 * n_workers))))
    chunks = [np.arange(i, min(i + size, n_boot)) for i in range(0, n_boot, size)]
    if n_workers == 1:
        for c in chunks:
            yield _replicate_chunk(model, statistic, shape, [seeds[i] for i in c], c)
        return
    tasks = (
        delayed(_replicate_chunk)(model, statistic, shape, [seeds[i] for i in c], c)
        for c in chunks
    )
    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)


def _replicate_chunk(model, statistic, shape, seeds, indices):
    """Simulate, refit and evaluate the statistic for a few replicates."""
    X, Z, codes = model._train_X, model._train_Z, model._train_codes
    n_levels = {f.name: f.n_levels for f in model._factors}
    weights = getattr(model, "_train_weights", None)
    simulator = ResponseSimulator(model, X, Z, codes, n_levels, "new", weights)
    Y = np.column_stack([simulator(np.random.default_rng(s)) for s in seeds])
    values, converged = [], []
    with warnings.catch_warnings(), blas_threads_for(model._design.factors):
        warnings.simplefilter("ignore")  # singular or slow refits are expected
        for b, stats in enumerate(response_statistics(model, X, Z, codes, Y)):
            try:
                refitted = refit(model, stats, Y[:, b])
            except RefitError:
                value = np.full(shape, np.nan)  # a failed refit counts as missing
                converged.append(False)
            else:
                value = np.asarray(statistic(refitted), dtype=float)
                converged.append(refitted.converged_)
            if value.shape != shape:
                raise ValueError(
                    f"statistic returned shape {value.shape} on a replicate but "
                    f"{shape} on the fitted model; it must keep one shape."
                )
            values.append(value)
    return indices, np.array(values), np.array(converged)


def response_statistics(model, X, Z, codes, Y):
    """The fitted model's sufficient statistics with each column of Y as y.

    Only the products with y are computed (:func:`sufficient_statistics` on
    the scaled responses alone); the rest is reused from ``model._design``.
    """
    design = model._design
    scaling, stats, p = design.scaling, design.stats, design.n_fixed
    Ys = (Y - scaling.y_center) / scaling.y_scale
    Zs = [random_columns(Z, f, s) for f, s in zip(design.factors, scaling.z_scale)]
    weights = getattr(model, "_train_weights", None)
    root = None if weights is None else np.sqrt(weights)
    if root is not None:  # rows scaled by sqrt(w), as in the fit
        Ys = Ys * root[:, None]
        Zs = [weight_columns(Zk, root) for Zk in Zs]
    XtY = _fixed_products(model, X, Ys, root)
    yty = np.array([y @ y for y in Ys.T])
    new = None
    if design.factors:
        new = sufficient_statistics(
            list(Ys.T),
            [codes[f.name] for f in design.factors],
            Zs,
            design.factors,
            n=stats.n,
            WtW=np.zeros((Ys.shape[1], Ys.shape[1])),  # y*'y* across replicates: unused
        )
    for b in range(Ys.shape[1]):
        WtW = stats.WtW.copy()
        WtW[:p, p] = WtW[p, :p] = XtY[b]
        WtW[p, p] = yty[b]
        first, others = stats.first, stats.others
        if first is not None:
            ZtW = np.concatenate([first.ZtW[:, :p, :], new.first.ZtW[:, b : b + 1]], 1)
            first = replace(first, ZtW=ZtW)
        if others is not None:
            Z2tW = np.column_stack([others.Z2tW[:, :p], new.others.Z2tW[:, b]])
            others = replace(others, Z2tW=Z2tW)
        yield replace(stats, WtW=WtW, first=first, others=others)


def _fixed_products(model, X, Ys, root):
    """``W'Y*`` (replicates x kept fixed columns) of the scaled, weighted W."""
    design = model._design
    fit_intercept, scaling = model._spec.fit_intercept, design.scaling
    if sparse.issparse(X):  # the raw products, mapped as in the fit
        V = Ys if root is None else Ys * root[:, None]
        products = scaled_fixed_products(X, V, fit_intercept, scaling)
        return products[design.fixed_kept].T
    x_columns = fixed_columns(X, Ys[:, 0], fit_intercept, scaling)[:-1]
    x_columns = [x_columns[j] for j in design.fixed_kept]
    if root is not None:
        x_columns = weight_columns(x_columns, root)
    # Column by column, so that a replicate's numbers do not depend on which
    # other replicates share its chunk (bit-identical results for any n_jobs).
    return np.array(
        [[y.sum() if c is None else c @ y for c in x_columns] for y in Ys.T]
    ).reshape(Ys.shape[1], len(x_columns))


def refit(model, stats, y):
    """A copy of ``model`` refitted to new sufficient statistics of the same rows.

    The optimiser starts from the model's estimates (as lme4's ``refit``);
    the fitted attributes are set by the estimator's own ``_fit_statistics``,
    the same step as every fit.
    """
    design = replace(model._design, stats=stats)
    new = copy.copy(model)
    try:
        new._fit_statistics(
            design,
            [f.name for f in model._factors],
            model._method == "reml",
            start=model._theta_scaled,
        )
    except FloatingPointError as exc:
        raise RefitError(str(exc)) from exc
    # y is the simulated response net of the fit's offset, which the fitted
    # values (like the model's own) include.
    fitted = new._predict_conditional(
        model._train_X, model._train_Z, model._train_codes
    )
    new.fitted_values_ = add_offset(fitted, getattr(model, "_train_offset", None))
    new.residuals_ = y - fitted
    return new


# ---------------------------------------------------------------------------
# Intervals of all parameters
# ---------------------------------------------------------------------------


def model_parameters(model):
    """The parameters of ``confint`` in lme4's order, as a Series.

    Standard deviations and correlations of each grouping factor's random
    effects (NaN correlations where a standard deviation is zero), ``sigma``,
    then the fixed effects.
    """
    values = []
    for f in lme4_factor_order(model._factors):
        sd, corr = sd_and_correlation(model.random_effects_cov_[f.name].to_numpy())
        for r, c in zip(*lower_indices(f.n_terms, f.diagonal)):
            values.append(sd[r] if r == c else corr[r, c])
    values.append(model.sigma_)
    values.extend(model.fixed_effects_.to_numpy())
    return pd.Series(values, index=parameter_names(model), dtype=float)


def bootstrap_confint(
    model, level=0.95, n_boot=500, random_state=None, n_jobs=None, **kwargs
):
    """Parametric bootstrap percentile intervals of all parameters.

    lme4's ``confint(method = "boot")`` (``boot.type = "perc"``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted on in-memory data.
    level : float, default=0.95
        Confidence level.
    n_boot : int, default=500
        Number of bootstrap replicates (lme4's ``nsim`` default).
    random_state : None, int, SeedSequence or Generator
    n_jobs : int, default=None
        Processes for the refits (joblib).
    **kwargs
        ``progress``, passed to :func:`bootstrap`.

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``, rows as lme4's ``confint``:
        ``sd_<term>|<factor>``, ``cor_<term2>.<term1>|<factor>``, ``sigma``,
        then the fixed effects.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import bootstrap_confint
    >>> rng = np.random.default_rng(1)
    >>> groups = np.repeat(np.arange(12), 8)
    >>> X = rng.normal(size=(96, 1))
    >>> y = 2 + X[:, 0] + rng.normal(size=12)[groups] + rng.normal(size=96)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> ci = bootstrap_confint(model, n_boot=30, random_state=0)
    >>> list(ci.index)
    ['sd_Intercept|group', 'sigma', 'Intercept', 'x0']
    """
    unknown = set(kwargs) - {"progress"}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}.")
    level = check_level(level)
    result = bootstrap(model, model_parameters, n_boot, random_state, n_jobs, **kwargs)
    lower, upper = result.percentile_interval(level)
    return pd.DataFrame({"lower": lower, "upper": upper}, index=result.index)


# ---------------------------------------------------------------------------
# Progress on stderr (no dependency)
# ---------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second.

    ``enabled="auto"`` shows it only when stderr is a terminal and only once
    two seconds have passed (short runs stay silent).
    """

    WIDTH = 30

    def __init__(self, total, enabled="auto", stream=None):
        self.total, self.done = total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.last = time.monotonic()
        if enabled == "auto":
            isatty = getattr(self.stream, "isatty", lambda: False)
            self.delay, self.enabled = 2.0, bool(isatty())
        else:
            self.delay, self.enabled = 0.0, bool(enabled)
        self.shown = False

    def update(self, count):
        self.done += count
        now = time.monotonic()
        if not self.enabled or now - self.start < self.delay:
            return
        if self.done < self.total and now - self.last < 0.1 and self.shown:
            return
        self.last, self.shown = now, True
        filled = int(self.WIDTH * self.done / self.total)
        bar = "=" * filled + " " * (self.WIDTH - filled)
        self.stream.write(
            f"\rbootstrap [{bar}] {self.done}/{self.total} {now - self.start:.0f}s"
        )
        self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
