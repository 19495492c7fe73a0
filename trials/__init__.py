"""One pretraining trial: config, data (synthetic suite or text), Lightning module, run to metrics; and the trial
database (`db`), which loads neither torch nor Lightning."""
from lclab.lazy import lazy_exports

_WHERE = {
    "TrialConfig": "config", "DataConfig": "config", "TrainConfig": "config", "load_config": "config",
    "config_from_dict": "config", "LCLMTrial": "module", "run_trial": "run", "TrialResult": "run",
    "budget_steps": "run", "TASKS": "synthetic", "Task": "synthetic", "PruningReporter": "callbacks",
    "open_storage": "db", "storage_url": "db", "load_frame": "db",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
