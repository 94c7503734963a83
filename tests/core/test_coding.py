"""Tests for prunebound.coding: k-means weight sharing, Huffman / range coding, exact model encoder."""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunebound.coding import (
    MAX_CODEBOOK,
    BitReader,
    BitWriter,
    _pack_varlen_bytes,
    _read_stream,
    _write_stream,
    canonical_huffman,
    code_length_bits,
    decode,
    elias_delta_bits,
    elias_gamma_bits,
    empirical_entropy_bits,
    encode,
    finetune_centroids,
    huffman_code_lengths,
    kmeans_1d,
    quantize_module,
    range_decode,
    range_encode,
)
from prunebound.data import Dataset
from prunebound.errors import DataError, InvalidParameterError, UnsupportedLayerError
from prunebound.network import (
    Network,
    apply_masks,
    architecture,
    conv1d_small,
    is_pruned,
    lenet5,
    masks_of,
    mlp,
)

CODERS = ("huffman", "arithmetic")


# ---------------------------------------------------------------------------------------------- helpers
def _prune_random(model: nn.Module, density: float | list[float], seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = Network.from_module(model)
    dens = density if isinstance(density, list) else [density] * len(net.layers)
    apply_masks(model, {ly.path: (torch.rand(ly.weight.shape, generator=g) < d).float()
                        for ly, d in zip(net.layers, dens)})
    return model


def _assert_same_model(a: nn.Module, b: nn.Module) -> None:
    na, nb = Network.from_module(a), Network.from_module(b)
    assert len(na.layers) == len(nb.layers)
    for la, lb in zip(na.layers, nb.layers):
        assert la.path == lb.path
        wa = (la.module.weight_orig * la.module.weight_mask) if is_pruned(la.module) else la.module.weight
        wb = (lb.module.weight_orig * lb.module.weight_mask) if is_pruned(lb.module) else lb.module.weight
        assert wa.dtype == wb.dtype
        assert torch.equal(wa, wb), la.path
        assert torch.equal(la.weight, lb.weight), la.path
        assert is_pruned(la.module) == is_pruned(lb.module)
        if is_pruned(la.module):
            assert torch.equal(la.module.weight_mask, lb.module.weight_mask)
        if la.bias is None:
            assert lb.bias is None
        else:
            assert torch.equal(la.bias, lb.bias)


def _roundtrip(model: nn.Module, coder: str) -> bytes:
    blob = encode(model, coder=coder)
    back = decode(blob, architecture(model))
    _assert_same_model(model, back)
    cl = code_length_bits(model, coder=coder)
    assert len(blob) == math.ceil(cl.total_bits / 8)
    assert sum(cl.parts.values()) == cl.total_bits
    assert sum(cl.per_layer.values()) < cl.total_bits
    return blob


# ---------------------------------------------------------------------------------------------- k-means
def test_kmeans_distortion_monotone_and_nearest():
    g = torch.Generator().manual_seed(0)
    v = torch.cat([torch.randn(2000, generator=g) * 0.1, torch.randn(500, generator=g) * 0.5 + 1])
    prev = math.inf
    for it in range(0, 15):
        c, a = kmeans_1d(v, 8, iters=it)
        assert c.dtype == torch.float64 and a.dtype == torch.int64
        assert bool((c[1:] >= c[:-1]).all())
        d = float(((v.double() - c[a]) ** 2).mean())
        assert d <= prev + 1e-15
        prev = d
        # assignment is to the nearest centroid (brute force)
        dist = (v.double()[:, None] - c[None, :]).abs()
        assert torch.allclose(dist.gather(1, a[:, None]).squeeze(1), dist.min(1).values, atol=0, rtol=0)
    c0, _ = kmeans_1d(v, 8, iters=0)
    assert torch.allclose(c0, torch.linspace(float(v.min()), float(v.max()), 8, dtype=torch.float64))


@pytest.mark.parametrize("seed,k", [(0, 4), (1, 16), (2, 32)])
def test_kmeans_matches_sklearn(seed, k):
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    v = rng.laplace(0, 0.05, size=4000)  # heavy tails: linear init leaves empty clusters (relocated)
    iters = 30
    c, a = kmeans_1d(torch.from_numpy(v), k, iters=iters)
    ours = float(np.mean((v - c.numpy()[a.numpy()]) ** 2))
    init = np.linspace(v.min(), v.max(), k).reshape(-1, 1)
    km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(v[:, None])
    theirs = km.inertia_ / v.size
    assert abs(ours - theirs) <= 0.01 * theirs


def test_kmeans_edge_cases_and_errors():
    c, a = kmeans_1d(torch.tensor([3.0, 3.0, 3.0]), 1)
    assert c.tolist() == [3.0] and a.tolist() == [0, 0, 0]
    c, a = kmeans_1d(torch.tensor([1.0, 2.0]), 2)
    assert c.tolist() == [1.0, 2.0]
    with pytest.raises(DataError):
        kmeans_1d(torch.tensor([]), 2)
    with pytest.raises(DataError):
        kmeans_1d(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(InvalidParameterError):
        kmeans_1d(torch.tensor([1.0]), 0)
    with pytest.raises(InvalidParameterError):
        kmeans_1d(torch.tensor([1.0]), 1, init="random")


# ---------------------------------------------------------------------------------------------- quantize
def test_quantize_pruned_mlp_in_place():
    m = _prune_random(mlp(20, [64, 32], 3, seed=0), 0.3, seed=1)
    before = {p: t.clone() for p, t in masks_of(m).items()}
    eff_before = [ly.weight.detach().clone() for ly in Network.from_module(m).layers]
    rep = quantize_module(m, bits={"0": 3, "2": 2, "4": 1}, iters=10)
    for (p, mk), ly, w0 in zip(before.items(), Network.from_module(m).layers, eff_before):
        assert torch.equal(mk, ly.mask)
        w = ly.weight.detach()
        assert torch.equal(w == 0, w0 == 0)  # zeros stay zeros, survivors stay nonzero (here)
        q = rep.per_layer[p]
        nz = w[w != 0].double()
        assert nz.unique().numel() <= 2 ** rep.bits[p] and q.k == 2 ** rep.bits[p]
        assert q.distortion == pytest.approx(float(((nz - w0[w0 != 0].double()) ** 2).mean()), rel=1e-12)
        assert set(nz.unique().tolist()) == set(q.centroids)
    # forward pass uses the quantized weights (weight is refreshed, not stale)
    x = torch.randn(5, 20)
    net = Network.from_module(m)
    y = x
    for i, ly in enumerate(net.layers):
        y = y @ ly.weight.T + ly.bias
        if i < 2:
            y = torch.relu(y)
    assert torch.allclose(m(x), y, atol=1e-6)


def test_quantize_more_bits_less_distortion_and_errors():
    d = []
    for b in (1, 2, 4, 6):
        m = mlp(30, [50], 4, seed=3)
        d.append(quantize_module(m, bits=b).distortion)
    assert all(d[i + 1] < d[i] for i in range(len(d) - 1))
    m = mlp(4, [5], 2, seed=0)
    with pytest.raises(InvalidParameterError):
        quantize_module(m, bits=0)
    with pytest.raises(InvalidParameterError):
        quantize_module(m, bits={"nope": 3})
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    with pytest.raises(DataError):
        quantize_module(m, bits=2)
    bn = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(UnsupportedLayerError, match="fold_batchnorm"):
        quantize_module(bn, bits=2)


def test_finetune_centroid_gradient_is_cluster_sum():
    torch.manual_seed(0)
    m = _prune_random(mlp(6, [8], 3, seed=0), 0.6, seed=0)
    quantize_module(m, bits=2)
    x = torch.randn(40, 6)
    y = torch.randint(0, 3, (40,))
    data = Dataset(x, y, n_classes=3)
    net = Network.from_module(m)
    old = [ly.weight.detach().clone() for ly in net.layers]
    # independent route: ordinary autograd on the full weights, summed per cluster
    ref = []
    ws = [ly.weight.detach().clone().requires_grad_(True) for ly in net.layers]
    out = torch.relu(x @ ws[0].T + net.layers[0].bias) @ ws[1].T + net.layers[1].bias
    nn.functional.cross_entropy(out, y).backward()
    lr = 0.5
    for w0, wv in zip(old, ws):
        vals, inv = torch.unique(w0[w0 != 0], return_inverse=True)
        gsum = torch.zeros_like(vals).index_add_(0, inv, wv.grad[w0 != 0])
        ref.append((w0, vals, vals - lr * gsum))
    finetune_centroids(m, data, epochs=1, lr=lr, batch_size=1000, seed=0)
    for ly, (w0, vals, expect) in zip(net.layers, ref):
        w = ly.weight.detach()
        assert torch.equal(w == 0, w0 == 0)
        for v, e in zip(vals, expect):
            got = w[w0 == v].unique()
            assert got.numel() == 1  # assignment kept
            assert float(got) == pytest.approx(float(e), abs=1e-6)


def test_finetune_reduces_loss():
    from prunebound.data import teacher_task

    task = teacher_task(d_in=10, width=16, n_classes=2, seed=0)
    data = task.sample(400, 1)
    m = mlp(10, [32], 2, seed=0)
    from prunebound.train import fit

    fit(m, data, epochs=5, lr=0.1, seed=0)
    quantize_module(m, bits=1)

    def loss():
        with torch.no_grad():
            return float(nn.functional.cross_entropy(m(data.x), data.y))

    l0 = loss()
    finetune_centroids(m, data, epochs=5, lr=0.05, seed=0)
    assert loss() < l0
    assert all(ly.weight[ly.weight != 0].unique().numel() <= 2 for ly in Network.from_module(m).layers)


# ---------------------------------------------------------------------------------------------- Huffman
def test_huffman_vs_brute_force_optimum():
    rng = np.random.default_rng(0)
    for _ in range(40):
        k = int(rng.integers(2, 6))
        f = rng.integers(1, 50, size=k)
        L = huffman_code_lengths(f)
        best = min(
            int((f * np.array(ls)).sum())
            for ls in itertools.product(range(1, k), repeat=k)
            if sum(2.0 ** -x for x in ls) <= 1.0
        )
        assert int((f * L).sum()) == best


@pytest.mark.parametrize("seed", range(5))
def test_huffman_entropy_kraft_prefix(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 300))
    f = np.floor(rng.pareto(1.0, size=k) * 10).astype(np.int64)
    f[:2] += 1
    L = huffman_code_lengths(f)
    used = f > 0
    assert (L[~used] == 0).all() and (L[used] > 0).all()
    assert sum(2.0 ** -int(x) for x in L[used]) == 1.0  # Kraft equality (exact in binary floats)
    p = f[used] / f.sum()
    H = float(-(p * np.log2(p)).sum())
    avg = float((p * L[used]).sum())
    assert H - 1e-12 <= avg < H + 1
    assert int((f * L).sum()) <= int(f.sum()) * math.ceil(math.log2(used.sum()))  # never beats fixed length
    codes = canonical_huffman(L)
    words = [format(int(c), f"0{int(l_)}b") for c, l_ in zip(codes[used], L[used])]
    assert len(set(words)) == len(words)
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)


def test_huffman_single_and_empty():
    assert huffman_code_lengths([0, 7, 0]).tolist() == [0, 0, 0]
    assert huffman_code_lengths([3, 3]).tolist() == [1, 1]
    with pytest.raises(InvalidParameterError):
        huffman_code_lengths([1, -1])
    with pytest.raises(InvalidParameterError):
        canonical_huffman([1, 1, 1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=300), st.sampled_from(CODERS))
def test_stream_roundtrip_property(seq, coder):
    sym = np.array(seq, dtype=np.int64)
    w = BitWriter()
    w.write(5, 3)
    _write_stream(w, sym, 10, coder, table_part="tables")
    w.write(1, 1)
    r = BitReader(w.getvalue())
    assert r.read(3) == 5
    out = _read_stream(r, sym.size, 10, coder)
    assert out.tolist() == seq
    assert r.read(1) == 1
    assert r.pos == w.bit_length


# ---------------------------------------------------------------------------------------------- bits
def test_elias_codes_known_values_and_lengths():
    for n, g, d in [(1, "1", "1"), (2, "010", "0100"), (5, "00101", "01101"), (17, "000010001", "001010001")]:
        w = BitWriter()
        w.write_gamma(n)
        assert "".join(map(str, w.bits())) == g
        assert elias_gamma_bits(n) == len(g)
        w = BitWriter()
        w.write_delta(n)
        assert "".join(map(str, w.bits())) == d
        assert elias_delta_bits(n) == len(d)
    rng = np.random.default_rng(1)
    vals = np.concatenate([np.arange(1, 300), rng.integers(1, 2**40, size=200)])
    w = BitWriter()
    w.write_delta(vals)
    w.write_gamma(vals[:100])
    assert w.bit_length == int(np.sum(elias_delta_bits(vals)) + np.sum(elias_gamma_bits(vals[:100])))
    r = BitReader(w.getvalue())
    assert [r.read_delta() for _ in vals] == vals.tolist()
    assert [r.read_gamma() for _ in range(100)] == vals[:100].tolist()
    with pytest.raises(InvalidParameterError):
        elias_gamma_bits(0)


@pytest.mark.parametrize("maxlen", [1, 7, 33, 64])
def test_vectorised_packing_matches_bit_strings(maxlen):
    rng = np.random.default_rng(maxlen)
    lens = rng.integers(0, maxlen + 1, size=3000)
    vals = [int(rng.integers(0, 2**63)) * 2 + 1 & ((1 << int(b)) - 1) if b else 0 for b in lens]
    packed, nbits = _pack_varlen_bytes(np.array(vals, dtype=np.uint64), lens)
    ref = "".join(format(v, f"0{int(b)}b") if b else "" for v, b in zip(vals, lens))
    assert nbits == len(ref)
    ref += "0" * (-len(ref) % 8)
    assert packed.tobytes() == int(ref, 2).to_bytes(len(ref) // 8, "big")


def test_bitwriter_reader_roundtrip_and_truncation():
    rng = np.random.default_rng(2)
    widths = rng.integers(1, 64, size=500)
    vals = [int(rng.integers(0, 2 ** int(b))) for b in widths]
    w = BitWriter()
    for v, b in zip(vals, widths):
        w.write(v, int(b))
    w.write(2**70 + 3, 72)
    assert w.bit_length == int(widths.sum()) + 72
    data = w.getvalue()
    assert len(data) == math.ceil(w.bit_length / 8)
    r = BitReader(data)
    assert [r.read(int(b)) for b in widths] == vals
    assert r.read(72) == 2**70 + 3
    with pytest.raises(DataError):
        r.read(9)
    with pytest.raises(InvalidParameterError):
        BitWriter().write(4, 2)


# ---------------------------------------------------------------------------------------------- range coder
@pytest.mark.parametrize("seed", range(6))
def test_range_coder_near_entropy(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 40))
    p = rng.dirichlet(np.full(k, 0.3))
    n = int(rng.integers(1, 20000))
    s = rng.choice(k, size=n, p=p)
    counts = np.bincount(s, minlength=k)
    blob = range_encode(s, counts)
    assert range_decode(blob, counts, n).tolist() == s.tolist()
    h = empirical_entropy_bits(s)
    assert 8 * len(blob) <= h + 32
    assert 8 * len(blob) >= h - 8  # cannot beat the static ideal by more than the zero-padding slack


def test_range_coder_huge_counts_rescaled_and_errors():
    counts = np.array([2**33, 3, 2**31])
    s = np.array([0, 1, 2, 0, 0, 1])
    assert range_decode(range_encode(s, counts), counts, s.size).tolist() == s.tolist()
    with pytest.raises(InvalidParameterError):
        range_encode([0, 1], [1, 0])
    assert range_encode([], [1]) == b""


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=400))
def test_range_coder_property(seq):
    s = np.array(seq)
    counts = np.bincount(s, minlength=7)
    blob = range_encode(s, counts)
    assert range_decode(blob, counts, len(seq)).tolist() == seq
    assert 8 * len(blob) <= empirical_entropy_bits(s) + 32


def test_entropy_value():
    assert empirical_entropy_bits([0, 1, 0, 1]) == 4.0
    assert empirical_entropy_bits([3, 3, 3]) == 0.0


# ---------------------------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("coder", CODERS)
def test_roundtrip_pruned_quantized_mlp(seed, coder):
    m = _prune_random(mlp(30, [64, 48], 5, seed=seed), [0.2, 0.05, 0.7], seed=seed)
    quantize_module(m, bits=[3, 4, 5][seed])
    _roundtrip(m, coder)


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("make", [lambda: lenet5(seed=0), lambda: conv1d_small(seed=1)])
def test_roundtrip_conv_models(coder, make):
    m = _prune_random(make(), 0.15, seed=4)
    quantize_module(m, bits=4)
    _roundtrip(m, coder)


@pytest.mark.parametrize("coder", CODERS)
def test_roundtrip_special_layers(coder):
    m = mlp(12, [20, 20, 20], 4, seed=5)
    net = Network.from_module(m)
    # layer 0: all-zero mask; layer 1: single shared value; layer 2: 100 % dense unpruned; layer 3: mask
    # with kept zeros and a -0.0
    apply_masks(m, {net.layers[0].path: torch.zeros(20, 12), net.layers[1].path: torch.ones(20, 20)})
    quantize_module(m, bits=3)
    with torch.no_grad():
        m[2].weight_orig.fill_(0.125)
        m[2].weight = m[2].weight_orig * m[2].weight_mask
        m[6].weight[:2] = 0.0
        m[6].weight[2, 0] = -0.0
    apply_masks(m, {net.layers[3].path: (torch.arange(80).reshape(4, 20) % 3 != 0).float()})
    cl = code_length_bits(m, coder=coder)
    assert cl.per_layer["0"] - 32 * 20 == 2 + elias_delta_bits(240) + 1 + 1  # flags, numel, m = 0; half flag, raw bias
    _roundtrip(m, coder)
    # unpruned layer with zeros and a no-bias float64 model
    m2 = mlp(7, [9], 3, bias=False, seed=1).double()
    quantize_module(m2, bits=2)
    with torch.no_grad():
        m2[0].weight[0] = 0
    blob = encode(m2, coder=coder)
    back = decode(blob, architecture(m2))
    assert back[0].weight.dtype == torch.float64
    _assert_same_model(m2, back)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 24), min_size=0, max_size=2),
    density=st.floats(0.0, 1.0),
    bits=st.integers(1, 6),
    coder=st.sampled_from(CODERS),
    seed=st.integers(0, 2**16),
    bias=st.booleans(),
)
def test_roundtrip_property_random_models(widths, density, bits, coder, seed, bias):
    m = _prune_random(mlp(9, widths, 3, bias=bias, seed=seed), density, seed=seed)
    quantize_module(m, bits=bits, iters=3)
    _roundtrip(m, coder)


def test_code_length_parts_and_choices():
    # one layer, 50 % random density: gaps cannot beat the bitmap -> positions == numel bits
    m = _prune_random(mlp(100, [], 50, seed=0), 0.5, seed=0)
    quantize_module(m, bits=2)
    cl = code_length_bits(m)
    assert cl.parts["positions"] == 100 * 50
    # 2 % density: gaps win by far, Huffman indices never exceed fixed-length indices
    m = _prune_random(mlp(100, [], 50, seed=0), 0.02, seed=0)
    quantize_module(m, bits=3)
    cl = code_length_bits(m)
    w = m[0].weight
    nnz = int((m[0].weight_mask != 0).sum())
    k = int(w[m[0].weight_mask != 0].unique().numel())
    assert cl.parts["positions"] < 0.5 * 100 * 50
    assert cl.parts["indices"] <= nnz * math.ceil(math.log2(k))
    assert cl.parts["codebook"] == 32 * k
    assert cl.parts["bias"] == 32 * 50 + 1  # float32 biases and the "half" flag
    assert 8 * len(encode(m)) - 7 <= cl.total_bits <= 8 * len(encode(m))
    assert cl.to_dict()["total_bits"] == cl.total_bits


def test_arithmetic_indices_close_to_entropy():
    m = _prune_random(mlp(200, [], 100, seed=2), 0.3, seed=2)
    quantize_module(m, bits=4)
    w = m[0].weight_orig[m[0].weight_mask != 0]
    h = empirical_entropy_bits(w.detach().numpy())
    cl = code_length_bits(m, coder="arithmetic")
    ch = code_length_bits(m, coder="huffman")
    n_bytes_field = 20
    assert h <= cl.parts["indices"] <= h + 32 + n_bytes_field
    assert cl.parts["indices"] <= ch.parts["indices"] + 32 + n_bytes_field


def test_unquantized_and_nan_models_raise():
    m = mlp(300, [300], 2, seed=0)  # 90k distinct float32 weights in layer 0
    with pytest.raises(InvalidParameterError, match="quantize_module"):
        encode(m)
    with pytest.raises(InvalidParameterError, match="quantize_module"):
        code_length_bits(m)
    assert MAX_CODEBOOK == 2**16
    m = mlp(4, [3], 2, seed=0)
    quantize_module(m, bits=2)
    with torch.no_grad():
        m[2].bias[0] = float("inf")
    with pytest.raises(DataError):
        encode(m)
    with pytest.raises(InvalidParameterError):
        encode(mlp(4, [3], 2, seed=0), coder="lzw")


def test_corrupt_truncated_and_mismatched_blobs():
    m = _prune_random(mlp(16, [32], 4, seed=0), 0.3, seed=0)
    quantize_module(m, bits=3)
    arch = architecture(m)
    blob = encode(m)
    with pytest.raises(DataError):
        decode(blob[: len(blob) // 2], arch)
    with pytest.raises(DataError):
        decode(blob[:5], arch)
    with pytest.raises(DataError):
        decode(b"XYZ" + blob[3:], arch)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0x10
    with pytest.raises(DataError, match="CRC"):
        decode(bytes(bad), arch)
    with pytest.raises(DataError):
        decode(blob, architecture(mlp(16, [31], 4)))
    with pytest.raises(DataError):
        decode(blob, architecture(mlp(16, [32], 4, bias=False)))
    # corruption with a *valid* CRC: must give a DataError or some model, never another exception
    rng = np.random.default_rng(0)
    for coder in CODERS:
        blob = encode(m, coder=coder)
        for _ in range(60):
            bad = bytearray(blob)
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(8, len(bad)))
                bad[i] ^= 1 << int(rng.integers(0, 8))
            if rng.random() < 0.3:
                bad = bad[: int(rng.integers(9, len(bad)))]
            bad[4:8] = zlib.crc32(bytes(bad[8:])).to_bytes(4, "big")
            try:
                out = decode(bytes(bad), arch)
            except DataError:
                continue
            assert isinstance(out, nn.Module)


def test_half_bias_round_trip_and_saves_16_bits_per_bias():
    from prunebound.coding import code_length_bits, decode, encode, quantize_module
    from prunebound.network import apply_masks, architecture, mlp

    m = mlp(6, [5], 3, seed=0)
    apply_masks(m, {"0": (torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()})
    quantize_module(m, bits=2)
    full = code_length_bits(m)
    quantize_module(m, bits=2, half_bias=True)
    half = code_length_bits(m)
    n_bias = 5 + 3
    assert full.total_bits - half.total_bits == 16 * n_bias
    assert half.parts["bias"] == 16 * n_bias + 2  # one "half" flag per layer
    back = decode(encode(m), architecture(m))
    x = torch.randn(4, 6)
    assert torch.equal(back(x), m(x))
    for a, b in ((back[0].bias, m[0].bias), (back[2].bias, m[2].bias)):
        assert torch.equal(a, b)
