"""Two costly end-to-end checks, each in subprocesses: one step on 2 simulated CPU devices equals one step on 1
device (HiFi-GAN with stand-in discriminators, and the DVAE with its codebook EMA), and `xtts-book train` killed
with SIGKILL then resumed logs the same losses as an uninterrupted run."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def env(**extra):
    e = dict(os.environ, JAX_PLATFORMS="cpu", XTTS_BOOK_PROFILE="ci",
             PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    e.update(extra)
    return e


SHARDING = textwrap.dedent('''
    import os, sys, jax, numpy as np, equinox as eqx, jax.random as jr
    from xtts_book import recipes, train
    from train_helpers import tiny_discriminators
    assert len(jax.devices()) == 2, jax.devices()

    def one_step(make, step):
        out = []
        for devs in (jax.devices()[:1], jax.devices()):
            task = make(train.make_mesh(devs))
            st = task.place(task.init(jr.PRNGKey(0)))
            st, m = task.train_step(st, train.shard_batch(task.batch(0), task.mesh), step)
            out.append((jax.device_get(eqx.filter(st, eqx.is_array)), jax.device_get(m)))
        (a, ma), (b, mb) = out
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)
        for k in ma:
            np.testing.assert_allclose(ma[k], mb[k], rtol=2e-4, atol=2e-6)
        return a, ma

    if sys.argv[1] == "hifigan":
        cfg = recipes.recipe("hifigan", "ci")
        # the generator's warm-up step (the GAN step's sharding is the same: replicated state, batch split)
        a, m = one_step(lambda mesh: recipes.make_task(cfg, mesh=mesh, disc_factory=tiny_discriminators), 0)
    else:
        cfg = recipes.recipe("dvae", "ci")
        a, m = one_step(lambda mesh: recipes.make_task(cfg, mesh=mesh), 0)
    print(sys.argv[1], {k: float(v) for k, v in m.items()})
    print("OK")
''')


@pytest.mark.parametrize("model", ["dvae", "hifigan"])
def test_two_devices_equal_one(model):
    r = subprocess.run([sys.executable, "-c", SHARDING, model], env=env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr[-3000:]


def cli(out, *extra):
    return [sys.executable, "-c", "import sys; from xtts_book.cli import main; sys.exit(main())", "train", "dvae",
            "--profile", "ci", "--out", str(out), "--steps", "200", "--no-progress",
            "--set", "ckpt_every=5", "--set", "val_every=50", "--set", "log_every=1", *extra]


def test_sigkill_then_resume_matches(tmp_path):
    e = env(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jaxcache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    r = subprocess.run(cli(tmp_path / "a"), env=e, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "time budget" in r.stdout
    p = subprocess.Popen(cli(tmp_path / "b"), env=e, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "b" / "checkpoints" / "step_00000010.eqx"
    t0 = time.time()
    while not first.exists() and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL
    ckpts = sorted((tmp_path / "b" / "checkpoints").glob("step_*.eqx"))
    assert ckpts and ckpts[-1].name != "step_00000200.eqx", "the run finished before the kill"
    r = subprocess.run(cli(tmp_path / "b", "--resume"), env=e, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout
    read = lambda d: [(j["step"], j["loss"]) for j in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())
                      if "loss" in j]
    a, b = read(tmp_path / "a"), read(tmp_path / "b")
    assert [s for s, _ in a] == list(range(1, 201))
    assert a == b
