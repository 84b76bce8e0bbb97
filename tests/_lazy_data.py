"""Simulated data as a dask DataFrame, generated partition by partition.

No row of it ever exists on the process that builds the graph: each
partition draws its rows from its own seed when a worker computes it.
"""

import numpy as np
import pandas as pd

FIXED = (1.0, 0.5, -0.3)  # intercept, x0, x1
RANDOM_SD = (1.0, 0.5)  # intercept, slope on x0


def simulate_partition(k, n_rows, n_groups, seed):
    effects = np.random.default_rng(seed).normal(size=(n_groups, 2)) * RANDOM_SD
    rng = np.random.default_rng([seed, k])
    g = rng.integers(0, n_groups, n_rows)
    x = rng.standard_normal((n_rows, 2))
    y = FIXED[0] + x @ FIXED[1:] + effects[g, 0] + effects[g, 1] * x[:, 0]
    y += rng.standard_normal(n_rows)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "y": y, "g": g})


def lazy_data(n_rows, n_groups, partition_rows, seed=0):
    """``X`` (columns x0, x1), ``y`` and integer groups ``g``, lazily."""
    import dask.dataframe as dd  # optional: only the dask tests import this

    sizes = [partition_rows] * (n_rows // partition_rows)
    sizes += [n_rows % partition_rows] if n_rows % partition_rows else []
    meta = simulate_partition(0, 0, n_groups, seed)
    frame = dd.from_map(
        simulate_partition,
        range(len(sizes)),
        sizes,
        n_groups=n_groups,
        seed=seed,
        meta=meta,
        enforce_metadata=False,
    )
    return frame[["x0", "x1"]], frame["y"], frame["g"]
