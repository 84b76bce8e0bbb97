"""Where ``solver="auto"`` should switch from the exact path to the Krylov path.

Times REML fits of crossed random intercepts with both solvers on data of
growing size, each fit in a fresh process (data simulated in it, a warm-up
fit first, then the timed fit), and reports the fit time, the process's peak
resident memory and the criterion, estimates and their differences:

- ``two-way``: ``y ~ 1 + (1 | user) + (1 | item)``, 200 rows per item and 10
  users per item (the exact path's dense block is the items');
- ``insteval``: InstEval's shape, ``y ~ service + (1 | s) + (1 | d) +
  (1 | dept_service)``, 100 rows per lecturer and 10 students per lecturer:
  the lecturers are nested in 14 departments, the hard case for a diagonal
  preconditioner.

Examples::

    python benchmarks/bench_krylov_crossover.py
    python benchmarks/bench_krylov_crossover.py --design two-way --levels 500,1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def simulate(design, levels, seed=0):
    import numpy as np
    import pandas as pd
    from scenarios import simulate_insteval, simulate_two_way

    if design == "two-way":
        d = simulate_two_way(seed, 200 * levels, 10 * levels, levels)
        return (
            np.zeros((d["y"].size, 0)),
            d["y"],
            pd.DataFrame({"user": d["user"], "item": d["item"]}),
        )
    d = simulate_insteval(seed, 100 * levels, 10 * levels, levels, 14)
    groups = pd.DataFrame({k: d[k] for k in ("s", "d", "dept_service")})
    return d["service"][:, None], d["y"], groups


def worker(design, levels, solver):
    sys.path.insert(0, str(HERE))
    import numpy as np

    from skmixed import MixedLinearRegressor

    X, y, groups = simulate(design, 20, seed=1)
    MixedLinearRegressor(solver=solver, random_state=0).fit(X, y, groups=groups)
    X, y, groups = simulate(design, levels)
    model = MixedLinearRegressor(solver=solver, random_state=0)
    start = time.perf_counter()
    model.fit(X, y, groups=groups)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "objective": model.objective_,
                "sd": {
                    k: float(np.sqrt(v.iloc[0, 0]))
                    for k, v in model.random_effects_cov_.items()
                },
                "sigma": model.sigma_,
                "fixef": model.fixed_effects_.tolist(),
                "se": np.sqrt(np.diag(model.fixed_effects_cov_)).tolist(),
                "evaluations": len(model.fit_log_),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default="two-way,insteval")
    parser.add_argument("--levels", default="500,1000,2000,4000")
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    print(
        f"{'design':<9} {'levels':>6} {'rows':>9}  {'exact s':>8} {'MiB':>6}  "
        f"{'krylov s':>8} {'MiB':>6}  {'ratio':>5}  {'d crit':>9} "
        f"{'max rel d sd':>12} {'max d beta/se':>13}"
    )
    for design in args.design.split(","):
        for levels in [int(v) for v in args.levels.split(",")]:
            runs = {}
            for solver in ("cholesky", "krylov"):
                command = [sys.executable, __file__, "--worker", design]
                command += [str(levels), solver]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    print(done.stderr[-2000:], file=sys.stderr)
                    continue
                runs[solver] = json.loads(done.stdout.strip().splitlines()[-1])
            if len(runs) < 2:
                continue
            e, k = runs["cholesky"], runs["krylov"]
            rows = (200 if design == "two-way" else 100) * levels
            d_sd = max(abs(k["sd"][f] / e["sd"][f] - 1) for f in e["sd"])
            d_sd = max(d_sd, abs(k["sigma"] / e["sigma"] - 1))
            d_beta = max(
                abs(a - b) / s for a, b, s in zip(k["fixef"], e["fixef"], e["se"])
            )
            print(
                f"{design:<9} {levels:>6} {rows:>9,}  {e['seconds']:>8.2f} "
                f"{e['peak_mib']:>6.0f}  {k['seconds']:>8.2f} {k['peak_mib']:>6.0f}  "
                f"{e['seconds'] / k['seconds']:>5.2f}  "
                f"{k['objective'] - e['objective']:>9.1e} {d_sd:>12.1e} "
                f"{d_beta:>13.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
