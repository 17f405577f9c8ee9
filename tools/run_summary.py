#!/usr/bin/env python
"""A training run's curve as a small JSON the book commits (the run folders themselves are not committed).

    python tools/run_summary.py runs/voc-cpu --out results/vocoder-cpu-run.json
    python tools/run_summary.py runs/ft-v1 --out results/finetune-cpu-run.json --pesq-clips 6 --dvae results/weights/dvae-cpu.eqx

Writes: the run's config, the command lines it was started and resumed with (from RUN.log beside the run
folder, when there), the steps where a call resumed it (the joins), the validation curve (minutes, step, val
metric), the training-loss curve (every logged step) and, with --pesq-clips N, PESQ-wb of every kept checkpoint
on the first N validation clips of the English corpus (its input mels from --dvae when given: the DVAE's decoded
mels, as in the fine-tune; else each clip's own mel).
"""
import argparse, json, re, sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--pesq-clips", type=int, default=0)
    p.add_argument("--dvae", default=None)
    p.add_argument("--data", default="data/corpora/asterisk")
    a = p.parse_args(argv)
    from xtts_book.checkpoint import read_header, read_metrics, run_checkpoints
    recs = read_metrics(a.run)
    cfg = json.loads((a.run / "config.json").read_text())
    log = a.run.with_suffix(".log")
    text = log.read_text() if log.exists() else ""
    joins = [int(m) for m in re.findall(r"resumed from \S+ \(step (\d+)", text)]
    val_key = "val/mel_l1" if cfg["model"] == "hifigan" else "val/recon"
    out = {"run": a.run.name, "config": cfg, "joins": joins,
           "calls": re.findall(r"^train \S+ \[\S+\]: .*$", text, re.M),
           "val": [[round(r["minutes"], 2), r["step"], round(r[val_key], 5)] for r in recs if val_key in r],
           "train": [[round(r["minutes"], 2), r["step"], round(r.get("mel_l1", r.get("dvae/recon_loss", float("nan"))), 5),
                      round(r["loss_d"], 4) if "loss_d" in r else None] for r in recs if "lr" in r]}
    if cfg["model"] == "dvae":
        out["codes"] = [[round(r["minutes"], 2), r["step"], r["val/perplexity"], r["val/codes_used"]] for r in recs if "val/perplexity" in r]
    if a.pesq_clips:
        from xtts_book.evaluate import dvae_hifigan_system, hifigan_system, load_clips
        from xtts_book.recipes import load_dvae, load_generator
        from xtts_book.metrics import pesq_wb
        clips = load_clips(ROOT / a.data, a.pesq_clips)
        dv = load_dvae(a.dvae) if a.dvae else None
        points = []
        paths = run_checkpoints(a.run)
        starts = [cfg["init_from"]] if cfg.get("init_from") else []     # the weights it started from: minute 0
        for path in starts + [str(q) for q in paths]:
            gen, info = load_generator(path)
            sysm = dvae_hifigan_system(*dv[:3], gen, dv[3]) if dv else hifigan_system(gen, info)
            score = float(np.mean([pesq_wb(c["wav"], sysm.fn(c["wav"])) for c in clips]))
            h = read_header(path) if not str(path).startswith("official:") else {"step": 0, "elapsed_s": 0.0}
            points.append([round(h["elapsed_s"] / 60, 2), h["step"], round(score, 4)])
            print(f"  {Path(str(path)).name}: step {h['step']}, PESQ-wb {score:.3f}", flush=True)
        out["pesq"] = {"clips": a.pesq_clips, "input": "dvae" if dv else "own mel", "points": points}
    a.out.write_text(json.dumps(out) + "\n")
    print(f"wrote {a.out}: {len(out['val'])} validations, joins at {joins}")


if __name__ == "__main__":
    main()
