"""Checkpoint reading and converters: formats, nesting, helpful errors, and XTTS-v2 layouts."""
from collections import OrderedDict

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xtts_book.convert import (KeyMapping, apply_key_map, load_torch_checkpoint, path_getter, read_torch_file,
                               speaker_encoder_from_torch, speaker_encoder_key_map, skeleton)
from xtts_book.layers import StateDictError
from xtts_book.xtts_decoder import ResNetSpeakerEncoder

try:
    import torch
except ImportError:  # only the stored-fixture test runs without PyTorch
    torch = None


class _Config:  # stands for XttsConfig: a class the reader must not import
    def __init__(self):
        self.lr, self.name = 2e-4, "xtts"


def _sample_sd():
    base = torch.randn(4, 6)
    return OrderedDict(
        w=torch.nn.Parameter(torch.randn(3, 5)), t=torch.randn(5, 7).t(), s=torch.tensor(3),
        bf=torch.randn(2, 3).to(torch.bfloat16), half=torch.randn(3).half(), v1=base[1:3], v2=base[:, 2],
        i=torch.arange(5), b=torch.tensor([True, False]), e=torch.zeros(0, 3))


def _expected(v):
    return v.detach().float().numpy() if v.is_floating_point() else v.numpy()


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("nest", ["model", "generator", "state_dict", None])
def test_reader_matches_torch(tmp_path, legacy, nest):
    sd = _sample_sd()
    obj = {nest: sd, "config": _Config(), "step": 7} if nest else sd
    path = tmp_path / "c.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    got = load_torch_checkpoint(path)
    assert list(got) == list(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(got[k], _expected(v), err_msg=k)
        assert got[k].shape == tuple(v.shape)
    assert got["half"].dtype == np.float32 and got["i"].dtype == np.int64
    if nest:
        raw = read_torch_file(path)
        assert raw["step"] == 7 and "_Config" in repr(raw["config"])
        assert raw["config"].state == {"lr": 2e-4, "name": "xtts"}


def test_reader_bare_tensor_and_torch_backend(tmp_path):
    torch.save(torch.linspace(-7, -9, 80), tmp_path / "mel_stats.pth")
    got = load_torch_checkpoint(tmp_path / "mel_stats.pth")
    assert list(got) == [""] and got[""].shape == (80,)
    sd = {"a": torch.randn(3, 2)}
    torch.save({"model": sd}, tmp_path / "m.pth")
    via_torch = load_torch_checkpoint(tmp_path / "m.pth", backend="torch")
    np.testing.assert_array_equal(via_torch["a"], sd["a"].numpy())
    with pytest.raises(ValueError, match="backend"):
        load_torch_checkpoint(tmp_path / "m.pth", backend="tf")


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_torch_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(ValueError, match="PyTorch checkpoint"):
        load_torch_checkpoint(tmp_path / "junk.pth")
    torch.save({"a": torch.randn(100, 100)}, tmp_path / "l.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "l.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_torch_checkpoint(tmp_path / "cut.pth")
    torch.save({"mpd": {"a": torch.ones(1)}, "msd": {"b": torch.ones(1)}, "steps": 3}, tmp_path / "do.pth")
    with pytest.raises(ValueError, match="no state dict found.*'mpd'"):
        load_torch_checkpoint(tmp_path / "do.pth")
    assert list(load_torch_checkpoint(tmp_path / "do.pth", key="msd")) == ["b"]
    with pytest.raises(KeyError, match="no entry 'gen'"):
        load_torch_checkpoint(tmp_path / "do.pth", key="gen")


def test_path_getter():
    tree = {"a": 1}
    class M(eqx.Module):
        xs: tuple
    m = M(xs=(M(xs=(5, 6)),))
    assert path_getter("xs[0].xs[1]")(m) == 6
    with pytest.raises(ValueError, match="cannot parse"):
        path_getter("xs[0]..a")


def _torch_speaker_encoder():
    from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder
    torch.manual_seed(0)
    return HifiDecoder().speaker_encoder.eval()


def test_speaker_encoder_key_map_covers_state_dict():
    pytest.importorskip("TTS")
    sd = _torch_speaker_encoder().state_dict()
    km = speaker_encoder_key_map(skeleton(ResNetSpeakerEncoder))
    mapped = {m.torch_key for m in km}
    left = {k for k in sd if k not in mapped}
    assert left == {k for k in sd if k.endswith("num_batches_tracked")} | {"torch_spec.0.filter"}
    for m in km:
        assert tuple(sd[m.torch_key].shape) == m.shape, m.torch_key


def test_speaker_encoder_errors_name_the_keys():
    pytest.importorskip("TTS")
    sd = {k: v.numpy() for k, v in _torch_speaker_encoder().state_dict().items()}
    prefixed = {f"hifigan_decoder.speaker_encoder.{k}": v for k, v in sd.items()}
    prefixed["gpt.wte.weight"] = np.zeros((3, 2), np.float32)      # outside the prefix: ignored
    speaker_encoder_from_torch(prefixed, prefix="hifigan_decoder.speaker_encoder.")

    partial = dict(sd); del partial["layer3.2.conv1.weight"]; del partial["fc.bias"]
    with pytest.raises(StateDictError) as e:
        speaker_encoder_from_torch(partial)
    assert set(e.value.missing) == {"layer3.2.conv1.weight", "fc.bias"}

    bad = dict(sd); bad["fc.weight"] = np.zeros((256, 4096), np.float32); bad["extra.weight"] = np.zeros(1)
    with pytest.raises(StateDictError) as e:
        speaker_encoder_from_torch(bad)
    assert e.value.mismatched == [("fc.weight", (512, 4096), (256, 4096))]
    assert e.value.unexpected == ["extra.weight"]
    assert "expected (512, 4096)" in str(e.value)

    with pytest.raises(StateDictError, match="no speaker-encoder key"):
        speaker_encoder_from_torch(sd, prefix="speaker_encoder.")
    odd = dict(sd); odd["torch_spec.0.filter"] = np.array([[[-0.9, 1.0]]], np.float32)
    with pytest.raises(ValueError, match="pre-emphasis"):
        speaker_encoder_from_torch(odd)


def test_apply_key_map_catches_forgotten_arrays():
    lin = skeleton(eqx.nn.Linear, 3, 2)
    sd = {"weight": np.ones((2, 3), np.float32), "bias": np.ones(2, np.float32)}
    out = apply_key_map(lin, sd, [KeyMapping("weight", "weight", (2, 3)), KeyMapping("bias", "bias", (2,))])
    np.testing.assert_array_equal(np.asarray(out(jnp.ones(3))), [4.0, 4.0])
    with pytest.raises(ValueError, match="unfilled"):
        apply_key_map(lin, sd, [KeyMapping("weight", "weight", (2, 3))], ignore=("bias",))


# ---------------------------------------------------------------- whole checkpoints
from types import SimpleNamespace

from xtts_book.convert import (XttsAudio, generator_key_map, load_discriminator_checkpoint, load_hifigan_checkpoint,
                               load_xtts_checkpoint, xtts_from_torch)


from xtts_book.layers import canonical_weight_norm_keys as _old_spelling  # the official weight_g/weight_v spelling


def _perturb(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        for name, p in module.named_parameters():
            if name.endswith(("original0", "weight_g")):
                p.mul_(0.5 + torch.rand(p.shape, generator=g))
    return module


@pytest.fixture(scope="module")
def xtts_reference():
    pytest.importorskip("TTS")
    from TTS.tts.layers.xtts.dvae import DiscreteVAE as TorchDVAE
    from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder as TorchHifiDecoder
    torch.manual_seed(3)
    dec = _perturb(TorchHifiDecoder().eval(), seed=3)
    dvae = TorchDVAE(channels=80, normalization=None, positional_dims=1, num_tokens=64, codebook_dim=32,
                     hidden_dim=32, num_resnet_blocks=1, kernel_size=3, num_layers=2,
                     use_transposed_convs=False).eval()
    mel_stats = -7.0 - 2.5 * torch.rand(80)
    gpt = {"gpt.text_embedding.weight": torch.randn(50, 8), "gpt.gpt.h.0.attn.c_attn.weight": torch.randn(8, 24),
           "gpt.mel_head.bias": torch.randn(16)}
    return SimpleNamespace(dec=dec, dvae=dvae, mel_stats=mel_stats, gpt=gpt)


_decode_and_embed = eqx.filter_jit(lambda h, z, w: (h(z, h.speaker_embedding(w)), h.speaker_embedding(w)))


def _check_against(xa: XttsAudio, ref):
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((1, 3, 1024)).astype(np.float32)   # 3 codes: odd, 13 frames at 24 kHz
    wav16 = (0.1 * rng.standard_normal(4_001)).astype(np.float32)
    with torch.no_grad():
        g = ref.dec.speaker_encoder(torch.from_numpy(wav16)[None].clone(), l2_norm=True)[..., None]
        want = ref.dec(torch.from_numpy(latents), g=g)[0].numpy()
    got, g_ours = _decode_and_embed(xa.hifi_decoder, jnp.asarray(latents[0]), jnp.asarray(wav16))
    np.testing.assert_allclose(np.asarray(g_ours)[:, 0], g[0, :, 0].numpy(), atol=1e-4)
    assert got.shape == want.shape == (1, 13 * 256)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
    mel = torch.randn(1, 80, 20)
    with torch.no_grad():
        codes = ref.dvae.get_codebook_indices(mel)[0].numpy()
        dec = ref.dvae.decode(torch.from_numpy(codes)[None])[0][0].numpy()
    ours = np.asarray(xa.dvae.get_codebook_indices(jnp.asarray(mel[0].numpy()), xa.dvae_state))
    np.testing.assert_array_equal(ours, codes)
    np.testing.assert_allclose(np.asarray(xa.dvae.decode(jnp.asarray(ours), xa.dvae_state)), dec, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(xa.mel_norms), ref.mel_stats.numpy())


def test_released_layout_directory(tmp_path, xtts_reference):
    """model.pth {"model", "config"} (new weight-norm spelling, GPT keys, mel_stats) + dvae.pth + mel_stats.pth."""
    ref = xtts_reference
    sd = {f"hifigan_decoder.{k}": v for k, v in ref.dec.state_dict().items()}
    assert any("parametrizations.weight.original0" in k for k in sd)
    sd.update(ref.gpt, mel_stats=ref.mel_stats)
    torch.save({"model": sd, "config": SimpleNamespace(model="xtts")}, tmp_path / "model.pth")
    torch.save(ref.dvae.state_dict(), tmp_path / "dvae.pth")
    torch.save(ref.mel_stats, tmp_path / "mel_stats.pth")
    xa = load_xtts_checkpoint(tmp_path)
    _check_against(xa, ref)


def test_finetune_layout_legacy_old_spelling(tmp_path, xtts_reference):
    """GPTTrainer checkpoint: everything under xtts., dvae.* and the trainer's mel modules, weight_g/weight_v, legacy file."""
    ref = xtts_reference
    sd = {f"xtts.hifigan_decoder.{k}": v for k, v in _old_spelling(ref.dec.state_dict()).items()}
    sd.update({f"xtts.{k}": v for k, v in ref.gpt.items()})
    sd["xtts.mel_stats"] = ref.mel_stats
    sd.update({f"dvae.{k}": v for k, v in ref.dvae.state_dict().items()})
    sd["torch_mel_spectrogram_dvae.mel_stft.spectrogram.window"] = torch.hann_window(1024)
    sd["torch_mel_spectrogram_style_encoder.mel_stft.mel_scale.fb"] = torch.rand(1025, 80)
    path = tmp_path / "best_model.pth"
    torch.save({"model": sd, "optimizer": {"state": {}}, "step": 1000}, path, _use_new_zipfile_serialization=False)
    xa = load_xtts_checkpoint(path)
    _check_against(xa, ref)
    # the in-memory path takes torch tensors directly
    xa2 = xtts_from_torch(sd)
    assert np.array_equal(np.asarray(xa2.mel_norms), np.asarray(xa.mel_norms))


def test_xtts_errors(xtts_reference):
    ref = xtts_reference
    sd = {f"hifigan_decoder.{k}": v.numpy() for k, v in ref.dec.state_dict().items()}
    sd["mel_stats"] = ref.mel_stats.numpy()
    with pytest.raises(StateDictError, match="no DVAE"):
        xtts_from_torch(sd)
    out = xtts_from_torch(sd, require_dvae=False)
    assert out.dvae is None and out.hifi_decoder is not None
    with pytest.raises(StateDictError) as e:
        xtts_from_torch({**sd, "hifigan_decoder.extra.weight": np.zeros(3)}, require_dvae=False)
    assert e.value.unexpected == ["hifigan_decoder.extra.weight"]
    bad = dict(sd)
    bad["hifigan_decoder.waveform_decoder.conds.2.weight"] = np.zeros((64, 256, 1), np.float32)
    with pytest.raises(StateDictError) as e:
        xtts_from_torch(bad, require_dvae=False)
    assert e.value.mismatched == [("conds.2.weight", (64, 512, 1), (64, 256, 1))]
    no_stats = {k: v for k, v in sd.items() if k != "mel_stats"}
    with pytest.raises(StateDictError, match="mel_stats"):
        xtts_from_torch(no_stats, require_dvae=False)
    assert xtts_from_torch(no_stats, require_dvae=False, mel_stats={"": ref.mel_stats.numpy()}).mel_norms.shape == (80,)
    with pytest.raises(StateDictError, match="mel_stats"):
        xtts_from_torch(no_stats, require_dvae=False, mel_stats=np.zeros(64, np.float32))
    with pytest.raises(StateDictError, match="no HifiDecoder keys"):
        xtts_from_torch({"encoder.0.0.weight": np.zeros((3,), np.float32)})
    with pytest.raises(StateDictError, match="both"):
        xtts_from_torch({**sd, "xtts.mel_stats": sd["mel_stats"]}, require_dvae=False)


def _coqui_generator(cfg_name):
    from xtts_book.hifigan import CONFIGS
    from xtts_book.reference import torch_generator
    torch.manual_seed(4)
    m = torch_generator(CONFIGS[cfg_name]).eval()
    return _perturb(m, seed=4)


@pytest.mark.parametrize("cfg_name", ["v2", "v3"])
def test_official_generator_checkpoint(tmp_path, cfg_name):
    """g_* = {"generator": sd}, weight_g/weight_v, PyTorch 1.4's legacy format."""
    pytest.importorskip("TTS")
    ref = _coqui_generator(cfg_name)
    path = tmp_path / "g_02500000"
    torch.save({"generator": _old_spelling(ref.state_dict())}, path, _use_new_zipfile_serialization=False)
    gen = load_hifigan_checkpoint(path, cfg_name)
    mel = torch.randn(1, 80, 7)
    with torch.no_grad():
        want = ref(mel)[0].numpy()
    got = np.asarray(eqx.filter_jit(lambda m, x: m(x))(gen, jnp.asarray(mel[0].numpy())))
    np.testing.assert_allclose(got, want, atol=1e-4)
    other = "v3" if cfg_name == "v2" else "v2"
    with pytest.raises(StateDictError):
        load_hifigan_checkpoint(path, other)


def test_generator_key_map_matches_converter():
    pytest.importorskip("TTS")
    from xtts_book.hifigan import CONFIGS, Generator, hifigan_from_torch
    ref = _coqui_generator("v2")
    sd = ref.state_dict()
    skel = skeleton(Generator, CONFIGS["v2"])
    a = hifigan_from_torch(sd, "v2")
    b = apply_key_map(skel, sd, generator_key_map(skel))
    for x, y in zip(jax.tree.leaves(eqx.filter(a, eqx.is_array)), jax.tree.leaves(eqx.filter(b, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_official_discriminator_checkpoint(tmp_path):
    """do_* = {"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"}; MSD disc 0 spectral-normed."""
    pytest.importorskip("TTS")
    from TTS.vocoder.models.hifigan_discriminator import MultiPeriodDiscriminator, MultiScaleDiscriminator
    torch.manual_seed(5)
    mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    mpd_sd, msd_sd = _old_spelling(mpd.state_dict()), _old_spelling(msd.state_dict())
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)}}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
    path = tmp_path / "do_02500000"
    torch.save({"mpd": mpd_sd, "msd": msd_sd, "optim_g": optim, "optim_d": optim, "steps": 10, "epoch": 1},
               path, _use_new_zipfile_serialization=False)
    out_mpd, out_msd, state = load_discriminator_checkpoint(path)
    from xtts_book.discriminators import discriminator_torch_keys
    keys = discriminator_torch_keys(out_msd)
    assert "discriminators.0.convs.0.weight_orig" in keys
    first_p = out_mpd.discriminators[0].convs[0]
    np.testing.assert_array_equal(np.asarray(first_p.g).ravel(), mpd_sd["discriminators.0.convs.0.weight_g"].numpy().ravel())
    with pytest.raises(ValueError, match="no state dict|holds"):
        load_torch_checkpoint(path)


# ---------------------------------------------------------------- without PyTorch: stored fixtures
def test_reader_on_stored_fixtures_without_torch(fixtures_dir, monkeypatch):
    """The files in tests/fixtures/xtts were written by torch.save (legacy and zip); reading them needs no torch."""
    import builtins
    real_import = builtins.__import__
    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch hidden for this test")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    d = fixtures_dir / "xtts"
    want = {k.replace("__", "."): v for k, v in np.load(d / "tiny_expected.npz").items()}
    for name in ("tiny_g_legacy.pth", "tiny_model_zip.pth"):
        got = load_torch_checkpoint(d / name)
        assert sorted(got) == sorted(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{name}: {k}")
    with pytest.raises(ImportError, match="needs PyTorch"):
        load_torch_checkpoint(d / "tiny_model_zip.pth", backend="torch")


_needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch (the reference)")
for _name, _f in list(globals().items()):
    if _name.startswith("test_") and _name != "test_reader_on_stored_fixtures_without_torch":
        globals()[_name] = _needs_torch(_f)
