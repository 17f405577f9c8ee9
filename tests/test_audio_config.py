"""Audio settings as data: one `AudioConfig` per model, stored in every checkpoint and weights header, read by the
corpus, training, evaluation, vocoding and the DVAE commands; a model and data at different rates is a clear error."""
import json
from dataclasses import asdict, replace

import librosa
import numpy as np
import pytest
import soundfile as sf

from xtts_book import cli
from xtts_book.audio import (AUDIO_RECIPES, DEFAULT_AUDIO, AudioConfig, RateMismatchError, audio_recipe, dvae_mel,
                             hifigan_mel, load_audio, mel_frames, stft)
from xtts_book.checkpoint import read_header, weights_header
from xtts_book.data import build_corpus, corpus_sample_rate, default_corpus, load_corpus
from xtts_book.recipes import export_weights, load_generator, make_task, recipe
from xtts_book.sources import ESPEAK_RATES, ESPEAK_VOICES
from xtts_book.train import fit

from train_helpers import ci_run, tiny_discriminators

A16, A24 = AUDIO_RECIPES["16k"], AUDIO_RECIPES["24k"]


def test_config_is_checked_and_round_trips():
    assert DEFAULT_AUDIO == AudioConfig() and DEFAULT_AUDIO.sample_rate == 22050 and DEFAULT_AUDIO.hop == 256
    assert [c.sample_rate for c in AUDIO_RECIPES.values()] == [16000, 22050, 24000]
    assert audio_recipe("16k") is A16 and audio_recipe(24000) is A24 and audio_recipe("22050") is DEFAULT_AUDIO
    for c in AUDIO_RECIPES.values():
        assert AudioConfig.from_dict(json.loads(json.dumps(asdict(c)))) == c
    assert AudioConfig.from_dict(None) == DEFAULT_AUDIO           # a header from before the config was stored
    with pytest.raises(ValueError, match="no audio recipe 44100"):
        audio_recipe(44100)
    with pytest.raises(ValueError, match="fmax=12000.0"):
        AudioConfig(sample_rate=16000, fmax=12000.0)             # above the Nyquist frequency
    with pytest.raises(ValueError, match="window"):
        AudioConfig(win=2048)
    with pytest.raises(ValueError, match="hop"):
        AudioConfig(hop=0)


def test_mels_follow_the_config():
    rng = np.random.default_rng(0)
    w = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    # HiFi-GAN's mel at 16 kHz against librosa's own construction of the same recipe
    pad = (A16.n_fft - A16.hop) // 2
    S = np.abs(librosa.stft(np.pad(w, pad, mode="reflect"), n_fft=A16.n_fft, hop_length=A16.hop, center=False,
                            window="hann"))
    fb = librosa.filters.mel(sr=16000, n_fft=A16.n_fft, n_mels=80, fmin=0.0, fmax=8000.0)
    want = np.log(np.maximum(fb @ S, 1e-5))
    got = np.asarray(hifigan_mel(w, audio=A16))
    assert got.shape == (80, mel_frames(w.size, audio=A16)) == want.shape
    np.testing.assert_allclose(got, want, atol=2e-3)
    # the input mel's band is the config's: 24 kHz reaches 12 kHz, so its mel differs from an 8 kHz one
    w24 = (0.3 * rng.standard_normal(24000)).astype(np.float32)
    assert not np.allclose(np.asarray(hifigan_mel(w24, audio=A24)), np.asarray(hifigan_mel(w24, fmax=8000.0, audio=A24)))
    assert np.asarray(dvae_mel(w24, audio=A24)).shape == (80, 1 + 24000 // 256)
    # the default stays XTTS's 22,050 Hz mel exactly
    np.testing.assert_array_equal(np.asarray(hifigan_mel(w)), np.asarray(hifigan_mel(w, audio=DEFAULT_AUDIO)))
    # a window shorter than the FFT is centred in it, as torch.stft and librosa do
    x = np.pad(w[:4096], 0)
    S = librosa.stft(x, n_fft=1024, hop_length=256, win_length=800, window="hann", center=False)
    np.testing.assert_allclose(np.abs(np.asarray(stft(x, 1024, 256, 800))).T, np.abs(S), atol=2e-3)


@pytest.fixture(scope="module")
def corpus16(tmp_path_factory):
    "Six espeak clips built at 16 kHz."
    out = tmp_path_factory.mktemp("c") / "espeak-16k"
    return build_corpus("espeak", out, limit=6, voices=ESPEAK_VOICES[:2], rates=ESPEAK_RATES[:2], val_fraction=0.3,
                        progress=False, sample_rate=16000)


def test_corpus_at_16k(corpus16):
    info = json.loads((corpus16 / "corpus.json").read_text())
    assert info["sample_rate"] == 16000 == corpus_sample_rate(corpus16)
    row = json.loads((corpus16 / "manifest.jsonl").read_text().splitlines()[0])
    assert sf.info(str(corpus16 / row["path"])).samplerate == 16000
    assert abs(row["seconds"] - row["samples"] / 16000) < 1e-3
    _, train, _ = load_corpus(corpus16, "ci", 16000)
    assert train
    with pytest.raises(RateMismatchError, match="16,000 Hz but this run works at 22,050 Hz"):
        load_corpus(corpus16, "ci", 22050)


def test_a_16k_run_carries_its_rate_everywhere(corpus16, tmp_path, capsys):
    cfg = recipe("hifigan", "ci", steps=2, warmup_steps=1, val_every=2, ckpt_every=2)
    task = make_task(cfg, corpus16, disc_factory=tiny_discriminators)
    assert task.audio == A16 and task.sample_rate == 16000
    run = tmp_path / "run16"
    fit(task, run, progress=False, log=lambda *a: None)
    ck = sorted((run / "checkpoints").glob("step_*.eqx"))[-1]
    assert read_header(ck)["audio"] == asdict(A16)
    sample = sorted((run / "samples").rglob("*.wav"))[0]
    assert sf.info(str(sample)).samplerate == 16000              # the run's own samples play at its rate
    # (the tiny discriminators are not the recipe's: the weights are exported from a recipe-shaped checkpoint
    # that carries the run's header)
    header = {k: v for k, v in read_header(ck).items() if k not in ("step", "model", "config")}
    weights = export_weights(ci_run(tmp_path / "full", "hifigan", step=2, **header), tmp_path / "g16.eqx")
    assert weights_header(weights)["audio"]["sample_rate"] == 16000
    gen, info = load_generator(weights)
    assert info["audio"] == asdict(A16)

    # resuming it on a corpus at another rate
    other = make_task(cfg, default_corpus("ci", progress=False), disc_factory=tiny_discriminators)
    with pytest.raises(RateMismatchError, match="trained on 16 kHz audio"):
        fit(other, run, resume=True, steps=3, progress=False, log=lambda *a: None)
    # fine-tuning it on 22.05 kHz data, or the official 22.05 kHz weights on 16 kHz data
    with pytest.raises(RateMismatchError, match="a model for 16,000 Hz audio, but the data here is at 22,050 Hz"):
        make_task(replace(cfg, init_from=str(weights)), None, disc_factory=tiny_discriminators)
    with pytest.raises(RateMismatchError, match="official:universal: a model for 22,050 Hz"):
        make_task(replace(cfg, init_from="official:universal"), corpus16, disc_factory=tiny_discriminators)

    # vocoding: a 22.05 kHz file into a 16 kHz vocoder is refused, unless asked to resample
    src = tmp_path / "in"
    src.mkdir()
    t = np.arange(22050) / 22050
    sf.write(src / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    capsys.readouterr()
    rc = cli.vocode_cli([str(src), "--weights", str(weights), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "22,050 Hz" in err[0] and "16,000 Hz" in err[0] and "--resample" in err[0]
    assert not (tmp_path / "out" / "a.wav").exists()
    rc = cli.vocode_cli([str(src), "--weights", str(weights), "--out", str(tmp_path / "out"), "--resample"])
    assert rc == 0, capsys.readouterr().err
    y, sr = sf.read(tmp_path / "out" / "a.wav")
    assert sr == 16000 and len(y) == 256 * (16000 // 256)

    # evaluation: the clips' rate must be the models'
    from xtts_book.evaluate import build_systems, load_clips
    with pytest.raises(RateMismatchError, match="--checkpoint"):
        build_systems(str(weights), log=lambda *a: None)
    systems, _, _ = build_systems(str(weights), audio=A16, log=lambda *a: None)
    clip = load_clips(corpus16, 1)[0]
    assert clip["sample_rate"] == 16000
    assert abs(len(systems[-1].fn(clip["wav"])) - len(clip["wav"])) < 256


def test_dvae_commands_check_rates(corpus16, tmp_path, capsys):
    "A DVAE made at 16 kHz: encode refuses a 22.05 kHz file (or resamples it), decode refuses a 22.05 kHz vocoder."
    run = ci_run(tmp_path / "dvae16", "dvae", audio=asdict(A16))
    g22 = ci_run(tmp_path / "g22", "hifigan")
    src = tmp_path / "in"
    src.mkdir()
    t = np.arange(22050) / 22050
    sf.write(src / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    capsys.readouterr()
    rc = cli.dvae_cli(["encode", str(src), "--dvae", str(run), "--out", str(tmp_path / "codes")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "16,000 Hz" in err[0]
    rc = cli.dvae_cli(["encode", str(src), "--dvae", str(run), "--out", str(tmp_path / "codes"), "--resample"])
    assert rc == 0, capsys.readouterr().err
    listing = json.loads((tmp_path / "codes" / "codes.json").read_text())
    assert listing["audio"]["sample_rate"] == 16000 and listing["files"]["a.npy"]["samples"] == 16000
    capsys.readouterr()
    rc = cli.dvae_cli(["decode", str(tmp_path / "codes"), "--dvae", str(run), "--vocoder", str(g22),
                       "--out", str(tmp_path / "dec")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "22,050 Hz audio" in err[0] and "16,000 Hz" in err[0]
    assert not (tmp_path / "dec").exists() or not list((tmp_path / "dec").iterdir())


def test_load_audio_can_refuse_to_resample(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(4410, np.float32) + 0.1, 44100)
    assert load_audio(p, 16000).size == 1600
    with pytest.raises(RateMismatchError, match="44,100 Hz"):
        load_audio(p, 16000, resample=False)


def test_cli_flags_for_rates(corpus16, tmp_path, capsys):
    "`corpus build --sample-rate` builds at a recipe's rate and refuses others; `train --audio` must match the corpus."
    out = tmp_path / "c24"
    rc = cli.corpus_cli(["build", "--source", "espeak", "--limit", "2", "--sample-rate", "24000", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert corpus_sample_rate(out) == 24000
    with pytest.raises(SystemExit) as e:
        cli.corpus_cli(["build", "--source", "espeak", "--sample-rate", "44100", "--out", str(tmp_path / "c44")])
    assert e.value.code == 2 and not (tmp_path / "c44").exists()
    capsys.readouterr()
    rc = cli.train_cli(["hifigan", "--profile", "ci", "--data", str(corpus16), "--audio", "22k", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "16,000 Hz but this run works at 22,050 Hz" in err[0]
    assert not (tmp_path / "run" / "checkpoints").exists()
