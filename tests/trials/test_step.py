"""The training step: a fixed composition of modes, its exact FLOPs, no host syncs between log boundaries, divergence
caught at those boundaries, frozen components without gradients, compiled blocks equal to eager ones."""
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from lclab.errors import ConfigError, DivergedError
from lclab.models.attention import KeyMask
from lclab.models.layers import Block, compute_dtype, rope_tables
from lclab.trials import run_trial
from lclab.trials.compile import compile_trial, graph_mode
from lclab.trials.config import TrainConfig
from lclab.trials.data import compose, make_source, mode_targets
from lclab.trials.metrics import loss_sum
from lclab.trials.module import LCLMTrial
from lclab.trials.run import resolve_config, train_flops_per_step
from tests.conftest import small_trial

SHARES = {"full_context_share": 0.25, "reconstruction_share": 0.125, "none_share": 0.125}


@pytest.mark.parametrize("batch,full,recon,none", [(32, 0.1, 0.1, 0.05), (16, 0.1, 0.1, 0.05), (8, 0.25, 0.125, 0.125),
                                                   (32, 1.0, 0.0, 0.0), (32, 0.95, 0.0, 0.05), (7, 0.5, 0.5, 0.0),
                                                   (64, 0.05, 0.3, 0.0), (32, 0.0, 0.0, 0.05)])
def test_the_composition_gives_every_mode_with_a_share_its_rows_every_step(batch, full, recon, none):
    t = TrainConfig(batch_size=batch, full_context_share=full, reconstruction_share=recon, none_share=none)
    rows, shares = t.composition(), t.shares()
    assert sum(rows.values()) == batch
    assert set(rows) == {m for m, s in shares.items() if s > 0}  # every mode with a share, no other
    for mode, n in rows.items():
        assert n >= 1 and abs(n - shares[mode] * batch) < 1 + 1e-9, (mode, n)


def test_a_small_share_still_trains_every_step():
    assert TrainConfig(batch_size=4, full_context_share=0.01, reconstruction_share=0.01, none_share=0.01).composition() == \
        {"compressed": 1, "full": 1, "none": 1, "reconstruct": 1}


def test_the_no_context_mode_trains_by_default_so_its_baseline_is_honest():
    assert TrainConfig(batch_size=32, full_context_share=0.1).composition() == {"compressed": 27, "full": 3, "none": 2}


def test_a_batch_too_small_for_its_modes_is_refused():
    with pytest.raises(ConfigError, match="train.batch_size.*4 modes"):
        small_trial(Path("/tmp"), train={"batch_size": 2, **SHARES})


def test_each_step_trains_every_mode_on_its_rows_weighted_by_its_share(tmp_path):
    cfg = resolve_config(small_trial(tmp_path, train=SHARES), source := make_source(small_trial(tmp_path).data))
    module = LCLMTrial(cfg, 10)
    batch = compose(source.train_batch(0, 3, 8), cfg.train.composition(), 0, 3)
    assert batch["mode_rows"] == (("compressed", 4), ("full", 2), ("none", 1), ("reconstruct", 1))
    loss, losses = module.training_losses(batch)
    assert set(losses) == {"compressed", "full", "none", "reconstruct"}
    start, expected = 0, 0.0
    for mode, rows in batch["mode_rows"]:  # each mode's token mean on its own rows, by hand
        part = {k: batch[k][start:start + rows] for k in ("context", "text", "loss_mask")}
        start += rows
        target, mask = mode_targets(part, mode)
        logits = module.model(part["context"], target, mode)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        mean = (nll * mask).sum() / mask.sum()
        torch.testing.assert_close(losses[mode], mean)
        expected += cfg.train.shares()[mode] * mean
    torch.testing.assert_close(loss, expected)
    # the rows of a mode are drawn across the batch, not its last rows: every task reaches every mode
    again = compose(source.train_batch(0, 4, 8), cfg.train.composition(), 0, 4)
    assert not torch.equal(again["context"][5:7], source.train_batch(0, 4, 8)["context"][5:7])


class _Operators(TorchDispatchMode):
    """Counts the operators dispatched that are not views: on a GPU each is a kernel launch, eager."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += not func.is_view
        return func(*args, **(kwargs or {}))


def test_a_steps_four_modes_cost_about_one_passs_operators(tmp_path):
    """A step that ran an encoder and a decoder pass per mode dispatched 2.9x the operators of compressed rows alone
    here (1,021 against 347; on a GPU each is a launch, and the small trial's mix was launch-bound on an H100,
    mfu.json). Packed into one pass the four modes take 1.6x (549 against 345; benchmarks/step_ops.py)."""
    def operators(shares: dict) -> int:
        cfg = resolve_config(small_trial(tmp_path, train=shares), source := make_source(small_trial(tmp_path).data))
        module = LCLMTrial(cfg, 10)
        batch = compose(source.train_batch(0, 3, 8), cfg.train.composition(), 0, 3)
        module.training_losses(batch)[0].backward()  # the first step fills the per-shape caches
        with _Operators() as ops:
            module.training_losses(batch)[0].backward()
        return ops.count

    alone = operators({"none_share": 0.0})
    assert operators(SHARES) < 2 * alone


def test_a_ddp_rank_holds_its_share_of_each_mode_and_the_global_token_counts():
    cfg = small_trial(Path("/tmp"), train=SHARES)
    source, composition = make_source(cfg.data), cfg.train.composition()
    whole = compose(source.train_batch(0, 0, 8), composition, 0, 0)
    ranks = [compose(source.train_batch(0, 0, 8), composition, 0, 0, rank, 2) for rank in (0, 1)]
    assert [r["mode_rows"] for r in ranks] == [(("compressed", 2), ("full", 1), ("none", 1), ("reconstruct", 1)),
                                               (("compressed", 2), ("full", 1), ("none", 0), ("reconstruct", 0))]
    for r in ranks:  # every rank divides by the whole batch's token counts: the ranks' mean is one process's loss
        assert torch.equal(r["mode_tokens"], whole["mode_tokens"])
    assert whole["mode_tokens"].tolist() == [4 * 16, 2 * 16, 1 * 16, 1 * 16]


def test_a_training_step_executes_exactly_the_flops_it_is_charged(tmp_path):
    cfg = small_trial(tmp_path, train=SHARES)
    source = make_source(cfg.data)
    cfg = resolve_config(cfg, source)
    module = LCLMTrial(cfg, 10)
    batch = compose(source.train_batch(0, 0, 8), cfg.train.composition(), 0, 0)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # math kernel: countable matmuls
        module.training_losses(batch)[0].backward()
    assert counter.get_total_flops() == train_flops_per_step(cfg)


class Syncs(L.Callback):
    """Counts the tensor -> Python conversions (each one a host sync on a GPU) made inside training steps."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch):
        self.inside, self.calls = False, []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def spy(tensor, *args, _original=original, _name=name, **kwargs):
                if self.inside:
                    self.calls.append((self.step, _name))
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, spy)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.inside, self.step = True, trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.inside = False


def test_a_training_step_reads_nothing_back_from_the_device_between_log_boundaries(tmp_path, monkeypatch):
    cfg = small_trial(tmp_path, train={**SHARES, "steps": 12, "log_every": 6, "checkpoint_every": 12,
                                       "stages": "staged"})
    syncs = Syncs(monkeypatch)
    run_trial(cfg, callbacks=[syncs])
    # on_train_batch_end of the step before a boundary (global_step 6, 12 after it) may read the divergence flag
    assert {step for step, _ in syncs.calls} <= {5, 11}, syncs.calls


def test_divergence_fails_the_trial_within_log_every_steps_naming_where_it_began(tmp_path, monkeypatch):
    cfg = small_trial(tmp_path, train={"steps": 12, "log_every": 3, "checkpoint_every": 100})

    def poisoned(self, batch):  # the loss turns non-finite at step 4 and stays so, as a diverged run does
        loss, losses = original(self, batch)
        return (loss * float("nan") if self.global_step >= 4 else loss), losses

    original = LCLMTrial.training_losses
    monkeypatch.setattr(LCLMTrial, "training_losses", poisoned)
    with pytest.raises(DivergedError, match=r"training loss is nan at step 4 \(found at step 6: checked every 3 steps\)"):
        run_trial(cfg)


def test_frozen_components_compute_no_gradients_until_their_stage(tmp_path):
    cfg = small_trial(tmp_path, train={"stages": "staged", "stage_fracs": [0.25, 0.25], "steps": 8})
    seen = {}

    class Grads(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            seen[trainer.global_step] = {name: any(p.grad is not None for p in part.parameters())
                                         for name, part in module.model.components().items()}

    run_trial(cfg, callbacks=[Grads()])
    assert seen[0] == {"encoder": False, "adapter": True, "decoder": False}
    assert seen[2] == {"encoder": True, "adapter": True, "decoder": False}
    assert seen[4] == {"encoder": True, "adapter": True, "decoder": True}


@pytest.mark.parametrize("causal,padded,packed", [(True, False, False), (False, True, False), (True, False, True)])
def test_a_compiled_block_matches_the_eager_block_forward_and_backward(causal, padded, packed):
    torch.manual_seed(0)
    eager = Block(64, 4, 4.0)
    compiled = Block(64, 4, 4.0)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(dynamic=False)
    x = torch.randn(6, 20, 64)
    rope = rope_tables(torch.arange(20), 16, compute_dtype(x.device))
    valid = torch.ones(6, 20, dtype=torch.bool)
    valid[0, :4] = valid[5, 15:] = False
    mask = KeyMask(valid, False).dense() if padded else None
    segments = None
    if packed:  # as the decoder packs a step's modes: 4 sequences of 20 tokens, then 2 of 12 positioned apart
        x, rope, segments = x.reshape(-1, 64)[:104], (rope, rope_tables(torch.arange(12) * 2, 16)), ((4, 20), (2, 12))
    outs = []
    for block in (eager, compiled):
        xi = x.clone().requires_grad_()
        y = block(xi, rope, mask, causal, segments)
        y.square().mean().backward()
        outs.append((y, xi.grad, block.mlp.gate_up.weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_compile_trial_compiles_every_block_and_the_loss_in_place(tmp_path):
    cfg = resolve_config(small_trial(tmp_path, model={"adapter": {"kind": "mlp_attn", "n_heads": 2}}),
                         make_source(small_trial(tmp_path).data))
    module = LCLMTrial(cfg, 10)
    keys = list(module.model.state_dict())
    compile_trial(module)
    blocks = [m for m in module.model.modules() if isinstance(m, Block)]
    assert len(blocks) == 3 and all(b._compiled_call_impl is not None for b in blocks)  # encoder, adapter, decoder
    assert list(module.model.state_dict()) == keys  # checkpoints stay loadable by an eager model
    assert module.loss_sum is not loss_sum


def test_a_cuda_graph_trial_marks_every_training_and_validation_step_as_a_new_graph_iteration(tmp_path, monkeypatch):
    """`train.compile: cudagraphs` compiles in torch.compile's reduce-overhead mode, whose CUDA graph trees must be told
    where each step begins, or a step's graphs would overwrite outputs still in use. CPU has no CUDA graphs, so there
    the trial compiles plainly; forcing the mode runs the same wiring (inductor skips the graphs on CPU): the mode
    reaches the blocks and a mark precedes each training and validation step."""
    import lclab.trials.run as run

    cfg = small_trial(tmp_path, train={"compile": "cudagraphs"})
    assert (graph_mode(cfg, gpu=True), graph_mode(cfg, gpu=False)) == ("reduce-overhead", None)
    assert graph_mode(small_trial(tmp_path, train={"compile": True}), gpu=True) is None
    marks, modes, steps = [], [], []

    class Steps(L.Callback):
        def on_train_batch_start(self, *args):
            steps.append("train")

        def on_validation_batch_start(self, *args):
            steps.append("val")

    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(len(steps)))
    monkeypatch.setattr(run, "compile_trial", lambda module, mode: (modes.append(mode), compile_trial(module, mode)))
    monkeypatch.setattr(run, "graph_mode", lambda cfg, gpu: "reduce-overhead")
    result = run_trial(small_trial(tmp_path, train={"compile": "cudagraphs", "steps": 4, "val_every": 2}),
                       callbacks=[Steps()])
    assert modes == ["reduce-overhead"]
    assert steps.count("train") == 4 and steps.count("val") >= 2
    assert marks == list(range(len(steps)))  # one mark before each step, training and validation alike
    assert math.isfinite(result.metrics["val/loss_compressed"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_a_cuda_graph_trial_trains_and_validates_as_a_plainly_compiled_one(tmp_path):
    """On a GPU the graphs replay: a graph that read memory a later replay had overwritten would train on garbage."""
    def metrics(compile_):
        cfg = small_trial(tmp_path / str(compile_), train={"compile": compile_, "steps": 8, "val_every": 4, **SHARES})
        return {k: v for k, v in run_trial(cfg).metrics.items() if k.startswith("val/loss")}

    plain, graphs = metrics(True), metrics("cudagraphs")
    assert plain.keys() == graphs.keys() and all(math.isfinite(v) for v in graphs.values())
    for k in plain:  # bf16 kernels with atomics differ run to run in the last digits, nothing more
        assert graphs[k] == pytest.approx(plain[k], rel=1e-2), k


def test_the_embedding_skip_fades_out_over_its_share_of_the_steps_and_counts_in_the_loss(tmp_path):
    cfg = small_trial(tmp_path, train={"embedding_skip_frac": 0.5})
    module = LCLMTrial(cfg, 12)
    assert [module.embedding_skip(s) for s in (0, 3, 6, 9)] == [1.0, 0.5, 0.0, 0.0]
    assert LCLMTrial(small_trial(tmp_path), 12).embedding_skip(0) == 0.0  # off by default
    assert cfg.hash() != small_trial(tmp_path).hash()
    with pytest.raises(ConfigError, match="train.embedding_skip_frac"):
        small_trial(tmp_path, train={"embedding_skip_frac": 1.5})
    source = make_source(cfg.data)
    batch = compose(source.train_batch(0, 0, 8), cfg.train.composition(), 0, 0)
    with_skip = module.training_losses(batch)[1]["compressed"]  # global step 0: weight 1
    # a loop without a trainer passes its own step: at step 6 the curriculum has faded, as in a trial
    faded = module.training_losses(batch, step=6)[1]["compressed"]
    assert not torch.allclose(faded, with_skip)
    module.cfg.train.embedding_skip_frac = 0.0
    assert torch.allclose(module.training_losses(batch)[1]["compressed"], faded)
