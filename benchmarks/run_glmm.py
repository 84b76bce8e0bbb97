"""Time skmixed's GLMMs against their peers; print a table with likelihoods.

Scenarios (``glmm_scenarios.py``), each fitted by maximum likelihood with the
Laplace approximation on the same simulated rows by every package that can:

- ``logit-20k``, ``logit-1m``: ``y ~ x1 + x2 + (1 + x1 | g)``, Bernoulli
  (logit), 20,000 rows / 400 groups and 1,000,000 rows / 10,000 groups;
- ``poisson-100k``: ``y ~ x1 + x2 + (1 | g) + offset(log_t)``, 100,000 rows /
  2,000 groups.

Packages (``glmm_peers.py``): skmixed (``MixedLogisticRegression`` /
``MixedPoissonRegressor``), ``skmixed_diag`` (skmixed's uncorrelated model
``covariance="diagonal"``, the model GPBoost and statsmodels fit), lme4's
``glmer`` (``glmer_fit.R``, bobyqa), mixedlm's ``glmer``, GPBoost's
``GPModel`` and statsmodels' ``BinomialBayesMixedGLM.fit_vb`` (variational
Bayes).

Each fit runs in a fresh process with a time limit, after a warm-up fit on a
small data set of the same shape (``harness.py``, as ``run_all.py``). The
packages alternate: with ``--repeats 3`` each round fits every package once,
so that load from other work on the machine falls on all of them alike. The
report gives per fit the time (median over rounds), the peak memory, the
ratio to skmixed's time, the package's own log-likelihood, and glmer's
Laplace log-likelihood at the package's estimates evaluated by skmixed's
PIRLS in this process (``glmm_peers.laplace_loglik``), so that "fastest at
an equal or better likelihood" can be read off the table.

Examples::

    python benchmarks/run_glmm.py --scenarios logit-20k,poisson-100k
    python benchmarks/run_glmm.py --scenarios logit-1m --only skmixed,mixedlm
    python benchmarks/run_glmm.py --scenarios logit-50000x1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from glmm_peers import (
    IMPORTS,
    MODULES,
    PACKAGES,
    PYTHON_PEERS,
    laplace_loglik,
    laplace_rows,
)
from glmm_scenarios import GLMM_SCENARIOS, GlmmScenario, get_glmm_scenario
from harness import (
    HERE,
    Outcome,
    RunError,
    child_env,
    format_table,
    load_average,
    log,
    number,
    probe,
    read_data,
    report,
    run_measured,
    time_call,
    write_data,
)
from run_all import largest_difference

RESULTS = HERE / "results"
R_GLMER = HERE / "glmer_fit.R"


# ------------------------------------------------------------- inside a worker


def run_worker(package, scenario: GlmmScenario, data: Path, warmup: Path, mode):
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


def worker_command(package, scenario: GlmmScenario, data: Path, warmup: Path):
    """The command of one measured process; its mode (``fit``) comes last."""
    if package == "lme4":
        kinds = {
            name: "factor" if name in scenario.factors else kind
            for name, kind in scenario.columns().items()
        }
        columns = ",".join(f"{name}:{kind}" for name, kind in kinds.items())
        return [
            "Rscript",
            str(R_GLMER),
            str(data),
            str(warmup),
            scenario.lme4_formula,
            columns,
            scenario.family,
            "fit",
        ]
    return [
        sys.executable,
        str(Path(__file__).resolve()),
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


def runnable(scenario: GlmmScenario, package, args) -> str:
    """Why ``package`` is not run on ``scenario`` ("" when it is)."""
    if package == "skmixed_diag" and not any(scenario.factors.values()):
        return "not run: no random slope, the same model as skmixed"
    if package in scenario.infeasible and not args.try_infeasible:
        return f"not run: {scenario.infeasible[package]}"
    return ""


def bench_scenario(scenario: GlmmScenario, versions, args, env) -> list[Outcome]:
    """Simulate the scenario once; fit every package on it, alternating."""
    log(f"{scenario.name}: {scenario.lme4_formula}, {scenario.n_rows:,} rows")
    outcomes = {
        p: Outcome(p, scenario.name, version=versions[p])
        for p in args.only
        if versions[p] is not None
    }
    for package, outcome in outcomes.items():
        outcome.note = runnable(scenario, package, args)
        if outcome.note:
            log(f"  {package:<12} {outcome.note}")
    with tempfile.TemporaryDirectory(prefix="skmixed-glmm-") as tmp:
        data, warmup = Path(tmp) / "data", Path(tmp) / "warmup"
        columns = scenario.simulate(args.seed)
        write_data(columns, data)
        write_data(scenario.warmup(args.seed + 1), warmup)
        peaks = {p: [] for p in outcomes}
        for _ in range(min(args.repeats, scenario.max_rounds or args.repeats)):
            for package, outcome in outcomes.items():
                if outcome.note:  # not run, or failed in an earlier round
                    continue
                timeout = args.timeout
                if package != "skmixed" and scenario.timeout:
                    timeout = min(timeout, scenario.timeout)
                command = worker_command(package, scenario, data, warmup)
                load = load_average()
                try:
                    result, peak = run_measured(command, env, timeout)
                except RunError as error:
                    outcome.note = f"failed: {error}"
                    log(f"  {package:<12} {outcome.note} (load {load})")
                    continue
                outcome.seconds.append(result.pop("seconds"))
                outcome.estimates = {**result, "load": load}
                peaks[package].append(peak)
                log(f"  {package:<12} {outcome.seconds[-1]:9.3f} s (load {load})")
        for package, outcome in outcomes.items():
            if not outcome.seconds:
                continue
            command = worker_command(package, scenario, data, warmup)
            try:
                _, baseline = run_measured([*command[:-1], "baseline"], env, 600.0)
                outcome.peak_mib = max(peaks[package]) - baseline
            except RunError as error:
                log(f"  {package:<12} baseline failed: {error}")
        add_laplace_logliks(scenario, columns, list(outcomes.values()))
    return list(outcomes.values())


def add_laplace_logliks(scenario, columns, outcomes) -> None:
    """glmer's Laplace log-likelihood at every package's estimates."""
    fitted = [o for o in outcomes if o.seconds]
    if not fitted:
        return
    rows = laplace_rows(scenario, columns)
    for outcome in fitted:
        try:
            value = laplace_loglik(rows, scenario, outcome.estimates)
        except (KeyError, ValueError, TypeError) as error:
            log(f"  {outcome.package:<12} no Laplace log-likelihood: {error!r}")
            continue
        outcome.estimates["laplace_loglik"] = value
        own = outcome.estimates.get("loglik")
        if outcome.package.startswith("skmixed") and abs(value - own) > 1e-6 * abs(own):
            log(
                f"  {outcome.package:<12} its loglik_ {own:.6f} is not the Laplace "
                f"log-likelihood at its estimates, {value:.6f}: laplace_loglik is "
                "out of step with skmixed's parametrisation"
            )


# ------------------------------------------------------------------ reporting


# Packages that fit random slopes independent of the intercept.
UNCORRELATED = ("skmixed_diag", "gpboost", "statsmodels")


def fitted_model(scenario: GlmmScenario, package: str) -> str:
    """The model a package fits: the scenario's, or with a slope
    uncorrelated with the intercept."""
    if package in UNCORRELATED and any(scenario.factors.values()):
        return "uncorrelated"
    return "as specified"


def best_fit(outcomes: list[Outcome]) -> Outcome | None:
    """The fit whose estimates reach the highest Laplace log-likelihood."""
    fitted = [o for o in outcomes if o.estimates.get("laplace_loglik") is not None]
    return max(fitted, key=lambda o: o.estimates["laplace_loglik"], default=None)


def scenario_rows(scenario: GlmmScenario, outcomes: list[Outcome]):
    """Each fit against skmixed's time and against the best fit of the same
    model (the uncorrelated fits against the best uncorrelated fit)."""
    reference = next((o for o in outcomes if o.package == "skmixed"), None)
    best = {
        model: best_fit(
            [o for o in outcomes if fitted_model(scenario, o.package) == model]
        )
        for model in ("as specified", "uncorrelated")
    }
    rows = []
    for o in outcomes:
        cells = [scenario.name, f"{scenario.n_rows:,}", f"{o.package} {o.version}"]
        if not o.seconds:
            rows.append([*cells, *[""] * 8, o.note])
            continue
        ratio = o.median / reference.median if reference and reference.median else None
        est = o.estimates
        own = est.get("loglik")
        at = est.get("laplace_loglik")
        mine = best[fitted_model(scenario, o.package)]
        gap, difference = "", ""
        if at is not None and mine is not None:
            gap = f"{at - mine.estimates['laplace_loglik']:.2e}"
            if o is mine:
                difference = "(best)"
            else:
                value, name = largest_difference(est, mine.estimates)
                difference = f"{value:.1e} {name}"
        conv = est.get("converged")
        rows.append(
            [
                *cells,
                number(o.median, 3),
                number(o.peak_mib and max(o.peak_mib, 0.0), 0),
                number(ratio, 2),
                "" if own is None else f"{own:.3f}",
                "" if at is None else f"{at:.3f}",
                gap,
                difference,
                "" if conv is None else ("yes" if conv else "NO"),
                "; ".join(filter(None, [scenario_note(scenario, o.package), o.note])),
            ]
        )
    return rows


def scenario_note(scenario: GlmmScenario, package: str) -> str:
    notes = []
    if fitted_model(scenario, package) == "uncorrelated":
        notes.append("uncorrelated slope")
    if package == "statsmodels":
        notes.append("VB posterior means")
    return "; ".join(notes)


def run_header(args, load_before, seconds) -> str:
    return (
        f"Laplace ML fits; seed {args.seed}; {args.repeats} round(s), packages "
        f"alternating; load average (1/5/15 min) before {load_before}, after "
        f"{load_average()}; {os.cpu_count()} cores; whole run {seconds / 60:.1f} min"
    )


def print_report(scenarios, outcomes, header: str) -> None:
    print(f"\n{header}\n")
    print("fit s: median seconds of the fit call alone; peak MiB: extra RSS over a")
    print("baseline process; ratio: package time / skmixed time (>1: skmixed is")
    print("faster); own loglik: the package's log-likelihood; Laplace loglik:")
    print("glmer's Laplace log-likelihood at its estimates (skmixed's PIRLS);")
    print("d loglik: that minus the highest among the fits of the same model")
    print("(uncorrelated slope: against each other; negative: worse); max |d")
    print("estimate|: largest difference from that best fit (fixed effects,")
    print("random-effect SDs and correlation)\n")
    headers = ["scenario", "rows", "package", "fit s", "peak MiB", "ratio"]
    headers += ["own loglik", "Laplace loglik", "d loglik", "max |d estimate|"]
    headers += ["conv", "note"]
    rows = []
    for scenario in scenarios:
        rows += scenario_rows(
            scenario, [o for o in outcomes if o.scenario == scenario.name]
        )
    print(format_table(headers, rows, left=("max |d estimate|", "note")))


# ----------------------------------------------------------------------- main


def parse_list(known, pattern_ok=lambda item: False):
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        for item in items:
            if item not in known and not pattern_ok(item):
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
        type=parse_list(GLMM_SCENARIOS, lambda s: s.startswith("logit-")),
        default=",".join(GLMM_SCENARIOS),
        help=f"comma-separated: {', '.join(GLMM_SCENARIOS)}, or logit-ROWSxGROUPS",
    )
    parser.add_argument(
        "--only",
        type=parse_list(PACKAGES),
        default=",".join(PACKAGES),
        help=f"comma-separated subset of {', '.join(PACKAGES)}",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of fits (one per package each); 1 at 500,000 rows or more",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--try-infeasible",
        action="store_true",
        help="run the fits a scenario marks infeasible",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="set OMP/OpenBLAS/MKL/Rayon thread counts in every fitting process",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds allowed per process (peers: at most the scenario's limit)",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS / "run_glmm.json", help="raw results"
    )
    parser.add_argument(
        "--report",
        type=lambda text: [Path(p) for p in text.split(",")],
        help="comma-separated --json files of earlier runs: print their table "
        "(the last file's row wins for a package and scenario) and fit nothing",
    )
    return parser


def saved_outcomes(paths: list[Path]) -> list[Outcome]:
    """The outcomes of earlier runs (``--json`` files); for a package fitted
    on a scenario in several files, the last file's (a rerun of some rows)."""
    merged = {}
    for path in paths:
        for item in json.loads(path.read_text()):
            outcome = Outcome(**item)
            merged[outcome.scenario, outcome.package] = outcome
    return list(merged.values())


def report_saved(args) -> None:
    """Print the table of saved runs, the Laplace log-likelihoods evaluated
    again (the scenarios' data are simulated again from ``--seed``)."""
    outcomes = saved_outcomes(args.report)
    names = list(dict.fromkeys(o.scenario for o in outcomes))
    scenarios = [get_glmm_scenario(name) for name in names]
    for scenario in scenarios:
        mine = [o for o in outcomes if o.scenario == scenario.name]
        add_laplace_logliks(scenario, scenario.simulate(args.seed), mine)
    files = ", ".join(str(p) for p in args.report)
    header = f"Laplace ML fits; seed {args.seed}; saved runs {files}"
    print_report(scenarios, outcomes, header)


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="run_glmm.py --worker")
    parser.add_argument("package", choices=sorted(PYTHON_PEERS))
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--warmup", type=Path, required=True)
    parser.add_argument("mode", choices=["fit", "baseline"])
    args = parser.parse_args(argv)
    scenario = get_glmm_scenario(args.scenario)
    run_worker(args.package, scenario, args.data, args.warmup, args.mode)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1:])
        return
    args = build_parser().parse_args(argv)
    if args.report:
        report_saved(args)
        return
    args.only = [p for p in PACKAGES if p in args.only]
    scenarios = [get_glmm_scenario(name) for name in args.scenarios]
    env = child_env(args.threads)
    start, load_before = time.monotonic(), load_average()
    versions = {}
    for package in args.only:
        module = MODULES.get(package, package)
        versions[package], reason = probe(module, IMPORTS[package], env)
        if versions[package] is None:
            log(f"{package}: skipped, {reason}")
    outcomes = []
    for scenario in scenarios:
        outcomes += bench_scenario(scenario, versions, args, env)
    seconds = time.monotonic() - start
    print_report(scenarios, outcomes, run_header(args, load_before, seconds))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    print(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
