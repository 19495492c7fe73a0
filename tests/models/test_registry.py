"""Every registered part, built-in or plugin (tests/plugins/my_parts.py is loaded first), meets the contract of its
registry: shapes, ceil(T / r) latents, gradients to every parameter, analytic parameters and FLOPs equal to the
built module's and to torch.utils.flop_counter's."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lclab.models import ADAPTERS, BACKENDS, LCLM, MODES, POOLINGS, AdapterConfig, DecoderConfig, EncoderConfig, ModelConfig, forward_flops
from lclab.plugins import load_plugins
from lclab.search_space.registry import PRUNERS, SAMPLERS, build
from lclab.trials import TASKS, DataConfig
from lclab.trials.synthetic import generate, layout

PLUGIN = Path(__file__).parents[1] / "plugins" / "my_parts.py"
load_plugins([str(PLUGIN)])


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


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_attention_backends_agree_with_sdpa(backend):
    q, k, v = torch.randn(3, 2, 3, 9, 8).unbind(0)
    mask = torch.rand(2, 1, 9, 9) > 0.3
    mask |= torch.eye(9, dtype=torch.bool)
    if backend == "xformers" and not torch.cuda.is_available():
        pytest.skip("xformers attention needs a CUDA GPU")
    for m, causal in ((mask, False), (None, True)):
        torch.testing.assert_close(BACKENDS[backend](q, k, v, m, causal), BACKENDS["sdpa"](q, k, v, m, causal))


@pytest.mark.parametrize("task", TASKS.names())
def test_task_contract(task):
    d = DataConfig(tasks=[task], context_len=32, text_len=24, n_symbols=16, span_len=4, kv_pairs=6, n_keys=16)
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
