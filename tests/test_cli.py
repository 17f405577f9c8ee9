import subprocess, sys

import pytest

from xtts_book import cli
from xtts_book.profile import get_profile, pick


def test_cli_usage_lists_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_cli_unknown_command():
    assert cli.main(["frobnicate"]) == 2


def test_console_script_runs():
    from pathlib import Path
    script = Path(sys.executable).parent / "xtts-book"
    assert script.exists(), "the package is not installed with its console script"
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "commands:" in r.stdout


def test_profile_env(monkeypatch):
    monkeypatch.setenv("XTTS_BOOK_PROFILE", "gpu")
    assert get_profile() == "gpu"
    monkeypatch.setenv("XTTS_BOOK_PROFILE", "nope")
    with pytest.raises(ValueError, match="expected one of"):
        get_profile()
    assert pick({"ci": 0, "cpu": 1, "gpu": 2}, "ci") == 0
