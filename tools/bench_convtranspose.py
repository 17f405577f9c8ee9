"""Time forward + backward of HiFi-GAN V1's first upsampling layer (512 -> 256 channels, k 16, u 8) on a batch
of 4 x 32 frames: xtts_book.layers.ConvTranspose1d (polyphase, one matrix multiply) against
eqx.nn.ConvTranspose1d, an explicit zero-stuffed convolution, the polyphase form written as one convolution,
and torch.nn.ConvTranspose1d. All five are checked to agree first. Not a test; run by hand:

    PYTHONPATH=$PWD python tools/bench_convtranspose.py [--reps 5]

The variants run interleaved (one of each per round), so a busy machine slows them alike; medians are reported.
"""
import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import torch
from jax import lax

from xtts_book.layers import ConvTranspose1d
from xtts_book.layers import load_torch, to_numpy

C_IN, C_OUT, K, U, B, T = 512, 256, 16, 8, 4, 32
P = (K - U) // 2


def zero_stuffed(w, b, x):
    "Insert u - 1 zeros between frames, then a plain convolution with the flipped, transposed kernel."
    c_in, t = x.shape
    z = jnp.zeros((c_in, t, U), x.dtype).at[:, :, 0].set(x).reshape(c_in, t * U)[:, : (t - 1) * U + 1]
    kern = jnp.flip(w, -1).transpose(1, 0, 2)          # (c_out, c_in, k)
    y = lax.conv_general_dilated(z[None], kern, (1,), [(K - 1 - P, K - 1 - P)],
                                 dimension_numbers=("NCH", "OIH", "NCH"))[0]
    return y + b


def polyphase_conv(w, b, x):
    "The polyphase form as one stride-1 convolution with u * c_out output channels (fast forward, slow d/dw on CPU)."
    c_in, c_out, k = w.shape
    t = x.shape[1]
    m = -(-k // U)
    wp = jnp.pad(w, ((0, 0), (0, 0), (0, m * U - k)))
    kern = wp.reshape(c_in, c_out, m, U).transpose(1, 3, 0, 2)[..., ::-1].reshape(c_out * U, c_in, m)
    z = lax.conv_general_dilated(x[None], kern, (1,), [(m - 1, m - 1)], dimension_numbers=("NCH", "OIH", "NCH"))[0]
    q = z.shape[-1]
    z = z.reshape(c_out, U, q).transpose(0, 2, 1).reshape(c_out, q * U)
    return z[:, P:P + (t - 1) * U - 2 * P + k] + b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    tconv = torch.nn.ConvTranspose1d(C_IN, C_OUT, K, U, padding=P)
    x_np = np.random.default_rng(0).standard_normal((B, C_IN, T)).astype(np.float32)
    x = jnp.asarray(x_np)

    ours = load_torch(ConvTranspose1d(C_IN, C_OUT, K, U, P, key=jr.key(0)), to_numpy(tconv.state_dict()))
    ref = eqx.nn.ConvTranspose1d(C_IN, C_OUT, K, U, padding=P, key=jr.key(0))
    ref = eqx.tree_at(lambda m: (m.weight, m.bias), ref, (jnp.flip(ours.weight, -1).transpose(1, 0, 2), ours.bias))

    def module_grad(m, x):   # d/d(weight, bias) and d/dx of sum(y^2)
        return eqx.filter_grad(lambda mx: jnp.sum(jax.vmap(mx[0])(mx[1]) ** 2))((m, x))

    def fn_grad(f):
        return jax.jit(jax.grad(lambda w, b, x: jnp.sum(jax.vmap(f, (None, None, 0))(w, b, x) ** 2), argnums=(0, 1, 2)))

    module_grad = eqx.filter_jit(module_grad)
    zs, pc = fn_grad(zero_stuffed), fn_grad(polyphase_conv)

    # all agree, forwards and in the weight gradient
    xt = torch.from_numpy(x_np).requires_grad_()
    (tconv(xt) ** 2).sum().backward()
    want, want_gw = tconv(xt).detach().numpy(), tconv.weight.grad.numpy()
    for name, y in [("ours", jax.vmap(ours)(x)), ("eqx", jax.vmap(ref)(x)),
                    ("zero-stuffed", jax.vmap(zero_stuffed, (None, None, 0))(ours.weight, ours.bias, x)),
                    ("polyphase conv", jax.vmap(polyphase_conv, (None, None, 0))(ours.weight, ours.bias, x))]:
        np.testing.assert_allclose(np.asarray(y), want, atol=1e-4, err_msg=name)
    scale = np.abs(want_gw).max()
    for name, gw in [("ours", module_grad(ours, x)[0].weight), ("zero-stuffed", zs(ours.weight, ours.bias, x)[0]),
                     ("polyphase conv", pc(ours.weight, ours.bias, x)[0])]:
        np.testing.assert_allclose(np.asarray(gw) / scale, want_gw / scale, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(np.asarray(jnp.flip(module_grad(ref, x)[0].weight, -1).transpose(1, 0, 2)) / scale,
                               want_gw / scale, atol=1e-5, err_msg="eqx")

    def torch_step():
        tconv.zero_grad()
        xt.grad = None
        (tconv(xt) ** 2).sum().backward()

    variants = {
        "torch.nn.ConvTranspose1d": torch_step,
        "eqx.nn.ConvTranspose1d (lhs_dilation)": lambda: jax.block_until_ready(module_grad(ref, x)),
        "zero-stuffed + plain conv": lambda: jax.block_until_ready(zs(ours.weight, ours.bias, x)),
        "polyphase as one conv": lambda: jax.block_until_ready(pc(ours.weight, ours.bias, x)),
        "xtts_book ConvTranspose1d (polyphase matmul)": lambda: jax.block_until_ready(module_grad(ours, x)),
    }
    times = {n: [] for n in variants}
    for f in variants.values():
        f()                                                  # compile / warm up
    for _ in range(args.reps):
        for n, f in variants.items():
            t0 = time.perf_counter()
            f()
            times[n].append(time.perf_counter() - t0)
    print(f"forward + backward (d/dweight, d/dbias, d/dinput) of sum(y^2): batch {B}, {C_IN} -> {C_OUT} channels, "
          f"{T} frames, k={K}, u={U}; jax {jax.__version__} on {jax.default_backend()}, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads; median of {args.reps} interleaved rounds")
    for n, v in times.items():
        print(f"  {n:46s} {1e3 * np.median(v):9.1f} ms")


if __name__ == "__main__":
    main()
