"""`xtts-book dvae encode|decode` and `xtts-book export`: the normal path, the round trips, and bad input as one line
with exit code 2 and nothing half-written."""
import json
import subprocess
import sys
from dataclasses import asdict

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import soundfile as sf

from xtts_book import cli
from xtts_book.checkpoint import save_weights
from xtts_book.convert import load_safetensors
from xtts_book.recipes import load_vocoder
from xtts_book.hifigan import Generator, GeneratorConfig, hifigan_from_torch, hifigan_to_torch
from xtts_book.layers import fold_weight_norm
from xtts_book.recipes import dvae_config
from xtts_book.vqvae import DiscreteVAE

TINY = GeneratorConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    "A tiny generator and the ci-size DVAE as weights files, and two short tones as audio files."
    d = tmp_path_factory.mktemp("files")
    gen = Generator(TINY, key=jr.key(0))
    save_weights(d / "gen.eqx", gen, {"model": "hifigan", "config": asdict(TINY)})
    cfg = dvae_config("ci")
    dvae, ema = eqx.nn.make_with_state(DiscreteVAE)(cfg, key=jr.key(1))
    norms = np.ones(cfg.channels, np.float32)
    save_weights(d / "dvae.eqx", (dvae, ema, norms), {"model": "dvae", "config": asdict(cfg), "recipe": {"input_gain": 0.1}})
    (d / "in").mkdir()
    t = np.arange(11025) / 22050
    for name, f0 in (("a", 180), ("b", 260)):
        sf.write(d / "in" / f"{name}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 22050)
    return d


def _one_line_error(capsys, rc):
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_encode_then_decode(weights, capsys):
    d = weights
    assert cli.main(["dvae", "encode", str(d / "in"), "--dvae", str(d / "dvae.eqx"), "--out", str(d / "codes")]) == 0
    listing = json.loads((d / "codes" / "codes.json").read_text())
    assert listing["input_gain"] == 0.1 and len(listing["mel_norms"]) == 80 and set(listing["files"]) == {"a.npy", "b.npy"}
    codes = np.load(d / "codes" / "a.npy")
    assert codes.dtype == np.int16 and codes.size == -(-(1 + 11025 // 256) // 4)
    assert cli.main(["dvae", "decode", str(d / "codes"), "--dvae", str(d / "dvae.eqx"), "--vocoder", str(d / "gen.eqx"),
                     "--out", str(d / "decoded")]) == 0
    y, sr = sf.read(d / "decoded" / "a.wav")
    assert sr == 22050 and len(y) == 11025 // 256 * 256          # the decoded frames, cut to the source's length
    assert not list((d / "decoded").glob(".*tmp")) and not list((d / "codes").glob(".*tmp"))
    assert "decoded 2 file(s)" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "corrupt", "outside", "float", "other_dvae", "bad_dvae"])
def test_dvae_bad_input_is_one_line(weights, tmp_path, capsys, case):
    d, src = weights, tmp_path / "in"
    src.mkdir()
    action, dvae = "decode", str(d / "dvae.eqx")
    if case == "missing":
        action, inputs = "encode", [str(tmp_path / "nope.wav")]
    elif case == "corrupt":
        (src / "x.wav").write_bytes(b"RIFF0000WAVEjunk")
        action, inputs = "encode", [str(src)]
    elif case == "outside":
        np.save(src / "x.npy", np.array([0, 1, 10**4], np.int16))
        inputs = [str(src)]
    elif case == "float":
        np.save(src / "x.npy", np.array([0.5, 1.0], np.float32))
        inputs = [str(src)]
    elif case == "other_dvae":
        np.save(src / "x.npy", np.array([0, 1], np.int16))
        (src / "codes.json").write_text(json.dumps({"dvae": "another", "num_tokens": 7, "mel_norms": [2.0] * 80, "files": {}}))
        inputs = [str(src)]
    else:
        (tmp_path / "d.eqx").write_bytes(b"not weights")
        inputs, dvae = [str(d / "in")], str(tmp_path / "d.eqx")
    extra = ["--vocoder", str(d / "gen.eqx")] if action == "decode" else []
    rc = cli.main(["dvae", action, *inputs, "--dvae", dvae, *extra, "--out", str(tmp_path / "out")])
    _one_line_error(capsys, rc)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_round_trips(weights, tmp_path, capsys):
    d = weights
    assert cli.main(["export", str(d / "gen.eqx"), "--out", str(tmp_path / "x")]) == 0
    gen, _ = load_vocoder(d / "gen.eqx")
    back = load_safetensors(tmp_path / "x" / "generator.safetensors")         # PyTorch names -> the converter
    for a, b in zip(jax.tree.leaves(eqx.filter(gen, eqx.is_array)), jax.tree.leaves(eqx.filter(back, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    again = hifigan_from_torch(hifigan_to_torch(gen), TINY)                 # the names are the converter's own
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(eqx.filter(gen, eqx.is_array)), jax.tree.leaves(eqx.filter(again, eqx.is_array))))
    assert load_vocoder(tmp_path / "x" / "generator.safetensors")[0].config == TINY
    mel = (np.random.default_rng(0).standard_normal((80, 37)) - 5).astype(np.float32)
    np.save(tmp_path / "mel.npy", mel)
    code = (f"import sys, numpy as np, jax\n"
            f"e = jax.export.deserialize(open({str(tmp_path / 'x' / 'generator.jaxexport')!r}, 'rb').read())\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, np.asarray(e.call(np.load({str(tmp_path / 'mel.npy')!r}))))\n"
            f"assert not [m for m in sys.modules if m.split('.')[0] in ('xtts_book', 'equinox')]\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    ref = np.asarray(fold_weight_norm(gen)(jnp.asarray(mel)))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-5)


def test_export_bad_weights_is_one_line(tmp_path, capsys):
    (tmp_path / "g.pth").write_bytes(b"not a checkpoint")
    _one_line_error(capsys, cli.main(["export", str(tmp_path / "g.pth"), "--out", str(tmp_path / "x")]))
    assert not (tmp_path / "x").exists()


def test_generator_choice_and_init_from_a_pytorch_file(tmp_path):
    "`--generator v3` picks V3 in any profile; `--init-from` reads an official-layout g_* file; a file of another config names its keys."
    import torch
    from xtts_book.hifigan import V1, V3
    from xtts_book.layers import StateDictError
    from xtts_book.recipes import init_state, make_task, run_config
    cfg = run_config("hifigan", "ci", tmp_path / "run", sets=["generator=v3"])
    assert init_state(cfg, jr.key(0)).gen.config == V3
    with pytest.raises(ValueError, match="generator"):
        run_config("hifigan", "ci", tmp_path / "run", sets=["generator=v4"])
    g3 = Generator(V3, key=jr.key(2))
    torch.save({"generator": {k: torch.from_numpy(np.array(v)) for k, v in hifigan_to_torch(g3).items()}}, tmp_path / "g_00000001")
    loaded, info = load_vocoder(tmp_path / "g_00000001", "v3")
    assert loaded.config == V3 and info["config"] == "v3"
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(eqx.filter(g3, eqx.is_array)), jax.tree.leaves(eqx.filter(loaded, eqx.is_array))))
    with pytest.raises(StateDictError, match="resblocks"):                 # a V3 file read as V1: its keys are named
        load_vocoder(tmp_path / "g_00000001", "v1")
    task = make_task(run_config("hifigan", "ci", tmp_path / "run", sets=[f"init_from={tmp_path / 'g_00000001'}", "generator=v3"]))
    assert task.init_gen.config == V3 and task.model_config == V3
    with pytest.raises(ValueError, match="does not fit for a HiFi-GAN generator v1"):     # --generator v1, a V3 file
        make_task(run_config("hifigan", "ci", tmp_path / "run", sets=[f"init_from={tmp_path / 'g_00000001'}", "generator=v1"]))
    save_weights(tmp_path / "v3.eqx", g3, {"model": "hifigan", "config": asdict(V3)})
    with pytest.raises(ValueError, match="holds another generator"):                      # --generator v1, V3 weights
        make_task(run_config("hifigan", "ci", tmp_path / "run", sets=[f"init_from={tmp_path / 'v3.eqx'}", "generator=v1"]))
