import os

import pytest

from lclab.trials import config_from_dict


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tokenizers, shards and warm decoders go to a per-session cache, never the user's."""
    os.environ["LCLAB_CACHE"] = str(tmp_path_factory.mktemp("lclab-cache"))
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def small_trial(tmp_path, **sections) -> "TrialConfig":
    """A CPU-sized trial (a second or two); `sections` update the model/data/train mappings."""
    data = {
        "name": "t", "seed": 0, "output_dir": str(tmp_path / "runs"), "progress": False,
        "model": {"ratio": 4, "pooling": "mean",
                  "encoder": {"n_layers": 1, "d_model": 32, "n_heads": 2, "window": 16},
                  "adapter": {"depth": 1, "n_heads": 2},
                  "decoder": {"n_layers": 1, "d_model": 32, "n_heads": 2}},
        "data": {"source": "synthetic", "tasks": ["reconstruction"], "context_len": 16, "text_len": 16,
                 "n_symbols": 16, "val_examples": 32},
        "train": {"batch_size": 8, "steps": 12, "checkpoint_every": 4, "lr_encoder": 3e-3,
                  "lr_adapter": 3e-3, "lr_decoder": 3e-3},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return config_from_dict(data)
