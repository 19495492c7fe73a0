"""Preemption: Slurm's warning signals stop a training trial at a step boundary, checkpointed, for the requeued
job to resume as the same Optuna trial."""
from __future__ import annotations

import signal

import lightning as L


class Preempted(Exception):
    """The worker was asked to stop (Slurm preemption or time limit): the trial checkpointed at a step
    boundary and stays RUNNING, for the requeued job to resume as the same Optuna trial."""


class StopRequest(L.Callback):
    """For the whole life of a worker, SIGTERM and SIGUSR2 (Slurm's preemption and time-limit warnings) only
    request a stop: a training trial stops at the next step boundary, where its state is consistent, and saves its
    checkpoint (SaveOnInterrupt reacts to the KeyboardInterrupt); between trials the worker stops before asking
    for the next. Installed for the job and not only while a trial trains, because Slurm's preemption sends
    SIGTERM and then USR2 a moment later: submitit's USR2 handler, had it been back in place, would exit in the
    middle of the worker recording the stop in the study. Lightning's SIGTERM handling would instead end the
    trial without a checkpoint. Only USR2 (submitit's warning) asks the worker to requeue its job: SIGTERM alone
    comes from scancel, or from Slurm's own preemption, which requeues by itself."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self):
        self.requested = False
        # the signals this process got, as a set: Slurm may deliver SIGTERM and USR2 in either order
        # (under DDP a rank may also stop on another rank's signal and get none itself)
        self.received: set[int] = set()
        self._previous: dict = {}

    def _request(self, signum, frame):
        self.requested = True
        self.received.add(signum)

    def _hold(self) -> None:
        for s in self.SIGNALS:
            signal.signal(s, self._request)

    def __enter__(self) -> "StopRequest":
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        self._hold()
        return self

    def __exit__(self, *exc) -> None:
        """The previous handlers (submitit's) back in place."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def on_train_start(self, trainer, module):
        # Lightning puts its own SIGTERM handler over ours for fit, which would end the trial with its
        # SIGTERMException and no checkpoint: ours again while training (Lightning's teardown restores ours)
        self._hold()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        # under DDP a signal may reach one rank a step before another: all stop once any of them has it, agreed
        # by a collective every log_every steps only (Slurm's warning comes minutes ahead); alone, at once
        if trainer.world_size > 1 and trainer.global_step % trainer.log_every_n_steps:
            return
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            self.requested = True
            raise KeyboardInterrupt
