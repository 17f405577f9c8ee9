"""Codebook-usage statistics on distributions with known answers, and bad input."""
import numpy as np
import pytest

from xtts_book.codebook import code_stats, dead_codes, entropy_bits, perplexity, usage, utilisation


def test_uniform_and_collapsed():
    for K in (2, 16, 1024):
        c = usage(np.tile(np.arange(K), 3), K)
        assert (c == 3).all()
        assert perplexity(c) == pytest.approx(K)
        assert utilisation(c) == pytest.approx(1.0)
        assert dead_codes(c) == 0
        one = usage(np.full(50, K - 1), K)
        assert perplexity(one) == pytest.approx(1.0) and utilisation(one) == pytest.approx(0.0)
        assert dead_codes(one) == K - 1


def test_known_entropy():
    c = np.array([1, 1, 2, 0])                 # p = 1/4, 1/4, 1/2: H = 1.5 bits
    assert entropy_bits(c) == pytest.approx(1.5)
    assert perplexity(c) == pytest.approx(2 ** 1.5)
    assert utilisation(c) == pytest.approx(1.5 / 2)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(64))
    counts = np.round(p * 1e6)
    q = counts / counts.sum()
    assert perplexity(counts) == pytest.approx(np.exp(-(q[q > 0] * np.log(q[q > 0])).sum()))


def test_code_stats_and_shapes():
    s = code_stats(np.array([[0, 1], [1, 3]]), 8)
    assert s["dead_codes"] == 5 and s["used_share"] == pytest.approx(3 / 8)
    assert s["perplexity"] == pytest.approx(2 ** 1.5)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        usage([0, 4], 4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        usage([-1], 4)
    with pytest.raises(ValueError, match="integers"):
        usage(np.array([0.5]), 4)
    with pytest.raises(ValueError, match="positive total"):
        perplexity(np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        utilisation(np.array([1, -1]))
