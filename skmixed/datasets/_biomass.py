"""The plant-biomass tutorial data: loader and a NumPy re-implementation."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._simulate import _check_bool, _check_int, _check_rng, _make_params

__all__ = ["load_biomass", "simulate_biomass"]

_FEATURES = ["Temp", "N"]
_TARGET = "Biomass"
_GROUP = "Site"
_FORMULA = "Biomass ~ Temp + N + (1 + Temp | Site)"

# The data-generating process of the tutorial (see DESCR).
_INTERCEPT = 10.0
_COEF = {"Temp": 0.3, "N": 2.2}
_RE_SD = {"Intercept": 1.2, "Temp": 0.5}
_SIGMA = 1.0
_X_LOW, _X_HIGH = -2.0, 2.0

# The realised random effects of the R data (rnd_int, rnd_slp in the R code),
# one row (Intercept, Temp) per site Site1 ... Site20.  R did not save them; they
# were recovered by replaying R's default generator for set.seed(10)
# (Mersenne-Twister with R's seed scrambling, normals by inversion), which
# reproduces every Temp, N and Biomass value of the CSV to 5e-14.
# tests/test_datasets.py replays it to check these numbers.
_R_RANDOM_EFFECTS = (
    (-0.9141652070136355, -0.24068280363664693),
    (0.5032504870678893, 0.10144088898491868),
    (-1.2479320375588203, -0.015869871918863115),
    (0.8538887591911569, -0.5977901501672873),
    (-0.7598556179613916, 0.3118406184242167),
    (0.6758095973401781, -0.4574022418334548),
    (0.7931840229979209, 0.12437900385404838),
    (-1.9896610287905396, -0.5313113965901894),
    (1.2338015724215061, -0.18199112359787792),
    (1.3535443368175026, -0.603497426689137),
    (-1.536185524106619, 0.7146063906948847),
    (1.3546418728914889, 0.3167179454914157),
    (-0.5569614325979737, -0.9984078088282122),
    (-0.3789122514376391, -0.3409160865481035),
    (1.109151776201939, -0.23002773965535134),
    (0.09257366878293412, -0.49153459707388253),
    (1.2479083261342563, 0.24766585644416877),
    (0.8902634480858153, 0.3629087501162667),
    (1.506653829947418, 0.33364936594645944),
    (1.1411027597474133, 0.47739321823329345),
)

_R_CODE = """\
    set.seed(10)
    d <- data.frame(Temp = runif(100, -2, 2), N = runif(100, -2, 2),
                    Site = gl(n = 20, k = 5, labels = paste0("Site", 1:20)))
    rnd_int <- rnorm(20, 0, 1.2); rnd_slp <- rnorm(20, 0, 0.5)
    mus <- 10 + rnd_int[d$Site] + (0.3 + rnd_slp[d$Site]) * d$Temp + 2.2 * d$N
    d$Biomass <- rnorm(100, mus, 1)
    lme4::lmer(Biomass ~ Temp + N + (1 + Temp | Site), data = d)"""

DESCR = f"""\
.. _biomass_dataset:

Plant biomass (simulated) data
------------------------------

**Data Set Characteristics:**

:Number of Instances: 100 plants in 20 sites (5 plants per site)
:Number of Attributes: 2 numeric features, a grouping factor and the response
:Attribute Information:
    - Temp     temperature (standardised scale), uniform on (-2, 2)
    - N        nitrogen (standardised scale), uniform on (-2, 2)
    - Site     the site, a grouping factor with levels Site1 ... Site20
    - Biomass  plant biomass, the response
:Missing Attribute Values: None

The tutorial's example data, simulated in R with ``set.seed(10)``: 20 sites
with 5 plants each; Temp and N drawn uniformly on (-2, 2); each site has a
random intercept with SD 1.2 and a random Temp slope with SD 0.5 (drawn
independently, so the true correlation is 0); the fixed intercept is 10, the
Temp slope 0.3 and the N slope 2.2; the residual SD is 1::

{_R_CODE}

The model to fit is lme4's ``Biomass ~ Temp + N + (1 + Temp | Site)``:
fixed effects for Temp and N, and a correlated random intercept and Temp
slope per Site.  lme4 1.1-31 estimates (REML) a fixed intercept of 10.09,
Temp slope 0.167, N slope 2.210, random-effect SDs 1.034 (intercept) and
0.713 (Temp) with correlation -0.20, and a residual SD of 0.876.

The realised random effects of the 20 sites (``params["random_effects"]``)
are known exactly: R did not save them, but replaying R's default generator
for ``set.seed(10)`` reproduces the whole data set and hence them.

``simulate_biomass`` draws fresh data from the same process with NumPy's
generator, not R's, so its data differ from these.
"""


def _true_params(random_effects):
    terms = list(_RE_SD)
    return _make_params(
        _INTERCEPT,
        pd.Series(_COEF, name="coef", dtype=float),
        terms,
        np.array(list(_RE_SD.values())),
        np.eye(len(terms)),
        _SIGMA,
        random_effects,
    )


def _package(frame, *, as_frame, return_X_y_groups, params, descr):
    X = frame[_FEATURES]
    y = frame[_TARGET]
    groups = frame[_GROUP]
    if not as_frame:
        X = X.to_numpy(dtype=float)
        y = y.to_numpy(dtype=float)
        groups = groups.to_numpy(dtype=str)
        frame = None
    if return_X_y_groups:
        return X, y, groups
    return Bunch(
        frame=frame,
        X=X,
        y=y,
        groups=groups,
        params=params,
        feature_names=list(_FEATURES),
        target_name=_TARGET,
        group_name=_GROUP,
        formula=_FORMULA,
        DESCR=descr,
    )


def load_biomass(*, as_frame=True, return_X_y_groups=False):
    """Load the tutorial's plant-biomass data (20 sites x 5 plants).

    The data were simulated in R (``set.seed(10)``) from a linear mixed model
    with a random intercept and a random Temp slope per Site; see ``DESCR``
    for the full data-generating process.  The model to fit is lme4's
    ``Biomass ~ Temp + N + (1 + Temp | Site)``.

    =================   ==============
    Samples total                  100
    Groups (Site)                   20
    Features            2 (Temp, N)
    Target              Biomass (real)
    =================   ==============

    Parameters
    ----------
    as_frame : bool, default=True
        If True, ``X`` is a DataFrame (columns ``Temp``, ``N``), ``y`` a Series
        named ``"Biomass"`` and ``groups`` a Series named ``"Site"``;
        otherwise they are NumPy arrays (``groups`` of str) and ``frame`` is
        None.
    return_X_y_groups : bool, default=False
        If True, return the tuple ``(X, y, groups)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With attributes

        frame : DataFrame of shape (100, 4) or None
            Columns ``Temp``, ``N``, ``Site``, ``Biomass`` (None unless
            ``as_frame``).
        X : DataFrame or ndarray of shape (100, 2)
            The features Temp and N.
        y : Series or ndarray of shape (100,)
            Biomass.
        groups : Series or ndarray of shape (100,)
            Site labels ``"Site1"`` ... ``"Site20"``.
        params : dict
            The true parameters of the generating process, in the format of
            :func:`make_grouped_regression` (``intercept``, ``coef``,
            ``fixef``, ``re_cov``, ``re_sd``, ``re_corr``, ``sigma``), and
            ``random_effects``, the realised random effects of the 20 sites
            (DataFrame indexed by Site, columns ``Intercept`` and ``Temp``),
            recovered by replaying R's random-number generator.
        feature_names : list of str
            ``["Temp", "N"]``.
        target_name, group_name : str
            ``"Biomass"`` and ``"Site"``.
        formula : str
            ``"Biomass ~ Temp + N + (1 + Temp | Site)"``.
        DESCR : str
            Description of the data set.

    (X, y, groups) : tuple
        If ``return_X_y_groups`` is True.

    See Also
    --------
    simulate_biomass : Fresh data from the same process, drawn with NumPy.

    Examples
    --------
    >>> from skmixed.datasets import load_biomass
    >>> data = load_biomass()
    >>> data.frame.shape
    (100, 4)
    >>> list(data.frame.columns)
    ['Temp', 'N', 'Site', 'Biomass']
    >>> data.groups.nunique(), data.groups.name
    (20, 'Site')
    >>> data.formula
    'Biomass ~ Temp + N + (1 + Temp | Site)'
    >>> round(float(data.y.mean()), 3)
    10.111
    >>> data.params["random_effects"].round(3).head(3)
           Intercept   Temp
    Site
    Site1     -0.914 -0.241
    Site2      0.503  0.101
    Site3     -1.248 -0.016
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> X.shape, y.shape, groups.shape
    ((100, 2), (100,), (100,))
    """
    as_frame = _check_bool(as_frame, "as_frame")
    return_X_y_groups = _check_bool(return_X_y_groups, "return_X_y_groups")
    source = resources.files(__package__) / "data" / "biomass.csv"
    with source.open("r", encoding="utf-8") as f:
        frame = pd.read_csv(
            f, dtype={"Temp": float, "N": float, "Site": str, "Biomass": float}
        )
    return _package(
        frame,
        as_frame=as_frame,
        return_X_y_groups=return_X_y_groups,
        params=_true_params(
            pd.DataFrame(
                _R_RANDOM_EFFECTS,
                columns=list(_RE_SD),
                index=pd.Index(
                    [f"Site{j + 1}" for j in range(len(_R_RANDOM_EFFECTS))],
                    name=_GROUP,
                ),
            )
        ),
        descr=DESCR,
    )


def simulate_biomass(
    n_sites=20,
    plants_per_site=5,
    *,
    as_frame=True,
    return_X_y_groups=False,
    random_state=None,
):
    """Simulate fresh plant-biomass data from the tutorial's process, with NumPy.

    Each of ``n_sites`` sites has ``plants_per_site`` plants.  Temp and N are
    uniform on (-2, 2); site ``j`` has a random intercept ``a_j ~ N(0, 1.2**2)``
    and an independent random Temp slope ``s_j ~ N(0, 0.5**2)``, and::

        Biomass = 10 + a_j + (0.3 + s_j) * Temp + 2.2 * N + N(0, 1) noise

    This is the process of :func:`load_biomass`'s data, but the draws come
    from NumPy's generator, not R's, so even ``n_sites=20,
    plants_per_site=5`` does not give the R data set.

    Parameters
    ----------
    n_sites : int, default=20
        Number of sites (groups).
    plants_per_site : int, default=5
        Number of plants (rows) per site.
    as_frame : bool, default=True
        If True, return pandas objects as :func:`load_biomass` does; otherwise
        NumPy arrays.
    return_X_y_groups : bool, default=False
        If True, return the tuple ``(X, y, groups)`` instead of a Bunch.
    random_state : None, int, numpy Generator or RandomState, default=None
        Source of randomness; the same int gives the same data.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_biomass` (``frame``, ``X``, ``y``, ``groups`` with
        levels ``"Site1"``, ``"Site2"``, ..., ``params``, ``feature_names``,
        ``target_name``, ``group_name``, ``formula``, ``DESCR``);
        ``params["random_effects"]`` holds this sample's realised random
        effects (``n_sites`` rows, indexed by site, columns ``Intercept`` and
        ``Temp``).

    (X, y, groups) : tuple
        If ``return_X_y_groups`` is True.

    See Also
    --------
    load_biomass : The R-simulated data set.
    make_grouped_regression : A general simulator of grouped data.

    Examples
    --------
    >>> from skmixed.datasets import simulate_biomass
    >>> data = simulate_biomass(n_sites=50, plants_per_site=10, random_state=0)
    >>> data.frame.shape
    (500, 4)
    >>> data.groups.nunique()
    50
    >>> data.params["re_sd"].to_dict()
    {'Intercept': 1.2, 'Temp': 0.5}
    >>> data.params["random_effects"].shape
    (50, 2)
    """
    n_sites = _check_int(n_sites, "n_sites", 1)
    plants_per_site = _check_int(plants_per_site, "plants_per_site", 1)
    as_frame = _check_bool(as_frame, "as_frame")
    return_X_y_groups = _check_bool(return_X_y_groups, "return_X_y_groups")
    rng = _check_rng(random_state)

    n = n_sites * plants_per_site
    # Same order of draws as the R code.
    temp = rng.uniform(_X_LOW, _X_HIGH, n)
    nitrogen = rng.uniform(_X_LOW, _X_HIGH, n)
    rnd_int = rng.normal(0.0, _RE_SD["Intercept"], n_sites)
    rnd_slp = rng.normal(0.0, _RE_SD["Temp"], n_sites)
    site = np.repeat(np.arange(n_sites), plants_per_site)
    mus = (
        _INTERCEPT
        + rnd_int[site]
        + (_COEF["Temp"] + rnd_slp[site]) * temp
        + _COEF["N"] * nitrogen
    )
    biomass = mus + _SIGMA * rng.standard_normal(n)

    levels = [f"Site{j + 1}" for j in range(n_sites)]
    frame = pd.DataFrame(
        {
            "Temp": temp,
            "N": nitrogen,
            "Site": pd.Series(np.asarray(levels)[site]),
            "Biomass": biomass,
        }
    )
    random_effects = pd.DataFrame(
        {"Intercept": rnd_int, "Temp": rnd_slp},
        index=pd.Index(levels, name=_GROUP),
    )
    descr = (
        f"Plant biomass data simulated with NumPy by simulate_biomass: {n_sites} "
        f"sites x {plants_per_site} plants, from the process of load_biomass's "
        "data described below.\n\n" + DESCR
    )
    return _package(
        frame,
        as_frame=as_frame,
        return_X_y_groups=return_X_y_groups,
        params=_true_params(random_effects),
        descr=descr,
    )
