"""The documentation builds without a warning and documents every public name."""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import skmixed
import skmixed.datasets
import skmixed.inference
import skmixed.plotting
import skmixed.reporting

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = [
    skmixed,
    skmixed.inference,
    skmixed.reporting,
    skmixed.plotting,
    skmixed.datasets,
    skmixed.exceptions,
]


def _public_names(module):
    return [name for name in module.__all__ if not name.startswith("_")]


def _autosummary_entries(text):
    """Names listed under the autosummary directives of an .rst page."""
    names, inside = [], False
    for line in text.splitlines():
        if line.startswith(".. autosummary::"):
            inside = True
        elif inside and line and not line.startswith(" "):
            inside = False
        elif inside and re.fullmatch(r"   [A-Za-z_][\w.]*", line):
            names.append(line.strip())
    return names


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_api_reference_lists_every_public_name(module):
    listed = set(_autosummary_entries((DOCS / "api.rst").read_text()))
    missing = [name for name in _public_names(module) if name not in listed]
    assert not missing, f"docs/api.rst does not list {module.__name__}: {missing}"


def test_api_reference_lists_only_public_names():
    public = {name for module in PUBLIC_MODULES for name in _public_names(module)}
    listed = _autosummary_entries((DOCS / "api.rst").read_text())
    assert listed, "no autosummary entries found in docs/api.rst"
    assert set(listed) <= public, sorted(set(listed) - public)


def test_toctree_documents_exist():
    """Every page named in index.md's toctree is a file of docs/."""
    text = (DOCS / "index.md").read_text()
    entries = [
        line.strip()
        for block in re.findall(r"```\{toctree\}(.*?)```", text, flags=re.S)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith(":")
    ]
    assert entries
    for entry in entries:
        assert any((DOCS / f"{entry}{ext}").exists() for ext in (".md", ".rst")), entry


def _fenced_blocks(text, language=""):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_opens_with_the_setup_commands():
    """The first two code blocks: run the tutorial; the CI command, verbatim."""
    readme = (ROOT / "README.md").read_text()
    first, second = (block.strip() for block in _fenced_blocks(readme)[:2])
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e")
    assert first.endswith(".venv/bin/python examples/tutorial.py")
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert second == ci_lines[-1]
    assert (ROOT / "examples" / "tutorial.py").is_file()


def test_readme_quick_start_runs():
    readme = (ROOT / "README.md").read_text()
    (code,) = [b for b in _fenced_blocks(readme, "python") if "load_biomass" in b]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    # The numbers the README quotes (lme4's fit of the biomass data).
    assert model.fixed_effects_.round(3).tolist() == [10.092, 0.167, 2.21]
    assert round(model.sigma_, 3) == 0.876
    assert namespace["scores"]["test_score"].shape == (5,)


# User-guide pages whose ```python blocks run here, one page per process.
# sklearn_workflows.md runs in tests/test_routing.py.
GUIDE_PAGES = [
    "index.md",
    "pooling.md",
    "fitting.md",
    "formulas.md",
    "summary.md",
    "diagnostics.md",
    "inference.md",
    "prediction.md",
    "glmm.md",
    "dask.md",
    "explore.md",
]

RUN_PAGE = """
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
namespace = {"__name__": "__main__"}
for i, block in enumerate(re.findall(r"```python\\n(.*?)```", text, flags=re.S)):
    exec(compile(block, f"{sys.argv[1]}[block {i}]", "exec"), namespace)
"""


def test_every_guide_page_is_run_or_shown_only():
    pages = {path.name for path in DOCS.glob("*.md")} - {"README.md"}
    shown_only = {"tutorial.md", "lme4.md", "sklearn_workflows.md"}
    assert pages - shown_only == set(GUIDE_PAGES)


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_guide_page_code_runs(page, tmp_path):
    assert _fenced_blocks((DOCS / page).read_text(), "python"), page
    result = subprocess.run(
        [sys.executable, "-c", RUN_PAGE, str(DOCS / page)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # figures saved by the examples land here
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-5000:]


def test_summary_page_shows_the_real_summary():
    """The printed summary on summary.md is what summary() prints today."""
    from skmixed import MixedLinearRegressor
    from skmixed.datasets import load_biomass

    shown = _fenced_blocks((DOCS / "summary.md").read_text(), "text")[0]
    X, y, site = load_biomass(return_X_y_groups=True)
    model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=site)

    def lines(text):
        return [line.rstrip() for line in text.strip().splitlines()]

    assert lines(shown) == lines(str(model.summary()))


def _resolve(dotted):
    """The object a dotted name such as ``skmixed.inference.anova`` names."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


def test_lme4_page_names_exist():
    """Everything "Coming from lme4" offers as the skmixed side exists."""
    from skmixed import MixedLinearRegressor
    from skmixed.datasets import load_biomass

    text = (DOCS / "lme4.md").read_text()
    X, y, site = load_biomass(return_X_y_groups=True)
    model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=site)
    attributes = set(re.findall(r"`model\.(\w+)", text))
    assert {"fixed_effects_", "summary", "confint"} <= attributes
    missing = sorted(a for a in attributes if not hasattr(model, a))
    assert not missing, f"docs/lme4.md names missing model attributes {missing}"
    summary_parts = set(re.findall(r"model\.summary\(\)\.(\w+)", text))
    summary = model.summary()
    assert not [p for p in summary_parts if not hasattr(summary, p)]
    for dotted in set(re.findall(r"\bskmixed(?:\.\w+)+", text)):
        _resolve(dotted)
    for name in set(
        re.findall(r"`(\w+(?:Display|Regressor)|plot_diagnostics)\b", text)
    ):
        assert hasattr(skmixed, name) or hasattr(skmixed.plotting, name), name


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    """``sphinx-build -W``, on a copy of docs/ so the tree stays clean."""
    pytest.importorskip("sphinx", reason="install the docs extra: pip install .[docs]")
    pytest.importorskip("numpydoc")
    pytest.importorskip("myst_parser")
    source = tmp_path / "docs"
    ignore = shutil.ignore_patterns("_build", "generated", "figures", "__pycache__")
    shutil.copytree(DOCS, source, ignore=ignore)
    # The tutorial page includes ../examples/tutorial.py.
    shutil.copytree(DOCS.parent / "examples", tmp_path / "examples", ignore=ignore)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q"]
    result = subprocess.run(
        [*command, "-b", "html", str(source), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "html" / "index.html").stat().st_size > 0
    pages = {page.stem for page in (tmp_path / "html" / "generated").glob("*.html")}
    for module in PUBLIC_MODULES:
        for name in _public_names(module):
            assert f"{module.__name__}.{name}" in pages
