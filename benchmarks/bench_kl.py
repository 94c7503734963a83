"""kl_inverse_upper: vectorised safeguarded Newton over 1e5 (q, c) pairs vs a Python loop of scipy brentq.

The brentq loop runs on a 1,000-pair subset and is scaled by 100 to the same 1e5 pairs; the ratio is stored in
``extra_info["ratios"]`` (collected by benchmarks/conftest.py). Ours includes the outward-rounding check.
"""

import math
import time

import numpy as np
import pytest
from scipy.optimize import brentq

from prunebound.bounds.kl import kl_inverse_upper

N = 100_000
N_LOOP = 1_000


def _pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 0.5, n), 10 ** rng.uniform(-4, 0.5, n)


def _kl(q: float, p: float) -> float:
    out = q * math.log(q / p) if q > 0 else 0.0
    return out + (1 - q) * math.log((1 - q) / (1 - p))


def _brentq_loop(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    hi = np.nextafter(1.0, 0.0)
    out = np.empty(q.size)
    for i, (a, b) in enumerate(zip(q.tolist(), c.tolist())):
        f = lambda p, a=a, b=b: _kl(a, p) - b  # noqa: E731
        out[i] = hi if f(hi) <= 0 else brentq(f, a, hi, xtol=1e-14)
    return out


@pytest.fixture(scope="module")
def brentq_seconds_per_pair() -> float:
    q, c = _pairs(N_LOOP, 1)
    t = time.perf_counter()
    ref = _brentq_loop(q, c)
    dt = (time.perf_counter() - t) / N_LOOP
    assert np.max(np.abs(kl_inverse_upper(q, c) - ref)) < 1e-10
    return dt


def test_kl_inverse_vectorised_vs_brentq(benchmark, brentq_seconds_per_pair):
    q, c = _pairs(N)
    p = benchmark.pedantic(kl_inverse_upper, args=(q, c), rounds=5, iterations=1)
    assert p.shape == (N,)
    ours = benchmark.stats.stats.mean
    loop = brentq_seconds_per_pair * N
    benchmark.extra_info["brentq_loop_seconds_scaled"] = loop
    benchmark.extra_info["ratios"] = [{"what": "time, 1e5 pairs", "ours": "vectorised Newton + outward check",
                                       "alternative": "Python loop of scipy brentq", "ratio": loop / ours}]
    print(f"\nkl_inverse_upper on {N} pairs: {ours:.4f} s; brentq loop (scaled): {loop:.2f} s; "
          f"speedup {loop / ours:.0f}x")
