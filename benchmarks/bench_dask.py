"""Time ``MixedLinearRegressor.fit`` on dask arrays generated lazily on a cluster.

Model ``y ~ x0 + x1 + (1 + x0 | g)`` with 1,000 groups (REML). The rows are a
dask DataFrame drawn partition by partition on the workers (as in
``docs/dask.md``), so none of them exists in this process; the time includes
drawing them, once per pass over the data (``fit`` makes two).

For each size, a fresh ``distributed.LocalCluster`` (worker processes, one
thread each) is started, then ``fit`` is timed. Reported: the fit time, rows
per second, the peak resident memory of this process before and after the fit
(``ru_maxrss``: the workers are other processes), and the largest memory of a
worker after the fit. ``--in-memory`` also times the in-memory fit of the same
rows, computed into this process first (not timed), after the dask fits.

Examples::

    python benchmarks/bench_dask.py
    python benchmarks/bench_dask.py --rows 1000000,10000000 --workers 2 --in-memory
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import pandas as pd

N_GROUPS = 1_000


def simulate_partition(k, n_rows, n_groups, seed):
    """The rows of partition ``k``, drawn on the worker that computes it."""
    effects = np.random.default_rng(seed).normal(size=(n_groups, 2)) * [1.0, 0.5]
    rng = np.random.default_rng([seed, k])
    g = rng.integers(0, n_groups, n_rows)
    x = rng.standard_normal((n_rows, 2))
    y = 1 + x @ [0.5, -0.3] + effects[g, 0] + effects[g, 1] * x[:, 0]
    y += rng.standard_normal(n_rows)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "y": y, "g": g})


def lazy_rows(n_rows: int, chunk: int, seed: int = 0):
    """``X``, ``y`` and ``g`` of a dask DataFrame made partition by partition."""
    import dask.dataframe as dd

    sizes = [chunk] * (n_rows // chunk) + ([n_rows % chunk] if n_rows % chunk else [])
    frame = dd.from_map(
        simulate_partition,
        range(len(sizes)),
        sizes,
        n_groups=N_GROUPS,
        seed=seed,
        meta=simulate_partition(0, 0, N_GROUPS, seed),
        enforce_metadata=False,
    )
    return frame[["x0", "x1"]], frame["y"], frame["g"]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_size(n_rows: int, args) -> dict:
    from distributed import Client, LocalCluster

    from skmixed import MixedLinearRegressor

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("skmixed"))  # imports are not the fit's
        warm = lazy_rows(20_000, 10_000, seed=1)  # imports dask's parts here too
        MixedLinearRegressor(random_slopes=[0]).fit(*warm[:2], groups=warm[2])
        X, y, g = lazy_rows(n_rows, args.chunk)
        before = peak_mib()
        start = time.perf_counter()
        model = MixedLinearRegressor(random_slopes=[0]).fit(X, y, groups=g)
        seconds = time.perf_counter() - start
        workers = client.run(lambda: __import__("psutil").Process().memory_info().rss)
        result = {
            "rows": n_rows,
            "seconds": seconds,
            "driver_before": before,
            "driver_after": peak_mib(),
            "worker_mib": max(workers.values()) / 2**20,
            "coef": model.coef_.round(3).tolist(),
        }
    return result


def time_in_memory(n_rows: int, args) -> float:
    """The same rows, computed into this process first (not timed)."""
    import dask

    from skmixed import MixedLinearRegressor

    with dask.config.set(scheduler="threads"):
        X, y, g = dask.compute(*lazy_rows(n_rows, args.chunk))
    X, y, g = X.to_numpy(), y.to_numpy(), g.to_numpy()
    start = time.perf_counter()
    MixedLinearRegressor(random_slopes=[0]).fit(X, y, groups=g)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="1000000,4000000,10000000",
        type=lambda text: [int(v) for v in text.split(",")],
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=500_000, help="partition rows")
    parser.add_argument("--memory-limit", default="1GiB", help="per worker")
    parser.add_argument("--in-memory", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.workers} worker process(es) x 1 thread, {args.memory_limit} each; "
        f"partitions of {args.chunk:,} rows; load average before "
        "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    )
    print(
        f"{'rows':>12} {'fit s':>8} {'rows/s':>10} {'driver MiB before/after':>24} "
        f"{'worker MiB':>11} {'in-memory s':>12}"
    )
    # Dask fits first: the in-memory ones raise this process's peak memory.
    results = [time_size(n_rows, args) for n_rows in args.rows]
    for r in results if args.in_memory else ():
        r["in_memory_seconds"] = time_in_memory(r["rows"], args)
    for r in results:
        n_rows, memory = r["rows"], r.get("in_memory_seconds")
        print(
            f"{n_rows:>12,} {r['seconds']:>8.2f} {n_rows / r['seconds']:>10,.0f} "
            f"{r['driver_before']:>11.0f} / {r['driver_after']:<10.0f} "
            f"{r['worker_mib']:>11.0f} {'' if memory is None else f'{memory:.2f}':>12}",
            flush=True,
        )
    print("load average after {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
