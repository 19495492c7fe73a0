"""Slurm's preemption sends SIGTERM and, a moment later, USR2. The worker's stop request must hold both for the
whole job: a USR2 landing after the trial stopped, while the worker records the stop in the study, would
otherwise reach submitit's handler, which requeues and exits in the middle of that write (CI lost the
trial's `preempted` count this way)."""
import os
import signal

import lightning as L
import pytest

from lclab.slurm.preemption import StopRequest
from lclab.trials import run_trial
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
