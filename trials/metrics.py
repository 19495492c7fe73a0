"""Validation statistics per example, and their summary into one flat dict of named metrics.

Context use is reported as gaps against the no-context loss with standard errors over examples;
context retention (L_none - L_compressed) / (L_none - L_full) is only reported when the full-context
gap is clearly (> 3 SE) positive, otherwise it is NaN and `val/retention_status` says why.

The no-context baseline L_none is the better of two no-context models: the decoder's own no-context mode (trained
on `train.none_share` rows, at the positions it is evaluated at) and the training unigram (`val/loss_unigram`,
counted on training batches, scored on the same answers); `val/baseline` says which. A lower baseline can only lower
gaps and retention, never inflate them. A baseline more than 3 SE above a uniform guess over the answer choices
(`val/loss_uniform`) is broken, and retention is then undefined with that reason.

Whether the trial learned at all is judged here too, where the task is known: `val/learned` is 0 when the
compressed-context accuracy is within 3 SE of chance (synthetic tasks: every answer is one of `n_symbols`
symbols) or, on text, when the compressed context lowers the loss by less than 3 SE against no context.
`val/learned_status` says which, with the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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
    return _stats(token_nll(logits, target), logits.argmax(-1) == target, mask)


def unigram_stats(logp: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """`example_stats` of a unigram model: log-probabilities logp (V,) of every token, whatever came before."""
    return _stats(-logp[target], target == logp.argmax(), mask)


def _stats(nll: torch.Tensor, correct: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """nll, correct, mask (B, S) -> per-example statistics over the supervised tokens, each (B,)."""
    mask_f = mask.float()
    q1 = mask_f * (torch.arange(mask.shape[1], device=mask.device) < max(1, mask.shape[1] // 4))
    correct = correct & mask
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


@dataclass(frozen=True)
class Floors:
    """What a trial's baselines are judged against, known without its model."""

    uniform: float = math.inf  # loss of a uniform guess over the possible answers: any baseline must beat it
    chance_acc: float | None = None  # accuracy of a uniform guess where the task has one (synthetic), else None
    none_trained: bool = True  # whether the no-context mode trains (train.none_share > 0)


def summarize(records: list[dict], floors: Floors = Floors()) -> dict[str, float | str]:
    """records: one per validation batch, {"task": str, "<mode>/<stat>": (B,) tensors}, and "unigram/<stat>" for the
    training unigram where known."""
    cat = {k: torch.cat([r[k] for r in records]).double() for k in records[0] if k != "task"}
    out: dict[str, float | str] = {}
    for mode in EVAL_MODES:
        out[f"val/loss_{mode}"] = cat[f"{mode}/loss"].mean().item()
    out["val/loss_uniform"] = floors.uniform
    out["val/loss_unigram"] = cat["unigram/loss"].mean().item() if "unigram/loss" in cat else math.inf
    base, out["val/baseline"], out["val/baseline_status"] = _baseline(cat, floors)
    out["val/recon_loss"] = cat["reconstruct/loss"].mean().item()
    out["val/recon_acc"] = cat["reconstruct/acc"].mean().item()
    for name, suffix, keep in (("", "loss", None), ("_q1", "loss_q1", "has_q1")):
        sel = cat[f"{base}/{keep}"].bool() if keep else torch.ones_like(cat[f"{base}/loss"], dtype=torch.bool)
        none = cat[f"{base}/{suffix}"][sel]
        gap_full = none - cat[f"full/{suffix}"][sel]
        gap_comp = none - cat[f"compressed/{suffix}"][sel]
        out[f"val/gap_full{name}"], out[f"val/gap_full{name}_se"] = _mean_se(gap_full)
        out[f"val/gap_compressed{name}"], out[f"val/gap_compressed{name}_se"] = _mean_se(gap_comp)
        if not name:
            out.update(_retention(gap_comp, gap_full, none, floors, base))
    for task in sorted({r["task"] for r in records}):
        rows = torch.cat([torch.full((len(r["compressed/loss"]),), r["task"] == task) for r in records])
        for mode, tag in (("compressed", ""), ("full", "_full"), ("none", "_none")):
            out[f"val/{task}/acc{tag}"] = cat[f"{mode}/acc"][rows].mean().item()
            out[f"val/{task}/exact_match{tag}"] = cat[f"{mode}/exact"][rows].mean().item()
        out[f"val/{task}/loss"] = cat["compressed/loss"][rows].mean().item()
    out.update(_learned(cat, floors, base))
    return out


def _baseline(cat: dict[str, torch.Tensor], floors: Floors) -> tuple[str, str, str]:
    """Which no-context model the gaps and retention are taken against: the decoder's no-context mode, or the
    training unigram where that is lower (or the no-context mode never trained); with the reason."""
    none, unigram = cat["none/loss"].mean().item(), cat["unigram/loss"].mean().item() if "unigram/loss" in cat else math.inf
    trained = "" if floors.none_trained else " (train.none_share is 0: the decoder never read without context)"
    if floors.none_trained and none <= unigram:
        return "none", "no-context mode", f"the decoder's no-context mode, {none:.4f} nats (training unigram {unigram:.4f})"
    if math.isfinite(unigram):
        return "unigram", "unigram", (f"the training unigram, {unigram:.4f} nats, below the decoder's no-context mode "
                                      f"{none:.4f}{trained}")
    return "none", "no-context mode", f"the decoder's no-context mode, {none:.4f} nats{trained}"


def _learned(cat: dict[str, torch.Tensor], floors: Floors, base: str) -> dict[str, float | str]:
    """Did the compressed context carry anything? Against chance (synthetic) or against the no-context baseline
    (text), which counts at most a uniform guess, so that a weak baseline cannot make a trial look learned."""
    if floors.chance_acc is not None:
        acc, se = _mean_se(cat["compressed/acc"])
        ok = acc - floors.chance_acc > LEARNED_MIN_Z * se
        what = f"compressed-context accuracy {acc:.4f} ± {se:.4f} against chance {floors.chance_acc:.4f}"
        out = {"val/chance_acc": floors.chance_acc}
    else:
        none = cat[f"{base}/loss"].clamp(max=floors.uniform)
        gap, se = _mean_se(none - cat["compressed/loss"])
        ok = gap > LEARNED_MIN_Z * se
        what = f"compressed context lowers the loss by {gap:.4f} ± {se:.4f} nats against no context (or a uniform guess)"
        out = {}
    status = "learned" if ok else f"did not learn: {what} (within {LEARNED_MIN_Z:g} SE)"
    return out | {"val/learned": float(ok), "val/learned_status": status if not ok else f"learned: {what}"}


def _retention(gap_comp: torch.Tensor, gap_full: torch.Tensor, none: torch.Tensor, floors: Floors,
               base: str) -> dict[str, float | str]:
    undefined = {"val/retention": float("nan"), "val/retention_se": float("nan")}
    loss_none, se = _mean_se(none)
    if loss_none - floors.uniform > RETENTION_MIN_Z * se:
        fix = "" if floors.none_trained else "; set train.none_share > 0 so that the decoder learns to read without context"
        return undefined | {"val/retention_status": f"undefined: the no-context loss {loss_none:.4f} ± {se:.4f} "
                                                    f"({'training unigram' if base == 'unigram' else 'no-context mode'}) "
                                                    f"is above a uniform guess's {floors.uniform:.4f} nats, so the "
                                                    "no-context baseline is broken and a ratio against it would be "
                                                    f"inflated{fix}"}
    full, full_se = _mean_se(gap_full)
    if not full_se > 0 or full < RETENTION_MIN_Z * full_se:
        return undefined | {"val/retention_status": f"undefined: full-context gain {full:.4f} ± {full_se:.4f} nats is "
                                                    f"not {RETENTION_MIN_Z:g} SE above zero, so the ratio would be noise"}
    comp = gap_comp.mean().item()
    ratio = comp / full
    # delta method for a ratio of paired means
    n = gap_full.numel()
    cov = torch.cov(torch.stack([gap_comp, gap_full]))
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]).clamp(min=0) / (full**2 * n)
    return {"val/retention": ratio, "val/retention_se": var.sqrt().item(), "val/retention_status": "ok"}
