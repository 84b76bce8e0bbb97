"""New responses from a fitted model, as lme4's ``simulate``.

``y* = X beta + sum_k Z_k b*_k + e*`` with ``e* ~ N(0, sigma^2)`` and, per
level of each grouping factor, ``b* ~ N(0, Sigma)`` (``use_re="new"``,
lme4's ``use.u = FALSE``) or the predicted random effects for levels seen in
``fit`` (``use_re="fitted"``, lme4's ``use.u = TRUE``; unseen levels still get
new draws).  Rows with the same label share their level's draw.  Without
``groups`` every row counts as a level of its own, not seen in ``fit``: its
response is drawn from the marginal distribution around the population
prediction.

The random effects are drawn as ``sigma T z`` with ``T`` the relative
covariance factor (``theta_``), which is valid for singular covariances too.
"""

import numbers

import numpy as np
import pandas as pd

from .._covariance import n_theta, theta_to_factor
from .._design import dense_column
from .._groups import check_groups, encode_levels, lookup_levels
from .._row_metadata import check_offset
from .._sklearn import validate_predict_input

USE_RE = ("new", "fitted")


def seed_sequence(random_state):
    """A :class:`numpy.random.SeedSequence` from any accepted ``random_state``.

    None (fresh entropy), an int, a ``SeedSequence``, a ``Generator`` (one
    draw from it, so it advances) or a legacy ``RandomState``.
    """
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    is_int = isinstance(random_state, numbers.Integral)
    if random_state is None or (is_int and not isinstance(random_state, bool)):
        return np.random.SeedSequence(random_state)
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(2**31 - 1)))
    raise TypeError(
        "random_state must be None, an int, a numpy SeedSequence, Generator or "
        f"RandomState; got {random_state!r}."
    )


def check_use_re(use_re):
    if use_re not in USE_RE:
        raise ValueError(f"use_re must be 'new' or 'fitted'; got {use_re!r}.")
    return use_re


def check_rows(model, X, groups):
    """``X`` validated as in ``predict``, and level codes for every row.

    Returns ``(X, Z, codes, n_levels)``: the fixed-effect features, the
    random-effect columns (``X`` itself for array models), per grouping
    factor codes ``0..m-1`` for the levels seen in ``fit`` and ``m, m+1,
    ...`` for each distinct unseen label (every row, without ``groups``),
    and the number of levels these codes span.
    """
    X, Z, frame = _model_rows(model, X, groups)
    n = X.shape[0]
    codes, n_levels = {}, {}
    for f in model._factors:
        if frame is None:
            codes[f.name] = f.n_levels + np.arange(n)
            n_levels[f.name] = f.n_levels + n
            continue
        seen = lookup_levels(frame[f.name], f.levels)
        unseen = seen < 0
        new_codes, new_levels = encode_levels(
            pd.Series(frame[f.name].to_numpy()[unseen])
        )
        seen[unseen] = f.n_levels + new_codes
        codes[f.name] = seen
        n_levels[f.name] = f.n_levels + len(new_levels)
    return X, Z, codes, n_levels


def _model_rows(model, X, groups):
    """The features, random-effect columns and group labels of some rows."""
    if model._spec.matrices is None:
        X, groups = validate_predict_input(model, X, groups, accept_sparse=True)
        frame = None
        if groups is not None and model._factors:
            frame = model._match_groups(check_groups(groups, X.shape[0]))
        return X, X, frame
    if groups is not None:
        raise ValueError(
            "a formula model reads its grouping factors from X: groups must be None."
        )
    rows = model._spec.model_frame(X)
    if not rows.complete.all():
        raise ValueError(
            f"{int((~rows.complete).sum())} row(s) of X miss a value the formula "
            "uses: simulations and intervals need complete rows."
        )
    return rows.X, rows.Z, rows.groups


def relative_factors(model):
    """Per grouping factor (``model._factors`` order), ``T`` in original units.

    ``Sigma = sigma_^2 T T'`` (``theta_`` is in the same order).
    """
    Ts, start = {}, 0
    for f in model._factors:
        k = n_theta(f.n_terms, f.diagonal)
        theta = model.theta_[start : start + k]
        Ts[f.name] = theta_to_factor(theta, f.n_terms, f.diagonal)
        start += k
    return Ts


def term_columns(Z, factor):
    """The random-effect columns of one factor (None: the intercept)."""
    return [None] * factor.intercept + [
        dense_column(Z, j) for j in factor.slope_columns
    ]


class ResponseSimulator:
    """Draws ``y*`` for fixed rows; each call takes one Generator.

    Draws are made factor by factor (in ``model._factors`` order), then the
    residuals, so a given Generator state always gives the same ``y*``.
    """

    def __init__(self, model, X, Z, codes, n_levels, use_re="new", weights=None):
        self.mean = model._predict_population(X)
        self.sigma = model.sigma_
        # Prior weights: the residual SD of row i is sigma / sqrt(w_i).
        self.residual_sd = (
            self.sigma if weights is None else self.sigma / np.sqrt(weights)
        )
        Ts = relative_factors(model)
        self.terms = []
        for f in model._factors:
            fitted = None
            if use_re == "fitted":
                fitted = model.random_effects_[f.name].to_numpy()
            self.terms.append(
                (
                    codes[f.name],
                    n_levels[f.name],
                    term_columns(Z, f),
                    self.sigma * Ts[f.name],
                    fitted,
                )
            )

    def __call__(self, rng):
        y = self.mean.copy()
        for codes, n_levels, columns, root, fitted in self.terms:
            first_new = 0 if fitted is None else fitted.shape[0]
            draws = rng.standard_normal((n_levels - first_new, root.shape[0]))
            effects = draws @ root.T
            if fitted is not None:
                effects = np.vstack([fitted, effects])
            per_row = effects[codes]
            for t, column in enumerate(columns):
                y += per_row[:, t] if column is None else per_row[:, t] * column
        y += self.residual_sd * rng.standard_normal(y.shape[0])
        return y


def simulate(model, X, groups=None, n=1, random_state=None, use_re="new", offset=None):
    """Responses simulated from a fitted model (lme4's ``simulate``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    X : array-like of shape (n_samples, n_features)
    groups : array-like of shape (n_samples,) or (n_samples, n_factors)
        Group labels as in ``fit``.  None: every row is a new level.
    n : int, default=1
        Number of simulated responses.
    random_state : None, int, SeedSequence or Generator
    use_re : {"new", "fitted"}, default="new"
        Draw new random effects for every level, or keep the predicted ones
        of the levels seen in ``fit`` (unseen levels get new draws).
    offset : array-like of shape (n_samples,), default=None
        The rows' offset (for a model fitted with one), added to each draw.

    Returns
    -------
    ndarray of shape (n_samples, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import simulate
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 5)
    >>> X = rng.normal(size=(50, 1))
    >>> y = X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=50)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> simulate(model, X, groups, n=3, random_state=0).shape
    (50, 3)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}.")
    check_use_re(use_re)
    X, Z, codes, n_levels = check_rows(model, X, groups)
    offset = check_offset(offset, X.shape[0])
    simulator = ResponseSimulator(model, X, Z, codes, n_levels, use_re)
    rng = np.random.default_rng(seed_sequence(random_state))
    draws = np.column_stack([simulator(rng) for _ in range(n)])
    return draws if offset is None else draws + offset[:, None]
