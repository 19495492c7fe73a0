"""Decoder prefill with 1:r latents vs raw context, plus the encoder's cost, at 2K-16K context tokens (CPU).

Each measurement runs in a fresh process so that peak memory (max RSS above the process's baseline
after building the model) belongs to that measurement alone. Targets: decoder prefill >= 0.8 r x
faster than raw context at 8K+, end to end (encoder + prefill) >= 0.5 r x.

    python benchmarks/prefill.py [--lengths 2048 4096 8192 16384] [--ratios 4 8 16]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import torch

from _common import report
from lclab.models import LCLM, AdapterConfig, DecoderConfig, EncoderConfig, ModelConfig

# a lab-scale pair in the published proportion (0.6B encoder : 4B decoder, i.e. ~15% of the decoder's
# parameters): encoder 2x256 (1.6M) : decoder 6x384 (10.6M, without embeddings), windows of 128
BENCH = dict(vocab_size=4096, encoder=EncoderConfig(n_layers=2, d_model=256, n_heads=4, window=128),
             adapter=AdapterConfig(depth=1), decoder=DecoderConfig(n_layers=6, d_model=384, n_heads=6))


def measure(args: tuple[str, int, int, int]) -> dict:
    mode, T, r, repeats = args
    torch.manual_seed(0)
    model = LCLM(ModelConfig(ratio=r, **BENCH)).eval()
    context = torch.randint(8, 4096, (1, T))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    enc_times, dec_times = [], []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first run warms up allocator and kernels
            t0 = time.perf_counter()
            frame = model.frame(mode, T, 1, context.device, torch.float32)  # S = 1: the prefix alone
            embeds = model.prefix(context, mode, frame)  # compressed: runs encoder + adapter
            t1 = time.perf_counter()
            model.decoder([(embeds, frame.rope)])
            t2 = time.perf_counter()
            enc_times.append(t1 - t0)
            dec_times.append(t2 - t1)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"mode": mode, "T": T, "r": r, "encode_s": statistics.median(enc_times[1:]),
            "prefill_s": statistics.median(dec_times[1:]), "peak_mb": peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="*", default=[2048, 4096, 8192, 16384])
    ap.add_argument("--ratios", type=int, nargs="*", default=[4, 8, 16])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    jobs = [(m, T, r, a.repeats) for T in a.lengths for m, r in [("full", 4)] + [("compressed", r) for r in a.ratios]]
    ctx = mp.get_context("spawn")
    results = []
    for job in jobs:
        with ctx.Pool(1, maxtasksperchild=1) as pool:
            results.append(pool.apply(measure, (job,)))
    rows, summary = [], []
    for res in results:
        full = next(x for x in results if x["mode"] == "full" and x["T"] == res["T"])
        if res["mode"] == "full":
            rows.append([res["T"], "raw", f"{res['prefill_s']:.4f}", "-", f"{res['peak_mb']:.0f}", "-", "-", "-"])
            continue
        r = res["r"]
        prefill_x = full["prefill_s"] / res["prefill_s"]
        e2e_x = full["prefill_s"] / (res["prefill_s"] + res["encode_s"])
        ok = res["T"] < 8192 or (prefill_x >= 0.8 * r and e2e_x >= 0.5 * r)
        rows.append([res["T"], f"1:{r}", f"{res['prefill_s']:.4f}", f"{res['encode_s']:.4f}", f"{res['peak_mb']:.0f}",
                     f"{prefill_x:.1f}", f"{e2e_x:.1f}", "yes" if ok else "NO"])
        summary.append({"T": res["T"], "r": r, "prefill_speedup": prefill_x, "end_to_end_speedup": e2e_x, "meets_target": ok})
    report("prefill", ["context", "decoder reads", "prefill s", "encoder s", "peak MB", "prefill x", "end-to-end x",
                       "target met"], rows, {"results": results, "speedups": summary})


if __name__ == "__main__":
    main()
