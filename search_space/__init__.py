"""Design spaces in YAML (`space`), sampled by Optuna samplers and pruners chosen by name (`registry`), run as one
study per space (`study`) whose workers train the objective (`objective`) locally (`local`) or on Slurm
(`lclab.slurm`), surviving dead workers (`recovery`)."""
from lclab.lazy import lazy_exports

_WHERE = {
    "Space": "space", "Axis": "space", "load_space": "space", "SAMPLERS": "registry", "PRUNERS": "registry",
    "open_study": "study", "target_trials": "study", "counts": "study", "Objective": "objective",
    "run_sweep": "local",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
