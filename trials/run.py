"""One trial end to end: data, model, budget, Lightning fit with checkpoints, final metrics."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import resource
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lightning as L
import torch
import yaml
from filelock import FileLock
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy

from lclab.errors import ConfigError, make_folder
from lclab.models import ARCHITECTURE_VERSION, MODES, ModelConfig, flops_per_token, forward_flops, param_counts
from lclab.models.attention import resolve

from .config import TrainConfig, TrialConfig
from .callbacks import DivergenceGuard
from .checkpointing import AtomicCheckpointIO, resume_step, save_atomic
from .compile import CudaGraphSteps, compile_trial, graph_mode, wants_compile
from .corpus import cache_dir
from .data import TrialData, make_source
from .distributed import barrier, broadcast, device_name, is_leader, rank_world, use_gpu
from .module import LCLMTrial
from .progress import ProgressLog, StepProgressBar

QUALITY_PREFIXES = ("val/", "params/", "flops_per_token/", "train/")  # deterministic for a fixed seed on CPU


class SaveOnInterrupt(L.Callback):
    """Ctrl-C (or a preemption delivered as SIGINT) saves the run's state before Lightning exits."""

    def __init__(self, path: Path):
        self.path = path

    def on_exception(self, trainer, module, exception):
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)


@dataclass
class TrialResult:
    metrics: dict
    run_dir: Path
    module: LCLMTrial


def train_flops_per_step(cfg: TrialConfig, by_mode: bool = False, causal_half: bool = False) -> float | dict[str, float]:
    """Training FLOPs of one step: 3x forward (backward costs two forwards) of every mode's rows (`composition`),
    exactly what each step executes; `by_mode` splits them by mode, `causal_half` counts causal attention by half."""
    T, S = cfg.data.context_len, cfg.data.text_len
    flops = {m: 3 * rows * forward_flops(cfg.model, T, MODES[m].scored_len(T, S), m, causal_half)["total"]
             for m, rows in cfg.train.composition().items()}
    return flops if by_mode else sum(flops.values())


def budget_steps(cfg: TrialConfig) -> int:
    """Optimizer steps for the trial's budget (tokens = context + text tokens of every example)."""
    t, d = cfg.train, cfg.data
    if t.budget_flops is not None:
        return max(1, math.ceil(t.budget_flops / train_flops_per_step(cfg)))
    if t.budget_tokens is not None:
        return max(1, math.ceil(t.budget_tokens / (t.batch_size * (d.context_len + d.text_len))))
    return t.steps


def _quiet_lightning() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if "SLURM_JOB_ID" not in os.environ:  # lclab knows when it runs under Slurm: elsewhere the srun hint is noise
        warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system.*")
    for pattern in (".*does not have many workers.*", ".*IterableDataset.*", ".*num_workers.*", ".*LeafSpec.*",
                    ".*reproducible.*", ".*tensorboardX.*", ".*checkpoint.*mid-epoch.*", ".*Checkpoint directory.*"):
        warnings.filterwarnings("ignore", message=pattern)


def resolve_config(cfg: TrialConfig, source) -> TrialConfig:
    """Fill what the data and the machine decide: vocabulary size and attention backend."""
    device = "cuda" if use_gpu() else "cpu"
    model = dataclasses.replace(cfg.model, vocab_size=source.vocab_size, attention=resolve(cfg.model.attention, device))
    return dataclasses.replace(cfg, model=model).validate()


def warm_decoder(cfg: TrialConfig, on_progress: Callable[[dict], None] | None = None) -> Path:
    """A decoder pre-trained on raw context for this data, shared by every trial with the same decoder
    and data (cached by hash): trials then pay only for the compressor. Concurrent workers wait on a file lock
    for the one that trains it, so it is trained once."""
    # only what shapes the warm decoder enters its hash: not the trial's own learning rates or recipe
    # raw context only: a warm decoder that had also learned to read no context left most tiny trials' compressors
    # near chance (measured: 2 of 10 tiny trials passed 0.1 reconstruction accuracy, against 6 of 8 without); the trial trains its no-context rows
    t = TrainConfig(batch_size=cfg.train.batch_size, steps=cfg.train.warm_steps, lr_decoder=cfg.train.warm_lr,
                    full_context_share=1.0, none_share=0.0, threads=cfg.train.threads, checkpoint_every=cfg.train.warm_steps)
    # the encoder side is never used on raw-context steps: lclab's default compressor, whatever the trial's
    m = cfg.model
    base = dataclasses.replace(ModelConfig(), vocab_size=m.vocab_size, decoder=m.decoder, latent_positions=m.latent_positions)
    warm = dataclasses.replace(cfg, name="warm-decoder", seed=0, model=base, train=t, progress=False,
                               output_dir=str(cache_dir() / "warm"))
    # on CPU the thread count it trains at is in the name: CPU results differ with it, and a sweep's workers (1 thread
    # each on 2 cores) and a lone trial (torch's default) both leave train.threads at 0, which the hash leaves out
    # (rank 0's count under DDP: every rank must name the same file)
    threads = broadcast("" if use_gpu() else f"-threads{cfg.train.threads or torch.get_num_threads()}")
    path = cache_dir() / "warm" / f"decoder-{warm.hash()}-arch{ARCHITECTURE_VERSION}{threads}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    # only rank 0 of a DDP trial takes the lock: the other ranks follow its decision below
    with FileLock(f"{path}.lock") if is_leader() else contextlib.nullcontext():
        if not broadcast(path.exists()):  # DDP ranks train it together, so they must agree on whether to
            result = run_trial(warm, on_progress=on_progress, phase="warm decoder")
            if is_leader():
                save_atomic(result.module.model.decoder.state_dict(), path)
            barrier()
    return path


def reset_peak_memory(gpu: bool) -> None:
    """Start this trial's peak memory from now: a worker runs many trials, and on CPU `ru_maxrss` is the process's
    lifetime maximum, so Linux's resettable peak (VmHWM, reset by writing 5 to clear_refs) is used instead."""
    if gpu:
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(gpu: bool) -> float:
    if gpu:
        return torch.cuda.max_memory_allocated() / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the lifetime peak, in kB on Linux


def trainer_layout(cfg: TrialConfig) -> dict:
    """Accelerator, devices, nodes and strategy: one device, or DDP over the process group the worker joined
    (one process per device; the Slurm job's tasks). Under Slurm, submitit owns requeueing, never Lightning."""
    gpu = use_gpu()
    layout = {"accelerator": "gpu" if gpu else "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
              "plugins": [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None}
    world = rank_world()[1]
    if world > 1:
        if cfg.train.batch_size % world:
            raise ConfigError("train.batch_size", f"{cfg.train.batch_size} does not split over {world} DDP processes",
                              f"use a batch size divisible by {world}, or fewer GPUs per trial in the cluster profile")
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        # every step trains the same modes on the same shapes, so the graph is static; staged training freezes
        # components mid-run, and only then must DDP look for unused parameters
        staged = cfg.train.stages == "staged"
        layout.update(devices=per_node, num_nodes=world // per_node,
                      strategy=DDPStrategy(static_graph=not staged, find_unused_parameters=staged,
                                           process_group_backend="nccl" if gpu else "gloo"))
    return layout


def run_trial(cfg: TrialConfig, *, resume: bool = False, callbacks: list | tuple = (),
              on_progress: Callable[[dict], None] | None = None, phase: str = "train") -> TrialResult:
    """Train one trial to its budget (resuming from the run's last checkpoint if asked) and evaluate it.
    With `cfg.progress` a progress bar shows it; otherwise a line per `log_every` steps goes to stdout and a
    snapshot to `on_progress` (the warm decoder's too, with phase "warm decoder")."""
    _quiet_lightning()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    source = make_source(cfg.data)
    cfg = resolve_config(cfg, source)
    steps = budget_steps(cfg)
    run_dir = Path(cfg.output_dir) / f"{cfg.name}-{cfg.hash()[:8]}"
    ckpt_dir = run_dir / "checkpoints"
    make_folder(run_dir, "output_dir", "point output_dir (--output-dir) at a folder you can write to")
    if is_leader():
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    L.seed_everything(cfg.seed, verbose=False)
    module = LCLMTrial(cfg, steps)
    if cfg.train.decoder_init == "warm":
        module.model.decoder.load_state_dict(torch.load(warm_decoder(cfg, on_progress), weights_only=True))
    gpu = use_gpu()
    mode = graph_mode(cfg, gpu)
    if wants_compile(cfg, gpu):
        compile_trial(module, mode)
    graphs = [CudaGraphSteps()] if mode else []
    data = TrialData(cfg, source, steps, gpu)
    tokens_per_step = cfg.train.batch_size * (cfg.data.context_len + cfg.data.text_len)
    shown = [StepProgressBar(tokens_per_step)] if cfg.progress else \
        [ProgressLog(phase, tokens_per_step, cfg.train.log_every, on_progress)] if is_leader() else []
    precision = {"auto": "bf16-mixed" if gpu else "32-true", "32": "32-true", "bf16": "bf16-mixed"}[cfg.train.precision]
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=cfg.train.checkpoint_every, save_top_k=0,
                                 save_last=True, enable_version_counter=False)
    layout = trainer_layout(cfg)
    layout["plugins"] = [*(layout["plugins"] or []), AtomicCheckpointIO()]
    trainer = L.Trainer(
        max_steps=steps, precision=precision, **layout,
        gradient_clip_val=cfg.train.grad_clip, deterministic=not gpu, benchmark=False,
        logger=TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False),
        callbacks=[checkpoint, SaveOnInterrupt(ckpt_dir / "last.ckpt"), DivergenceGuard(cfg.train.log_every, cfg.train.checkpoint_every),
                   *graphs, *shown, *callbacks],
        enable_progress_bar=cfg.progress, enable_model_summary=False,
        val_check_interval=cfg.train.val_every or steps, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        log_every_n_steps=cfg.train.log_every,
    )
    last = ckpt_dir / "last.ckpt"
    start_step, ckpt_path, resume_problem = 0, None, None
    if resume and last.exists():
        step, resume_problem = resume_step(last) if is_leader() else (None, None)
        step, resume_problem = broadcast((step, resume_problem))  # every DDP rank resumes, or restarts, alike
        if step is not None:
            start_step, ckpt_path = step, str(last)
        else:
            print(resume_problem, flush=True)
    elif resume and phase == "train":  # asked to resume a run that never saved: say so before it trains in full
        print(f"resume: no checkpoint in {run_dir} (a configuration not run before: every field but output, logging "
              "and checkpoint cadence names its run), so it trains from step 0", flush=True)
    reset_peak_memory(gpu)
    started = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    train_s = time.perf_counter() - started
    trainer.save_checkpoint(last)  # the final state, whatever checkpoint_every was
    if module.val_step != trainer.global_step:
        trainer.validate(module, datamodule=data, verbose=False)

    d = cfg.data
    metrics = dict(module.val_metrics)
    metrics.update({f"params/{k}": v for k, v in param_counts(module.model).items()})
    metrics.update(flops_per_token(cfg.model, d.context_len, d.text_len))
    metrics.update({
        "train/steps": trainer.global_step,
        "train/tokens_seen": trainer.global_step * tokens_per_step,
        "train/flops": trainer.global_step * train_flops_per_step(cfg),
        "sys/tokens_per_s": (trainer.global_step - start_step) * tokens_per_step / max(train_s, 1e-9),
        "sys/peak_mem_mb": peak_memory_mb(gpu),
        "sys/wall_s": time.perf_counter() - started,
        "sys/devices": trainer.world_size,
        "sys/device": device_name(),
        "meta/config_hash": cfg.hash(),
        "meta/data_fingerprint": source.fingerprint,
        "meta/seed": cfg.seed,
        "meta/resumed_from_step": start_step,
        **({"meta/resume_problem": resume_problem} if resume_problem else {}),
    })
    trainer.logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not k.startswith("val/")},
                               step=trainer.global_step)
    trainer.logger.finalize("success")
    if is_leader():
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    return TrialResult(metrics, run_dir, module)
