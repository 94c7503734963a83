"""Benchmarks for prunebound.coding (ours vs the obvious alternative, in one run).

Run: .venv/bin/python -m pytest benchmarks/bench_coding.py --benchmark-only -o addopts="" -p no:xdist

* Huffman bit packing of the centroid indices of a LeNet-300-100-sized sparse quantized model: our
  vectorised ``np.repeat`` / ``np.packbits`` packer vs a naive pure-Python bit-string (``"".join``) packer.
* Full ``encode`` / ``decode`` of that model, and encode + decode of a ~1M-parameter pruned model (< 5 s).
* ``kmeans_1d`` vs scikit-learn ``KMeans`` (same linear init, Lloyd) on 100k weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebound.coding import (
    _pack_varlen_bytes,
    canonical_huffman,
    decode,
    encode,
    huffman_code_lengths,
    kmeans_1d,
    quantize_module,
)
from prunebound.network import Network, apply_masks, architecture, lenet300_100, mlp

torch.set_num_threads(1)


def _sparse_quantized(model, density: float, bits: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    net = Network.from_module(model)
    apply_masks(model, {ly.path: (torch.rand(ly.weight.shape, generator=g) < density).float()
                        for ly in net.layers})
    quantize_module(model, bits=bits, iters=10)
    return model


@pytest.fixture(scope="module")
def lenet_model():
    return _sparse_quantized(lenet300_100(seed=0), 0.1, 5)


@pytest.fixture(scope="module")
def index_stream(lenet_model):
    ly = Network.from_module(lenet_model).layers[0]
    vals = ly.module.weight_orig.detach()[ly.module.weight_mask != 0].numpy()
    _, sym = np.unique(vals, return_inverse=True)
    L = huffman_code_lengths(np.bincount(sym))
    return sym.astype(np.int64), L, canonical_huffman(L)


def _pack_ours(sym, L, codes) -> bytes:
    return _pack_varlen_bytes(codes[sym], L[sym])[0].tobytes()


def _pack_naive(sym, L, codes) -> bytes:
    words = [format(int(c), f"0{int(l_)}b") for c, l_ in zip(codes, L)]
    s = "".join(words[i] for i in sym.tolist())
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


@pytest.mark.benchmark(group="huffman-pack")
def test_pack_vectorised(benchmark, index_stream):
    out = benchmark(_pack_ours, *index_stream)
    assert out == _pack_naive(*index_stream)


@pytest.mark.benchmark(group="huffman-pack")
def test_pack_naive_python(benchmark, index_stream):
    benchmark(_pack_naive, *index_stream)


@pytest.mark.benchmark(group="model-code")
def test_encode_lenet300_100(benchmark, lenet_model):
    benchmark.extra_info["role"] = "measure"
    blob = benchmark.pedantic(encode, args=(lenet_model,), rounds=3, iterations=1)
    assert len(blob) > 0


@pytest.mark.benchmark(group="model-code")
def test_decode_lenet300_100(benchmark, lenet_model):
    blob = encode(lenet_model)
    arch = architecture(lenet_model)
    benchmark.extra_info["role"] = "measure"
    benchmark.pedantic(decode, args=(blob, arch), rounds=3, iterations=1)


@pytest.mark.benchmark(group="model-code")
def test_encode_decode_1m_params(benchmark):
    m = _sparse_quantized(mlp(1000, [1000], 10, seed=0), 0.1, 4)  # 1,011,010 parameters
    arch = architecture(m)

    def roundtrip():
        return decode(encode(m), arch)

    benchmark.extra_info["role"] = "measure"  # a size/time measurement, not a comparison
    benchmark.pedantic(roundtrip, rounds=2, iterations=1)


@pytest.fixture(scope="module")
def weights_100k():
    return torch.from_numpy(np.random.default_rng(0).laplace(0, 0.05, size=100_000))


@pytest.mark.benchmark(group="kmeans")
def test_kmeans_ours(benchmark, weights_100k):
    benchmark.pedantic(kmeans_1d, args=(weights_100k, 16), kwargs={"iters": 20}, rounds=3, iterations=1)


@pytest.mark.benchmark(group="kmeans")
def test_kmeans_sklearn(benchmark, weights_100k):
    from sklearn.cluster import KMeans

    v = weights_100k.numpy()[:, None]
    init = np.linspace(v.min(), v.max(), 16)[:, None]

    def run():
        return KMeans(16, init=init, n_init=1, max_iter=20, tol=0.0, algorithm="lloyd").fit(v)

    benchmark.pedantic(run, rounds=3, iterations=1)
