"""A running trial's progress is written by a thread of its own: a database that holds the write up (slow, or away
during an outage) never holds training up, and the newest snapshot is the one stored."""
import threading
import time

import optuna

from lclab.search_space.objective import ProgressSink


def snapshot(step: int) -> dict:
    return {"phase": "train", "step": step, "steps": 100, "tokens": 256 * step, "loss": 4.0 - step / 100, "at": 0.0,
            "val": {"val/loss_compressed": 3.0}}


def test_progress_never_waits_for_the_database_and_keeps_the_newest_snapshot():
    study = optuna.create_study()
    trial = study.ask()
    release, stored, first_write = threading.Event(), [], threading.Event()

    def held_up(key, value):  # the database takes as long as the test says
        first_write.set()
        release.wait()
        stored.append(value["step"])

    trial.set_user_attr = held_up
    sink = ProgressSink(trial, "val/loss_compressed")
    sink(snapshot(1))
    first_write.wait(timeout=30)
    for step in range(2, 101):  # all of these return while the first write is still held up
        sink(snapshot(step))
    assert stored == []
    release.set()
    deadline = time.time() + 30
    while len(stored) < 2 and time.time() < deadline:
        time.sleep(0.01)
    sink.close()
    sink._thread.join(timeout=30)
    assert stored == [1, 100] and not sink._thread.is_alive()  # the 98 in between were superseded, not queued
