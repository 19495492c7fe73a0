"""Package surfaces whose names load on first use: `from lclab.trials import run_trial` works, while importing
`lclab.trials.db` (or `lclab.analysis`) loads neither torch nor Lightning for a command that only reads a database."""
from __future__ import annotations

import importlib
from typing import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: dict[str, str]) -> tuple[Callable, Callable]:
    """`__getattr__` and `__dir__` for a package whose public names (`where`: name -> submodule) load lazily."""
    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
