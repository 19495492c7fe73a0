"""The few collective operations a multi-process (DDP) trial needs outside Lightning's training loop.

A DDP trial runs one process per device; whoever launched them (a Slurm job's tasks, through the sweep worker)
has already joined them into the default process group. Every helper is a no-op in a single process."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(global rank, world size) of this process; (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def use_gpu() -> bool:
    """Train on GPUs when this node has one for each of its processes (a CPU job on a GPU machine stays on CPU)."""
    return torch.cuda.is_available() and torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", 1))


def device_name() -> str:
    """The device this process trains on, as recorded with every trial: `cpu`, or `cuda:0 (NVIDIA H100 80GB HBM3)`."""
    if not use_gpu():
        return "cpu"
    index = torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def is_leader() -> bool:
    """Rank 0: the one process that writes a trial's files and talks to the study."""
    return rank_world()[0] == 0


def broadcast(obj: Any = None) -> Any:
    """Rank 0's `obj` on every rank (a picklable object)."""
    if rank_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_object_group())
    return box[0]


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier(group=_object_group())


def gather_lists(items: list) -> list:
    """Every rank's list, concatenated in rank order, on every rank."""
    if rank_world()[1] == 1:
        return items
    parts: list = [None] * rank_world()[1]
    dist.all_gather_object(parts, items, group=_object_group())
    return [item for part in parts for item in part]


_GROUP = None


def _object_group():
    """A gloo group for pickled objects: NCCL would need them copied to the GPU, and gloo keeps them off its streams."""
    global _GROUP
    if _GROUP is None:
        _GROUP = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _GROUP
