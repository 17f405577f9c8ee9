#!/usr/bin/env bash
# The chapter-14 cpu run: HiFi-GAN, cpu recipe (mel-L1 warm-up of a V2 generator), 60 wall-clock minutes, lr 1e-3,
# in the background; chapter 14 reads runs/hifigan-cpu (metrics.jsonl, samples/) when it exists.
# Usage: tools/train_cpu_run.sh [MINUTES]   (run from the repository root; resume with --resume)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p runs
nohup python -c "import sys; from xtts_book.cli import main; sys.exit(main())" \
  train hifigan --profile cpu --data "${XTTS_BOOK_CORPUS:-data/corpora/asterisk}" --out runs/hifigan-cpu \
  --minutes "${1:-60}" > runs/hifigan-cpu.log 2>&1 &
echo "started pid $!; log: runs/hifigan-cpu.log, metrics: runs/hifigan-cpu/metrics.jsonl"
