"""`lclab studies` and `lclab trials` on a real sweep database."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import optuna
import pytest

from lclab.search_space.space import load_space
from lclab.search_space.local import run_sweep
from lclab.testing import mini_space

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("query")
    run_sweep(load_space(mini_space(tmp, seeds=[0], budget={"steps": 2})), tmp / "lab")
    return tmp / "lab"


def lclab(*args):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "250"})


def test_studies_lists_counts_and_best(lab, tmp_path):
    out = lclab("studies", "--lab", lab)
    assert out.returncode == 0 and "mini" in out.stdout and "4" in out.stdout
    # a study with points queued and not trained yet (an interrupted grid): the waiting ones were not shown at all
    shutil.copy(lab / "lab.db", tmp_path / "lab.db")
    study = optuna.load_study(study_name="mini", storage=f"sqlite:///{tmp_path / 'lab.db'}")
    for ratio in (4, 8, 16):
        study.enqueue_trial({"ratio": ratio})
    out = lclab("studies", "--lab", tmp_path)
    header, row = [line for line in out.stdout.splitlines() if "waiting" in line or "mini" in line][:2]
    cells = dict(zip([c.strip() for c in header.split("┃")[1:-1]], [c.strip() for c in row.split("│")[1:-1]]))
    assert cells["complete"] == "4" and cells["waiting"] == "3", out.stdout


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
    # a metric's name holds / and . : it goes in backquotes, as in pandas' query
    every = pd.read_parquet(tmp_path / "t.parquet")
    cut = every["val/loss_compressed"].median()
    out = lclab("trials", "mini", "--lab", lab, "--where", f"`val/loss_compressed` < {cut} and `code_version.dirty` in (0, 1)",
                "--columns", "number", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert sorted(r["number"] for r in json.loads(out.stdout)) == sorted(every.number[every["val/loss_compressed"] < cut])


@pytest.mark.parametrize("args,message", [
    (["trials", "nope"], "no study named 'nope'"),
    (["trials", "mini", "--where", "poolng == 'mean'"], "unknown name 'poolng'"),
    (["trials", "mini", "--where", "__import__('os')"], "do not allow"),
    (["trials", "mini", "--columns", "nothing"], "unknown column"),
    (["trials", "mini", "--sort", "-nothing"], "unknown column"),
    (["trials", "mini", "--limit", "0"], "Invalid value for '--limit'"),
    (["report", "mini", "-o", "{tmp}/report", "--objective", "-1"], "Invalid value for '--objective'"),
    (["report", "mini", "-o", "{tmp}/report", "--target-flops", "-1e18"], "--target-flops': -1e+18 is not a positive number"),
    (["report", "mini", "-o", "{tmp}/report", "--min-effect", "0"], "--min-effect': 0.0 is not a positive number"),
    (["trials", "mini", "--format", "xml"], "unknown format"),
    (["trials", "mini", "--where", "val/loss_compressed < 5"], "in backquotes: `val/loss_compressed`"),
    (["trials", "mini", "--where", "param.ratio == 4"], "an axis goes by its name alone: ratio"),
    (["trials", "mini", "--where", "ratio > 'a'"], "not supported between instances of 'int' and 'str'"),
])
def test_bad_queries_are_clear_errors(lab, tmp_path, args, message):
    out = lclab(*(a.replace("{tmp}", str(tmp_path)) for a in args), "--lab", lab)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "report").exists()


def test_outputs_go_into_new_folders_and_a_file_in_the_way_is_named(lab, tmp_path):
    out = lclab("trials", "mini", "--lab", lab, "--sort", "ratio", "--format", "csv", "-o", tmp_path / "new" / "t.csv")
    assert out.returncode == 0 and pd.read_csv(tmp_path / "new" / "t.csv")["param.ratio"].is_monotonic_increasing
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    for args, message in ((["trials", "mini", "--format", "csv", "-o", blocker / "t.csv"], f"{blocker} is a file, not a folder"),
                          (["trials", "mini", "--format", "csv", "-o", tmp_path], f"{tmp_path} is a folder"),
                          (["report", "mini", "-o", blocker], f"{blocker} is a file, not a folder")):
        out = lclab(*args, "--lab", lab)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert blocker.read_text() == "mine\n"


@pytest.mark.parametrize("url, message", [
    ("sqlite://", "in-memory"), ("sqlite:///", "in-memory"), ("sqlite:///:memory:", "in-memory"),
    ("foo://bar", "no database kind 'foo'"), ("http://host/x", "no database kind 'http'")])
def test_a_storage_url_that_names_no_database_is_refused_before_anything_runs(tmp_path, url, message):
    # an in-memory SQLite database would vanish with the command (each worker would even see its own)
    space = mini_space(tmp_path, seeds=[0], budget={"steps": 2})
    for args in (["sweep", space, "--lab", tmp_path / "lab"], ["studies"]):
        out = lclab(*args, "--storage", url)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert "sqlite:///PATH" in out.stderr
    assert not (tmp_path / "lab").exists()


@pytest.mark.parametrize("name, content, message", [
    ("notes.db", b"my notes\n", "point --lab or --storage at a database a sweep wrote"),
    ("model.journal", bytes(range(256)) * 4, "is not an Optuna journal"),
    ("half.journal", b'{"a":\n', "is not an Optuna journal")])
def test_a_storage_file_a_sweep_did_not_write_is_refused_and_left_as_it_was(tmp_path, name, content, message):
    # Optuna reads a journal whose one line is unreadable as empty, and would append trials after it
    path = tmp_path / name
    path.write_bytes(content)
    space = mini_space(tmp_path, seeds=[0], budget={"steps": 2})
    for args in (["sweep", space, "--lab", tmp_path / "lab"], ["studies"], ["trials", "mini"]):
        out = lclab(*args, "--storage", path)
        assert out.returncode == 2 and message in " ".join(out.stderr.split()) and "Traceback" not in out.stderr, out.stderr
    assert path.read_bytes() == content


def test_load_frame_reads_a_bare_path_by_its_suffix(lab, tmp_path):
    from lclab.trials.db import load_frame

    frame = load_frame(str(lab / "lab.db"), ["mini"])  # a .db path is SQLite, not a journal file
    assert (frame.state == "COMPLETE").sum() == 4
    with pytest.raises(Exception, match="cannot tell what kind of trial database.*journal"):
        load_frame(str(tmp_path / "lab.txt"))


def test_a_relative_storage_path_beside_the_user_is_named_with_the_fix(lab, tmp_path):
    # --storage copy.db from the folder holding copy.db reads lab/copy.db (documented): the error said only "run a sweep"
    shutil.copy(lab / "lab.db", tmp_path / "copy.db")
    r = subprocess.run([sys.executable, "-m", "lclab", "trials", "mini", "--storage", "copy.db"], capture_output=True,
                       text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "250"})
    message = " ".join(r.stderr.split())
    assert r.returncode == 2 and f"no trial database at {tmp_path / 'lab' / 'copy.db'}" in message, message
    assert f"pass --storage {tmp_path / 'copy.db'} or --lab ." in message
    r = subprocess.run([sys.executable, "-m", "lclab", "trials", "mini", "--storage", "copy.db", "--lab", "."],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "250"})
    assert r.returncode == 0 and "val/loss_compressed" in r.stdout, r.stderr[-2000:]


def test_csv_export_has_flat_columns(lab, tmp_path):
    out = lclab("trials", "mini", "--lab", lab, "--format", "csv", "-o", tmp_path / "t.csv")
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(tmp_path / "t.csv")
    assert {"code_version.commit", "code_version.dirty", "device", "host_arch"} <= set(frame.columns)
    assert "code_version" not in frame.columns and not frame["code_version.commit"].str.startswith("{").any()


def test_sweep_report_and_trials_take_the_same_storage_option(tmp_path):
    from lclab.testing import mini_space

    space = mini_space(tmp_path, seeds=[0], budget={"steps": 2}, name="elsewhere")
    db = tmp_path / "other" / "trials.db"
    out = lclab("sweep", space, "--lab", tmp_path / "lab", "--storage", db)
    assert out.returncode == 0, out.stderr
    assert db.is_file() and not (tmp_path / "lab" / "lab.db").exists()
    for command in (["trials", "elsewhere"], ["studies"]):
        out = lclab(*command, "--lab", tmp_path / "lab", "--storage", db)
        assert out.returncode == 0 and "elsewhere" in out.stdout, out.stderr
    out = lclab("report", "elsewhere", "-o", tmp_path / "rep", "--lab", tmp_path / "lab", "--storage", db)
    assert out.returncode == 0 and "lclab report: elsewhere" in (tmp_path / "rep" / "report.md").read_text(), out.stderr


def test_a_missing_database_driver_names_the_extra_to_install():
    # the CLI as a user meets it, with the driver hidden (rich markup must not eat the extra's brackets)
    code = ("import sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None\n"
            "from lclab.cli import app\n"
            "app(['studies', '--storage', 'postgresql://lclab@127.0.0.1:1/lab'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "250"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pip install 'lclab[postgres]'" in out.stderr and "not installed" in out.stderr and "server is running" not in out.stderr
    assert "***" not in out.stderr  # the URL has no password: nothing to hide


@pytest.mark.parametrize("url,secret", [("postgresql://lclab:hunter2@db.example/lab", "hunter2"),
                                        ("postgresql://db.example/lab?user=lclab&password=hunter2&sslmode=off", "hunter2")])
def test_passwords_are_redacted_in_every_url_form(url, secret):
    from lclab.trials.db import redact

    clean = redact(url)
    assert secret not in clean and "***" in clean and "db.example" in clean
    assert redact("postgresql://lclab@db.example/lab") == "postgresql://lclab@db.example/lab"
