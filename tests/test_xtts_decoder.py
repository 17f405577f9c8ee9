"""XTTS HifiDecoder pieces against coqui-tts: the interpolation and the speaker encoder."""
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xtts_book.xtts_decoder import ResNetSpeakerEncoder, interpolate_linear, torch_linear_indices

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_interp(x, s):
    return F.interpolate(torch.from_numpy(x)[None], scale_factor=[s], mode="linear")[0].numpy()


@pytest.mark.parametrize("scale", [4.0, 24000 / 22050, 1.5, 3.3, 0.5, 1 / 3, 2.0])
def test_interpolate_matches_torch_many_lengths(scale):
    rng = np.random.default_rng(0)
    for length in list(range(1, 50)) + [63, 97, 255, 1001, 4097]:
        if math.floor(length * scale) < 1:
            continue
        x = rng.standard_normal((2, length)).astype(np.float32)
        ref = _torch_interp(x, scale)
        got = interpolate_linear(x, scale)
        assert got.shape == ref.shape, (length, scale)
        np.testing.assert_allclose(got, ref, atol=1e-6, err_msg=f"length {length}, scale {scale}")


def test_interpolate_jit_and_edges():
    rng = np.random.default_rng(1)
    f = jax.jit(interpolate_linear, static_argnums=1)
    for length, s in [(1, 24000 / 22050), (2, 24000 / 22050), (3, 24000 / 22050), (37, 4.0), (101, 24000 / 22050)]:
        x = rng.standard_normal((5, length)).astype(np.float32)
        np.testing.assert_allclose(np.asarray(f(jnp.asarray(x), s)), _torch_interp(x, s), atol=1e-6)
    # left edge clamps to the first sample, right edge never reads past the last one
    i0, i1, w0, w1 = torch_linear_indices(10, 3.3)
    assert i0.min() == 0 and i1.max() == 9 and (w0 >= 0).all() and (w1 >= 0).all()
    # the copy rule: floor(L * s) == L returns the input itself
    x = jnp.arange(7.0)[None]
    assert interpolate_linear(x, 24000 / 22050) is x


def test_interpolate_bad_input():
    with pytest.raises(ValueError, match="leaves no frame"):
        interpolate_linear(jnp.ones((2, 1)), 0.5)
    with pytest.raises(ValueError, match="scale > 0"):
        torch_linear_indices(5, -1.0)


def _randomise_batchnorms(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def test_speaker_encoder_parity_with_coqui():
    TTS = pytest.importorskip("TTS")
    from TTS.encoder.models.resnet import ResNetSpeakerEncoder as TorchSE
    from xtts_book.convert import speaker_encoder_from_torch

    torch.manual_seed(1)
    audio_config = {"fft_size": 512, "win_length": 400, "hop_length": 160, "sample_rate": 16000,
                    "preemphasis": 0.97, "num_mels": 64}
    ref = TorchSE(input_dim=64, proj_dim=512, log_input=True, use_torch_spec=True, audio_config=audio_config).eval()
    _randomise_batchnorms(ref, seed=1)
    ours = speaker_encoder_from_torch(ref.state_dict())
    assert isinstance(ours, ResNetSpeakerEncoder)
    wav = (0.2 * np.random.default_rng(5).standard_normal(8_001)).astype(np.float32)   # odd length
    got, got_raw = eqx.filter_jit(lambda m, w: (m(w), m(w, l2_norm=False)))(ours, jnp.asarray(wav))
    with torch.no_grad():
        want = ref(torch.from_numpy(wav)[None].clone(), l2_norm=True)[0].numpy()
        want_raw = ref(torch.from_numpy(wav)[None].clone(), l2_norm=False)[0].numpy()
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
    scale = np.abs(want_raw).max()
    np.testing.assert_allclose(np.asarray(got_raw) / scale, want_raw / scale, atol=1e-4)
    assert abs(float(jnp.linalg.norm(got)) - 1) < 1e-5


def test_speaker_encoder_rejects_short_audio():
    spk = eqx.filter_eval_shape(lambda: ResNetSpeakerEncoder(key=jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="longer than 256"):
        spk.torch_spec(jnp.zeros(200))
    with pytest.raises(ValueError, match="multiple of 8"):
        ResNetSpeakerEncoder(input_dim=60, key=jax.random.PRNGKey(0))


@pytest.mark.parametrize("sr,n", [(22050, 22_051), (24000, 9_999), (44100, 4_411), (8000, 801), (32000, 3)])
def test_resample_matches_torchaudio(sr, n):
    torchaudio = pytest.importorskip("torchaudio")
    from xtts_book.xtts_decoder import resample
    x = (0.3 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    want = torchaudio.functional.resample(torch.from_numpy(x), sr, 16000).numpy()
    got = np.asarray(resample(jnp.asarray(x), sr, 16000))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_resample_bad_input():
    from xtts_book.xtts_decoder import resample
    with pytest.raises(ValueError, match="positive integers"):
        resample(jnp.ones(10), 0, 16000)
    with pytest.raises(ValueError, match="1-D"):
        resample(jnp.ones((2, 10)), 22050, 16000)
    x = jnp.ones(5)
    assert resample(x, 16000, 16000) is x
