"""A small simulator for the property tests (independent of skmixed)."""

import numpy as np
import pandas as pd


def simulate(
    seed,
    n_groups=30,
    group_size=8,
    beta=(1.0, 2.0, -1.0),
    re_sd=(1.0, 0.5),
    re_corr=0.3,
    sigma=1.0,
):
    """y = X beta + b0[g] + b1[g] x1 + e, with X = [1, x1, x2]."""
    rng = np.random.default_rng(seed)
    n = n_groups * group_size
    groups = np.repeat(np.arange(n_groups), group_size)
    x = rng.normal(size=(n, 2))
    cov = np.array(
        [
            [re_sd[0] ** 2, re_corr * re_sd[0] * re_sd[1]],
            [re_corr * re_sd[0] * re_sd[1], re_sd[1] ** 2],
        ]
    )
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
    y = (
        beta[0]
        + x @ np.asarray(beta[1:])
        + b[groups, 0]
        + b[groups, 1] * x[:, 0]
        + sigma * rng.normal(size=n)
    )
    X = pd.DataFrame(x, columns=["x1", "x2"])
    return X, y, pd.Series([f"g{g:03d}" for g in groups], name="g")
