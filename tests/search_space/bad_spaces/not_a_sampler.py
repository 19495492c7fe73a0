"""A sampler builder that returns something other than an Optuna sampler (sampler_not_optuna.yaml names it)."""
from lclab.search_space.registry import SAMPLERS


@SAMPLERS.register("text_sampler")
def text_sampler(seed):
    """Returns a string, not a sampler."""
    return f"sampler {seed}"
