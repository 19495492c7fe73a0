"""`lclab studies` and `lclab trials` on a real sweep database."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from search_space.space import load_space
from search_space.sweep import run_sweep
from tests.search_space.test_sweep import mini_space

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("query")
    run_sweep(load_space(mini_space(tmp, seeds=[0], budget={"steps": 2})), tmp / "lab")
    return tmp / "lab"


def lclab(*args):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "250"})


def test_studies_lists_counts_and_best(lab):
    out = lclab("studies", "--lab", lab)
    assert out.returncode == 0 and "mini" in out.stdout and "4" in out.stdout


def test_trials_where_sort_columns_and_formats(lab, tmp_path):
    out = lclab("trials", "mini", "--lab", lab, "--where", "pooling == 'mean' and ratio == 8 and state == 'COMPLETE'",
                "--columns", "number,pooling,ratio,value", "--format", "json")
    rows = json.loads(out.stdout)
    assert out.returncode == 0 and len(rows) == 1 and rows[0]["param.pooling"] == "mean" and rows[0]["param.ratio"] == 8
    out = lclab("trials", "mini", "--lab", lab, "--sort", "-value", "--limit", "2", "--format", "csv", "-o", tmp_path / "t.csv")
    frame = pd.read_csv(tmp_path / "t.csv")
    assert len(frame) == 2 and frame.value.is_monotonic_decreasing
    lclab("trials", "mini", "--lab", lab, "--format", "parquet", "-o", tmp_path / "t.parquet")
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == 4


@pytest.mark.parametrize("args,message", [
    (["trials", "nope"], "no study named 'nope'"),
    (["trials", "mini", "--where", "poolng == 'mean'"], "unknown name 'poolng'"),
    (["trials", "mini", "--where", "__import__('os')"], "do not allow"),
    (["trials", "mini", "--columns", "nothing"], "unknown column"),
    (["trials", "mini", "--format", "xml"], "unknown format"),
])
def test_bad_queries_are_clear_errors(lab, args, message):
    out = lclab(*args, "--lab", lab)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
