"""Time one REML fit of ``y ~ x1 + x2 + (1 + x1 | g)`` in skmixed and its peers.

What is measured
----------------
The data are simulated once per size from known parameters: fixed effects
(1, 0.5, -0.3) for (intercept, x1, x2), a random intercept and a random slope on
x1 per group with SDs (1.0, 0.5) and correlation 0.3, residual SD 1. Groups are
drawn uniformly, so their sizes vary. Sizes: ``small`` is 100,000 rows in 2,000
groups, ``large`` 1,000,000 rows in 10,000 groups (or ``ROWSxGROUPS``).

Every package fits exactly those rows with REML:

- skmixed: ``MixedLinearRegressor(random_slopes=["x1"]).fit(X, y, groups=g)``, X a
  DataFrame with columns x1, x2 and g an int32 array; the checkout this file sits in
  is put first on ``PYTHONPATH``.
- statsmodels: ``MixedLM(y, exog, groups=g, exog_re=exog_re).fit(reml=True)``, the
  array API (the formula API runs the same fit after building these arrays with
  formulaic, which would only add parsing time); default optimiser.
- mixedlm: ``lmer("y ~ x1 + x2 + (1 + x1 | g)", df, REML=True)``, its defaults.
- lme4 (R): ``lme4::lmer(y ~ x1 + x2 + (1 + x1 | g), d, REML = TRUE)``, its defaults,
  run by ``lme4_fit.R`` beside this file.

Each fit runs in a fresh process (``Rscript`` for lme4). That process reads the
data from raw little-endian binary files, imports the package and makes the
package's inputs (DataFrame, arrays, R data.frame with a factor), then runs a
warm-up fit on the rows of the first 50 groups so that lazy imports, JIT and
byte-compilation are done; none of this is timed. Only the one fitting call is
timed (``time.perf_counter`` in Python, ``system.time(...)["elapsed"]`` in R).

Memory is the peak resident set size of that process, read by the parent with
``os.wait4``, minus the peak of a baseline process that does everything except the
timed fit (same data, imports, inputs and warm-up). It is the extra memory the
fit needed, native allocations included.

Reported per size and package: the median fit time over ``--repeats`` fresh
processes, the peak memory increase (largest over the repeats), each peer's time
divided by skmixed's (above 1: skmixed is faster), and the estimates (fixed
effects, random-effect SDs and correlation, sigma, REML criterion) so that
agreement is visible. Thread pools keep each library's defaults unless
``--threads N`` is given.

Examples::

    python benchmarks/bench_single_factor.py
    python benchmarks/bench_single_factor.py --sizes small --repeats 5
    python benchmarks/bench_single_factor.py --only skmixed,lme4 --skip-slow
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
R_SCRIPT = HERE / "lme4_fit.R"

SIZES = {"small": (100_000, 2_000), "large": (1_000_000, 10_000)}
PACKAGES = ("skmixed", "statsmodels", "mixedlm", "lme4")
SLOW = {("statsmodels", "large")}
WARMUP_GROUPS = 50
FORMULA = "y ~ x1 + x2 + (1 + x1 | g)"
TRUTH = {
    "fixef": [1.0, 0.5, -0.3],
    "sd": [1.0, 0.5],
    "corr": 0.3,
    "sigma": 1.0,
}
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
)
PROBES = {
    "skmixed": "from skmixed import MixedLinearRegressor",
    "statsmodels": "from statsmodels.regression.mixed_linear_model import MixedLM",
    "mixedlm": "from mixedlm import lmer",
}
COLUMNS = {"y": "<f8", "x1": "<f8", "x2": "<f8", "g": "<i4"}
SUFFIX = {"<f8": "f64", "<i4": "i32"}


# --------------------------------------------------------------------------- data


def simulate(n_rows: int, n_groups: int, seed: int) -> dict[str, np.ndarray]:
    """Draw one data set from the model with the parameters in ``TRUTH``."""
    rng = np.random.default_rng(seed)
    sd = np.array(TRUTH["sd"])
    corr = np.array([[1.0, TRUTH["corr"]], [TRUTH["corr"], 1.0]])
    b = rng.multivariate_normal(np.zeros(2), np.outer(sd, sd) * corr, n_groups)
    g = rng.integers(0, n_groups, size=n_rows, dtype=np.int32)
    x1 = rng.standard_normal(n_rows)
    x2 = rng.standard_normal(n_rows)
    b0, b1, b2 = TRUTH["fixef"]
    noise = TRUTH["sigma"] * rng.standard_normal(n_rows)
    y = b0 + b1 * x1 + b2 * x2 + b[g, 0] + b[g, 1] * x1 + noise
    return {"y": y, "x1": x1, "x2": x2, "g": g}


def column_path(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.{SUFFIX[COLUMNS[name]]}"


def write_data(data: dict[str, np.ndarray], data_dir: Path) -> None:
    """Write each column as raw little-endian values (R reads them with readBin)."""
    for name, dtype in COLUMNS.items():
        data[name].astype(dtype).tofile(column_path(data_dir, name))


def read_data(data_dir: Path, n_rows: int) -> dict[str, np.ndarray]:
    data = {}
    for name, dtype in COLUMNS.items():
        column = np.fromfile(column_path(data_dir, name), dtype=dtype)
        if column.size != n_rows:
            raise ValueError(f"{name}: expected {n_rows} values, got {column.size}")
        data[name] = column.astype(dtype[1:], copy=False)
    return data


def first_groups(data: dict[str, np.ndarray], n_groups: int) -> dict[str, np.ndarray]:
    """The rows of groups 0 .. n_groups - 1, for the warm-up fit."""
    keep = data["g"] < n_groups
    return {name: column[keep] for name, column in data.items()}


# ------------------------------------------------ the fits (run in a worker process)


def summarise(fixef, cov, sigma, objective=None, converged=None) -> dict[str, Any]:
    """Estimates in one layout for every package; cov is the 2 x 2 random-effect
    covariance (intercept, x1)."""
    cov = np.asarray(cov, dtype=float)
    sd = np.sqrt(np.diag(cov))
    return {
        "fixef": [float(v) for v in fixef],
        "sd": [float(v) for v in sd],
        "corr": float(cov[0, 1] / (sd[0] * sd[1])),
        "sigma": float(sigma),
        "objective": None if objective is None else float(objective),
        "converged": None if converged is None else bool(converged),
    }


def skmixed_prepare(data):
    import pandas as pd

    from skmixed import MixedLinearRegressor

    X = pd.DataFrame({"x1": data["x1"], "x2": data["x2"]})
    return MixedLinearRegressor(random_slopes=["x1"]), X, data["y"], data["g"]


def skmixed_fit(inputs):
    model, X, y, g = inputs
    return model.fit(X, y, groups=g)


def skmixed_estimates(model):
    covs = model.random_effects_cov_
    cov = next(iter(covs.values())) if isinstance(covs, dict) else covs
    return summarise(
        [model.intercept_, *np.ravel(model.coef_)],
        cov,
        model.sigma_,
        getattr(model, "objective_", None),
        getattr(model, "converged_", None),
    )


def statsmodels_prepare(data):
    from statsmodels.regression.mixed_linear_model import MixedLM

    exog = np.column_stack([np.ones_like(data["x1"]), data["x1"], data["x2"]])
    exog_re = np.ascontiguousarray(exog[:, :2])
    return MixedLM, data["y"], exog, exog_re, data["g"]


def statsmodels_fit(inputs):
    mixed_lm, y, exog, exog_re, g = inputs
    return mixed_lm(y, exog, groups=g, exog_re=exog_re).fit(reml=True)


def statsmodels_estimates(result):
    # statsmodels' REML log-likelihood has lme4's constants: -2 llf = REMLcrit.
    return summarise(
        result.fe_params,
        result.cov_re,
        math.sqrt(result.scale),
        -2.0 * result.llf,
        result.converged,
    )


def mixedlm_prepare(data):
    import pandas as pd
    from mixedlm import lmer

    return lmer, pd.DataFrame(data)


def mixedlm_fit(inputs):
    lmer, df = inputs
    return lmer(FORMULA, df, REML=True)


def mixedlm_estimates(result):
    cov = next(iter(result.VarCorr().groups.values())).cov
    return summarise(
        result.beta, cov, result.sigma, result.REMLcrit(), result.converged
    )


@dataclass(frozen=True)
class PythonPeer:
    """How to fit the model with one Python package: ``prepare`` imports and builds
    the inputs (not timed), ``fit`` is the timed call, ``estimates`` reads it."""

    prepare: Callable[[dict[str, np.ndarray]], Any]
    fit: Callable[[Any], Any]
    estimates: Callable[[Any], dict[str, Any]]


PYTHON_PEERS = {
    "skmixed": PythonPeer(skmixed_prepare, skmixed_fit, skmixed_estimates),
    "statsmodels": PythonPeer(
        statsmodels_prepare, statsmodels_fit, statsmodels_estimates
    ),
    "mixedlm": PythonPeer(mixedlm_prepare, mixedlm_fit, mixedlm_estimates),
}


def run_worker(package: str, data_dir: Path, n_rows: int, mode: str) -> None:
    """Body of one measured process: load, warm up, then time one fit."""
    peer = PYTHON_PEERS[package]
    data = read_data(data_dir, n_rows)
    peer.fit(peer.prepare(first_groups(data, WARMUP_GROUPS)))
    inputs = peer.prepare(data)
    if mode == "baseline":
        report = {"seconds": None}
    else:
        start = time.perf_counter()
        result = peer.fit(inputs)
        report = {"seconds": time.perf_counter() - start}
        report.update(peer.estimates(result))
    print("RESULT " + json.dumps(report), flush=True)


# ------------------------------------------------------- measuring, in the parent


@dataclass
class Outcome:
    """What one package did on one size."""

    package: str
    size: str
    version: str = ""
    seconds: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    estimates: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


class RunError(RuntimeError):
    pass


def wait_with_usage(proc: subprocess.Popen, timeout: float) -> float:
    """Reap ``proc`` and return its peak resident set size in MiB."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise RunError(f"no result within {timeout:.0f} s (killed)")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    per_mib = 2**20 if sys.platform == "darwin" else 2**10  # bytes vs KiB
    return usage.ru_maxrss / per_mib


def parse_result(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RunError("the worker printed no RESULT line")
    return json.loads(lines[-1][len("RESULT ") :])


def run_measured(command: list[str], env: dict[str, str], timeout: float):
    """Run one worker; return (its RESULT dict, its peak RSS in MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        peak = wait_with_usage(proc, timeout)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        tail = stderr.splitlines()[-1] if stderr else ""
        raise RunError(f"exit code {proc.returncode}: {tail}")
    return parse_result(stdout), peak


def worker_command(package: str, data_dir: Path, n_rows: int, mode: str):
    if package == "lme4":
        args = [str(data_dir), str(n_rows), str(WARMUP_GROUPS), mode]
        return ["Rscript", str(R_SCRIPT), *args]
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        package,
        "--data",
        str(data_dir),
        "--rows",
        str(n_rows),
        "--mode",
        mode,
    ]


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def probe(package: str, env: dict[str, str]) -> tuple[str | None, str]:
    """Return (version, "") when the package can fit here, else (None, reason)."""
    if package == "lme4":
        if shutil.which("Rscript") is None:
            return None, "Rscript is not on PATH"
        command = ["Rscript", "-e", 'cat(format(packageVersion("lme4")))']
    else:
        code = f"{PROBES[package]}; import {package} as m; "
        code += "print(getattr(m, '__version__', '?'))"
        command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, f"cannot load it ({lines[-1] if lines else 'no message'})"
    return done.stdout.strip().splitlines()[-1], ""


def measure(package, size, data_dir, n_rows, args, env) -> Outcome:
    """Baseline process once, then ``args.repeats`` timed fits, each fresh."""
    outcome = Outcome(package, size)
    try:
        _, baseline = run_measured(
            worker_command(package, data_dir, n_rows, "baseline"), env, args.timeout
        )
        peaks = []
        for _ in range(args.repeats):
            command = worker_command(package, data_dir, n_rows, "fit")
            result, peak = run_measured(command, env, args.timeout)
            outcome.seconds.append(result.pop("seconds"))
            outcome.estimates = result
            peaks.append(peak)
            log(f"  {package:<12} {outcome.seconds[-1]:9.3f} s")
        outcome.peak_mib = max(peaks) - baseline
    except RunError as error:
        outcome.note = f"failed: {error}"
        log(f"  {package:<12} {outcome.note}")
    return outcome


def bench_size(size, n_rows, n_groups, packages, versions, args, env):
    """Simulate one data set and measure every package on it."""
    log(f"{size}: {n_rows:,} rows, {n_groups:,} groups")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="skmixed-bench-") as tmp:
        write_data(simulate(n_rows, n_groups, args.seed), Path(tmp))
        for package in packages:
            if versions[package] is None:
                continue
            if args.skip_slow and (package, size) in SLOW:
                outcome = Outcome(package, size, note="skipped (--skip-slow)")
                log(f"  {package:<12} {outcome.note}")
            else:
                outcome = measure(package, size, Path(tmp), n_rows, args, env)
            outcome.version = versions[package]
            outcomes.append(outcome)
    return outcomes


# --------------------------------------------------------------------- reporting


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(w) for cell, w in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def number(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def ratio(outcome: Outcome, reference: Outcome | None) -> str:
    if reference is None or not reference.median or outcome.median is None:
        return "n/a"
    return f"{outcome.median / reference.median:.2f}"


def timing_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for size in dict.fromkeys(o.size for o in outcomes):
        here = [o for o in outcomes if o.size == size]
        reference = next((o for o in here if o.package == "skmixed"), None)
        for o in here:
            low_high = f"{min(o.seconds):.3f}-{max(o.seconds):.3f}" if o.seconds else ""
            rows.append(
                [
                    size,
                    f"{o.package} {o.version}",
                    number(o.median, 3),
                    low_high,
                    number(o.peak_mib, 0),
                    ratio(o, reference) if o.seconds else "",
                    o.note,
                ]
            )
    return rows


def estimate_cells(est: dict[str, Any]) -> list[str]:
    if not est:
        return [""] * 8
    cells = [number(v, 4) for v in est["fixef"]]
    cells += [number(v, 4) for v in est["sd"]]
    cells += [number(est["corr"], 4), number(est["sigma"], 4)]
    cells.append(number(est.get("objective"), 2))
    return cells


def estimate_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for size in dict.fromkeys(o.size for o in outcomes):
        rows.append([size, "truth", *estimate_cells({**TRUTH, "objective": None}), ""])
        for o in outcomes:
            if o.size == size and o.estimates:
                converged = o.estimates.get("converged")
                flag = "" if converged is None else ("yes" if converged else "NO")
                rows.append([size, o.package, *estimate_cells(o.estimates), flag])
    return rows


def print_report(outcomes: list[Outcome], args) -> None:
    threads = "library defaults" if args.threads is None else str(args.threads)
    print(
        f"\nREML fit of {FORMULA}; seed {args.seed}; {args.repeats} repeat(s); "
        f"threads: {threads}"
    )
    print("time = median seconds of the fit call alone; peak = extra MiB of RSS over")
    print("a baseline process; ratio = package time / skmixed time (>1: skmixed")
    print("is faster)\n")
    headers = ["size", "package", "median s", "min-max s", "peak MiB", "ratio", "note"]
    print(format_table(headers, timing_rows(outcomes)))
    print("\nEstimates (REML crit = lme4's REMLcrit; statsmodels: -2 x REML llf)\n")
    headers = ["size", "package", "(Int)", "x1", "x2", "sd(Int)", "sd(x1)"]
    headers += ["corr", "sigma", "REML crit", "conv"]
    print(format_table(headers, estimate_rows(outcomes)))


# -------------------------------------------------------------------------- main


def parse_sizes(text: str) -> dict[str, tuple[int, int]]:
    sizes = {}
    for item in text.split(","):
        item = item.strip()
        if item in SIZES:
            sizes[item] = SIZES[item]
        else:
            rows, _, groups = item.partition("x")
            if not (rows.isdigit() and groups.isdigit()):
                raise argparse.ArgumentTypeError(f"unknown size {item!r}")
            sizes[item] = (int(rows), int(groups))
    return sizes


def parse_packages(text: str) -> list[str]:
    packages = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(packages) - set(PACKAGES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown package(s): {', '.join(unknown)}")
    return [p for p in PACKAGES if p in packages]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default="small,large",
        help="comma-separated: small (100k x 2k), large (1M x 10k) or ROWSxGROUPS",
    )
    parser.add_argument("--repeats", type=int, default=3, help="fits per package")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--only",
        type=parse_packages,
        default=",".join(PACKAGES),
        help=f"comma-separated subset of {', '.join(PACKAGES)}",
    )
    parser.add_argument(
        "--skip-slow",
        action="store_true",
        help="skip statsmodels on the large size (minutes per fit)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="set OMP/OpenBLAS/MKL/Rayon thread counts in every fitting process",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds allowed per process"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_single_factor.py --worker")
    parser.add_argument("package", choices=sorted(PYTHON_PEERS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--mode", choices=["fit", "baseline"], default="fit")
    args = parser.parse_args(argv)
    run_worker(args.package, args.data, args.rows, args.mode)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1:])
        return
    args = build_parser().parse_args(argv)
    env = child_env(args.threads)
    versions = {}
    for package in args.only:
        versions[package], reason = probe(package, env)
        if versions[package] is None:
            log(f"{package}: skipped, {reason}")
    outcomes = []
    for size, (n_rows, n_groups) in args.sizes.items():
        outcomes += bench_size(size, n_rows, n_groups, args.only, versions, args, env)
    print_report(outcomes, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))


if __name__ == "__main__":
    main()
