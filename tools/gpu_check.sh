#!/usr/bin/env bash
# The GPU check in one command (tools/gpu_check.py says what it runs; about 8 minutes on a GPU machine):
#   tools/gpu_check.sh          on a GPU machine: results/bench/gpu/<device>.json
#   tools/gpu_check.sh --dry    on any machine: the same steps at the ci sizes on the CPU (what CI runs)
# A GPU image that has JAX (CUDA), Equinox, Optax and PyTorch but not the rest installs the wheels carried in
# .whl/, and uses the corpus carried in .gpu-corpus/ (make both here, where PyPI is reachable, with
# tools/gpu_wheels.sh; carry both). Nothing is downloaded on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ " $* " != *" --dry "* ]] && compgen -G ".whl/*.whl" > /dev/null; then   # --dry: this machine's own install
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site .whl/*.whl \
    || echo "gpu_check: the wheels in .whl/ did not install here (made for Python 3.12 on x86-64); going on without them" >&2
  export PYTHONPATH="/tmp/gpu-site${PYTHONPATH:+:$PYTHONPATH}"
  # coqui-tts refuses to import unless torchcodec is installed; nothing the reference modules use calls it
  # (tools/install-reference.sh says the same), so an empty package stands in for its 10 MB wheel
  PYTHONPATH="$PYTHONPATH" "$PY" -c "import torchcodec" 2>/dev/null || { mkdir -p /tmp/gpu-site/torchcodec && : > /tmp/gpu-site/torchcodec/__init__.py; }
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" tools/gpu_check.py "$@"
