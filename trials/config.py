"""Trial configuration: `TrialConfig` = model + data + train, loaded from YAML with strict checking.

`load_config(path, overrides)` is the only way YAML becomes a config: unknown keys, wrong types and
impossible values raise `ConfigError` naming the file, the field and the fix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lclab.errors import ConfigError, in_range
from lclab.models import MODES, ModelConfig
from lclab.plugins import load_plugins, plugin_hash, resolve_plugin_paths
from lclab.schema import from_dict


@dataclass
class DataConfig:
    source: Literal["synthetic", "embedded", "files", "hub"] = "synthetic"
    context_len: int = 64  # T: tokens to compress
    text_len: int = 64  # S: raw tokens after the context (the continuation)
    # synthetic task suite
    tasks: list[str] = field(default_factory=lambda: ["reconstruction"])
    n_symbols: int = 64  # symbol vocabulary of the synthetic tasks
    span_len: int = 8  # span_recall: context is addressed in spans of this many tokens
    kv_pairs: int = 16  # kv_recall: key-value pairs at the start of the context (rest is distractors)
    n_keys: int = 64  # kv_recall: key vocabulary
    kv_offset: int = 4  # kv_offset: tokens between a key and its value (kv_pairs / kv_offset blocks of keys, then values)
    # text corpora
    path: list[str] = field(default_factory=list)  # files: local text/jsonl/parquet; hub: [name] or [name, config]
    text_field: str = "text"
    val_fraction: float = 0.05  # documents held out for validation (by a hash of their position)
    tokenizer: Literal["bpe", "byte"] = "bpe"
    tokenizer_vocab: int = 4096
    val_examples: int = 256  # per synthetic task, or text windows


@dataclass
class TrainConfig:
    batch_size: int = 32
    # budget: budget_flops if set, else budget_tokens if set, else steps
    steps: int = 1000
    budget_tokens: float | None = None  # context + text tokens of every example
    budget_flops: float | None = None  # training FLOPs (3x forward), converted with this model's FLOPs/token
    lr_encoder: float = 1e-3
    lr_adapter: float = 1e-3
    lr_decoder: float = 1e-3
    weight_decay: float = 0.1
    schedule: Literal["cosine", "wsd"] = "cosine"
    warmup_frac: float = 0.05
    decay_frac: float = 0.2  # wsd: share of steps in the final linear decay
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    precision: Literal["auto", "32", "bf16"] = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    # every step trains each decoder mode on a fixed share of its batch (`composition`): the rest is compressed
    full_context_share: float = 0.0  # rows that feed the raw context instead of latents
    reconstruction_share: float = 0.0  # rows that reconstruct the context from their latents
    # rows that read no context: the no-context loss, the floor of every gap and retention, is then measured in a
    # mode the decoder trains on (positions right after <bos>), not one it never saw
    none_share: float = 0.05
    stages: Literal["joint", "staged"] = "joint"
    stage_fracs: list[float] = field(default_factory=lambda: [0.1, 0.1])  # staged: adapter only, + encoder; then all
    # curriculum: latents get each group's mean token embedding added, its weight annealed from 1 to 0 over this share
    # of the steps (0: off); the trained model is a pure compressor (benchmarks/results/recipe_screen.json)
    embedding_skip_frac: float = 0.0
    decoder_init: Literal["scratch", "warm"] = "scratch"
    warm_steps: int = 300  # warm start: decoder pre-training steps on raw context (cached per study data)
    warm_lr: float = 1e-3
    val_every: int = 0  # 0: validate only at the end
    checkpoint_every: int = 100
    log_every: int = 10
    threads: int = 0  # torch CPU threads, 0 = torch's default
    # torch.compile each transformer block and the loss; auto: on CUDA only; cudagraphs: also replay them as CUDA graphs
    compile: bool | Literal["auto", "cudagraphs"] = "auto"

    def shares(self) -> dict[str, float]:
        """Each decoder mode's share of the training loss: those with a share field, compressed the rest."""
        shares = {name: getattr(self, mode.share) for name, mode in MODES.items() if mode.share is not None}
        return {"compressed": 1 - sum(shares.values()), **shares}

    def trained_modes(self) -> dict[str, float]:
        """The modes every step trains: those with a positive share, with it."""
        return {m: s for m, s in self.shares().items() if s > 1e-12}

    def composition(self) -> dict[str, int]:
        """Rows of every training batch per decoder mode, in MODES order (largest remainders, at least one row for
        a positive share): the same shapes every step, so compiled graphs and DDP's static graph never change."""
        shares = self.trained_modes()
        exact = {m: s * self.batch_size for m, s in shares.items()}
        rows = {m: int(x) for m, x in exact.items()}
        for m in sorted(exact, key=lambda m: rows[m] - exact[m])[: self.batch_size - sum(rows.values())]:
            rows[m] += 1
        for m in rows:  # a positive share trains every step: take its row from the largest mode
            if rows[m] == 0 and self.batch_size >= len(rows):
                rows[m], rows[max(rows, key=rows.get)] = 1, rows[max(rows, key=rows.get)] - 1
        return {m: rows[m] for m in MODES if rows.get(m)}


@dataclass
class TrialConfig:
    name: str = "trial"
    seed: int = 0
    output_dir: str = "runs"
    progress: bool = True
    plugins: list[str] = field(default_factory=list)  # files / modules registering parts of your own (lclab.plugins)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Canonical hash of everything that changes results (not where outputs go, how they are shown,
        or how often the run validates, logs and checkpoints)."""
        d = self.to_dict()
        for key in ("output_dir", "progress"):
            d.pop(key)
        for key in ("threads", "log_every", "checkpoint_every", "val_every", "compile"):
            d["train"].pop(key)
        # a plugin's code is part of the configuration: where it lives is not (empty fields keep old hashes)
        plugins = d.pop("plugins")
        if plugins:
            d["plugin_code"] = sorted(plugin_hash(p) for p in plugins)
        for section, key in ((d["model"], "pooling_options"), (d["model"]["adapter"], "options"),
                             (d["train"], "embedding_skip_frac")):
            if not section[key]:
                section.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def parts(self) -> dict[str, str]:
        """The registered parts this trial uses, by config field, with their descriptions and origins (a plugin
        file's path): stored with the trial, so that reports can name them without loading the model code."""
        from lclab.models import ADAPTERS, POOLINGS

        from .synthetic import TASKS

        chosen = [(POOLINGS, self.model.pooling), (ADAPTERS, self.model.adapter.kind)]
        chosen += [(TASKS, task) for task in self.data.tasks] if self.data.source == "synthetic" else []
        return {f"{r.field}={name}": f"{r.description(name)} ({r.origin(name)})" for r, name in chosen}

    def validate(self) -> "TrialConfig":
        load_plugins(self.plugins)  # before anything looks a name up: a plugin may register it
        self.model.validate()
        d, t = self.data, self.train
        from .synthetic import TASKS

        if d.source == "synthetic":
            if not d.tasks:
                raise ConfigError("data.tasks", "no synthetic task selected", f"list some of {TASKS.names()}")
            for task in d.tasks:
                TASKS[task].validate(d)
        if d.source in ("files", "hub") and not d.path:
            raise ConfigError("data.path", f"source '{d.source}' needs a path", "set data.path to local files or a hub dataset name")
        if d.context_len < 1 or d.text_len < 2:
            raise ConfigError("data.text_len", "need context_len >= 1 and text_len >= 2", "raise the lengths")
        if t.budget_tokens is not None and t.budget_flops is not None:
            raise ConfigError("train.budget_flops", "both a token and a FLOP budget are set",
                              "keep one of train.budget_tokens / train.budget_flops (or neither, to use train.steps)")
        if min(b for b in (t.steps, t.budget_tokens, t.budget_flops) if b is not None) <= 0:
            raise ConfigError("train.steps", "budgets must be positive", "use a positive steps / budget_tokens / budget_flops")
        shares = {MODES[m].share: v for m, v in t.shares().items() if MODES[m].share}
        if sum(shares.values()) > 1 or min(shares.values()) < 0:
            worst = min(shares, key=shares.get) if min(shares.values()) < 0 else max(shares, key=shares.get)
            raise ConfigError(f"train.{worst}", f"the shares {shares} must be >= 0 and sum to at most 1",
                              f"lower some of {', '.join('train.' + k for k in shares)}")
        if t.stages == "staged" and (len(t.stage_fracs) != 2 or sum(t.stage_fracs) >= 1 or min(t.stage_fracs) < 0):
            raise ConfigError("train.stage_fracs", f"{t.stage_fracs} is not two non-negative fractions summing below 1",
                              "use e.g. [0.1, 0.1]: adapter only, then + encoder, then everything")
        if not 0 <= t.embedding_skip_frac <= 1:
            raise ConfigError("train.embedding_skip_frac", f"{t.embedding_skip_frac} is not a share of the steps",
                              "use a value from 0 (off) to 1, e.g. 0.5: the skip fades out over the first half")
        in_range("seed", self.seed, 0, 2**32 - 1, "seeds numpy, torch and Python's random")
        for name in ("lr_encoder", "lr_adapter", "lr_decoder", "warm_lr", "weight_decay", "grad_clip", "val_every", "threads"):
            in_range(f"train.{name}", getattr(t, name), 0)  # grad_clip 0: no clipping; val_every 0: at the end
        for name in ("warmup_frac", "decay_frac", "min_lr_frac"):
            in_range(f"train.{name}", getattr(t, name), 0, 1, "a share of the steps or of the peak learning rate")
        for name in ("batch_size", "checkpoint_every", "warm_steps", "log_every"):
            in_range(f"train.{name}", getattr(t, name), 1)
        in_range("data.val_examples", d.val_examples, 1)
        in_range("data.n_symbols", d.n_symbols, 2, why="a synthetic task needs at least two symbols")
        if not 0 < d.val_fraction < 1:
            raise ConfigError("data.val_fraction", f"{d.val_fraction} is not a share strictly between 0 and 1",
                              "use e.g. 0.05: one document in twenty is held out for validation")
        modes = list(t.trained_modes())
        if t.batch_size < len(modes):
            raise ConfigError("train.batch_size", f"a batch of {t.batch_size} cannot give a row to each of the "
                              f"{len(modes)} modes trained every step ({', '.join(modes)})",
                              f"use a batch size of at least {len(modes)}, or set the share of a mode to 0")
        return self


def apply_override(data: dict, assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to a nested mapping in place."""
    if "=" not in assignment:
        raise ConfigError(assignment, "an override must look like key=value", "write e.g. --set model.ratio=8")
    key, raw = assignment.split("=", 1)
    node = data
    *parents, leaf = key.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(key, f"'{part}' is not a section", "override a field inside a section")
    try:
        node[leaf] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(key, f"value {raw!r} is not valid YAML ({err})", "quote strings, use plain numbers") from None


def read_text(path: Path, field: str = "<config>", what: str = "config file",
              fix: str = "pass a YAML file, e.g. configs/trial/tiny.yaml") -> str:
    """A YAML file's text. Each way a path can fail to be one (missing, a directory, a device or pipe, unreadable,
    binary: a checkpoint or parquet file passed by mistake) is a user error that says which."""
    if not path.exists():
        problem = f"{what} {path} does not exist"
    elif path.is_dir():
        problem = f"{what} {path} is a directory, not a file"
    elif not path.is_file():
        problem = f"{what} {path} is not a regular file (a device, pipe or socket)"
    else:
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            problem = f"{what} {path} is not a text file (byte {err.start} is not UTF-8); it looks like a binary file"
        except OSError as err:
            problem = f"{what} {path} cannot be read ({err.strerror or err})"
    raise ConfigError(field, problem, fix)


def load_config(path: str | Path, overrides: list[str] = ()) -> TrialConfig:
    path = Path(path)
    text = read_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise ConfigError("<yaml>", f"malformed YAML at {line}: {getattr(err, 'problem', err)}",
                          "fix the indentation or quoting there").located(str(path)) from None
    if isinstance(data, dict) and "axes" in data:
        raise ConfigError("axes", "this is a space file (it has axes), not a trial config",
                          f"sweep it: lclab sweep {path}").located(str(path))
    try:
        for assignment in overrides:
            apply_override(data, assignment)
        cfg = from_dict(TrialConfig, data)
        cfg.plugins = resolve_plugin_paths(cfg.plugins, path.parent)
        return cfg.validate()
    except ConfigError as err:
        raise err.located(str(path)) from None


def config_from_dict(data: dict) -> TrialConfig:
    return from_dict(TrialConfig, data).validate()
