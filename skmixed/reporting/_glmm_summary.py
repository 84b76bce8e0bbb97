"""The summary of a fitted generalised mixed model: glmer's ``summary``.

:func:`summarize_glmm` computes what lme4 prints for a ``glmerMod`` and
stores it in a :class:`GlmmSummary`, whose ``__str__`` and ``_repr_html_``
only format (the blocks shared with the linear model's summary come from
:mod:`._text` and :mod:`._html`; the title, the family line and the z-tests
are the generalised model's own).

One difference from lme4: with adaptive quadrature (``nAGQ > 1``) lme4's
``logLik`` (and so AIC, BIC and the deviance it prints) leaves out the
saturated model's log-likelihood; here the criteria are always those of the
full log-likelihood, ``loglik_``, as for the Laplace approximation.
"""

import textwrap
from dataclasses import dataclass, field
from html import escape
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from ..inference._wald import lme4_factor_order
from ._html import STYLE, _table
from ._rformat import (
    PAGE_WIDTH,
    SIGNIF_LEGEND,
    coefficient_cells,
    matrix_lines,
    named_vector_lines,
)
from ._summary import (
    QUANTILE_NAMES,
    QUANTILES,
    _correlation,
    _messages,
    _random_effects_frame,
    _variance_blocks,
    model_formula,
)
from ._text import (
    DIGITS,
    MAX_CORRELATION,
    correlation_cells,
    criteria_cells,
    groups_line,
    random_cells,
    residual_cells,
)


@dataclass
class GlmmSummary:
    """What glmer's ``summary`` shows for a fitted generalised model.

    Built by ``summary()`` of :class:`MixedLogisticRegression` and
    :class:`MixedPoissonRegressor`; ``str()`` gives lme4's printed layout and
    notebooks render ``_repr_html_``.

    Attributes
    ----------
    family, link : str
        The response distribution and link (``"binomial"``, ``"logit"``).
    n_quadrature_points : int
        1: the Laplace approximation; more: adaptive Gauss-Hermite.
    formula : str
        The model in lme4's notation.
    criteria : Series
        ``AIC``, ``BIC``, ``logLik``, ``deviance`` (-2 logLik, as glmer's
        summary prints) and ``df.resid``; always of the full log-likelihood
        (with quadrature, lme4's leave out the saturated model's).
    residual_quantiles : Series
        ``Min``, ``1Q``, ``Median``, ``3Q``, ``Max`` of the Pearson residuals
        (glmer's scaled residuals).
    random_effects : DataFrame
        lme4's ``as.data.frame(VarCorr(m))`` (``grp``, ``var1``, ``var2``,
        ``vcov``, ``sdcor``), without a residual row.
    fixed_effects : DataFrame
        Columns ``estimate``, ``std_error``, ``z_value``, ``p_value``.
    fixed_effects_corr : DataFrame
        Correlation matrix of the fixed-effect estimates.
    n_obs : int
        Number of observations (rows of positive weight).
    n_groups : dict of str to int
        Number of levels of each grouping factor, in lme4's order.
    messages : list of str
        Warnings about the fit, printed at the end.
    """

    family: str
    link: str
    n_quadrature_points: int
    formula: str
    criteria: pd.Series
    residual_quantiles: pd.Series
    random_effects: pd.DataFrame
    fixed_effects: pd.DataFrame
    fixed_effects_corr: pd.DataFrame
    n_obs: int
    n_groups: dict
    variance_blocks: list = field(repr=False)
    messages: list = field(default_factory=list)

    def __str__(self):
        return render_glmm_text(self)

    def __repr__(self):
        return self.__str__()

    def _repr_html_(self):
        return render_glmm_html(self)


def summarize_glmm(model):
    """Compute the :class:`GlmmSummary` of a fitted generalised mixed model.

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted model.

    Returns
    -------
    summary : GlmmSummary

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedPoissonRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 10)
    >>> x = rng.normal(size=(200, 1))
    >>> y = rng.poisson(np.exp(0.5 + 0.3 * x[:, 0] + rng.normal(0, .4, 20)[groups]))
    >>> summary = MixedPoissonRegressor().fit(x, y, groups=groups).summary()
    >>> print(str(summary).splitlines()[2])
     Family: poisson  ( log )
    >>> list(summary.fixed_effects.columns)
    ['estimate', 'std_error', 'z_value', 'p_value']
    """
    check_is_fitted(model)
    factors = lme4_factor_order(model._factors)
    # The linear summary's variance table, without its residual row.
    no_residual = SimpleNamespace(
        random_effects_cov_=model.random_effects_cov_, sigma_=np.nan
    )
    blocks = _variance_blocks(no_residual, factors)[:-1]
    frame = _random_effects_frame(no_residual, factors).iloc[:-1]
    return GlmmSummary(
        family=model._family.name,
        link=model._family.link.name,
        n_quadrature_points=int(model._n_quadrature_points),
        formula=model_formula(model),
        criteria=pd.Series(
            {
                "AIC": model.aic_,
                "BIC": model.bic_,
                "logLik": model.loglik_,
                "deviance": -2.0 * model.loglik_,
                "df.resid": float(model.df_resid_),
            }
        ),
        residual_quantiles=pd.Series(
            np.quantile(pearson_residuals(model), QUANTILES), index=QUANTILE_NAMES
        ),
        random_effects=frame.reset_index(drop=True),
        fixed_effects=z_tests(model),
        fixed_effects_corr=_correlation(model.fixed_effects_cov_),
        n_obs=int(model._rows.n),
        n_groups={f.name: f.n_levels for f in factors},
        variance_blocks=blocks,
        messages=_glmm_messages(model),
    )


def pearson_residuals(model):
    """``sqrt(w) (y - mu) / sqrt(V(mu))`` of the training rows (glmer's)."""
    rows = model._rows
    mu = model.fitted_values_
    variance = rows.family.variance(mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(rows.weights) * (rows.y - mu) / np.sqrt(variance)


def z_tests(model):
    """Estimates, standard errors, z values and two-sided normal p-values."""
    estimate = model.fixed_effects_.to_numpy()
    se = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / se
    return pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": se,
            "z_value": z,
            "p_value": 2.0 * stats.norm.sf(np.abs(z)),
        },
        index=model.fixed_effects_.index.copy(),
    )


def _glmm_messages(model):
    if model.convergence_ is not None:
        return _messages(model)
    messages = []  # no random effects: the linear summary's checks, minus these
    if not model.converged_:
        messages.append("IRLS did not converge: see fit_log_")
    return messages


# ------------------------------------------------------------------ text


def title_text(summary):
    """glmer's title: the method of the fit and the class."""
    if summary.n_quadrature_points > 1:
        method = (
            f"Adaptive Gauss-Hermite Quadrature, nAGQ = {summary.n_quadrature_points}"
        )
    else:
        method = "Laplace Approximation"
    return (
        f"Generalized linear mixed model fit by maximum likelihood ({method}) "
        "[glmerMod]"
    )


def title(summary):
    """The title's lines, wrapped at R's page width as ``.prt.methTit``."""
    return textwrap.wrap(
        title_text(summary),
        width=PAGE_WIDTH - 1,
        subsequent_indent="  ",
        break_on_hyphens=False,
    )


def family_line(summary):
    return f" Family: {summary.family}  ( {summary.link} )"


def fixed_cells(summary):
    """R's ``printCoefmat`` of the z-tests: row names, columns, stars."""
    table = summary.fixed_effects
    columns, stars = coefficient_cells(
        [table["estimate"], table["std_error"], table["z_value"], table["p_value"]],
        DIGITS,
    )
    col_names = ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    with_stars = bool(np.any(table["p_value"].to_numpy() < 0.1))
    if with_stars:
        col_names.append("")
        columns.append(stars)
    return [str(n) for n in table.index], col_names, columns, with_stars


def render_glmm_text(summary):
    """The summary in glmer's printed layout."""
    lines = title(summary) + [
        family_line(summary),
        f"Formula: {summary.formula}",
        "",
    ]
    lines += named_vector_lines(*criteria_cells(summary))
    lines += ["", "Scaled residuals: "]
    lines += named_vector_lines(*residual_cells(summary))
    lines += ["", "Random effects:"]
    if summary.variance_blocks:
        col_names, columns = random_cells(summary)
        lines += matrix_lines([""] * len(columns[0]), col_names, columns, right=False)
    lines.append(groups_line(summary))
    p = len(summary.fixed_effects)
    if p:
        rows, col_names, columns, with_stars = fixed_cells(summary)
        lines += ["", "Fixed effects:"]
        lines += matrix_lines(rows, col_names, columns, right=True)
        if with_stars:
            lines += ["---", SIGNIF_LEGEND]
    if 1 < p <= MAX_CORRELATION:
        lines += ["", "Correlation of Fixed Effects:"]
        lines += matrix_lines(*correlation_cells(summary), right=False)
    elif p > MAX_CORRELATION:
        lines += [
            "",
            f"Correlation matrix not shown, as p = {p} > {MAX_CORRELATION}: "
            "see fixed_effects_corr.",
        ]
    lines += summary.messages
    return "\n".join(lines)


def render_glmm_html(summary):
    """The summary as an HTML fragment (``_repr_html_``)."""
    parts = [
        STYLE,
        '<div class="skmixed-summary">',
        f"<p><b>{escape(title_text(summary))}</b><br>"
        f"Family: {escape(summary.family)} ({escape(summary.link)})<br>"
        f"Formula: <code>{escape(summary.formula)}</code></p>",
    ]
    names, texts = criteria_cells(summary)
    parts.append(_table(names, [[t] for t in texts]))
    names, texts = residual_cells(summary)
    parts.append("<p>Scaled residuals:</p>" + _table(names, [[t] for t in texts]))
    if summary.variance_blocks:
        col_names, columns = random_cells(summary)
        parts.append(
            "<p>Random effects:</p>" + _table(col_names, columns, numeric_from=2)
        )
    parts.append(f"<p>{escape(groups_line(summary))}</p>")
    p = len(summary.fixed_effects)
    if p:
        rows, col_names, columns, with_stars = fixed_cells(summary)
        parts.append("<p>Fixed effects:</p>" + _table(col_names, columns, rows))
        if with_stars:
            parts.append(f"<p><small>{escape(SIGNIF_LEGEND)}</small></p>")
    if 1 < p <= MAX_CORRELATION:
        rows, col_names, columns = correlation_cells(summary)
        parts.append(
            "<p>Correlation of Fixed Effects:</p>" + _table(col_names, columns, rows)
        )
    for message in summary.messages:
        parts.append(f"<p><i>{escape(message)}</i></p>".replace("\n", "<br>"))
    parts.append("</div>")
    return "".join(parts)
