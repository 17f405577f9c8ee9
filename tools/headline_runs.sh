#!/usr/bin/env bash
# The runs behind the book's results table, in the `cpu` profile, each on one core, each resumable.
# Run from the repository root. Every call can be repeated with --resume to train longer; SIGTERM saves.
#
#   tools/headline_runs.sh vocoder [MINUTES]    the book's vocoder (the cpu recipe, chapter 14)
#   tools/headline_runs.sh dvae [MINUTES]       the DVAE: 1,024 codes, dead-code restart, input 20 dB down (chapter 15)
#   tools/headline_runs.sh finetune [MINUTES]   the official universal V1 fine-tuned on the DVAE's mels (chapter 14)
#   tools/headline_runs.sh weights              write results/weights/ from the three runs
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export XTTS_BOOK_PROFILE=cpu
resume() { [ -f "runs/$1/config.json" ] && echo --resume || true; }
case "${1:-}" in
  vocoder)
    taskset -c 0 $BIN/xtts-book train hifigan --profile cpu --out runs/voc-cpu $(resume voc-cpu) --minutes "${2:-120}" --no-progress ;;
  dvae)
    taskset -c 1 $BIN/xtts-book train dvae --profile cpu --out runs/dvae-cpu $(resume dvae-cpu) --steps 60000 --minutes "${2:-62}" --no-progress ;;
  finetune)
    taskset -c 1 $BIN/xtts-book train hifigan --profile cpu --out runs/ft-v1 $(resume ft-v1) --minutes "${2:-45}" --no-progress \
      --init-from official:universal --input-dvae results/weights/dvae-cpu.eqx \
      --set warmup_steps=0 --set disc_warmup_steps=30 --set batch_size=4 --set lr=0.0002 --set stft_weight=0 \
      --set val_every=25 --set ckpt_every=25 --set keep_every=25 --set keep_last=2 --set val_utterances=8 ;;
  weights)
    mkdir -p results/weights
    $BIN/xtts-book weights runs/voc-cpu --out results/weights/hifigan-cpu.eqx
    $BIN/xtts-book weights runs/dvae-cpu --out results/weights/dvae-cpu.eqx --float16
    $BIN/xtts-book weights runs/ft-v1 --out results/weights/hifigan-v1-finetuned-cpu.eqx --float16 ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
