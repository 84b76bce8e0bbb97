"""Random GLMM designs for the differential test against glmer.

Writes into ``--outdir`` (default: beside this script):

- ``designs.csv.gz``: every design's rows in one long table, a ``design``
  column naming the design; the columns a design does not use are empty.
  Responses: ``y`` (0/1 rows, or the proportion of ``trials`` for
  aggregated binomial rows), ``count`` (Poisson counts) and ``rate`` (=
  ``count / exposure``, for the exposure-weighted designs); covariates
  ``x1`` (continuous), ``x2`` (continuous or a 0/1 dummy); offsets
  ``log_exposure``; grouping labels (strings) ``g``, ``a``, ``b``, ``a_b``
  (the ``a:b`` interaction of nested designs) and ``obs`` (one level per
  row: an observation-level random effect).
- ``designs.json``: the ``seed`` and the ``designs``, one entry per design:
  ``id``, ``category``, ``family`` and ``link``, ``n``, what skmixed is given
  (``response``, ``fixed_columns``, ``weights`` as ``sample_weight``,
  ``offset``, ``factors`` in the order of ``groups`` with their ``slopes`` and
  ``covariance``), what glmer is given (``formula``, ``r_weights``) and the
  ``truth`` that simulated the rows.

Exposure-weighted Poisson designs are given to skmixed as a rate with
``sample_weight = exposure`` and to glmer as the count with
``offset(log(exposure))``: the same model and log-likelihood (see
``skmixed/_family.py``), so these designs check that equivalence as well.

Design ``k`` draws from ``numpy.random.default_rng([seed, k])``.  After
changing this script, rerun the reference (R and lme4 make it; the tests
never need them)::

    python make_glmm_designs.py && Rscript make_glmer_differential.R

``--copies K`` draws every category K times as often (the larger study in
``benchmarks/glmm_differential.py``).  ``FOUND`` adds designs that other
seeds drew and that once caught skmixed out, drawn exactly as there
(``--no-found`` leaves them out).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

SEED = 20261201
HERE = Path(__file__).parent

# (category, designs per copy): every category the suite covers.
SCHEDULE = (
    ("bernoulli_intercept", 4),
    ("binomial_aggregated", 4),
    ("probit", 3),
    ("cloglog", 3),
    ("binomial_slope", 4),
    ("binomial_diagonal", 3),
    ("binomial_crossed", 3),
    ("binomial_nested", 3),
    ("binomial_singular", 3),
    ("binomial_separation", 3),
    ("binomial_large_variance", 3),
    ("binomial_few_levels", 3),
    ("binomial_medium", 2),
    ("poisson_intercept", 3),
    ("poisson_offset", 3),
    ("poisson_exposure", 3),
    ("poisson_slope", 3),
    ("poisson_diagonal", 2),
    ("poisson_crossed", 2),
    ("poisson_nested", 2),
    ("poisson_olre", 3),
    ("poisson_singular", 2),
    ("poisson_large_variance", 2),
    ("poisson_few_levels", 2),
    ("poisson_medium", 2),
    # harder draws, kept for the larger study (benchmarks/glmm_differential.py)
    # and a few in the test: correlations near +-1, slope columns in the
    # thousands or thousandths, counts in the hundreds, many levels with
    # slopes, a slope beside an observation-level effect, cloglog slopes.
    ("binomial_corr_one", 2),
    ("poisson_corr_one", 1),
    ("binomial_scaled", 2),
    ("poisson_large_counts", 1),
    ("binomial_many_levels", 1),
    ("poisson_olre_slope", 1),
    ("cloglog_slope", 2),
)

# Designs other seeds drew (in the larger study, benchmarks/glmm_differential.py)
# that caught skmixed out: (category, seed, index, what happened).
FOUND = (
    (
        "poisson_olre",
        20261202,
        132,
        "RuntimeWarning: overflow in PIRLS at a first-stage line-search step "
        "to theta = (1.8, 419)",
    ),
    (
        "poisson_singular",
        20261203,
        273,
        "0.0067 below glmer: stopped with the intercept's SD at 0 where glmer's "
        "optimum has it positive and the slope's entry of opposite sign",
    ),
    (
        "binomial_singular",
        20261202,
        110,
        "0.050 below glmer (probit), the same face; warned of a Hessian that is "
        "not positive definite",
    ),
    (
        "cloglog_slope",
        20261202,
        320,
        "0.056 below glmer, the same face",
    ),
    (
        "binomial_nested",
        20261203,
        237,
        "64,500 below glmer (cloglog): a first-stage line search tried theta = "
        "611, whose modes ran off to eta = -30,000 and warm-started every later "
        "evaluation there (no first stage for one-term factors since c895e81)",
    ),
    (
        "binomial_separation",
        20261203,
        313,
        "0.98 below glmer (cloglog, separated by x2): penalised IRLS at the "
        "start sends the coefficient of x2 to 6.5e6 and theta never moves",
    ),
)


def inverse_link(link, eta):
    if link == "logit":
        return special.expit(eta)
    if link == "probit":
        return special.ndtr(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(eta))
    return np.exp(eta)


def balanced_codes(rng, m, n):
    """n codes over m levels, every level present, in random order."""
    codes = np.concatenate([np.arange(m), rng.integers(0, m, size=n - m)])
    return codes[rng.permutation(n)]


def labels(prefix, codes):
    return np.array([f"{prefix}{c + 1}" for c in codes], dtype=object)


def correlated_effects(rng, m, sds, corr):
    """m draws of random effects with SDs ``sds`` and correlation ``corr``."""
    cov = (
        np.outer(sds, sds)
        * np.array([[1.0, corr], [corr, 1.0]])[: len(sds)][:, : len(sds)]
    )
    w, U = np.linalg.eigh(cov)
    return rng.normal(size=(m, len(sds))) @ (U * np.sqrt(np.clip(w, 0, None))).T


class Draw:
    """Options of one design, drawn from its category."""

    def __init__(self, rng, category):
        self.rng, self.category = rng, category
        family = "poisson" if category.startswith("poisson") else "binomial"
        self.family = family
        self.link = "log" if family == "poisson" else "logit"
        if category == "probit":
            self.link = "probit"
        elif category in ("cloglog", "cloglog_slope"):
            self.link = "cloglog"
        elif family == "binomial" and rng.uniform() < 0.25:
            self.link = str(rng.choice(["probit", "cloglog"]))
        self.aggregated = family == "binomial" and (
            category == "binomial_aggregated"
            or (category != "bernoulli_intercept" and rng.uniform() < 0.3)
        )
        self.size = "medium" if category.endswith("medium") else "small"


def structure(draw):
    """Grouping factors: codes, labels, slopes, covariance and true SDs."""
    rng, cat = draw.rng, draw.category
    small_sd = 0.02 if cat.endswith("singular") else None
    big = cat.endswith("large_variance")

    def sd(lo, hi):
        if small_sd is not None:
            return float(rng.choice([0.0, small_sd]))
        return float(rng.uniform(2.0, 3.5) if big else rng.uniform(lo, hi))

    if cat.endswith("crossed"):
        ma, mb = rng.integers(6, 25, size=2)
        n = int(rng.integers(150, 400))
        slope = cat == "binomial_crossed" and rng.uniform() < 0.5
        return n, [
            dict(
                name="a",
                codes=balanced_codes(rng, ma, n),
                slopes=["x1"] if slope else [],
                sds=[sd(0.5, 1.2)] + ([sd(0.2, 0.6)] if slope else []),
                corr=float(rng.uniform(-0.6, 0.6)),
            ),
            dict(
                name="b", codes=balanced_codes(rng, mb, n), slopes=[], sds=[sd(0.3, 1)]
            ),
        ]
    if cat.endswith("nested"):
        ma, per = int(rng.integers(5, 15)), int(rng.integers(2, 6))
        sizes = rng.integers(2, 10, size=ma * per)
        cell = np.repeat(np.arange(ma * per), sizes)
        return cell.size, [
            dict(name="a", codes=cell // per, slopes=[], sds=[sd(0.4, 1.2)]),
            dict(name="a_b", codes=cell, slopes=[], sds=[sd(0.3, 0.8)], nested=True),
        ]
    if cat.endswith("few_levels"):
        m = int(rng.integers(5, 9))
    elif cat.endswith("many_levels"):
        m = int(rng.integers(150, 300))
    elif draw.size == "medium":
        m = int(rng.integers(40, 120))
    else:
        m = int(rng.integers(10, 60))
    if draw.size == "medium":
        n = int(rng.integers(1500, 2200))
    elif cat.endswith("many_levels"):
        n = int(rng.integers(3 * m, 5 * m))
    else:
        n = int(rng.integers(max(50, 3 * m), 300))
    slopes = []
    if cat.endswith(
        ("slope", "diagonal", "medium", "corr_one", "scaled", "counts", "many_levels")
    ) or (cat.endswith(("singular", "few_levels")) and rng.uniform() < 0.5):
        slopes = ["x1"]
    sds = [sd(0.4, 1.3)] + [sd(0.2, 0.7) for _ in slopes]
    factors = [
        dict(
            name="g",
            codes=balanced_codes(rng, m, n),
            slopes=slopes,
            sds=sds,
            corr=float(
                rng.choice([-1, 1]) * rng.uniform(0.95, 0.995)
                if cat.endswith("corr_one")
                else rng.uniform(-0.7, 0.7)
            ),
            covariance="diagonal" if cat.endswith("diagonal") else "unstructured",
        )
    ]
    if cat.startswith("poisson_olre"):
        factors.append(
            dict(name="obs", codes=np.arange(n), slopes=[], sds=[sd(0.2, 0.7)])
        )
    return n, factors


def make_design(rng, design_id, category):
    draw = Draw(rng, category)
    n, factors = structure(draw)
    x1 = rng.normal(rng.uniform(-0.5, 0.5), rng.uniform(0.5, 1.5), size=n)
    two = rng.uniform() < 0.6 or category == "binomial_separation"
    dummy = two and (category == "binomial_separation" or rng.uniform() < 0.4)
    x2 = rng.binomial(1, 0.3, size=n).astype(float) if dummy else rng.normal(size=n)
    fixed = ["x1", "x2"] if two else ["x1"]
    if draw.family == "poisson":
        beta = [rng.uniform(-0.5, 1.5), rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)]
    else:
        beta = [rng.uniform(-1.5, 0.5), rng.uniform(-1, 1), rng.uniform(-1, 1)]
    if category == "binomial_separation":  # the dummy all but determines y
        beta[2] = float(rng.choice([-1, 1]) * rng.uniform(4, 7))
    if category == "poisson_large_counts":
        beta[0] = float(rng.uniform(4, 6))
    eta = beta[0] + beta[1] * x1 + (beta[2] * x2 if two else 0.0)
    columns = {"x1": x1, "x2": x2 if two else None}
    for f in factors:
        b = correlated_effects(rng, f["codes"].max() + 1, f["sds"], f.get("corr", 0))
        eta = eta + b[f["codes"], 0]
        if f["slopes"]:
            eta = eta + b[f["codes"], 1] * x1
    if category.endswith("scaled"):  # the same model in other units of x1
        columns["x1"] = x1 * float(rng.choice([1e-3, 1e3]))
    frame = pd.DataFrame(index=range(n))
    frame["design"] = design_id
    weights = r_weights = offset = None
    if draw.family == "binomial":
        mu = inverse_link(draw.link, eta)
        if draw.aggregated:
            trials = 1 + rng.poisson(rng.uniform(2, 12), size=n)
            frame["y"] = rng.binomial(trials, mu) / trials
            frame["trials"] = trials
            weights = r_weights = "trials"
        else:
            frame["y"] = rng.binomial(1, mu)
        response = r_response = "y"
    else:
        kind = category.split("_", 1)[1]
        mu = np.exp(eta)
        if kind in ("offset", "exposure") or (kind == "medium" and rng.uniform() < 0.5):
            exposure = rng.uniform(0.3, 5.0, size=n)
            mu = mu * exposure
            if kind == "exposure":
                frame["exposure"] = exposure
                weights = "exposure"
            else:
                frame["log_exposure"] = np.log(exposure)
                offset = "log_exposure"
        frame["count"] = rng.poisson(mu)
        response = r_response = "count"
        if weights == "exposure":
            frame["rate"] = frame["count"] / frame["exposure"]
            response = "rate"
    for name in fixed:
        frame[name] = columns[name]
    terms = []
    spec_factors = []
    for f in factors:
        # a_b's codes number the a:b cells: labels unique across a, as a:b.
        frame[f["name"]] = labels(f["name"], f["codes"])
        bar = "||" if f.get("covariance") == "diagonal" else "|"
        terms.append(f"(1{''.join(' + ' + s for s in f['slopes'])} {bar} {f['name']})")
        spec_factors.append(
            dict(
                name=f["name"],
                slopes=f["slopes"],
                covariance=f.get("covariance", "unstructured"),
                n_levels=int(f["codes"].max() + 1),
            )
        )
    rhs = " + ".join(fixed)
    if offset:
        rhs += f" + offset({offset})"
    if weights == "exposure":
        rhs += " + offset(log(exposure))"
    formula = f"{r_response} ~ {rhs} + {' + '.join(terms)}"
    spec = dict(
        id=design_id,
        category=category,
        family=draw.family,
        link=draw.link,
        n=n,
        response=response,
        fixed_columns=fixed,
        weights=weights,
        offset=offset,
        factors=spec_factors,
        formula=formula,
        r_weights=r_weights,
        truth=dict(
            beta=[float(v) for v in beta[: 1 + len(fixed)]],
            sds={f["name"]: [float(s) for s in f["sds"]] for f in factors},
            corr={f["name"]: float(f.get("corr", 0.0)) for f in factors if f["slopes"]},
        ),
    )
    return spec, frame


def make_designs(seed=SEED, copies=1, found=True):
    """Every design of the schedule: the specs and one long data frame.

    ``found`` adds the designs of ``FOUND``.
    """
    specs, frames, k = [], [], 0
    for copy in range(copies):
        for category, count in SCHEDULE:
            for _ in range(count):
                k += 1
                rng = np.random.default_rng([seed, k])
                spec, frame = make_design(rng, f"d{k:03d}_{category}", category)
                specs.append(spec)
                frames.append(frame)
    for j, (category, other_seed, index, _) in enumerate(FOUND * found, start=1):
        rng = np.random.default_rng([other_seed, index])
        design_id = f"f{j:02d}_{category}_s{other_seed}_{index}"
        spec, frame = make_design(rng, design_id, category)
        specs.append(spec)
        frames.append(frame)
    return specs, pd.concat(frames, ignore_index=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--no-found", action="store_true", help="leave FOUND out")
    parser.add_argument("--outdir", default=str(HERE))
    args = parser.parse_args(argv)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    specs, data = make_designs(args.seed, args.copies, not args.no_found)
    data.to_csv(out / "designs.csv.gz", index=False, float_format="%.10g")
    (out / "designs.json").write_text(
        json.dumps(dict(seed=args.seed, designs=specs), indent=1) + "\n"
    )
    print(f"{len(specs)} designs, {len(data)} rows -> {out}")


if __name__ == "__main__":
    main()
