"""The main job on a fresh clone: chapter 20 (the evaluation) takes the committed weights when this machine has no
runs of its own, a run only when it holds more training, and a poorer table never replaces a richer one."""
import json
from dataclasses import asdict

import jax.random as jr

from xtts_book import cli
from xtts_book.checkpoint import save_checkpoint
from xtts_book.recipes import export_weights, pick_models
from xtts_book.recipes import init_state, recipe


def run(folder, model, minutes, **cfg_overrides):
    cfg = recipe(model, "ci", **cfg_overrides)
    save_checkpoint(folder / "checkpoints" / "step_00000002.eqx", init_state(cfg, jr.PRNGKey(0)),
                    {"step": 2, "elapsed_s": 60.0 * minutes, "model": model, "config": asdict(cfg)})
    return folder


def test_committed_weights_unless_a_run_trained_longer(tmp_path):
    runs, weights = tmp_path / "runs", tmp_path / "weights"
    assert pick_models("ci", runs, weights) == {}                       # nothing anywhere: nothing to score
    export_weights(run(tmp_path / "src-h", "hifigan", 30), weights / "hifigan-ci.eqx")
    export_weights(run(tmp_path / "src-d", "dvae", 20), weights / "dvae-ci.eqx")
    got = pick_models("ci", runs, weights)                              # a fresh clone: the committed files
    assert {k: (v["source"], v["train_minutes"]) for k, v in got.items()} == {"hifigan": ("weights", 30.0), "dvae": ("weights", 20.0)}
    run(runs / "short", "hifigan", 5)                                   # a reader's short run does not replace them
    assert pick_models("ci", runs, weights)["hifigan"]["source"] == "weights"
    run(runs / "long", "hifigan", 45)                                   # a longer one does
    assert pick_models("ci", runs, weights)["hifigan"] == {"path": str(runs / "long"), "source": "run", "train_minutes": 45.0}
    run(runs / "ft", "hifigan", 90, init_from="official:universal", input_dvae="x.eqx")   # a fine-tune has its own row
    got = pick_models("ci", runs, weights)
    assert got["hifigan"]["path"] == str(runs / "long") and got["finetuned"]["path"] == str(runs / "ft")


def test_a_poorer_table_never_replaces_a_richer_one(tmp_path, capsys):
    out = tmp_path / "results-ci.json"
    rich = {"systems": {"ground_truth": {}, "griffin_lim": {}, "hifigan": {}, "dvae_hifigan": {}}}
    out.write_text(json.dumps(rich))
    rc = cli.eval_cli(["--profile", "ci", "--clips", "1", "--max-seconds", "1", "--out", str(out), "--no-asr", "--no-dnsmos"])
    err = capsys.readouterr().err
    assert rc == 2 and "dvae_hifigan" in err and "hifigan" in err and "--allow-fewer" in err
    assert json.loads(out.read_text()) == rich                          # left as it was
