"""Estimated marginal means and their contrasts, as R's emmeans.

emmeans (Lenth) works on a *reference grid*: every combination of the levels
of the factors of the fixed part, with each covariate at its mean (or at the
values ``at`` gives).  A grid row's prediction is ``x' beta``, ``x`` the row of
the fixed-effects model matrix that R's ``model.matrix`` builds for it (the
formula's contrasts, interactions, ``poly()`` and ``scale()`` included).  The
marginal mean of a level of the factors named in ``specs`` is the average of
the predictions over the other factors' levels with equal weights, again a
linear function ``l' beta``; a contrast of marginal means is ``c' L beta``.

Each linear function gets its standard error and degrees of freedom from one of

- Kenward and Roger (pbkrtest's adjusted covariance of ``beta`` and its df,
  emmeans' default for ``lmer`` fits), or
- Satterthwaite (lmerTest's df; the SEs from ``Var(beta)``).

Contrast p-values are adjusted as emmeans adjusts them: Tukey's studentized
range for one family of pairwise comparisons (``ptukey(sqrt(2) |t|, k, df)``),
Sidak, Bonferroni or Holm over the contrasts of the family.  As in emmeans,
``adjust="tukey"`` for contrasts that are not pairwise comparisons becomes
Sidak, and one contrast is never adjusted.
"""

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from .._formula import INTERCEPT
from ._emmeans_format import emmeans_cells, render_html, render_text
from ._p_adjust import adjust_p_values
from ._reference_grid import means_linfct
from ._wald import check_level

DDF_METHODS = ("kenward-roger", "satterthwaite")
ADJUST_METHODS = ("tukey", "dunnettx", "sidak", "bonferroni", "holm", "none")
# emmeans' default adjustment of each contrast method
DEFAULT_ADJUST = {
    "pairwise": "tukey",
    "revpairwise": "tukey",
    "trt.vs.ctrl": "dunnettx",
    "poly": "none",
}
CONTRAST_METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl", "poly")
POLY_NAMES = ["linear", "quadratic", "cubic", "quartic"]
_PARENS = re.compile(r"-|\+|/|\*")  # emmeans' option parens: such labels get ( )


# --------------------------------------------------------------------------- #
# Result types                                                                 #
# --------------------------------------------------------------------------- #


class _EmmeansResult:
    """A ``table`` read as a frame, printed from ``_cells()`` and ``_footer()``."""

    def __getitem__(self, key):
        return self.table[key]

    def __len__(self):
        return len(self.table)

    def __str__(self):
        return render_text(self._cells(), self._footer())

    def __repr__(self):
        return str(self)

    def _repr_html_(self):
        return render_html(self._cells(), self._footer())


@dataclass(repr=False)  # printed as emmeans prints, not as a dataclass
class MarginalMeans(_EmmeansResult):
    """Estimated marginal means (emmeans' ``summary(emmeans(...))``).

    Attributes
    ----------
    table : DataFrame
        One row per combination of the levels of ``specs`` (the first factor
        varying fastest, as emmeans orders them), indexed by the levels (a
        MultiIndex for several factors), with columns ``estimate``,
        ``std_error``, ``df``, ``lower`` and ``upper``.
    linfct : DataFrame
        The linear function of the fixed effects each mean is (rows as
        ``table``, columns the fixed effects): emmeans' ``linfct``.
    specs : list of str
    ddf : str
    level : float
    averaged_over : list of str
        The factors averaged over with equal weights.
    covariates : dict
        Each covariate's value(s) in the reference grid.
    by : list of str
        The factors that group the means (emmeans' ``by``).
    """

    table: pd.DataFrame
    linfct: pd.DataFrame
    specs: list
    ddf: str
    level: float
    averaged_over: list = field(default_factory=list)
    covariates: dict = field(default_factory=dict)
    by: list = field(default_factory=list)
    numeric_columns: list = field(default_factory=list, repr=False)

    def to_frame(self):
        """The table with the levels as columns first, as emmeans prints it."""
        return self.table.reset_index()

    def _cells(self):
        frame = self.to_frame()
        numeric = [s for s in [*self.specs, *self.by] if s in self.numeric_columns]
        return emmeans_cells(
            {s: frame[s].astype(str).tolist() for s in self.specs},
            _by_blocks(frame, self.by),
            {
                "emmean": frame["estimate"],
                "SE": frame["std_error"],
                "df": frame["df"],
                "lower.CL": frame["lower"],
                "upper.CL": frame["upper"],
            },
            numeric,
        )

    def _footer(self):
        lines = []
        if self.averaged_over:
            lines.append(
                "Results are averaged over the levels of: "
                + ", ".join(self.averaged_over)
            )
        lines.append(f"Degrees-of-freedom method: {self.ddf}")
        lines.append(f"Confidence level used: {self.level:g}")
        return lines


@dataclass(repr=False)
class Contrasts(_EmmeansResult):
    """Contrasts of marginal means (emmeans' ``summary(contrast(...))``).

    Attributes
    ----------
    table : DataFrame
        Indexed by the contrasts' labels as emmeans writes them
        (``"Golden Rain - Marvellous"``, ``"nitro0.2 - nitro0"``,
        ``"linear"``), and the ``by`` levels if any, with columns
        ``estimate``, ``std_error``, ``df``, ``t_value`` and ``p_value``
        (adjusted).
    coefficients : DataFrame
        The contrast coefficients over the marginal means.
    linfct : DataFrame
        The linear function of the fixed effects each contrast is.
    method, adjust : str
        The contrast method and the p-value adjustment used (which emmeans
        may change: Tukey's for contrasts that are not pairwise comparisons
        becomes Sidak's; one contrast is not adjusted).
    family_size : int
        The number of means compared (Tukey) or contrasts (the others).
    ddf : str
    averaged_over : list of str
    by : list of str
        The factors within whose levels the means are compared.
    """

    table: pd.DataFrame
    coefficients: pd.DataFrame
    linfct: pd.DataFrame
    method: str
    adjust: str
    family_size: int
    ddf: str
    averaged_over: list = field(default_factory=list)
    note: str | None = None
    by: list = field(default_factory=list)
    numeric_columns: list = field(default_factory=list, repr=False)

    def _cells(self):
        t = self.table.reset_index()
        return emmeans_cells(
            {"contrast": t["contrast"].astype(str).tolist()},
            _by_blocks(t, self.by),
            {
                "estimate": t["estimate"],
                "SE": t["std_error"],
                "df": t["df"],
                "t.ratio": t["t_value"],
                "p.value": t["p_value"],
            },
            [b for b in self.by if b in self.numeric_columns],
        )

    def _footer(self):
        lines = []
        if self.averaged_over:
            lines.append(
                "Results are averaged over the levels of: "
                + ", ".join(self.averaged_over)
            )
        lines.append(f"Degrees-of-freedom method: {self.ddf}")
        if self.adjust != "none":
            what = (
                f"for comparing a family of {self.family_size} estimates"
                if self.adjust == "tukey"
                else f"for {self.family_size} tests"
            )
            lines.append(f"P value adjustment: {self.adjust} method {what}")
        return lines


# --------------------------------------------------------------------------- #
# Public functions                                                             #
# --------------------------------------------------------------------------- #


def marginal_means(
    model, specs, at=None, ddf="kenward-roger", level=0.95, data=None, by=None
):
    """Estimated marginal means of a formula model, as R's ``emmeans``.

    The reference grid holds every combination of the levels of the factors
    (categorical variables) of the fixed part, each covariate at its mean on
    the training rows; the mean of a level of ``specs`` averages the grid's
    predictions over the other factors with equal weights (emmeans'
    ``weights = "equal"``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted from a formula.
    specs : str or list of str
        The factor(s) whose levels (or combinations of levels) get a mean.
        A covariate given several values in ``at`` may be named too.
    at : dict, default=None
        Values to fix in the grid: ``{"nitro": 0.6}`` for a covariate (a list
        gives several grid values, averaged over unless named in ``specs``),
        ``{"Variety": ["Victory"]}`` to restrict a factor's levels.
    ddf : {"kenward-roger", "satterthwaite"}, default="kenward-roger"
        Degrees of freedom (and, for Kenward-Roger, the adjusted covariance
        of the fixed effects), as emmeans' ``lmer.df``.
    level : float, default=0.95
        Confidence level of the intervals.
    data : DataFrame, default=None
        The training data, to take the covariates' means from.  Without it
        they come from the fit (a covariate entering the model matrix as
        itself, or through ``poly()``, ``scale()`` or ``center()``); give
        ``data`` or ``at`` for a covariate only seen through other functions
        (``log(x)``).
    by : str or list of str, default=None
        Factor(s) whose levels split the means into groups (emmeans' ``by``,
        ``~ Variety | nitro``): the means of ``specs`` at each of their levels.

    Returns
    -------
    MarginalMeans
        ``.table``: a DataFrame indexed by the levels with columns
        ``estimate``, ``std_error``, ``df``, ``lower`` and ``upper``; prints
        as emmeans does.

    See Also
    --------
    contrasts : Comparisons of the marginal means.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> d = load_biomass().frame
    >>> d["Soil"] = pd.Categorical(["clay", "loam", "sand", "clay"] * 25)
    >>> model = MixedLinearRegressor(
    ...     formula="Biomass ~ Temp + N + Soil + (1 | Site)").fit(d)
    >>> mm = marginal_means(model, "Soil", ddf="satterthwaite")
    >>> mm.table.round(3)
          estimate  std_error      df  lower   upper
    Soil
    clay    10.189      0.298  25.539  9.575  10.802
    loam     9.965      0.343  41.644  9.273  10.658
    sand    10.100      0.345  42.260  9.405  10.795
    """
    check_is_fitted(model)
    specs, by = _check_specs(specs), _check_by(by, specs)
    ddf = _check_choice(ddf, DDF_METHODS, "ddf")
    level = check_level(level)
    means, L, info = means_linfct(model, specs + by, at, data)
    L, estimate, std_error, df = _estimates(model, L, ddf)
    half = stats.t.ppf(0.5 + level / 2, df) * std_error
    table = pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "lower": estimate - half,
            "upper": estimate + half,
        },
        index=means,
    )
    linfct = pd.DataFrame(L, index=means, columns=model.fixed_effects_.index)
    return MarginalMeans(
        table,
        linfct,
        specs,
        ddf,
        level,
        averaged_over=info["averaged_over"],
        covariates=info["covariates"],
        by=by,
        numeric_columns=info["numeric_grid"],
    )


def contrasts(
    model,
    specs,
    method="pairwise",
    adjust=None,
    ddf="kenward-roger",
    at=None,
    ref=0,
    data=None,
    by=None,
):
    """Contrasts of estimated marginal means, as emmeans' ``contrast``.

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted from a formula.
    specs : str or list of str
        The factor(s) whose marginal means are compared (see
        :func:`marginal_means`).
    method : {"pairwise", "revpairwise", "trt.vs.ctrl", "poly"}, default="pairwise"
        All pairs (``"a - b"`` for ``a`` before ``b``; ``revpairwise`` the
        other way round), each level against the control ``ref``
        (``"b - a"``), or orthogonal polynomial contrasts over the levels in
        their order (integer coefficients, ``"linear"``, ``"quadratic"``, ...).
    adjust : {"tukey", "dunnettx", "sidak", "bonferroni", "holm", "none"}, \
default=None
        P-value adjustment over the contrasts, as emmeans: Tukey's
        studentized range for pairwise comparisons (Sidak for the other
        methods, as emmeans changes it), emmeans' ``dunnettx`` approximation
        of Dunnett's adjustment, Sidak, Bonferroni, Holm or none.  None
        takes emmeans' default for the method: ``"tukey"`` for pairwise
        comparisons, ``"dunnettx"`` for ``"trt.vs.ctrl"``, ``"none"`` for
        ``"poly"``.
    ddf : {"kenward-roger", "satterthwaite"}, default="kenward-roger"
    at, data :
        As in :func:`marginal_means`.
    ref : int or str, default=0
        The control level of ``"trt.vs.ctrl"`` (position or label).
    by : str or list of str, default=None
        Compare the means of ``specs`` within each level of these factors
        (emmeans' ``by``); p-values are adjusted within each group.

    Returns
    -------
    Contrasts
        ``.table``: a DataFrame indexed by emmeans' labels, with columns
        ``estimate``, ``std_error``, ``df``, ``t_value`` and ``p_value``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> d = load_biomass().frame
    >>> d["Soil"] = pd.Categorical(["clay", "loam", "sand", "clay"] * 25)
    >>> model = MixedLinearRegressor(
    ...     formula="Biomass ~ Temp + N + Soil + (1 | Site)").fit(d)
    >>> contrasts(model, "Soil", ddf="satterthwaite").table.round(3)
                 estimate  std_error      df  t_value  p_value
    contrast
    clay - loam     0.224      0.290  77.091    0.771    0.722
    clay - sand     0.089      0.293  76.882    0.304    0.950
    loam - sand    -0.134      0.342  77.818   -0.393    0.919
    """
    check_is_fitted(model)
    specs, by = _check_specs(specs), _check_by(by, specs)
    method = _check_choice(method, CONTRAST_METHODS, "method")
    if adjust is None:
        adjust = DEFAULT_ADJUST[method]
    adjust = _check_choice(adjust, ADJUST_METHODS, "adjust")
    ddf = _check_choice(ddf, DDF_METHODS, "ddf")
    means, L, info = means_linfct(model, specs + by, at, data)
    groups = _group_rows(means, len(specs))
    keys = [k[: len(specs)] if by else k for k in means]
    first = groups[0][1]
    labels = _contrast_level_labels([keys[i] for i in first], specs, info["numeric"])
    raw = [" ".join(map(str, np.atleast_1d(keys[i]))) for i in first]
    C0, names = _contrast_coefficients(method, labels, ref, raw)
    C = np.zeros((len(groups) * len(names), len(means)))
    for g, (_, rows) in enumerate(groups):
        C[g * len(names) : (g + 1) * len(names), rows] = C0
    Lc, estimate, std_error, df = _estimates(model, C @ L, ddf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_value = estimate / std_error
    p_value = np.empty_like(t_value)
    for g in range(len(groups)):
        part = slice(g * len(names), (g + 1) * len(names))
        p_value[part], used, size, note = adjust_p_values(
            t_value[part],
            df[part],
            adjust,
            n_means=len(first),
            pairwise=method in ("pairwise", "revpairwise"),
        )
    if note is not None:  # emmeans says so as a message
        warnings.warn(note, UserWarning, stacklevel=2)
    table = pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "t_value": t_value,
            "p_value": p_value,
        },
        index=_contrast_index(names, [key for key, _ in groups], by),
    )
    coefficients = pd.DataFrame(C, index=table.index, columns=means)
    linfct = pd.DataFrame(Lc, index=table.index, columns=model.fixed_effects_.index)
    return Contrasts(
        table,
        coefficients,
        linfct,
        method,
        used,
        size,
        ddf,
        info["averaged_over"],
        note,
        by,
        info["numeric_grid"],
    )


def _check_by(by, specs):
    by = [] if by is None else _check_specs(by)
    if set(by) & set(specs):
        raise ValueError(f"by {by} repeats a factor of specs {specs}.")
    return by


def _group_rows(means, n_specs):
    """``[(by key, row positions)]`` in the order of the means (one group
    when there is no ``by``)."""
    groups = {}
    for i, key in enumerate(means):
        key = key[n_specs:] if isinstance(key, tuple) else ()
        groups.setdefault(key, []).append(i)
    return list(groups.items())


def _contrast_index(names, by_keys, by):
    if not by:
        return pd.Index(names, name="contrast")
    tuples = [(name, *key) for key in by_keys for name in names]
    return pd.MultiIndex.from_tuples(tuples, names=["contrast", *by])


def _by_blocks(frame, by):
    """The ``by`` columns' labels (emmeans lists the rows by them), or None."""
    return {b: frame[b].astype(str).tolist() for b in by} or None


# --------------------------------------------------------------------------- #
# Arguments                                                                    #
# --------------------------------------------------------------------------- #


def _check_specs(specs):
    if isinstance(specs, str):
        specs = [specs]
    specs = list(specs)
    if not specs or not all(isinstance(s, str) for s in specs):
        raise ValueError(f"specs must name one or more factors; got {specs!r}.")
    if len(set(specs)) < len(specs):
        raise ValueError(f"specs names a factor twice: {specs!r}.")
    return specs


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value


# --------------------------------------------------------------------------- #
# Contrast coefficients                                                        #
# --------------------------------------------------------------------------- #


def _contrast_level_labels(keys, specs, numeric_specs):
    """emmeans' level labels: factors with numeric levels get their name in
    front (``nitro0.2``); several factors joined by a space; labels with an
    operator parenthesised."""
    tuples = [k if isinstance(k, tuple) else (k,) for k in keys]
    labels = []
    for key in tuples:
        parts = [
            f"{s}{lab}" if s in numeric_specs else str(lab)
            for s, lab in zip(specs, key)
        ]
        label = " ".join(parts)
        labels.append(f"({label})" if _PARENS.search(label) else label)
    return labels


def _contrast_coefficients(method, labels, ref, raw):
    k = len(labels)
    if method in ("pairwise", "revpairwise"):
        if method == "pairwise":
            pairs = [(i, j) for i in range(k - 1) for j in range(i + 1, k)]
        else:  # emmeans' revpairwise.emmc: each level minus the earlier ones
            pairs = [(i, j) for i in range(1, k) for j in range(i)]
        C = np.zeros((len(pairs), k))
        for row, (i, j) in enumerate(pairs):
            C[row, i], C[row, j] = 1.0, -1.0
        return C, [f"{labels[i]} - {labels[j]}" for i, j in pairs]
    if method == "trt.vs.ctrl":
        r = (
            ref
            if isinstance(ref, int | np.integer)
            else _ref_position(ref, labels, raw)
        )
        if not 0 <= r < k:
            raise ValueError(f"ref must be a level position in 0..{k - 1}; got {ref}.")
        rows, names = [], []
        for i in range(k):
            if i != r:
                row = np.zeros(k)
                row[i], row[r] = 1.0, -1.0
                rows.append(row)
                names.append(f"{labels[i]} - {labels[r]}")
        return np.array(rows).reshape(-1, k), names
    return _poly_contrasts(k)


def _ref_position(ref, labels, raw):
    """The position of the control level, given as a label or a raw level."""
    for i, (label, level) in enumerate(zip(labels, raw)):
        if str(ref) in (label, level):
            return i
    raise ValueError(f"ref {ref!r} is not one of the levels {raw}.")


def _poly_contrasts(k):
    """emmeans' ``poly.emmc``: R's ``poly(1:k)`` scaled to integers."""
    if k < 2:
        raise ValueError("polynomial contrasts need at least two levels.")
    degree = min(6, k - 1)
    x = np.arange(1.0, k + 1)
    Q, R = np.linalg.qr(np.vander(x - x.mean(), degree + 1, increasing=True))
    M = (Q * np.sign(np.diag(R)))[:, 1:]  # positive leading coefficients, as R's
    rows = []
    for j in range(degree):
        con = M[:, j]
        con = con / con[con > 0.01].min()
        z = np.max(np.abs(con - np.round(con)))
        while z > 0.05:
            con = con / z
            z = np.max(np.abs(con - np.round(con)))
        rows.append(np.round(con))
    names = POLY_NAMES + [f"degree {d}" for d in range(5, 21)]
    return np.array(rows), names[:degree]


# --------------------------------------------------------------------------- #
# Standard errors and degrees of freedom                                       #
# --------------------------------------------------------------------------- #


def _estimates(model, L_full, ddf):
    """``(L, estimate, SE, df)`` of linear functions over all the model
    matrix's columns; ``L`` over the fitted ones.  Functions that are not
    estimable (a rank-deficient fit: emmeans' ``nonEst``) are NaN."""
    names = list(model._spec.matrices.fixed_names)
    L = L_full[:, [names.index(n) for n in model.fixed_effects_.index]]
    ok = _estimable(model, L_full)
    estimate = np.full(L.shape[0], np.nan)
    std_error, df = estimate.copy(), estimate.copy()
    if ok.any():
        estimate[ok] = L[ok] @ model.fixed_effects_.to_numpy()
        std_error[ok], df[ok] = _se_df(model, L[ok], ddf)
    return L, estimate, std_error, df


def _estimable(model, L_full, tol=1e-8):
    """emmeans' ``is.estble``: no component in the null space of the
    training rows' model matrix (all estimable when no column was dropped)."""
    names = list(model._spec.matrices.fixed_names)
    if len(names) == len(model.fixed_effects_):
        return np.ones(L_full.shape[0], dtype=bool)
    train_X = model._train_X
    train_X = train_X.toarray() if hasattr(train_X, "toarray") else train_X
    columns = dict(zip(model._spec.features, np.asarray(train_X, dtype=float).T))
    columns[INTERCEPT] = np.ones(train_X.shape[0])
    X = np.column_stack([columns[n] for n in names])
    _, singular, Vt = np.linalg.svd(X, full_matrices=True)
    rank = int(np.sum(singular > 1e-7 * singular[0]))
    null = Vt[rank:].T  # orthonormal basis of the null space
    check = np.sum((L_full @ null) ** 2, axis=1)
    return check < tol * np.sum(L_full**2, axis=1)


def _se_df(model, L, ddf):
    """SEs and df of the linear functions ``L beta`` (rows of L)."""
    if ddf == "kenward-roger":
        from ._kenward_roger import kenward_roger_t

        if getattr(model, "_method", "reml") != "reml":
            raise ValueError(
                "Kenward-Roger's SEs and df need a REML fit (as pbkrtest); this "
                "model was fitted by ML: refit it with method='reml' or pass "
                "ddf='satterthwaite'."
            )

        std_error, df = kenward_roger_t(model, L)
        return np.asarray(std_error, dtype=float), np.asarray(df, dtype=float)
    from ._satterthwaite import contrast_df

    V = model.fixed_effects_cov_.to_numpy()
    variance = np.einsum("ci,ij,cj->c", L, V, L)
    return np.sqrt(np.clip(variance, 0.0, None)), contrast_df(model, L)
