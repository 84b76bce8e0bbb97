"""Simulated data as dask arrays, generated block by block on the workers.

No row of it ever exists on the process that builds the graph: each block
draws its rows from its own seed when a worker computes it.
"""

import numpy as np

FIXED = (1.0, 0.5, -0.3)  # intercept, x0, x1
RANDOM_SD = (1.0, 0.5)  # intercept, slope on x0
COLUMNS = 4  # x0, x1, y, group


def _block(seed, n_groups, block_info=None):
    where = block_info[None]
    n_rows = where["chunk-shape"][0]
    effects = np.random.default_rng(seed).normal(size=(n_groups, 2)) * RANDOM_SD
    rng = np.random.default_rng([seed, where["chunk-location"][0]])
    g = rng.integers(0, n_groups, n_rows)
    x = rng.standard_normal((n_rows, 2))
    y = FIXED[0] + x @ FIXED[1:] + effects[g, 0] + effects[g, 1] * x[:, 0]
    y += rng.standard_normal(n_rows)
    return np.column_stack([x, y, g])


def lazy_data(n_rows, n_groups, chunk_rows, seed=0):
    """``X`` (2 columns), ``y`` and integer groups, chunked by rows."""
    import dask.array as da  # optional: only the dask tests import this module

    chunks = (chunk_rows,) * (n_rows // chunk_rows)
    if n_rows % chunk_rows:
        chunks += (n_rows % chunk_rows,)
    data = da.map_blocks(
        _block,
        seed,
        n_groups,
        chunks=(chunks, (COLUMNS,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    return data[:, :2], data[:, 2], data[:, 3].astype(np.int64)
