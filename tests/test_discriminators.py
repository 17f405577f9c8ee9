"""Parity of xtts_book.discriminators with the PyTorch HiFi-GAN discriminators (Coqui's copy of the official models.py)."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
hd = pytest.importorskip("TTS.vocoder.models.hifigan_discriminator")

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from xtts_book.convert import split_discriminator_state_dict
from xtts_book.discriminators import (DiscriminatorP, DiscriminatorS, MultiPeriodDiscriminator,
                                      MultiScaleDiscriminator, avg_pool, discriminate, discriminator_loss,
                                      discriminators_from_torch, feature_loss, generator_loss, load_discriminator)
from xtts_book.layers import SpectralNorm, StateDictError

warnings.filterwarnings("ignore", category=FutureWarning)
T = 2311            # prime: not a multiple of any period, odd for the pools
B = 2


def _scramble_gains(module, seed):
    "Make every weight-norm g differ from ||v|| (a loader that ignores g, or mixes g and v up, must fail)."
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("original0") or name.endswith("weight_g"):
                p.mul_(0.5 + torch.rand(p.shape, generator=gen))


@pytest.fixture(scope="module")
def torch_discs():
    torch.manual_seed(0)
    mpd, msd = hd.MultiPeriodDiscriminator(), hd.MultiScaleDiscriminator()
    _scramble_gains(mpd, 1)
    _scramble_gains(msd, 2)
    return mpd, msd


@pytest.fixture(scope="module")
def wavs():
    rng = np.random.default_rng(0)
    t = np.arange(T) / 22050
    x = 0.5 * np.sin(2 * np.pi * 220 * t)[None] + 0.1 * rng.standard_normal((B, T))
    return x[:, None, :].astype(np.float32)


@pytest.fixture(scope="module")
def ours(torch_discs):
    mpd, msd = torch_discs
    return discriminators_from_torch(mpd.state_dict(), msd.state_dict())


run = eqx.filter_jit(discriminate)


def _flat(scores, feats):
    return list(scores) + [f for fs in feats for f in fs]


def _assert_close(ours_list, torch_list, tol=1e-4):
    assert len(ours_list) == len(torch_list)
    for i, (a, b) in enumerate(zip(ours_list, torch_list)):
        b = b.detach().numpy()
        assert a.shape == b.shape, (i, a.shape, b.shape)
        err = float(np.max(np.abs(np.asarray(a) - b)))
        assert err <= tol * max(1.0, float(np.max(np.abs(b)))), f"output {i}: max |diff| {err:.2e}"


def test_mpd_parity_eval(torch_discs, ours, wavs):
    mpd_t, _ = torch_discs
    mpd, _, state = ours
    mpd_t.eval()
    with torch.no_grad():
        s_t, f_t = mpd_t(torch.from_numpy(wavs))
    s, f, state2 = run(mpd, jnp.asarray(wavs), state, inference=True)
    assert len(s) == 5 and all(len(x) == 6 for x in f)
    _assert_close(_flat(s, f), _flat(s_t, f_t))
    assert f[0][0].shape == (B, 32, (T + 1) // 2 // 3 + 1, 2)     # channels first (c, h, p), like PyTorch


def test_msd_parity_eval_then_train(torch_discs, ours, wavs):
    _, msd_t = torch_discs
    _, msd, state = ours
    x_t = torch.from_numpy(wavs)
    sn_t = msd_t.discriminators[0].convs[3]
    u0 = sn_t.weight_u.clone()
    # inference: the stored u, v are used and left alone
    msd_t.eval()
    with torch.no_grad():
        s_t, f_t = msd_t(x_t)
    s, f, state = run(msd, jnp.asarray(wavs), state, inference=True)
    assert len(s) == 3 and all(len(x) == 8 for x in f)
    _assert_close(_flat(s, f), _flat(s_t, f_t))
    assert torch.equal(sn_t.weight_u, u0)
    # one training forward: one power iteration for the whole batch, then normalise with the new u, v
    msd_t.train()
    with torch.no_grad():
        s_t, f_t = msd_t(x_t)
    assert not torch.allclose(sn_t.weight_u, u0)
    s, f, state = run(msd, jnp.asarray(wavs), state, inference=False)
    _assert_close(_flat(s, f), _flat(s_t, f_t))
    for j, conv in enumerate(msd.discriminators[0].convs + (msd.discriminators[0].conv_post,)):
        u, v = state.get(conv.uv_index)
        t_conv = msd_t.discriminators[0].convs[j] if j < 7 else msd_t.discriminators[0].conv_post
        np.testing.assert_allclose(np.asarray(u), t_conv.weight_u.numpy(), atol=1e-5)
        np.testing.assert_allclose(np.asarray(v), t_conv.weight_v.numpy(), atol=1e-5)
    # eval again: uses the updated vectors, as PyTorch does
    msd_t.eval()
    with torch.no_grad():
        s_t, f_t = msd_t(x_t)
    s, f, _ = run(msd, jnp.asarray(wavs), state, inference=True)
    _assert_close(s, s_t)


def test_official_key_spelling_and_split(torch_discs, monkeypatch):
    "The official models.py uses the old weight_norm (weight_g / weight_v); its do_* file is {'mpd': sd, 'msd': sd}."
    monkeypatch.setattr(torch.nn.utils.parametrizations, "weight_norm", torch.nn.utils.weight_norm)
    torch.manual_seed(3)
    dp_t = hd.DiscriminatorP(3)
    assert "convs.0.weight_g" in dp_t.state_dict()
    _scramble_gains(dp_t, 4)
    d = eqx.filter_eval_shape(DiscriminatorP, 3, key=jr.PRNGKey(0))
    d, _ = load_discriminator(d, dp_t.state_dict())
    x = np.random.default_rng(1).standard_normal((1, 1, 500)).astype(np.float32)
    with torch.no_grad():
        s_t, f_t = dp_t(torch.from_numpy(x))
    s, f, _ = d(jnp.asarray(x[0]))
    _assert_close([s] + f, [s_t[0]] + [y[0] for y in f_t])
    # checkpoint layouts
    mpd_t, msd_t = torch_discs
    a, b = split_discriminator_state_dict({"mpd": mpd_t.state_dict(), "msd": msd_t.state_dict(), "steps": 1})
    assert a.keys() == mpd_t.state_dict().keys() and b.keys() == msd_t.state_dict().keys()
    flat = {f"model_d.mpd.{k}": v for k, v in mpd_t.state_dict().items()}
    flat.update({f"model_d.msd.{k}": v for k, v in msd_t.state_dict().items()})
    a, b = split_discriminator_state_dict(flat)
    assert a.keys() == mpd_t.state_dict().keys() and b.keys() == msd_t.state_dict().keys()


def test_bad_state_dicts_raise(torch_discs):
    mpd_t, msd_t = torch_discs
    sd = dict(msd_t.state_dict())
    del sd["discriminators.0.convs.2.weight_u"]
    sd["discriminators.1.convs.9.bias"] = torch.zeros(3)
    sd["discriminators.2.conv_post.bias"] = torch.zeros(2)
    with pytest.raises(StateDictError) as e:
        discriminators_from_torch(mpd_t.state_dict(), sd)
    msg = str(e.value)
    assert "discriminators.0.convs.2.weight_u" in msg and "discriminators.1.convs.9.bias" in msg
    assert "discriminators.2.conv_post.bias" in msg
    with pytest.raises(StateDictError):
        split_discriminator_state_dict({"generator.conv_pre.bias": 0})


def test_bad_input_and_counts():
    d = eqx.filter_eval_shape(DiscriminatorS, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match=r"\(1, t\)"):
        d(jnp.zeros((2, 100)))
    with pytest.raises(ValueError, match=r"\(b, 1, t\)"):
        discriminate(d, jnp.zeros((2, 100)))
    sn = eqx.filter_eval_shape(DiscriminatorS, key=jr.PRNGKey(0), use_spectral_norm=True)
    with pytest.raises(ValueError, match="state"):
        sn(jnp.zeros((1, 100)))
    # parameter counts of the paper's modules (weight norm fused: the g's are counted apart)
    for cls, kw, fused, gains in [(DiscriminatorP, dict(period=2), 8_218_433, 2_721), (DiscriminatorS, {}, 9_870_209, 4_097)]:
        m = eqx.filter_eval_shape(cls, key=jr.PRNGKey(0), **kw)
        n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(m) if isinstance(x, jax.ShapeDtypeStruct))
        g = sum(int(np.prod(w.g.shape)) for w in m.convs + (m.conv_post,))
        assert (n - g, g) == (fused, gains)


def test_avg_pool_matches_torch():
    x = np.random.default_rng(2).standard_normal((1, 101)).astype(np.float32)
    want = torch.nn.AvgPool1d(4, 2, padding=2)(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(np.asarray(avg_pool(jnp.asarray(x))), want, atol=1e-6)
    # reverse mode under jit (the generator step differentiates through the MSD's pools)
    xt = torch.from_numpy(x)[None].requires_grad_()
    (torch.nn.AvgPool1d(4, 2, padding=2)(xt) ** 2).sum().backward()
    g = jax.jit(jax.grad(lambda a: jnp.sum(avg_pool(a) ** 2)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), xt.grad[0].numpy(), atol=1e-6)


def test_losses_match_official_and_coqui():
    from TTS.vocoder.layers.losses import MelganFeatureLoss, MSEDLoss, MSEGLoss
    g = torch.Generator().manual_seed(5)
    real = [torch.randn(3, n, generator=g) for n in (7, 5, 4)]
    fake = [torch.randn(3, n, generator=g) for n in (7, 5, 4)]
    rf = [[torch.randn(3, 4, n, generator=g) for n in (9, 3)], [torch.randn(3, 2, 6, 2, generator=g)]]
    ff = [[torch.randn(3, 4, n, generator=g) for n in (9, 3)], [torch.randn(3, 2, 6, 2, generator=g)]]
    J = lambda ts: [jnp.asarray(t.numpy()) for t in ts]
    # official formulas (models.py)
    d_want = sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2) for r, f in zip(real, fake))
    g_want = sum(torch.mean((1 - f) ** 2) for f in fake)
    fm_want = 2 * sum(torch.mean(torch.abs(r - f)) for rs, fs in zip(rf, ff) for r, f in zip(rs, fs))
    d, d_r, d_g = discriminator_loss(J(real), J(fake))
    gl, g_each = generator_loss(J(fake))
    fm = feature_loss([J(x) for x in rf], [J(x) for x in ff])
    np.testing.assert_allclose([float(d), float(gl), float(fm)], [float(d_want), float(g_want), float(fm_want)], rtol=1e-6)
    # Coqui's per-discriminator terms are the same; Coqui averages over discriminators where the official sums
    coqui_d = [MSEDLoss()(f, r)[0] for r, f in zip(real, fake)]
    np.testing.assert_allclose([float(r + f) for r, f in zip(d_r, d_g)], [float(x) for x in coqui_d], rtol=1e-6)
    np.testing.assert_allclose([float(x) for x in g_each], [float(MSEGLoss()(f)) for f in fake], rtol=1e-6)
    n_feats = sum(len(x) for x in rf)
    np.testing.assert_allclose(float(fm) / 2, float(MelganFeatureLoss()(ff, rf)) * n_feats, rtol=1e-6)
    with pytest.raises(ValueError):
        discriminator_loss(J(real), J(fake[:2]))


def test_spectral_norm_sigma_to_one_and_frozen_in_inference():
    conv = eqx.nn.Conv1d(8, 16, 5, key=jr.PRNGKey(1))
    sn, state = eqx.nn.make_with_state(SpectralNorm)(conv, key=jr.PRNGKey(2))
    w_mat = lambda s: np.asarray(conv.weight).reshape(16, -1) / float(sn.sigma(s, inference=True)[0])
    step = eqx.filter_jit(lambda s: sn.sigma(s)[1])
    state = step(state)
    after_one = np.linalg.norm(w_mat(state), 2)
    for _ in range(99):
        state = step(state)
    after_100 = np.linalg.norm(w_mat(state), 2)
    assert abs(after_100 - 1) < min(1e-3, abs(after_one - 1))      # sigma(W / sigma_hat) -> 1
    frozen = [np.asarray(a) for a in state.get(sn.uv_index)]
    _, state = sn(jnp.zeros((8, 20)), state, inference=True)
    for a, b in zip(frozen, state.get(sn.uv_index)):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_loaded_arrays_do_not_alias_torch_memory():
    "PyTorch updates u, v (and an optimiser the weights) in place: that must not leak into the loaded module."
    torch.manual_seed(7)
    ds_t = hd.DiscriminatorS(use_spectral_norm=True)
    d, st = eqx.filter_eval_shape(eqx.nn.make_with_state(DiscriminatorS), key=jr.PRNGKey(0), use_spectral_norm=True)
    st = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), st)
    d, st = load_discriminator(d, ds_t.state_dict(), st)
    u_before = np.asarray(st.get(d.convs[4].uv_index)[0]).copy()
    w_before = np.asarray(d.convs[4].layer.weight).copy()
    with torch.no_grad():
        ds_t.convs[4].weight_u.add_(1.0)
        ds_t.convs[4].weight_orig.mul_(2.0)
    np.testing.assert_array_equal(np.asarray(st.get(d.convs[4].uv_index)[0]), u_before)
    np.testing.assert_array_equal(np.asarray(d.convs[4].layer.weight), w_before)


def test_construction_matches_pytorch_init():
    "Our constructor: weight-norm g = ||v|| at init, weights and biases in PyTorch's +-1/sqrt(fan_in), unit u and v."
    p = DiscriminatorP(7, key=jr.PRNGKey(1))
    for conv in p.convs + (p.conv_post,):
        v = np.asarray(conv.layer.weight)
        bound = 1 / np.sqrt(np.prod(v.shape[1:]))
        assert bound >= np.abs(v).max() > 0.9 * bound and np.abs(np.asarray(conv.layer.bias)).max() <= bound
        np.testing.assert_allclose(np.asarray(conv.g).ravel(), np.sqrt((v ** 2).sum(axis=(1, 2, 3))), rtol=1e-5)
    sn, st = eqx.nn.make_with_state(SpectralNorm)(eqx.nn.Conv1d(128, 256, 41, groups=16, key=jr.PRNGKey(2)),
                                                  key=jr.PRNGKey(3))
    u, v = st.get(sn.uv_index)
    assert u.shape == (256,) and v.shape == (8 * 41,)
    np.testing.assert_allclose([np.linalg.norm(u), np.linalg.norm(v)], [1.0, 1.0], rtol=1e-5)
