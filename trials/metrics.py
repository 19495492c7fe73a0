"""Validation statistics per example, and their summary into one flat dict of named metrics.

Context use is reported as gaps against the no-context loss with standard errors over examples;
context retention (L_none - L_compressed) / (L_none - L_full) is only reported when the full-context
gap is clearly (> 3 SE) positive, otherwise it is NaN and `val/retention_status` says why.

A no-context loss above a uniform guess (`val/loss_uniform`: ln of the answer choices) is a broken baseline: the
retention is then undefined with that reason rather than inflated.

Whether the trial learned at all is judged here too, where the task is known: `val/learned` is 0 when the
compressed-context accuracy is within 3 SE of chance (synthetic tasks: every answer is one of `n_symbols`
symbols) or, on text, when the compressed context lowers the loss by less than 3 SE against no context.
`val/learned_status` says which, with the numbers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lclab.models import MODES

EVAL_MODES = tuple(name for name, mode in MODES.items() if mode.target == "text")  # scored on the text
RETENTION_MIN_Z = 3.0
LEARNED_MIN_Z = 3.0


def token_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits (B, S, V), target (B, S) -> (B, S) negative log-likelihoods, taken over contiguous (B*S, V) rows. The
    fp32 upcast is fused into the loss kernel when compiled (no fp32 copy of the logits); eager on CPU it is a no-op."""
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), reduction="none").view_as(target)


def example_stats(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example loss, first-quarter loss and accuracy over the supervised tokens. All (B,)."""
    nll = token_nll(logits, target)  # (B, S)
    mask_f = mask.float()
    q1 = mask_f * (torch.arange(target.shape[1], device=target.device) < max(1, target.shape[1] // 4))
    correct = (logits.argmax(-1) == target) & mask
    count = mask_f.sum(1)
    return {
        "loss": (nll * mask_f).sum(1) / count.clamp(min=1),
        "loss_q1": (nll * q1).sum(1) / q1.sum(1).clamp(min=1),
        "has_q1": q1.sum(1) > 0,
        "acc": correct.sum(1) / count.clamp(min=1),
        "exact": correct.sum(1) == mask.sum(1),
    }


def loss_sum(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the supervised tokens (the caller divides by their count)."""
    return (token_nll(logits, target) * mask).sum()


def _mean_se(x: torch.Tensor) -> tuple[float, float]:
    n = x.numel()
    return x.mean().item(), (x.std().item() / math.sqrt(n)) if n > 1 else float("nan")


def summarize(records: list[dict], chance_acc: float | None = None, uniform_loss: float = float("inf")) -> dict[str, float | str]:
    """records: one per validation batch, {"task": str, "<mode>/<stat>": (B,) tensors}. `chance_acc`: the
    accuracy of a uniform guess where the task has one (synthetic), else None (text: judged against no context).
    `uniform_loss`: the loss of a uniform guess over the possible answers, the floor any baseline must beat."""
    cat = {k: torch.cat([r[k] for r in records]).double() for k in records[0] if k != "task"}
    out: dict[str, float | str] = {}
    for mode in EVAL_MODES:
        out[f"val/loss_{mode}"] = cat[f"{mode}/loss"].mean().item()
    out["val/loss_uniform"] = uniform_loss
    out["val/recon_loss"] = cat["reconstruct/loss"].mean().item()
    out["val/recon_acc"] = cat["reconstruct/acc"].mean().item()
    for name, suffix, keep in (("", "loss", None), ("_q1", "loss_q1", "has_q1")):
        sel = cat[f"none/{keep}"].bool() if keep else torch.ones_like(cat["none/loss"], dtype=torch.bool)
        none = cat[f"none/{suffix}"][sel]
        gap_full = none - cat[f"full/{suffix}"][sel]
        gap_comp = none - cat[f"compressed/{suffix}"][sel]
        out[f"val/gap_full{name}"], out[f"val/gap_full{name}_se"] = _mean_se(gap_full)
        out[f"val/gap_compressed{name}"], out[f"val/gap_compressed{name}_se"] = _mean_se(gap_comp)
        if not name:
            out.update(_retention(gap_comp, gap_full, out["val/loss_none"], uniform_loss))
    for task in sorted({r["task"] for r in records}):
        rows = torch.cat([torch.full((len(r["compressed/loss"]),), r["task"] == task) for r in records])
        for mode, tag in (("compressed", ""), ("full", "_full"), ("none", "_none")):
            out[f"val/{task}/acc{tag}"] = cat[f"{mode}/acc"][rows].mean().item()
            out[f"val/{task}/exact_match{tag}"] = cat[f"{mode}/exact"][rows].mean().item()
        out[f"val/{task}/loss"] = cat["compressed/loss"][rows].mean().item()
    out.update(_learned(cat, chance_acc, uniform_loss))
    return out


def _learned(cat: dict[str, torch.Tensor], chance_acc: float | None, uniform_loss: float) -> dict[str, float | str]:
    """Did the compressed context carry anything? Against chance (synthetic) or against no context (text); a
    no-context loss above a uniform guess is a broken baseline, so the uniform loss is used where it is lower."""
    if chance_acc is not None:
        acc, se = _mean_se(cat["compressed/acc"])
        ok = acc - chance_acc > LEARNED_MIN_Z * se
        what = f"compressed-context accuracy {acc:.4f} ± {se:.4f} against chance {chance_acc:.4f}"
        out = {"val/chance_acc": chance_acc}
    else:
        none = cat["none/loss"].clamp(max=uniform_loss)
        gap, se = _mean_se(none - cat["compressed/loss"])
        ok = gap > LEARNED_MIN_Z * se
        what = f"compressed context lowers the loss by {gap:.4f} ± {se:.4f} nats against no context (or a uniform guess)"
        out = {}
    status = "learned" if ok else f"did not learn: {what} (within {LEARNED_MIN_Z:g} SE)"
    return out | {"val/learned": float(ok), "val/learned_status": status if not ok else f"learned: {what}"}


def _retention(gap_comp: torch.Tensor, gap_full: torch.Tensor, loss_none: float, uniform_loss: float) -> dict[str, float | str]:
    if loss_none > uniform_loss:
        return {"val/retention": float("nan"), "val/retention_se": float("nan"),
                "val/retention_status": f"undefined: the no-context loss {loss_none:.4f} is above a uniform guess's "
                                        f"{uniform_loss:.4f} nats, so the no-context baseline is broken (the decoder did "
                                        "not learn to read text without context) and a ratio against it would be inflated"}
    full, full_se = _mean_se(gap_full)
    if not full_se > 0 or full < RETENTION_MIN_Z * full_se:
        return {"val/retention": float("nan"), "val/retention_se": float("nan"),
                "val/retention_status": f"undefined: full-context gain {full:.4f} ± {full_se:.4f} nats is not "
                                        f"{RETENTION_MIN_Z:g} SE above zero, so the ratio would be noise"}
    comp = gap_comp.mean().item()
    ratio = comp / full
    # delta method for a ratio of paired means
    n = gap_full.numel()
    cov = torch.cov(torch.stack([gap_comp, gap_full]))
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]).clamp(min=0) / (full**2 * n)
    return {"val/retention": ratio, "val/retention_se": var.sqrt().item(), "val/retention_status": "ok"}
