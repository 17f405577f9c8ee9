#!/usr/bin/env python
"""The vocoder recipe comparison of the HiFi-GAN training chapter: one row per run, from the run folders.

    python tools/recipe_table.py --out results/recipes-cpu.json --listen results/listen/recipes \
        runs/cmp-a-mel runs/cmp-b-mel-stft runs/cmp-c-gan-light runs/cmp-d-stft-gan-light

Each run was trained for the same wall-clock budget on the same corpus with `xtts-book train hifigan --minutes 25`
(its recipe in its config.json), then scored with `xtts-book eval --checkpoint RUN --out RUN/eval.json`. Per run
this writes: the recipe (STFT weight, warm-up steps, discriminators), seconds per step in each phase (median gap
between logged steps), steps done, minutes, the best validation mel L1, and the eval summary of the `hifigan`
system (PESQ-wb, DNSMOS OVRL, MR-STFT, WER where the recogniser ran); and one clip vocoded by the checkpoint the
eval scored, as a short 16-bit WAV for the chapter's players.
"""
import argparse, json, sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seconds_per_step(rows, lo, hi):
    "Median seconds per step between consecutive logged training steps with lo <= step < hi."
    pts = [(r["step"], r["minutes"]) for r in rows if "loss_g" in r and lo <= r["step"] < hi]
    gaps = [60 * (m1 - m0) / (s1 - s0) for (s0, m0), (s1, m1) in zip(pts, pts[1:]) if s1 > s0]
    return float(np.median(gaps)) if gaps else None


def row(run: Path, listen: Path | None, clip):
    from xtts_book.checkpoint import read_metrics
    from xtts_book.recipes import load_generator
    from xtts_book.audio import hifigan_mel
    from xtts_book.inference import vocode
    cfg = json.loads((run / "config.json").read_text())
    rows = read_metrics(run)
    ev = json.loads((run / "eval.json").read_text())
    s = ev["summary"]["hifigan"]
    steps = max(r["step"] for r in rows)
    out = {"run": run.name, "stft_weight": cfg["stft_weight"], "warmup_steps": min(cfg["warmup_steps"], cfg["steps"]),
           "gan": cfg["warmup_steps"] < steps, "mpd_periods": cfg["mpd_periods"], "msd_scales": cfg["msd_scales"],
           "s_per_step_warmup": seconds_per_step(rows, 0, cfg["warmup_steps"]),
           "s_per_step_gan": seconds_per_step(rows, cfg["warmup_steps"], 10 ** 9),
           "steps": steps, "minutes": round(max(r["minutes"] for r in rows), 1),
           "gan_steps": max(0, steps - cfg["warmup_steps"]),
           "val_mel_l1": min(r["val/mel_l1"] for r in rows if "val/mel_l1" in r),
           "checkpoint": ev["systems"]["hifigan"]["checkpoint"], "eval_command": ev["meta"]["command"]}
    for k in ("pesq_wb", "dnsmos_ovrl", "mr_stft", "wer"):
        out[k] = s.get(k)
        out[k + "_ci"] = s.get(k + "_ci")
    if listen is not None:
        gen, _ = load_generator(ROOT / out["checkpoint"])
        wav = vocode(gen, np.asarray(hifigan_mel(clip)))
        listen.mkdir(parents=True, exist_ok=True)
        sf.write(listen / f"{run.name}.wav", np.clip(wav, -1, 1), 22050, subtype="PCM_16")
        out["listen"] = f"{listen.relative_to(ROOT)}/{run.name}.wav"
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--listen", type=Path, default=None, help="folder for one vocoded clip per run")
    p.add_argument("--clip", default="conf-getpin", help="the validation clip (id) to vocode")
    p.add_argument("--data", default="data/corpora/asterisk")
    a = p.parse_args(argv)
    from xtts_book.evaluate import load_clips
    clips = {c["id"]: c for c in load_clips(a.data)}
    clip = clips[a.clip]["wav"][: 4 * 22050]
    listen = (ROOT / a.listen).resolve() if a.listen else None
    if listen is not None:
        listen.mkdir(parents=True, exist_ok=True)
        sf.write(listen / "ground_truth.wav", clip, 22050, subtype="PCM_16")
    rows = [row(r, listen, clip) for r in a.runs]
    a.out.write_text(json.dumps({"clip": a.clip, "text": clips[a.clip].get("text"), "rows": rows}, indent=1) + "\n")
    for r in rows:
        print({k: r[k] for k in ("run", "steps", "gan_steps", "s_per_step_warmup", "s_per_step_gan", "val_mel_l1", "pesq_wb", "dnsmos_ovrl", "wer")})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
