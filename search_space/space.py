"""A study's design space, declared in YAML and checked before anything runs.

    name: pooling_ablation
    base: ../../configs/trial/tiny.yaml      # a trial config (path relative to this file) or a mapping
    set: {data.tasks: [kv_offset]}           # fields of the base changed for every trial of this space
    axes:
      pooling: {values: [mean, max, attention], role: scientific}
      lr: {path: train.lr_encoder, kind: float, low: 1.0e-4, high: 3.0e-3, log: true, role: nuisance}
      heads: {path: model.adapter.n_heads, values: [2, 4], when: {adapter: attn_mlp}}
    derived: {encoder_width: {path: model.encoder.d_model, expr: "decoder_width // 2"}}
    constraints: ["(window - overlap) % ratio == 0", "encoder_params <= 0.5 * decoder_params"]
    objectives: [{metric: val/loss_compressed, direction: minimize}]
    sampler: {name: tpe}
    pruner: {name: none}
    budget: {steps: 400}                      # or {tokens: N} / {flops: N}
    seeds: [0, 1, 2]
    n_trials: 12
    storage: lab.db
    plugins: [my_pooling.py]                  # your own parts (lclab.plugins), relative to this file
    fidelity_of: fidelity_text                # a synthetic proxy's real-text twin (same configurations)

Axis names that are well-known design axes (ratio, pooling, window, ...) need no `path`.
"""
from __future__ import annotations

import copy
import math
import random
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lclab.errors import ConfigError
from lclab.models import LCLM
from lclab.plugins import load_plugins, resolve_plugin_paths
from lclab.trials import TrialConfig
from lclab.trials.config import DataConfig, from_dict, read_text

from .expr import Expression, ExpressionError

# short names usable as axes, in constraints and in derived expressions
KNOWN = {
    "ratio": "model.ratio", "pooling": "model.pooling", "latent_positions": "model.latent_positions",
    "window": "model.encoder.window", "overlap": "model.encoder.overlap", "mask": "model.encoder.mask",
    "encoder_layers": "model.encoder.n_layers", "encoder_width": "model.encoder.d_model",
    "encoder_heads": "model.encoder.n_heads", "adapter": "model.adapter.kind", "adapter_depth": "model.adapter.depth",
    "adapter_width": "model.adapter.width_mult", "decoder_layers": "model.decoder.n_layers",
    "decoder_width": "model.decoder.d_model", "decoder_heads": "model.decoder.n_heads",
    "context_len": "data.context_len", "text_len": "data.text_len", "batch_size": "train.batch_size",
    "lr_encoder": "train.lr_encoder", "lr_adapter": "train.lr_adapter", "lr_decoder": "train.lr_decoder",
    "warmup_frac": "train.warmup_frac", "schedule": "train.schedule", "stages": "train.stages",
    "decoder_init": "train.decoder_init", "full_context_share": "train.full_context_share",
    "reconstruction_share": "train.reconstruction_share", "none_share": "train.none_share",
}
ROLES = ("scientific", "nuisance", "fixed")
KINDS = ("categorical", "int", "float")
SECTIONS = {"name", "base", "axes", "derived", "constraints", "objectives", "sampler", "pruner", "budget", "seeds",
            "n_trials", "storage", "nuisance_trials", "plugins", "fidelity_of", "set"}
FEASIBILITY_SAMPLES = 2000
DEFAULT_DIRECTION = "minimize"
BUDGET_FIELDS = {"steps": "train.steps", "tokens": "train.budget_tokens", "flops": "train.budget_flops"}


class SpaceError(ConfigError):
    """A problem in a space file: `field` is the YAML path, `source` is file:line."""


@dataclass
class Axis:
    name: str
    path: str
    kind: str = "categorical"
    values: list = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int = 1
    role: str = "scientific"
    when: dict = field(default_factory=dict)

    def levels(self, n_float: int = 3) -> list:
        """Every level (categorical, int) or a spread of points (float) for feasibility checks."""
        if self.kind == "categorical":
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, self.step))
        if self.log:
            return [math.exp(math.log(self.low) + i * (math.log(self.high) - math.log(self.low)) / (n_float - 1))
                    for i in range(n_float)]
        return [self.low + i * (self.high - self.low) / (n_float - 1) for i in range(n_float)]

    def active(self, point: dict) -> bool:
        return all(point.get(k) == v for k, v in self.when.items())


@dataclass
class Space:
    name: str
    source: Path
    base: dict
    axes: list[Axis]
    derived: dict[str, tuple[str, Expression]]
    constraints: list[Expression]
    objectives: list[dict]
    sampler: dict
    pruner: dict
    budget: dict
    seeds: list[int]
    n_trials: int
    storage: str | None
    nuisance_trials: int = 4
    lines: dict = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)  # absolute paths or module names, carried by every trial config
    fidelity_of: str | None = None  # the real-text study this (synthetic) study is a proxy of: its twin

    @property
    def data_source(self) -> str:
        """Where the trials' data comes from (the base's data.source, or "mixed" when an axis changes it)."""
        levels = {v for a in self.axes if a.path == "data.source" for v in a.levels()}
        if len(levels) > 1:
            return "mixed"
        return levels.pop() if levels else (self.base.get("data") or {}).get("source", DataConfig.source)

    @property
    def directions(self) -> list[str]:
        return [o.get("direction", DEFAULT_DIRECTION) for o in self.objectives]

    @property
    def scientific(self) -> list[Axis]:
        return [a for a in self.axes if a.role == "scientific"]

    @property
    def nuisance(self) -> list[Axis]:
        return [a for a in self.axes if a.role == "nuisance"]

    def config_dict(self, point: dict, seed: int) -> dict:
        """The trial config mapping for an assignment of axis values (inactive axes keep the base)."""
        data = copy.deepcopy(self.base)
        if self.plugins:
            data["plugins"] = list(self.plugins)
        for axis in self.axes:
            if axis.name in point:
                set_path(data, axis.path, point[axis.name])
        if self.budget:  # the space's budget replaces the base's: a base token budget would win over space steps
            for key, path in BUDGET_FIELDS.items():
                if key in self.budget or key != "steps":
                    set_path(data, path, self.budget.get(key))
        env = self.environment(data, point)
        for name, (path, expr) in self.derived.items():
            env[name] = expr(env)
            set_path(data, path, env[name])
        data["seed"] = seed
        data.setdefault("name", self.name)
        return data

    @staticmethod
    def environment(data: dict, point: dict) -> dict:
        """Known short names (with the trial config's defaults filled in) and the point's axes."""
        full = from_dict(TrialConfig, data).to_dict()
        return {short: _get(full, path) for short, path in KNOWN.items()} | point

    def resolve(self, point: dict, seed: int = 0) -> TrialConfig:
        """The validated trial config of a point, or ConfigError/SpaceError if it is infeasible."""
        data = self.config_dict(point, seed)
        cfg = from_dict(TrialConfig, data).validate()
        env = self.environment(data, point) | {name: _get(data, path) for name, (path, _) in self.derived.items()}
        env |= component_params(cfg)
        for constraint in self.constraints:
            try:
                ok = constraint(env)
            except ExpressionError as err:
                raise self.error("constraints", str(err), f"use axis names, known names ({', '.join(sorted(env))})")
            except (ZeroDivisionError, TypeError) as err:
                raise ConfigError("constraints", f"'{constraint.source}' failed: {err}", "fix the expression")
            if not ok:
                raise ConfigError("constraints", f"violates '{constraint.source}'", "")
        return cfg

    def grid(self) -> list[dict]:
        """All points of the finite part of the space (float axes at a few spread values), conditionals applied."""
        points = [{}]
        for axis in self.axes:
            grown = []
            for point in points:
                if axis.active(point):
                    grown.extend({**point, axis.name: v} for v in axis.levels())
                else:
                    grown.append(point)
            points = grown
        return points

    def error(self, key: str, problem: str, fix: str) -> SpaceError:
        line = self.lines.get(key) or self.lines.get(key.split(".")[0])
        return SpaceError(key, problem, fix, f"{self.source}:{line}" if line else str(self.source))


def set_path(data: dict, path: str, value) -> None:
    """data["a"]["b"]["c"] = value for path "a.b.c", creating sections as needed."""
    *parents, leaf = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(path, f"'{part}' is not a section", "set a field inside a section")
    data[leaf] = value


def _get(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data


def component_params(cfg: TrialConfig) -> dict[str, int]:
    """encoder_params / adapter_params / decoder_params for constraints, built on the meta device (no memory)."""
    import torch

    from lclab.trials.data import vocab_size_hint

    model_cfg = copy.copy(cfg.model)
    model_cfg.vocab_size = vocab_size_hint(cfg.data)
    with torch.device("meta"):
        model = LCLM(model_cfg)
    return {f"{name}_params": sum(p.numel() for p in part.parameters()) for name, part in model.components().items()}


# ---------------------------------------------------------------------------- loading
def _lines(node, prefix="", out=None) -> dict[str, int]:
    """YAML key path -> 1-based line, for error messages."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            out[path] = key.start_mark.line + 1
            _lines(value, path + ".", out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            out[f"{prefix}{i}"] = value.start_mark.line + 1
            out.setdefault(prefix.rstrip("."), value.start_mark.line + 1)
            _lines(value, f"{prefix}{i}.", out)
    return out


def load_space(path: str | Path, storage: str | None = None) -> Space:
    """Parse and check a space file; every problem is a SpaceError naming file:line, field and fix.
    `storage` (the CLI's --storage) replaces the file's `storage:`."""
    from .pruning import RULES
    from .registry import PRUNERS, SAMPLERS

    path = Path(path)
    try:
        text = read_text(path, "<space>", "space file", "pass a YAML file, e.g. search_space/presets/quickstart.yaml")
    except ConfigError as err:
        raise SpaceError(err.field, err.problem, err.fix) from None
    try:
        data, lines = yaml.safe_load(text), _lines(yaml.compose(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise SpaceError("<yaml>", f"malformed YAML: {getattr(err, 'problem', err)}", "fix the indentation or quoting there",
                         f"{path}:{mark.line + 1}" if mark else str(path)) from None
    if not isinstance(data, dict):
        raise SpaceError("<top level>", "a space file is a mapping", "start from search_space/presets/quickstart.yaml", str(path))
    stub = Space(data.get("name", path.stem), path, {}, [], {}, [], [], {}, {}, {}, [0], 1, None, lines=lines)
    if "axes" not in data and {"model", "data", "train"} & set(data):
        raise stub.error("axes", "this is a trial config (it has no axes), not a space",
                         f"train it (lclab train {path}), or sweep a space that names it (base: {path.name})")
    for key in data:
        if key not in SECTIONS:
            raise stub.error(key, "unknown section", f"use only {', '.join(sorted(SECTIONS))}")
    for key in ("name", "axes", "objectives", "n_trials"):
        if key not in data:
            raise stub.error(key, f"the space has no '{key}'", f"add '{key}:' (see search_space/presets/quickstart.yaml)")
    if not isinstance(data["name"], str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", data["name"]):
        raise stub.error("name", f"{data['name']!r} is not a study name",
                         "use letters, digits, _ . and - (the name is the study's, and its runs' and logs' folders')")
    for key, kind in (("constraints", list), ("derived", dict)):
        if not isinstance(data.get(key) or kind(), kind):
            raise stub.error(key, f"{data[key]!r} is not " + ("a list of expressions" if kind is list else "a mapping"),
                             f"write constraints: [{data[key]!r}]" if kind is list else
                             "write derived: {NAME: {path: model.x, expr: '...'}}")
    if not isinstance(data.get("storage") or "", str):
        raise stub.error("storage", f"{data['storage']!r} is not a URL or path", "write e.g. storage: lab.db")
    plugins = _load_plugins(data.get("plugins") or [], path.parent, "plugins", stub)
    base = _load_base(data.get("base", {}), path, stub)
    plugins += [p for p in _load_plugins(base.pop("plugins", []), path.parent, "base.plugins", stub) if p not in plugins]
    _set_fields(base, data.get("set") or {}, stub)
    axes = [_axis(name, spec, stub) for name, spec in (data["axes"] or {}).items()]
    if not axes:
        raise stub.error("axes", "no axes", "declare at least one axis")
    names = {a.name for a in axes}
    for axis in axes:
        for key in axis.when:
            if key not in names:
                raise stub.error(f"axes.{axis.name}.when", f"condition on unknown axis '{key}'", f"use one of {sorted(names)}")
    derived = {}
    for name, spec in (data.get("derived") or {}).items():
        if not isinstance(spec, dict) or set(spec) != {"path", "expr"}:
            raise stub.error(f"derived.{name}", "a derived value needs exactly 'path' and 'expr'", "write {path: model.x, expr: '...'}")
        derived[name] = (spec["path"], _expr(spec["expr"], f"derived.{name}", stub))
    constraints = [_expr(c, f"constraints.{i}", stub) for i, c in enumerate(data.get("constraints") or [])]
    objectives = data["objectives"]
    if not isinstance(objectives, list) or not objectives or not all(
            isinstance(o, dict) and set(o) <= {"metric", "direction"} and "metric" in o for o in objectives):
        raise stub.error("objectives", "objectives must be a list of {metric, direction: minimize|maximize}",
                         "write e.g. [{metric: val/loss_compressed, direction: minimize}]")
    for i, o in enumerate(objectives):
        if o.get("direction", DEFAULT_DIRECTION) not in ("minimize", "maximize"):
            close = {"min": "minimize", "max": "maximize"}.get(str(o["direction"]).lower()[:3])
            raise stub.error(f"objectives.{i}.direction", f"{o['direction']!r} is not minimize or maximize",
                             f"did you mean '{close}'?" if close else "write direction: minimize or direction: maximize")
    sampler = _named(data.get("sampler", {"name": "tpe"}), "sampler", SAMPLERS, stub, seed=0)
    pruner = _named(data.get("pruner", {"name": "none"}), "pruner", PRUNERS, stub)
    if len(objectives) > 1 and sampler["name"] not in ("nsga2", "random", "grid", "ablation"):
        raise stub.error("sampler", f"sampler '{sampler['name']}' is single-objective but {len(objectives)} objectives are set",
                         "use nsga2 (or random / grid) for several objectives")
    objective = pruner.get("objective", 0)
    if not isinstance(objective, int) or isinstance(objective, bool) or not 0 <= objective < len(objectives):
        raise stub.error("pruner.objective", f"{objective!r} is not the index of one of the {len(objectives)} objectives",
                         f"use 0 .. {len(objectives) - 1} (the objective the pruner stops trials on)")
    if len(objectives) > 1 and pruner["name"] != "none" and pruner["name"] not in RULES:
        raise stub.error("pruner", f"pruner '{pruner['name']}' cannot prune a study with {len(objectives)} objectives",
                         f"use one of {sorted(RULES)} (on one objective: pruner: {{name: asha, objective: 0}}) or none")
    budget = data.get("budget") or {}
    if not isinstance(budget, dict) or len(budget) > 1 or not set(budget) <= {"steps", "tokens", "flops"}:
        raise stub.error("budget", f"{budget!r} is not one of {{steps|tokens|flops: N}}", "write e.g. budget: {flops: 1.0e+13}")
    for key, value in budget.items():
        if isinstance(value, bool) or not isinstance(value, int if key == "steps" else (int, float)) or value <= 0:
            raise stub.error(f"budget.{key}", f"{value!r} is not a positive " + ("integer" if key == "steps" else "number"),
                             "write e.g. budget: {steps: 400}")
    seeds = data.get("seeds", [0])
    seeds = list(range(seeds)) if isinstance(seeds, int) else seeds
    if not seeds or not all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds):
        raise stub.error("seeds", "seeds must be a count or a list of integers from 0 to 2**32 - 1",
                         "write seeds: 3 or seeds: [0, 1, 2]")
    repeated = [v for i, v in enumerate(seeds) if v in seeds[:i]]
    if repeated:  # the same seed trains the same trial twice: a duplicate, never a second seed
        raise stub.error("seeds", f"seed {repeated[0]} is listed twice", "list each seed once, e.g. seeds: [0, 1, 2]")
    n_trials, nuisance_trials = data["n_trials"], data.get("nuisance_trials", Space.nuisance_trials)
    if isinstance(nuisance_trials, bool) or not isinstance(nuisance_trials, int) or nuisance_trials < 1:
        raise stub.error("nuisance_trials", f"{nuisance_trials!r} is not a positive integer", "set nuisance_trials: 4")
    if not isinstance(n_trials, int) or n_trials < 1:
        raise stub.error("n_trials", f"{n_trials!r} is not a positive integer", "set n_trials: 12")
    twin = data.get("fidelity_of")
    if twin is not None and (not isinstance(twin, str) or twin == data["name"]):
        raise stub.error("fidelity_of", f"{twin!r} is not the name of another study",
                         "name the real-text study with the same configurations, e.g. fidelity_of: quickstart_text")
    storage = storage or data.get("storage")
    if storage:
        from lclab.trials.db import storage_url

        storage_url(storage, ".")  # a URL that names no database is refused before a lab folder is made
    space = Space(data["name"], path, base, axes, derived, constraints, objectives, sampler, pruner, budget, seeds,
                  n_trials, storage, nuisance_trials, lines,
                  plugins, twin)
    _check_values(space)
    _check_feasible(space)
    return space


def _load_base(base, path: Path, stub: Space) -> dict:
    """The base trial config, checked on its own first: a wrong field there is the base's fault, named in the
    base file (with its line), never blamed on the axis that happens to be checked next."""
    if isinstance(base, str):
        file = (path.parent / base).resolve()
        try:
            text = read_text(file, "base", "base config", "give a path relative to the space file")
        except ConfigError as err:
            raise stub.error("base", err.problem, err.fix) from None
        try:
            data, lines = yaml.safe_load(text) or {}, _lines(yaml.compose(text))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise SpaceError("<yaml>", f"malformed YAML in the base config: {getattr(err, 'problem', err)}",
                             "fix the indentation or quoting there", f"{file}:{mark.line + 1}" if mark else str(file)) from None
        where = lambda key: f"{file}:{lines[key]}" if key in lines else str(file)  # noqa: E731
        prefix = ""
        if isinstance(data, dict) and isinstance(data.get("plugins"), list):  # relative to the base file, not the space
            data["plugins"] = resolve_plugin_paths(data["plugins"], file.parent)
    elif isinstance(base, dict):
        data, prefix = base, "base."
        where = lambda key: f"{path}:{stub.lines.get('base.' + key, stub.lines.get('base', '?'))}"  # noqa: E731
    else:
        raise stub.error("base", "base must be a path or a mapping", "write base: ../../configs/trial/tiny.yaml")
    try:
        from_dict(TrialConfig, data)
    except ConfigError as err:
        raise SpaceError(prefix + err.field, f"in the base config: {err.problem}", err.fix, where(err.field)) from None
    return data


def _set_fields(base: dict, fields: Any, stub: Space) -> None:
    """The space's `set:` (dotted field -> value) applied to its base, each change checked on its own."""
    if not isinstance(fields, dict):
        raise stub.error("set", f"{fields!r} is not a mapping of fields to values", "write set: {data.tasks: [kv_offset]}")
    for key, value in fields.items():
        try:
            set_path(base, str(key), value)
            from_dict(TrialConfig, copy.deepcopy(base)).validate()  # plugins are loaded by now
        except ConfigError as err:
            if err.field == key:  # a problem of another field is the feasibility check's to name, with its axes
                raise stub.error(f"set.{key}", err.problem, err.fix) from None


def _load_plugins(specs: Any, folder: Path, key: str, stub: Space) -> list[str]:
    """Plugin files (relative to `folder`) or modules, loaded now: a space that names a part of its own is checked
    with that part registered. A missing or broken plugin is named at `key` of the space file."""
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise stub.error(key, f"{specs!r} is not a list of plugin files or modules", "write plugins: [my_pooling.py]")
    specs = resolve_plugin_paths(specs, folder)
    try:
        load_plugins(specs, key)
    except ConfigError as err:
        raise stub.error(key, err.problem, err.fix) from None
    return specs


def _axis(name: str, spec: Any, stub: Space) -> Axis:
    key = f"axes.{name}"
    if not isinstance(spec, dict):
        raise stub.error(key, "an axis is a mapping", "write e.g. {values: [4, 8, 16]}")
    unknown = set(spec) - {"path", "kind", "values", "low", "high", "log", "step", "role", "when"}
    if unknown:
        raise stub.error(key, f"unknown axis key(s) {sorted(unknown)}", "use path, kind, values, low, high, log, step, role, when")
    path = spec.get("path", KNOWN.get(name))
    if path is None:
        raise stub.error(key, f"'{name}' is not a known axis name and has no path",
                         f"add path: (e.g. model.encoder.n_layers) or use one of {sorted(KNOWN)}")
    kind = spec.get("kind", "categorical" if "values" in spec else "float")
    if kind not in KINDS:
        raise stub.error(f"{key}.kind", f"unknown kind '{kind}'", f"use one of {KINDS}")
    role = spec.get("role", "scientific")
    if role not in ROLES:
        raise stub.error(f"{key}.role", f"unknown role '{role}'", f"use one of {ROLES}")
    values, step, log, when = spec.get("values", []), spec.get("step", 1), spec.get("log", False), spec.get("when") or {}
    if not isinstance(values, list):
        raise stub.error(f"{key}.values", f"{values!r} is not a list", f"write values: [{values!r}] (or more levels)")
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise stub.error(f"{key}.values", f"{repeated[0]!r} is listed twice", "list each level once (seeds: repeats a point)")
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise stub.error(f"{key}.step", f"{step!r} is not a positive integer", "write e.g. step: 2")
    if not isinstance(log, bool):
        raise stub.error(f"{key}.log", f"{log!r} is not true or false", "write log: true")
    if not isinstance(when, dict):
        raise stub.error(f"{key}.when", f"{when!r} is not a mapping from axis to level", "write e.g. when: {pooling: attention}")
    axis = Axis(name, path, kind, values, spec.get("low"), spec.get("high"), log, step, role, dict(when))
    if kind == "categorical" and not axis.values:
        raise stub.error(key, "a categorical axis needs a non-empty 'values' list", "add values: [...]")
    if kind != "categorical":
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (axis.low, axis.high)):
            raise stub.error(key, f"a {kind} axis needs numeric low and high", "add low: and high:")
        if axis.low > axis.high or (axis.log and axis.low <= 0):
            raise stub.error(key, f"range [{axis.low}, {axis.high}] is empty or not positive on a log scale", "fix low/high")
    if role == "fixed" and len(axis.levels()) != 1:
        raise stub.error(f"{key}.role", "a fixed axis must have exactly one value", "give one value, or make it scientific")
    return axis


def _expr(source: Any, key: str, stub: Space) -> Expression:
    try:
        return Expression(source)
    except ExpressionError as err:
        raise stub.error(key, str(err), "use arithmetic, comparisons, and/or/not over axis and known names") from None


def _named(spec: Any, key: str, registry, stub: Space, **extra) -> dict:
    """`sampler: tpe` or `sampler: {name: tpe, ...options}`; built once here, so that its options are checked now."""
    from .registry import build

    field = key if not isinstance(spec, dict) else f"{key}.name"
    spec = {"name": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict) or spec.get("name") not in registry:
        raise stub.error(field, f"unknown {key} {spec.get('name') if isinstance(spec, dict) else spec!r}",
                         f"use one of {registry.names()}")
    try:
        with warnings.catch_warnings():  # Optuna flags TPE's multivariate/group as experimental: noise here
            warnings.simplefilter("ignore")
            build(registry, spec, **extra)
    except ConfigError as err:
        raise stub.error(key, err.problem, err.fix) from None
    except (TypeError, ValueError) as err:
        raise stub.error(key, f"{spec['name']} refuses its options: {err}",
                         f"use the options of {spec['name']} (its Optuna class's arguments; `lclab parts` lists them all)") from None
    return spec


def _check_values(space: Space) -> None:
    """Each level on its own must type-check against the trial config (wrong types, unknown choices)."""
    for axis in space.axes:
        for value in axis.levels():
            data = copy.deepcopy(space.base)
            try:
                set_path(data, axis.path, value)
                cfg = from_dict(TrialConfig, data)
                if axis.path in ("model.pooling", "model.attention", "model.adapter.kind"):
                    cfg.model.validate()
            except ConfigError as err:
                if "stride" in err.problem or "overlap" in err.problem:
                    continue  # depends on other axes: the feasibility check decides
                raise space.error(f"axes.{axis.name}", f"level {value!r} of '{axis.path}': {err.problem}", err.fix) from None


def _check_feasible(space: Space) -> None:
    points = space.grid()
    if len(points) > FEASIBILITY_SAMPLES:
        points = random.Random(0).sample(points, FEASIBILITY_SAMPLES)
    reasons = Counter()
    for point in points:
        try:
            space.resolve(point)
            return
        except SpaceError:
            raise
        except ConfigError as err:
            reasons[f"{err.field}: {err.problem}"] += 1
    reason, count = reasons.most_common(1)[0]
    raise space.error("constraints" if space.constraints else "axes", f"no point of the space is feasible "
                      f"({len(points)} checked; most common reason, {count}x: {reason})",
                      "relax the constraints or change the axes' values")
