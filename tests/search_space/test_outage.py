"""A database server that goes away mid-sweep (a restart) costs a wait, never a trial or a reported value: real
PostgreSQL servers of the tests' own, stopped and started again."""
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lclab.errors import ConfigError
from lclab.testing import MINI_BASE, mini_space
from lclab.trials.db import open_storage
from tests.services import postgres_server  # noqa: F401  (fixture)

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_a_sweep_survives_a_database_restart_longer_than_the_grace_and_loses_nothing(tmp_path, postgres_server):
    steps, val_every = 400, 50
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "val_every": val_every, "checkpoint_every": 50}}
    path = mini_space(tmp_path, storage=postgres_server.url, seeds=[0], budget={"steps": steps}, base=base,
                      pruner={"name": "median", "n_startup_trials": 100})  # reports every validation, prunes nothing
    # a grace (3 s) far shorter than the outage (12 s): after it, every heartbeat is stale, yet none is failed
    env = {**os.environ, "LCLAB_HEARTBEAT_S": "1", "LCLAB_GRACE_S": "3", "COLUMNS": "250"}
    cmd = [sys.executable, "-m", "lclab", "sweep", str(path), "--lab", str(tmp_path / "lab"), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    storage = open_storage(postgres_server.url)
    while time.time() < deadline:  # until both workers train, each with a value reported
        time.sleep(0.3)
        if not any(s.study_name == "mini" for s in storage.get_all_studies()):
            continue
        study = optuna.load_study(study_name="mini", storage=storage)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if len(running) == 2 and all(t.intermediate_values for t in running):
            break
    else:
        proc.kill()
        pytest.fail("the workers never started training")
    postgres_server.stop()
    time.sleep(12)
    postgres_server.start()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    trials = optuna.load_study(study_name="mini", storage=postgres_server.url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, [(t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    for t in trials:  # every validation of every trial reached the database, the outage's included
        assert sorted(t.intermediate_values) == [k * val_every * 8 * 32 for k in range(1, steps // val_every + 1)]
    logs = " ".join(p.read_text() for p in (tmp_path / "lab" / "logs" / "mini").glob("*.log"))
    assert "cannot be reached" in logs and "is back after" in logs


def test_a_database_that_stays_down_is_named_in_one_message(postgres_server, monkeypatch):
    from lclab.trials import outage

    monkeypatch.setattr(outage, "OUTAGE_S", 2.0)
    storage = open_storage(postgres_server.url.replace("postgres@", "postgres:hunter2@"))
    study = optuna.create_study(study_name="s", storage=storage)
    postgres_server.stop()
    began = time.time()
    with pytest.raises(ConfigError) as caught:
        study.get_trials()
    said = str(caught.value)
    assert time.time() - began < 30 and "unreachable" in said and f":{postgres_server.port}/postgres" in said
    assert "hunter2" not in said and "start the database server again" in said
    postgres_server.start()
    assert study.get_trials() == []  # the same storage object works again once the server is back


def test_a_bad_query_is_not_mistaken_for_an_outage(postgres_server):
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from lclab.trials.outage import connection_lost

    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    bad = ProgrammingError("SELECT nope", {}, Exception("column nope does not exist"))
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = lost
    assert connection_lost(lost) and connection_lost(wrapped) and not connection_lost(bad)
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):  # raised at once, not retried for minutes
        storage = open_storage(postgres_server.url)
        storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "twice")
        storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "twice")


def test_a_connection_dropped_mid_query_is_waited_out(postgres_server, capsys):
    """The server ends a worker's connection between two queries of one read (as a restart does): Optuna falls back
    to a second query on the dead session and raises PendingRollbackError wrapped in StorageInternalError. CI once
    saw a sweep die of exactly this; the read must retry and return every trial."""
    import sqlalchemy
    from sqlalchemy import event

    from lclab.trials.outage import survive_outages

    storage = open_storage(postgres_server.url)
    survive_outages(storage, "the test database")
    study = optuna.create_study(study_name="dropped", storage=storage)
    for _ in range(4):
        study.ask()
    ids = [t._trial_id for t in study.trials]
    killer, killed = sqlalchemy.create_engine(postgres_server.url), []

    @event.listens_for(storage.engine, "before_cursor_execute")
    def terminate_own_backend(conn, cursor, statement, *_):  # the real server ends the connection mid-read
        if not killed and "FROM trial_values" in statement:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with killer.connect() as k:
                killed.append(k.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar())

    trials = storage._get_trials(study._study_id, None, set(ids[:2]), ids[1])
    killer.dispose()
    assert killed == [True] and [t._trial_id for t in trials] == ids
    assert "is back after" in capsys.readouterr().err
