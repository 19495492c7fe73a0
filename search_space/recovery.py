"""Heartbeats and retries: a worker that dies without warning leaves its trial RUNNING; once its heartbeat is stale
the trial is failed and queued again, keeping its intermediate values, and the retry resumes its checkpoint.

SQL storages beat through Optuna's own heartbeat (configured in `lclab.trials.db`); a journal file has none, so
workers beat in a user attribute instead."""
from __future__ import annotations

import contextlib
import threading
import time

import optuna
from optuna.trial import TrialState

from lclab.trials.db import GRACE_S, HEARTBEAT_S, MAX_RETRIES
from lclab.trials.optuna_internals import storage_of, trial_id
from lclab.trials.stale import abandoned

FOLLOWER_KEYS = ("seed", "replica_of", "nuisance_of")  # what makes an enqueued trial the same job again
KEPT_BY_RETRIES = ("intermediate", "rungs")  # multi-objective pruning's bookkeeping (lclab.search_space.pruning)


@contextlib.contextmanager
def journal_heartbeat(study: optuna.Study, trial):
    """Optuna's journal storage has no heartbeat: beat in a user attribute instead, so that `fail_stale` can
    retry the trial of a worker killed without warning, as Optuna does itself on SQL storages."""
    storage = storage_of(study)
    if not isinstance(storage, optuna.storages.JournalStorage):
        yield
        return
    done = threading.Event()

    def beat():
        while True:
            storage.set_trial_user_attr(trial_id(trial), "heartbeat", time.time())
            if done.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials of dead workers and queue their retries (keeping intermediate values): Optuna's own
    heartbeat on SQL storages, the user-attribute heartbeat on journal files."""
    optuna.storages.fail_stale_trials(study)
    if not isinstance(storage_of(study), optuna.storages.JournalStorage):
        return
    stale = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
             if time.time() - t.user_attrs.get("heartbeat", time.time()) > GRACE_S}
    for number in abandoned({n: t.user_attrs for n, t in stale.items()}):
        fail_and_retry(study, stale[number], "stale")


def fail_and_retry(study: optuna.Study, trial, reason: str) -> None:
    """Fail a RUNNING trial whose worker is gone (marked with `reason`) and queue its retry, at most MAX_RETRIES
    times in a row on every storage (Optuna's heartbeat callback has the same cap on SQL storages), so a trial
    that kills its worker every time stops with its reason. Two workers may find the same stale trial at once:
    the one that loses the race to fail it leaves it alone, as Optuna's own `fail_stale_trials` does."""
    gave_up = int(trial.user_attrs.get("retries", 0)) >= MAX_RETRIES
    try:
        storage_of(study).set_trial_user_attr(trial_id(trial), reason, True)
        if gave_up:
            storage_of(study).set_trial_user_attr(trial_id(trial), "gave_up", True)
            storage_of(study).set_trial_user_attr(trial_id(trial), "fail_reason",
                                               f"{reason}: its worker died {MAX_RETRIES + 1} times in a row; not retried again")
        failed = storage_of(study).set_trial_state_values(trial_id(trial), TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    if failed and not gave_up:
        enqueue_retry(study, trial)


def enqueue_retry(study: optuna.Study, trial, count: bool = True) -> None:
    """Queue the same configuration again, keeping the trial's intermediate values: the retry resumes the
    run's last checkpoint (same config hash, same run directory). `count`: a death counts toward the retry cap,
    a user's Ctrl-C does not."""
    attrs = {k: trial.user_attrs[k] for k in (*FOLLOWER_KEYS, *KEPT_BY_RETRIES) if k in trial.user_attrs}
    retries = int(trial.user_attrs.get("retries", 0)) + count
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={**attrs, "retry_of": trial.number, "retries": retries},
        intermediate_values=dict(trial.intermediate_values)))
