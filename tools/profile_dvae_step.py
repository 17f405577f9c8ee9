"""Where the DVAE training step's time goes, op by op, and what splitting it in two programs changes.

Builds the XTTS-v2-sized DVAE from the weights the bench uses, runs `train_dvae.make_dvae_step(donate=True)` under
`jax.profiler.trace` with XLA's per-op trace events on, and sums the events by kind (`multiply_add_fusion`,
`transpose_copy_fusion`, `convolution`, ...). Then it times three variants of one AdamW step, interleaved:
the fused step (one program), the same computation as two programs (gradients, then a donated update), and the
gradients alone. Not a test; run by hand (a few minutes):

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true PYTHONPATH=$PWD python tools/profile_dvae_step.py \
        [--json results/bench/dvae_profile.json]
"""
import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from bench_disc_convs import timeit                 # the tools' interleaved medians (tools/ is on sys.path)
from xtts_book import performance as bench   # the cases (chapter 22)
from xtts_book.train_dvae import dvae_optimizer, make_dvae_step
from xtts_book.vqvae import dvae_from_torch, dvae_loss


def op_kinds(run, steps: int = 3) -> dict:
    """Call `run()` `steps` times under `jax.profiler.trace` and sum XLA's per-op trace events by kind of op.

    **Returns:** `{kind: {"seconds": per step, "ops": per step}}`, largest first."""
    trace_dir = tempfile.mkdtemp()
    with jax.profiler.trace(trace_dir):
        for _ in range(steps):
            run()
    events = json.load(gzip.open(glob.glob(trace_dir + "/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    kinds, counts = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(("$", "ThunkExecutor", "end:", "Pjit", "Common")):
            k = re.sub(r"\.\d+$", "", e["name"])
            kinds[k] += e["dur"] / 1e6 / steps
            counts[k] += 1
    return {k: dict(seconds=v, ops=counts[k] // steps) for k, v in kinds.most_common()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "xla_cpu_enable_xprof_traceme" not in os.environ.get("XLA_FLAGS", ""):
        raise SystemExit("set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true (per-op trace events)")
    w = Path(tempfile.mkdtemp()) / "dvae.npz"
    bench._torch_case("dvae", False, w)                 # the bench's weights (PyTorch init, seed 0)
    sd = dict(np.load(w))
    mel = jax.numpy.asarray(bench._inputs("dvae", bench.sizes(False))["mel"])
    opt = dvae_optimizer()

    def fresh():
        m, s = dvae_from_torch(sd)
        return [m, s, opt.init(eqx.filter(m, eqx.is_array))]

    step = make_dvae_step(opt, donate=True)
    fused = fresh()

    def run_fused():
        fused[0], fused[1], fused[2], _ = step(*fused, mel)
        jax.block_until_ready(fused[0])

    grads_fn = eqx.filter_jit(lambda m, s, x: eqx.filter_value_and_grad(dvae_loss, has_aux=True)(m, s, x))

    def update(m, o, g):
        u, o = opt.update(g, o, eqx.filter(m, eqx.is_array))
        return eqx.apply_updates(m, u), o
    update_fn = eqx.filter_jit(update, donate="all")
    split = fresh()

    def run_split():
        (_, (s, _)), g = grads_fn(split[0], split[1], mel)
        split[0], split[2] = update_fn(split[0], split[2], g)
        split[1] = s
        jax.block_until_ready(split[0])

    def run_grads():
        jax.block_until_ready(grads_fn(split[0], split[1], mel))

    for f in (run_fused, run_split, run_grads):
        f()                                             # compile; timeit warms up once more
    kinds = op_kinds(run_fused)
    print("fused step, seconds per step by kind of XLA op:")
    for k, v in list(kinds.items())[:8]:
        print(f"  {k:28s} {v['seconds']:6.3f} s  ({v['ops']} ops)")
    med = timeit({"fused step": run_fused, "gradients + update, two programs": run_split, "gradients alone": run_grads},
                 a.reps)
    for k, v in med.items():
        print(f"{k:36s} {v:6.3f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(meta=dict(jax=jax.__version__, cpus=os.cpu_count(), load=os.getloadavg()[0], reps=a.reps),
                           op_kinds=dict(list(kinds.items())[:12]),
                           steps=med), f, indent=1)


if __name__ == "__main__":
    main()
