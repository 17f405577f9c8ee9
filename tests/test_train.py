"""The training machinery (xtts_book.train) on a tiny stand-in task: checkpoints, resume, NaN skipping, logs."""
import json, math

import numpy as np
import jax, jax.numpy as jnp, jax.random as jr
import equinox as eqx
import pytest
from xtts_book import checkpoint
from xtts_book import train



class ToyState(eqx.Module):
    model: eqx.nn.Linear
    opt: object
    step: jax.Array
    skipped: jax.Array
    streak: jax.Array


class ToyTask(train.Task):
    "Linear regression from 16 samples to their mean: the loop's machinery without a big model."
    name = "toy"
    best_metric = "val/loss"

    def __init__(self, config, mesh=None, nan_steps=()):
        super().__init__(config, mesh)
        self.opt = train.make_optimizer(config)
        self.nan_steps = set(nan_steps)
        cfg = config

        @eqx.filter_jit
        def step(state, x):
            def loss_fn(m):
                y = jax.vmap(m)(x)[:, 0]
                return jnp.mean((y - x.mean(1)) ** 2)
            loss, g = eqx.filter_value_and_grad(loss_fn)(state.model)
            opt = train.set_lr(state.opt, train.learning_rate(cfg, state.step, self.steps_per_epoch))
            upd, opt = self.opt.update(g, opt, eqx.filter(state.model, eqx.is_array))
            new = eqx.tree_at(lambda s: (s.model, s.opt), state, (eqx.apply_updates(state.model, upd), opt))
            ok = jnp.isfinite(loss) & train.all_finite(g)
            state = train.commit(ok, new, state)
            return state, {"loss": loss, "skipped": state.skipped, "streak": state.streak}
        self._step = step

    def init(self, key):
        m = eqx.nn.Linear(16, 1, key=key)
        return ToyState(m, self.opt.init(eqx.filter(m, eqx.is_array)), **train.counters())

    def batch(self, step):
        x = np.random.default_rng([self.config.seed, step]).standard_normal((self.config.batch_size, 16)).astype(np.float32)
        if step in self.nan_steps:
            x[0, 0] = np.nan
        return x

    def train_step(self, state, batch, step):
        return self._step(state, batch)

    def validate(self, state):
        x = self.batch(10_000)
        y = jax.vmap(state.model)(jnp.asarray(x))[:, 0]
        return {"val/loss": float(jnp.mean((y - x.mean(1)) ** 2))}, {"clip": np.zeros(100, np.float32)}


def cfg(**kw):
    base = dict(model="hifigan", profile="ci", steps=12, batch_size=4, segment_size=1024, lr=1e-2,
                log_every=1, val_every=4, ckpt_every=4, keep_last=2, max_bad_steps=3, steps_per_epoch=5)
    return train.TrainConfig(**{**base, **kw})


def losses(out):
    return {r["step"]: r["loss"] for r in checkpoint.read_metrics(out) if "loss" in r}


def test_resume_matches_uninterrupted(tmp_path):
    train.fit(ToyTask(cfg()), tmp_path / "a", progress=False, log=lambda *a: None)
    train.fit(ToyTask(cfg()), tmp_path / "b", steps=6, progress=False, log=lambda *a: None)
    with pytest.raises(FileExistsError):
        train.fit(ToyTask(cfg()), tmp_path / "b", progress=False, log=lambda *a: None)
    s = train.fit(ToyTask(cfg()), tmp_path / "b", resume=True, progress=False, log=lambda *a: None)
    assert s["step"] == 12
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 13))
    assert a == b
    ck = checkpoint.Checkpoints(tmp_path / "b" / "checkpoints", 2)
    assert [p.name for p in ck.steps()] == ["step_00000008.eqx", "step_00000012.eqx"]
    assert ck.best.exists() and checkpoint.read_header(ck.best)["step"] in (4, 8, 12)
    h = checkpoint.read_header(ck.latest())
    assert h["step"] == 12 and h["epoch"] == 2 and h["data"]["position"] == 12


def test_nan_batches_are_skipped_then_stop(tmp_path):
    task = ToyTask(cfg(), nan_steps={5})
    state = task.place(task.init(jr.PRNGKey(0)))
    for s in range(5):
        state, _ = task.train_step(state, train.shard_batch(task.batch(s), task.mesh), s)
    before = jax.device_get(eqx.filter(state, eqx.is_array))
    state, m = task.train_step(state, train.shard_batch(task.batch(5), task.mesh), 5)
    after = jax.device_get(eqx.filter(state, eqx.is_array))
    assert not math.isfinite(float(m["loss"])) and int(m["skipped"]) == 1 and int(m["streak"]) == 1
    for x, y in zip(jax.tree.leaves((before.model, before.opt)), jax.tree.leaves((after.model, after.opt))):
        np.testing.assert_array_equal(x, y)
    assert int(after.step) == 6
    # three bad steps in a row stop the run; the step-4 checkpoint survives
    with pytest.raises(train.NonFiniteError, match="non-finite"):
        train.fit(ToyTask(cfg(), nan_steps={5, 6, 7}), tmp_path / "n", progress=False, log=lambda *a: None)
    ck = checkpoint.Checkpoints(tmp_path / "n" / "checkpoints")
    assert checkpoint.read_header(ck.latest())["step"] == 4


def test_atomic_checkpoint_and_lr(tmp_path):
    task = ToyTask(cfg())
    st = task.init(jr.PRNGKey(1))
    p = checkpoint.save_checkpoint(tmp_path / "c.eqx", st, {"step": 3})
    assert [q.name for q in tmp_path.iterdir()] == ["c.eqx"]
    st2, h = checkpoint.load_checkpoint(p, task.init(jr.PRNGKey(2)))
    assert h == {"step": 3}
    np.testing.assert_array_equal(st.model.weight, st2.model.weight)
    c = cfg(lr=1.0, lr_decay=0.5)
    assert [float(train.learning_rate(c, s, 5)) for s in (0, 4, 5, 10)] == [1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="segment_size"):
        cfg(segment_size=1000)


def test_only_process_zero_writes(tmp_path, monkeypatch):
    "Several hosts train one run: every process computes, only process 0 writes checkpoints, logs and samples."
    out = tmp_path / "run"
    monkeypatch.setattr(jax, "process_index", lambda: 1)       # this process is not the writer
    s = train.fit(ToyTask(cfg(steps=5)), out, progress=False)
    assert s["step"] == 5 and not out.exists()
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    train.fit(ToyTask(cfg(steps=5)), out, progress=False)
    assert (out / "summary.json").is_file() and (out / "config.json").is_file()
    assert checkpoint.read_metrics(out) and list((out / "checkpoints").glob("*.eqx"))


@pytest.mark.skipif(train._TRIM is None, reason="malloc_trim is glibc's")
def test_release_memory_hands_freed_heap_back():
    "What XLA's compiler leaves: many freed heap blocks that glibc keeps, until `release_memory` returns them."
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS"))
    train.release_memory()
    ptrs = [libc.malloc(4096) for _ in range(50_000)]          # ~200 MB of small blocks, touched
    for p in ptrs:
        ctypes.memset(p, 1, 4096)
    for p in ptrs:
        libc.free(p)
    held = rss_mb()
    train.release_memory()
    assert held - rss_mb() > 100, "freed blocks were not handed back"
