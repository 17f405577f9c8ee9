"""xtts_book.audio: mel parity with the PyTorch references, JAX properties, and bad audio input."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import jax
import jax.numpy as jnp

from xtts_book.audio import (SAMPLE_RATE, AudioError, load_audio, prepare_audio, is_silent, peak_db,
                             mel_filterbank, dvae_mel, hifigan_mel, mel_frames, stft,
                             compute_mel_norms, save_mel_norms, load_mel_norms)

FIX = Path(__file__).parent / "fixtures" / "audio"
ESPEAK = sorted(FIX.glob("espeak_*.wav"))
torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")
librosa = pytest.importorskip("librosa")

# XTTS's real mel_stats are negative per-bin means of the log power mel, bin 0 -7.0095 ... bin 79 -9.4822
NORMS = np.linspace(-7.0095, -9.4822, 80).astype(np.float32)


def torch_dvae_mel(wav, mel_norms=None):
    "XTTS `dvae_wav_to_mel` / `TorchMelSpectrogram`: torchaudio MelSpectrogram, log(clamp), / mel_norms."
    ms = torchaudio.transforms.MelSpectrogram(n_fft=1024, hop_length=256, win_length=1024, power=2,
                                              normalized=False, sample_rate=22050, f_min=0, f_max=8000,
                                              n_mels=80, norm="slaney")
    mel = torch.log(torch.clamp(ms(torch.from_numpy(wav)[None]), min=1e-5))
    if mel_norms is not None:
        mel = mel / torch.from_numpy(mel_norms).unsqueeze(0).unsqueeze(-1)
    return mel[0].numpy()


def torch_hifigan_mel(wav, fmax=8000):
    "jik876/hifi-gan meldataset.mel_spectrogram (n_fft 1024, hop 256, win 1024, 80 mels, fmin 0), from xtts_book.reference."
    from xtts_book.reference import torch_hifigan_mel as mel_fn
    return mel_fn(fmax)(torch.from_numpy(wav)[None])[0].numpy()


def torch_dvae_mel_f64(wav):
    ms = torchaudio.transforms.MelSpectrogram(n_fft=1024, hop_length=256, win_length=1024, power=2, sample_rate=22050,
                                              f_min=0, f_max=8000, n_mels=80, norm="slaney").double()
    return torch.log(torch.clamp(ms(torch.from_numpy(wav.astype(np.float64))[None]), min=1e-5))[0].numpy()


def torch_hifigan_mel_f64(wav, fmax=8000):
    x = torch.from_numpy(wav.astype(np.float64))[None, None]
    y = torch.nn.functional.pad(x, (384, 384), mode="reflect")[:, 0]
    s = torch.stft(y, 1024, 256, 1024, torch.hann_window(1024, dtype=torch.float64), center=False, return_complex=True)
    basis = torch.from_numpy(librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=fmax, dtype=np.float64))
    return torch.log(torch.clamp(basis @ torch.sqrt(s.real ** 2 + s.imag ** 2 + 1e-9), min=1e-5))[0].numpy()


def assert_parity(ours, ref, truth_fn, tol=1e-4):
    """max |ours - torch| < tol (log domain). Where torch's own float32 rounding is already near tol
    (spectral valleys ~80 dB under the peak of a frame), judge both against a float64 run instead:
    ours must be no further from it than twice torch's own error."""
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref).max()
    if diff < tol:
        return
    truth = truth_fn()
    err_ours, err_torch = np.abs(ours - truth).max(), np.abs(ref - truth).max()
    assert err_torch > tol / 2 and err_ours < 2 * err_torch and err_ours < 3 * tol, (diff, err_ours, err_torch)


def _random_waves():
    rng = np.random.default_rng(1234)
    out = []
    for n, amp in [(513, 0.5), (8192 + 77, 1.0), (22050, 0.01), (12345, 1e-3), (40001, 0.2)]:
        out.append((f"noise{n}@{amp}", np.clip(amp * rng.standard_normal(n), -1, 1).astype(np.float32)))
    return out


def _speech_waves():
    out = [(p.name, load_audio(p)) for p in ESPEAK]
    assert len(out) >= 2, "espeak fixtures missing"
    # odd lengths cut from real speech
    w = out[0][1]
    out += [("speech[:7777]", w[:7777]), ("speech[1000:10001]", w[1000:10001])]
    return out


CASES = _random_waves() + _speech_waves()


@pytest.mark.parametrize("name,wav", CASES, ids=[c[0] for c in CASES])
def test_dvae_mel_parity(name, wav):
    ref = torch_dvae_mel(wav)
    ours = np.asarray(dvae_mel(wav))
    assert ours.shape == ref.shape == (80, 1 + len(wav) // 256)
    assert_parity(ours, ref, lambda: torch_dvae_mel_f64(wav))
    refn = torch_dvae_mel(wav, NORMS)
    oursn = np.asarray(dvae_mel(wav, NORMS))
    assert_parity(oursn, refn, lambda: torch_dvae_mel_f64(wav) / NORMS[:, None])


@pytest.mark.parametrize("name,wav", CASES, ids=[c[0] for c in CASES])
def test_hifigan_mel_parity(name, wav):
    if len(wav) <= 384:
        pytest.skip("shorter than the reflect pad")
    for fmax in (8000, None):
        ref = torch_hifigan_mel(wav, fmax)
        ours = np.asarray(hifigan_mel(wav, fmax))
        assert ours.shape == ref.shape == (80, mel_frames(len(wav)))
        assert_parity(ours, ref, lambda: torch_hifigan_mel_f64(wav, fmax))


def test_chirp_against_float64():
    """A pure swept tone has ~100 dB between its peak and the Hann sidelobes; there float32 FFT rounding
    (in torch as in JAX) reaches 1e-4 (power mel) to 3e-3 (magnitude mel) in the log domain. Judge both
    against a float64 run."""
    t = np.arange(16384) / SAMPLE_RATE
    wav = (0.5 * np.sin(2 * np.pi * (50 + 5000 * t) * t)).astype(np.float32)
    for ours, ref, truth in [(dvae_mel(wav), torch_dvae_mel(wav), torch_dvae_mel_f64(wav)),
                             (hifigan_mel(wav), torch_hifigan_mel(wav), torch_hifigan_mel_f64(wav))]:
        err_jax, err_torch = np.abs(np.asarray(ours) - truth).max(), np.abs(ref - truth).max()
        assert err_jax < 2 * err_torch, (err_jax, err_torch)


def test_frames_multiple_of_hop():
    for n in (256 * 3, 8192, 256 * 100):
        assert hifigan_mel(np.zeros(n, np.float32) + 0.01).shape == (80, n // 256)
        assert dvae_mel(np.zeros(n, np.float32) + 0.01).shape == (80, 1 + n // 256)


def test_filterbanks_match_libraries():
    dv = mel_filterbank(fmax=8000, scale="htk")
    tf = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 80, 22050, norm="slaney", mel_scale="htk").T.numpy()
    np.testing.assert_allclose(dv, tf, atol=1e-6)
    for fmax in (8000, None):
        np.testing.assert_allclose(mel_filterbank(fmax=fmax, scale="slaney"),
                                   librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=fmax), atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        mel_filterbank(scale="bark")


def test_stft_matches_torch():
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    ours = np.asarray(stft(jnp.asarray(x)))
    ref = torch.stft(torch.from_numpy(x), 1024, 256, 1024, torch.hann_window(1024), center=False,
                     return_complex=True).T.numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_jit_vmap_grad():
    x = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (3, 2048))
    for fn in (dvae_mel, hifigan_mel):
        single = jnp.stack([fn(w) for w in x])
        np.testing.assert_allclose(jax.jit(jax.vmap(fn))(x), single, atol=1e-5)
        np.testing.assert_allclose(fn(x), single, atol=1e-5)  # leading axes are vmapped
        g = jax.grad(lambda w: fn(w).mean())(x[0])
        assert g.shape == (2048,) and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
    n = jnp.asarray(NORMS)
    np.testing.assert_allclose(jax.jit(dvae_mel)(x[0], n), dvae_mel(x[0], n), atol=1e-5)
    # gradients match torch's on the hifigan loss mel (the L1 mel loss trains through it)
    w = np.array(x[1])
    tw = torch.from_numpy(w).requires_grad_(True)
    basis = torch.from_numpy(librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=None)).float()
    y = torch.nn.functional.pad(tw[None, None], (384, 384), mode="reflect")[:, 0]
    s = torch.stft(y, 1024, 256, 1024, torch.hann_window(1024), center=False, return_complex=True)
    torch.log(torch.clamp(basis @ torch.sqrt(s.real ** 2 + s.imag ** 2 + 1e-9), min=1e-5)).mean().backward()
    g = np.asarray(jax.grad(lambda v: hifigan_mel(v, None).mean())(jnp.asarray(w)))
    np.testing.assert_allclose(g, tw.grad.numpy(), atol=1e-6, rtol=1e-3)


def test_filterbank_is_constant_under_grad():
    # differentiating with respect to nothing but the wave: the filterbank must not leak a tracer error
    f = jax.jit(jax.grad(lambda w: dvae_mel(w, jnp.asarray(NORMS)).sum()))
    assert f(jnp.ones(2048) * 0.1).shape == (2048,)


def test_mels_reject_too_short():
    with pytest.raises(ValueError, match="512"):
        dvae_mel(np.zeros(512, np.float32))
    with pytest.raises(ValueError, match="384"):
        hifigan_mel(np.zeros(300, np.float32))


# ---------------------------------------------------------------- load_audio: bad and unusual input

def _sine(sr, seconds=1.0, f=440.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file") as e:
        load_audio(tmp_path / "nope.wav")
    assert "nope.wav" in str(e.value)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"; p.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        load_audio(p)


def test_corrupt_header(tmp_path):
    p = tmp_path / "broken.wav"
    sf.write(p, _sine(16000), 16000)
    data = bytearray(p.read_bytes()); data[12:36] = bytes(24)  # wipe the fmt chunk
    p.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="corrupt WAV") as e:
        load_audio(p)
    assert "broken.wav" in str(e.value)
    q = tmp_path / "truncated.flac"; q.write_bytes(b"fLaC\x00\x00")
    with pytest.raises(AudioError, match="corrupt FLAC"):
        load_audio(q)


def test_non_audio_file(tmp_path):
    p = tmp_path / "readme.wav"; p.write_text("not audio at all\n" * 10)
    with pytest.raises(AudioError, match="not an audio file"):
        load_audio(p)
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)
    assert issubclass(AudioError, ValueError)


def test_nan_samples(tmp_path):
    w = _sine(22050); w[100] = np.nan; w[200] = np.inf
    p = tmp_path / "nan.wav"; sf.write(p, w, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="2 of 22050 samples are NaN or Inf"):
        load_audio(p)


def test_no_samples(tmp_path):
    p = tmp_path / "zero_frames.wav"; sf.write(p, np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(p)


def test_silence_loads_and_is_flagged(tmp_path):
    p = tmp_path / "silence.wav"; sf.write(p, np.zeros(22050, np.float32), 22050)
    w = load_audio(p)
    assert w.shape == (22050,) and is_silent(w) and peak_db(w) == float("-inf")
    assert is_silent(np.full(100, 1e-4, np.float32))            # -80 dBFS hum
    assert not is_silent(load_audio(ESPEAK[0]))


def test_stereo_downmix(tmp_path):
    l, r = _sine(22050, amp=0.8), _sine(22050, f=660, amp=0.2)
    p = tmp_path / "stereo.wav"; sf.write(p, np.stack([l, r], 1), 22050, subtype="FLOAT")
    w = load_audio(p)
    assert w.ndim == 1 and w.dtype == np.float32
    np.testing.assert_allclose(w, (l + r) / 2, atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000, 22050])
def test_resample(tmp_path, sr):
    p = tmp_path / f"sine{sr}.flac"; sf.write(p, _sine(sr, 2.0), sr, subtype="PCM_16")
    w = load_audio(p)
    assert w.dtype == np.float32 and abs(len(w) - 2 * SAMPLE_RATE) <= 1
    spec = np.abs(np.fft.rfft(w[2000:-2000]))
    peak_hz = np.argmax(spec) * SAMPLE_RATE / len(w[2000:-2000])
    assert abs(peak_hz - 440) < 2                                     # the tone kept its pitch
    np.testing.assert_allclose(w[2000:-2000], _sine(SAMPLE_RATE, 2.0)[2000:-2000], atol=2e-3)
    w16 = load_audio(p, sr=16000)
    assert abs(len(w16) - 32000) <= 1


def test_values_beyond_full_scale_are_clipped(tmp_path):
    p = tmp_path / "hot.wav"; sf.write(p, _sine(22050, amp=3.0), 22050, subtype="FLOAT")
    w = load_audio(p)
    assert w.max() <= 1.0 and w.min() >= -1.0 and (np.abs(w) == 1.0).sum() > 1000


def test_prepare_audio_int_pcm():
    x = np.array([0, 16384, -32768, 32767], np.int16)
    np.testing.assert_allclose(prepare_audio(x, 22050), [0, 0.5, -1, 32767 / 32768])
    with pytest.raises(AudioError, match="shape"):
        prepare_audio(np.zeros((2, 2, 2)), 22050)


def test_ten_minute_file(tmp_path):
    sr, n = 16000, 16000 * 600
    rng = np.random.default_rng(0)
    p = tmp_path / "long.wav"; sf.write(p, (0.1 * rng.standard_normal(n)).astype(np.float32), sr, subtype="PCM_16")
    w = load_audio(p)
    assert w.dtype == np.float32 and abs(len(w) - 600 * SAMPLE_RATE) <= 1
    assert np.isfinite(w).all() and 0.05 < w.std() < 0.15


# ---------------------------------------------------------------- mel norms

def test_mel_norms_roundtrip(tmp_path):
    waves = [load_audio(p) for p in ESPEAK]
    norms = compute_mel_norms(waves)
    mels = [np.asarray(dvae_mel(w)) for w in waves]
    expect = np.concatenate(mels, axis=1).mean(axis=1)
    np.testing.assert_allclose(norms, expect, rtol=1e-5)
    assert norms.shape == (80,) and (norms < 0).all()
    p = save_mel_norms(tmp_path / "norms.npy", norms)
    np.testing.assert_array_equal(load_mel_norms(p), norms)
    # XTTS's mel_stats.pth is a bare float32 tensor of shape [80]
    torch.save(torch.from_numpy(norms), tmp_path / "mel_stats.pth")
    np.testing.assert_array_equal(load_mel_norms(tmp_path / "mel_stats.pth"), norms)
    torch.save({"model": {"xtts.mel_stats": torch.from_numpy(norms)}}, tmp_path / "model.pth")
    np.testing.assert_array_equal(load_mel_norms(tmp_path / "model.pth"), norms)


def test_mel_norms_errors(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        save_mel_norms(tmp_path / "bad.npy", np.ones(79))
    with pytest.raises(ValueError, match="non-zero"):
        save_mel_norms(tmp_path / "bad.npy", np.zeros(80))
    with pytest.raises(FileNotFoundError):
        load_mel_norms(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="no audio"):
        compute_mel_norms([])
