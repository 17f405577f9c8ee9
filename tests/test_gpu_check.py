"""tools/gpu_check.sh in its CPU dry mode: the GPU check's every step (corpus, bf16 training steps of both models,
bf16 against fp32, the JAX / PyTorch timings, the JSON), at the ci sizes, so that it runs when a GPU is lent."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("TTS")
ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHON": sys.executable, "XTTS_BOOK_DATA": str(tmp_path / "data")}
    r = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--dry", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["dry"] and res["ok"] and res["profile"] == "ci"
    for model in ("hifigan", "dvae"):
        t = res["train"][model]
        assert t["finite"] and t["steps"] == 2 and len(t["losses"]) == 2 and t["first_step_s"] > 0
    for k, v in res["bf16"].items():
        assert v["rel"] <= res["tolerance"][k] and v["fp32"] > 0 and v["bf16"] != v["fp32"]   # bf16 really ran
    assert set(res["cases"]) == {"infer_v1", "infer_v3"}
    assert all(c["ratio"] > 0 for c in res["cases"].values())


def test_gpu_check_refuses_a_cpu_without_dry():
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "no accelerator" in r.stderr
