"""A hostile but fair user: nothing lost, nothing cryptic. Each case is one the book once got wrong.

User errors are one line on stderr naming the thing and what to do, with exit code 2; runs and corpora are
never overwritten unless asked; an interrupted run saves its last completed step.
"""
import json, os, signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from xtts_book import checkpoint, cli, data, train
from test_train import ToyTask, cfg as toy_cfg

SR = 22050
quiet = dict(progress=False, log=lambda *a: None)


def tone(seconds=0.5, f=220.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def recordings(folder: Path, n=4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / f"clip{i}.wav", tone(0.5, 150 + 40 * i), SR)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return data.build_corpus(str(recordings(root / "src", 12)), root / "corpus", val_fraction=0.3, progress=False)


def one_line_error(capsys, rc, code=2, *words):
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


# ------------------------------------------------------------------ corpora
def test_corpus_out_inside_source_is_refused(tmp_path):
    src = recordings(tmp_path / "src")
    before = sorted(p.name for p in src.iterdir())
    for out in (src, src / "corpus"):
        with pytest.raises(ValueError, match="overwrite the recordings"):
            data.build_corpus(str(src), out, force=True, progress=False)
    assert sorted(p.name for p in src.iterdir()) == before
    assert all(sf.info(str(p)).frames > 0 for p in src.iterdir())


def test_failed_force_rebuild_keeps_the_old_corpus(tmp_path):
    out = data.build_corpus(str(recordings(tmp_path / "src")), tmp_path / "c", progress=False)
    manifest = (out / "manifest.jsonl").read_text()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        data.build_corpus(str(tmp_path / "empty"), out, force=True, progress=False)
    assert (out / "manifest.jsonl").read_text() == manifest
    assert data.corpus_stats(out)["clips"] == 4
    assert len(data.load_split(out, "all")) == 4
    assert not list(tmp_path.glob(".c.*")), "no building folder or lock file is left beside the corpus"


def test_corpus_errors_name_the_file(tmp_path, capsys):
    out = data.build_corpus(str(recordings(tmp_path / "src")), tmp_path / "c", progress=False)
    (out / "corpus.json").write_text("{not json")
    with pytest.raises(ValueError, match="corpus.json"):
        data.build_corpus(str(tmp_path / "src"), out, progress=False)
    one_line_error(capsys, cli.corpus_cli(["build", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "d"),
                                           "--limit", "-1", "--quiet"]), 2, "--limit")
    (tmp_path / "notcorpus").mkdir()
    (tmp_path / "notcorpus" / "mine.txt").write_text("keep me")
    one_line_error(capsys, cli.corpus_cli(["build", "--source", str(tmp_path / "src"), "--out",
                                           str(tmp_path / "notcorpus"), "--quiet"]), 2, "not a corpus folder")
    assert (tmp_path / "notcorpus" / "mine.txt").read_text() == "keep me"


def test_colliding_ids_name_both_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a b.wav", tone(), SR)
    sf.write(src / "a_b.wav", tone(f=300), SR)
    out = data.build_corpus(str(src), tmp_path / "c", progress=False)
    reasons = [s["reason"] for s in data.load_skipped(out)]
    assert any("a b.wav" in r and "a_b.wav" in r for r in reasons), reasons


# ------------------------------------------------------------------ training runs
def test_existing_run_or_foreign_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    train.fit(ToyTask(toy_cfg(steps=4)), run, **quiet)
    logged = (run / "metrics.jsonl").read_text()
    for p in (run / "checkpoints").glob("step_*"):
        p.unlink()                                      # a run that kept only best.eqx is still a run
    with pytest.raises(checkpoint.RunFolderError, match="already holds a run"):
        train.fit(ToyTask(toy_cfg(steps=4)), run, **quiet)
    assert (run / "metrics.jsonl").read_text() == logged
    other = tmp_path / "photos"
    other.mkdir()
    (other / "config.json").write_text("mine")
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(checkpoint.RunFolderError, match="not a training run folder"):
        train.fit(ToyTask(toy_cfg(steps=2)), other, **quiet)
    assert (other / "config.json").read_text() == "mine"
    s = train.fit(ToyTask(toy_cfg(steps=4)), run, force=True, **quiet)   # said so: start over
    assert s["step"] == 4 and len(checkpoint.read_metrics(run)) > 0


def test_resume_without_checkpoints_keeps_the_logs(tmp_path):
    run = tmp_path / "run"
    train.fit(ToyTask(toy_cfg(steps=4)), run, **quiet)
    logged = (run / "metrics.jsonl").read_text()
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    with pytest.raises(checkpoint.RunFolderError, match="no checkpoint to resume"):
        train.fit(ToyTask(toy_cfg(steps=8)), run, resume=True, **quiet)
    assert (run / "metrics.jsonl").read_text() == logged


def test_second_training_into_the_same_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    with checkpoint.RunLock(run):
        with pytest.raises(checkpoint.RunFolderError, match="another training"):
            train.fit(ToyTask(toy_cfg(steps=2)), run, **quiet)


class SignalAt(ToyTask):
    "Sends itself `sig` during step `at`, as a user's Ctrl-C or a scheduler's SIGTERM would arrive mid-step."
    def __init__(self, config, sig, at):
        super().__init__(config)
        self.sig, self.at = sig, at

    def train_step(self, state, batch, step):
        if step == self.at:
            os.kill(os.getpid(), self.sig)
        return super().train_step(state, batch, step)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_the_last_completed_step(tmp_path, sig):
    run, said = tmp_path / "run", []
    s = train.fit(SignalAt(toy_cfg(steps=12, ckpt_every=100), sig, at=5), run, progress=False, log=said.append)
    assert s["stopped"] == signal.Signals(sig).name and s["step"] == 6
    assert checkpoint.read_header(checkpoint.find_checkpoint(run / "checkpoints" / "step_00000006.eqx"))["step"] == 6
    assert any("saved step 6" in m for m in said), said
    s = train.fit(ToyTask(toy_cfg(steps=12, ckpt_every=100)), run, resume=True, **quiet)
    assert s["step"] == 12
    assert [r["step"] for r in checkpoint.read_metrics(run) if "loss" in r] == list(range(1, 13))


def test_damaged_newest_checkpoint_falls_back(tmp_path):
    run, said = tmp_path / "run", []
    train.fit(ToyTask(toy_cfg(steps=8, keep_last=3)), run, **quiet)
    newest = run / "checkpoints" / "step_00000008.eqx"
    for damage in (b"", b"garbage header\n", newest.read_bytes()[:200]):
        newest.write_bytes(damage)
        said.clear()
        s = train.fit(ToyTask(toy_cfg(steps=9, keep_last=3)), run, resume=True, progress=False, log=said.append)
        assert s["step"] == 9
        assert any("skipping damaged checkpoint" in m and "step_00000008" in m for m in said), said
        assert any("resumed from" in m and "step_00000004" in m for m in said), said
        newest.unlink(missing_ok=True)
        (run / "checkpoints" / "step_00000009.eqx").rename(newest)   # the next round damages a fresh newest


def test_stale_temp_checkpoints_are_cleaned(tmp_path):
    run = tmp_path / "run"
    train.fit(ToyTask(toy_cfg(steps=4)), run, **quiet)
    stale = run / "checkpoints" / ".step_00000008.eqx.tmp-99999"
    stale.write_bytes(b"x" * 1000)
    train.fit(ToyTask(toy_cfg(steps=6)), run, resume=True, **quiet)
    assert not stale.exists()


def test_full_disk_is_one_clear_error(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train.fit(ToyTask(toy_cfg(steps=4)), run, **quiet)

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.Checkpoints, "save", full)
    with pytest.raises(checkpoint.CheckpointError, match="No space left.*last good checkpoint is .*step_00000004"):
        train.fit(ToyTask(toy_cfg(steps=8)), run, resume=True, **quiet)
    assert checkpoint.read_header(run / "checkpoints" / "step_00000004.eqx")["step"] == 4


def test_steps_and_minutes_are_checked():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train.fit(ToyTask(toy_cfg()), "/nonexistent/never-written", steps=0, **quiet)


# ------------------------------------------------------------------ the train command
@pytest.mark.parametrize("args,words", [
    (["--steps", "0"], ["--steps"]), (["--steps", "-3"], ["--steps"]), (["--minutes", "-1"], ["--minutes"]),
])
def test_train_cli_rejects_bad_counts(tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as e:
        cli.train_cli(["dvae", "--profile", "ci", "--out", str(tmp_path / "r"), *args])
    assert e.value.code == 2
    assert all(w in capsys.readouterr().err for w in words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kv,words", [
    ("lr=abc", ["lr", "number"]), ("batch_size=2.5", ["batch_size", "int"]),
    ("mixed_precision=maybe", ["mixed_precision", "true or false"]), ("lr=-1", ["lr", "must be"]),
    ("mpd_periods=[2, \"x\"]", ["mpd_periods"]), ("nope=1", ["nope", "not a TrainConfig field"]),
])
def test_train_cli_checks_every_set_value(tmp_path, capsys, corpus, kv, words):
    rc = cli.train_cli(["hifigan", "--profile", "ci", "--data", str(corpus), "--out", str(tmp_path / "r"), "--set", kv])
    one_line_error(capsys, rc, 2, *words)
    assert not (tmp_path / "r").exists(), "a bad value must not leave a run folder"


def test_train_cli_data_problems_are_one_line(tmp_path, capsys, corpus):
    out = ["--out", str(tmp_path / "r")]
    one_line_error(capsys, cli.train_cli(["dvae", "--profile", "ci", "--data", str(tmp_path / "missing"), *out]), 2,
                   "no such corpus folder")
    (tmp_path / "plain").mkdir()
    one_line_error(capsys, cli.train_cli(["dvae", "--profile", "ci", "--data", str(tmp_path / "plain"), *out]), 2,
                   "manifest")
    novals = tmp_path / "noval"
    data.build_corpus(str(recordings(tmp_path / "src2", 3)), novals, val_fraction=0.0, progress=False)
    one_line_error(capsys, cli.train_cli(["hifigan", "--profile", "ci", "--data", str(novals), *out]), 2, "val")
    assert not (tmp_path / "r").exists()


def test_train_cli_existing_run_and_corrupt_config(tmp_path, capsys, corpus):
    run = tmp_path / "run"
    train.fit(ToyTask(toy_cfg(steps=2)), run, **quiet)
    one_line_error(capsys, cli.train_cli(["dvae", "--profile", "ci", "--data", str(corpus), "--out", str(run)]), 2,
                   "already holds a run", "--resume")
    (run / "config.json").write_text("{oops")
    one_line_error(capsys, cli.train_cli(["dvae", "--profile", "ci", "--data", str(corpus), "--out", str(run),
                                          "--resume"]), 2, "config.json")


# ------------------------------------------------------------------ the eval command
def test_eval_asked_system_that_cannot_be_built_writes_nothing(tmp_path, capsys, corpus):
    headline, out = tmp_path / "headline.md", tmp_path / "r.json"
    headline.write_text("the committed table")
    out.write_text(json.dumps({"systems": {"ground_truth": {}, "griffin_lim": {}, "hifigan": {}}}))
    base = ["--data", str(corpus), "--clips", "1", "--no-asr", "--no-dnsmos", "--out", str(out), "--headline", str(headline)]
    one_line_error(capsys, cli.eval_cli([*base, "--checkpoint", str(tmp_path / "runs" / "typo")]), 2, "--checkpoint")
    trunc = tmp_path / "trunc"
    train.fit(ToyTask(toy_cfg(steps=2)), trunc, **quiet)
    ck = next((trunc / "checkpoints").glob("step_*"))
    ck.write_bytes(ck.read_bytes()[:300])
    one_line_error(capsys, cli.eval_cli([*base, "--checkpoint", str(ck)]), 2, "--checkpoint")
    one_line_error(capsys, cli.eval_cli(base), 2, "hifigan", "--allow-fewer")   # a poorer table never replaces a richer one
    assert headline.read_text() == "the committed table"
    assert set(json.loads(out.read_text())["systems"]) == {"ground_truth", "griffin_lim", "hifigan"}


# ------------------------------------------------------------------ audio and converters
def test_integer_samples_are_refused_by_the_mels():
    from xtts_book.audio import AudioError, dvae_mel, hifigan_mel
    for mel in (dvae_mel, hifigan_mel):
        with pytest.raises(AudioError, match="int16 samples"):
            mel((tone() * 32767).astype(np.int16))


def test_truncated_wav_is_refused_and_reported(tmp_path):
    from xtts_book.audio import AudioError, load_audio
    src = recordings(tmp_path / "src", 3)
    whole = (src / "clip0.wav").read_bytes()
    (src / "clip0.wav").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioError, match="truncated WAV"):
        load_audio(src / "clip0.wav")
    out = data.build_corpus(str(src), tmp_path / "c", progress=False)
    assert data.corpus_stats(out)["clips"] == 2
    assert any("truncated" in s["reason"] for s in data.load_skipped(out))


def test_dvae_converter_names_the_real_problem():
    import dataclasses
    from xtts_book.recipes import dvae_config
    from xtts_book.vqvae import DiscreteVAE, dvae_from_torch, dvae_to_torch
    import equinox as eqx, jax.random as jr
    cfg = dvae_config("ci")
    sd = dvae_to_torch(*eqx.nn.make_with_state(DiscreteVAE)(cfg, key=jr.key(0)))
    with pytest.raises(ValueError, match=f"has {cfg.num_tokens} codes.*asks for {2 * cfg.num_tokens}"):
        dvae_from_torch(sd, dataclasses.replace(cfg, num_tokens=2 * cfg.num_tokens))
    with pytest.raises(ValueError, match="encoder.0.0.weight: shape .* expected 3 axes"):
        dvae_from_torch({**sd, "encoder.0.0.weight": sd["encoder.0.0.weight"][:, :, 0]})
