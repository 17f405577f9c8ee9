"""Packaging: the core install (models, training, vocoding, export) imports without the extras, and `.[dev]`, what
README's setup installs, still holds every extra."""
import shlex
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the import names of what the extras install ([eval], [corpus], [book]) and of the PyTorch reference
EXTRAS = ["pesq", "pystoi", "pocketsphinx", "jiwer", "speechmos", "onnxruntime", "espeakng_loader", "g722",
          "matplotlib", "IPython", "torch", "TTS"]


def _cfg():
    c = ConfigParser(delimiters=["="])
    c.read(ROOT / "settings.ini", encoding="utf-8")
    return c["DEFAULT"]


def test_every_module_imports_without_the_extras():
    code = f"""
import importlib, importlib.abc, pkgutil, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {EXTRAS!r}:
            raise ImportError("not installed: " + name)
sys.meta_path.insert(0, Block())
import xtts_book
for m in pkgutil.iter_modules(xtts_book.__path__):
    importlib.import_module("xtts_book." + m.name)
from xtts_book.cli import main
for command in ("train", "vocode", "dvae", "export", "weights"):
    try:
        main([command, "--help"])
    except SystemExit as e:
        assert e.code == 0, (command, e.code)
print("imported", len(list(pkgutil.iter_modules(xtts_book.__path__))), "modules")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "imported" in r.stdout


def _setup_kwargs(monkeypatch) -> dict:
    "What setup.py hands to setuptools.setup, read by running it with setup() replaced."
    import runpy, setuptools
    seen = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    return seen


def test_core_requirements_are_ranges_and_dev_holds_every_extra(monkeypatch):
    kw = _setup_kwargs(monkeypatch)
    core, extras = kw["install_requires"], kw["extras_require"]
    assert core and not [r for r in core if "==" in r], core          # ranges, not exact pins
    name = lambda r: r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].lower()
    assert not {name(r) for r in core} & {"pesq", "pystoi", "pocketsphinx", "jiwer", "speechmos", "onnxruntime",
                                          "espeakng-loader", "g722", "matplotlib"}, core
    for extra in ("eval", "corpus", "book"):
        assert extras[extra], extra
        assert set(extras[extra]) <= set(extras["dev"]), extra        # README's `.[dev]` installs it too
