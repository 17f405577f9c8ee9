"""The book says only what is true of the repository: no machine paths or compiler banners in the stored outputs,
and every repository file the prose names exists."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))
# an absolute path of a machine: the usual roots of home, work and temporary folders
ROOTS = r"(?:work|home|root|tmp|Users|var/folders|private|mnt|opt)/[^\s'\"<>)\]]+"
MACHINE_PATH = re.compile(r"(?<![\w.:/~])/" + ROOTS + r"|(?:\.\./){2,}" + ROOTS)   # absolute, or climbing out of the repo
BANNERS = ("Very slow compile?", "xla_dump_to", "slow_operation_alarm")
# repository files the prose can name: anything under these folders, with an extension
REPO_FILE = re.compile(r"`((?:tests|tools|results|nbs|xtts_book|\.ci)/[\w./*-]+\.\w+)`")


def _output_texts(cell):
    for o in cell.get("outputs", []):
        if "text" in o:
            yield "".join(o["text"])
        for kind, value in o.get("data", {}).items():
            if kind in ("text/plain", "text/markdown"):
                yield "".join(value) if isinstance(value, list) else value


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_hold_no_machine_paths_or_banners(nb):
    bad = []
    for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
        for text in _output_texts(cell):
            bad += [f"cell {i}: {m}" for m in MACHINE_PATH.findall(text)]
            bad += [f"cell {i}: XLA banner {b!r}" for b in BANNERS if b in text]
    assert not bad, f"{nb.name}: " + "; ".join(bad[:10])


def _prose():
    for nb in NOTEBOOKS:
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] == "code":           # code comments and strings name files too
                src = "\n".join(l for l in src.splitlines() if "#" in l or "`" in l)
            yield f"{nb.name} cell {i}", src
    yield "README.md", (ROOT / "README.md").read_text()


def test_every_file_the_prose_names_exists():
    missing = []
    for where, text in _prose():
        for name in REPO_FILE.findall(text):
            if not (list(ROOT.glob(name)) if "*" in name else (ROOT / name).exists()):
                missing.append(f"{where}: {name}")
    assert not missing, "the book names files the repository does not have: " + "; ".join(missing)


def test_machine_path_pattern():
    assert MACHINE_PATH.findall("wrote /tmp/tmpab12/hifigan and /home/me/x.wav")
    assert MACHINE_PATH.findall("corpus ../../work/main/data/corpora/asterisk: up to date")
    assert not MACHINE_PATH.findall("wrote runs/voc-cpu and results/weights/a.eqx, https://x.org/home/y, in home/x, ../data/c")


def test_compiler_banners_are_stripped_from_stderr(tmp_path):
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import build_book
    banner = ("********************************\n[Compiling module jit_gan_step for CPU] Very slow compile? If you want to "
              "file a bug, run with envvar XLA_FLAGS=--xla_dump_to=/tmp/foo and attach the results.\n"
              "********************************\n")
    nb = {"cells": [{"cell_type": "code", "source": ["x"], "metadata": {}, "execution_count": 1, "outputs": [
        {"output_type": "stream", "name": "stderr", "text": [banner]},
        {"output_type": "stream", "name": "stderr", "text": [banner + "a warning that stays\n"]},
        {"output_type": "stream", "name": "stdout", "text": ["step 1\n"]}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps(nb))
    assert build_book.strip_compiler_banners(p)
    outs = json.loads(p.read_text())["cells"][0]["outputs"]
    assert [("".join(o["text"])) for o in outs] == ["a warning that stays\n", "step 1\n"]
    assert not build_book.strip_compiler_banners(p)                    # nothing left to strip
