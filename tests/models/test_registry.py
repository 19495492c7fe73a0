"""Every registered part, built-in or plugin (tests/plugins/my_parts.py is loaded first, then the files or modules
in $LCLAB_TEST_PLUGINS, separated by ':', so a researcher can hold their own parts to it), meets the contract of its
registry: shapes, ceil(T / r) latents, gradients to every parameter, analytic parameters and FLOPs equal to the
built module's and to torch.utils.flop_counter's."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lclab.models import ADAPTERS, BACKENDS, LCLM, MODES, POOLINGS, AdapterConfig, DecoderConfig, EncoderConfig, ModelConfig, forward_flops
from lclab.models.attention import KeyMask
from lclab.plugins import load_plugins
from lclab.search_space.registry import PRUNERS, SAMPLERS, build
from lclab.trials import TASKS, DataConfig
from lclab.trials.synthetic import generate, layout

PLUGIN = Path(__file__).parents[1] / "plugins" / "my_parts.py"
load_plugins([str(PLUGIN), *(str(Path(p).resolve()) if p.endswith(".py") else p
                             for p in os.environ.get("LCLAB_TEST_PLUGINS", "").split(os.pathsep) if p)])


def config(pooling="mean", adapter="mlp", overlap=4, ratio=4, d_enc=32, d_dec=48) -> ModelConfig:
    return ModelConfig(vocab_size=64, ratio=ratio, pooling=pooling,
                       encoder=EncoderConfig(n_layers=1, d_model=d_enc, n_heads=2, window=16 + overlap, overlap=overlap),
                       adapter=AdapterConfig(kind=adapter, n_heads=2),
                       decoder=DecoderConfig(n_layers=1, d_model=d_dec, n_heads=2)).validate()


def test_the_plugin_parts_are_registered_with_their_origin_and_description():
    assert "softmax_gate" in POOLINGS and "linear" in ADAPTERS
    assert POOLINGS.origin("softmax_gate") == str(PLUGIN)
    assert POOLINGS.description("softmax_gate").startswith("A learned score per token")
    assert POOLINGS.origin("mean") == "lclab.models.pooling"


def counted(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # math kernel: countable matmuls
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("pooling", POOLINGS.names())
@pytest.mark.parametrize("overlap,ratio", [(0, 4), (4, 8)])
def test_pooling_contract(pooling, overlap, ratio):
    torch.manual_seed(0)
    cfg = config(pooling, overlap=overlap, ratio=ratio, d_dec=32)
    model = LCLM(cfg)
    T = 37  # not a multiple of the stride: the last window is padded
    context = torch.randint(8, 64, (3, T))
    assert model.encoder(context).shape == (3, math.ceil(T / ratio), 32)
    model(context, torch.randint(8, 64, (3, 9))).logsumexp(-1).sum().backward()
    pool = model.encoder.pooling
    for name, p in pool.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pooling}.{name}"
    assert POOLINGS[pooling].n_params(cfg) == sum(p.numel() for p in pool.parameters())
    N, W = 5, cfg.encoder.window
    states = torch.randn(N, W + POOLINGS[pooling].n_markers(cfg), 32)
    latents = pool(states, torch.ones(N, W, dtype=torch.bool))
    assert latents.shape == (N, cfg.stride // ratio, 32)
    assert POOLINGS[pooling].flops(cfg, N) == counted(lambda: pool(states, torch.ones(N, W, dtype=torch.bool)))


@pytest.mark.parametrize("adapter", ADAPTERS.names())
def test_adapter_contract(adapter):
    torch.manual_seed(0)
    cfg = config(adapter=adapter)
    part = ADAPTERS[adapter](cfg)
    latents = torch.randn(2, 7, 32)
    out = part(latents)
    assert out.shape == (2, 7, 48)
    out.square().sum().backward()
    for name, p in part.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {adapter}.{name}"
    assert ADAPTERS[adapter].n_params(cfg) == sum(p.numel() for p in part.parameters())
    assert ADAPTERS[adapter].flops(cfg, 7) * 2 == counted(lambda: part(latents))  # batch of 2


@pytest.mark.parametrize("mode", MODES.names())
@pytest.mark.parametrize("pooling,adapter", [("attention", "mlp_attn"), ("softmax_gate", "linear")])
def test_every_mode_runs_and_its_flops_are_counted(mode, pooling, adapter):
    model = LCLM(config(pooling, adapter, d_dec=32))
    T, S = 50, 12
    text_len = T if MODES[mode].target == "context" else S
    logits = model(torch.randint(8, 64, (2, T)), torch.randint(8, 64, (2, text_len)), mode)
    assert logits.shape == (2, text_len, 64) and torch.isfinite(logits).all()
    total = counted(lambda: model(torch.randint(8, 64, (2, T)), torch.randint(8, 64, (2, text_len)), mode))
    assert abs(2 * forward_flops(model.cfg, T, text_len, mode)["total"] - total) <= 0.1 * total


def reference_attention(q, k, v, allowed):
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_attention_backends_agree_with_the_definition(backend):
    if backend == "xformers" and not torch.cuda.is_available():
        pytest.skip("xformers attention needs a CUDA GPU")
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 2, 20, 8).unbind(0)
    valid = torch.ones(4, 20, dtype=torch.bool)
    valid[0, :5] = False  # an overlap window's padding in front, a last window's padding behind
    valid[3, 12:] = False
    attend = BACKENDS[backend].attend
    for causal in (False, True):
        keys = KeyMask(valid, causal)
        torch.testing.assert_close(attend(q, k, v, BACKENDS[backend].prepare(keys), False),
                                   reference_attention(q, k, v, keys.dense()))
        no_mask = torch.ones(20, 20, dtype=torch.bool).tril() if causal else torch.ones(20, 20, dtype=torch.bool)
        torch.testing.assert_close(attend(q, k, v, None, causal), reference_attention(q, k, v, no_mask))


@pytest.mark.parametrize("pooling,mask,overlap", [("mean", "bidirectional", 4), ("memory", "causal", 0),
                                                   ("mean", "causal", 0)])
def test_the_flex_encoder_matches_the_sdpa_encoder(pooling, mask, overlap):
    # padded and overlapping windows and memory markers take block masks under flex, dense masks under sdpa
    torch.manual_seed(0)
    cfgs = [config(pooling, overlap=overlap, d_dec=32) for _ in range(2)]
    for cfg, backend in zip(cfgs, ("sdpa", "flex")):
        cfg.attention, cfg.encoder.mask = backend, mask
    sdpa, flex = LCLM(cfgs[0]), LCLM(cfgs[1])
    flex.load_state_dict(sdpa.state_dict())
    context = torch.randint(8, 64, (2, 37))  # not a multiple of the stride: the last window is padded
    with torch.no_grad():  # FlexAttention has no backward on CPU (`auto` picks it on CUDA only)
        torch.testing.assert_close(flex.encoder(context), sdpa.encoder(context), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("task", TASKS.names())
def test_task_contract(task):
    d = DataConfig(tasks=[task], context_len=32, text_len=24, n_symbols=16, span_len=4, kv_pairs=6, n_keys=16, kv_offset=3)
    TASKS[task].validate(d)
    context, text, mask = generate(task, 3, 5, 4, d)
    assert context.shape == (4, 32) and text.shape == (4, 24) and mask.shape == (4, 24) and mask.dtype == bool
    assert mask.any(1).all() and context.max() < layout(d)["vocab_size"] and text.max() < layout(d)["vocab_size"]
    again = generate(task, 3, 5, 4, d)
    assert all(np.array_equal(a, b) for a, b in zip((context, text, mask), again))  # a pure function of its inputs


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_samplers_build(name):
    import optuna

    assert isinstance(build(SAMPLERS, {"name": name}, seed=0), optuna.samplers.BaseSampler)
    assert SAMPLERS.description(name)


@pytest.mark.parametrize("name", PRUNERS.names())
def test_pruners_build(name):
    import optuna

    assert isinstance(build(PRUNERS, {"name": name}), optuna.pruners.BasePruner)
    assert PRUNERS.description(name)
