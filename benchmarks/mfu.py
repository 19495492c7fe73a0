"""Model FLOPs utilisation of a trial on one GPU, with the references that make the number mean something.
Targets (issue 13, `small` on one H100): the mix >= 40% MFU (PaLM convention), >= 0.9x the FLOP/s of a compiled
nanoGPT-style decoder at the trial's decoder lengths, the Lightning trial >= 0.97x the bare loop.

In one process on one device:
  trial    the trial's own step (`LCLMTrial.training_losses`, clipping, fused AdamW, bf16 autocast, compiled blocks)
           driven by a bare loop: the mix as trained, then each mode alone on the whole batch (per-mode MFU, memory)
  lightning the same trial through `run_trial` (Lightning), timed per step the same way
  nanogpt  a compiled 12x768 GPT (LayerNorm, GELU MLP, SDPA causal, fused AdamW) at the same tokens per step, at the
           trial's compressed and full-context decoder lengths: the realistic ceiling
  gemm     one cuBLAS bf16 GEMM at the trial's largest linear shape: the achievable peak
  variants the mix at twice the batch and with CUDA graphs (compile mode reduce-overhead): is the mix launch-bound?
           With CUDA graphs also the Lightning trial (`train.compile: cudagraphs`), and whether graphs train as plain
           compiled blocks do: both bare loops from the same weights over the same batches, against the gap between
           two plain runs (the GPU's own nondeterminism)

Parts run in order of importance (mix, references, Lightning, CUDA graphs, profile, modes alone, xformers, batch x2),
each timed (`part_seconds`) and guarded: one that fails is named under `errors` and the rest still run;
NAME.partial.json is rewritten after each part, so a run cut short keeps what it measured (`--skip` leaves parts out).

Steps are timed with CUDA events recorded after every step and read once per repeat (no per-step sync), after a
warm-up in which every shape has run and compiled (compile time reported apart); median and p10/p90 over `--repeats`
repeats of `--steps` steps. FLOPs are the analytic count of what each step executes (the fixed composition; exact
against torch.utils.flop_counter in tests/trials/test_step.py), as MFU = 3 x forward FLOPs / time / dense bf16 peak,
with attention counted whole (PaLM) and with causal attention halved.

    python benchmarks/mfu.py [--config configs/trial/small.yaml] [--steps 100] [--repeats 3] [--peak-tflops X] [--skip ...]
    python benchmarks/mfu.py --config configs/trial/tiny.yaml --steps 4 --repeats 1   # CPU: the code path only
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import lightning as L
import torch
import torch._dynamo
import torch.nn as nn
import torch.nn.functional as F

import lclab
from _common import RESULTS, report
from lclab.models import MODES
from lclab.models.config import swiglu_hidden
from lclab.trials import load_config, run_trial
from lclab.trials.compile import compile_trial, wants_compile
from lclab.trials.data import make_source, step_batch
from lclab.trials.module import LCLMTrial
from lclab.trials.run import resolve_config, train_flops_per_step

ROOT = Path(__file__).parents[1]
# dense bf16 tensor-core peaks (TFLOP/s), most specific name first: the SXM, PCIe and NVL parts differ by up to 30%
PEAKS = [("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4), ("H200 NVL", 835.0), ("H200", 989.4),
         ("GH200", 989.4), ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0)]


class Clock:
    """Per-step stamps without a host sync: CUDA events on a GPU (read once at the end), perf_counter on CPU."""

    def __init__(self, gpu: bool):
        self.gpu, self.stamps = gpu, []

    def stamp(self):
        if self.gpu:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.stamps.append(event)
        else:
            self.stamps.append(time.perf_counter())

    def step_seconds(self) -> list[float]:
        if self.gpu:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self.stamps, self.stamps[1:])]
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


def sync(gpu: bool):
    if gpu:
        torch.cuda.synchronize()


def quantiles(xs: list[float]) -> dict:
    q = statistics.quantiles(xs, n=10) if len(xs) > 1 else [xs[0]] * 9
    return {"median_s": statistics.median(xs), "p10_s": q[0], "p90_s": q[-1]}


def unique_graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


# ----------------------------------------------------------------------------------------------------------- trial
class BareTrial:
    """The trial's step without Lightning: the same module, losses, clipping, optimizer and schedule."""

    def __init__(self, cfg, device, compile_: bool, total_steps: int = 10**6, mode: str | None = None):
        self.cfg, self.device, self.gpu = cfg, device, device.type == "cuda"
        self.source = make_source(cfg.data)
        torch.manual_seed(cfg.seed)
        self.module = LCLMTrial(cfg, total_steps).to(device)  # total_steps shapes the LR schedule only
        if compile_:
            compile_trial(self.module, mode)
        # CUDA graph trees: a step's graph outputs may be overwritten from the next step on
        self.mark_step = torch.compiler.cudagraph_mark_step_begin if mode == "reduce-overhead" else lambda: None
        opt = self.module.configure_optimizers()
        self.optimizer, self.scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.gpu)
        self.steps_done = 0

    def batches(self, composition: dict[str, int], n: int = 8) -> list[dict]:
        """A few distinct batches kept on the host (pinned): each step copies one over, as a trial does."""
        out = []
        for step in range(n):
            b = step_batch(self.source, self.cfg.seed, step, self.cfg.train.batch_size, composition)
            out.append({k: v.pin_memory() if self.gpu and torch.is_tensor(v) else v for k, v in b.items()})
        return out

    def step(self, batch: dict) -> torch.Tensor:
        self.mark_step()
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with self.autocast:
            # without a trainer the module's global step stays 0: the curriculum (tiny) would never fade
            loss = self.module.training_losses(batch, self.steps_done)[0]
        loss.backward()
        self.module.configure_gradient_clipping(self.optimizer, self.cfg.train.grad_clip)  # the trial's own clipping
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.steps_done += 1
        return loss.detach()  # an eager sum of the compiled losses: no graph overwrites it

    def time(self, composition: dict[str, int], warmup: int, steps: int, repeats: int) -> dict:
        batches = self.batches(composition)
        graphs, started = unique_graphs(), time.perf_counter()
        for i in range(warmup):  # every shape runs (and compiles) here
            self.step(batches[i % len(batches)])
        sync(self.gpu)
        compile_s = time.perf_counter() - started
        if self.gpu:
            torch.cuda.reset_peak_memory_stats()
        graphs_after_warmup, times = unique_graphs(), []
        for _ in range(repeats):
            clock = Clock(self.gpu)
            clock.stamp()
            for i in range(steps):
                self.step(batches[i % len(batches)])
                clock.stamp()
            times += clock.step_seconds()
        return {**quantiles(times), "warmup_s": compile_s, "graphs_compiled": graphs_after_warmup - graphs,
                "recompiles_while_timed": unique_graphs() - graphs_after_warmup,
                "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if self.gpu else float("nan")}


def component_profile(bare: BareTrial, composition: dict[str, int], steps: int = 5) -> dict:
    """Device time per component from torch.profiler, with record_function ranges put on from outside the model,
    the GPU's idle share over the profiled steps, and the attention kernels that ran."""
    from torch.profiler import ProfilerActivity, profile, record_function

    model, ranges = bare.module.model, []

    def wrap(module: nn.Module, name: str):
        def enter(*_):
            ranges.append(record_function(name))
            ranges[-1].__enter__()

        def leave(*_):
            ranges.pop().__exit__(None, None, None)

        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)

    for name, part in (("encoder", model.encoder), ("adapter", model.adapter), ("decoder", model.decoder),
                       ("head", model.decoder.head)):
        wrap(part, f"lclab/{name}")
    batches = bare.batches(composition)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bare.gpu else [])
    sync(bare.gpu)
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        for i in range(steps):
            bare.step(batches[i % len(batches)])
        sync(bare.gpu)
    wall = time.perf_counter() - started
    events = prof.key_averages()
    attr = "device_time_total" if bare.gpu else "cpu_time_total"
    per = {e.key.removeprefix("lclab/"): getattr(e, attr) / 1e6 / steps for e in events if e.key.startswith("lclab/")}
    optimizer = sum(getattr(e, attr) for e in events if "Optimizer.step" in e.key or "fused_adam" in e.key) / 1e6 / steps
    h2d = sum(getattr(e, attr) for e in events if "Memcpy HtoD" in e.key) / 1e6 / steps
    kernels = [e for e in prof.events() if bare.gpu and e.device_type.name == "CUDA"]
    busy = sum(e.device_time for e in kernels) / 1e6 if kernels else float("nan")
    names = sorted({e.name for e in kernels if any(s in e.name.lower() for s in
                                                   ("flash", "cudnn", "efficient", "fmha", "triton", "flex"))})
    return {"forward_s": per, "optimizer_s": optimizer, "h2d_s": h2d,
            "gpu_idle_share": 1 - busy / wall if kernels else float("nan"), "attention_kernels": names[:40]}


# ----------------------------------------------------------------------------------------------------- references
class GPT(nn.Module):
    """nanoGPT's model at 12 x 768: learned positions, LayerNorm, causal SDPA, GELU MLP, tied head."""

    def __init__(self, vocab: int, seq: int, d: int = 768, layers: int = 12, heads: int = 12):
        super().__init__()
        self.heads = heads
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(nn.ModuleDict({"ln1": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d), "proj": nn.Linear(d, d),
                                                   "ln2": nn.LayerNorm(d), "fc": nn.Linear(d, 4 * d), "out": nn.Linear(4 * d, d)})
                                    for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            q, k, v = b["qkv"](b["ln1"](x)).view(B, T, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            x = x + b["proj"](F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, -1))
            x = x + b["out"](F.gelu(b["fc"](b["ln2"](x))))
        return F.cross_entropy(self.head(self.ln(x)).flatten(0, 1).float(), idx.flatten())

    def flops_per_token(self, T: int, causal_half: bool) -> float:
        """6N (non-embedding matmuls and head) + attention, per token, for training (PaLM appendix B)."""
        d, layers = self.ln.normalized_shape[0], len(self.blocks)
        matmul = layers * 12 * d * d + d * self.head.out_features
        return 6 * matmul + 6 * layers * 2 * T * d * (0.5 if causal_half else 1)


def nanogpt(vocab: int, tokens_per_step: int, seq: int, device, gpu: bool, warmup: int, steps: int, repeats: int,
            layers: int) -> dict:
    torch.manual_seed(0)
    B = max(1, round(tokens_per_step / seq))
    model = GPT(vocab, seq, layers=layers).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), fused=True)
    step_fn = torch.compile(model) if gpu else model
    idx = torch.randint(0, vocab, (B, seq), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu)

    def step():
        with autocast:
            loss = step_fn(idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    started = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(gpu)
    compile_s, times = time.perf_counter() - started, []
    for _ in range(repeats):
        clock = Clock(gpu)
        clock.stamp()
        for _ in range(steps):
            step()
            clock.stamp()
        times += clock.step_seconds()
    q = quantiles(times)
    return {"seq": seq, "batch": B, "tokens_per_step": B * seq, **q, "warmup_s": compile_s,
            "flops_per_step": B * seq * model.flops_per_token(seq, False),
            "flops_per_step_causal_half": B * seq * model.flops_per_token(seq, True)}


def gemm(m: int, k: int, n: int, device, gpu: bool, repeats: int = 50) -> dict:
    dtype = torch.bfloat16 if gpu else torch.float32
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    for _ in range(5):
        a @ b
    clock = Clock(gpu)
    clock.stamp()
    for _ in range(repeats):
        a @ b
        clock.stamp()
    t = statistics.median(clock.step_seconds())
    return {"shape": [m, k, n], "median_s": t, "tflops": 2 * m * k * n / t / 1e12}


# ------------------------------------------------------------------------------------------------------ lightning
class StepClock(L.Callback):
    def __init__(self, gpu: bool):
        self.clock = Clock(gpu)

    def on_train_batch_end(self, *args):
        self.clock.stamp()


def lightning_steps(cfg_path: str, overrides: list[str], warmup: int, steps: int, gpu: bool) -> dict:
    timer = StepClock(gpu)
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(cfg_path, [*overrides, f"output_dir={out}", "progress=false", "train.budget_tokens=null",
                                     f"train.steps={warmup + steps}", "train.val_every=0", "data.val_examples=16",
                                     f"train.log_every={steps}", f"train.checkpoint_every={warmup + steps}"])
        run_trial(cfg, callbacks=[timer])
    return quantiles(timer.clock.step_seconds()[warmup:])


def graph_agreement(cfg, device, composition: dict[str, int], steps: int = 10) -> dict:
    """Whether CUDA graphs train as plain compiled blocks do: bare loops from the same initial weights over the same
    batches, plain twice (the gap nondeterministic kernels leave) and with graphs once; the largest gap in any step's
    loss and in any weight after `steps` steps, relative to its scale. A graph reading memory a later replay overwrote
    shows as a gap far beyond plain's own."""
    runs = []
    for mode in (None, None, "reduce-overhead"):
        bare = BareTrial(cfg, device, True, mode=mode)
        batches = bare.batches(composition)
        losses = torch.stack([bare.step(batches[i % len(batches)]) for i in range(steps)]).float()
        runs.append((losses, [p.detach().float().clone() for p in bare.module.parameters()]))
        del bare, batches

    def gap(a, b) -> dict:
        weights = max(((x - y).abs().max() / y.abs().max().clamp_min(1e-12)).item() for x, y in zip(a[1], b[1]))
        return {"loss": ((a[0] - b[0]).abs() / b[0].abs()).max().item(), "weights": weights}

    return {"steps": steps, "plain_vs_plain": gap(runs[1], runs[0]), "graphs_vs_plain": gap(runs[2], runs[0])}


# ----------------------------------------------------------------------------------------------------------- main
class Sections:
    """Runs the benchmark's parts in order of importance; a part that fails is named with its error and the others
    still run, and the JSON is rewritten after each part, so a run cut short by its time limit keeps what it measured."""

    def __init__(self, path: Path, payload: dict, skip: list[str]):
        self.path, self.payload, self.skip = path, payload, set(skip)
        payload.setdefault("errors", {})
        payload.setdefault("part_seconds", {})
        payload["skipped"] = sorted(self.skip)

    def run(self, name: str, fn):
        if name.split(":")[0] in self.skip:
            return
        started = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        try:
            fn()
            print(f"[{name}] done in {time.perf_counter() - started:.1f} s", flush=True)
        except Exception as e:  # a benchmark keeps going: one part's failure is reported, not fatal
            traceback.print_exc()
            self.payload["errors"][name] = f"{type(e).__name__}: {e}"
        self.payload["part_seconds"][name] = round(time.perf_counter() - started, 1)  # to plan a run inside a time limit
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.payload, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs/trial/small.yaml"))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--name", default="mfu")
    ap.add_argument("--skip", nargs="*", default=[], choices=["references", "lightning", "components", "alone", "xformers",
                    "batch x2", "cudagraphs"], help="parts not to run (the mix always runs)")
    ap.add_argument("--reference-layers", type=int, default=12, help="nanoGPT depth (12: GPT-2 small; fewer for a CPU smoke run)")
    a = ap.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    name = torch.cuda.get_device_name() if gpu else "cpu"
    peak = a.peak_tflops or next((v for k, v in PEAKS if k in name), None)
    env = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if gpu else None, "peak_bf16_tflops": peak,
           "sms": torch.cuda.get_device_properties(0).multi_processor_count if gpu else None,
           "lclab": str(Path(lclab.__file__).parent)}  # the installed lclab that ran (a checkout's, or mfu_offline.sh's)
    cfg = load_config(a.config, [*a.overrides, "progress=false", "train.budget_tokens=null"])
    source = make_source(cfg.data)
    cfg = resolve_config(cfg, source)
    compile_ = wants_compile(cfg, gpu)
    env |= {"attention": cfg.model.attention, "compile": compile_, "config": a.config, "overrides": a.overrides}
    print(env, flush=True)
    d, t = cfg.data, cfg.train
    composition = t.composition()
    tokens_per_step = t.batch_size * (d.context_len + d.text_len)
    T, S = d.context_len, d.text_len
    dec_len = {m: mode.decoder_len(T, mode.scored_len(T, S), cfg.model.ratio) for m, mode in MODES.items()}
    results: dict = {}
    payload = {"env": env, "results": results,
               "formula": "MFU = 3 x analytic forward FLOPs of the rows each step executes / median step time / dense "
                          "bf16 peak; PaLM counts the whole score matrix, causal/2 half of it for causal attention",
               "targets": {"mix_mfu": 0.40, "trial_over_nanogpt": 0.9, "lightning_over_bare": 0.97}}
    sections = Sections(RESULTS / f"{a.name}.partial.json", payload, a.skip)

    def measure(label: str, comp: dict[str, int], timing: dict, of=cfg):
        c = dataclasses.replace(of, train=dataclasses.replace(of.train, **shares_for(comp, of.train.batch_size)))
        tokens = of.train.batch_size * (d.context_len + d.text_len)
        flops, flops_half = train_flops_per_step(c), train_flops_per_step(c, causal_half=True)
        s = timing["median_s"]
        positions = sum(rows * dec_len[m] for m, rows in comp.items())
        results[label] = {**timing, "composition": comp, "flops_per_step": flops, "flops_per_step_causal_half": flops_half,
                          "mfu": flops / s / (peak * 1e12) if peak else float("nan"),
                          "mfu_causal_half": flops_half / s / (peak * 1e12) if peak else float("nan"),
                          "tokens_per_s": tokens / s, "decoder_positions_per_s": positions / s,
                          "tflops_per_s": flops / s / 1e12}
        print(label, {k: v for k, v in results[label].items() if k in ("median_s", "mfu", "tflops_per_s", "peak_mem_gb")},
              flush=True)

    bare = BareTrial(cfg, device, compile_)
    sections.run("mix", lambda: measure("mix", composition, bare.time(composition, a.warmup, a.steps, a.repeats)))

    def references():
        results["nanogpt"] = [nanogpt(cfg.model.vocab_size, tokens_per_step, seq, device, gpu, a.warmup, a.steps,
                                      a.repeats, a.reference_layers) for seq in sorted({dec_len["compressed"], dec_len["full"]})]
        for ref in results["nanogpt"]:
            ref["tflops_per_s"] = ref["flops_per_step"] / ref["median_s"] / 1e12
            ref["mfu"] = ref["tflops_per_s"] / peak if peak else float("nan")
            ref["mfu_causal_half"] = ref["flops_per_step_causal_half"] / ref["median_s"] / (peak * 1e12) if peak else float("nan")
        results["trial_over_nanogpt"] = results["mix"]["tflops_per_s"] / max(r["tflops_per_s"] for r in results["nanogpt"])
        biggest = max(composition, key=lambda m: dec_len[m] * composition[m])
        dec = cfg.model.decoder  # the largest linear: the decoder's SwiGLU gate/up over the longest mode's rows
        results["gemm"] = gemm(composition[biggest] * dec_len[biggest], dec.d_model,
                               2 * swiglu_hidden(dec.d_model, dec.mlp_ratio), device, gpu)

    sections.run("references", references)

    def lightning(label: str, bare_label: str, overrides: tuple[str, ...] = ()):
        """The Lightning trial's step, with its ratio to the bare loop's under `bare_label`."""
        light = lightning_steps(a.config, [*a.overrides, *overrides], a.warmup, a.steps, gpu)
        results[label] = light | {"over_bare": results[bare_label]["median_s"] / light["median_s"]}

    sections.run("lightning", lambda: lightning("lightning", "mix"))
    if gpu and compile_:  # what would lift a launch-bound mix most (mfu_variants.json): CUDA graphs, and are they right
        sections.run("cudagraphs", lambda: measure("mix, CUDA graphs", composition, BareTrial(
            cfg, device, compile_, mode="reduce-overhead").time(composition, a.warmup, a.steps, a.repeats)))
        sections.run("cudagraphs:lightning", lambda: lightning("lightning, CUDA graphs", "mix, CUDA graphs",
                                                                ("train.compile=cudagraphs",)))
        sections.run("cudagraphs:agreement", lambda: results.__setitem__(
            "cudagraphs_agreement", graph_agreement(cfg, device, composition)))
    sections.run("components", lambda: results.__setitem__("components", component_profile(bare, composition)))
    for mode in composition:  # each mode alone on the whole batch: per-mode MFU and memory
        alone = {mode: t.batch_size}
        sections.run(f"alone:{mode}", lambda: measure(mode, alone, bare.time(alone, a.warmup, max(10, a.steps // 3), a.repeats)))
    if gpu and cfg.model.attention != "xformers" and importlib.util.find_spec("xformers"):  # side by side, by name
        def xformers():
            xcfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attention="xformers"))
            measure("mix, xformers", composition, BareTrial(xcfg, device, compile_).time(composition, a.warmup, a.steps,
                                                                                          a.repeats))
        sections.run("xformers", xformers)
    if gpu and compile_:  # twice the rows per mode: a launch-bound step gains
        def doubled():
            c = dataclasses.replace(cfg, train=dataclasses.replace(t, batch_size=2 * t.batch_size))
            measure("mix, batch x2", c.train.composition(),
                    BareTrial(c, device, compile_).time(c.train.composition(), a.warmup, a.steps // 2, a.repeats), of=c)
        sections.run("batch x2", doubled)

    rows = []
    for label in ["mix", *composition, "mix, xformers", "mix, batch x2", "mix, CUDA graphs"]:
        if label in results:
            r = results[label]
            rows.append([label, str(r["composition"]), r["median_s"] * 1e3, r["p10_s"] * 1e3, r["p90_s"] * 1e3,
                         r["tflops_per_s"], r["mfu"], r["mfu_causal_half"], r["tokens_per_s"], r["peak_mem_gb"],
                         r["recompiles_while_timed"]])
    for ref in results.get("nanogpt", []):
        rows.append([f"nanogpt T={ref['seq']}", f"batch {ref['batch']}", ref["median_s"] * 1e3, ref["p10_s"] * 1e3,
                     ref["p90_s"] * 1e3, ref["tflops_per_s"], ref["mfu"], ref["mfu_causal_half"],
                     ref["tokens_per_step"] / ref["median_s"], float("nan"), ""])
    for label in ("lightning", "lightning, CUDA graphs"):
        if label in results and "mix" in results:
            light = results[label]
            rows.append([label.replace("lightning", "lightning trial"), str(composition), light["median_s"] * 1e3,
                         light["p10_s"] * 1e3, light["p90_s"] * 1e3,
                         results["mix"]["flops_per_step"] / light["median_s"] / 1e12, float("nan"), float("nan"),
                         tokens_per_step / light["median_s"], float("nan"), ""])
    if "gemm" in results:
        g = results["gemm"]
        rows.append(["cuBLAS GEMM", str(g["shape"]), g["median_s"] * 1e3, float("nan"), float("nan"), g["tflops"],
                     g["tflops"] / peak if peak else float("nan"), float("nan"), float("nan"), float("nan"), ""])
    report(a.name, ["run", "rows per mode", "median ms", "p10 ms", "p90 ms", "TFLOP/s", "MFU (PaLM)", "MFU (causal/2)",
                    "tokens/s", "peak GB", "recompiles"], rows, payload)
    sections.path.unlink(missing_ok=True)
    if "components" in results:
        comp = results["components"]
        print("per-step device time by component (s):", {k: round(v, 4) for k, v in comp["forward_s"].items()},
              f"optimizer {comp['optimizer_s']:.4f} h2d {comp['h2d_s']:.4f} idle share {comp['gpu_idle_share']:.3f}")
        print("attention kernels:", comp["attention_kernels"] or "(CPU: none)")
    if "trial_over_nanogpt" in results:
        print(f"trial FLOP/s over nanoGPT: {results['trial_over_nanogpt']:.3f}")
    for label in ("lightning", "lightning, CUDA graphs"):
        if label in results:
            print(f"{label}: Lightning over bare loop {results[label]['over_bare']:.3f}")
    if "cudagraphs_agreement" in results:
        print("CUDA graphs against plain compiled blocks (largest relative gap):", results["cudagraphs_agreement"])
    for part, error in payload["errors"].items():
        print(f"FAILED {part}: {error}")


def shares_for(composition: dict[str, int], batch: int) -> dict[str, float]:
    """Train shares that give this composition (a mode alone on the whole batch, or the trial's own mix)."""
    return {MODES[m].share: rows / batch for m, rows in composition.items() if MODES[m].share} | \
        {MODES[m].share: 0.0 for m in MODES if MODES[m].share and m not in composition}


if __name__ == "__main__":
    main()
