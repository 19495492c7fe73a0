"""Learning curves from the TensorBoard runs that trials point at (`run_dir` in the trial database)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def tags(run_dir: str | Path) -> list[str]:
    return sorted(_accumulator(run_dir).Tags().get("scalars", []))


def _accumulator(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return acc


def learning_curves(frame: pd.DataFrame, tag: str = "train/loss") -> pd.DataFrame:
    """Long frame (study, number, step, value) of `tag` for every trial in `frame` whose run directory exists.
    A resumed run has several event files; the later value wins at a repeated step."""
    parts = []
    for row in frame.dropna(subset=["run_dir"]).itertuples(index=False):
        if not (Path(row.run_dir) / "tensorboard").is_dir():
            continue
        acc = _accumulator(row.run_dir)
        if tag not in acc.Tags().get("scalars", []):
            continue
        events = pd.DataFrame([(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)], columns=["t", "step", "value"])
        events = events.sort_values("t").drop_duplicates("step", keep="last").sort_values("step")
        parts.append(events.assign(study=row.study, number=row.number)[["study", "number", "step", "value"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["study", "number", "step", "value"])
