"""Declarative design spaces sampled by Optuna (the sweeps issue builds this)."""
