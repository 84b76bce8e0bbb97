"""The GLMM differential study: random designs, skmixed against glmer.

A larger draw of the designs of ``tests/test_glmm_differential.py`` (the
generator ``tests/data/glmer_differential/make_glmm_designs.py`` with ``--copies``,
another seed), fitted by glmer (lme4 1.1-31, tight bobyqa control, and its
default control) through ``make_glmer_differential.R``, then by skmixed as the
test fits them.  Prints:

- how many designs skmixed ends higher than, tied with (within the test's
  allowance: 1e-6 relative, 2e-4 for the probit and cloglog links) or lower
  than glmer's log-likelihood, overall and per category, with the worst and
  the best difference;
- skmixed's log-likelihood against the exact Laplace value at glmer's
  estimates (skmixed's PIRLS run there: one objective for both), and how far
  lme4's reported value is from that exact value, by link;
- the same against glmer's default control;
- skmixed's fit time against glmer's recorded elapsed time;
- every design where skmixed is lower, fails, warns where glmer does not (the
  singular-fit note, convergence warnings glmer shares, and the warnings of
  separation on data a 0/1 column separates aside) or leaks a RuntimeWarning,
  with the command that reproduces it.

R and lme4 are needed once per suite (the reference is kept in ``--dir``)::

    python benchmarks/glmm_differential.py                    # 400 designs
    python benchmarks/glmm_differential.py --copies 2 --seed 3 --dir /tmp/gd3
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SUITE = REPO_ROOT / "tests" / "data" / "glmer_differential"


def make_suite(directory, seed, copies):
    """Designs and glmer's fits in ``directory``, unless already there."""
    if not (directory / "designs.json").exists():
        subprocess.run(
            [
                sys.executable,
                str(SUITE / "make_glmm_designs.py"),
                "--seed",
                str(seed),
                "--copies",
                str(copies),
                "--no-found",
                "--outdir",
                str(directory),
            ],
            check=True,
        )
    if not (directory / "reference.json").exists():
        subprocess.run(
            ["Rscript", str(SUITE / "make_glmer_differential.R"), str(directory)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def fit_all(cases, module):
    """One row per design: gaps to both glmer fits, time, problems."""
    rows = []
    for case in cases:
        ref = case.reference
        default = module.load_reference()[case.id]["fits"]["default_fit"]
        start = time.perf_counter()
        try:
            model, caught = case.fit()
        except Exception as error:  # a RuntimeWarning raised as an error, too
            rows.append(dict(case=case, error=f"{type(error).__name__}: {error}"))
            continue
        elapsed = time.perf_counter() - start
        gap = model.loglik_ - ref["loglik"]
        allowed = case.allowed()
        status = _status(gap, allowed)
        default_gap = model.loglik_ - default.get("loglik", np.nan)
        at_glmer = module.glmer_exact_loglik(model, ref)
        rows.append(
            dict(
                case=case,
                error=None,
                gap=gap,
                rel=gap / abs(ref["loglik"]),
                status=status,
                default_gap=default_gap,
                default_status=_status(default_gap, allowed),
                exact_gap=model.loglik_ - at_glmer,
                exact_allowed=module.LOGLIK_RTOL * max(abs(at_glmer), 1.0),
                lme4_error=ref["loglik"] - at_glmer,
                time=elapsed,
                glmer_time=ref["time"],
                separated=case.separated(),
                warnings=module.unexpected_warnings(
                    caught, model, ref, case.separated()
                ),
                singular=(bool(ref["is_singular"]), bool(model.is_singular_)),
            )
        )
    return rows


def _status(gap, allowed):
    """Where skmixed ends against a glmer fit (NaN: glmer failed)."""
    if np.isnan(gap):
        return "glmer error"
    return "tied" if abs(gap) <= allowed else "higher" if gap > 0 else "lower"


def tally(rows, key):
    count = defaultdict(int)
    for r in rows:
        count[r[key]] += 1
    return count


def report(rows, directory):
    fitted = [r for r in rows if r["error"] is None]
    print(f"GLMM differential study: {len(rows)} designs ({directory}) vs lme4 glmer")
    for key, label in (("status", "tight control"), ("default_status", "default")):
        c = tally(fitted, key)
        print(
            f"  vs glmer ({label}): skmixed higher {c['higher']}, tied {c['tied']}, "
            f"lower {c['lower']}, glmer error {c['glmer error']}"
        )
    worst = min(fitted, key=lambda r: r["gap"])
    best = max(fitted, key=lambda r: r["gap"])
    for label, r in (("worst", worst), ("best", best)):
        print(
            f"  {label} difference (skmixed - glmer, loglik): {r['gap']:+.3g} "
            f"({r['rel']:+.2g} relative), {r['case'].id}"
        )
    worst = min(fitted, key=lambda r: r["exact_gap"])
    below = sum(r["exact_gap"] < -r["exact_allowed"] for r in fitted)
    print(
        f"  vs the exact Laplace value at glmer's (tight) estimates: skmixed lower "
        f"(beyond 1e-6 relative) on {below}; smallest difference "
        f"{worst['exact_gap']:+.3g}, {worst['case'].id}"
    )
    print("  lme4's reported loglik minus the exact value at its estimates, by link:")
    for link in ("logit", "probit", "cloglog", "log"):
        errors = [r["lme4_error"] for r in fitted if r["case"].spec["link"] == link]
        if errors:
            print(
                f"    {link:<8} {len(errors):>4} designs: from {min(errors):+.2g} to "
                f"{max(errors):+.2g}, |error| > 5e-5 on "
                f"{sum(abs(e) > 5e-5 for e in errors)}"
            )
    separated = [r for r in fitted if r["separated"]]
    print(
        f"  data separated by a 0/1 column: {len(separated)} designs (skmixed "
        f"higher {sum(r['status'] == 'higher' for r in separated)}, lower "
        f"{sum(r['status'] == 'lower' for r in separated)})"
    )
    ours = [r["time"] for r in fitted]
    theirs = [r["glmer_time"] for r in fitted]
    print(
        f"  fit time: skmixed total {sum(ours):.1f} s, median "
        f"{1e3 * statistics.median(ours):.0f} ms; glmer (tight) total "
        f"{sum(theirs):.1f} s, median {1e3 * statistics.median(theirs):.0f} ms"
    )
    print()
    print(
        f"{'category':<26}{'designs':>8}{'higher':>8}{'tied':>6}{'lower':>7}"
        f"{'worst gap':>12}{'ms':>7}{'glmer ms':>10}"
    )
    by_category = defaultdict(list)
    for r in fitted:
        by_category[r["case"].spec["category"]].append(r)
    for category, group in by_category.items():
        c = tally(group, "status")
        print(
            f"{category:<26}{len(group):>8}{c['higher']:>8}{c['tied']:>6}"
            f"{c['lower']:>7}{min(r['gap'] for r in group):>12.2g}"
            f"{1e3 * statistics.median(r['time'] for r in group):>7.0f}"
            f"{1e3 * statistics.median(r['glmer_time'] for r in group):>10.0f}"
        )
    flagged = [
        r
        for r in rows
        if r["error"]
        or r["status"] == "lower"
        or r["exact_gap"] < -r["exact_allowed"]
        or r["warnings"]
    ]
    print()
    print(
        f"designs where skmixed is lower, fails or warns unexpectedly: {len(flagged)}"
    )
    for r in flagged:
        case = r["case"]
        what = r["error"] or (
            f"{r['status']} {r['gap']:+.3g}; "
            + "; ".join(w[:90] for w in r["warnings"])
        )
        print(f"  {case.id:<34}{case.spec['link']:<8}{what}")
        print(
            f"    SKMIXED_GLMM_DIFFERENTIAL_DIR={directory} pytest "
            f"tests/test_glmm_differential.py -k {case.id}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/glmm_differential_study")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--copies", type=int, default=5, help="80 designs each")
    args = parser.parse_args(argv)
    directory = Path(args.dir).resolve()
    make_suite(directory, args.seed, args.copies)
    os.environ["SKMIXED_GLMM_DIFFERENTIAL_DIR"] = str(directory)
    sys.path.insert(0, str(REPO_ROOT))  # this checkout's skmixed and tests
    import tests.test_glmm_differential as module

    module.CASES[0].fit()  # warm-up: imports and first-call costs
    report(fit_all(module.CASES, module), directory)
    refused = len(module.load_designs()) - len(module.CASES)
    print(f"designs glmer (tight control) failed to fit, left out: {refused}")


if __name__ == "__main__":
    main()
