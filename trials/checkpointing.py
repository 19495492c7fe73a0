"""Checkpoints that are either whole or absent: written to a temporary file beside the target, flushed to disk,
then renamed over it. A full disk or a kill mid-write leaves the previous checkpoint intact, never a truncated
one; a checkpoint that is unreadable anyway (copied half, damaged by hand) is named and set aside."""
from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

# what torch.load raises on a truncated, empty or foreign file
UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError)


def save_atomic(obj, path: Path) -> None:
    """torch.save `obj` to `path` through a temporary file of this process, flushed to disk, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError as err:  # torch reports a short write as "unexpected pos": say what it is
        if "unexpected pos" not in str(err):
            raise
        raise OSError(errno.ENOSPC, f"No space left on device: checkpoint {path} could not be written "
                                    f"({shutil.disk_usage(path.parent).free // 1024} kB free)") from err
    finally:
        tmp.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        save_atomic(checkpoint, path)


def resume_step(path: Path) -> tuple[int | None, str | None]:
    """(global step, None) of a readable checkpoint; (None, why) of an unreadable one, which is moved aside to
    `<name>.unreadable` so that the next attempt starts clean instead of failing on it again."""
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["global_step"]), None
    except UNREADABLE as err:
        aside = path.with_name(path.name + ".unreadable")
        path.replace(aside)
        return None, (f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'empty'}); "
                      f"moved to {aside}, the trial restarts from step 0")
