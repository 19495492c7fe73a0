"""torch.compile for a trial, applied from outside the model: each transformer block and the loss, each compiled for
the few fixed shapes a trial runs (every training step has the same modes on the same rows; validation adds one
batch size), so nothing recompiles after the first steps and no graph breaks inside a block."""
from __future__ import annotations

import lightning as L
import torch
import torch._dynamo

from lclab.models.layers import Block

# shapes per compiled code object: encoder blocks see 2-3 batch sizes, decoder blocks 3 training and 4 validation
# lengths, all sharing Block.forward; the default limit of 8 would fall back to eager part way through
RECOMPILE_LIMIT = 64


def wants_compile(cfg, gpu: bool) -> bool:
    """`train.compile`: true, false, auto (on CUDA only: on CPU a tiny trial takes 1.8x its eager wall time on a new
    machine, compiling, and even with a warm inductor cache no less than eager, benchmarks/results/trial_overhead.json)
    or cudagraphs (compiled, and on CUDA replayed as CUDA graphs: `graph_mode`)."""
    return cfg.train.compile in (True, "cudagraphs") or (cfg.train.compile == "auto" and gpu)


def graph_mode(cfg, gpu: bool) -> str | None:
    """torch.compile's mode: `reduce-overhead` (CUDA graph trees) for `train.compile: cudagraphs` on CUDA, where a
    launch-bound step then replays each block's kernels at once; CPU has no graphs to replay, so it compiles plainly."""
    return "reduce-overhead" if cfg.train.compile == "cudagraphs" and gpu else None


class CudaGraphSteps(L.Callback):
    """Starts a new CUDA graph tree iteration at every training and validation step, so the graphs may reuse the
    memory of the step before's outputs. Nothing reads them again: the losses a step logs and checks are eager
    tensors computed from them, and its gradients, which may live in that memory, are only set to None (Lightning
    zeroes them after the next forward). Each block runs once a step, so no gradient accumulates across replays."""

    def on_train_batch_start(self, *args):
        torch.compiler.cudagraph_mark_step_begin()

    def on_validation_batch_start(self, *args):
        torch.compiler.cudagraph_mark_step_begin()


def compile_trial(module, mode: str | None = None) -> None:
    """Compile `module.model`'s blocks in place (state_dict keys unchanged) and its loss; `mode` is torch.compile's."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for block in module.model.modules():
        if isinstance(block, Block):
            block.compile(dynamic=False, mode=mode)
    module.loss_sum = torch.compile(module.loss_sum, dynamic=False, mode=mode)
