"""Plugins: a researcher's own parts (a pooling, an adapter, a task, ...) in their own Python file or module,
registered when a config or space names it under `plugins:`.

    plugins: [my_pooling.py]          # a file, relative to the config or space that names it
    plugins: [mylab.poolings]         # or an importable module

Loading is idempotent and happens wherever a config is validated (the sweep's parent, every worker, a requeued
Slurm job, a DDP rank), so a plugin travels with the stored config: its absolute path is stored, and its content
hash enters the config hash and the trial's provenance. A missing or broken plugin is one clear error naming it."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from lclab.errors import ConfigError

__all__ = ["load_plugins", "plugin_hash", "resolve_plugin_paths"]

_loaded: dict[str, str] = {}  # plugin spec -> content hash of what was loaded


def resolve_plugin_paths(specs: list[str], base: Path) -> list[str]:
    """File plugins relative to the file that names them become absolute; module names stay as they are."""
    return [str((base / s).resolve()) if s.endswith(".py") and not Path(s).is_absolute() else s for s in specs]


def _file_of(spec: str) -> Path | None:
    if spec.endswith(".py"):
        return Path(spec)
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):  # a parent package missing, or not a module name at all
        return None
    return Path(found.origin) if found is not None and found.origin not in (None, "built-in", "frozen") else None


def plugin_hash(spec: str) -> str:
    """sha256 (16 hex digits) of the plugin's source as this process loaded it (as it is on disk, if not loaded yet):
    what a trial records for provenance and what its config hash includes."""
    if spec in _loaded:
        return _loaded[spec]
    path = _file_of(spec)
    if path is None or not path.is_file():
        return "unknown"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_plugins(specs: list[str], field: str = "plugins") -> dict[str, str]:
    """Import every plugin once per process; returns {spec: content hash}. Errors name the plugin and the fix."""
    for spec in specs:
        if spec in _loaded:
            continue
        if spec.endswith((".py", "/")) and Path(spec).is_dir():  # a bare name may be a package: imported below
            raise ConfigError(field, f"plugin {spec} is a folder", "name the .py files in it, e.g. plugins: [parts/pooling.py]")
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(field, f"plugin file {path} does not exist",
                                  "give a path relative to the config or space that names it, or an absolute one")
            name = f"lclab_plugin_{path.stem}_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            run = lambda: module_spec.loader.exec_module(module)  # noqa: E731
        else:
            name = spec
            run = lambda: importlib.import_module(spec)  # noqa: E731
        try:
            run()
        except ConfigError as err:  # e.g. a name already taken: still the plugin's fault, named with it
            sys.modules.pop(name, None)
            raise ConfigError(field, f"plugin {spec}: {err.problem}", err.fix) from None
        except ModuleNotFoundError as err:
            sys.modules.pop(name, None)
            if err.name == spec:
                raise ConfigError(field, f"plugin module '{spec}' is not importable",
                                  "install it, put it on PYTHONPATH, or name a .py file instead") from None
            raise ConfigError(field, f"plugin {spec} failed to import: {type(err).__name__}: {err}",
                              "fix the plugin (run it with python to see where)") from None
        except Exception as err:  # any error in a user's file is theirs to fix, shown as one paragraph
            sys.modules.pop(name, None)
            raise ConfigError(field, f"plugin {spec} failed to import: {type(err).__name__}: {err}",
                              "fix the plugin (run it with python to see where)") from None
        _loaded[spec] = plugin_hash(spec)
    return {spec: _loaded[spec] for spec in specs}
