"""Zhou et al. (2019) compression bound and the Occam compression bound."""

import math
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import logsumexp
from scipy.stats import norm

from prunebound.bounds.compression_bound import (
    code_bits,
    huffman_lengths,
    mixture_kl,
    occam_compression_bound,
    quantized_layers,
    zhou2019_bound,
    zhou2019_kl,
)
from prunebound.bounds.pac_bayes import kl_bound, occam_bound
from prunebound.data import teacher_task
from prunebound.errors import InvalidParameterError
from prunebound.network import apply_masks, mlp
from prunebound.train import evaluate


def _quantized_model(levels: int = 4, seed: int = 0, prune: bool = True) -> torch.nn.Module:
    m = mlp(6, [8], 2, seed=seed)
    with torch.no_grad():
        for layer in (m[0], m[2]):
            w = layer.weight
            s = float(w.abs().max()) / levels
            layer.weight.copy_(torch.round(w / s) * s)
    if prune:
        masks = {
            p: (torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) > 0.3).float()
            for p, w in (("0", m[0].weight), ("2", m[2].weight))
        }
        apply_masks(m, masks)
    return m


@pytest.fixture(scope="module")
def data():
    return teacher_task(d_in=6, width=8, seed=0).sample(300, 1)


def test_quantized_layers_reads_codebooks():
    m = _quantized_model()
    layers = quantized_layers(m)
    assert [ly.path for ly in layers] == ["0", "2"]
    for ly, lin in zip(layers, (m[0], m[2])):
        w = lin.weight.detach().double().numpy()
        nz = w[lin.weight_mask.numpy() != 0]  # coded positions of a pruned layer: the mask support
        assert torch.equal(ly.positions, lin.weight_mask != 0)
        assert ly.k == nz.size
        assert np.array_equal(ly.codebook, np.unique(nz))
        assert ly.counts.sum() == nz.size
        assert ly.scale == pytest.approx((nz.max() - nz.min()) / (np.unique(nz).size - 1))
    mu = _quantized_model(prune=False)
    unpruned = quantized_layers(mu)
    assert all(torch.equal(q.positions, lin.weight != 0) for q, lin in zip(unpruned, (mu[0], mu[2])))
    with pytest.raises(InvalidParameterError, match="quantized"):
        quantized_layers(mlp(6, [8], 2, seed=0), max_codebook=10)


def test_huffman_lengths_kraft_and_optimality():
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = rng.integers(1, 100, size=int(rng.integers(2, 12)))
        ell = huffman_lengths(counts)
        assert sum(2.0**-ell) == pytest.approx(1.0)  # a complete prefix code
        p = counts / counts.sum()
        avg = float((p * ell).sum())
        h = float(-(p * np.log2(p)).sum())
        assert h - 1e-12 <= avg < h + 1  # Shannon bounds for an optimal code
        assert avg <= math.ceil(math.log2(len(counts))) + 1e-12  # never worse than fixed length
    assert huffman_lengths([5]).tolist() == [0]


def _quad_ref(centers, a, sigma, tau, ell):
    def integrand(x):
        comps = [
            (ell[a] - ell[j]) * math.log(2) + norm.logpdf(x, centers[j], tau) for j in range(len(centers))
        ]
        return norm.pdf(x, centers[a], sigma) * (norm.logpdf(x, centers[a], sigma) - logsumexp(comps))

    lo, hi = centers[a] - 12 * sigma, centers[a] + 12 * sigma
    pts = [c for c in centers if lo < c < hi]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return integrate.quad(integrand, lo, hi, points=pts or None, limit=500, epsabs=1e-12, epsrel=1e-10)[0]


@pytest.mark.parametrize("sigma,tau", [(0.1, 0.1), (0.3, 0.5), (1.0, 0.2), (0.05, 1.0)])
def test_mixture_kl_matches_scipy_quad(sigma, tau):
    centers = np.array([-1.0, -0.4, 0.3, 1.1])
    ell = np.array([1.0, 2.0, 3.0, 3.0])
    got = mixture_kl(centers, sigma=sigma, tau=tau, symbol_bits=ell)
    ref = [_quad_ref(centers, a, sigma, tau, ell) for a in range(4)]
    assert np.allclose(got, ref, atol=1e-7)
    got_eq = mixture_kl(centers, sigma=sigma, tau=tau)
    ref_eq = [_quad_ref(centers, a, sigma, tau, np.zeros(4)) for a in range(4)]
    assert np.allclose(got_eq, ref_eq, atol=1e-7)


def test_mixture_kl_single_component_closed_form_and_mixture_gain():
    s, t = 0.3, 0.7
    closed = math.log(t / s) + s**2 / (2 * t**2) - 0.5
    assert mixture_kl([0.5], sigma=s, tau=t)[0] == pytest.approx(closed, abs=1e-9)
    # extra (unnormalised) components can only lower the divergence
    d = mixture_kl([0.5, 0.9, 2.0], sigma=s, tau=t)
    assert d[0] < closed
    # widely separated components: the gain vanishes
    far = mixture_kl([0.5, 1e3], sigma=s, tau=t)
    assert far[0] == pytest.approx(closed, abs=1e-9)


def test_zhou_kl_none_is_closed_form_and_bits_check():
    layers = quantized_layers(_quantized_model())
    bits = 2000.0
    kl, parts = zhou2019_kl(layers, bits, sigma_rel=0.2, tau_rel=0.4, index_code="none")
    per = 0.5 * ((0.2 / 0.4) ** 2 - 1 - 2 * math.log(0.2 / 0.4))
    assert kl == pytest.approx(bits * math.log(2) + per * sum(ly.k for ly in layers), rel=1e-12)
    kl_h, parts_h = zhou2019_kl(layers, bits, sigma_rel=0.2, tau_rel=0.4, index_code="huffman")
    assert kl_h < kl  # the mixture prior helps
    assert parts_h["index_bits"] == sum(
        float((huffman_lengths(ly.counts) * ly.counts).sum()) for ly in layers
    )
    with pytest.raises(InvalidParameterError, match="index codewords"):
        zhou2019_kl(layers, 10.0, sigma_rel=0.2, tau_rel=0.4, index_code="equal")
    with pytest.raises(InvalidParameterError):
        zhou2019_kl(layers, bits, sigma_rel=0.2, tau_rel=0.4, index_code="bogus")


def test_zhou_bound_consistency_and_reproducibility(data):
    m = _quantized_model()
    kw = dict(delta=0.05, seed=3, bits=1500, sigmas=(0.05, 0.2), taus=(0.2, 0.5), mc_samples=40)
    t = zhou2019_bound(m, data, **kw)
    assert t.value == zhou2019_bound(m, data, **kw).value  # deterministic given the seed
    p = t.parts
    assert p["grid_size"] == 4
    assert p["delta_pb"] + p["delta_mc"] == pytest.approx(0.05)
    # recompute the final step from the reported parts: kl bound with delta_pb split over the grid
    again = kl_bound(p["emp_upper"], p["kl"], len(data), delta=p["delta_pb"] / p["grid_size"])
    assert t.value == pytest.approx(again.value, rel=1e-12)
    assert p["emp_upper"] >= p["emp_mc"]
    assert 0 <= t.empirical <= t.value <= 1
    # paying for a larger grid can only make the reported bound (for the same chosen point) larger
    bigger = zhou2019_bound(m, data, **{**kw, "taus": (0.2, 0.5, 0.21, 0.51)})
    assert bigger.parts["grid_size"] == 8
    with pytest.raises(InvalidParameterError):
        zhou2019_bound(m, data, **{**kw, "delta": 1.5})
    with pytest.raises(InvalidParameterError):
        zhou2019_bound(m, data, **{**kw, "sigmas": ()})


def test_occam_compression_bound_and_coding_stub(data, monkeypatch):
    m = _quantized_model()
    t = occam_compression_bound(m, data, delta=0.05, bits=321)
    ref = occam_bound(evaluate(m, data).error, 321, len(data), delta=0.05)
    assert t == ref
    stub = types.ModuleType("prunebound.coding")
    stub.code_length_bits = lambda module: types.SimpleNamespace(total_bits=777)
    monkeypatch.setitem(sys.modules, "prunebound.coding", stub)
    assert code_bits(m) == 777.0
    assert occam_compression_bound(m, data, delta=0.05).parts["bits"] == 777.0
    with pytest.raises(InvalidParameterError):
        code_bits(m, -1)
