"""Cluster profiles: where and how a sweep's workers run, as YAML (`slurm/profiles/*.yaml`).

`local` and `debug` are built in: the same code path with submitit's local executor (subprocesses on this
machine) and its debug executor (in this process, for pdb)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from lclab.errors import ConfigError, in_range
from lclab.trials.config import from_dict

HERE = Path(__file__).parent / "profiles"


@dataclass
class ClusterProfile:
    name: str = "cluster"
    executor: Literal["slurm", "local", "debug"] = "slurm"
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time_min: int = 60  # per job; a worker is requeued (and resumes its trial) when it runs out
    nodes: int = 1  # per trial: above 1 (or tasks_per_node above 1) each trial trains with DDP over the job's tasks
    tasks_per_node: int = 1  # one per GPU
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: Optional[float] = None
    constraint: Optional[str] = None
    array_parallelism: int = 64  # array tasks running at once
    max_requeues: int = 3  # preemptions/timeouts a job may survive
    signal_delay_s: int = 90  # Slurm warns (USR2) this long before the time limit
    setup: list[str] = field(default_factory=list)  # lines run before the worker: module loads, env activation, exports
    log_dir: str = "slurm_logs"  # relative to the lab directory; must be on a filesystem the nodes share

    def validate(self) -> "ClusterProfile":
        for name in ("time_min", "nodes", "tasks_per_node", "cpus_per_task", "array_parallelism"):
            in_range(name, getattr(self, name), 1)
        for name in ("gpus_per_node", "max_requeues", "signal_delay_s"):
            in_range(name, getattr(self, name), 0)
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise ConfigError("mem_gb", f"must be positive, got {self.mem_gb}", "set mem_gb to the memory per node in GB, or remove it")
        if self.signal_delay_s >= self.time_min * 60:
            raise ConfigError("signal_delay_s", f"{self.signal_delay_s} s is not shorter than time_min ({self.time_min} min)",
                              "warn a job well before its time limit, e.g. signal_delay_s: 90")
        if self.gpus_per_node and self.tasks_per_node != self.gpus_per_node:
            raise ConfigError("tasks_per_node", f"{self.tasks_per_node} tasks for {self.gpus_per_node} GPUs per node: "
                              "a DDP trial runs one task per GPU", f"set tasks_per_node: {self.gpus_per_node}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


BUILTIN = {"local": ClusterProfile(name="local", executor="local", time_min=600),
           "debug": ClusterProfile(name="debug", executor="debug", time_min=600)}


def load_profile(spec: str | Path) -> ClusterProfile:
    """A built-in name (`local`, `debug`), a profile name in slurm/profiles/, or a YAML path."""
    if str(spec) in BUILTIN:
        return BUILTIN[str(spec)]
    path = Path(spec)
    if not path.is_file() and (HERE / f"{spec}.yaml").is_file():
        path = HERE / f"{spec}.yaml"
    if not path.is_file():
        known = sorted([*BUILTIN, *(p.stem for p in HERE.glob("*.yaml"))])
        raise ConfigError("--cluster", f"no cluster profile '{spec}'", f"pass a YAML path or one of {known}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return from_dict(ClusterProfile, data).validate()
    except yaml.YAMLError as err:
        raise ConfigError("<yaml>", f"malformed YAML: {err}", "fix the profile file").located(str(path)) from None
    except ConfigError as err:
        raise err.located(str(path)) from None
