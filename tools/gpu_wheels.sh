#!/usr/bin/env bash
# Prepare, here, what tools/gpu_check.sh needs on a GPU machine whose image lacks it (Python 3.12, x86-64), for
# `run`'s carry (.whl and .gpu-corpus; 64 MiB with the working tree, which is about 52):
#   .whl/         the audio stack (librosa and what it needs beyond the image), soundfile, tensorboardX, and the
#                 pure-Python PyTorch reference (coqui-tts and the few packages tools/install-reference.sh adds),
#                 each at the version this checkout's .venv has; about 4 MB
#   .gpu-corpus/  the check's 12-clip espeak corpus, built here (the espeak voices are a 10 MB wheel), about 5 MB
# Both are git-ignored through .git/info/exclude.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in /.whl/ /.gpu-corpus/; do grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
rm -rf .whl
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
for pkg in librosa audioread soxr pooch decorator standard-aifc standard-sunau soundfile cffi pycparser tensorboardX \
           coqui-tts coqui-tts-trainer coqpit-config anyascii inflect typeguard more-itertools num2words pysbd; do
  ver=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null || true)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
    -d .whl "$pkg${ver:+==$ver}" || echo "gpu_wheels: no wheel for $pkg${ver:+==$ver} (skipped)"
done
rm -rf .gpu-corpus
.venv/bin/python -c "from xtts_book.data import build_corpus; build_corpus('espeak', '.gpu-corpus', limit=12, val_fraction=0.25, progress=False)"
du -sh .whl .gpu-corpus
