"""Swappable parts chosen by name: one `Registry` per design axis (pooling, adapter, attention backend, decoder mode,
synthetic task, sampler, pruner).

An entry is one object (a class for model parts) that owns its validation, cost and docs; its docstring's first line
is the description shown by `lclab parts`, error messages and reports. Entries come from lclab itself, from a
plugin file or module a config names (`plugins:`), or from an installed package's entry points in the group
`lclab.<kind>` (e.g. `lclab.pooling`), loaded the first time the registry is asked for a name it lacks.
A name is registered once: a second entry under a taken name is refused with both origins named, and so is an entry
that is not of the registry's kind or has no description, at registration rather than at its first use."""
from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import sys
from typing import Generic, Iterator, TypeVar

from lclab.errors import ConfigError

__all__ = ["Registry", "describe"]

T = TypeVar("T")


def describe(obj) -> str:
    """An entry's `description`, else the first line of its docstring (its own, not an inherited one)."""
    if isinstance(getattr(obj, "description", None), str):
        return obj.description
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return (inspect.cleandoc(doc).splitlines() or [""])[0] if doc else ""


def origin(obj) -> str:
    """Where an entry was defined: its file for a plugin, its module for lclab's own parts."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    if module is not None and module.__name__.startswith("lclab."):
        return module.__name__
    return getattr(module, "__file__", None) or getattr(obj, "__module__", "?")


def public_name(cls: type) -> str:
    """Where a user imports a class from: its package when the package exports it (lclab.models.Pooling)."""
    package = cls.__module__.rpartition(".")[0]
    return f"{package if getattr(sys.modules.get(package), cls.__name__, None) is cls else cls.__module__}.{cls.__qualname__}"


class Registry(Generic[T]):
    """Entries of one kind by name. `field` is the config field that names an entry, for error messages. Entries are
    subclasses of `base`, instances of it when `instances` (decoder modes), or callables when there is no base
    (sampler and pruner builders)."""

    def __init__(self, kind: str, field: str, group: str, base: type | None = None, instances: bool = False):
        self.kind, self.field, self.group = kind, field, group  # group: the entry-point group, e.g. lclab.pooling
        self.base, self.instances = base, instances
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, entry: T | None = None, *, where: str | None = None):
        """`@REGISTRY.register("name")` on a class or function, or `REGISTRY.register("name", obj)`."""
        def add(obj: T) -> T:
            taken = self._entries.get(name)
            if taken is not None and taken is not obj:
                raise ConfigError(self.field, f"{self.kind} '{name}' from {where or origin(obj)} is already registered "
                                  f"by {self._origins[name]}", f"give the new {self.kind} another name")
            self._check(name, obj, where or origin(obj))
            self._entries[name] = obj
            self._origins[name] = where or origin(obj)
            if inspect.isclass(obj):
                obj.name = name
            return obj
        return add(entry) if entry is not None else add

    def _check(self, name: str, obj, where: str) -> None:
        if self.base is None:
            ok, want = callable(obj), "a function or class"
        elif self.instances:
            ok, want = isinstance(obj, self.base), f"an instance of {public_name(self.base)}"
        else:
            ok, want = inspect.isclass(obj) and issubclass(obj, self.base), f"a subclass of {public_name(self.base)}"
        if not ok:
            what = f"class {obj.__qualname__}" if inspect.isclass(obj) else f"a {type(obj).__name__}"
            raise ConfigError(self.field, f"{self.kind} '{name}' from {where} is {what}, not {want}",
                              f"register {want}")
        if not describe(obj).strip():
            raise ConfigError(self.field, f"{self.kind} '{name}' from {where} has no description",
                              "give it a docstring: its first line is what `lclab parts`, errors and reports show")

    def _load_entry_points(self) -> None:
        """Installed packages' entries: an entry point names an object (registered under the entry point's name)
        or a module whose import registers its entries itself."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            where = f"entry point '{ep.name} = {ep.value}' of package {ep.dist.name if ep.dist else '?'}"
            try:
                obj = ep.load()
            except Exception as err:  # a broken third-party package: named, never a traceback
                raise ConfigError(self.field, f"{where} (group {self.group}) failed to load: {type(err).__name__}: {err}",
                                  "fix or uninstall that package") from None
            if not inspect.ismodule(obj) and ep.name not in self._entries:
                self.register(ep.name, obj, where=where)

    def __getitem__(self, name: str) -> T:
        if name not in self:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(self.field, f"unknown {self.kind} '{name}'",
                              f"{hint}use one of {self.names()}, or register your own in a plugin (see `lclab parts`)")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def description(self, name: str) -> str:
        return describe(self[name])

    def origin(self, name: str) -> str:
        self[name]
        return self._origins[name]
