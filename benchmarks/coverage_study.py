"""Coverage of the 95% Wald, profile and bootstrap intervals, by simulation.

Simulates many data sets from a linear mixed model with known parameters
(:func:`skmixed.datasets.make_grouped_regression`), fits each, computes the
intervals of ``MixedLinearRegressor.confint`` with every method and prints how
often each interval covers the true value.  A well-calibrated 95% method covers
between about 93% and 97% (the Monte-Carlo standard error is printed beside each
rate).  Wald intervals exist for the fixed effects only, as in lme4.

Not part of the test suite: a modest run takes minutes.

Examples::

    python benchmarks/coverage_study.py                       # 200 data sets
    python benchmarks/coverage_study.py --datasets 50 --n-boot 100 --n-jobs 2
    python benchmarks/coverage_study.py --model slope --groups 30 --methods wald,profile
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout

from skmixed import MixedLinearRegressor  # noqa: E402
from skmixed.datasets import make_grouped_regression  # noqa: E402

METHODS = ("wald", "profile", "bootstrap")


def true_parameters(args):
    """The generating values, named as ``confint`` names the parameters."""
    truth = {"sd_Intercept|group": args.sd_intercept}
    if args.model == "slope":
        truth["cor_x1.Intercept|group"] = args.corr
        truth["sd_x1|group"] = args.sd_slope
    truth.update({"sigma": args.sigma, "Intercept": args.intercept, "x1": args.coef})
    return truth


def simulate_data(args, seed):
    slope = args.model == "slope"
    return make_grouped_regression(
        n_groups=args.groups,
        group_size=args.group_size,
        n_features=1,
        coef=args.coef,
        intercept=args.intercept,
        random_slopes=(0,) if slope else (),
        re_sd=[args.sd_intercept, args.sd_slope] if slope else args.sd_intercept,
        re_corr=args.corr if slope else None,
        noise_sd=args.sigma,
        return_X_y_groups=True,
        random_state=seed,
    )


def one_data_set(args, index, seed):
    """Intervals of every method on one simulated data set, as records."""
    X, y, groups = simulate_data(args, np.random.SeedSequence(seed))
    model = MixedLinearRegressor(
        random_slopes=["x1"] if args.model == "slope" else None, method=args.method
    )
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular fits are part of the study
        model.fit(X, y, groups=groups)
        for method in args.methods:
            kwargs = {}
            if method == "bootstrap":
                kwargs = dict(n_boot=args.n_boot, random_state=seed, progress=False)
            start = time.perf_counter()
            intervals = model.confint(method, level=args.level, **kwargs)
            seconds = time.perf_counter() - start
            for name, row in intervals.iterrows():
                records.append(
                    dict(
                        dataset=index,
                        method=method,
                        parameter=name,
                        lower=row["lower"],
                        upper=row["upper"],
                        seconds=seconds,
                        singular=model.is_singular_,
                    )
                )
    return records


def summarise(frame, truth):
    frame = frame[frame["parameter"].isin(truth)].copy()
    frame["truth"] = frame["parameter"].map(truth)
    frame["defined"] = frame["lower"].notna() & frame["upper"].notna()
    frame["covers"] = (frame["lower"] <= frame["truth"]) & (
        frame["truth"] <= frame["upper"]
    )
    frame["width"] = frame["upper"] - frame["lower"]
    grouped = frame[frame["defined"]].groupby(["parameter", "method"], sort=False)
    table = grouped.agg(
        coverage=("covers", "mean"), n=("covers", "size"), width=("width", "median")
    )
    table["mc_se"] = np.sqrt(table["coverage"] * (1 - table["coverage"]) / table["n"])
    coverage = (
        (100 * table["coverage"]).round(1).astype(str)
        + " ± "
        + (100 * table["mc_se"]).round(1).astype(str)
    )
    wide = coverage.unstack("method").reindex(index=list(truth))
    widths = table["width"].unstack("method").reindex(index=list(truth))
    return wide, widths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200, help="simulated data sets")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--model", choices=["intercept", "slope"], default="intercept")
    parser.add_argument("--method", choices=["reml", "ml"], default="reml")
    parser.add_argument("--groups", type=int, default=20, help="number of groups")
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--intercept", type=float, default=1.0)
    parser.add_argument("--coef", type=float, default=0.5)
    parser.add_argument("--sd-intercept", type=float, default=1.0)
    parser.add_argument("--sd-slope", type=float, default=0.5)
    parser.add_argument("--corr", type=float, default=0.3)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="data sets in parallel")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    return args


def main(argv=None):
    args = parse_args(argv)
    truth = true_parameters(args)
    seeds = [
        int(s.generate_state(1)[0])
        for s in np.random.SeedSequence(args.seed).spawn(args.datasets)
    ]
    start = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(one_data_set)(args, i, seed) for i, seed in enumerate(seeds)
    )
    elapsed = time.perf_counter() - start
    frame = pd.DataFrame([r for records in results for r in records])
    coverage, widths = summarise(frame, truth)
    per_set = frame.drop_duplicates(["dataset", "method"])
    seconds = per_set.groupby("method", sort=False)["seconds"].mean()
    singular = frame.drop_duplicates("dataset")["singular"].mean()
    print(
        f"model: y ~ x1 + ({'1 + x1' if args.model == 'slope' else '1'} | group), "
        f"{args.groups} groups x {args.group_size}, {args.method.upper()}; "
        f"truth {truth}"
    )
    print(
        f"{args.datasets} data sets, bootstrap n_boot={args.n_boot}, "
        f"level={args.level}, seed={args.seed}; {elapsed:.0f} s with "
        f"n_jobs={args.n_jobs}; singular fits: {100 * singular:.0f}%"
    )
    print("\ncoverage (%) ± Monte-Carlo SE:")
    print(coverage.fillna("-").to_string())
    print("\nmedian width:")
    print(widths.round(3).to_string())
    print("\nmean seconds per data set:")
    print(seconds.round(3).to_string())


if __name__ == "__main__":
    main()
