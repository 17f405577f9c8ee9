"""Where the HiFi-GAN training step's time goes, by kind of XLA op.

Builds the bench's `train_<v>` case (official MPD + MSD, the V1 or V3 generator, batch 4 x 8192, the weights of
Coqui's modules from seed 0), runs two steps of `train_gan.make_gan_steps`' jitted step under `jax.profiler.trace`
with XLA's per-op trace events on, and sums the events by kind (`convolution-base-dilated` is XLA's path for
convolutions with an input dilation, e.g. the input gradient of a strided convolution). Compiling the step takes
minutes. Not a test; run by hand:

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true PYTHONPATH=$PWD python tools/profile_gan_step.py [--version v3]
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax

from profile_dvae_step import op_kinds               # tools/ is on sys.path when run as a script
from xtts_book import performance as bench   # the cases (chapter 22)
from xtts_book import train_gan


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--version", default="v3", choices=["v1", "v3"])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "xla_cpu_enable_xprof_traceme" not in os.environ.get("XLA_FLAGS", ""):
        raise SystemExit("set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true (per-op trace events)")
    case = f"train_{a.version}"
    w = Path(tempfile.mkdtemp()) / "w.npz"
    bench._torch_case(case, False, w)
    step, _ = bench._jax_case(case, False, w)
    t = time.time()
    step()
    print(f"compile + first step: {time.time() - t:.0f} s", flush=True)
    step()
    t = time.time()
    kinds = op_kinds(step, steps=2)
    per_step = (time.time() - t) / 2
    print(f"{case}: {per_step:.2f} s per traced step; seconds per step by kind of XLA op:")
    for k, v in list(kinds.items())[:12]:
        print(f"  {k:32s} {v['seconds']:7.3f} s  ({v['ops']} ops)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(case=case, seconds_per_step=per_step, jax=jax.__version__, load=os.getloadavg()[0],
                           op_kinds=dict(list(kinds.items())[:16])), f,
                      indent=1)


if __name__ == "__main__":
    main()
