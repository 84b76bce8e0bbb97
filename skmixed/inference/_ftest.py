"""F-tests of the fixed-effect terms, as lmerTest's ``anova`` and ``drop1``.

Each term is tested by the hypothesis ``L beta = 0`` for a contrast matrix
``L`` of the term, chosen as lmerTest chooses it (Kuznetsova, Brockhoff &
Christensen 2017; lmerTest 3.1-3, ``R/anova_contrasts.R``):

- type III (the default): the SAS type III hypotheses.  lmerTest builds
  them in treatment coding from the "rank-deficient" design (an indicator
  per level of every factor in every term, ``get_rdX``), orthogonalises the
  contrasts of each term against those of the terms containing it (SAS's
  containment: more factors, the same covariates), and maps them to the
  coding of the fit (``contr.sum``, ``contr.poly``, ...);
- type I: sequential, from the Doolittle factorisation of ``X'X``;
- ``drop1``: the marginal terms (those in no other term), each tested by
  the rows of the identity for its columns.

A multi-row ``L`` is tested as lmerTest's ``contestMD``: with ``L V L' = P D
P'`` (``V = Var(beta)``), the F statistic is the mean of the ``q`` squared t
statistics of the rows of ``P'L`` (independent contrasts), each with its
own Satterthwaite df ``nu_m``, and the denominator df of ``F`` is that of a
mean of squared t's, ``2E / (E - q)`` with ``E = sum nu_m / (nu_m - 2)``.
``ddf="kenward-roger"`` hands ``L`` to pbkrtest's method
(:func:`~skmixed.inference._kenward_roger.kenward_roger_f_test`).

For a model fitted from a formula the terms are R's (``nitro``,
``Variety``, ``nitro:Variety``, ``poly(Time, 2)``); for a model fitted from
arrays each feature is its own term.
"""

import numpy as np
from scipy import linalg, stats
from sklearn.utils.validation import check_is_fitted

from .._formula import FixedTerms, fixed_terms, term_grid_matrices
from ._anova_table import AnovaTable
from ._satterthwaite import contrast_df

COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
EIGEN_EPS = np.sqrt(np.finfo(float).eps)  # contestMD's eps
DOOLITTLE_EPS = 1e-6  # lmerTest's doolittle()
ZERO_ROW = 1e-8  # extract_contrasts_type3: rows below this are dropped
DDF_METHODS = {"satterthwaite": "Satterthwaite's", "kenward-roger": "Kenward-Roger's"}
TYPES = {3: "III", 1: "I", "3": "III", "1": "I", "III": "III", "I": "I"}


def anova_table(model, type=3, ddf="satterthwaite"):
    """lmerTest's F table of one model's fixed-effect terms.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model (REML or ML; Kenward-Roger needs REML).
    type : {3, 1}, default=3
        Type III (marginal, SAS's hypotheses) or type I (sequential) tests;
        ``"III"`` and ``"I"`` are accepted too.
    ddf : {"satterthwaite", "kenward-roger"}, default="satterthwaite"
        How the denominator degrees of freedom (and, for Kenward-Roger, the
        scaled F statistic) are computed.

    Returns
    -------
    table : AnovaTable
        A DataFrame indexed by term with lmerTest's columns ``Sum Sq``,
        ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``; it
        prints as lmerTest prints it; ``table.hypotheses`` holds each term's
        hypothesis matrix.
    """
    check_is_fitted(model)
    ddf = _check_ddf(ddf)
    if type not in TYPES:
        raise ValueError(f"type must be 3 or 1 (or 'III', 'I'); got {type!r}.")
    roman = TYPES[type]
    contrasts = term_contrasts(model, type=1 if roman == "I" else 3)
    table = _test_terms(model, contrasts, ddf)
    heading = [
        f"Type {roman} Analysis of Variance Table with {DDF_METHODS[ddf]} method"
    ]
    return AnovaTable(table, heading=heading, hypotheses=_hypotheses(model, contrasts))


def drop1(model, ddf="satterthwaite"):
    """F-tests of the marginal fixed-effect terms (lmerTest's ``drop1``).

    Each term that is part of no other term (so can be dropped without
    breaking marginality) is tested by dropping its columns.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    ddf : {"satterthwaite", "kenward-roger"}, default="satterthwaite"

    Returns
    -------
    table : AnovaTable
        Indexed by the marginal terms, with the columns of :func:`anova`'s
        F table.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import drop1
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> print(drop1(model))
    Single term deletions using Satterthwaite's method:
    <BLANKLINE>
    Model:
    Biomass ~ Temp + N + (1 + Temp | Site)
         Sum Sq Mean Sq NumDF  DenDF  F value Pr(>F)
    Temp   0.59    0.59     1 18.652   0.7728 0.3905
    N    420.86  420.86     1 77.931 547.9067 <2e-16 ***
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1
    """
    from ..reporting._summary import model_formula

    check_is_fitted(model)
    ddf = _check_ddf(ddf)
    terms, columns = model_terms(model)
    identity = np.eye(model._design.n_fixed)
    contrasts = {label: identity[columns[label]] for label in marginal_terms(terms)}
    table = _test_terms(model, contrasts, ddf)
    heading = [
        f"Single term deletions using {DDF_METHODS[ddf]} method:",
        "",
        "Model:",
        model_formula(model),
    ]
    return AnovaTable(table, heading=heading, hypotheses=_hypotheses(model, contrasts))


def _hypotheses(model, contrasts):
    """Each term's ``L`` labelled by the fixed effects (lmerTest's show_tests)."""
    import pandas as pd

    names = list(model.fixed_effects_.index)
    return {
        label: pd.DataFrame(L, columns=names, index=range(1, len(L) + 1))
        for label, L in contrasts.items()
    }


def _check_ddf(ddf):
    key = str(ddf).lower().replace("_", "-")
    if key not in DDF_METHODS:
        raise ValueError(
            f"ddf must be 'satterthwaite' or 'kenward-roger'; got {ddf!r}."
        )
    return key


# --------------------------------------------------------------------------- #
# Terms                                                                        #
# --------------------------------------------------------------------------- #


def model_terms(model):
    """The fixed terms of a fitted model and each term's fitted columns.

    Returns ``(terms, columns)``: a :class:`~skmixed._formula.FixedTerms`
    (R's terms for a formula model; each feature its own numeric term for
    an array model) and term label -> indices into ``model.fixed_effects_``
    (columns dropped for rank deficiency are left out).
    """
    spec = model._spec
    if spec.matrices is not None:
        terms = fixed_terms(spec.matrices)
    else:
        names = list(spec.features)
        terms = FixedTerms(
            labels=names,
            intercept=spec.fit_intercept,
            assign=np.arange(len(names) + spec.fit_intercept) + 1 - spec.fit_intercept,
            variables=[(n,) for n in names],
            factors=[(False,)] * len(names),
        )
    assign = terms.assign[model._design.fixed_kept]
    columns = {
        label: np.flatnonzero(assign == k) for k, label in enumerate(terms.labels, 1)
    }
    return terms, columns


def contains(terms, a, b):
    """Whether term ``b`` contains term ``a`` (SAS; lmerTest's ``term_contain``).

    All variables of ``a`` are in ``b``, ``b`` has more, and both have the
    same numeric variables.
    """
    va, vb = set(terms.variables[a]), set(terms.variables[b])
    numeric = [
        {v for v, f in zip(terms.variables[k], terms.factors[k]) if not f}
        for k in (a, b)
    ]
    return va <= vb and len(vb - va) > 0 and numeric[0] == numeric[1]


def marginal_terms(terms):
    """The terms that are in no other term (R's ``drop.scope``)."""
    variables = [set(v) for v in terms.variables]
    return [
        label
        for k, label in enumerate(terms.labels)
        if not any(variables[k] <= v for j, v in enumerate(variables) if j != k)
    ]


# --------------------------------------------------------------------------- #
# Contrast matrices                                                            #
# --------------------------------------------------------------------------- #


def term_contrasts(model, type=3):
    """lmerTest's hypothesis matrix of each fixed term.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    type : {3, 1}
        Type III (``get_contrasts_type3``) or type I (``get_contrasts_type1``).

    Returns
    -------
    contrasts : dict
        Term label -> array of shape (n_rows, n_fixed_effects), over
        ``model.fixed_effects_`` (show_tests in lmerTest).
    """
    terms, columns = model_terms(model)
    p = model._design.n_fixed
    if type == 1 or p <= 1 or len(terms.labels) <= 1:
        return _type1_contrasts(model, terms, columns)
    if model._spec.matrices is None:
        # numeric terms only: none contains another, no coding to undo
        return _marginal_contrasts(p, columns)
    return _type3_contrasts(model, terms, columns)


def _marginal_contrasts(p, columns):
    identity = np.eye(p)
    return {label: identity[cols] for label, cols in columns.items()}


def _type1_contrasts(model, terms, columns):
    """Rows of the Doolittle factor of ``X'X`` by term (sequential tests)."""
    p = model._design.n_fixed
    if p == 0 or (p == 1 and terms.intercept):
        return {label: np.zeros((0, p)) for label in terms.labels}
    XtX = _crossprod_x(model)
    upper = doolittle(XtX).T if p > 1 else np.ones((1, 1))
    return {label: upper[cols] for label, cols in columns.items()}


def _crossprod_x(model):
    """``X'X`` of the fitted fixed-effect columns, in the units of the data.

    From the training rows when the model kept them (unweighted, as
    lmerTest's ``crossprod(model.matrix(m))``), else from the sufficient
    statistics (weighted by the prior weights, if any).
    """
    design = model._design
    fit_intercept = model._spec.fit_intercept
    X = getattr(model, "_train_X", None)
    kept = design.fixed_kept
    if X is not None:
        if hasattr(X, "toarray"):
            X = X.toarray()
        X = np.asarray(X, dtype=float)
        if fit_intercept:
            X = np.column_stack([np.ones(X.shape[0]), X])
        X = X[:, kept]
        return X.T @ X
    # W_scaled = X T^{-1}: the centred, scaled columns; X = W_scaled T
    scaling = design.scaling
    k = scaling.x_scale.size + fit_intercept
    T = np.zeros((k, k))
    if fit_intercept:
        T[0, 0] = 1.0
        T[0, 1:] = scaling.x_center
        T[1:, 1:] = np.diag(scaling.x_scale)
    else:
        T = np.diag(scaling.x_scale)
    T = T[np.ix_(kept, kept)]
    WtW = design.stats.WtW[:-1, :-1]
    return T.T @ WtW @ T


def doolittle(x, eps=DOOLITTLE_EPS):
    """lmerTest's Doolittle factor ``L`` of a square matrix (``x = L U``).

    Unit lower triangular; a column whose pivot ``U[i, i]`` is below
    ``eps`` is zero, and entries below ``eps`` are set to zero.
    """
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            below = x[i + 1 :, i] - L[i + 1 :, :i] @ U[:i, i]
            L[i + 1 :, i] = 0.0 if abs(U[i, i]) < eps else below / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def zapsmall(x, digits=7):
    """R's ``zapsmall`` of a matrix: round to ``digits`` of its largest entry."""
    x = np.asarray(x, dtype=float)
    finite = np.abs(x[np.isfinite(x)])
    mx = finite.max() if finite.size else 0.0
    decimals = max(0, digits - int(np.ceil(np.log10(mx)))) if mx > 0 else digits
    return np.round(x, decimals)


def _least_squares(A, B):
    """``ginv(A) B``: the minimum-norm least-squares solution."""
    return linalg.lstsq(A, B, lapack_driver="gelsd")[0]


def _type3_contrasts(model, terms, columns):
    """lmerTest's ``get_contrasts_type3`` for a formula model.

    The linear relations between the columns of the model matrix, its
    treatment-coded version and lmerTest's rank-deficient matrix do not
    depend on the data when every cell of the factors is observed: they are
    read off a grid of the factors' levels (:func:`term_grid_matrices`).
    """
    design = model._design
    n_candidates = len(terms.assign)
    if len(design.fixed_kept) < n_candidates:
        raise NotImplementedError(
            "type III tests of a model whose fixed-effect matrix is rank "
            "deficient (empty cells) are not supported: lmerTest's hypotheses "
            "then depend on the data's cells. Use type=1."
        )
    grid = term_grid_matrices(model._spec.matrices)
    X, Xt, rdX = grid["X"], grid["X_treatment"], grid["rdX"]
    if np.linalg.matrix_rank(Xt) < Xt.shape[1]:
        raise NotImplementedError(
            "type III tests need a fixed part whose columns are linearly "
            "independent functions of its variables (and, with very many "
            "factor cells, a sample of cells that shows it). Use type=1."
        )
    # basic contrasts: each column of rdX in terms of those of Xt
    L = zapsmall(_least_squares(Xt, rdX).T)  # (rd columns, treatment columns)
    t_columns = {
        label: np.flatnonzero(terms.assign == k)
        for k, label in enumerate(terms.labels, 1)
    }
    order = [len(v) for v in terms.variables]
    by_order = sorted(range(len(order)), key=lambda k: -order[k])  # stable
    for k in by_order:
        containing = [j for j in range(len(order)) if contains(terms, k, j)]
        if not containing:
            continue
        cols = t_columns[terms.labels[k]]
        others = np.concatenate([t_columns[terms.labels[j]] for j in containing])
        fitted = L[:, others] @ _least_squares(L[:, others], L[:, cols])
        L[:, cols] = zapsmall(L[:, cols] - fitted)
    rows = [grid["rd_names"].index(name) for name in grid["treatment_names"]]
    L = L[rows]
    # map from treatment coding to the fit's coding
    coding = zapsmall(_least_squares(Xt, X))
    out = {}
    for label in terms.labels:
        Lt = L[:, t_columns[label]].T
        Lt = Lt[np.abs(Lt).sum(axis=1) > ZERO_ROW]
        out[label] = Lt @ coding
    return out


# --------------------------------------------------------------------------- #
# Tests                                                                        #
# --------------------------------------------------------------------------- #


def _test_terms(model, contrasts, ddf):
    """One row of lmerTest's table per term (a DataFrame)."""
    import pandas as pd

    if ddf == "kenward-roger":
        rows = [_kenward_roger_row(model, L) for L in contrasts.values()]
    else:
        rows = satterthwaite_f_tests(model, list(contrasts.values()))
    frame = pd.DataFrame(rows, index=pd.Index(list(contrasts), dtype=object))
    return frame.reindex(columns=COLUMNS)


def _eigen_contrasts(V, L):
    """``P'L`` on the positive eigenvalues of ``L V L'`` and those values."""
    d, P = linalg.eigh(L @ V @ L.T)
    d, P = d[::-1], P[:, ::-1]  # decreasing, as R's eigen
    tol = max(EIGEN_EPS * d[0], 0.0) if d.size else 0.0
    q = int(np.sum(d > tol))
    return P[:, :q].T @ L, d[:q]


def satterthwaite_f_tests(model, contrasts):
    """lmerTest's ``contestMD`` (Satterthwaite) for several hypotheses.

    Parameters
    ----------
    model : MixedLinearRegressor
    contrasts : list of arrays of shape (n_rows, n_fixed_effects)

    Returns
    -------
    list of dict
        Per hypothesis ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
        ``F value``, ``Pr(>F)``.
    """
    beta = model.fixed_effects_.to_numpy(dtype=float)
    V = model.fixed_effects_cov_.to_numpy(dtype=float)
    reduced = []
    for L in contrasts:
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if L.shape[0] == 0 or np.isnan(L).any():
            reduced.append(None)
            continue
        reduced.append(_eigen_contrasts(V, L))
    stacked = [PtL for r in reduced if r is not None for PtL in [r[0]]]
    nu_all = (
        contrast_df(model, np.vstack(stacked))
        if stacked and sum(s.shape[0] for s in stacked)
        else np.zeros(0)
    )
    rows, start = [], 0
    for r in reduced:
        if r is None or r[1].size == 0:
            rows.append(_f_row(np.nan, np.nan, np.nan, model.sigma_))
            continue
        PtL, d = r
        q = d.size
        nu = nu_all[start : start + q]
        start += q
        t2 = (PtL @ beta) ** 2 / d
        rows.append(_f_row(t2.mean(), q, f_statistic_ddf(nu), model.sigma_))
    return rows


def f_statistic_ddf(nu, tol=1e-8):
    """Denominator df of the mean of squared t's with df ``nu`` (lmerTest)."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2.0))
    return float(2.0 * E / (E - nu.size))


def _f_row(F, ndf, ddf, sigma, F_scaled=None):
    """lmerTest's ``mk_Ftable``: Sum Sq and Mean Sq from the unscaled F."""
    mean_sq = F * sigma**2
    F_value = F if F_scaled is None else F_scaled
    with np.errstate(invalid="ignore"):
        p = stats.f.sf(F_value, ndf, ddf) if np.isfinite(F_value) else np.nan
    return {
        "Sum Sq": mean_sq * ndf,
        "Mean Sq": mean_sq,
        "NumDF": ndf,
        "DenDF": ddf,
        "F value": F_value,
        "Pr(>F)": float(p),
    }


def _kenward_roger_row(model, L):
    """One term by Kenward-Roger (pbkrtest's ``KRmodcomp``, as lmerTest)."""
    from ._kenward_roger import kenward_roger_f_test

    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[0] == 0:
        return _f_row(np.nan, np.nan, np.nan, model.sigma_)
    result = kenward_roger_f_test(model, L)
    # lmerTest: Sum Sq and Mean Sq from the unscaled F, F value the scaled one
    return _f_row(
        float(result["F unscaled"]),
        result["NumDF"],
        result["DenDF"],
        model.sigma_,
        float(result["F value"]),
    )
