"""Benchmark: vectorised cushion computation (batched exact Jacobians) vs a per-example autograd loop.

Run: .venv/bin/python -m pytest benchmarks/bench_noise_stability.py --benchmark-only -o addopts="" -p no:xdist
"""

import pytest
import torch

from prunebound.bounds.noise_stability import matrix_project, per_example_ratios, per_example_ratios_loop
from prunebound.network import mlp

torch.set_num_threads(1)

NET = mlp(20, [64, 64, 32], 2, seed=0)
X = torch.randn(32, 20, generator=torch.Generator().manual_seed(0))


@pytest.mark.benchmark(group="cushions")
def test_cushions_vectorised(benchmark):
    r = benchmark(per_example_ratios, NET, X)
    assert r.interlayer.shape == (4, 4, 32)


@pytest.mark.benchmark(group="cushions")
def test_cushions_per_example_loop(benchmark):
    r = benchmark.pedantic(per_example_ratios_loop, args=(NET, X), rounds=2, iterations=1)
    assert r.interlayer.shape == (4, 4, 32)


A = torch.randn(64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.benchmark(group="matrix_project")
def test_matrix_project_chunked(benchmark):
    benchmark(matrix_project, A, k=2000, seed=0)


@pytest.mark.benchmark(group="matrix_project")
def test_matrix_project_dense_helpers(benchmark):
    # the obvious alternative: materialise all k helper matrices at once (k * n memory)
    def dense():
        g = torch.Generator().manual_seed(0)
        m = torch.randint(0, 2, (2000, A.numel()), generator=g, dtype=torch.int8).to(torch.float64) * 2 - 1
        return (m.T @ (m @ A.reshape(-1))).reshape(A.shape) / 2000

    benchmark(dense)
