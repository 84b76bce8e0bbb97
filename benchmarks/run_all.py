"""Run every benchmark scenario against skmixed's peers; print a table, save a plot.

Scenarios (``scenarios.py``), each fitted by REML on the same simulated rows by
every package that can (``peers.py``):

- ``slopes-10k``, ``slopes-100k``, ``slopes-1m``: ``y ~ x1 + x2 + (1 + x1 | g)``
  with 200, 2,000 and 10,000 groups;
- ``insteval``: InstEval's shape, ``y ~ service + (1 | s) + (1 | d) +
  (1 | dept_service)``, 73,421 rows, 2,972 x 1,128 x 28 levels, crossed;
- ``recsys``: ``y ~ 1 + (1 | user) + (1 | item)``, 1,000,000 rows, 50,000
  users x 5,000 items; peers get a time limit (120 s);
- ``wide``: 20 fixed effects and ``(1 + x1 + x2 + x3 | g)``, 100,000 rows,
  1,000 groups; peers get 150 s;
- ``crossed-slopes-small``, ``crossed-slopes``: ``y ~ x + (1 + x | s) +
  (1 + x | i)``, subjects x items fully crossed, 60 x 40 and 500 x 100;
- ``nested-slopes-small``, ``nested-slopes``: ``y ~ x + (1 + x | a) +
  (1 | a_b)``, ``a:b`` nested in ``a``, 330 rows (15 and 56 levels) and
  50,000 rows (200 and 2,000 levels).

GPBoost has no REML: it fits by maximum likelihood, and is compared with
lme4's ML fit of the same data (an extra, untimed lme4 process).

Each fit runs in a fresh process with a time limit (``harness.py``): the data
are read from raw column files, the package imported, its inputs built and a
warm-up fit run on a small data set of the same shape, all untimed; then one
fit is timed. Peak memory is that process's peak RSS minus a baseline
process's. Per scenario the report gives the fit time, the memory, the ratio to
skmixed's time, and how far each package's objective and estimates are from
those of the most accurate fit (the lowest REML criterion).

Examples::

    python benchmarks/run_all.py --skip-slow
    python benchmarks/run_all.py --scenarios slopes-10k,insteval --only skmixed,lme4
    python benchmarks/run_all.py --scenarios slopes-200000x500 --repeats 3
    python benchmarks/run_all.py --scenarios insteval --only skmixed,gpboost
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from harness import (
    HERE,
    Outcome,
    RunError,
    child_env,
    format_table,
    load_average,
    log,
    measure,
    number,
    probe,
    read_data,
    report,
    run_measured,
    time_call,
    write_data,
)
from peers import (
    IMPORTS,
    PACKAGES,
    PYTHON_PEERS,
    gpboost_exact_deviance,
    lme4_command,
)
from scenarios import SCENARIOS, Scenario, get_scenario

RESULTS = HERE / "results"


# ------------------------------------------------------------- inside a worker


def run_worker(package: str, scenario: Scenario, data: Path, warmup: Path, mode):
    """One measured process: load, warm up, then time one fit (or stop)."""
    peer = PYTHON_PEERS[package]
    columns = scenario.columns()
    peer.fit(peer.prepare(scenario, read_data(warmup, columns)))
    inputs = peer.prepare(scenario, read_data(data, columns))
    if mode == "baseline":
        report(None)
        return
    seconds, result = time_call(peer.fit, inputs)
    report(seconds, peer.estimates(result))


def worker_command(package, scenario: Scenario, data: Path, warmup: Path):
    if package == "lme4":
        return lme4_command(scenario, data, warmup)
    script = str(Path(__file__).resolve())
    return [
        sys.executable,
        script,
        "--worker",
        package,
        "--scenario",
        scenario.name,
        "--data",
        str(data),
        "--warmup",
        str(warmup),
        "fit",
    ]


# ------------------------------------------------------------- in the parent


def bench_scenario(scenario: Scenario, versions, args, env) -> list[Outcome]:
    """Simulate the scenario's data once; measure every package on it."""
    log(f"{scenario.name}: {scenario.formula}, {scenario.n_rows:,} rows")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="skmixed-bench-") as tmp:
        data, warmup = Path(tmp) / "data", Path(tmp) / "warmup"
        write_data(scenario.simulate(args.seed), data)
        write_data(scenario.warmup(args.seed + 1), warmup)
        for package in args.only:
            if versions[package] is None:
                continue
            outcome = Outcome(package, scenario.name, version=versions[package])
            if package in scenario.infeasible and not args.try_infeasible:
                outcome.note = f"not run: {scenario.infeasible[package]}"
            elif args.skip_slow and package in scenario.slow:
                outcome.note = f"skipped (--skip-slow): {scenario.slow[package]}"
            else:
                if package in scenario.infeasible:
                    outcome.note = f"forced: {scenario.infeasible[package]}"
                timeout = args.timeout
                if not package.startswith("skmixed") and scenario.timeout:
                    timeout = min(timeout, scenario.timeout)
                command = worker_command(package, scenario, data, warmup)
                measure(outcome, command, args.repeats, env, timeout)
            if outcome.note.startswith(("not run", "skipped")):
                log(f"  {package:<12} {outcome.note}")
            outcomes.append(outcome)
        add_ml_reference(scenario, outcomes, data, warmup, args, env, versions)
    return outcomes


def add_ml_reference(scenario: Scenario, outcomes, data, warmup, args, env, versions):
    """For the packages that fit by ML only (GPBoost): the exact deviance at
    GPBoost's estimates (``ml_objective_exact``, computed here) and lme4's ML
    fit (an untimed process), the reference, as ``ml_reference``."""
    ml_only = [o for o in outcomes if o.seconds and "ml_objective" in o.estimates]
    if not ml_only or args.no_ml_reference:
        return
    for outcome in ml_only:
        if outcome.package.startswith("gpboost") and scenario.ml_reference:
            columns = read_data(data, scenario.columns())
            exact = gpboost_exact_deviance(scenario, columns, outcome.estimates)
            outcome.estimates["ml_objective_exact"] = exact
    if not versions.get("lme4") or not scenario.ml_reference:
        return
    command = [*lme4_command(scenario, data, warmup)[:-1], "ml"]
    timeout = min(args.timeout, scenario.timeout or args.timeout)
    try:
        reference, _ = run_measured(command, env, timeout)
    except RunError as error:
        log(f"  lme4 (ML)    reference failed: {error}")
        return
    log(f"  lme4 (ML)    {reference.pop('seconds'):9.3f} s (reference, untimed)")
    for outcome in ml_only:
        outcome.estimates["ml_reference"] = reference


# ------------------------------------------------------------------ reporting


def parameters(estimates) -> dict[str, float]:
    """Fixed effects, SDs, correlations and sigma as one flat dict."""
    flat = {**estimates["fixef"], **estimates["sd"], **estimates["cor"]}
    return {**flat, "sigma": estimates["sigma"]}


def most_accurate(outcomes: list[Outcome]) -> Outcome | None:
    """The fit with the lowest REML criterion: the best optimum found."""
    fitted = [o for o in outcomes if o.estimates.get("objective") is not None]
    return min(fitted, key=lambda o: o.estimates["objective"], default=None)


def largest_difference(estimates, best) -> tuple[float, str]:
    """max |estimate - best's estimate| over the parameters both report."""
    mine, theirs = parameters(estimates), parameters(best)
    gaps = {
        k: abs(mine[k] - theirs[k])
        for k in mine.keys() & theirs.keys()
        if math.isfinite(mine[k]) and math.isfinite(theirs[k])
    }
    if not gaps:
        return math.nan, ""
    name = max(gaps, key=gaps.get)
    return gaps[name], name


def scenario_rows(scenario: Scenario, outcomes: list[Outcome]) -> list[list[str]]:
    reference = next((o for o in outcomes if o.package == "skmixed"), None)
    best = most_accurate(outcomes)
    rows = []
    for o in outcomes:
        cells = [scenario.name, f"{scenario.n_rows:,}", f"{o.package} {o.version}"]
        if not o.seconds:
            rows.append([*cells, "", "", "", "", "", "", o.note])
            continue
        ratio = o.median / reference.median if reference and reference.median else None
        gap, difference, note = "", "", o.note
        if o.estimates.get("objective") is not None:
            gap = f"{o.estimates['objective'] - best.estimates['objective']:.2e}"
            if o is best:
                difference = "(best)"
            else:
                value, name = largest_difference(o.estimates, best.estimates)
                difference = f"{value:.1e} {name}"
        elif "ml_reference" in o.estimates:  # ML only: against lme4's ML fit
            ml = o.estimates["ml_reference"]
            mine = o.estimates.get("ml_objective_exact", o.estimates["ml_objective"])
            gap = f"{mine - ml['objective']:.2e}"
            value, name = largest_difference(o.estimates, ml)
            difference = f"{value:.1e} {name}"
            note = "; ".join(filter(None, ["ML fit, against lme4's ML fit", note]))
        else:
            note = "; ".join(filter(None, ["ML fit, no lme4 ML fit to compare", note]))
        if "solver" in o.estimates:  # skmixed: which path auto took
            note = "; ".join(filter(None, [f"solver={o.estimates['solver']}", note]))
        converged = o.estimates.get("converged")
        rows.append(
            [
                *cells,
                number(o.median, 3),
                number(o.peak_mib and max(o.peak_mib, 0.0), 0),
                number(ratio, 2),
                gap,
                difference,
                "" if converged is None else ("yes" if converged else "NO"),
                note,
            ]
        )
    return rows


def print_report(scenarios, outcomes, args, load_before, seconds) -> None:
    threads = "library defaults" if args.threads is None else str(args.threads)
    print(
        f"\nREML fits; seed {args.seed}; {args.repeats} repeat(s); threads: "
        f"{threads}; load average (1/5/15 min) before {load_before}, after "
        f"{load_average()}; whole run {seconds / 60:.1f} min\n"
    )
    print("fit s: median seconds of the fit call alone; peak MiB: extra RSS over a")
    print("baseline process; ratio: package time / skmixed time (>1: skmixed is")
    print("faster); d objective: REML criterion minus the lowest of the scenario;")
    print("max |d estimate|: largest difference from the fit with the lowest")
    print("criterion (fixed effects, random-effect SDs and correlations, sigma);")
    print("ML-only fits (GPBoost): both against lme4's ML fit (deviance)\n")
    headers = ["scenario", "rows", "package", "fit s", "peak MiB", "ratio"]
    headers += ["d objective", "max |d estimate|", "conv", "note"]
    rows = []
    for scenario in scenarios:
        rows += scenario_rows(
            scenario, [o for o in outcomes if o.scenario == scenario.name]
        )
    print(format_table(headers, rows, left=("max |d estimate|", "note")))


def save_plot(scenarios, outcomes, path: Path) -> None:
    """Fit time against rows, log-log: one line per package over the slopes
    scenarios, the other scenarios as labelled points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {s.name: s.n_rows for s in scenarios}
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for k, package in enumerate(PACKAGES):
        mine = [o for o in outcomes if o.package == package and o.seconds]
        if not mine:
            continue
        color = f"C{k}"
        line = sorted(
            (rows[o.scenario], o.median)
            for o in mine
            if o.scenario.startswith("slopes")
        )
        if line:
            ax.plot(*zip(*line), "o-", color=color, label=f"{package} (slopes)")
        for o in mine:
            if not o.scenario.startswith("slopes"):
                ax.plot(rows[o.scenario], o.median, "s", color=color, mfc="none")
                ax.annotate(
                    o.scenario,
                    (rows[o.scenario], o.median),
                    fontsize=7,
                    xytext=(4, 2),
                    textcoords="offset points",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("fit time (s)")
    ax.set_title("REML fit time; lines: y ~ x1 + x2 + (1 + x1 | g); squares: others")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------- main


def parse_list(known):
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        for item in items:
            if item not in known and not item.startswith("slopes-"):
                raise argparse.ArgumentTypeError(f"unknown: {item}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenarios",
        type=parse_list(SCENARIOS),
        default=",".join(SCENARIOS),
        help=f"comma-separated: {', '.join(SCENARIOS)}, or slopes-ROWSxGROUPS",
    )
    parser.add_argument(
        "--only",
        type=parse_list(PACKAGES),
        default=",".join(PACKAGES),
        help=f"comma-separated subset of {', '.join(PACKAGES)}",
    )
    parser.add_argument("--repeats", type=int, default=1, help="fits per package")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--skip-slow",
        action="store_true",
        help="skip the fits a scenario marks slow (statsmodels at 1M rows)",
    )
    parser.add_argument(
        "--try-infeasible",
        action="store_true",
        help="run the fits a scenario marks infeasible (statsmodels, crossed; "
        "GPBoost, correlated slopes: it then fits them uncorrelated)",
    )
    parser.add_argument(
        "--no-ml-reference",
        action="store_true",
        help="no lme4 ML fit and no exact deviance for GPBoost's rows (untimed, "
        "but minutes on the largest scenarios)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="set OMP/OpenBLAS/MKL/Rayon thread counts in every fitting process",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds allowed per process"
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS / "run_all.json", help="raw results"
    )
    parser.add_argument(
        "--plot", type=Path, default=RESULTS / "fit_time_vs_rows.png", help="figure"
    )
    return parser


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="run_all.py --worker")
    parser.add_argument("package", choices=sorted(PYTHON_PEERS))
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--warmup", type=Path, required=True)
    parser.add_argument("mode", choices=["fit", "baseline"])
    args = parser.parse_args(argv)
    scenario = get_scenario(args.scenario)
    run_worker(args.package, scenario, args.data, args.warmup, args.mode)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1:])
        return
    args = build_parser().parse_args(argv)
    args.only = [p for p in PACKAGES if p in args.only]
    scenarios = [get_scenario(name) for name in args.scenarios]
    env = child_env(args.threads)
    start, load_before = time.monotonic(), load_average()
    versions = {}
    for package in args.only:
        versions[package], reason = probe(package, IMPORTS[package], env)
        if versions[package] is None:
            log(f"{package}: skipped, {reason}")
    if args.no_ml_reference:
        versions["lme4"] = versions.get("lme4") if "lme4" in args.only else None
    if any(versions.get(p) for p in PACKAGES if p.startswith("gpboost")) and (
        "lme4" not in versions
    ):
        versions["lme4"], reason = probe("lme4", "", env)  # ML reference only
        if versions["lme4"] is None:
            log(f"lme4 (ML reference for gpboost): {reason}")
    outcomes = []
    for scenario in scenarios:
        outcomes += bench_scenario(scenario, versions, args, env)
    print_report(scenarios, outcomes, args, load_before, time.monotonic() - start)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    try:
        save_plot(scenarios, outcomes, args.plot)
        print(f"\nraw results: {args.json}\nplot: {args.plot}")
    except ImportError:
        print(f"\nraw results: {args.json} (no plot: matplotlib is not installed)")


if __name__ == "__main__":
    main()
