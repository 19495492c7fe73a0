"""Which RUNNING trials with a stale heartbeat are failed and retried (lclab.trials.stale): not one whose Slurm job
will run again, not any just after a database outage; the rest, as Optuna would."""
import time

import optuna
import pytest
import sqlalchemy

from lclab.trials.db import open_storage
from lclab.trials.outage import Outages
from lclab.trials.stale import abandoned, filter_stale_trials


def _study_with_a_stale_trial(tmp_path, attrs: dict):
    url = f"sqlite:///{tmp_path}/lab.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    trial = study.ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # its worker's last heartbeat, an hour ago
        conn.execute(sqlalchemy.text("INSERT INTO trial_heartbeats (trial_id, heartbeat) "
                                     "VALUES (:t, datetime('now', '-1 hour'))"), {"t": trial._trial_id})
    return study, trial


def _fake_sacct(tmp_path, monkeypatch, answer: str | None):
    """`sacct` on PATH answering `answer` (None: no sacct at all, as off a cluster)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if answer is not None:
        (bin_dir / "sacct").write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/sacct.calls\nprintf '{answer}\\n'\n")
        (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin" if answer is not None else str(bin_dir))


@pytest.mark.parametrize("answer,failed", [("4242|PENDING", False), ("4242|REQUEUED", False), ("4242|REQUEUE_HOLD", False),
                                           ("4242|CANCELLED by 0", True), ("4242|FAILED", True), (None, True)])
def test_a_stale_trial_is_failed_unless_its_slurm_job_will_run_again(tmp_path, monkeypatch, answer, failed):
    study, trial = _study_with_a_stale_trial(tmp_path, {"slurm_job": "4242"})
    _fake_sacct(tmp_path, monkeypatch, answer)
    optuna.storages.fail_stale_trials(study)
    assert (study.trials[0].state == optuna.trial.TrialState.FAIL) is failed
    assert len(study.trials) == (2 if failed else 1)  # a failed one is queued again by the retry callback


def test_one_sacct_call_answers_for_every_stale_trial(tmp_path, monkeypatch):
    _fake_sacct(tmp_path, monkeypatch, "7_1|PENDING\n7_2|TIMEOUT\n9|RUNNING")
    trials = {1: {"slurm_job": "7_1"}, 2: {"slurm_job": "7_2"}, 3: {"slurm_job": "9"}, 4: {}}
    assert abandoned(trials) == [2, 4]
    calls = (tmp_path / "sacct.calls").read_text().splitlines()
    assert len(calls) == 1 and calls[0].endswith("-j 7_1,7_2,9")


def test_no_trial_is_failed_as_stale_within_the_grace_after_a_database_outage(tmp_path):
    study, trial = _study_with_a_stale_trial(tmp_path, {})
    rdb = study._storage._backend
    outages = Outages("the test's database", rdb)
    filter_stale_trials(rdb, outages)
    assert rdb._get_stale_trial_ids(study._study_id) == [trial._trial_id]
    outages.ended_at = time.monotonic()  # the server just came back: heartbeats could not land while it was down
    assert rdb._get_stale_trial_ids(study._study_id) == []
    outages.ended_at -= 3600
    assert rdb._get_stale_trial_ids(study._study_id) == [trial._trial_id]


def test_a_state_change_that_landed_just_before_the_connection_broke_counts_as_done(tmp_path):
    """The retry of a write that went through finds the trial finished: that is success, not UpdateFinishedTrialError.
    Optuna passes the state by keyword (`set_trial_state_values(trial_id, state=FAIL)`), as here."""
    from sqlalchemy.exc import OperationalError

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/lab.db")
    trial = optuna.create_study(storage=storage).ask()
    attempts = []

    def lands_then_drops(trial_id, state, values=None):
        attempts.append(state)
        done = storage.set_trial_state_values(trial_id, state, values)
        if len(attempts) == 1:
            raise OperationalError("UPDATE trials", {}, Exception("server closed the connection unexpectedly"))
        return done

    outages = Outages("the test's database", storage)
    assert outages.call(lands_then_drops, "set_trial_state_values", trial._trial_id,
                        state=optuna.trial.TrialState.FAIL) is True
    assert len(attempts) == 2 and storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.FAIL
