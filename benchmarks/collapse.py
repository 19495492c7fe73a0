"""Why a seed does not learn: what the compressor sends the decoder over a trial's steps.

Trains the tiny config (with `--set` overrides) once per seed and, every `--every` steps (after that step's
update), reads the encoder's output and the latents for a fixed probe batch (the first batch's first rows): their
spread across examples (std over the batch, averaged over latents and features) and their norm, beside the decoder's
token embeddings' norm. A compressor whose spread goes to zero sends every example the same latents: nothing of the
context reaches the decoder, and the trial stays at chance.

    python benchmarks/collapse.py --set model.ratio=16 --seeds 0 2 [--every 20] [--threads 1] [--workers 2]
        [--name collapse]
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import lightning as L
import torch

from _common import report
from measurability import tiny_config

PROBE_ROWS = 16


class Probe(L.Callback):
    """Every `every` steps: spread and norm of the encoder output and the latents on the first batch's contexts."""

    def __init__(self, every: int):
        self.every, self.context, self.rows = every, None, []

    @torch.no_grad()
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step - 1  # the step just taken
        if self.context is None:
            self.context = batch["context"][:PROBE_ROWS].clone()
        if step % self.every:
            return
        model = module.model
        encoded = model.encoder(self.context).float()  # (B, L, D_enc): bf16 on GPU, the adapter weights fp32
        latents = model.adapter(encoded).float()  # (B, L, D_dec)
        embeddings = model.decoder.embed.weight.float()  # (V, D_dec): the scale the decoder reads tokens at
        loss = module.step_losses.get("train/loss_compressed")  # this step's; Lightning logs only every log_every
        self.rows.append({"step": step, "loss_compressed": float(loss) if loss is not None else float("nan"),
                          "encoder_spread": float(encoded.std(0).mean()), "latent_spread": float(latents.std(0).mean()),
                          "latent_norm": float(latents.norm(dim=-1).mean()),
                          "embedding_norm": float(embeddings.norm(dim=-1).mean())})


def run_one(args: tuple) -> dict:
    seed, overrides, every, threads, out = args
    from lclab.trials import run_trial

    cfg = tiny_config(overrides, seed, threads, out)
    probe = Probe(every)
    m = run_trial(cfg, callbacks=[probe]).metrics
    task = cfg.data.tasks[0]
    return {"seed": seed, "acc": m[f"val/{task}/acc"], "learned": bool(m["val/learned"]), "trace": probe.rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--name", default="collapse")
    ap.add_argument("--out", default="/tmp/lclab-collapse")
    a = ap.parse_args()
    jobs = [(s, a.overrides, a.every, a.threads, a.out) for s in a.seeds]
    with ProcessPoolExecutor(a.workers) as pool:
        runs = list(pool.map(run_one, jobs))
    rows = [[r["seed"], f"{r['acc']:.3f}" + ("" if r["learned"] else " ✗"), t["step"], t["loss_compressed"],
             t["encoder_spread"], t["latent_spread"], t["latent_norm"], t["embedding_norm"]]
            for r in runs for t in r["trace"]]
    report(a.name, ["seed", "final acc (✗ did not learn)", "step", "train loss compressed", "encoder spread",
                    "latent spread", "latent norm", "embedding norm"], rows,
           {"runs": runs, "overrides": a.overrides, "threads": a.threads})


if __name__ == "__main__":
    main()
