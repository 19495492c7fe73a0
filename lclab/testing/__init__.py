"""Small lab data for tests, benchmarks and notebooks: a CPU-sized trial config and space (`mini_space`, trials of
a few seconds) and trial databases with a planted truth (`planted`)."""
from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["MINI_BASE", "mini_space"]

MINI_BASE = {
    "progress": False,
    "model": {"encoder": {"n_layers": 1, "d_model": 32, "n_heads": 2, "window": 16}, "adapter": {"n_heads": 2},
              "decoder": {"n_layers": 1, "d_model": 32, "n_heads": 2}},
    "data": {"source": "synthetic", "context_len": 16, "text_len": 16, "n_symbols": 16, "val_examples": 16},
    "train": {"batch_size": 8, "checkpoint_every": 5},
}


def mini_space(folder: Path, name: str = "mini", storage: str | None = None, **overrides) -> Path:
    """A grid over ratio x pooling on MINI_BASE, 2 seeds, 6 steps, written to FOLDER/NAME.yaml; `overrides` replace
    sections of the space."""
    spec = {"name": name, "base": MINI_BASE,
            "axes": {"ratio": {"values": [4, 8]}, "pooling": {"values": ["mean", "attention"]}},
            "constraints": ["(window - overlap) % ratio == 0"],
            "objectives": [{"metric": "val/loss_compressed"}], "sampler": "grid", "budget": {"steps": 6},
            "seeds": [0, 1], "n_trials": 4, **overrides}
    if storage:
        spec["storage"] = storage
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
