"""Fine-tuning: `train --init-from` starts the generator from given weights, `--input-dvae` feeds it a DVAE's
decoded mels with the real audio as target, and `disc_warmup_steps` moves only the discriminators at first."""
from dataclasses import asdict

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import pytest

from xtts_book import cli
from xtts_book.checkpoint import WeightsError, save_checkpoint, weights_header
from xtts_book.recipes import export_weights, load_dvae, load_generator
from xtts_book.inference import dvae_hifigan_mel
from xtts_book.recipes import init_state, make_task, recipe


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    "Tiny ci weights of both models, written from training checkpoints the way the book's are."
    d = tmp_path_factory.mktemp("weights")
    for model in ("hifigan", "dvae"):
        cfg = recipe(model, "ci")
        save_checkpoint(d / model / "checkpoints" / "step_00000003.eqx", init_state(cfg, jr.PRNGKey(7)),
                        {"step": 3, "elapsed_s": 60.0, "model": model, "config": asdict(cfg), "corpus": "espeak-ci"})
        export_weights(d / model, d / f"{model}.eqx")
    return d


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]


def test_init_from_and_input_dvae(weights):
    cfg = recipe("hifigan", "ci", init_from=str(weights / "hifigan.eqx"), input_dvae=str(weights / "dvae.eqx"),
                 warmup_steps=0, disc_warmup_steps=1)
    task = make_task(cfg)
    state = task.init(jr.PRNGKey(0))
    want, _ = load_generator(weights / "hifigan.eqx")
    for a, b in zip(leaves(state.gen), leaves(want)):
        np.testing.assert_array_equal(a, b)                  # the generator starts from the file, not from a fresh draw
    dvae, ema, norms, info = load_dvae(weights / "dvae.eqx")
    assert info["input_gain"] == 0.1                         # the DVAE recipes hear the waves 20 dB down
    np.testing.assert_allclose(task.train_mels[0], dvae_hifigan_mel(dvae, ema, norms, task.train_wavs[0], 0.1), atol=1e-5)
    y, mel = task.batch(0)                                   # pairs: the real audio and the DVAE's mel of it
    assert y.shape == (cfg.batch_size, cfg.segment_size) and mel.shape == (cfg.batch_size, 80, cfg.segment_size // 256)
    from xtts_book.data import shard_batch
    new, metrics = task.train_step(task.place(state), shard_batch((y, mel), task.mesh), 0)   # a discriminator-only step
    assert "loss_d" in metrics and "loss_g" not in metrics
    for a, b in zip(leaves(new.gen), leaves(want)):
        np.testing.assert_array_equal(a, b)                  # ... which leaves the generator where it was
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(new.mpd), leaves(state.mpd)))


def test_bad_init_from_is_one_line(weights, tmp_path, capsys):
    rc = cli.train_cli(["hifigan", "--profile", "ci", "--out", str(tmp_path / "run"), "--init-from", str(weights / "dvae.eqx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not a hifigan one" in err[0]
    cut = tmp_path / "cut.eqx"
    cut.write_bytes((weights / "hifigan.eqx").read_bytes()[:-500])
    assert weights_header(cut) is not None
    with pytest.raises(WeightsError, match="cut short"):
        load_generator(cut)


def test_a_finetuned_checkpoint_reads_back_as_its_own_generator(weights, tmp_path):
    "A fine-tune's generator has the sizes of the weights it started from, not the profile's: the header says so."
    from xtts_book.recipes import load_training_state
    from xtts_book.hifigan import GeneratorConfig
    from xtts_book.train import fit
    big = GeneratorConfig(upsample_initial_channel=48, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))
    from xtts_book.hifigan import Generator
    cfg = recipe("hifigan", "ci", steps=1, warmup_steps=1, val_every=1, ckpt_every=1)
    task = make_task(cfg, init_gen=Generator(big, key=jr.PRNGKey(3)))
    fit(task, tmp_path / "ft", progress=False, log=lambda *a: None)
    state, header, _ = load_training_state(tmp_path / "ft")
    assert state.gen.config == big and header["model_config"]["upsample_initial_channel"] == 48
