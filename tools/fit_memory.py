#!/usr/bin/env python
"""Resident memory of a training run, sampled every 0.1 s through `fit`: after the state is built, after the first
step (compilation included) and at the end, with the peak and when it happened.

    python tools/fit_memory.py [--profile cpu] [--steps 5] [--no-release] [--json results/bench/fit_memory_cpu.json]

`--no-release` turns `train.release_memory` into a no-op, to see what it saves. The profile's default corpus, the
HiFi-GAN recipe with two validation clips; no compilation cache. Not a test; run by hand.
"""
import argparse, json, sys, tempfile, threading, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--no-release", action="store_true")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.monotonic(), rss_mb()))
            time.sleep(0.1)
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.monotonic()
    from xtts_book import train
    from xtts_book.profile import compile_cache
    from xtts_book.recipes import make_task, recipe
    compile_cache("off")
    if a.no_release:
        train.release_memory = lambda collect=True: None
    cfg = recipe("hifigan", a.profile, steps=a.steps, val_every=a.steps, ckpt_every=a.steps, log_every=1, val_utterances=2)
    task = make_task(cfg)
    points = {}

    def log(msg, *rest):
        key = "loop_start" if msg.startswith("train ") else "first_step" if msg.startswith("step 1 done") else \
            "end" if msg.startswith("done") else None
        if key:
            points[key] = round(rss_mb())
        print(f"[{time.monotonic() - t0:6.1f} s, {rss_mb():6.0f} MB] {msg}", flush=True)
    with tempfile.TemporaryDirectory() as out:
        train.fit(task, out, progress=False, log=log)
    done.set()
    t_peak, peak = max(samples, key=lambda s: s[1])
    res = {"profile": a.profile, "steps": a.steps, "release_memory": not a.no_release, "rss_mb": points,
           "peak_mb": round(peak), "peak_at_s": round(t_peak - t0, 1), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
