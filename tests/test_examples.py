"""Every script in examples/ runs headless and writes its figures."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Figures each script must write (an empty tuple: the script draws nothing).
EXPECTED_FIGURES = {
    "tutorial.py": (
        "shrinkage.png",
        "diagnostics.png",
        "caterpillar.png",
        "intervals.png",
        "effects.png",
    ),
    "sklearn_workflow.py": (),
}

# Something each script must print: the proof it got to its end.
EXPECTED_OUTPUT = {
    "tutorial.py": ["Biomass ~ Temp + N + (1 + Temp | Site)", "Done in"],
    "sklearn_workflow.py": ["Best parameters:", "Best CV R^2:"],
}


def run_example(script, *args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=EXAMPLES.parent,
        env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
    )


def test_every_example_is_tested():
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED_FIGURES)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("tutorial.py", marks=pytest.mark.slow),
        "sklearn_workflow.py",
    ],
)
def test_example_runs_and_saves_its_figures(script, tmp_path):
    folder = tmp_path / "figures"
    result = run_example(script, folder)
    assert result.returncode == 0, result.stderr[-5000:]
    for text in EXPECTED_OUTPUT[script]:
        assert text in result.stdout, f"{text!r} not printed by {script}"
    for name in EXPECTED_FIGURES[script]:
        path = folder / name
        assert path.is_file(), f"{script} did not write {name}"
        assert path.stat().st_size > 1000, f"{name} is (nearly) empty"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _load(script):
    spec = importlib.util.spec_from_file_location(script[:-3], EXAMPLES / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorial_figure_folder_precedence(tmp_path, monkeypatch):
    """The CLI argument beats $SKMIXED_FIGURES, which beats examples/figures/."""
    tutorial = _load("tutorial.py")
    assert set(tutorial.FIGURES) == set(EXPECTED_FIGURES["tutorial.py"])
    monkeypatch.setenv("SKMIXED_FIGURES", str(tmp_path / "from_env"))
    assert tutorial.figure_folder([]) == tmp_path / "from_env"
    assert tutorial.figure_folder([str(tmp_path / "cli")]) == tmp_path / "cli"
    assert (tmp_path / "cli").is_dir()
    assert tutorial.DEFAULT_FIGURES == EXAMPLES / "figures"
