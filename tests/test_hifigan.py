"""HiFi-GAN generator: parity with Coqui's HifiganGenerator (V1, V2, V3, XTTS options), loading, parameter counts,
the transposed convolution against torch.nn.ConvTranspose1d, weight norm, bad input."""
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import torch

from xtts_book.hifigan import (V1, V2, V3, XTTS, Generator, GeneratorConfig, ResBlock1, ResBlock2,
                               hifigan_from_torch, hifigan_torch_keys)
from xtts_book.inference import receptive_field, resblock_receptive_field
from xtts_book.layers import ConvTranspose1d, StateDictError, count_params, load_torch, to_numpy
from xtts_book.recipes import generator_config

FIXTURE = Path(__file__).parent / "fixtures" / "hifigan" / "tiny_official.npz"
call = eqx.filter_jit(lambda model, *args: model(*args))
# a tiny generator (hop 256, one resblock per stage) for the tests that are about plumbing, not sizes
TINY = GeneratorConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))


def coqui_generator(c: GeneratorConfig, seed: int = 0):
    "Coqui's PyTorch HifiganGenerator with the options of `c`, seeded, gains and biases perturbed (so g/v mix-ups fail)."
    from xtts_book.reference import torch_generator
    torch.manual_seed(seed)
    t = torch_generator(c).eval()
    with torch.no_grad():
        for k, p in t.named_parameters():
            if k.endswith("original0") or k.endswith("bias"):
                p.mul_(torch.rand_like(p) + 0.5)
    return t


def _compare(tgen, ours, cfg, frames, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg.in_channels, frames)).astype(np.float32)
    args_t, args_j = [torch.from_numpy(x)[None]], [jnp.asarray(x)]
    if cfg.cond_channels:
        g = rng.standard_normal((cfg.cond_channels, 1)).astype(np.float32)
        args_t.append(torch.from_numpy(g)[None])
        args_j.append(jnp.asarray(g))
    with torch.no_grad():
        want = tgen(*args_t)[0].numpy()
    got = np.asarray(call(ours, *args_j))
    assert got.shape == want.shape == (1, frames * cfg.hop)
    assert np.abs(want).max() > 1e-3          # a non-trivial output
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name,cfg,frames", [
    ("v1", V1, (9,)),                      # full size, a short odd mel
    ("v2", V2, (13,)),
    ("v3", V3, (7, 12)),                   # ResBlock2, three stages
    ("xtts", XTTS, (5,)),                  # 1024-channel latents, speaker conditioning in every stage, no conv_post bias
])
def test_parity_with_coqui(name, cfg, frames):
    tgen = coqui_generator(cfg)
    ours = hifigan_from_torch(tgen.state_dict(), name)
    for t in frames:
        _compare(tgen, ours, cfg, t)


def test_loads_official_layout_old_spelling_and_nesting():
    cfg = TINY
    tgen = coqui_generator(cfg, seed=1)
    sd = tgen.state_dict()
    old = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                 "weight_v"): v for k, v in sd.items()}
    ref = hifigan_from_torch(sd, cfg)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((80, 6)).astype(np.float32))
    want = np.asarray(call(ref, x))
    for sd_, prefix in [({"generator": old}, ""),                                  # official g_* checkpoint
                        ({"model": {**{f"model_g.{k}": v for k, v in old.items()},   # Coqui GAN checkpoint
                                    "model_d.x.weight": torch.zeros(1)}}, "model_g."),
                        ({f"hifigan_decoder.waveform_decoder.{k}": v for k, v in sd.items()} | {"gpt.x": torch.zeros(1)},
                         "hifigan_decoder.waveform_decoder")]:
        np.testing.assert_array_equal(np.asarray(call(hifigan_from_torch(sd_, cfg, prefix=prefix), x)), want)
    _compare(tgen, ref, cfg, 6)


def test_bad_state_dicts_raise_listing_keys():
    cfg = TINY
    sd = dict(coqui_generator(cfg).state_dict())
    sd.pop("ups.1.bias")
    sd["resblocks.0.convs1.9.bias"] = torch.zeros(3)
    sd["conv_pre.bias"] = torch.zeros(7)
    with pytest.raises(StateDictError) as e:
        hifigan_from_torch(sd, cfg)
    assert e.value.missing == ["ups.1.bias"] and e.value.unexpected == ["resblocks.0.convs1.9.bias"]
    assert [m[0] for m in e.value.mismatched] == ["conv_pre.bias"]
    assert "ups.1.bias" in str(e.value) and "conv_pre.bias" in str(e.value)
    # a V2 checkpoint is not a V3 one
    with pytest.raises(StateDictError):
        hifigan_from_torch(coqui_generator(V2).state_dict(), "v3")
    # keys under a prefix nobody named: the error says which prefix
    nested = {f"waveform_decoder.{k}": v for k, v in coqui_generator(cfg).state_dict().items()}
    with pytest.raises(StateDictError, match="prefix='waveform_decoder.'"):
        hifigan_from_torch(nested, cfg)
    with pytest.raises(ValueError, match="config must be"):
        hifigan_from_torch({}, "v4")


def test_tiny_official_fixture():
    "A stored official-layout checkpoint (old weight_g/weight_v spelling) with the reference output Coqui gave for it."
    data = np.load(FIXTURE)
    sd = {k[3:]: data[k] for k in data.files if k.startswith("sd.")}
    cfg = GeneratorConfig(upsample_initial_channel=int(data["upsample_initial_channel"]),
                          resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))
    ours = hifigan_from_torch({"generator": sd}, cfg)
    np.testing.assert_allclose(np.asarray(call(ours, jnp.asarray(data["mel"]))), data["wav"], atol=1e-5)


def test_parameter_counts():
    counts = {}
    for name, cfg in [("v1", V1), ("v2", V2), ("v3", V3), ("xtts", XTTS)]:
        m = eqx.filter_eval_shape(Generator, cfg, key=jr.key(0))
        counts[name] = (count_params(m), count_params(m, fused=False))
    assert counts == {"v1": (13_926_017, 13_936_130), "v2": (925_985, 928_514), "v3": (1_462_273, 1_464_322),
                      "xtts": (17_818_208, 17_827_808)}
    # the real (non-abstract) module counts the same, and equals PyTorch's own count
    cfg = generator_config("ci")
    ours = Generator(cfg, key=jr.key(0))
    tgen = coqui_generator(cfg)
    assert count_params(ours, fused=False) == sum(p.numel() for p in tgen.parameters())
    assert set(hifigan_torch_keys(ours)) == set(to_numpy(
        {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                           "weight_v"): v
         for k, v in tgen.state_dict().items()}))


@pytest.mark.parametrize("k,u", [(16, 8), (4, 2), (8, 4), (5, 2), (3, 3), (11, 3), (7, 2), (4, 4)])
def test_conv_transpose_matches_torch_with_gradients(k, u):
    torch.manual_seed(k * 10 + u)
    p = (k - u) // 2
    tc = torch.nn.ConvTranspose1d(6, 5, k, u, padding=p)
    ours = load_torch(ConvTranspose1d(6, 5, k, u, p, key=jr.key(0)), to_numpy(tc.state_dict()))
    x = np.random.default_rng(k).standard_normal((6, 9)).astype(np.float32)
    cot = np.random.default_rng(u).standard_normal((5, ours.out_length(9))).astype(np.float32)
    xt = torch.from_numpy(x)[None].requires_grad_()
    yt = tc(xt)
    (yt * torch.from_numpy(cot)[None]).sum().backward()
    loss = lambda mx: jnp.sum(mx[0](mx[1]) * cot)
    gm, gx = eqx.filter_jit(eqx.filter_grad(loss))((ours, jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(call(ours, jnp.asarray(x))), yt[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), xt.grad[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(gm.weight), tc.weight.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(gm.bias)[:, 0], tc.bias.grad.numpy(), atol=1e-5)


def test_conv_transpose_init_and_errors():
    layer = ConvTranspose1d(64, 32, 16, 8, 4, key=jr.key(0))
    assert layer.weight.shape == (64, 32, 16) and layer.bias.shape == (32, 1)
    lim = 1 / np.sqrt(32 * 16)                       # PyTorch's fan_in for ConvTranspose1d
    assert np.abs(np.asarray(layer.weight)).max() <= lim and np.std(np.asarray(layer.weight)) > 0.8 * lim / np.sqrt(3)
    with pytest.raises(ValueError, match="expects"):
        layer(jnp.zeros((63, 4)))
    with pytest.raises(ValueError):
        ConvTranspose1d(4, 4, 0, 2, key=jr.key(0))


def test_weight_norm_is_trained():
    cfg = TINY
    gen = Generator(cfg, key=jr.key(0))
    assert gen.ups[0].g.shape == (cfg.channels[0], 1, 1)           # one g per INPUT channel (PyTorch dim 0)
    assert gen.resblocks[0].convs1[0].g.shape == (cfg.channels[1], 1, 1)
    x = jr.normal(jr.key(1), (2, 80, 4))
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.mean(jax.vmap(m)(x) ** 2)))(gen)
    for wn in [grads.conv_pre, grads.ups[0], grads.ups[-1], grads.resblocks[-1].convs2[-1], grads.conv_post]:
        assert float(jnp.abs(wn.g).sum()) > 0 and float(jnp.abs(wn.layer.weight).sum()) > 0


def test_resblocks_use_all_dilations_and_structure():
    gen = eqx.filter_eval_shape(Generator, V1, key=jr.key(0))
    assert len(gen.resblocks) == 12
    for n, rb in enumerate(gen.resblocks):
        assert isinstance(rb, ResBlock1)
        k = V1.resblock_kernel_sizes[n % 3]
        assert [c.layer.dilation[0] for c in rb.convs1] == [1, 3, 5]
        assert [c.layer.kernel_size[0] for c in rb.convs1 + rb.convs2] == [k] * 6
    v3 = eqx.filter_eval_shape(Generator, V3, key=jr.key(0))
    assert all(isinstance(rb, ResBlock2) for rb in v3.resblocks)
    assert [[c.layer.dilation[0] for c in rb.convs] for rb in v3.resblocks[:3]] == [[1, 2], [2, 6], [3, 12]]
    assert resblock_receptive_field(11, (1, 3, 5)) == 121 and resblock_receptive_field(7, (3, 12), "2") == 91


def test_receptive_field_matches_gradient():
    cfg = GeneratorConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3, 5), upsample_rates=(4, 2),
                          upsample_kernel_sizes=(8, 4), resblock_dilation_sizes=((1, 2), (2, 3)))
    gen = Generator(cfg, key=jr.key(0))
    before, after = receptive_field(cfg)
    T = 2 * (before + after) + 4
    frame = T // 2
    f = eqx.filter_jit(jax.jacrev(lambda m, x: m(x)[0, frame * cfg.hop:(frame + 1) * cfg.hop], argnums=1))
    jac = np.asarray(f(gen, jr.normal(jr.key(1), (80, T))))
    nz = np.nonzero(np.abs(jac).sum((0, 1)))[0]
    assert (frame - nz.min(), nz.max() - frame) == (before, after)


def test_init_options():
    cfg = GeneratorConfig(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),),
                          init="normal")
    gen = Generator(cfg, key=jr.key(0))
    v = np.asarray(gen.resblocks[0].convs1[0].layer.weight)
    assert abs(v.std() - 0.01) < 0.002
    np.testing.assert_allclose(np.asarray(gen.ups[0].g).ravel(),
                               np.linalg.norm(np.asarray(gen.ups[0].layer.weight).reshape(32, -1), axis=1), rtol=1e-5)
    a, b = Generator(V2, key=jr.key(3)), Generator(V2, key=jr.key(3))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array)),
                                                    jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array))))
    c = Generator(V2, key=jr.key(4))
    assert not np.array_equal(np.asarray(a.conv_pre.layer.weight), np.asarray(c.conv_pre.layer.weight))



def test_init_is_the_same_eagerly_and_under_jit():
    "One key, one set of weights: a generator built eagerly equals one built inside `jit` (and under both inits)."
    for cfg in (TINY, GeneratorConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3,),
                                      resblock_dilation_sizes=((1, 3, 5),), init="normal")):
        eager = Generator(cfg, key=jr.key(5))
        traced = eqx.filter_jit(lambda k: Generator(cfg, key=k))(jr.key(5))
        arrays = lambda m: jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))
        assert len(arrays(eager)) == len(arrays(traced))
        for a, b in zip(arrays(eager), arrays(traced)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)

def test_bad_config_and_input():
    with pytest.raises(ValueError, match="resblock must be"):
        GeneratorConfig(resblock="3")
    with pytest.raises(ValueError, match="divisible"):
        GeneratorConfig(upsample_initial_channel=100)
    with pytest.raises(ValueError, match="cond_channels"):
        GeneratorConfig(cond_in_each_up_layer=True)
    gen = eqx.filter_eval_shape(Generator, generator_config("ci"), key=jr.key(0))
    with pytest.raises(ValueError, match=r"expects x of shape \(80, t\)"):
        eqx.filter_eval_shape(lambda m, x: m(x), gen, jnp.zeros((2, 80, 10)))
    with pytest.raises(ValueError, match="no conditioning"):
        eqx.filter_eval_shape(lambda m, x: m(x, x[:1, :1]), gen, jnp.zeros((80, 10)))
    xg = eqx.filter_eval_shape(Generator, XTTS, key=jr.key(0))
    with pytest.raises(ValueError, match=r"pass g of shape \(512, 1\)"):
        eqx.filter_eval_shape(lambda m, x: m(x), xg, jnp.zeros((1024, 10)))
    assert generator_config("gpu") == V1 and generator_config("ci").hop == 256 == generator_config("cpu").hop
