"""Time one REML fit of ``y ~ x1 + x2 + (1 + x1 | g)`` in skmixed and its peers.

The single-factor scenarios of ``run_all.py`` under their former names: the
data, the peers, the measurements and the report are those of ``run_all.py``
(see its docstring and ``README.md``). Sizes: ``small`` is 100,000 rows in
2,000 groups, ``large`` 1,000,000 rows in 10,000 groups, or ``ROWSxGROUPS``.

Examples::

    python benchmarks/bench_single_factor.py
    python benchmarks/bench_single_factor.py --sizes small --repeats 5
    python benchmarks/bench_single_factor.py --only skmixed,lme4 --skip-slow
"""

from __future__ import annotations

import argparse
import re
import sys

import run_all

SIZES = {"small": "slopes-100k", "large": "slopes-1m"}


def scenario_names(text: str) -> str:
    names = []
    for item in (item.strip() for item in text.split(",") if item.strip()):
        if item in SIZES:
            names.append(SIZES[item])
        elif re.fullmatch(r"\d+x\d+", item):
            names.append(f"slopes-{item}")
        else:
            raise argparse.ArgumentTypeError(f"unknown size {item!r}")
    return ",".join(names)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        run_all.main(argv)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=scenario_names, default="small,large")
    args, rest = parser.parse_known_args(argv)
    run_all.main(["--scenarios", args.sizes, *rest])


if __name__ == "__main__":
    main()
