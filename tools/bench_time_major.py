"""Time the generator's residual blocks with (c, t) activations against time-major (t, c) ones, and PyTorch.

Each row is one of V1's MRF blocks (ResBlock1, dilations 1, 3, 5, weight norm folded) at the shape it runs at
for a 2.3 s clip (198 mel frames), forward only, batch 1: the same block called as `block(x)` on `(c, t)` with
every convolution written the PyTorch way (`eqx.nn.Conv1d`, which XLA's CPU backend brackets with transposes of
the whole signal), as `block(x)` on `(t, c)` (the book's path: `xtts_book.layers.conv1d_tc`), and as
Coqui's `ResBlock1` in PyTorch with the same weights. The outputs are checked against each other. Variants run
interleaved, medians reported. Not a test; run by hand:

    PYTHONPATH=$PWD python tools/bench_time_major.py [--reps 7] [--json results/bench/time_major.json]
"""
import argparse
import json
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import torch

from bench_disc_convs import timeit                 # the tools' interleaved medians (tools/ is on sys.path)
from xtts_book.hifigan import LRELU_SLOPE, ResBlock1
from xtts_book.layers import fold_weight_norm

# (channels, samples, kernel) of V1's MRF blocks on 198 frames
ROWS = [(256, 1584, 3), (256, 1584, 11), (128, 12672, 3), (128, 12672, 11), (64, 25344, 3), (64, 25344, 11),
        (32, 50688, 3), (32, 50688, 11)]


def channels_first(rb, x):
    "The block written with `eqx.nn.Conv1d` calls on (c, t), as a direct port of the PyTorch code would."
    for c1, c2 in zip(rb.convs1, rb.convs2):
        x = x + c2(jax.nn.leaky_relu(c1(jax.nn.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
    return x


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    from TTS.vocoder.models.hifigan_generator import ResBlock1 as TorchResBlock1
    rows = []
    print(f"{'block':26s} {'(c, t) ms':>10s} {'(t, c) ms':>10s} {'torch ms':>10s}")
    for c, t, k in ROWS:
        rb = fold_weight_norm(ResBlock1(c, k, (1, 3, 5), key=jr.key(0)))
        x = jr.normal(jr.key(1), (c, t))
        xt = jnp.asarray(x.T)
        f_cf = jax.jit(channels_first)
        f_tm = jax.jit(lambda m, x: m(x))
        ref = np.asarray(f_cf(rb, x))
        np.testing.assert_allclose(np.asarray(f_tm(rb, xt)).T, ref, atol=1e-3, rtol=1e-4)
        tb = TorchResBlock1(c, k, (1, 3, 5))
        tb.remove_weight_norm()
        with torch.no_grad():
            for tl, jl in zip(list(tb.convs1) + list(tb.convs2), list(rb.convs1) + list(rb.convs2)):
                tl.weight.copy_(torch.from_numpy(np.asarray(jl.weight)))
                tl.bias.copy_(torch.from_numpy(np.asarray(jl.bias[:, 0])))
            xtorch = torch.from_numpy(np.asarray(x))[None]
            np.testing.assert_allclose(tb(xtorch)[0].numpy(), ref, atol=1e-3, rtol=1e-4)
            times = timeit({"channels-first (c, t)": lambda: f_cf(rb, x).block_until_ready(),
                            "time-major (t, c)": lambda: f_tm(rb, xt).block_until_ready(),
                            "torch": lambda: tb(xtorch)}, a.reps)
        name = f"ResBlock1 c{c} k{k} t{t}"
        flops = 6 * 2 * c * c * k * t
        for v, sec in times.items():
            rows.append(dict(block=name, variant=v, seconds=sec, gflops=flops / sec / 1e9))
        print(f"{name:26s} " + " ".join(f"{1e3 * s:10.1f}" for s in times.values()), flush=True)
    if a.json:
        meta = dict(jax=jax.__version__, torch=torch.__version__, cpus=os.cpu_count(), load=os.getloadavg()[0],
                    reps=a.reps)
        with open(a.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
