"""Smoke test of the benchmark harness (`xtts-book bench --quick`): both sides build, step and report. Not timed."""
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("TTS")

from xtts_book.bench import CASES, run_bench
from xtts_book.performance import generator_flops
from xtts_book.cli import bench_cli


def test_generator_flops_v1():
    "V1 on 198 frames (2.3 s) costs about 122 GFLOP; the last two stages carry most of it."
    from xtts_book.hifigan import V1, V3
    assert 115e9 < generator_flops(V1, 198) < 125e9
    assert generator_flops(V3, 198) < generator_flops(V1, 198) / 10


def test_unknown_case():
    with pytest.raises(ValueError, match="unknown bench case"):
        run_bench(["nope"], quick=True)


def test_quick_cli(tmp_path):
    "The CLI path end to end on tiny sizes: JSON and markdown written, both sides timed, memory read."
    assert bench_cli(["--quick", "--cases", "infer_v3", "dvae", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench.json").read_text())
    assert res["quick"] and set(res["cases"]) == {"infer_v3", "dvae"}
    for case in res["cases"].values():
        assert set(case["sides"]) == {"torch", "jax"}
        assert case["ratio"] > 0
        for side in case["sides"].values():
            assert len(side["times"]) == 1 and side["median_s"] > 0
            assert side["peak_rss_mb"] >= side["rss_imports_mb"] > 0
    assert res["cases"]["infer_v3"]["sides"]["jax"]["x_real_time"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "JAX / PyTorch" in md and res["machine"]["cpu"] in md
    assert "scale" in CASES
