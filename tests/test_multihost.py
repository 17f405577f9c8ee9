"""Two processes train one run, as two hosts would (jax.distributed on CPU with gloo): both compute every step,
only process 0 writes the run folder."""
import socket
import subprocess
import sys
from pathlib import Path

from xtts_book import checkpoint

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_one_writer(tmp_path):
    out, port = tmp_path / "run", _free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "multihost_fit.py"), str(i), str(out), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (o, e) in zip(procs, results):
        assert p.returncode == 0, e[-3000:]
    outs = [o for o, _ in results]
    assert "process 0 of 2, 2 devices: step 6" in outs[0] and "process 1 of 2, 2 devices: step 6" in outs[1]
    assert "train toy" in outs[0] and "train toy" not in outs[1]            # one process speaks for the run
    steps = [r["step"] for r in checkpoint.read_metrics(out) if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 6                    # each step logged once
    assert (out / "summary.json").is_file() and list((out / "checkpoints").glob("*.eqx"))
