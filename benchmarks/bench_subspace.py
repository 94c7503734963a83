"""Structured random projections (Kronecker sum, Fastfood) vs a dense Gaussian D x d matrix: time of one
``P w`` and memory.  Run:
.venv/bin/python -m pytest benchmarks/bench_subspace.py --benchmark-only -o addopts="" -p no:xdist
"""

import math

import pytest
import torch

from prunebound.bounds.subspace_projection import make_projection

torch.set_num_threads(1)
D, d = 50_000, 500


@pytest.fixture(scope="module")
def w():
    return torch.randn(d, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def dense():
    return torch.randn(D, d, generator=torch.Generator().manual_seed(1)) / math.sqrt(D)


def test_dense_matvec(benchmark, dense, w):
    benchmark.extra_info.update(D=D, d=d, floats=dense.numel())
    out = benchmark(lambda: dense @ w)
    assert out.shape == (D,)


@pytest.mark.parametrize("kind", ["kronecker_sum", "fastfood"])
def test_structured_matvec(benchmark, kind, w):
    P = make_projection(kind, D, d, seed=0)
    benchmark.extra_info.update(D=D, d=d, floats=P.n_floats(), memory_ratio_vs_dense=D * d / P.n_floats())
    with torch.no_grad():
        out = benchmark(lambda: P(w))
    assert out.shape == (D,)
    assert P.n_floats() < D * d / 50
