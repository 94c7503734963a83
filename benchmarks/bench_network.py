"""Benchmarks for the capture cache behind ``Network.from_module`` (ours: cached; alternative: a fresh
``torch.fx`` trace every call, as before the cache), in one run.

Run: .venv/bin/python -m pytest benchmarks/bench_network.py --benchmark-only -o addopts="" -p no:xdist

Groups (first member = ours, ratio = alternative / ours in the conftest table):

* ``from_module-resnet20``: ``Network.from_module`` on a ResNet-20 (BatchNorm folded on every call: the fold is
  value-dependent and never cached, only the trace is);
* ``from_module-residual_mlp``: on a small residual MLP class (no BatchNorm: a hit is stamp + re-bind only).

Each cached call still computes the structure stamp (module tree, parameter identities, hooks, attributes), so
the ratio shows what validation costs against a trace.  Nothing here asserts a time.
"""

from __future__ import annotations

import pytest
import torch

from prunebound import graph as G
from prunebound.conformance import ResidualMLP
from prunebound.network import Network
from prunebound.zoo import resnet20

torch.set_num_threads(1)


def _uncached(module):
    G.clear_capture_cache()
    return Network.from_module(module)


@pytest.fixture(scope="module")
def r20():
    return resnet20(seed=0).eval()


@pytest.fixture(scope="module")
def rmlp():
    return ResidualMLP()


@pytest.mark.benchmark(group="from_module-resnet20")
def test_from_module_resnet20_cached(benchmark, r20):
    Network.from_module(r20)  # warm the cache
    net = benchmark(Network.from_module, r20)
    assert len(net.layers) == 20


@pytest.mark.benchmark(group="from_module-resnet20")
def test_from_module_resnet20_fresh_trace(benchmark, r20):
    net = benchmark(_uncached, r20)
    assert len(net.layers) == 20


@pytest.mark.benchmark(group="from_module-residual_mlp")
def test_from_module_residual_mlp_cached(benchmark, rmlp):
    Network.from_module(rmlp)
    net = benchmark(Network.from_module, rmlp)
    assert len(net.layers) == 6


@pytest.mark.benchmark(group="from_module-residual_mlp")
def test_from_module_residual_mlp_fresh_trace(benchmark, rmlp):
    net = benchmark(_uncached, rmlp)
    assert len(net.layers) == 6
