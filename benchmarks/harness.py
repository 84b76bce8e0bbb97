"""Measuring fits in fresh processes: the machinery every benchmark here shares.

A measured process (a Python worker, or ``Rscript`` for lme4) reads the data
from raw little-endian column files, imports its package, builds the inputs,
runs a warm-up fit on a small data set of the same shape, then times one fit
and prints ``RESULT {json}`` on stdout. The parent reaps it with ``os.wait4``,
which gives its peak resident set size (native allocations included), and
kills it when it overruns its time limit. A baseline process does everything
but the timed fit; the fit's memory is the difference of the two peaks.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
R_SCRIPT = HERE / "lme4_fit.R"
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
)
SUFFIX = {"f64": "<f8", "i32": "<i4"}


# --------------------------------------------------------------------------- data


def column_kind(values: np.ndarray) -> str:
    return "i32" if values.dtype.kind in "iu" else "f64"


def write_data(data: dict[str, np.ndarray], data_dir: Path) -> None:
    """Each column as raw little-endian values (R reads them with ``readBin``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, values in data.items():
        kind = column_kind(values)
        values.astype(SUFFIX[kind]).tofile(data_dir / f"{name}.{kind}")


def read_data(data_dir: Path, columns: dict[str, str]) -> dict[str, np.ndarray]:
    """``columns`` maps names to ``"f64"`` or ``"i32"``."""
    data = {}
    for name, kind in columns.items():
        column = np.fromfile(data_dir / f"{name}.{kind}", dtype=SUFFIX[kind])
        data[name] = column.astype(SUFFIX[kind][1:], copy=False)
    return data


# ------------------------------------------------------------ inside a worker


def report(seconds: float | None, estimates: dict[str, Any] | None = None) -> None:
    """What a worker prints for the parent: one ``RESULT`` line."""
    print("RESULT " + json.dumps({"seconds": seconds, **(estimates or {})}), flush=True)


def time_call(fit, inputs) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fit(inputs)
    return time.perf_counter() - start, result


# --------------------------------------------------------- in the parent process


@dataclass
class Outcome:
    """What one package did on one scenario."""

    package: str
    scenario: str
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


def measure(outcome: Outcome, command, repeats: int, env, timeout: float) -> Outcome:
    """``repeats`` timed fits, each in a fresh process, then one baseline.

    The baseline (``command`` with its last argument ``fit`` replaced by
    ``baseline``) runs only after a fit succeeded, so that a package that
    overruns its limit costs the limit once.
    """
    try:
        peaks = []
        for _ in range(repeats):
            result, peak = run_measured(command, env, timeout)
            outcome.seconds.append(result.pop("seconds"))
            outcome.estimates = result
            peaks.append(peak)
            log(f"  {outcome.package:<12} {outcome.seconds[-1]:9.3f} s")
        _, baseline = run_measured([*command[:-1], "baseline"], env, timeout)
        outcome.peak_mib = max(peaks) - baseline
    except RunError as error:
        outcome.note = f"failed: {error}"
        log(f"  {outcome.package:<12} {outcome.note}")
    return outcome


def child_env(threads: int | None) -> dict[str, str]:
    """The workers' environment: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def probe(package: str, import_line: str, env: dict[str, str]):
    """(version, "") when the package can fit here, else (None, reason)."""
    if package == "lme4":
        if shutil.which("Rscript") is None:
            return None, "Rscript is not on PATH"
        command = ["Rscript", "-e", 'cat(format(packageVersion("lme4")))']
    else:
        module = package.split("-")[0]  # "gpboost-cholesky": gpboost
        code = f"{import_line}; import {module} as m; "
        code += "print(getattr(m, '__version__', '?'))"
        command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, f"cannot load it ({lines[-1] if lines else 'no message'})"
    return done.stdout.strip().splitlines()[-1], ""


def load_average() -> str:
    """``uptime``'s load averages (1, 5, 15 minutes), for the report."""
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on this platform
        return "n/a"


# --------------------------------------------------------------------- reporting


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_table(headers: list[str], rows: list[list[str]], left=()) -> str:
    """Columns right-aligned, except the first and those named in ``left``."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    to_left = {0} | {headers.index(name) for name in left}

    def line(cells):
        padded = (
            cell.ljust(w) if i in to_left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths))
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def number(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
