"""Local workers fork from one long-lived server (lclab.workers), yet each takes its parent's environment and working
directory of the moment it starts: the second sweep of a Python process must not run with the first one's settings."""
import json
import os
from pathlib import Path

from lclab.workers import start


def _report(path: str) -> None:
    from lclab.trials import db  # read at import: the worker's own import, after it took the parent's environment

    Path(path).write_text(json.dumps([os.environ.get("LCLAB_GRACE_S"), os.getcwd(), db.GRACE_S]))


def test_a_worker_takes_its_parents_environment_and_directory_as_they_are_now(tmp_path, monkeypatch):
    for grace, folder in (("7", tmp_path / "first"), ("9", tmp_path / "second")):  # the second reuses the server
        folder.mkdir()
        monkeypatch.setenv("LCLAB_GRACE_S", grace)
        monkeypatch.chdir(folder)
        proc = start("tests.test_workers:_report", str(folder / "seen.json"))
        proc.join(timeout=120)
        assert proc.exitcode == 0
        assert json.loads((folder / "seen.json").read_text()) == [grace, str(folder), int(grace)]
