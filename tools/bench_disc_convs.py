"""Time forward + backward of the HiFi-GAN discriminators' convolutions, layer by layer, on a batch of 4 x 8192
samples, in the formulations XLA offers on CPU and in PyTorch:

- the scale discriminator's grouped kernel-41 convs: XLA's grouped convolution (`feature_group_count`, what
  `eqx.nn.Conv1d(groups=g)` lowers to), against one dense convolution per group (`xtts_book.discriminators.conv1d`),
  against `torch.nn.Conv1d(groups=g)`;
- the period discriminator's (5, 1) convs (period 3): a 2-D convolution over the fold (c, h, p), as PyTorch writes
  it, against a 1-D convolution over the p columns as a batch (`conv1d`), against `torch.nn.Conv2d`.

Each JAX variant is checked against the first one. The variants run interleaved (one of each per round), so a busy
machine slows them alike; medians are reported with GFLOP/s (forward + both gradients = 3x the forward FLOPs).
Not a test; run by hand:

    PYTHONPATH=$PWD python tools/bench_disc_convs.py [--reps 5] [--json results/bench/disc_convs.json]
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
from jax import lax

from xtts_book.discriminators import conv1d

B = 4
# (c_in, c_out, length in, stride, groups) of DiscriminatorS's kernel-41 convs on the raw 8192-sample scale
MSD = [(128, 128, 8192, 2, 4), (128, 256, 4096, 2, 16), (256, 512, 2048, 4, 16), (512, 1024, 512, 4, 16),
       (1024, 1024, 128, 1, 16)]
# (c_in, c_out, fold height in, stride) of DiscriminatorP(3)'s (5, 1) convs on 8192 samples
P = 3
MPD = [(1, 32, 8193 // P, 3), (32, 128, 911, 3), (128, 512, 304, 3), (512, 1024, 102, 3), (1024, 1024, 34, 1)]


def grad_fn(apply):
    "jit(d/d(w, x) of sum(apply(w, x)^2))"
    return jax.jit(jax.grad(lambda w, x: jnp.sum(apply(w, x) ** 2), argnums=(0, 1)))


def torch_step(layer, x):
    def run():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (layer(x) ** 2).sum().backward()
    return run


def jax_step(f, w, x):
    return lambda: jax.block_until_ready(f(w, x))


def timeit(fns: dict, reps: int) -> dict:
    for f in fns.values():
        f()                                                   # compile / warm up
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def check(grads: dict):
    ref = next(iter(grads.values()))
    for k, g in grads.items():
        for a, b in zip(ref, g):
            err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
            assert err < 1e-4, f"{k} disagrees with the first variant: relative error {err:.1e}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    print(f"{'layer':34s} {'variant':22s} {'ms':>8s} {'GFLOP/s':>8s}")
    for ci, co, t, s, g in MSD:
        k, pad = 41, 20
        conv = eqx.nn.Conv1d(ci, co, k, s, padding=pad, groups=g, key=jr.PRNGKey(0))
        x = jr.normal(jr.PRNGKey(1), (B, ci, t))
        w = conv.weight
        b = conv.bias.reshape(1, -1, 1)
        grouped = grad_fn(lambda w, x: lax.conv_general_dilated(x, w, (s,), ((pad, pad),), feature_group_count=g,
                                                                dimension_numbers=("NCH", "OIH", "NCH")) + b)
        per_group = grad_fn(lambda w, x: conv1d(eqx.tree_at(lambda c: c.weight, conv, w), x))
        check({"grouped": grouped(w, x), "per_group": per_group(w, x)})
        tl = torch.nn.Conv1d(ci, co, k, s, padding=pad, groups=g)
        xt = torch.randn(B, ci, t, requires_grad=True)
        times = timeit({"XLA grouped conv": jax_step(grouped, w, x), "one conv per group": jax_step(per_group, w, x),
                        "torch Conv1d(groups)": torch_step(tl, xt)}, a.reps)
        t_out = (t + 2 * pad - k) // s + 1
        flops = 3 * 2 * B * t_out * co * (ci // g) * k
        name = f"MSD {ci}->{co} k41 s{s} g{g}"
        for v, sec in times.items():
            rows.append(dict(layer=name, variant=v, seconds=sec, gflops=flops / sec / 1e9))
            print(f"{name:34s} {v:22s} {sec * 1e3:8.1f} {flops / sec / 1e9:8.1f}")
    for ci, co, h, s in MPD:
        conv = eqx.nn.Conv2d(ci, co, (5, 1), (s, 1), padding=((2, 2), (0, 0)), key=jr.PRNGKey(0))
        x = jr.normal(jr.PRNGKey(1), (B, ci, h, P))
        w = conv.weight
        b2 = conv.bias.reshape(1, -1, 1, 1)
        conv2d = grad_fn(lambda w, x: lax.conv_general_dilated(x, w, (s, 1), ((2, 2), (0, 0)),
                                                               dimension_numbers=("NCHW", "OIHW", "NCHW")) + b2)
        def cols(w, x):
            y = conv1d(eqx.tree_at(lambda c: c.weight, conv, w), jnp.transpose(x, (0, 3, 1, 2)).reshape(B * P, ci, h))
            return jnp.transpose(y.reshape(B, P, co, -1), (0, 2, 3, 1))
        columns = grad_fn(cols)
        check({"conv2d": conv2d(w, x), "columns": columns(w, x)})
        tl = torch.nn.Conv2d(ci, co, (5, 1), (s, 1), padding=(2, 0))
        xt = torch.randn(B, ci, h, P, requires_grad=True)
        times = timeit({"XLA Conv2d (c, h, p)": jax_step(conv2d, w, x), "Conv1d over columns": jax_step(columns, w, x),
                        "torch Conv2d": torch_step(tl, xt)}, a.reps)
        flops = 3 * 2 * B * P * ((h + 4 - 5) // s + 1) * co * ci * 5
        name = f"MPD(p=3) {ci}->{co} (5,1) s{s}"
        for v, sec in times.items():
            rows.append(dict(layer=name, variant=v, seconds=sec, gflops=flops / sec / 1e9))
            print(f"{name:34s} {v:22s} {sec * 1e3:8.1f} {flops / sec / 1e9:8.1f}")
    tot = {}
    for r in rows:
        tot[r["variant"]] = tot.get(r["variant"], 0.0) + r["seconds"]
    print("totals (s):", {k: round(v, 3) for k, v in tot.items()})
    if a.json:
        meta = dict(jax=jax.__version__, torch=torch.__version__, cpus=os.cpu_count(), load=os.getloadavg()[0],
                    batch=B, reps=a.reps)
        with open(a.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows, totals=tot), f, indent=1)


if __name__ == "__main__":
    main()
