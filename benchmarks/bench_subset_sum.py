"""Subset-sum speed: meet-in-the-middle vs brute-force enumeration (n = 20) and vs the HiGHS MIP (n = 24).

Run: .venv/bin/python -m pytest benchmarks/bench_subset_sum.py --benchmark-only -o addopts="" -p no:xdist
Ratios are computed inside one run and stored in ``extra_info`` (and printed).
"""

import time

import numpy as np
import pytest
import torch

from prunebound.subnet_search.subset_sum import subset_sum_brute_force, subset_sum_exact, subset_sum_mip

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def inst20():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, 20), rng.uniform(-1, 1, 1000)


def test_mitm_n20(benchmark, inst20):
    v, t = inst20
    r = benchmark(subset_sum_exact, v, t)
    assert r.errors.shape == (1000,)


def test_brute_force_n20(benchmark, inst20):
    v, t = inst20
    r = benchmark.pedantic(subset_sum_brute_force, args=(v, t), rounds=3, iterations=1)
    assert r.errors.shape == (1000,)


def test_ratio_mitm_vs_brute_and_mip(benchmark, inst20):
    v, t = inst20
    t0 = time.perf_counter()
    b = subset_sum_brute_force(v, t)
    t_brute = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = subset_sum_exact(v, t)
    t_mitm20 = time.perf_counter() - t0
    np.testing.assert_allclose(a.errors, b.errors, atol=1e-12)
    # n = 24, 1000 integer targets (integer data: the MIP optimum is exact, so errors must be identical)
    rng = np.random.default_rng(1)
    v24 = rng.integers(-10**4, 10**4, 24).astype(float)
    t24 = rng.integers(-2 * 10**4, 2 * 10**4, 1000).astype(float)
    r = benchmark.pedantic(subset_sum_exact, args=(v24, t24), rounds=3, iterations=1)
    t_mitm24 = benchmark.stats.stats.mean / 1000  # per target
    n_mip = 5
    t0 = time.perf_counter()
    for i in range(n_mip):
        m = subset_sum_mip(v24, t24[i], backend="scipy", time_limit=30)
        assert abs(m.errors[0] - r.errors[i]) <= 1e-9
    t_mip = (time.perf_counter() - t0) / n_mip
    info = {"brute_over_mitm_n20": t_brute / t_mitm20, "mip_over_mitm_per_target_n24": t_mip / t_mitm24,
            "mitm_n24_1000_targets_s": t_mitm24 * 1000, "mip_per_target_s": t_mip}
    benchmark.extra_info.update(info)
    print(info)
    assert t_mip / t_mitm24 >= 100
