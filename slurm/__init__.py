"""Sweeps on Slurm through submitit: cluster profiles (`profiles`), a job array of sweep workers (`dispatch`), the
worker each job runs (`worker`) and how it survives preemption (`preemption`)."""
from lclab.lazy import lazy_exports

_WHERE = {"ClusterProfile": "profiles", "load_profile": "profiles", "submit": "dispatch", "cancel": "dispatch",
          "SweepJob": "worker"}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
