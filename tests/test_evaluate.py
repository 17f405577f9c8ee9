"""The metrics on known cases (chapter 19), the Griffin-Lim baseline and the mel converter (chapter 11), and the
`xtts-book eval` CLI (chapter 20)."""
import json
from dataclasses import asdict
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter
from xtts_book import checkpoint
from xtts_book import cli
from xtts_book import evaluate
from xtts_book import inference
from xtts_book import metrics
from xtts_book import recipes
from xtts_book import train
from xtts_book import train_dvae


SR = 22050
FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "cannot-complete-as-dialed.g722"


def toy_voice(seconds=2.0, f0=140.0, seed=0):
    "A vowel-like test signal: a pulse train through three formants under a slow envelope."
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))) / SR
    x = sum(np.cos(k * phase) / k for k in range(1, 40) if k * f0 < SR / 2)
    for fc, bw in ((700, 110), (1200, 120), (2600, 200)):
        r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * fc / SR
        x = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)
    x = x * np.clip(np.sin(2 * np.pi * 1.3 * t), 0, None) ** 0.5
    x = x + 1e-3 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def voice():
    clean = toy_voice()
    rng = np.random.default_rng(1)
    return {"clean": clean,
            "noisy": (clean + 0.03 * rng.standard_normal(clean.size)).astype(np.float32),
            "delayed": np.concatenate([np.zeros(441, np.float32), clean])[: clean.size],
            "quiet": 0.5 * clean}


@pytest.fixture(scope="module")
def real_speech():
    "The fixture prompt decoded from G.722 (16 kHz) and resampled to 22,050 Hz, with its transcript."
    import G722
    import librosa
    pcm = np.asarray(G722.G722(16000, 64000).decode(FIXTURE.read_bytes()), np.float32) / 32768
    return librosa.resample(pcm, orig_sr=16000, target_sr=SR).astype(np.float32), "Your call cannot be completed as dialed."


def write_tiny_corpus(folder: Path, items) -> Path:
    "A corpus folder as `xtts_book.data.load_manifest` reads it: WAVs and a manifest, every clip in 'val'."
    import soundfile as sf
    (folder / "wavs").mkdir(parents=True)
    rows = []
    for cid, wav, text in items:
        sf.write(folder / "wavs" / f"{cid}.wav", wav, SR)
        rows.append({"id": cid, "path": f"wavs/{cid}.wav", "seconds": len(wav) / SR, "text": text, "speaker": "s", "split": "val"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="mono wave"):
        metrics.as_wave(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.as_wave(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        metrics.as_wave(np.zeros(0))
    with pytest.raises(ValueError, match=r"mel \[80, T\]"):
        inference.griffin_lim(np.zeros((64, 10)))


def test_align_and_lag(voice):
    r, d = metrics.align(voice["clean"], voice["clean"][:1000])
    assert r.shape == d.shape == (1000,)
    assert metrics.best_lag(voice["clean"], voice["delayed"]) == 441
    assert metrics.best_lag(voice["clean"], voice["clean"]) == 0


def test_pesq(voice):
    same = metrics.pesq_wb(voice["clean"], voice["clean"])
    assert same == pytest.approx(4.64, abs=0.01)
    assert metrics.pesq_wb(voice["clean"], voice["noisy"]) < same - 1
    assert 3.0 < metrics.pesq_wb(voice["clean"], voice["delayed"]) < same   # PESQ re-aligns, but the cut edges cost
    assert metrics.pesq_wb(voice["clean"], voice["quiet"]) > 4.0        # and normalises the level


def test_stoi(voice):
    assert metrics.stoi(voice["clean"], voice["clean"]) == pytest.approx(1.0, abs=1e-6)
    loud = voice["clean"] + 0.3 * np.random.default_rng(2).standard_normal(voice["clean"].size).astype(np.float32)
    assert metrics.stoi(voice["clean"], loud) < 0.9


def test_mr_stft(voice):
    same = metrics.mr_stft(voice["clean"], voice["clean"])
    assert same == {"total": 0.0, "sc": 0.0, "mag": 0.0}
    for k in ("noisy", "delayed"):
        d = metrics.mr_stft(voice["clean"], voice[k])
        assert d["total"] > 0.1 and d["total"] == pytest.approx(d["sc"] + d["mag"])
    assert metrics.mr_stft(voice["clean"], voice["quiet"])["mag"] == pytest.approx(math.log(2), rel=0.01)


def test_mcd_and_mel_l1(voice):
    assert metrics.mcd(voice["clean"], voice["clean"]) == 0.0
    assert metrics.mcd(voice["clean"], voice["quiet"]) < 0.01            # a level change is c0, which MCD drops
    assert metrics.mcd(voice["clean"], voice["noisy"]) > 1.0
    assert metrics.mel_l1(voice["clean"], voice["clean"]) == 0.0
    assert metrics.mel_l1(voice["clean"], voice["noisy"]) > 0.1


def test_text_normalisation_and_wer():
    assert metrics.normalize_text("Press 1, then 25 -- Call-Forward!") == "press one then twenty five call forward"
    assert metrics.normalize_text("a 28.8 kilobit modem; 'don't'") == "a twenty eight point eight kilobit modem don't"
    assert metrics.number_words(1234) == "one thousand two hundred thirty four"
    with pytest.raises(ValueError, match="out of range"):
        metrics.number_words(-1)
    assert metrics.word_errors("The pound key.", "the pound key") == (0, 3)
    assert metrics.word_errors("please enter the pound key", "please add the panty") == (3, 5)
    assert metrics.word_errors("a b c", "") == (3, 3)


def test_asr_on_real_speech_and_noise(real_speech):
    wav, text = real_speech
    asr = metrics.get_recognizer()
    heard = asr(wav)
    e, n = metrics.word_errors(text, heard)
    assert n == 7 and e / n <= 0.3, f"clean prompt: {e} errors in {n} words"
    noise = (0.1 * np.random.default_rng(3).standard_normal(wav.size)).astype(np.float32)
    e, n = metrics.word_errors(text, asr(noise))
    assert e / n >= 0.8
    assert asr(wav) == heard, "the transcript of a clip must not depend on what the recogniser heard before"


def test_dnsmos(real_speech):
    wav, _ = real_speech
    clean = metrics.dnsmos(wav)
    noisy = metrics.dnsmos(np.clip(wav + 0.1 * np.random.default_rng(4).standard_normal(wav.size), -1, 1))
    assert set(clean) == {"ovrl", "sig", "bak", "p808"}
    assert clean["ovrl"] > noisy["ovrl"] + 0.5 and clean["bak"] > noisy["bak"]


def test_griffin_lim_is_aligned_and_worse(real_speech):
    from xtts_book.audio import hifigan_mel
    wav, _ = real_speech
    mel = np.asarray(hifigan_mel(wav))
    y = inference.griffin_lim(mel, n_iter=16)
    assert y.shape == (256 * mel.shape[1],) and y.dtype == np.float32
    shifts = [-128, -64, 0, 64, 128]
    d = [metrics.mr_stft(wav, np.roll(y, s))["total"] for s in shifts]
    assert shifts[int(np.argmin(d))] == 0, d
    assert 1.5 < metrics.pesq_wb(wav, y) < 4.0


def test_dvae_to_hifigan_mel(real_speech):
    from xtts_book.audio import compute_mel_norms, dvae_mel, hifigan_mel
    wav, _ = real_speech
    norms = compute_mel_norms([wav])
    direct = np.asarray(hifigan_mel(wav))
    conv = inference.dvae_to_hifigan_mel(np.asarray(dvae_mel(wav, norms)), norms)
    assert conv.shape == direct.shape
    loud = direct > np.log(3e-3)                                  # above the DVAE mel's power floor
    assert np.abs(conv - direct)[loud].mean() < 0.6
    # the DVAE's input level (chapter 07: waves 20 dB down) is undone on the way out: the same mel where it is loud
    quiet = compute_mel_norms([0.1 * wav])
    assert quiet.max() < norms.max() - 1                        # every bin's mean log power moves away from zero
    conv_q = inference.dvae_to_hifigan_mel(np.asarray(dvae_mel(0.1 * wav, quiet)), quiet) - np.log(0.1)
    assert np.abs(conv_q - conv)[loud].mean() < 0.15          # (without the correction: 2.3 = -ln 0.1)
    with pytest.raises(ValueError, match="DVAE mel"):
        inference.dvae_to_hifigan_mel(np.zeros((80, 1)))


def test_summary_table_and_targets():
    rows = []
    for i in range(3):
        rows.append({"id": f"c{i}", "system": "ground_truth", "pesq_wb": 4.64, "mr_stft": 0.0, "errors": 1, "words": 10, "rtf": 0.0})
        rows.append({"id": f"c{i}", "system": "griffin_lim", "pesq_wb": 2.5, "mr_stft": 0.7, "errors": 2, "words": 10, "rtf": 0.1})
        rows.append({"id": f"c{i}", "system": "hifigan", "pesq_wb": 3.2 + 0.1 * i, "mr_stft": 0.5, "errors": 2, "words": 10, "rtf": 0.1})
    res = {"systems": {"ground_truth": {"label": "Ground truth", "train_minutes": None},
                       "griffin_lim": {"label": "Griffin-Lim", "train_minutes": None},
                       "hifigan": {"label": "HiFi-GAN", "train_minutes": 60.0}}, "per_clip": rows}
    res["summary"] = evaluate.summarize(res)
    assert res["summary"]["ground_truth"]["wer"] == pytest.approx(10.0)
    assert res["summary"]["hifigan"]["pesq_wb"] == pytest.approx(3.3)
    table = evaluate.results_table(res)
    assert table.count("\n") == 4 and "| HiFi-GAN | 60 |" in table
    targets = evaluate.check_targets(res)
    t = lambda start: next(x for x in targets if x["target"].startswith(start))
    assert t("HiFi-GAN PESQ-wb above Griffin-Lim's")["holds"] is True
    assert t("HiFi-GAN PESQ-wb above Griffin-Lim's")["value"] == pytest.approx(0.8)
    assert t("HiFi-GAN PESQ-wb above Griffin-Lim's")["ci"] == pytest.approx(1.96 * 0.1 / np.sqrt(3))
    assert t("HiFi-GAN DNSMOS")["holds"] is None                  # no DNSMOS column in these rows
    assert t("HiFi-GAN WER no more than 3")["holds"] is None       # no official row to compare with
    assert t("DVAE -> official V1 WER")["holds"] is None
    # with the official row: the WER target, and the share of the gap closed
    for i in range(3):
        rows.append({"id": f"c{i}", "system": "official_universal", "pesq_wb": 3.5, "mr_stft": 1.2, "errors": 1, "words": 10, "rtf": 0.1})
    res["systems"]["official_universal"] = {"label": "Official", "train_minutes": None}
    res["summary"] = evaluate.summarize(res)
    targets = evaluate.check_targets(res)
    assert t("HiFi-GAN WER no more than 3")["value"] == pytest.approx(10.0)
    assert t("HiFi-GAN WER no more than 3")["holds"] is False
    assert t("HiFi-GAN: share of the Griffin-Lim -> official V1 gap closed on PESQ")["value"] == pytest.approx(0.8)
    assert "**not yet**" in evaluate.targets_markdown(targets)


def test_checkpoint_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        checkpoint.find_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="without checkpoints"):
        checkpoint.find_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for n in ("step_00000100.eqx", "step_00000200.eqx"):
        (tmp_path / "checkpoints" / n).write_bytes(b"{}\n")
    assert checkpoint.find_checkpoint(tmp_path).name == "step_00000200.eqx"
    (tmp_path / "checkpoints" / "best.eqx").write_bytes(b"{}\n")
    assert checkpoint.find_checkpoint(tmp_path).name == "best.eqx"
    assert [p.name for p in checkpoint.run_checkpoints(tmp_path)] == ["step_00000100.eqx", "step_00000200.eqx"]


def test_cli_ground_truth_and_griffin_lim(tmp_path, capsys, real_speech):
    wav, text = real_speech
    corpus = write_tiny_corpus(tmp_path / "corpus", [("gt0", wav[: SR * 2], text)])
    out, head = tmp_path / "results.json", tmp_path / "headline.md"
    rc = cli.eval_cli(["--data", str(corpus), "--clips", "1", "--out", str(out), "--headline", str(head),
                      "--checkpoint", str(tmp_path / "no-run"), "--no-dnsmos"])
    assert rc == 2 and not out.exists() and not head.exists()    # asked for and missing: an error, nothing written
    assert "no such checkpoint" in capsys.readouterr().err
    rc = cli.eval_cli(["--data", str(corpus), "--clips", "1", "--out", str(out), "--headline", str(head), "--no-dnsmos"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "skipped hifigan: no --checkpoint given" in printed and "skipped dvae_hifigan" in printed
    assert "| Ground truth |" in printed and "| Griffin-Lim (32 it.) |" in printed
    r = json.loads(out.read_text())
    assert set(r["systems"]) == {"ground_truth", "griffin_lim"}
    assert len(r["per_clip"]) == 2 and r["meta"]["clips"] == 1 and r["meta"]["profile"]
    assert len(r["meta"]["commit"]) >= 7
    gt = r["summary"]["ground_truth"]
    assert gt["pesq_wb"] == pytest.approx(4.64, abs=0.01) and gt["mr_stft"] == 0.0 and gt["wer_gt"] == 0.0
    assert r["summary"]["griffin_lim"]["pesq_wb"] < 4.0
    assert "Ground truth" in head.read_text()


def test_cli_bad_data(tmp_path, capsys):
    assert cli.eval_cli(["--data", str(tmp_path / "missing")]) == 2
    assert "no such corpus folder" in capsys.readouterr().err


def _save_ci_checkpoints(tmp_path: Path):
    "A ci-sized HiFi-GAN run and DVAE run in the training loop's checkpoint format."
    import equinox as eqx
    import jax.numpy as jnp
    import jax.random as jr
    hcfg = recipes.recipe("hifigan", "ci")
    hstate = recipes.init_state(hcfg, jr.PRNGKey(1))        # the whole training state, as the loop writes it
    gen = hstate.gen
    hrun = tmp_path / "hifigan-ci"
    checkpoint.save_checkpoint(hrun / "checkpoints" / "step_00000002.eqx", hstate,
                          {"step": 2, "elapsed_s": 90.0, "model": "hifigan", "config": asdict(hcfg)})
    dcfg = recipes.recipe("dvae", "ci")
    norms = jnp.linspace(-7.0, -9.5, 80)
    state = eqx.tree_at(lambda s: s.mel_norms, recipes.init_state(dcfg, jr.PRNGKey(2)), norms)
    model = state.model
    drun = tmp_path / "dvae-ci"
    checkpoint.save_checkpoint(drun / "checkpoints" / "best.eqx", state,
                          {"step": 4, "elapsed_s": 30.0, "model": "dvae", "config": asdict(dcfg)})
    return gen, hrun, model, norms, drun


def test_load_checkpoints_and_vocode(tmp_path):
    import jax
    gen, hrun, model, norms, drun = _save_ci_checkpoints(tmp_path)
    g2, info = recipes.load_generator(hrun)
    assert info["step"] == 2 and info["train_minutes"] == 1.5 and info["profile"] == "ci"
    import equinox as eqx
    arrays = lambda m: jax.tree.leaves(eqx.filter(m, eqx.is_array))
    assert len(arrays(gen)) == len(arrays(g2)) > 0
    assert all(np.array_equal(a, b) for a, b in zip(arrays(gen), arrays(g2)))
    m2, ema2, n2, dinfo = recipes.load_dvae(drun)
    assert np.allclose(n2, np.asarray(norms)) and dinfo["step"] == 4
    with pytest.raises(ValueError, match="not a HiFi-GAN one"):
        recipes.load_generator(drun)
    wav = toy_voice(0.6)
    from xtts_book.audio import dvae_mel, hifigan_mel
    y = inference.vocode(g2, hifigan_mel(wav))
    assert y.shape == (256 * (len(wav) // 256),) and np.all(np.isfinite(y))
    m = inference.dvae_roundtrip(m2, ema2, dvae_mel(wav, n2))
    assert m.shape == (80, 1 + len(wav) // 256)
    found = recipes.find_runs("hifigan", "ci", root=tmp_path)
    assert [Path(r["run"]).name for r in found] == ["hifigan-ci"]


def test_cli_with_checkpoints(tmp_path, capsys):
    _, hrun, _, _, drun = _save_ci_checkpoints(tmp_path)
    corpus = write_tiny_corpus(tmp_path / "corpus", [("v0", toy_voice(1.0), "a vowel")])
    out = tmp_path / "r.json"
    rc = cli.eval_cli(["--data", str(corpus), "--checkpoint", str(hrun), "--dvae", str(drun), "--out", str(out),
                      "--no-asr", "--no-dnsmos", "--curve", str(hrun)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert list(r["systems"]) == ["ground_truth", "griffin_lim", "hifigan", "hifigan_converted", "dvae_hifigan"]
    assert r["systems"]["hifigan"]["train_minutes"] == 1.5 and r["systems"]["dvae_hifigan"]["step"] == 4
    assert len(r["curve"]) == 1 and r["curve"][0]["step"] == 2
    assert "| DVAE -> HiFi-GAN |" in capsys.readouterr().out
