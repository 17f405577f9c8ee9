"""HiFi-GAN and DVAE training steps on the ci corpus: D before G, the non-finite guard, bf16 on CPU, exact resume.
The discriminators are small stand-ins (tests/train_helpers.py) with the MPD/MSD interface: compiling the real
71M-parameter pair takes minutes on 2 cores; the real ones run in the chapter's cpu run."""
import math, os

import numpy as np
import jax, jax.numpy as jnp, jax.random as jr
import equinox as eqx
import pytest

from xtts_book.audio import hifigan_mel
from xtts_book.discriminators import discriminator_loss, feature_loss, generator_loss, mel_loss
from train_helpers import tiny_discriminators
from xtts_book import checkpoint
from xtts_book import recipes
from xtts_book import train
from xtts_book import train_dvae
from xtts_book import train_gan

quiet = dict(progress=False, log=lambda *a: None)
# the GAN-step tests run in `make test`: about 7 minutes together on 2 cores, on one pytest worker


@pytest.fixture(scope="module")
def gan():
    # a large learning rate makes one D update visible in the generator's loss
    return recipes.make_task(recipes.recipe("hifigan", "ci", lr=2e-2), disc_factory=tiny_discriminators)


def arrays(tree):
    return jax.device_get(eqx.filter(tree, eqx.is_array))


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_d_first_then_g_through_updated_d(gan):
    st = gan.place(gan.init(jr.PRNGKey(0)))
    before = arrays(st)
    st, m = gan.train_step(st, train.shard_batch(gan.batch(2), gan.mesh), gan.config.warmup_steps)  # a GAN step
    after = arrays(st)
    assert not same(before.gen, after.gen) and not same(before.mpd, after.mpd) and not same(before.msd, after.msd)
    assert not same(before.msd_state, after.msd_state)  # spectral-norm vectors moved
    assert (int(after.step), int(after.skipped)) == (1, 0)
    # recompute the generator loss by hand: old generator's output, discriminators AFTER their update,
    # spectral-norm state after the two D calls
    fresh = gan.init(jr.PRNGKey(0))
    combine = lambda a, like: eqx.combine(a, eqx.filter(like, eqx.is_array, inverse=True))
    y = jnp.asarray(gan.batch(2))
    y3 = y[:, None]
    y_hat = train_gan._run_gen(fresh.gen, hifigan_mel(y))
    _, _, ss = train_gan._run_disc(fresh.msd, fresh.msd_state, y3)
    _, _, ss = train_gan._run_disc(fresh.msd, ss, y_hat)
    sp = fresh.mpd_state

    def g_loss(mpd, msd):
        _, frp, _ = train_gan._run_disc(mpd, sp, y3)
        gp, fgp, _ = train_gan._run_disc(mpd, sp, y_hat)
        _, frs, s1 = train_gan._run_disc(msd, ss, y3)
        gs, fgs, _ = train_gan._run_disc(msd, s1, y_hat)
        return (generator_loss(gp)[0] + generator_loss(gs)[0] + feature_loss(frp, fgp) + feature_loss(frs, fgs)
                + 45 * mel_loss(y3, y_hat))
    new_d = g_loss(combine(after.mpd, fresh.mpd), combine(after.msd, fresh.msd))
    old_d = g_loss(fresh.mpd, fresh.msd)
    np.testing.assert_allclose(float(m["loss_g"]), float(new_d), rtol=1e-5)
    assert abs(float(new_d) - float(old_d)) > 1e-3 * abs(float(old_d))


def test_nan_batch_skipped_inside_the_step(gan):
    st = gan.place(gan.init(jr.PRNGKey(0)))
    before = arrays(st)
    bad = gan.batch(0).copy()
    bad[0, 100] = np.nan
    for step in (0, gan.config.warmup_steps):  # the warm-up step and the GAN step
        st, m = gan.train_step(st, train.shard_batch(bad, gan.mesh), step)
        assert not math.isfinite(float(m["loss_g"]))
    after = arrays(st)
    for f in ("gen", "mpd", "msd", "mpd_state", "msd_state", "opt_g", "opt_d"):
        assert same(getattr(before, f), getattr(after, f)), f
    assert (int(after.step), int(after.skipped), int(after.streak)) == (2, 2, 2)


def test_resume_gan_exactly(gan, tmp_path):
    train.fit(gan, tmp_path / "a", **quiet)  # ci: 2 warm-up + 2 GAN steps
    train.fit(gan, tmp_path / "b", steps=3, **quiet)
    train.fit(gan, tmp_path / "b", resume=True, **quiet)
    la = [(r["step"], r["loss_g"]) for r in checkpoint.read_metrics(tmp_path / "a") if "loss_g" in r]
    lb = [(r["step"], r["loss_g"]) for r in checkpoint.read_metrics(tmp_path / "b") if "loss_g" in r]
    assert la == lb and [s for s, _ in la] == [1, 2, 3, 4]
    val = [r for r in checkpoint.read_metrics(tmp_path / "a") if "val/mel_l1" in r]
    assert len(val) == 2 and all(0 < r["val/mel_l1"] < 10 for r in val)
    assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir())[:1] == ["step_00000000_gt0.wav"]
    assert (tmp_path / "a" / "checkpoints" / "best.eqx").exists()
    assert any((tmp_path / "a" / "tb").iterdir())


def test_mixed_precision_runs_on_cpu():
    cfg = recipes.recipe("hifigan", "ci", mixed_precision=True)
    task = recipes.make_task(cfg, disc_factory=tiny_discriminators)
    st = task.place(task.init(jr.PRNGKey(0)))
    for s in (0, cfg.warmup_steps):
        st, m = task.train_step(st, train.shard_batch(task.batch(s), task.mesh), s)
        assert math.isfinite(float(m["loss_g"])) and int(m["skipped"]) == 0
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(eqx.filter((st.gen, st.mpd, st.msd), eqx.is_inexact_array)))


def test_dvae_step_guard_and_bf16():
    for mp in (False, True):
        task = recipes.make_task(recipes.recipe("dvae", "ci", mixed_precision=mp))
        st = task.place(task.init(jr.PRNGKey(0)))
        st, m = task.train_step(st, train.shard_batch(task.batch(0), task.mesh), 0)
        assert math.isfinite(m["loss"]) and int(m["skipped"]) == 0
        before = arrays(st)
        bad = task.batch(1).copy()
        bad[:, :50] = np.inf
        st, m = task.train_step(st, train.shard_batch(bad, task.mesh), 1)
        after = arrays(st)
        assert int(m["skipped"]) == 1 and same((before.model, before.ema, before.opt), (after.model, after.ema, after.opt))
        val, _ = task.validate(st)
        assert 0 < val["val/recon"] < 100 and val["val/perplexity"] >= 1


def test_warmup_with_a_multi_resolution_stft_loss(tmp_path):
    "stft_weight adds Parallel WaveGAN's loss to the generator's: logged, finite, and the run trains."
    cfg = recipes.recipe("hifigan", "ci", stft_weight=1.0, steps=2, warmup_steps=2)
    s = train.fit(recipes.make_task(cfg, disc_factory=tiny_discriminators), tmp_path / "r", **quiet)
    recs = [r for r in checkpoint.read_metrics(tmp_path / "r") if "mr_stft" in r]
    assert s["step"] == 2 and len(recs) == 2 and all(math.isfinite(r["mr_stft"]) and r["mr_stft"] > 0 for r in recs)
    assert all(r["loss_g"] > 45 * r["mel_l1"] for r in recs)
