#!/usr/bin/env bash
# The GPU check in one command (tools/gpu_check.py says what it runs; about 8 minutes on a GPU machine):
#   tools/gpu_check.sh          on a GPU machine: results/bench/gpu/<device>.json
#   tools/gpu_check.sh --dry    on any machine: the same steps at the ci sizes on the CPU (what CI runs)
# A GPU image that has JAX (CUDA), Equinox, Optax and PyTorch but not the rest installs the wheels carried in
# .whl/ (make them here, where PyPI is reachable, with tools/gpu_wheels.sh). Nothing is downloaded on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site .whl/*.whl
  export PYTHONPATH="/tmp/gpu-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" tools/gpu_check.py "$@"
