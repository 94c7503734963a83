"""Pensia et al. (2020) strong-lottery-ticket construction at LeNet-300-100 scale, and the batched subset-sum
solver against the per-weight alternatives.

* ``test_pensia_lenet300_100``: bias-free 784-300-100-10 target (266,200 weights), ``eps = 0.01`` on the unit
  ball; the whole construction (pilot, random network, 532,400 subset sums, certificate) is timed; then the
  empirical error on 1e5 points in the ball (not timed) must lie below the analytic certificate.
* ``test_batched_vs_per_weight``: the same bounded subset sums (18 candidates chosen per weight) solved by
  :func:`subset_sum_exact_batched` for all instances vs :func:`subset_sum_exact` called per weight, and vs the
  per-weight HiGHS MIP on a few instances; ratios per instance in ``extra_info``.

Run: .venv/bin/python -m pytest benchmarks/bench_pensia.py --benchmark-only -o addopts="" -p no:xdist
(about 60 s: the LeNet construction alone takes 20-30 s on 2 cores).
"""

import time

import numpy as np
import pytest
import torch

from prunebound.network import mlp
from prunebound.subnet_search.construct import _candidate_positions, construct_ticket, ticket_error
from prunebound.subnet_search.subset_sum import subset_sum_exact, subset_sum_exact_batched, subset_sum_mip

torch.set_num_threads(1)  # parallelism comes from the solver's own 2 worker threads (2 cores)


def test_pensia_lenet300_100(benchmark):
    target = mlp(784, [300, 100], 10, bias=False, seed=0)
    tk = benchmark.pedantic(construct_ticket, args=(target,),
                            kwargs=dict(method="pensia", eps=0.01, radius=1.0, seed=0, workers=2),
                            rounds=1, iterations=1)
    seconds = benchmark.stats.stats.mean
    t0 = time.perf_counter()
    ae = ticket_error(target, tk, n_samples=100_000, seed=1, n_dense=64)
    info = {"construct_seconds": seconds, "check_seconds": time.perf_counter() - t0,
            "target_weights": sum(w.numel() for w in target.parameters()),
            "n_theory": tk.n_theory, "n_per_sign": list(tk.n_per_sign), "candidates": tk.candidates,
            "width_mode": tk.width_mode, "hidden_widths": list(tk.hidden_widths),
            "random_params": tk.random_params, "kept_params": tk.kept_params,
            "certified_error": tk.certified_error, "empirical_error_1e5": ae.empirical,
            "max_weight_error": tk.max_weight_error, "attempts": tk.attempts}
    benchmark.extra_info.update(info)
    print(info)
    assert info["target_weights"] == 266_200
    assert tk.certified_error <= 0.01
    assert ae.n_samples >= 100_000 and ae.empirical <= ae.analytic
    assert seconds < 60


@pytest.fixture(scope="module")
def bounded_instances():
    """Instances of the LeNet first layer's distribution: 41 candidates |u| v, 18 chosen per weight."""
    rng = np.random.default_rng(0)
    P, n, m = 20_000, 41, 18
    vals = rng.uniform(0, 1, (P, n)) * rng.uniform(-1, 1, (P, n))
    sub = np.take_along_axis(vals, _candidate_positions(vals, m), axis=1)
    return sub, rng.uniform(-0.036, 0.036, P)


def test_batched_vs_per_weight(benchmark, bounded_instances):
    sub, tg = bounded_instances
    r = benchmark.pedantic(subset_sum_exact_batched, args=(sub, tg), kwargs={"workers": 2}, rounds=2,
                           iterations=1)
    t_batched = benchmark.stats.stats.mean / len(tg)
    k = 200
    t0 = time.perf_counter()
    per = np.array([subset_sum_exact(sub[i], tg[i]).errors[0] for i in range(k)])
    t_loop = (time.perf_counter() - t0) / k
    np.testing.assert_allclose(r.errors[:k], per, atol=1e-12)  # identical optimum
    k_mip = 3
    t0 = time.perf_counter()
    mip_err = [subset_sum_mip(sub[i], tg[i], backend="scipy", time_limit=10).errors[0] for i in range(k_mip)]
    t_mip = (time.perf_counter() - t0) / k_mip
    info = {"batched_per_weight_s": t_batched, "per_weight_mitm_s": t_loop, "per_weight_mip_s": t_mip,
            "loop_over_batched": t_loop / t_batched, "mip_over_batched": t_mip / t_batched,
            "mip_error_minus_ours": [float(e - r.errors[i]) for i, e in enumerate(mip_err)]}
    benchmark.extra_info.update(info)
    print(info)
    assert min(info["mip_error_minus_ours"]) >= -1e-9  # the MIP never beats the exact optimum
    assert t_loop / t_batched >= 10
