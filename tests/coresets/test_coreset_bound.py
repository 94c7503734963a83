import math

import pytest
import torch

from prunebound.bounds.coreset_bound import (
    certify_coreset,
    code_bits,
    coreset_bound,
    coreset_compress,
)
from prunebound.certificate import certifiers, verify
from prunebound.data import teacher_task
from prunebound.errors import InvalidParameterError
from prunebound.network import mlp


def test_code_bits_brute_force():
    m = mlp(3, [2], 2, bias=False, seed=0)  # N = 6 + 4 = 10 weights
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].weight[0, 0] = 1.0
    bits = code_bits(m, value_bits=16)
    k = 1 + 4
    assert bits["nonzero"] == k
    assert bits["bits"] == pytest.approx(math.log2(11) + math.log2(math.comb(10, k)) + 16 * k)


def test_certificate_recomputes_and_bounds_empirical():
    task = teacher_task(d_in=5, width=8, seed=0)
    tr = task.sample(3000, 1)
    m = mlp(5, [16], 2, seed=0)
    c, g = coreset_compress(m, tr, method="magnitude", keep_ratio=0.5)
    cert = certify_coreset(c, tr, delta=0.05)
    assert cert.value >= cert.empirical and 0 < cert.value <= 1
    assert verify(cert, c, tr).ok
    cert2 = certify_coreset(m, tr, delta=0.05, seed=3, compress={"method": "sipp", "keep_ratio": 0.5})
    assert verify(cert2, m, tr).ok and "coreset_compress" in cert2.note
    assert "coreset" in certifiers()
    # fewer bits (smaller network) -> smaller complexity
    c2, _ = coreset_compress(m, tr, method="magnitude", keep_ratio=0.2)
    assert coreset_bound(c2, tr, delta=0.05).parts["bits"] < cert.parts["bits"]


def test_rejects_values_outside_float16():
    task = teacher_task(d_in=5, width=8, seed=0)
    tr = task.sample(100, 1)
    m = mlp(5, [16], 2, seed=0)
    with torch.no_grad():
        m[0].weight[0, 0] = 1.0 + 2**-20
    with pytest.raises(InvalidParameterError, match="coreset_compress"):
        coreset_bound(m, tr, delta=0.05)
    with pytest.raises(InvalidParameterError):
        coreset_bound(m, tr, delta=1.5)
