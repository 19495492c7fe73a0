"""The measurability benchmark's reuse of earlier runs: only runs made by the trial code of this checkout, with the
same threads and overrides, may stand in for new ones."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from measurability import reusable  # noqa: E402


def results(tmp_path, commit, threads=0, overrides=()):
    path = tmp_path / f"old_{commit}_{threads}.json"
    run = {"task": "reconstruction", "design": "tiny", "seed": 3, "acc": 0.25, "learned": True}
    path.write_text(json.dumps({"machine": {"commit": commit}, "threads": threads, "overrides": list(overrides),
                                "runs": [run]}))
    return str(path)


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_runs_made_by_this_trial_code_are_reused_and_named_others_refused(tmp_path):
    head = git("rev-parse", "--short", "HEAD")
    runs = reusable([results(tmp_path, head)], 0, [])
    assert runs[("reconstruction", "tiny", 3)]["acc"] == 0.25
    assert runs[("reconstruction", "tiny", 3)]["reused_from"] == f"old_{head}_0.json@{head}"
    # other threads or overrides: a seed's fate can change with either, so those runs cannot stand in
    with pytest.raises(SystemExit, match="threads 1"):
        reusable([results(tmp_path, head, threads=1)], 0, [])
    with pytest.raises(SystemExit, match="overrides"):
        reusable([results(tmp_path, head, overrides=["train.steps=10"])], 0, [])
    # the first commit that built the model family: the trial code changed since, so its runs are refused
    first = git("log", "--format=%h", "--reverse", "--", "models").splitlines()[0]
    with pytest.raises(SystemExit, match="trial code changed: True"):
        reusable([results(tmp_path, first)], 0, [])
