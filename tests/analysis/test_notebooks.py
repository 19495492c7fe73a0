"""Both notebooks execute top to bottom (nbclient, a real kernel) against a sweep the test runs."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lclab.search_space.space import load_space
from lclab.search_space.local import run_sweep
from lclab.testing import MINI_BASE, mini_space

NOTEBOOKS = Path(__file__).parents[2] / "analysis" / "notebooks"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb")
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "log_every": 2}}  # a few points per learning curve
    run_sweep(load_space(mini_space(tmp, base=base, budget={"steps": 6})), tmp / "lab")
    return tmp / "lab"


def execute(name: str, lab: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("LCLAB_STORAGE", str(lab / "lab.db"))
    monkeypatch.setenv("LCLAB_STUDIES", "mini")
    monkeypatch.setenv("LCLAB_INCLUDE_UNLEARNED", "1")  # 6 steps learn nothing: analyse them anyway
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def outputs(nb) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []))


@pytest.mark.slow
def test_explore_trials_notebook(lab, monkeypatch):
    nb = execute("explore_trials.ipynb", lab, monkeypatch)
    text = outputs(nb)
    assert "COMPLETE" in text and "8 trials with learning curves" in text
    images = [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1


@pytest.mark.slow
def test_design_principles_notebook(lab, monkeypatch):
    text = outputs(execute("design_principles.ipynb", lab, monkeypatch))
    assert "8 of 8 trials did not learn" in text
    assert "seed sd =" in text and "4 replicated configurations" in text
    assert "pooling x ratio: F =" in text
    assert "name: recipe_mini" in text and "chosen: trial #" in text
