"""The model explorer: one self-contained HTML page for a fitted model.

merTools' ``shinyMer`` without a server: :func:`explore` writes a page with
the model, its fixed effects, variance components, random effects
(sortable, searchable table and caterpillar plot), diagnostics, shrinkage
and effect plots, and what-if predictions computed in the browser.

The page is built from three parts: the model's numbers as JSON
(:mod:`._payload`, which reads the fitted model and computes nothing new),
a stylesheet and a script (``explorer.css``, ``explorer.js``, shipped with
the package and inlined).  The plots are SVG drawn by the script, so the page
has no dependency and opens offline.
"""

import html
import json
import warnings
from importlib import resources
from pathlib import Path

from ._payload import check_model, page_data

__all__ = ["ExplorerPage", "explore"]


def _asset(name):
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


class ExplorerPage:
    """The explorer page of a fitted model, shown inline in Jupyter.

    Returned by :func:`skmixed.explore` with ``path=None``.

    Attributes
    ----------
    html : str
        The whole self-contained HTML document.
    data : dict
        The model data embedded in the page (JSON-able).
    """

    def __init__(self, html, data):
        self.html = html
        self.data = data

    def save(self, path):
        """Write the page to ``path``; returns the path."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self):
        # An iframe keeps the page's script and style apart from the notebook's.
        return (
            '<iframe style="width:100%;height:720px;border:1px solid #ddd" '
            f'srcdoc="{html.escape(self.html, quote=True)}"></iframe>'
        )

    def __repr__(self):
        formula = self.data["model"]["formula"]
        return f"<ExplorerPage: {formula}, {len(self.html)} bytes>"


def explore(model, X=None, y=None, groups=None, path=None, *, title=None):
    """Write the model explorer: one self-contained interactive HTML page.

    The page (merTools' ``shinyMer`` without a server) has a section for the
    model (formula, method, criterion, convergence and singularity
    messages, ``summary()``), the fixed effects with Wald intervals and
    p-values, the variance components, the random effects (a sortable,
    searchable table of the levels and a caterpillar plot), diagnostics
    (residuals against fitted values, QQ plots), the shrinkage plot, an
    effect plot per input, and what-if predictions: an input per feature
    (per raw variable of a formula, categorical ones as selects) and a level
    selector per grouping factor, including a new level.  The page computes
    the prediction (equal to ``model.predict``) and a normal prediction
    interval in the browser, and merTools' substantive impact of each
    factor's random effects.  Every script, style and figure is inside the
    file: it opens offline, with no server.

    Parameters
    ----------
    model : MixedLinearRegressor, MixedLogisticRegression or MixedPoissonRegressor
        A fitted model (arrays with ``groups`` or ``group_column``, or a
        ``formula``).  For a generalised model the page follows glmer:
        z-tests on the link scale (and the odds or rate ratios), no residual
        variance, randomized quantile residuals in the diagnostics, and
        what-if predictions on the response scale equal to
        ``predict_proba(...)[:, 1]`` or ``predict`` (marginal over a new
        level's random effects); one fitted with an offset gets an offset
        input.
    X : array-like or DataFrame, default=None
        The data the page describes: the inputs' ranges and typical values,
        and the points of the effect plots.  As in ``fit`` (with
        ``group_column``, the group columns may be among the columns).  None
        takes the training rows the model keeps (a linear model fitted on
        arrays only); a formula model needs its data frame (its raw
        variables' ranges and levels).
    y : array-like, default=None
        The response drawn in the effect plots; None takes the training
        response (or, for a formula model, the formula's response column).
    groups : array-like, default=None
        Ignored but checked: group labels as in ``fit`` (None for formula
        and ``group_column`` models).
    path : str or Path, default=None
        Where to write the page.  None returns an :class:`ExplorerPage`,
        which Jupyter shows inline.
    title : str, default=None
        The page's title.

    Returns
    -------
    path : Path or ExplorerPage
        The path written, or the page when ``path`` is None.

    Notes
    -----
    The page's prediction interval is the normal interval
    ``fit +- z sqrt(x' V x + z' C z + sigma^2)``: ``V`` the fixed effects'
    covariance (``fixed_effects_cov_``), ``C`` the level's conditional
    covariance (``random_effects_cond_cov_``) or, for a new level, the
    factor's covariance (``random_effects_cov_``).  It treats the fixed and
    random effects as independent, as merTools' ``predictInterval`` does;
    ``model.predict_interval`` draws them jointly and is close to it.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor, explore
    >>> from skmixed.datasets import load_biomass
    >>> X, y, site = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=site)
    >>> page = explore(model)
    >>> page.data["predictor"]["features"]
    ['Temp', 'N']
    >>> len(page.html) < 5_000_000
    True
    """
    check_model(model)
    if _has_offset(model):
        warnings.warn(
            "the model was fitted with an offset: the page's predictions and "
            "intervals are those of an offset of 0 (add the rows' offset to "
            "compare with model.predict(X, offset=...)).",
            UserWarning,
            stacklevel=2,
        )
    data = page_data(model, X, y, groups, title=title)
    page = ExplorerPage(_render(data), data)
    return page if path is None else page.save(path)


def _has_offset(model):
    """A linear model fitted with an offset (a generalised one's page has an
    offset input in its what-if)."""
    if hasattr(model, "_family"):
        return False
    return getattr(model, "_train_offset", None) is not None


def _render(data):
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/")  # never close the script element early
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(data['title'])}</title>\n"
        f"<style>\n{_asset('explorer.css')}</style>\n</head>\n<body>\n"
        f'<script type="application/json" id="skmixed-data">{payload}</script>\n'
        f"<script>\n{_asset('explorer.js')}</script>\n"
        "</body>\n</html>\n"
    )
