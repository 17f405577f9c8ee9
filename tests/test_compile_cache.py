"""The command line keeps compiled programs on disk (chapter 00's `compile_cache`): where, the switch that turns it
off, and that a training run really writes there and prints how long its first step took."""
import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("XTTS_BOOK_JAX_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    return subprocess.run([sys.executable, "-c", code], env={**e, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_where_the_cache_goes(tmp_path):
    show = "from xtts_book.profile import compile_cache; import jax; print(compile_cache(), jax.config.jax_compilation_cache_dir)"
    assert run(show, XTTS_BOOK_JAX_CACHE="off").stdout.split() == ["None", "None"]
    assert run(show, XTTS_BOOK_JAX_CACHE=str(tmp_path / "a")).stdout.split() == [str(tmp_path / "a")] * 2
    assert run(show, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "b")).stdout.split() == [str(tmp_path / "b")] * 2
    default = run(show, HOME=str(tmp_path / "home"), XDG_CACHE_HOME="").stdout.split()
    assert default == [str(tmp_path / "home" / ".cache" / "xtts_book" / "jax")] * 2


def test_train_writes_the_cache_and_the_switch_turns_it_off(tmp_path):
    train = ("import sys; from xtts_book.cli import main; sys.exit(main(sys.argv[1:]))")
    args = ["train", "dvae", "--profile", "ci", "--steps", "1", "--no-progress"]
    on = subprocess.run([sys.executable, "-c", train, *args, "--out", str(tmp_path / "r1")], cwd=ROOT, text=True,
                        capture_output=True, timeout=600, env={**os.environ, "XTTS_BOOK_JAX_CACHE": str(tmp_path / "c1")})
    assert on.returncode == 0, on.stderr[-2000:]
    assert "step 1 done" in on.stdout and any((tmp_path / "c1").iterdir())
    off = subprocess.run([sys.executable, "-c", train, "--no-compile-cache", *args, "--out", str(tmp_path / "r2")],
                         cwd=ROOT, text=True, capture_output=True, timeout=600,
                         env={**os.environ, "XTTS_BOOK_JAX_CACHE": str(tmp_path / "c2")})
    assert off.returncode == 0, off.stderr[-2000:]
    assert "step 1 done" in off.stdout and not (tmp_path / "c2").exists()
