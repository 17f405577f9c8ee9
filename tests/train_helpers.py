"""Small stand-ins for the tests of xtts_book.train: discriminators with the MPD/MSD interface (scores, features,
state; a spectral-normed layer so the state moves), cheap to compile, so the GAN step's mechanics are tested in CI."""
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from xtts_book.layers import SpectralNorm
from xtts_book.layers import weight_norm
from xtts_book import train_gan


class TinyDisc(eqx.Module):
    "Two strided convs and a score: (1, t) -> (scores [1 x (s,)], features [[3 maps]], state)."
    convs: tuple
    post: eqx.Module

    def __init__(self, spectral: bool, *, key):
        k = jr.split(key, 6)
        norm = (lambda l, kk: SpectralNorm(l, key=kk)) if spectral else (lambda l, kk: weight_norm(l))
        self.convs = (norm(eqx.nn.Conv1d(1, 4, 15, 4, padding=7, key=k[0]), k[1]),
                      norm(eqx.nn.Conv1d(4, 8, 9, 4, padding=4, key=k[2]), k[3]))
        self.post = norm(eqx.nn.Conv1d(8, 1, 3, 1, padding=1, key=k[4]), k[5])

    def __call__(self, wav, state=None, *, inference=None):
        def apply(layer, x, state):
            if isinstance(layer, SpectralNorm):
                return layer(x, state, inference=inference)
            return layer(x), state
        feats, x = [], wav
        for c in self.convs:
            x, state = apply(c, x, state)
            x = jax.nn.leaky_relu(x, 0.1)
            feats.append(x)
        x, state = apply(self.post, x, state)
        feats.append(x)
        return [x.reshape(-1)], [feats], state


def tiny_discriminators(cfg, *, key):
    "Stand-in for `train_gan.official_discriminators`: an 'MPD' (weight norm) and an 'MSD' (spectral norm)."
    kp, ks = jr.split(key)
    mpd, sp = eqx.nn.make_with_state(TinyDisc)(False, key=kp)
    msd, ss = eqx.nn.make_with_state(TinyDisc)(True, key=ks)
    return mpd, sp, msd, ss


def ci_run(folder, model: str, step: int = 1, **header):
    """A run folder holding one checkpoint of the `ci` recipe's fresh `model` ('hifigan' or 'dvae'), its header
    completed by `header` (an `audio` entry, a corpus ...). **Returns:** the folder."""
    from dataclasses import asdict
    from xtts_book.checkpoint import save_checkpoint
    from xtts_book.recipes import init_state, recipe
    cfg = recipe(model, "ci")
    save_checkpoint(folder / "checkpoints" / f"step_{step:08d}.eqx", init_state(cfg, jr.PRNGKey(0)),
                    {"step": step, "elapsed_s": 1.0, "model": model, "config": asdict(cfg), **header})
    return folder
