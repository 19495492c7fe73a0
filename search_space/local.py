"""Local sweeps: worker processes on this machine share the study until it reaches its target; the parent
watches them and tells the truth about how they ended."""
from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lclab.errors import DivergedError, SweepError, make_folder
from lclab.workers import context, start
from lclab.trials.db import GRACE_S, HEARTBEAT_S

from .recovery import fail_stale
from .space import Space, load_space
from .study import ENUMERATED, StopAt, open_study, replicate_top, requeue_crashed, target_trials, unfinished


MIN_FREE_BYTES = 16 << 20  # below this the lab's disk counts as full: a checkpoint alone may need more


def run_sweep(space: Space, lab_dir: Path, workers: int = 1, on_tick=None,
              replicate: tuple[int, int] | None = None, on_note=None, retry_failed: bool = False) -> optuna.Study:
    """Run `workers` local processes against the study until it reaches its target; Ctrl-C stops them,
    leaving running trials to be resumed from their checkpoints by the next run. `replicate` = (k, seeds)
    first enqueues the best k configurations with that many new seeds. Points whose trials crashed are queued again
    (`requeue_crashed`; beyond the retry cap only with `retry_failed`).

    The exit tells the truth: a worker killed from outside whose trial was then finished elsewhere is a note
    (`on_note`), not a failure; a trial left RUNNING by a dead worker (a re-run inside the heartbeat grace) is waited
    for until it can be resumed, and resumed; work still left at the end is a SweepError that says what and why."""
    make_folder(lab_dir, "--lab", "point --lab at a folder you can write to (default: ./lab)")
    study = open_study(space, lab_dir)
    requeued = requeue_crashed(study, space, retry_failed)
    if requeued and on_note:
        on_note(f"{requeued} point(s) whose trials crashed are queued again")
    if replicate:
        said = replicate_top(study, space, *replicate)
        if on_note:
            on_note(said)
    threads = max(1, (os.cpu_count() or 1) // workers)
    died: list[str] = []
    for attempt in range(2):  # a second round only for trials a dead worker left RUNNING
        stamp = time.strftime("%Y%m%d-%H%M%S")
        logs = [str((lab_dir / "logs" / space.name / f"{stamp}-worker{i}.log").resolve()) for i in range(workers)]
        errors = context().SimpleQueue()  # a worker's last words, even when its log cannot be written
        procs = [start(f"{__name__}:worker", str(space.source), str(lab_dir), threads, log, space.storage, errors)
                 for log in logs]
        _watch(procs, study, on_tick)
        said = {}
        while not errors.empty():
            pid, summary = errors.get()
            said[pid] = summary
        died += [_death(p, log, said.get(p.pid)) for p, log in zip(procs, logs) if p.exitcode != 0]
        if attempt or not _wait_for_stale(study, on_tick, on_note):
            break
    died = _grouped(died) + _disk_full(lab_dir)
    left = unfinished(study, space)
    if died and left:
        raise SweepError(f"{'; '.join(died)}. {left} Fix the cause and run the same command to resume.")
    if left:
        raise SweepError(f"{left} Run the same command to resume.")
    if died and on_note:
        on_note(f"{'; '.join(died)}. Their trials were resumed from their checkpoints: every point is complete.")
    return study


def worker(space_path: str, lab_dir: str, threads: int, log: str | None = None, storage: str | None = None,
           errors=None) -> None:
    """One local worker: trains trials of the study until it reaches its target. An error that ends it is also sent
    to the parent (`errors`, a queue), which prints it itself: the log may be cut short, or absent, on a full disk."""
    try:
        _work(space_path, lab_dir, threads, log, storage)
    except Exception as err:
        if errors is not None:
            errors.put((os.getpid(), f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:400]}"))
        raise


def _work(space_path: str, lab_dir: str, threads: int, log: str | None, storage: str | None) -> None:
    import torch

    from .objective import Objective  # Lightning: the workers' (preloaded by their fork server), not the parent's

    if log:  # a worker's output (Lightning, tracebacks) goes to its own file, not over the live display
        try:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        except OSError:  # no room for even an empty log: the parent still hears of any error (see `worker`)
            fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    torch.set_num_threads(threads)
    space = load_space(space_path, storage)
    study = open_study(space, Path(lab_dir), worker_seed=os.getpid())
    stop = StopAt(target_trials(space, study), space.sampler["name"] in ENUMERATED)
    if stop.reached(study):  # optimize() would start a trial before asking the callback
        return
    study.optimize(Objective(space, Path(lab_dir), log), callbacks=[stop], catch=(DivergedError,), gc_after_trial=True)


def _watch(procs, study: optuna.Study, on_tick) -> None:
    """Follow the workers until they end. Ctrl-C is taken between ticks, never inside one: a KeyboardInterrupt in the
    middle of a database call can leave this process holding SQLite's write lock while it waits for the workers,
    which need that lock to record their interrupted trials (each side then waits out the 120 s busy timeout)."""
    interrupted = []
    own = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True)) if own else None
    try:
        while any(p.is_alive() for p in procs) and not interrupted:
            if on_tick:
                on_tick(study)
            time.sleep(1.0)
    finally:
        if own:
            signal.signal(signal.SIGINT, previous)
    if interrupted:  # the workers got the same SIGINT: let them checkpoint and record their trials
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.terminate()
        raise KeyboardInterrupt
    if on_tick:
        on_tick(study)


def _death(proc, log: str, said: str | None) -> str:
    if proc.exitcode < 0:
        return f"a worker was killed by signal {-proc.exitcode} (from outside, no traceback; its log: {log})"
    if said:
        return f"a worker exited with an error: {said} (the traceback is in its log, {log})"
    return f"a worker exited with an error (its traceback is in {log})"


def _grouped(deaths: list[str]) -> list[str]:
    """The same death of many workers said once, with how many (32 workers failing alike are one line)."""
    counts = {}
    for d in deaths:
        key = re.sub(r"worker\d+\.log", "worker*.log", d)
        counts.setdefault(key, []).append(d)
    return [same[0] if len(same) == 1 else f"{len(same)} workers alike: {key}"
            for key, same in counts.items()]


def _disk_full(lab_dir: Path) -> list[str]:
    free = shutil.disk_usage(lab_dir).free
    if free >= MIN_FREE_BYTES:
        return []
    return [f"the disk under the lab directory {lab_dir} is full ({free // 1024} kB free), so checkpoints and logs there "
            "may be cut short: free space, or move the lab elsewhere (--lab)"]


def _wait_for_stale(study: optuna.Study, on_tick, on_note) -> bool:
    """Trials left RUNNING with no worker of this run alive: a dead worker's (resumable once its heartbeat is stale,
    within the grace) or another sweep's (its heartbeat stays fresh). Wait out the grace; True when retries are
    queued to run."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return False
    if on_note:
        on_note(f"{len(running)} trial(s) RUNNING with no worker of this run alive: waiting up to {GRACE_S + 2 * HEARTBEAT_S} s "
                "for a dead worker's heartbeat to go stale, then resuming them from their checkpoints")
    deadline = time.time() + GRACE_S + 2 * HEARTBEAT_S
    while time.time() < deadline and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fail_stale(study)
        if on_tick:
            on_tick(study)
        time.sleep(1.0)
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
