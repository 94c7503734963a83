"""Benchmarks for prunebound.pruning: each compares our route with the obvious alternative in one run.

* global magnitude mask at an exact count: ``torch.topk`` on the concatenated scores (ours) vs a full
  sort, vs a per-weight Python threshold loop (the naive route), vs a ``kthvalue`` threshold (faster, but
  ties at the threshold break the exact count), on LeNet-300-100 (266k weights);
* OBD Hessian diagonal on a 40-20-10 MLP: exact (P batched HVPs) vs Hutchinson (100 HVPs) vs Gauss-Newton
  (equal to the exact diagonal for ReLU nets).

Run: .venv/bin/python -m pytest benchmarks/bench_pruning.py --benchmark-only -o addopts="" -p no:xdist
"""

import pytest
import torch

from prunebound.data import teacher_task
from prunebound.network import Network, lenet300_100, mlp
from prunebound.pruning import hessian_diagonal
from prunebound.pruning._common import smallest_k_masks

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scores():
    net = Network.from_module(lenet300_100(seed=0))
    return [ly.weight.detach().abs() for ly in net.layers]


def _sort_masks(scores, sparsity):
    flat = torch.cat([s.reshape(-1) for s in scores])
    k = round(sparsity * flat.numel())
    order = torch.argsort(flat)
    m = torch.ones_like(flat)
    m[order[:k]] = 0
    return torch.split(m, [s.numel() for s in scores])


def _kthvalue_masks(scores, sparsity):
    flat = torch.cat([s.reshape(-1) for s in scores])
    k = round(sparsity * flat.numel())
    thr = torch.kthvalue(flat, k).values
    return [(s > thr).float() for s in scores]  # ties at thr can break the exact count


def test_global_mask_topk(benchmark, scores):
    masks = benchmark(smallest_k_masks, scores, 0.9, "global")
    assert sum(int((m == 0).sum()) for m in masks) == round(0.9 * sum(s.numel() for s in scores))


def test_global_mask_sort(benchmark, scores):
    masks = benchmark(_sort_masks, scores, 0.9)
    ours = smallest_k_masks(scores, 0.9, "global")
    assert torch.equal(torch.cat([m.reshape(-1) for m in masks]), torch.cat([m.reshape(-1) for m in ours]))


def test_global_mask_kthvalue(benchmark, scores):
    benchmark(_kthvalue_masks, scores, 0.9)


def test_global_mask_python_loop(benchmark, scores):
    """Naive route: Python list sort and a per-weight threshold loop (ties at the threshold are kept)."""
    flat = torch.cat([s.reshape(-1) for s in scores]).tolist()

    def loop():
        thr = sorted(flat)[round(0.9 * len(flat)) - 1]
        return [0.0 if v <= thr else 1.0 for v in flat]

    benchmark.pedantic(loop, rounds=3, iterations=1)


@pytest.fixture(scope="module")
def obd_case():
    d = teacher_task(40, 16, 10, seed=0).sample(200, 0)
    return mlp(40, [20], 10, seed=0), d  # 1,000 weights


def test_hessian_exact(benchmark, obd_case):
    m, d = obd_case
    benchmark.pedantic(
        hessian_diagonal, args=(m, d), kwargs={"hessian": "exact"}, rounds=3, iterations=1, warmup_rounds=1
    )


def test_hessian_hutchinson(benchmark, obd_case):
    m, d = obd_case
    benchmark.pedantic(
        hessian_diagonal,
        args=(m, d),
        kwargs={"hessian": "hutchinson", "n_samples": 100},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )


def test_hessian_gauss_newton(benchmark, obd_case):
    m, d = obd_case
    benchmark.pedantic(
        hessian_diagonal,
        args=(m, d),
        kwargs={"hessian": "gauss_newton"},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
