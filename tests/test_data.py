"""xtts_book.data: sources, corpus building (with every skip listed), splits, caching, segments, CLI."""
import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from xtts_book.cli import corpus_cli
import soundfile as sf

import xtts_book.data as data
import xtts_book.sources as sources
from xtts_book.audio import SAMPLE_RATE, AudioError, mel_frames
from xtts_book.data import (build_corpus, corpus_stats, decode_g722, default_corpus, espeak_synthesize,
                            espeak_utterances, load_manifest, load_skipped, load_split, parse_asterisk_transcripts,
                            segment_batch, split_of, data_root, fetch_asterisk)


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XTTS_BOOK_DATA", str(tmp_path / "data_root"))


def _sine(sr, seconds=1.0, f=220.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_data_root(monkeypatch, tmp_path):
    assert data_root() == tmp_path / "data_root"
    monkeypatch.delenv("XTTS_BOOK_DATA")
    assert data_root().name == "data" and (data_root().parent / "settings.ini").exists()


def test_espeak():
    w = espeak_synthesize("Testing one two three.", "en-us+f3", 170)
    assert w.dtype == np.float32 and 0.8 < len(w) / SAMPLE_RATE < 4 and np.abs(w).max() <= 1
    slow = espeak_synthesize("Testing one two three.", "en-us+f3", 100)
    assert len(slow) > 1.3 * len(w)                       # the rate parameter is applied
    with pytest.raises(ValueError, match="unknown voice"):
        espeak_synthesize("hi", "xx-nope")
    with pytest.raises(ValueError, match="empty"):
        espeak_synthesize("   ")
    utts = espeak_utterances(sentences=["One.", "Two.", "Three."], voices=["en-us+f3", "en+m3"], rates=[160, 150])
    assert len(utts) == 6 and len({u.id for u in utts}) == 6
    assert [u.speaker for u in utts[:3]] == ["en-us+f3", "en+m3", "en-us+f3"]   # first round: distinct sentences
    assert [u.text for u in utts[:3]] == ["One.", "Two.", "Three."]


def test_split_is_a_pure_function_of_the_id():
    ids = [f"utt{i:05d}" for i in range(4000)]
    splits = [split_of(i, 0.05) for i in ids]
    assert 0.04 < splits.count("val") / len(ids) < 0.06
    assert splits == [split_of(i, 0.05) for i in reversed(ids)][::-1]
    # growing the validation fraction only moves clips from train to val, never back
    assert all(split_of(i, 0.2) == "val" for i, s in zip(ids, splits) if s == "val")


def _bad_folder(root: Path) -> dict[str, str]:
    "A folder with good clips and every kind of bad input; returns {file name: expected reason fragment}."
    root.mkdir(parents=True)
    sf.write(root / "good_22k.wav", _sine(22050, 1.0), 22050)
    (root / "good_22k.txt").write_text("a good  clip\n")
    sf.write(root / "stereo_48k.flac", np.stack([_sine(48000, 1.0), _sine(48000, 1.0, 330)], 1), 48000)
    sf.write(root / "mono_8k.wav", _sine(8000, 1.5), 8000)
    sf.write(root / "mono_16k.ogg", _sine(16000, 1.0), 16000)
    sf.write(root / "mono_44k.wav", _sine(44100, 0.5), 44100, subtype="PCM_24")
    sf.write(root / "hot.wav", _sine(22050, 1.0, amp=4.0), 22050, subtype="FLOAT")   # beyond [-1, 1]: clipped
    sf.write(root / "short.wav", _sine(22050, 0.2), 22050)                            # shorter than a segment: kept
    expect = {}
    (root / "empty.wav").write_bytes(b""); expect["empty.wav"] = "empty file"
    p = root / "corrupt.wav"; sf.write(p, _sine(16000), 16000)
    b = bytearray(p.read_bytes()); b[12:36] = bytes(24); p.write_bytes(bytes(b)); expect["corrupt.wav"] = "corrupt WAV"
    (root / "notes.wav").write_text("hello, not audio"); expect["notes.wav"] = "not an audio file"
    (root / "blob.bin").write_bytes(b"\x00\x01\x02"); expect["blob.bin"] = "not an audio file extension"
    sf.write(root / "silence.wav", np.zeros(22050, np.float32), 22050); expect["silence.wav"] = "silent"
    w = _sine(22050); w[10] = np.nan
    sf.write(root / "nan.wav", w, 22050, subtype="FLOAT"); expect["nan.wav"] = "NaN"
    sf.write(root / "tiny.wav", _sine(22050, 0.01), 22050); expect["tiny.wav"] = "too short"
    return expect


def test_folder_corpus_lists_every_skipped_file(tmp_path, capsys):
    src = tmp_path / "mine"
    expect = _bad_folder(src)
    out = build_corpus(str(src), tmp_path / "corpus", progress=True)
    printed = capsys.readouterr().out
    assert f"skipped {len(expect)} file(s)" in printed
    skipped = {Path(s["source"]).name: s["reason"] for s in load_skipped(out)}
    assert set(skipped) == set(expect)
    for name, fragment in expect.items():
        assert fragment in skipped[name], (name, skipped[name])
    rows = {r["id"]: r for r in load_manifest(out)}
    assert set(rows) == {"good_22k", "stereo_48k", "mono_8k", "mono_16k", "mono_44k", "hot", "short"}
    assert rows["good_22k"]["text"] == "a good clip" and rows["good_22k"]["speaker"] == "mine"
    for r in rows.values():
        assert set(r) >= {"id", "path", "seconds", "text", "speaker", "split"}
        w, sr = sf.read(out / r["path"], dtype="float32")
        assert sr == SAMPLE_RATE and w.ndim == 1 and abs(len(w) / SAMPLE_RATE - r["seconds"]) < 1e-3
    assert abs(rows["mono_8k"]["seconds"] - 1.5) < 1e-3 and abs(rows["stereo_48k"]["seconds"] - 1.0) < 1e-3
    waves = load_split(out, "all")
    assert all(w.dtype == np.float32 and np.abs(w).max() <= 1.0 for w in waves)
    hot = waves[[r["id"] for r in load_manifest(out)].index("hot")]
    assert hot.max() == 1.0
    s = corpus_stats(out)
    assert s["clips"] == 7 and s["skipped"] == len(expect) and s["train"] + s["val"] == 7 and s["val"] >= 1


def test_second_build_is_a_noop_and_settings_are_checked(tmp_path, capsys):
    out = build_corpus("espeak", tmp_path / "c", limit=4, voices=["en-us+f3", "en+m3"], rates=[170, 150])
    stamp = (out / "cache" / "audio.npy").stat().st_mtime_ns
    capsys.readouterr()
    again = build_corpus("espeak", tmp_path / "c", limit=4, voices=["en-us+f3", "en+m3"], rates=[170, 150])
    assert again == out and "nothing to do" in capsys.readouterr().out
    assert (out / "cache" / "audio.npy").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="other settings"):
        build_corpus("espeak", tmp_path / "c", limit=5, voices=["en-us+f3", "en+m3"], rates=[170, 150])
    build_corpus("espeak", tmp_path / "c", limit=5, voices=["en-us+f3", "en+m3"], rates=[170, 150], force=True)
    assert len(load_manifest(out)) == 5 and len(list((out / "wavs").glob("*.wav"))) == 5


def test_load_split_matches_the_wavs(tmp_path):
    out = build_corpus("espeak", tmp_path / "c", limit=6, voices=["en-us+f3", "en+m3"], rates=[170, 150], val_fraction=0.3)
    rows = load_manifest(out)
    train, val = load_split(out, "train"), load_split(out, "validation")
    assert len(train) == sum(r["split"] == "train" for r in rows) and len(val) == len(rows) - len(train) >= 1
    for r, w in zip([r for r in rows if r["split"] == "train"], train):
        np.testing.assert_array_equal(w, sf.read(out / r["path"], dtype="float32")[0])
    with pytest.raises(ValueError, match="split"):
        load_split(out, "dev")
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_manifest(tmp_path / "nothing")


def test_ljspeech_layout(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    rows = [("LJ001-0001", "Printing, in the only sense", "printing, in the only sense"),
            ("LJ001-0002", "in being comparatively modern.", "in being comparatively modern."),
            ("LJ001-0003", "For although the Chinese", "for although the chinese")]
    for uid, _, _ in rows[:2]:
        sf.write(root / "wavs" / f"{uid}.wav", _sine(22050, 1.2), 22050, subtype="PCM_16")
    (root / "metadata.csv").write_text("\n".join("|".join(r) for r in rows) + "\nbroken-row\n")
    out = build_corpus(str(root), tmp_path / "lj", progress=False)
    man = load_manifest(out)
    assert [r["id"] for r in man] == ["LJ001-0001", "LJ001-0002"]
    assert man[0]["text"] == "printing, in the only sense" and man[0]["speaker"] == "ljspeech"
    reasons = [s["reason"] for s in load_skipped(out)]
    assert any("no such file" in r for r in reasons) and any("malformed" in r for r in reasons)
    # by name, from the data root
    import shutil
    shutil.copytree(root, data_root() / "LJSpeech-1.1")
    assert len(load_manifest(build_corpus("ljspeech", tmp_path / "lj2", progress=False))) == 2
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        data.ljspeech_utterances(tmp_path)


def _fake_asterisk(root: Path) -> np.ndarray:
    "An unpacked asterisk-core-sounds tree with G.722 files encoded here; returns the speech it encodes (16 kHz)."
    import G722
    voice = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    (voice / "digits").mkdir(parents=True)
    (voice / "silence").mkdir()
    speech = espeak_synthesize("Please enter your password.", "en-us+f3", 170, sr=16000)
    enc = lambda w: bytes(G722.G722(16000, 64000).encode(np.round(w * 32767).astype(np.int16)))
    (voice / "auth-thankyou.g722").write_bytes(enc(speech))
    (voice / "digits" / "1.g722").write_bytes(enc(speech[:8000]))
    (voice / "beep.g722").write_bytes(enc(_sine(16000, 0.3, 1000)))
    (voice / "silence" / "1.g722").write_bytes(enc(np.zeros(16000, np.float32)))
    (voice / "mystery.g722").write_bytes(enc(speech[:4000]))
    (voice / "broken.g722").write_bytes(b"")
    tx = "; Core Asterisk Sounds in English\n\nauth-thankyou: Thank you.\ndigits/1: one\nbeep: [this is a simple beep tone]\n" \
         "silence/1: (1 second of silence)\nbroken: An empty file.\n"
    doc = root / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    (doc / "core-sounds-en.txt.gz").write_bytes(gzip.compress(tx.encode()))
    return speech


def test_asterisk_parsing_and_decoding(tmp_path):
    speech = _fake_asterisk(tmp_path / "root")
    got = decode_g722(tmp_path / "root/usr/share/asterisk/sounds/en_US_f_Allison/auth-thankyou.g722")
    assert got.dtype == np.float32 and abs(len(got) - len(speech)) <= 1   # G.722 codes sample pairs
    # G.722 has a small codec delay; the decoded speech correlates with what went in
    lag = int(np.argmax(np.correlate(got[:8000], speech[:8000], "full"))) - 7999
    a, b = (got[lag:], speech[:len(speech) - lag]) if lag >= 0 else (got, speech[-lag:])
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.9
    with pytest.raises(AudioError, match="empty"):
        decode_g722(tmp_path / "root/usr/share/asterisk/sounds/en_US_f_Allison/broken.g722")
    tx = parse_asterisk_transcripts("; comment\nletters/at: at [@]\nbeep: [tone]\nx: Hello: world\n")
    assert tx == {"letters/at": "at [@]", "beep": "[tone]", "x": "Hello: world"}
    assert sources._spoken_text("at [@]") == "at" and sources._spoken_text("(10 seconds of silence)") == ""


def test_asterisk_corpus_from_a_fabricated_tree(tmp_path):
    _fake_asterisk(tmp_path / "root")
    out = build_corpus("asterisk", tmp_path / "ast", root=tmp_path / "root", progress=False)
    man = {r["id"]: r for r in load_manifest(out)}
    assert set(man) == {"auth-thankyou", "digits.1"}
    assert man["auth-thankyou"]["text"] == "Thank you." and man["digits.1"]["speaker"] == "allison"
    assert abs(man["digits.1"]["seconds"] - 0.5) < 0.01            # 8,000 samples at 16 kHz, resampled
    skipped = {Path(s["source"]).name: s["reason"] for s in load_skipped(out)}
    assert "not speech" in skipped["beep.g722"] and "not speech" in skipped["1.g722"]
    assert "no transcript" in skipped["mystery.g722"] and "empty" in skipped["broken.g722"]


def _deb(path: Path, files: dict[str, bytes]):
    "A minimal Debian package (ar archive: debian-binary, control.tar.gz, data.tar.gz)."
    def tar(entries):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, blob in entries.items():
                info = tarfile.TarInfo(name); info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
        return buf.getvalue()
    members = [("debian-binary", b"2.0\n"), ("control.tar.gz", tar({"./control": b"Package: x\n"})), ("data.tar.gz", tar(files))]
    out = b"!<arch>\n"
    for name, blob in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode() + blob + (b"\n" if len(blob) % 2 else b"")
    path.write_bytes(out)


@pytest.mark.parametrize("with_dpkg", [True, False])
def test_fetch_asterisk_unpacks_cached_debs(tmp_path, monkeypatch, with_dpkg):
    import shutil
    if with_dpkg and not shutil.which("dpkg"):
        pytest.skip("no dpkg here")
    if not with_dpkg:
        real = shutil.which
        monkeypatch.setattr(data.shutil, "which", lambda name: None if name == "dpkg" else real(name))
    cache = tmp_path / "cache"; cache.mkdir()
    _deb(cache / "asterisk-core-sounds-en-g722_1.0_all.deb",
         {"./usr/share/asterisk/sounds/en_US_f_Allison/hello.g722": b"\x00" * 64})
    _deb(cache / "asterisk-core-sounds-en_1.0_all.deb",
         {"./usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz": gzip.compress(b"hello: Hello.\n")})
    root = fetch_asterisk(cache)                                      # nothing to download: the debs are cached
    assert (root / "usr/share/asterisk/sounds/en_US_f_Allison/hello.g722").exists()
    utts, skipped = data.asterisk_utterances(root)
    assert [u.id for u in utts] == ["hello"] and utts[0].text == "Hello." and not skipped
    assert fetch_asterisk(cache) == root                              # second call: already unpacked


def test_default_corpus_ci():
    import time
    t0 = time.time()
    out = default_corpus("ci", progress=False)
    s = corpus_stats(out)
    assert s["clips"] == 12 and s["speakers"] == 3 and s["val"] >= 1 and s["skipped"] == 0
    assert out.parent.parent == data_root()
    assert time.time() - t0 < 30
    assert default_corpus("ci", progress=False) == out


# ---------------------------------------------------------------- segments

def test_segment_batch_is_pure_in_seed_and_step():
    rng = np.random.default_rng(0)
    wavs = [rng.uniform(-1, 1, n).astype(np.float32) for n in (20000, 9000, 30000, 8192)]
    a = segment_batch(wavs, 5, segment_size=8192, batch_size=6, seed=1)
    assert a.shape == (6, 8192) and a.dtype == np.float32
    np.testing.assert_array_equal(a, segment_batch(wavs, 5, segment_size=8192, batch_size=6, seed=1))
    assert not np.array_equal(a, segment_batch(wavs, 6, segment_size=8192, batch_size=6, seed=1))
    assert not np.array_equal(a, segment_batch(wavs, 5, segment_size=8192, batch_size=6, seed=2))
    # a resumed run: the batches of steps 100..104 do not depend on what was drawn before
    later = [segment_batch(wavs, s, batch_size=2) for s in range(100, 105)]
    for s in range(0, 100):
        segment_batch(wavs, s, batch_size=2)
    for s, b in zip(range(100, 105), later):
        np.testing.assert_array_equal(b, segment_batch(wavs, s, batch_size=2))
    # every row is a contiguous window of one clip
    for row in a:
        assert any(any(np.array_equal(row, w[i:i + 8192]) for i in range(len(w) - 8191))
                   for w in wavs if len(w) >= 8192 and np.isin(row[:1], w).any())


def test_segment_batch_pads_short_clips_and_covers_offsets():
    short = [np.full(1000, 0.5, np.float32)]
    b = segment_batch(short, 0, segment_size=8192, batch_size=3)
    np.testing.assert_array_equal(b[:, :1000], 0.5); np.testing.assert_array_equal(b[:, 1000:], 0.0)
    ramp = [np.arange(10000, dtype=np.float32)]
    starts = {int(segment_batch(ramp, s, segment_size=8192, batch_size=1)[0, 0]) for s in range(400)}
    assert min(starts) < 100 and max(starts) > 1700 and len(starts) > 300   # offsets in [0, 1808] are all reachable
    assert mel_frames(8192) == 32
    with pytest.raises(ValueError, match="no waves"):
        segment_batch([], 0)
    with pytest.raises(ValueError, match="positive"):
        segment_batch(ramp, 0, segment_size=0)


def test_segment_batch_on_a_ten_minute_clip():
    long = [np.random.default_rng(0).uniform(-1, 1, 600 * SAMPLE_RATE).astype(np.float32)]
    b = segment_batch(long, 3, batch_size=16)
    assert b.shape == (16, 8192) and np.abs(b).sum(1).min() > 0


# ---------------------------------------------------------------- CLI

def test_cli(tmp_path, capsys):
    from xtts_book.cli import main
    src = tmp_path / "clips"; src.mkdir()
    for i in range(3):
        sf.write(src / f"c{i}.wav", _sine(16000, 0.8, 200 + 50 * i), 16000)
    assert main(["corpus", "build", "--source", str(src), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert len(load_manifest(tmp_path / "o")) == 3
    capsys.readouterr()
    assert corpus_cli(["info", str(tmp_path / "o"), "--skipped"]) == 0
    out = capsys.readouterr().out
    assert "clips: 3" in out and "minutes:" in out
    assert corpus_cli(["build", "--source", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert corpus_cli(["info", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit):
        corpus_cli(["build"])  # --source is required


def test_corpus_mel_norms_cached(tmp_path):
    from xtts_book.audio import compute_mel_norms
    out = build_corpus("espeak", tmp_path / "c", limit=4, voices=["en-us+f3", "en+m3"], rates=[170, 150], progress=False)
    norms = data.corpus_mel_norms(out)
    np.testing.assert_allclose(norms, compute_mel_norms(load_split(out, "train")), rtol=1e-6)
    assert (out / "mel_norms.npy").exists()
    np.testing.assert_array_equal(data.corpus_mel_norms(out), norms)


def test_parallel_builds_build_once(tmp_path):
    "Two processes (like nbdev_test's workers) asking for the same corpus: one builds, the other waits and reuses it."
    import subprocess, sys, os
    code = ("import sys; from xtts_book.data import build_corpus; "
            "build_corpus('espeak', sys.argv[1], limit=3, voices=['en-us+f3'], rates=[170], progress=True)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c")], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum("nothing to do" in o for o in outs) == 1, outs
    assert len(load_manifest(tmp_path / "c")) == 3


def test_ljspeech_download_path(tmp_path):
    "fetch_ljspeech end to end on a tiny archive served from a file:// URL (no network here)."
    import tarfile
    src = tmp_path / "src" / "LJSpeech-1.1"
    (src / "wavs").mkdir(parents=True)
    sf.write(src / "wavs" / "LJ001-0001.wav", _sine(22050, 1.0), 22050, subtype="PCM_16")
    (src / "metadata.csv").write_text("LJ001-0001|Hello there|hello there\n")
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tf:
        tf.add(src, arcname="LJSpeech-1.1")
    out = build_corpus("ljspeech", tmp_path / "lj", download=True, url=archive.as_uri(), progress=False)
    assert [r["id"] for r in load_manifest(out)] == ["LJ001-0001"]
    assert (data_root() / "LJSpeech-1.1" / "metadata.csv").exists()
    with pytest.raises(RuntimeError, match="could not download"):
        data.fetch_ljspeech(tmp_path / "elsewhere", url=(tmp_path / "nope.tar.bz2").as_uri())


def test_asterisk_other_languages_from_a_fabricated_tree(tmp_path):
    "The Spanish, Italian and Russian prompts: prefixed ids, the voice as the speaker, transcripts with a BOM."
    import G722
    root = tmp_path / "root"
    voice = root / "usr/share/asterisk/sounds/it_IT_m_Carlo"
    voice.mkdir(parents=True)
    speech = espeak_synthesize("Grazie.", "it", 160, sr=16000)
    (voice / "auth-thankyou.g722").write_bytes(bytes(G722.G722(16000, 64000).encode(np.round(speech * 32767).astype(np.int16))))
    doc = root / "usr/share/doc/asterisk-core-sounds-it"
    doc.mkdir(parents=True)
    (doc / "core-sounds-it.txt.gz").write_bytes(gzip.compress("\ufeff; Core Asterisk Sounds in Italian\nauth-thankyou: Grazie.\n".encode()))
    utts, skipped = sources.asterisk_utterances(root, "it")
    assert [(u.id, u.speaker, u.text) for u in utts] == [("it_auth-thankyou", "it_IT_m_Carlo", "Grazie.")] and not skipped
    assert sources.asterisk_packages("ru") == ("asterisk-core-sounds-ru-g722", "asterisk-core-sounds-ru")
    with pytest.raises(ValueError, match="expected one of"):
        sources.asterisk_packages("fr")
