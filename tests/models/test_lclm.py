import itertools
import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lclab.models import LCLM, POOLINGS, AdapterConfig, DecoderConfig, EncoderConfig, ModelConfig, forward_flops, param_counts

W = 16


def make(pooling="mean", overlap=0, ratio=4, mask="bidirectional", adapter="mlp", **kw) -> LCLM:
    torch.manual_seed(0)
    return LCLM(ModelConfig(vocab_size=64, ratio=ratio, pooling=pooling,
                            encoder=EncoderConfig(n_layers=1, d_model=32, n_heads=2, window=W + overlap, overlap=overlap, mask=mask),
                            adapter=AdapterConfig(kind=adapter, n_heads=2),
                            decoder=DecoderConfig(n_layers=1, d_model=32, n_heads=2), **kw))


GRID = list(itertools.product(sorted(POOLINGS), (0, W // 4), (4, 8, 16), ("causal", "bidirectional")))


@pytest.mark.parametrize("pooling,overlap,ratio,mask", GRID)
def test_latent_count_gradients_and_finiteness(pooling, overlap, ratio, mask):
    model = make(pooling, overlap, ratio, mask)
    T = 37  # not a multiple of the stride: the last window is padded
    context = torch.randint(8, 64, (3, T))
    latents = model.encoder(context)
    assert latents.shape == (3, math.ceil(T / ratio), 32)
    logits = model(context, torch.randint(8, 64, (3, 9)))
    assert logits.shape == (3, 9, 64) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches encoder.{name}"
        assert torch.isfinite(p.grad).all()


def test_each_latent_depends_only_on_its_window_and_overlap():
    """A token changes the latents of its own group (and of the window re-reading it), nothing earlier."""
    model = make("mean", overlap=4, ratio=4, mask="bidirectional")
    context = torch.randint(8, 64, (1, 48))
    changed = context.clone()
    changed[0, 30] = (changed[0, 30] + 1 - 8) % 56 + 8
    delta = (model.encoder(context) - model.encoder(changed)).abs().sum(-1)[0]  # (12,)
    touched = (delta > 1e-6).nonzero().flatten().tolist()
    # stride 16: token 30 is new in window 1 (tokens 16..31, groups 4..7) and overlap of window 2 (groups 8..11)
    assert touched == list(range(4, 12))


def test_causal_encoder_mask_hides_later_tokens():
    model = make("last", ratio=4, mask="causal")
    context = torch.randint(8, 64, (1, 16))
    changed = context.clone()
    changed[0, 15] = 8 if context[0, 15] != 8 else 9
    delta = (model.encoder(context) - model.encoder(changed)).abs().sum(-1)[0]
    assert torch.all(delta[:3] < 1e-6) and delta[3] > 1e-6


def test_unknown_pooling_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="unknown pooling 'avg'.*mean"):
        ModelConfig(pooling="avg").validate()


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
@pytest.mark.parametrize("adapter", ["mlp", "attn_mlp", "mlp_attn"])
@pytest.mark.parametrize("mode", ["compressed", "full", "none", "reconstruct"])
def test_analytic_flops_match_torch_flop_counter(pooling, adapter, mode):
    model = make(pooling, overlap=4, ratio=4, adapter=adapter)
    T, S = 50, 12
    text_len = T if mode == "reconstruct" else S
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # math kernel: countable matmuls
        model(torch.randint(8, 64, (2, T)), torch.randint(8, 64, (2, text_len)), mode)
    analytic = 2 * forward_flops(model.cfg, T, text_len, mode)["total"]
    assert abs(analytic - counter.get_total_flops()) <= 0.1 * counter.get_total_flops()


def test_param_counts_add_up_and_compression_saves_decoder_flops():
    model = make("concat", ratio=8)
    counts = param_counts(model)
    assert counts["encoder"] + counts["adapter"] + counts["decoder"] == counts["total"]
    full = forward_flops(model.cfg, 1024, 64, "full")
    compressed = forward_flops(model.cfg, 1024, 64, "compressed")
    assert compressed["decoder"] < full["decoder"] / 4


@pytest.mark.parametrize("scheme", ["aligned", "sequential"])
def test_latent_positions(scheme):
    model = make(latent_positions=scheme)
    positions = model.frame("compressed", 30, 1, torch.device("cpu"), torch.float32).positions  # S = 1: no text
    latent_pos = positions[2:-1]  # between <bos> <mem> and </mem>
    expected = (torch.arange(1, 9) * 4).clamp(max=30) if scheme == "aligned" else torch.arange(1, 9)
    assert torch.equal(latent_pos, expected.float())
    full_pos = model.frame("full", 30, 1, torch.device("cpu"), torch.float32).positions
    assert torch.equal(full_pos, torch.arange(31).float())
    if scheme == "aligned":  # the text starts at the same position as with raw context
        assert positions[-1].floor() == full_pos[-1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers backend needs a CUDA GPU")
def test_xformers_matches_sdpa_in_bf16():
    pytest.importorskip("xformers.ops")
    outs = []
    for backend in ("sdpa", "xformers"):
        model = make("attention", overlap=4, attention=backend).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outs.append(model(torch.randint(8, 64, (4, 64), device="cuda",
                                            generator=torch.Generator("cuda").manual_seed(0)),
                              torch.arange(8, 24, device="cuda").repeat(4, 1)).float())
    torch.testing.assert_close(outs[0], outs[1], atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("mask", ["bidirectional", "causal"])
def test_causal_half_counts_half_of_every_causal_score_matrix(mask):
    cfg = make(mask=mask).cfg
    T, S, d = 64, 16, 32
    palm, half = forward_flops(cfg, T, S, "compressed"), forward_flops(cfg, T, S, "compressed", causal_half=True)
    dec_seq = 2 + T // cfg.ratio + 1 + S - 1  # <bos> <mem> latents </mem> text[:-1]
    assert palm["decoder"] - half["decoder"] == dec_seq * dec_seq * 2 * d  # QK^T and AV: 4 L^2 d, half of it
    enc_saved = (T // W) * W * W * 2 * d if mask == "causal" else 0  # one layer, n windows of W
    assert palm["encoder"] - half["encoder"] == enc_saved


def test_the_embedding_skip_adds_each_latents_mean_token_embedding():
    model = make(ratio=4)
    context = torch.randint(8, 64, (2, 37))  # the last group holds one token
    embeds = model.decoder.embed(context)
    by_hand = torch.stack([embeds[:, i:i + 4].mean(1) for i in range(0, 37, 4)], 1)  # (2, 10, 32)
    torch.testing.assert_close(model.group_embeddings(context), by_hand)
    plain = model.adapter(model.encoder(context))
    assert torch.equal(model.compress(context), plain)  # off by default: a pure compressor
    torch.testing.assert_close(model.compress(context, 0.25), plain + 0.25 * by_hand)
    text = torch.randint(8, 64, (2, 9))
    assert not torch.allclose(model(context, text, "compressed", 0.25), model(context, text, "compressed"))
    assert torch.equal(model(context, text, "full", 0.25), model(context, text, "full"))  # raw context: no latents


@pytest.mark.parametrize("pooling,overlap", [("mean", 0), ("attention", W // 4)])
def test_a_step_runs_every_mode_in_one_pass_and_matches_each_mode_run_alone(pooling, overlap):
    """forward_modes packs the modes into one encoder and one decoder pass (what bounds a GPU step is the number of
    passes, not their size); each mode's logits and every gradient must be what that mode alone gives."""
    model = make(pooling, overlap)
    context, text = torch.randint(8, 64, (9, 37)), torch.randint(8, 64, (9, 11))
    parts = [(context[:3], text[:3], "compressed"), (context[3:5], text[3:5], "full"),
             (context[5:7], text[5:7], "none"), (context[7:], context[7:], "reconstruct")]
    calls = {"encoder": 0, "decoder": 0}
    for name in calls:
        def count(*_, name=name):
            calls[name] += 1
        getattr(model, name).blocks[0].register_forward_hook(count)
    packed = model.forward_modes(parts, skip=0.5)
    assert calls == {"encoder": 1, "decoder": 1}
    weights = [torch.randn_like(x) for x in packed]
    sum((x * w).sum() for x, w in zip(packed, weights)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    alone = [model(c, t, mode, skip=0.5) for c, t, mode in parts]
    sum((x * w).sum() for x, w in zip(alone, weights)).backward()
    for (_, _, mode), a, b in zip(parts, packed, alone):
        torch.testing.assert_close(a, b, msg=lambda m, mode=mode: f"{mode}: {m}")
    assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[n], p.grad, msg=lambda m, n=n: f"{n}: {m}")
