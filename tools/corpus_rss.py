#!/usr/bin/env python
"""Peak memory of a corpus larger than memory: build it, then train on it.

    python tools/corpus_rss.py --hours 20 --work /tmp/big-corpus --out results/corpus-rss.json

Makes a synthetic corpus of about HOURS of speech (eSpeak NG's sentences in four voices, each clip written many
times at a random level as 16-bit WAVs in WORK/src; nothing is committed), builds it with `build_corpus` (float WAVs
and the streamed cache), then runs 100 generator steps of the `cpu` HiFi-GAN recipe on it. Reports the peak
resident memory (`ru_maxrss`) after each stage, the sizes on disk and the times, and deletes WORK unless --keep.
"""
import argparse, json, resource, shutil, sys, time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=20.0)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", type=Path)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args(argv)
    from xtts_book.data import build_corpus, corpus_stats
    from xtts_book.recipes import make_task, recipe
    from xtts_book.sources import espeak_utterances
    from xtts_book.train import fit
    res = {"hours_asked": a.hours, "steps": a.steps}
    src = a.work / "src"
    src.mkdir(parents=True, exist_ok=True)
    t = time.time()
    base = [u.load() for u in espeak_utterances()]
    rng, need, n, i = np.random.default_rng(0), int(a.hours * 3600 * 22050), 0, 0
    while n < need:
        w = base[i % len(base)] * np.float32(rng.uniform(0.3, 1.0))
        sf.write(src / f"clip{i:07d}.wav", w, 22050, subtype="PCM_16")
        n, i = n + len(w), i + 1
    res.update(source_clips=i, source_s=round(time.time() - t, 1), peak_mb_after_source=round(peak_mb()))
    t = time.time()
    corpus = build_corpus(str(src), a.work / "corpus", progress=False)
    stats = corpus_stats(corpus)
    res.update(build_s=round(time.time() - t, 1), peak_mb_after_build=round(peak_mb()), corpus_hours=round(stats["minutes"] / 60, 2),
               clips=stats["clips"], cache_gb=round((corpus / "cache" / "audio.npy").stat().st_size / 1e9, 2))
    print(json.dumps(res), flush=True)
    t = time.time()
    cfg = recipe("hifigan", "cpu", steps=a.steps, val_every=a.steps, ckpt_every=a.steps, log_every=10, val_utterances=2)
    fit(make_task(cfg, corpus), a.work / "run", progress=False)
    res.update(train_s=round(time.time() - t, 1), peak_mb_after_train=round(peak_mb()))
    print(json.dumps(res), flush=True)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    if not a.keep:
        shutil.rmtree(a.work)


if __name__ == "__main__":
    main()
