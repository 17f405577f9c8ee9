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

torch = pytest.importorskip("torch")


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
