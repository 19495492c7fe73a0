"""Slurm dispatch of trials with submitit (the Slurm issue builds this)."""
