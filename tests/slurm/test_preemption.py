"""Slurm's preemption sends SIGTERM and, a moment later, USR2. The worker's stop request must hold both for the
whole job: a USR2 landing after the trial stopped, while the worker records the stop in the study, would
otherwise reach submitit's handler, which requeues and exits in the middle of that write (CI lost the
trial's `preempted` count this way)."""
import os
import signal

import lightning as L
import pytest

from lclab.slurm import worker
from lclab.slurm.preemption import Preempted, StopRequest
from lclab.search_space.space import load_space
from lclab.search_space.study import open_study
from lclab.testing import mini_space
from lclab.trials import run_trial
from lclab.trials.db import load_frame, storage_url
from tests.conftest import small_trial


class TermAt(L.Callback):
    """Slurm's SIGTERM, sent to this process at a given step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_warning_after_the_trial_stopped_stays_with_the_worker(tmp_path):
    submitits = []  # stands for submitit's USR2 handler (requeue, then exit)
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: submitits.append(signum))
    try:
        with StopRequest() as stop:
            with pytest.raises((KeyboardInterrupt, SystemExit)):
                run_trial(small_trial(tmp_path), callbacks=[stop, TermAt(3)])
            os.kill(os.getpid(), signal.SIGUSR2)  # after training stopped: the worker is writing to the study
            assert signal.getsignal(signal.SIGUSR2) == stop._request  # held by the request after training, too
        assert submitits == [] and stop.received == {signal.SIGTERM, signal.SIGUSR2}
        assert list(tmp_path.glob("**/checkpoints/last.ckpt"))  # stopped at a step boundary, checkpointed
        os.kill(os.getpid(), signal.SIGUSR2)  # the job is over: submitit's handler is back
        assert submitits == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_a_warning_between_trials_stops_the_worker_before_it_asks_for_another(tmp_path, monkeypatch):
    # the worker's own job environment, as submitit's local executor sets it: one task, rank 0
    for key, value in {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "7", "SUBMITIT_LOCAL_NTASKS": "1",
                       "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_LOCAL_NODEID": "0",
                       "SUBMITIT_LOCAL_GLOBALID": "0", "SUBMITIT_LOCAL_LOCALID": "0"}.items():
        monkeypatch.setenv(key, value)
    space = mini_space(tmp_path, seeds=[0], n_trials=2, budget={"steps": 3}, axes={"ratio": {"values": [4, 8]}})
    open_study(load_space(space), tmp_path / "lab")  # the sweep's parent creates it and queues the grid
    told, real = [], worker.run_one

    def then_warned(study, objective, trial):  # Slurm's warning lands right after the first trial is recorded
        real(study, objective, trial)
        told.append(trial.number)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(worker, "run_one", then_warned)
    with StopRequest() as stop:
        with pytest.raises(Preempted, match="between trials after 1"):
            worker.SweepJob().work(stop, str(space), str(tmp_path / "lab"), None)
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert told == [0] and list(frame.state) == ["COMPLETE", "WAITING"]  # the second waits for the requeued job
