"""Where the HiFi-GAN training step's memory goes: XLA's own account of the compiled step.

Builds the bench's `train_<v>` case as `xtts-book bench` does (`performance.gan_bench_state`) (official MPD + MSD, batch 4 x 8192, the weights
of Coqui's modules), compiles `train_gan.make_gan_steps`' jitted step ahead of time and prints
`compiled.memory_analysis()`: the arguments (the training state and the batch), the outputs, what is donated
(aliased), and the temporaries the step allocates (activations kept for the backward passes, gradients,
workspace), next to the process's peak RSS. Compiling the V1 step takes minutes. Not a test; run by hand:

    PYTHONPATH=$PWD python tools/gan_memory.py [--version v1] [--json results/bench/gan_memory_v1.json]
"""
import argparse, json, resource, tempfile, time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from xtts_book import data as D, performance


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--version", default="v1", choices=["v1", "v3"])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    case = f"train_{a.version}"
    w = Path(tempfile.mkdtemp()) / "w.npz"
    performance._torch_case(case, False, w)                    # Coqui's weights, as the bench's PyTorch side saves them
    sd = dict(np.load(w))
    y = performance._inputs(case, performance.sizes(False))["y"]
    gan_step, state, mesh = performance.gan_bench_state(sd, performance._gen_configs(False)[a.version], y)
    batch = D.shard_batch(y, mesh)
    t = time.time()
    compiled = gan_step.lower(state, batch).compile()
    ma = compiled.compiled.memory_analysis()
    mib = lambda b: b / 2**20
    params = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(eqx.filter((state.gen, state.mpd, state.msd), eqx.is_array)))
    res = {"case": case, "compile_s": time.time() - t, "parameters_mb": mib(params),
           **{k: mib(getattr(ma, f"{k}_in_bytes")) for k in
              ("argument_size", "output_size", "alias_size", "temp_size", "generated_code_size")},
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for k, v in res.items():
        print(f"{k:24s} {v:10.1f}" if isinstance(v, float) else f"{k:24s} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
