import json
import math

import lightning as L
import pytest
import torch

from tests.conftest import small_trial
from lclab.trials import budget_steps, run_trial
from lclab.trials.metrics import loss_sum
from lclab.trials.data import make_source
from lclab.trials.run import QUALITY_PREFIXES, resolve_config


def quality(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith(QUALITY_PREFIXES)}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
                                        for x, y in zip(a.values(), (b[k] for k in a)))


def test_trial_reports_every_metric_and_writes_its_run_directory(tmp_path):
    result = run_trial(small_trial(tmp_path, data={"tasks": ["reconstruction", "span_recall", "kv_recall"],
                                                   "kv_pairs": 4, "span_len": 4}))
    m = result.metrics
    for key in ("val/loss_compressed", "val/loss_full", "val/loss_none", "val/gap_full", "val/gap_full_se",
                "val/gap_compressed_q1", "val/retention", "val/retention_status", "val/recon_loss", "val/recon_acc",
                "val/span_recall/exact_match", "val/kv_recall/acc_full", "val/reconstruction/acc",
                "params/encoder", "params/adapter", "params/decoder", "flops_per_token/encoder",
                "flops_per_token/full_context", "train/tokens_seen", "sys/tokens_per_s", "sys/peak_mem_mb", "sys/wall_s"):
        assert key in m, key
    assert m["train/tokens_seen"] == 12 * 8 * 32
    assert (result.run_dir / "checkpoints" / "last.ckpt").exists()
    assert json.loads((result.run_dir / "metrics.json").read_text())["train/steps"] == 12
    assert any((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path):
    a = run_trial(small_trial(tmp_path / "a")).metrics
    b = run_trial(small_trial(tmp_path / "b")).metrics
    c = run_trial(small_trial(tmp_path / "c", seed=1)).metrics
    assert same(quality(a), quality(b))
    assert quality(a)["val/loss_compressed"] != quality(c)["val/loss_compressed"]


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    full = run_trial(small_trial(tmp_path / "full", train={"full_context_share": 0.3, "reconstruction_share": 0.2}))

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 8:
                trainer.should_stop = True

    cfg = small_trial(tmp_path / "cut", train={"full_context_share": 0.3, "reconstruction_share": 0.2})
    stopped = run_trial(cfg, callbacks=[StopAt()])
    assert stopped.metrics["train/steps"] == 8
    resumed = run_trial(cfg, resume=True)
    assert resumed.metrics["train/steps"] == 12
    assert same(quality(full.metrics), quality(resumed.metrics))


def test_resuming_a_run_that_never_saved_says_it_trains_from_step_0(tmp_path, capsys):
    # e.g. `lclab train --resume --set train.steps=...`: a changed budget is a new configuration, with no checkpoint
    cfg = small_trial(tmp_path)
    first = run_trial(cfg, resume=True)
    assert f"resume: no checkpoint in {first.run_dir}" in capsys.readouterr().out
    assert first.metrics["meta/resumed_from_step"] == 0
    again = run_trial(cfg, resume=True)
    assert "no checkpoint" not in capsys.readouterr().out and again.metrics["meta/resumed_from_step"] == 12


def test_checkpoints_load_with_weights_only_and_include_the_final_step(tmp_path):
    result = run_trial(small_trial(tmp_path, train={"checkpoint_every": 5}))  # 12 steps: saves at 5, 10 and the end
    state = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 12 and "state_dict" in state


def test_budgets_convert_to_steps(tmp_path):
    cfg = small_trial(tmp_path, train={"budget_tokens": 8 * 32 * 10.5})
    assert budget_steps(cfg) == 11
    cfg = small_trial(tmp_path, train={"budget_flops": 1e9, "none_share": 0})  # every row compressed
    source = make_source(cfg.data)
    resolved = resolve_config(cfg, source)
    from lclab.models import forward_flops
    per_step = 3 * 8 * forward_flops(resolved.model, 16, 16)["total"]
    assert budget_steps(resolved) == math.ceil(1e9 / per_step)


def test_overfits_a_fixed_batch(tmp_path):
    """Learning is real: continuation loss on one batch falls by more than half; reconstruction beats chance."""
    from lclab.models import LCLM

    cfg = small_trial(tmp_path, model={"encoder": {"n_layers": 1, "d_model": 64, "n_heads": 2, "window": 16},
                                       "decoder": {"n_layers": 2, "d_model": 64, "n_heads": 2}})
    source = make_source(cfg.data)
    cfg = resolve_config(cfg, source)
    torch.manual_seed(0)
    model = LCLM(cfg.model)
    batch = source.train_batch(0, 0, 8)
    everything = torch.ones_like(batch["context"], dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    continuation = []
    for _ in range(150):
        loss = loss_sum(model(batch["context"], batch["text"], "compressed"), batch["text"], batch["loss_mask"])
        loss = loss / batch["loss_mask"].sum()
        recon_logits = model(batch["context"], batch["context"], "reconstruct")
        loss_total = loss + loss_sum(recon_logits, batch["context"], everything) / everything.sum()
        opt.zero_grad()
        loss_total.backward()
        opt.step()
        continuation.append(loss.item())
    recon_acc = (recon_logits.argmax(-1) == batch["context"]).float().mean().item()
    assert continuation[-1] < 0.5 * continuation[0]
    assert recon_acc > 3 / 16  # chance is 1/16


def test_staged_schedule_freezes_components_until_their_stage(tmp_path):
    cfg = small_trial(tmp_path, train={"stages": "staged", "stage_fracs": [0.25, 0.25], "steps": 12})
    result = run_trial(cfg)
    lrs = {}
    for group, lam in zip(result.module.optimizers().param_groups,
                          result.module.lr_schedulers().lr_lambdas):
        lrs[group["name"]] = [lam(s) > 0 for s in (0, 3, 6)]
    assert lrs == {"adapter": [True] * 3, "encoder": [False, True, True], "decoder": [False, False, True]}


def test_warm_decoder_is_trained_once_and_reused(tmp_path, monkeypatch):
    from lclab.trials.corpus import cache_dir

    monkeypatch.setenv("LCLAB_CACHE", str(tmp_path / "cache"))
    warm = {"decoder_init": "warm", "warm_steps": 6, "lr_decoder": 0.0}  # lr 0: the trial keeps the warm decoder
    first = run_trial(small_trial(tmp_path, train=warm))
    cached = list((cache_dir() / "warm").glob("decoder-*.pt"))
    assert len(cached) == 1
    state = torch.load(cached[0], weights_only=True)
    for name, tensor in first.module.model.decoder.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    run_trial(small_trial(tmp_path / "b", model={"ratio": 8, "pooling": "max"}, train=warm))
    assert list((cache_dir() / "warm").glob("decoder-*.pt")) == cached  # same decoder + data: reused


def test_a_warm_decoder_trained_at_another_thread_count_is_not_reused(tmp_path, monkeypatch):
    """CPU results depend on the thread count, and a sweep's workers (1 thread each on 2 cores) and a lone trial
    (torch's default) both leave train.threads at 0: each must train and read its own warm decoder, or a trial's
    numbers would depend on which of them ran first."""
    from lclab.trials.corpus import cache_dir

    monkeypatch.setenv("LCLAB_CACHE", str(tmp_path / "cache"))
    warm = {"decoder_init": "warm", "warm_steps": 6, "threads": 0}
    before = torch.get_num_threads()
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            run_trial(small_trial(tmp_path / str(n), train=warm))
    finally:
        torch.set_num_threads(before)
    assert len(list((cache_dir() / "warm").glob("decoder-*.pt"))) == 2  # one per thread count, the second 1 reused


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_an_unreadable_checkpoint_is_named_set_aside_and_the_trial_restarts(tmp_path, damage, capsys):
    cfg = small_trial(tmp_path)
    full = run_trial(cfg)
    last = full.run_dir / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 5] if damage == "truncated" else b"")
    again = run_trial(cfg, resume=True)
    problem = again.metrics["meta/resume_problem"]
    assert str(last) in problem and "restarts from step 0" in problem and str(last) in capsys.readouterr().out
    assert again.metrics["meta/resumed_from_step"] == 0 and again.metrics["train/steps"] == 12
    assert same(quality(full.metrics), quality(again.metrics))  # a clean restart trains the same trial
    assert (last.parent / "last.ckpt.unreadable").exists() and torch.load(last, weights_only=True)["global_step"] == 12


def test_checkpoints_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from lclab.trials.checkpointing import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1, "w": torch.zeros(1000)}, path)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 2, "w": torch.ones(1000)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # and no temporary file is left behind


def test_peak_memory_is_measured_per_trial(tmp_path):
    from lclab.trials.run import peak_memory_mb

    big = torch.ones(512 * 2**20, dtype=torch.uint8) + 1  # 1 GB touched by this process before the trial
    del big
    before = peak_memory_mb(gpu=False)  # the process's peak so far (what ru_maxrss reported for every later trial)
    peak = run_trial(small_trial(tmp_path)).metrics["sys/peak_mem_mb"]
    assert 0 < peak < before - 512  # the trial's own peak, not the process's lifetime maximum


def test_bf16_mixed_precision_trains_with_fused_adamw_and_clips(tmp_path):
    """bf16-mixed is what every GPU trial runs: Lightning's clipping refused the fused AdamW there and the trial
    stopped at its first step. On CPU the same precision plugin runs, so the test fails for that bug here too."""
    norms = []

    class NormAtStep(L.Callback):  # the gradient norm the step used (Lightning runs the closure inside step)
        def on_train_start(self, trainer, module):
            def record(optimizer, *_):
                grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
                norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
            trainer.optimizers[0].register_step_post_hook(record)

    result = run_trial(small_trial(tmp_path, train={"precision": "bf16", "grad_clip": 1e-3, "steps": 4}),
                       callbacks=[NormAtStep()])
    assert result.module.trainer.precision == "bf16-mixed"
    assert len(norms) == 4 and all(0 < n <= 1e-3 * 1.001 for n in norms)


@pytest.mark.parametrize("stop_at", [None, 7])
def test_losses_reach_tensorboard_at_the_steps_and_values_that_logging_every_step_gave(tmp_path, monkeypatch, stop_at):
    """The module logs its losses only on the steps Lightning writes (each `self.log` costs host time): the event
    files must hold what they held when it logged every step, a trial stopped by a callback included."""
    import pandas as pd

    from lclab.analysis.curves import learning_curves, tags
    from lclab.trials.module import LCLMTrial

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == stop_at:
                trainer.should_stop = True

    def curves(name):
        cfg = small_trial(tmp_path / name, train={"log_every": 3, "full_context_share": 0.3,
                                                  "reconstruction_share": 0.2})
        run_dir = run_trial(cfg, callbacks=[StopAt()] if stop_at else []).run_dir
        frame = pd.DataFrame({"study": ["s"], "number": [0], "run_dir": [str(run_dir)]})
        return {tag: learning_curves(frame, tag)[["step", "value"]].values.tolist()
                for tag in tags(run_dir) if tag.startswith("train/")}

    sparse = curves("sparse")

    def log_every_step(self, outputs, batch, batch_idx):  # the module's old logging: every step, Lightning picks
        losses = dict(self.step_losses)
        self.log("train/loss", losses.pop("train/loss"))
        self.log_dict(losses)

    monkeypatch.setattr(LCLMTrial, "on_train_batch_end", log_every_step)
    every = curves("every")
    assert {"train/loss", "train/loss_compressed", "train/loss_full", "train/loss_reconstruct"} <= set(every)
    assert sparse == every
    assert [step for step, _ in every["train/loss"]] == ([2, 5, 6] if stop_at else [2, 5, 8, 11])
