"""The GPU benchmark's code path, run on CPU at the tiny config: what a user with a GPU runs must not crash there."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import small_trial

ROOT = Path(__file__).parents[1]


def test_the_mfu_benchmark_runs_end_to_end_and_reports_every_part(tmp_path):
    # as a GPU machine without network runs it (benchmarks/mfu_offline.sh): lclab installed from a copy of the tree
    # into a throwaway folder, every file in one results folder; here no wheel is missing
    clone, out, wheels = tmp_path / "lclab", tmp_path / "out", tmp_path / "wheels"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    wheels.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # python3: this one
    r = subprocess.run(["bash", "benchmarks/mfu_offline.sh", wheels, out, "abc1234", "--config", "configs/trial/tiny.yaml",
                        "--steps", "3", "--repeats", "1", "--warmup", "1", "--reference-layers", "1", "--name", "mfu_cpu",
                        "--set", "train.warm_steps=3"],
                       cwd=clone, env=env, capture_output=True, text=True, timeout=900)  # the suite's cache (conftest)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((out / "mfu_cpu.json").read_text())
    assert result["machine"]["commit"] == "abc1234" and "wrote" in (out / "mfu.log").read_text()
    assert not (out / "mfu_cpu.partial.json").exists() and not list((clone / "benchmarks" / "results").glob("mfu_cpu*"))
    assert not Path(result["env"]["lclab"]).is_relative_to(ROOT)  # the throwaway install, not this checkout's
    res = result["results"]
    assert res["mix"]["composition"] == {"compressed": 27, "full": 3, "none": 2}  # tiny: 10% raw, 5% no context, every step
    assert {"compressed", "full", "components", "lightning", "nanogpt", "gemm"} <= set(res)
    assert {"mix", "references", "lightning", "components", "alone:full"} <= set(result["part_seconds"])  # to plan a GPU run
    assert res["mix"]["flops_per_step_causal_half"] < res["mix"]["flops_per_step"]
    assert res["mix"]["recompiles_while_timed"] == 0 and len(res["nanogpt"]) == 2
    assert set(res["components"]["forward_s"]) == {"encoder", "adapter", "decoder", "head"}
    assert result["env"]["attention"] == "sdpa" and result["env"]["compile"] is False


def test_the_bare_loop_fades_the_curriculum_as_a_trial_does(tmp_path, monkeypatch):
    """Without a trainer the module's global step stays 0: a bare loop that did not pass its own step would add the
    curriculum's embeddings at full weight on every step, work the trial stops doing after its share of the steps."""
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mfu import BareTrial

    from lclab.trials.data import make_source
    from lclab.trials.run import resolve_config

    cfg = small_trial(tmp_path, train={"embedding_skip_frac": 0.5, "steps": 4, "decoder_init": "scratch"})
    cfg = resolve_config(cfg, make_source(cfg.data))
    bare = BareTrial(cfg, torch.device("cpu"), compile_=False, total_steps=4)
    weights, schedule = [], bare.module.embedding_skip
    monkeypatch.setattr(bare.module, "embedding_skip", lambda step: weights.append(schedule(step)) or weights[-1])
    for batch in bare.batches(cfg.train.composition(), n=3):
        bare.step(batch)
    assert weights == [1.0, 0.5, 0.0]


def test_the_interleaved_bare_loop_does_the_trials_work_step_for_step(tmp_path):
    """trial_overhead's bare blocks run inside the trial: they must train the same model on the same batches with the
    same optimizer, schedule, clipping and curriculum, so that both end with the same weights, and pair block
    against block."""
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from trial_overhead import Interleaved

    from lclab.trials import run_trial

    cfg = small_trial(tmp_path, train={"steps": 9, "embedding_skip_frac": 0.5, "full_context_share": 0.3,
                                       "reconstruction_share": 0.2, "grad_clip": 0.01})
    probe = Interleaved(cfg, block=3)
    trial = run_trial(cfg, callbacks=[probe]).module
    assert probe.bare.steps_done == 9 and [len(b) for b in probe.bare_s] == [3, 3, 3]
    assert [len(t) for t in probe.trial_s] == [2, 3, 3, 0] and len(probe.pairs()) == 2
    bare = probe.bare.module.state_dict()
    for name, value in trial.state_dict().items():
        torch.testing.assert_close(value, bare[name], rtol=0, atol=0, msg=name)


def test_the_cuda_graph_agreement_check_runs_and_finds_a_deterministic_cpu_run_identical(tmp_path):
    """The GPU run checks that CUDA graphs train as plain compiled blocks do; its code path runs here (inductor skips
    the graphs on CPU), where every run is deterministic: any gap would be the check's own error."""
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mfu import graph_agreement

    from lclab.trials.data import make_source
    from lclab.trials.run import resolve_config

    cfg = small_trial(tmp_path, train={"steps": 3})
    cfg = resolve_config(cfg, make_source(cfg.data))
    result = graph_agreement(cfg, torch.device("cpu"), cfg.train.composition(), steps=3)
    assert result == {"steps": 3, "plain_vs_plain": {"loss": 0.0, "weights": 0.0},
                      "graphs_vs_plain": {"loss": 0.0, "weights": 0.0}}
