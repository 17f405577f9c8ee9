#!/usr/bin/env bash
# Download, here, the wheels tools/gpu_check.sh installs on a GPU machine whose image lacks them (Python 3.12,
# x86-64): the audio stack (librosa and what it needs beyond the image), soundfile, tensorboardX, the espeak
# voices for the check's corpus. They go to .whl/ (git-ignored through .git/info/exclude), about 20 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
for pkg in librosa audioread soxr pooch decorator standard-aifc standard-sunau audioop-lts soundfile cffi pycparser \
           tensorboardX espeakng-loader; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
    -d .whl "$pkg" || echo "gpu_wheels: no wheel for $pkg (skipped)"
done
ls -la .whl
