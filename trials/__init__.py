"""One pretraining trial: config, data (synthetic suite or text), Lightning module, run to metrics."""
from .config import DataConfig, TrainConfig, TrialConfig, config_from_dict, load_config
from .module import DivergedError, LCLMTrial
from .run import TrialResult, budget_steps, run_trial

__all__ = ["TrialConfig", "DataConfig", "TrainConfig", "load_config", "config_from_dict", "run_trial",
           "TrialResult", "budget_steps", "LCLMTrial", "DivergedError"]
