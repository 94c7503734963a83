"""Weight coding: k-means weight sharing, Huffman / range coding, and an exact model encoder.

This is a *real* encoder (not a formula): :func:`encode` turns a pruned, quantized model into bytes,
:func:`decode` rebuilds it bit-identically from the bytes and the architecture spec, and
:func:`code_length_bits` reports the exact number of bits the encoder wrote, split into parts. The code
length is what an Occam / Zhou et al. (2019) compression bound pays for the model (prior ``2^-|code|``).

Pipeline (Deep Compression, Han, Mao & Dally, ICLR 2016, Sec. 3-4):

1. :func:`quantize_module` -- per-layer weight sharing of the surviving (unmasked, nonzero) weights with
   1-D k-means (:func:`kmeans_1d`, *linear* initialisation between min and max, Lloyd steps),
   ``k = 2^bits`` clusters.
2. :func:`finetune_centroids` (optional) -- SGD on the shared centroids; the gradient of a centroid is the
   sum of the gradients of the weights in its cluster (Han et al. 2016, Eq. 3), assignments are kept.
3. :func:`encode` -- per layer: codebook, positions of the surviving weights (relative index gaps or a
   bitmap, whichever is shorter), centroid indices, raw biases. Symbols are entropy coded with canonical
   Huffman codes (code lengths transmitted) or with a range coder (symbol counts transmitted).

Bitstream format (version 2), all integers MSB-first; ``delta(x)`` is the Elias delta code of ``x >= 1``,
``gamma(x)`` the Elias gamma code (Elias 1975)::

    magic "PBC" (24) | version (8) | crc32 of the bytes after the first 8 (32) | coder (1) | dtype (2)
    | delta(n_layers)
    per layer:  pruned (1) | has_bias (1) | delta(numel) | delta(m + 1)       m = number of coded positions
        if m > 0:      delta(K) | K codebook values (raw float32, or float64 for float64 models)
        if 0 < m < numel: mode (1): 0 -> bitmap (numel bits)
                                    1 -> gamma(b) | delta(n_escapes + 1) | symbol stream over 2^b symbols
        if K > 1:      symbol stream of m centroid indices over K symbols
        if has_bias:   half (1) | bias values: raw float16 if half = 1 (every bias is exactly a float16),
                       else raw float32 / float64
    symbol stream (Huffman): gamma(Lmax + 1) | if Lmax == 0: the single symbol (ceil log2 A bits)
                             else A code lengths of bit_length(Lmax) bits each | canonical codes
    symbol stream (range):   A counts as delta(count + 1) | delta(n_bytes + 1) | the range coder bytes

Positions of a *pruned* layer are the mask support (``weight_mask == 1``, so the mask round-trips exactly
even where a kept weight is 0); for an unpruned layer they are the nonzero weights. Gaps follow Han et al.
(2016, Sec. 3) with one deviation: instead of a filler *zero weight* when a gap exceeds ``2^b - 1``, the
symbol ``2^b - 1`` is an escape meaning "skip ``2^b - 1`` positions, no weight" (no fake codebook entry);
``b`` is chosen per layer to minimise the exact code length. Deviation from the brief: codebooks are
float32 for float32 models but float64 for float64 models (exactness needs it).

``code_length_bits(...).total_bits`` is the exact number of bits written *before* padding to whole bytes,
so ``len(encode(m)) == ceil(total_bits / 8)``. Signed zeros are not preserved (``-0.0`` decodes as ``0.0``);
values compare equal. Weights of pruned-away coordinates (``weight_orig`` where the mask is 0) are not
coded (they do not affect the model) and decode as 0.
"""

from __future__ import annotations

import bisect
import heapq
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_finite_module,
    check_positive_int,
)
from prunebound.network import (
    Network,
    apply_masks,
    build_architecture,
    is_pruned,
    refresh_masked_weights,
)

__all__ = [
    "kmeans_1d",
    "LayerQuantization",
    "QuantizeReport",
    "quantize_module",
    "finetune_centroids",
    "huffman_code_lengths",
    "canonical_huffman",
    "elias_gamma_bits",
    "elias_delta_bits",
    "BitWriter",
    "BitReader",
    "range_encode",
    "range_decode",
    "empirical_entropy_bits",
    "CodeLength",
    "encode",
    "decode",
    "code_length_bits",
    "MAX_CODEBOOK",
]

MAX_CODEBOOK = 2**16  # more distinct values per layer than this: "not quantized"
_MAGIC = b"PBC"
_VERSION = 2
_CODERS = ("huffman", "arithmetic")
_DTYPES = (torch.float32, torch.float64)
_MAX_GAP_BITS = 12


# ====================================================================== k-means weight sharing
def _lloyd_assign(v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Nearest centroid for sorted ``c`` via the midpoints (O(n log k)); ties go to the lower centroid."""
    mid = 0.5 * (c[1:] + c[:-1])
    return np.searchsorted(mid, v, side="left").astype(np.int64)


def kmeans_1d(values: torch.Tensor, k: int, *, iters: int = 20, init: str = "linear"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D k-means (Lloyd's algorithm) as used for weight sharing in Deep Compression.

    Minimises the distortion ``D(c, a) = (1/n) sum_i (v_i - c_{a_i})^2``. ``init="linear"`` spaces the ``k``
    initial centroids evenly between ``min(v)`` and ``max(v)`` (Han et al. 2016, Sec. 3.2, found best for
    accuracy because it keeps large weights representable); ``init="density"`` uses the ``(j+0.5)/k``
    quantiles. Each of the ``iters`` Lloyd steps assigns every value to its nearest centroid (searchsorted on
    midpoints, vectorised) and moves every non-empty centroid to its cluster mean. Deviation from plain
    Lloyd / Han et al.: an empty cluster takes over the value farthest from its current centroid, which leaves
    its old cluster (scikit-learn's rule; heavy-tailed weights with linear init otherwise waste clusters); on
    such steps the result equals scikit-learn's Lloyd KMeans with the same init. Stops early at a fixed
    point. The distortion is non-increasing along the steps (relocation only splits off a point).

    Returns ``(centroids, assignments)``: float64 centroids sorted ascending (length ``k``; duplicates are
    possible only when ``k`` exceeds the number of distinct values) and int64 assignments to the nearest
    returned centroid.
    """
    k = check_positive_int("k", k)
    iters = check_positive_int("iters", iters, minimum=0)
    if init not in ("linear", "density"):
        raise InvalidParameterError(f"init must be 'linear' or 'density'; got {init!r}")
    v = torch.as_tensor(values).detach().reshape(-1).to(torch.float64).cpu().numpy()
    if v.size == 0:
        raise DataError("values is empty; k-means needs at least one value")
    if not np.isfinite(v).all():
        raise DataError("values contains NaN or inf")
    lo, hi = float(v.min()), float(v.max())
    if init == "linear":
        c = np.linspace(lo, hi, k) if k > 1 else np.array([0.5 * (lo + hi)])
    else:
        c = np.quantile(v, (np.arange(k) + 0.5) / k)
    c = np.sort(c)
    a = _lloyd_assign(v, c)
    for _ in range(iters):
        cnt = np.bincount(a, minlength=k)
        s = np.bincount(a, weights=v, minlength=k)
        empty = np.flatnonzero(cnt == 0)
        if empty.size:  # relocate empty clusters to the values farthest from their centroid (sklearn's rule)
            err = (v - c[a]) ** 2
            far = np.argsort(-err, kind="stable")[: empty.size]
            far = far[err[far] > 0]
            e = empty[: far.size]
            np.subtract.at(cnt, a[far], 1)
            np.subtract.at(s, a[far], v[far])
            cnt[e] = 1
            s[e] = v[far]
        new = c.copy()
        nz = cnt > 0
        new[nz] = s[nz] / cnt[nz]
        new = np.sort(new)
        a_new = _lloyd_assign(v, new)
        converged = np.array_equal(new, c) and np.array_equal(a_new, a)
        c, a = new, a_new
        if converged:
            break
    return torch.from_numpy(c), torch.from_numpy(a)


@dataclass(frozen=True)
class LayerQuantization:
    """Weight sharing of one layer: ``k`` clusters, their float64 ``centroids`` (as stored in the layer's
    dtype), the mean squared error ``distortion`` over the ``n_weights`` shared (surviving) weights."""

    path: str
    k: int
    centroids: tuple[float, ...]
    distortion: float
    n_weights: int

    def to_dict(self) -> dict:
        return {"path": self.path, "k": self.k, "centroids": list(self.centroids),
                "distortion": self.distortion, "n_weights": self.n_weights}


@dataclass(frozen=True)
class QuantizeReport:
    """Result of :func:`quantize_module`: one :class:`LayerQuantization` per weighted layer path."""

    per_layer: dict[str, LayerQuantization]
    bits: dict[str, int]
    iters: int

    @property
    def distortion(self) -> float:
        """Weighted mean squared error over all shared weights."""
        n = sum(q.n_weights for q in self.per_layer.values())
        return sum(q.distortion * q.n_weights for q in self.per_layer.values()) / max(n, 1)

    def to_dict(self) -> dict:
        return {"per_layer": {p: q.to_dict() for p, q in self.per_layer.items()}, "bits": dict(self.bits),
                "iters": self.iters, "distortion": self.distortion}


def _effective(ly) -> torch.Tensor:
    """Effective weight, recomputed from ``weight_orig * weight_mask`` for pruned layers (never stale)."""
    m = ly.module
    if is_pruned(m):
        return (m.weight_orig * m.weight_mask).detach()
    return m.weight.detach()


def _inplace_network(module: nn.Module | Network) -> Network:
    """A Network on ``module`` itself (not a BatchNorm-folded copy), for the in-place operations."""
    net = Network.from_module(module)
    if isinstance(module, nn.Module) and net.module is not module:
        raise UnsupportedLayerError(
            "module contains BatchNorm, which Network folds into a copy; in-place weight sharing would not "
            "reach your module: call prunebound.network.fold_batchnorm(module) first and quantize the result")
    return net


def _write_weights(m: nn.Module, flat_index: torch.Tensor, values: torch.Tensor) -> None:
    """Write ``values`` at flat positions of the stored weight (``weight_orig`` when pruned), in place."""
    target = m.weight_orig if is_pruned(m) else m.weight
    with torch.no_grad():
        t = target.data.view(-1)
        t[flat_index] = values.to(t.dtype)
    refresh_masked_weights(m)


def _bits_for(bits: int | Mapping[str, int], path: str) -> int:
    if isinstance(bits, Mapping):
        if path not in bits:
            raise InvalidParameterError(f"bits has no entry for layer {path!r}; given for {sorted(bits)}")
        b = bits[path]
    else:
        b = bits
    b = check_positive_int(f"bits[{path!r}]" if isinstance(bits, Mapping) else "bits", b)
    if b > 16:
        raise InvalidParameterError(f"bits must be <= 16 (at most 2^16 shared values per layer); got {b}")
    return b


def quantize_module(module: nn.Module | Network, *, bits: int | dict[str, int] = 4, iters: int = 20,
                    half_bias: bool = False) -> QuantizeReport:
    """Per-layer weight sharing (Deep Compression, Han et al. 2016, Sec. 3), in place.

    For every weighted layer, the surviving weights (mask 1 and nonzero) are clustered with
    :func:`kmeans_1d` (linear init, ``iters`` Lloyd steps) into ``k = min(2^bits, #distinct values)``
    clusters and replaced by their centroid (rounded to the layer's dtype). Pruned layers are written
    through ``weight_orig``; masks and zero weights are unchanged. ``bits`` is one int or a mapping from layer
    path to int. With ``half_bias=True`` the biases are also rounded to float16 (the encoder then stores them in
    16 bits instead of 32). Returns a :class:`QuantizeReport` with per-layer ``k``, centroids and distortion (MSE).
    """
    net = _inplace_network(module)
    net.check_finite()
    iters = check_positive_int("iters", iters, minimum=0)
    if isinstance(bits, Mapping):
        unknown = set(bits) - {ly.path for ly in net.layers}
        if unknown:
            raise InvalidParameterError(f"bits names unknown layers {sorted(unknown)}; "
                                        f"weighted layers are {[ly.path for ly in net.layers]}")
    per: dict[str, LayerQuantization] = {}
    used_bits: dict[str, int] = {}
    for ly in net.layers:
        b = _bits_for(bits, ly.path)
        used_bits[ly.path] = b
        w = _effective(ly).reshape(-1)
        idx = torch.nonzero(w != 0).reshape(-1)
        if idx.numel() == 0:
            per[ly.path] = LayerQuantization(ly.path, 0, (), 0.0, 0)
            continue
        vals = w[idx].to(torch.float64)
        k = min(2**b, int(torch.unique(vals).numel()))
        c, a = kmeans_1d(vals, k, iters=iters, init="linear")
        q = c[a].to(w.dtype)
        _write_weights(ly.module, idx, q)
        qd = q.to(torch.float64)
        dist = float(((vals - qd) ** 2).mean())
        stored = tuple(float(x) for x in torch.unique(qd).tolist())
        per[ly.path] = LayerQuantization(ly.path, k, stored, dist, int(idx.numel()))
    if half_bias:
        with torch.no_grad():
            for ly in net.layers:
                if ly.bias is not None:
                    ly.bias.copy_(ly.bias.to(torch.float16).to(ly.bias.dtype))
    return QuantizeReport(per, used_bits, iters)


def finetune_centroids(module: nn.Module | Network, data, *, epochs: int = 1, lr: float = 1e-3,
                       seed: int | None = 0, batch_size: int = 128) -> None:
    """Fine-tune the shared centroids with SGD on the cross-entropy, keeping assignments (in place).

    Han et al. (2016, Sec. 3.3, Eq. 3): ``dL/dC_k = sum_{i,j} dL/dW_ij 1(I_ij = k)``; here the layer's
    weight is rebuilt as ``W = scatter(C[I])`` and autograd of the gather gives exactly that sum. Clusters
    are the distinct nonzero surviving values of each layer (call :func:`quantize_module` first); zeros,
    masks and biases stay fixed. Minibatches are shuffled with ``torch.Generator().manual_seed(seed)``.
    """
    from torch.func import functional_call

    net = _inplace_network(module)
    net.check_finite()
    epochs = check_positive_int("epochs", epochs, minimum=0)
    batch_size = check_positive_int("batch_size", batch_size)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidParameterError(f"lr must be a finite number > 0; got {lr!r}")
    x, y = data.x, data.y
    if len(y) == 0:
        raise DataError("data is empty")
    mod = net.module
    names = dict(mod.named_parameters())
    groups = []  # (param name, shape, dtype, flat positions, assignment, centroid tensor)
    for ly in net.layers:
        w = _effective(ly).reshape(-1)
        pos = torch.nonzero(w != 0).reshape(-1)
        if pos.numel() == 0:
            continue
        cvals, assign = torch.unique(w[pos], return_inverse=True)
        if cvals.numel() > MAX_CODEBOOK:
            raise InvalidParameterError(
                f"layer {ly.path!r} has {cvals.numel()} distinct weights (> {MAX_CODEBOOK}); call "
                "quantize_module first")
        pname = (ly.path + "." if ly.path else "") + ("weight_orig" if is_pruned(ly.module) else "weight")
        base = names[pname].detach().clone().reshape(-1)
        base[pos] = 0
        groups.append((ly, pname, base, pos, assign, cvals.clone().requires_grad_(True)))
    if not groups or epochs == 0:
        return
    params = [g[5] for g in groups]
    opt = torch.optim.SGD(params, lr=float(lr))
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    was_training = mod.training
    mod.eval()
    try:
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=gen)
            for s in range(0, len(y), batch_size):
                bi = perm[s:s + batch_size]
                subst = {}
                for _ly, pname, base, pos, assign, c in groups:
                    wflat = base.index_put((pos,), c[assign])
                    subst[pname] = wflat.reshape(names[pname].shape)
                out = functional_call(mod, subst, (x[bi].to(base.dtype),))
                loss = nn.functional.cross_entropy(out, y[bi])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        mod.train(was_training)
    for ly, _pname, _base, pos, assign, c in groups:
        _write_weights(ly.module, pos, c.detach()[assign])


# ====================================================================== universal codes and bit IO
def elias_gamma_bits(n) -> int | np.ndarray:
    """Length of the Elias gamma code of ``n >= 1``: ``2 floor(log2 n) + 1`` bits (Elias 1975)."""
    a = np.asarray(n, dtype=np.int64)
    if (a < 1).any():
        raise InvalidParameterError(f"Elias codes need integers >= 1; got {n!r}")
    out = 2 * (_bitlen(a) - 1) + 1
    return int(out) if out.ndim == 0 else out


def elias_delta_bits(n) -> int | np.ndarray:
    """Length of the Elias delta code of ``n >= 1``: ``L - 1 + 2 floor(log2 L) + 1`` with
    ``L = floor(log2 n) + 1`` (Elias 1975)."""
    a = np.asarray(n, dtype=np.int64)
    if (a < 1).any():
        raise InvalidParameterError(f"Elias codes need integers >= 1; got {n!r}")
    L = _bitlen(a)
    out = L - 1 + 2 * (_bitlen(L) - 1) + 1
    return int(out) if out.ndim == 0 else out


def _bitlen(a: np.ndarray) -> np.ndarray:
    """Vectorised ``int.bit_length`` for nonnegative int64 arrays."""
    a = np.asarray(a, dtype=np.int64)
    out = np.zeros(a.shape, dtype=np.int64)
    x = a.copy()
    for sh in (32, 16, 8, 4, 2, 1):
        big = x >= (np.int64(1) << sh)
        out[big] += sh
        x[big] >>= sh
    out[x > 0] += 1
    return out


def _segments(w: np.ndarray) -> np.ndarray:
    """Start indices of the runs of equal values in the non-decreasing array ``w``."""
    d = np.empty(w.size, dtype=bool)
    d[0] = True
    np.not_equal(w[1:], w[:-1], out=d[1:])
    return np.flatnonzero(d)


def _pack_varlen_bytes(values: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Pack each ``values[i]`` MSB-first in ``lengths[i]`` (<= 64) bits, concatenated, into bytes.

    Vectorised word packing: every code lands in 64-bit word ``start // 64`` (spilling into the next word
    when it crosses a boundary); the disjoint pieces are OR-ed per word with ``np.bitwise_or.reduceat``
    (starts are increasing, so each word's pieces are contiguous). No Python loop over symbols or bits.
    Returns ``(packed uint8 array zero-padded to whole bytes, number of bits)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint8), 0
    keep = lengths > 0
    if not keep.all():
        lengths, values = lengths[keep], values[keep]
    start = np.cumsum(lengths) - lengths
    w = start >> 6
    e = (start & 63) + lengths  # end bit (exclusive) inside word w, in 1..128
    fits = e <= 64
    hi = np.where(fits, values << np.where(fits, 64 - e, 0).astype(np.uint64),
                  values >> np.where(fits, 0, e - 64).astype(np.uint64))
    nw = (total + 63) >> 6
    words = np.zeros(nw + 1, dtype=np.uint64)
    seg = _segments(w)
    words[w[seg]] = np.bitwise_or.reduceat(hi, seg)
    if not fits.all():
        sp = ~fits
        ws = w[sp] + 1
        lo = values[sp] << (128 - e[sp]).astype(np.uint64)
        seg2 = _segments(ws)
        words[ws[seg2]] |= np.bitwise_or.reduceat(lo, seg2)
    return words[:nw].astype(">u8").view(np.uint8)[: (total + 7) >> 3], total


def _pack_varlen(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Bits (uint8 0/1) of each ``values[i]`` written MSB-first in ``lengths[i]`` bits, concatenated."""
    packed, total = _pack_varlen_bytes(values, lengths)
    return np.unpackbits(packed)[:total]


class BitWriter:
    """Append-only bit buffer (MSB-first), vectorised; tracks how many bits each named part used.

    ``part`` is the current accounting label (``"header"``, ``"codebook"``, ...); ``layer`` the current
    layer path (``None`` for global fields). :meth:`getvalue` packs with ``np.packbits`` (zero padding).
    """

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.bit_length = 0
        self.part = "header"
        self.layer: str | None = None
        self.parts: dict[str, int] = {}
        self.per_layer: dict[str, int] = {}

    def _add(self, bits: np.ndarray) -> None:
        n = int(bits.size)
        if n == 0:
            return
        self._chunks.append(bits)
        self.bit_length += n
        self.parts[self.part] = self.parts.get(self.part, 0) + n
        if self.layer is not None:
            self.per_layer[self.layer] = self.per_layer.get(self.layer, 0) + n

    def write_bits(self, bits: np.ndarray) -> None:
        """Append an array of 0/1 values."""
        self._add(np.asarray(bits, dtype=np.uint8).reshape(-1))

    def write(self, value: int, nbits: int) -> None:
        """Append ``value`` (0 <= value < 2^nbits) in ``nbits`` bits."""
        value, nbits = int(value), int(nbits)
        if nbits < 0 or value < 0 or (nbits < 64 and value >> nbits):
            raise InvalidParameterError(f"value {value} does not fit in {nbits} bits")
        if nbits > 64:
            self.write(value >> 64, nbits - 64)
            self.write(value & ((1 << 64) - 1), 64)
            return
        self._add(_pack_varlen(np.array([value], dtype=np.uint64), np.array([nbits])))

    def write_array(self, values: np.ndarray, nbits: int | np.ndarray) -> None:
        """Append each value in its own width (scalar or per-value array of widths <= 64)."""
        values = np.asarray(values).astype(np.uint64).reshape(-1)
        widths = np.broadcast_to(np.asarray(nbits, dtype=np.int64), values.shape)
        self._add(_pack_varlen(values, widths))

    def write_gamma(self, n) -> None:
        """Elias gamma code(s) of integer(s) ``n >= 1``."""
        a = np.atleast_1d(np.asarray(n, dtype=np.int64))
        self.write_array(a, elias_gamma_bits(a))

    def write_delta(self, n) -> None:
        """Elias delta code(s) of integer(s) ``n >= 1``: gamma(L) then the low ``L-1`` bits of ``n``."""
        a = np.atleast_1d(np.asarray(n, dtype=np.int64))
        if (a < 1).any():
            raise InvalidParameterError(f"Elias codes need integers >= 1; got {n!r}")
        L = _bitlen(a)
        if (L > 48).any():
            raise InvalidParameterError("Elias delta here supports integers < 2^48")
        gl = 2 * (_bitlen(L) - 1) + 1
        val = (L.astype(np.uint64) << (L - 1).astype(np.uint64)) | (
            a.astype(np.uint64) - (np.uint64(1) << (L - 1).astype(np.uint64)))
        self.write_array(val, gl + L - 1)

    def write_bytes(self, data: bytes) -> None:
        self._add(np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8)))

    def bits(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.uint8)

    def getvalue(self) -> bytes:
        return np.packbits(self.bits()).tobytes()


class BitReader:
    """Reads what :class:`BitWriter` wrote; reading past the end raises :class:`DataError`."""

    def __init__(self, data: bytes, *, n_bits: int | None = None) -> None:
        self.bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
        if n_bits is not None:
            self.bits = self.bits[: max(0, int(n_bits))]
        self.pos = 0

    @property
    def remaining(self) -> int:
        return int(self.bits.size - self.pos)

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.bits.size:
            raise DataError(f"truncated or corrupt code: need {n} more bits at bit {self.pos}, "
                            f"only {self.remaining} left")

    def read_bits(self, n: int) -> np.ndarray:
        n = int(n)
        self._need(n)
        out = self.bits[self.pos:self.pos + n]
        self.pos += n
        return out

    def read(self, nbits: int) -> int:
        b = self.read_bits(nbits)
        v = 0
        for chunk in range(0, b.size, 64):
            part = b[chunk:chunk + 64]
            v = (v << part.size) | int(part.astype(np.uint64) @ (np.uint64(1) << np.arange(
                part.size - 1, -1, -1, dtype=np.uint64)) if part.size else 0)
        return v

    def read_array(self, n: int, nbits: int) -> np.ndarray:
        """``n`` unsigned values of ``nbits`` (<= 63) bits each, as int64."""
        if nbits == 0:
            return np.zeros(n, dtype=np.int64)
        b = self.read_bits(n * nbits).reshape(n, nbits).astype(np.int64)
        return b @ (np.int64(1) << np.arange(nbits - 1, -1, -1, dtype=np.int64))

    def read_gamma(self) -> int:
        look = self.bits[self.pos:self.pos + 64]
        ones = np.flatnonzero(look)
        if ones.size == 0:
            raise DataError(f"truncated or corrupt Elias code at bit {self.pos}")
        z = int(ones[0])
        self.pos += z
        return self.read(z + 1)

    def read_delta(self) -> int:
        L = self.read_gamma()
        if L > 63:
            raise DataError(f"corrupt Elias delta code at bit {self.pos} (length {L})")
        return (1 << (L - 1)) | self.read(L - 1)

    def read_bytes(self, n: int) -> bytes:
        return np.packbits(self.read_bits(8 * n)).tobytes()


# ====================================================================== Huffman
def huffman_code_lengths(freqs) -> np.ndarray:
    """Optimal (Huffman 1952) prefix-code lengths for nonnegative frequencies; unused symbols get 0.

    Built with a heap over the used symbols (ties broken by symbol order, deterministic). A single used
    symbol gets length 0: its count is known to the decoder, so it costs no bits (Kraft sum 2^0 = 1).
    Guarantees for >= 2 used symbols: Kraft equality ``sum 2^-l = 1`` and
    ``H <= sum p_i l_i < H + 1`` (Cover & Thomas, Thm 5.8.1).
    """
    f = np.asarray(freqs, dtype=np.float64).reshape(-1)
    if not np.isfinite(f).all() or (f < 0).any():
        raise InvalidParameterError("freqs must be finite and >= 0")
    lengths = np.zeros(f.size, dtype=np.int64)
    used = np.flatnonzero(f > 0)
    if used.size <= 1:
        return lengths
    # heap items: (weight, tie, node id); leaves 0..u-1, internal nodes after
    heap = [(float(f[s]), i, i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    parent: list[int] = [-1] * used.size
    nid = used.size
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)
        w2, _, b = heapq.heappop(heap)
        parent.append(-1)
        parent[a] = nid
        parent[b] = nid
        heapq.heappush(heap, (w1 + w2, nid, nid))
        nid += 1
    depth = np.zeros(nid, dtype=np.int64)
    for node in range(nid - 2, -1, -1):  # parents have larger ids: fill from the root down
        depth[node] = depth[parent[node]] + 1
    lengths[used] = depth[:used.size]
    return lengths


def canonical_huffman(lengths) -> np.ndarray:
    """Canonical prefix codes (Schwartz & Kallick 1964; DEFLATE, RFC 1951 Sec. 3.2.2) for code lengths.

    Symbols are ordered by (length, symbol); each code is the previous one plus one, shifted left when
    the length grows. Returns uint64 code values (read MSB-first in ``lengths[i]`` bits); 0 for unused.
    """
    L = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (L < 0).any() or (L > 62).any():
        raise InvalidParameterError("code lengths must lie in [0, 62]")
    codes = np.zeros(L.size, dtype=np.uint64)
    used = np.flatnonzero(L > 0)
    if used.size == 0:
        return codes
    if float(np.sum(np.ldexp(1.0, -L[used]))) > 1.0 + 1e-12:
        raise InvalidParameterError("code lengths violate the Kraft inequality; no prefix code exists")
    order = used[np.lexsort((used, L[used]))]
    code = 0
    prev = int(L[order[0]])
    for s in order:  # alphabet-sized loop (<= 2^16), not per coded symbol
        ls = int(L[s])
        code <<= ls - prev
        prev = ls
        codes[s] = code
        code += 1
    return codes


def _huffman_decode(reader: BitReader, lengths: np.ndarray, n: int) -> np.ndarray:
    """Decode ``n`` canonical-Huffman symbols from ``reader`` (vectorised window lookup + pointer chase).

    For every bit position p in the candidate region, the ``Lmax``-bit window starting at p determines the
    code length (searchsorted over left-aligned canonical limits) and the symbol; the actual code starts are
    then followed with one cheap Python step per symbol.
    """
    L = np.asarray(lengths, dtype=np.int64)
    lmax = int(L.max())
    used = np.flatnonzero(L > 0)
    order = used[np.lexsort((used, L[used]))]
    lens_sorted = L[order]
    codes = canonical_huffman(L)
    # left-aligned first code of each length and cumulative limit
    region = min(reader.remaining, n * lmax)
    bits = reader.bits[reader.pos:reader.pos + region]
    padded = np.concatenate([bits, np.zeros(lmax, dtype=np.uint8)]).astype(np.int64)
    win = np.lib.stride_tricks.sliding_window_view(padded, lmax)[:region]
    w = win @ (np.int64(1) << np.arange(lmax - 1, -1, -1, dtype=np.int64))
    left = codes[order].astype(np.int64) << (lmax - lens_sorted)  # left-aligned codes, increasing
    rank = np.searchsorted(left, w, side="right") - 1  # last code whose left-aligned value <= window
    rank = np.clip(rank, 0, order.size - 1)
    step = lens_sorted[rank]
    sym_at = order[rank]
    steps = step.tolist()
    starts = [0] * n
    p = 0
    for i in range(n):
        if p >= region:
            raise DataError(f"truncated or corrupt Huffman stream at bit {reader.pos + p}")
        starts[i] = p
        p += steps[p]
    if p > region:
        raise DataError(f"truncated or corrupt Huffman stream at bit {reader.pos + region}")
    st = np.asarray(starts, dtype=np.int64)
    # a window whose value does not match the chosen code (possible only with padding past the end)
    if st.size and (w[st] >> (lmax - step[st])).astype(np.uint64).tolist() != codes[sym_at[st]].tolist():
        raise DataError("corrupt Huffman stream: invalid code word")
    reader.pos += p
    return sym_at[st]


# ====================================================================== range coder
_RC_BITS = 64
_RC_MASK = (1 << _RC_BITS) - 1
_RC_TOP = 1 << (_RC_BITS - 8)
_RC_MAX_TOTAL = 1 << 32


def _rc_freqs(counts) -> list[int]:
    """Integer frequencies used by the range coder: the counts, rescaled deterministically (keeping every
    used symbol >= 1) only if their total exceeds 2^32."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    if (c < 0).any():
        raise InvalidParameterError("counts must be >= 0")
    tot = int(c.sum())
    if tot > _RC_MAX_TOTAL:
        sc = np.floor(c.astype(np.float64) * (_RC_MAX_TOTAL // 2) / tot).astype(np.int64)
        sc[(c > 0) & (sc == 0)] = 1
        c = sc
    return c.tolist()


def range_encode(symbols, counts) -> bytes:
    """Range coder (Martin 1979; LZMA-style carry propagation) with a static model given by ``counts``.

    64-bit range, renormalisation bytewise when the range drops below 2^56; the counts' total must be
    <= 2^32 (else rescaled), so the per-symbol loss from integer division is below ``2^-24`` relative.
    The final flush emits the shortest byte string pinning a value in the last interval; trailing zero
    bytes are dropped (the decoder pads with zeros). Output length <= ``n H_counts + ~10`` bits.
    """
    f = _rc_freqs(counts)
    cum = [0]
    for x in f:
        cum.append(cum[-1] + x)
    total = cum[-1]
    sym = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if sym.size and (sym.min() < 0 or sym.max() >= len(f)):
        raise InvalidParameterError(f"symbols must lie in [0, {len(f)})")
    if sym.size and min(f[s] for s in set(sym.tolist())) == 0:
        raise InvalidParameterError("a coded symbol has count 0")
    if sym.size == 0:
        return b""
    out = bytearray()
    low, rng, cache, pending, first = 0, _RC_MASK, 0, 0, True
    top, mask, hi = _RC_TOP, _RC_MASK, 0xFF << (_RC_BITS - 8)

    def shift_low(low, cache, pending, first):
        if low < hi or low > mask:
            carry = low >> _RC_BITS
            if first:
                first = False
            else:
                out.append((cache + carry) & 0xFF)
            out.extend([(0xFF + carry) & 0xFF] * pending)
            pending = 0
            cache = (low >> (_RC_BITS - 8)) & 0xFF
        else:
            pending += 1
        return (low << 8) & mask, cache, pending, first

    for s in sym.tolist():
        r = rng // total
        low += r * cum[s]
        rng = r * f[s]
        while rng < top:
            rng <<= 8
            low, cache, pending, first = shift_low(low, cache, pending, first)
    # flush: the value in [low, low + rng) with the most trailing zero bytes
    for nb in range(0, _RC_BITS // 8 + 1):
        unit = 1 << (_RC_BITS - 8 * nb)
        v = -(-low // unit) * unit
        if v < low + rng:
            break
    low = v
    for _ in range(nb):
        low, cache, pending, first = shift_low(low, cache, pending, first)
    carry = low >> _RC_BITS
    if not first:
        out.append((cache + carry) & 0xFF)
    out.extend([(0xFF + carry) & 0xFF] * pending)
    while out and out[-1] == 0:
        out.pop()
    return bytes(out)


def range_decode(blob: bytes, counts, n: int) -> np.ndarray:
    """Inverse of :func:`range_encode`: ``n`` symbols from ``blob`` with the same ``counts``."""
    f = _rc_freqs(counts)
    cum = [0]
    for x in f:
        cum.append(cum[-1] + x)
    total = cum[-1]
    n = check_positive_int("n", n, minimum=0)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if total == 0:
        raise DataError("range_decode: all counts are zero but n > 0")
    data = bytes(blob)
    nbytes = len(data)
    pos = _RC_BITS // 8
    code = int.from_bytes(data[:pos].ljust(pos, b"\0"), "big")
    rng = _RC_MASK
    top = _RC_TOP
    out = [0] * n
    br = bisect.bisect_right
    for i in range(n):
        r = rng // total
        v = code // r
        if v >= total:
            raise DataError("corrupt range-coded stream")
        s = br(cum, v) - 1
        out[i] = s
        code -= r * cum[s]
        rng = r * f[s]
        while rng < top:
            code = ((code << 8) | (data[pos] if pos < nbytes else 0)) & _RC_MASK
            pos += 1
            rng <<= 8
    return np.asarray(out, dtype=np.int64)


def empirical_entropy_bits(symbols) -> float:
    """``n * H(p_hat)`` in bits: the ideal static code length of the sequence given its own counts."""
    s = np.asarray(symbols).reshape(-1)
    if s.size == 0:
        return 0.0
    _, c = np.unique(s, return_counts=True)
    p = c / s.size
    return float(-(c * np.log2(p)).sum())


# ====================================================================== symbol streams
def _huffman_stream_bits(counts: np.ndarray) -> tuple[int, np.ndarray]:
    """Exact bits of a Huffman-coded stream (table + codes) for the given symbol counts."""
    L = huffman_code_lengths(counts)
    lmax = int(L.max()) if L.size else 0
    A = counts.size
    table = elias_gamma_bits(lmax + 1) + (max(1, int(A - 1).bit_length()) if lmax == 0 else
                                          A * int(lmax).bit_length())
    return int(table + int((counts * L).sum())), L


def _write_stream(w: BitWriter, sym: np.ndarray, A: int, coder: str, *, table_part: str) -> None:
    """Write ``sym`` (values in [0, A)) as a Huffman or range-coded stream; the table is booked under
    ``table_part``, the payload under the writer's current part."""
    counts = np.bincount(sym, minlength=A).astype(np.int64)
    payload_part = w.part
    if coder == "huffman":
        L = huffman_code_lengths(counts)
        lmax = int(L.max())
        if lmax > 62:
            raise InvalidParameterError("Huffman code longer than 62 bits; stream too large")
        w.part = table_part
        w.write_gamma(lmax + 1)
        if lmax == 0:
            w.write(int(np.flatnonzero(counts)[0]), max(1, int(A - 1).bit_length()))
            w.part = payload_part
            return
        w.write_array(L, int(lmax).bit_length())
        w.part = payload_part
        codes = canonical_huffman(L)
        w.write_array(codes[sym], L[sym])
    else:
        w.part = table_part
        w.write_delta(counts + 1)
        data = range_encode(sym, counts)
        w.part = payload_part
        w.write_delta(len(data) + 1)
        w.write_bytes(data)


def _read_stream(r: BitReader, n: int, A: int, coder: str) -> np.ndarray:
    if coder == "huffman":
        lmax = r.read_gamma() - 1
        if lmax > 62:
            raise DataError(f"corrupt Huffman table (max length {lmax})")
        if lmax == 0:
            s = r.read(max(1, int(A - 1).bit_length()))
            if s >= A:
                raise DataError("corrupt Huffman table (symbol out of range)")
            return np.full(n, s, dtype=np.int64)
        L = r.read_array(A, int(lmax).bit_length())
        if L.max() != lmax or np.sum(np.ldexp(1.0, -L[L > 0])) > 1.0:
            raise DataError("corrupt Huffman table (lengths violate the Kraft inequality)")
        return _huffman_decode(r, L, n)
    counts = np.array([r.read_delta() - 1 for _ in range(A)], dtype=np.int64)
    if int(counts.sum()) != n:
        raise DataError(f"corrupt range-coder table: counts sum to {int(counts.sum())}, expected {n}")
    nbytes = r.read_delta() - 1
    data = r.read_bytes(nbytes)
    return range_decode(data, counts, n)


def _gap_symbols(pos: np.ndarray, b: int) -> tuple[np.ndarray, int]:
    """Gap symbols over alphabet 2^b for sorted flat positions: skip s (< 2^b - 1) then a weight, or the
    escape 2^b - 1 = skip 2^b - 1 positions without a weight. Returns (symbols, n_escapes)."""
    esc = (1 << b) - 1
    skip = np.diff(np.concatenate([[-1], pos])) - 1
    n_esc = skip // esc
    rest = skip - n_esc * esc
    total_esc = int(n_esc.sum())
    m = pos.size
    sym = np.full(m + total_esc, esc, dtype=np.int64)
    final_idx = np.cumsum(n_esc + 1) - 1  # each weight's symbol comes after its escapes
    sym[final_idx] = rest
    return sym, total_esc


def _positions_from_gaps(sym: np.ndarray, b: int, numel: int, m: int) -> np.ndarray:
    esc = (1 << b) - 1
    is_w = sym != esc
    if int(is_w.sum()) != m:
        raise DataError("corrupt position stream (wrong number of weights)")
    adv = np.where(is_w, sym + 1, esc)
    pos = np.cumsum(adv)[is_w] - 1
    if pos.size and (pos[-1] >= numel):
        raise DataError("corrupt position stream (position beyond the layer)")
    return pos


def _entropy_cost(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    return float(-(c * np.log2(c / n)).sum()) + float(np.sum(elias_delta_bits(counts + 1)))


# ====================================================================== model encoder
@dataclass(frozen=True)
class CodeLength:
    """Exact length of :func:`encode`'s output.

    ``total_bits`` is the number of bits written *before* zero padding to whole bytes (so
    ``len(encode(m)) == ceil(total_bits / 8)``); it includes everything needed to decode given the
    architecture: header, codebooks, code tables, sizes, positions, indices, biases and a CRC-32.
    ``per_layer`` maps layer path to its bits (global header excluded); ``parts`` splits the total into
    ``header``, ``codebook``, ``positions``, ``indices``, ``tables``, ``bias``.
    """

    total_bits: int
    per_layer: dict[str, int] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)
    coder: str = "huffman"

    @property
    def total_bytes(self) -> int:
        return (self.total_bits + 7) // 8

    def to_dict(self) -> dict:
        return {"total_bits": self.total_bits, "per_layer": dict(self.per_layer), "parts": dict(self.parts),
                "coder": self.coder}


def _check_coder(coder: str) -> str:
    if coder not in _CODERS:
        raise InvalidParameterError(f"coder must be one of {_CODERS}; got {coder!r}")
    return coder


def _encode(module: nn.Module | Network, coder: str) -> BitWriter:
    coder = _check_coder(coder)
    net = Network.from_module(module)
    net.require_parameters_in_layers(method="encode / code length (Occam, Zhou 2019 bounds)")
    check_finite_module(net.module)
    dtypes = {ly.weight.dtype for ly in net.layers}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise InvalidParameterError(f"encode supports models whose weights are all float32 or all float64; "
                                    f"got {sorted(str(d) for d in dtypes)}")
    dtype = next(iter(dtypes))
    np_dt = np.dtype(">f4") if dtype == torch.float32 else np.dtype(">f8")
    w = BitWriter()
    w.write_bytes(_MAGIC)
    w.write(_VERSION, 8)
    w.write(0, 32)  # CRC placeholder, patched in encode()
    w.write(_CODERS.index(coder), 1)
    w.write(_DTYPES.index(dtype), 2)
    w.write_delta(len(net.layers))
    for ly in net.layers:
        w.layer = ly.path
        w.part = "header"
        m_ = ly.module
        pruned = is_pruned(m_)
        eff = _effective(ly).reshape(-1)
        if pruned:
            mk = m_.weight_mask.detach().reshape(-1)
            if not bool(((mk == 0) | (mk == 1)).all()):
                raise InvalidParameterError(f"mask of layer {ly.path!r} must contain only 0 and 1")
            pos_t = torch.nonzero(mk != 0).reshape(-1)
        else:
            pos_t = torch.nonzero(eff != 0).reshape(-1)
        numel = int(eff.numel())
        pos = pos_t.cpu().numpy().astype(np.int64)
        m = int(pos.size)
        vals = eff[pos_t].cpu().numpy()
        has_bias = ly.bias is not None
        w.write(int(pruned), 1)
        w.write(int(has_bias), 1)
        w.write_delta(numel)
        w.write_delta(m + 1)
        if m > 0:
            book, idx = np.unique(vals, return_inverse=True)
            K = int(book.size)
            if K > MAX_CODEBOOK:
                raise InvalidParameterError(
                    f"layer {ly.path!r} has {K} distinct weight values (> {MAX_CODEBOOK}); the model is not "
                    "quantized: call prunebound.coding.quantize_module(module, bits=...) before encoding")
            w.write_delta(K)
            w.part = "codebook"
            w.write_bytes(book.astype(np_dt).tobytes())
            if m < numel:
                _write_positions(w, pos, numel, coder)
            if K > 1:
                w.part = "indices"
                _write_stream(w, idx.reshape(-1).astype(np.int64), K, coder, table_part="tables")
        if has_bias:
            w.part = "bias"
            b = ly.bias.detach().cpu().numpy()
            half = bool(np.array_equal(b.astype(np.float16).astype(b.dtype), b))
            w.write(int(half), 1)
            w.write_bytes(b.astype(">f2" if half else np_dt).tobytes())
    w.layer = None
    w.part = "header"
    return w


def _write_positions(w: BitWriter, pos: np.ndarray, numel: int, coder: str) -> None:
    """Choose the shorter of a bitmap and Huffman/range-coded gaps (best ``b``), exactly counted."""
    best_b, best_cost = None, None
    for b in range(1, min(_MAX_GAP_BITS, max(1, int(numel).bit_length())) + 1):
        sym, n_esc = _gap_symbols(pos, b)
        counts = np.bincount(sym, minlength=1 << b)
        if coder == "huffman":
            cost = _huffman_stream_bits(counts)[0]
        else:
            cost = _entropy_cost(counts) + 8
        cost += elias_gamma_bits(b) + elias_delta_bits(n_esc + 1)
        if best_cost is None or cost < best_cost:
            best_b, best_cost = b, cost
    trial = _TaggingWriter()
    trial.part = "positions"
    sym, n_esc = _gap_symbols(pos, best_b)
    trial.write_gamma(best_b)
    trial.write_delta(n_esc + 1)
    _write_stream(trial, sym, 1 << best_b, coder, table_part="tables")
    w.part = "header"
    if trial.bit_length < numel:
        w.write(1, 1)
        # replay the trial chunks with their accounting
        for chunk_part, chunk in _replay(trial):
            w.part = chunk_part
            w.write_bits(chunk)
    else:
        w.write(0, 1)
        w.part = "positions"
        bm = np.zeros(numel, dtype=np.uint8)
        bm[pos] = 1
        w.write_bits(bm)


class _TaggingWriter(BitWriter):
    """A BitWriter that also remembers the part of every chunk (for replaying a trial encoding)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def _add(self, bits: np.ndarray) -> None:
        if bits.size:
            self.tags.append(self.part)
        super()._add(bits)


def _replay(trial: BitWriter):
    return list(zip(trial.tags, trial._chunks))


def encode(module: nn.Module | Network, *, coder: str = "huffman") -> bytes:
    """Encode a (pruned, quantized) model's weighted layers to bytes; see the module docstring's format.

    Needs at most ``2^16`` distinct values per layer (call :func:`quantize_module` first); raises
    :class:`InvalidParameterError` otherwise and :class:`DataError` for NaN/inf parameters. ``coder`` is
    ``"huffman"`` (canonical Huffman codes) or ``"arithmetic"`` (range coder with transmitted counts).
    The result, with ``prunebound.network.architecture(module)``, is all :func:`decode` needs.
    """
    w = _encode(module, coder)
    data = bytearray(w.getvalue())
    crc = zlib.crc32(bytes(data[8:]))
    data[4:8] = crc.to_bytes(4, "big")
    return bytes(data)


def code_length_bits(module: nn.Module | Network, *, coder: str = "huffman") -> CodeLength:
    """Exact bit count of :func:`encode` (before byte padding), per layer and per part.

    Runs the encoder itself, so ``8 * len(encode(m)) - 7 <= total_bits <= 8 * len(encode(m))``.
    """
    w = _encode(module, coder)
    return CodeLength(int(w.bit_length), dict(w.per_layer), dict(w.parts), coder)


def decode(blob: bytes, architecture: dict) -> nn.Module:
    """Rebuild the model encoded by :func:`encode` from ``blob`` and ``architecture``
    (``prunebound.network.architecture(module)``).

    Effective weights, biases and masks equal the encoded model's exactly (pruned layers come back pruned
    with the same mask). If the architecture contains BatchNorm, the returned module is its folded form
    (as :class:`Network` sees it). Raises :class:`DataError` for a corrupt, truncated or mismatching blob.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise DataError(f"blob must be bytes; got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 8 or blob[:3] != _MAGIC:
        raise DataError("not a prunebound weight code (bad magic or too short)")
    if blob[3] != _VERSION:
        raise DataError(f"unsupported code version {blob[3]}; this prunebound reads version {_VERSION}")
    if zlib.crc32(blob[8:]) != int.from_bytes(blob[4:8], "big"):
        raise DataError("corrupt or truncated weight code (CRC-32 mismatch)")
    module = build_architecture(architecture)
    net = Network.from_module(module)
    try:
        return _decode_into(net, blob)
    except DataError:
        raise
    except (ValueError, IndexError, OverflowError, RuntimeError) as e:  # defensive: never crash
        raise DataError(f"corrupt weight code: {e}") from e


def _decode_into(net: Network, blob: bytes) -> nn.Module:
    r = BitReader(blob)
    r.pos = 64
    coder = _CODERS[r.read(1)]
    dcode = r.read(2)
    if dcode >= len(_DTYPES):
        raise DataError(f"corrupt header: dtype code {dcode}")
    dtype = _DTYPES[dcode]
    np_dt = np.dtype(">f4") if dtype == torch.float32 else np.dtype(">f8")
    nb = np_dt.itemsize
    n_layers = r.read_delta()
    if n_layers != len(net.layers):
        raise DataError(f"code holds {n_layers} weighted layers; the architecture has {len(net.layers)}")
    module = net.module.to(dtype)
    masks = {}
    for ly in net.layers:
        pruned = r.read(1)
        has_bias = r.read(1)
        numel = r.read_delta()
        if numel != ly.n_weights or bool(has_bias) != (ly.bias is not None):
            raise DataError(f"layer {ly.path!r}: code has {numel} weights (bias={bool(has_bias)}); the "
                            f"architecture has {ly.n_weights} (bias={ly.bias is not None})")
        m = r.read_delta() - 1
        if m > numel:
            raise DataError(f"layer {ly.path!r}: {m} coded positions > {numel} weights")
        flat = np.zeros(numel, dtype=np.float64 if dtype == torch.float64 else np.float32)
        pos = np.zeros(0, dtype=np.int64)
        if m > 0:
            K = r.read_delta()
            if K > min(m, MAX_CODEBOOK):
                raise DataError(f"layer {ly.path!r}: codebook size {K} impossible for {m} weights")
            book = np.frombuffer(r.read_bytes(K * nb), dtype=np_dt).astype(flat.dtype)
            if m == numel:
                pos = np.arange(numel, dtype=np.int64)
            elif r.read(1) == 0:
                pos = np.flatnonzero(r.read_bits(numel))
                if pos.size != m:
                    raise DataError(f"layer {ly.path!r}: bitmap has {pos.size} ones, expected {m}")
            else:
                b = r.read_gamma()
                if b > _MAX_GAP_BITS:
                    raise DataError(f"layer {ly.path!r}: corrupt gap width {b}")
                n_esc = r.read_delta() - 1
                if n_esc > numel:
                    raise DataError(f"layer {ly.path!r}: corrupt escape count {n_esc}")
                sym = _read_stream(r, m + n_esc, 1 << b, coder)
                pos = _positions_from_gaps(sym, b, numel, m)
            idx = _read_stream(r, m, K, coder) if K > 1 else np.zeros(m, dtype=np.int64)
            flat[pos] = book[idx]
        bias = None
        if has_bias:
            bdt = np.dtype(">f2") if r.read(1) else np_dt
            bias = np.frombuffer(r.read_bytes(ly.bias.numel() * bdt.itemsize), dtype=bdt).astype(flat.dtype)
        with torch.no_grad():
            ly.module.weight.copy_(torch.from_numpy(flat).reshape(ly.module.weight.shape))
            if bias is not None:
                ly.module.bias.copy_(torch.from_numpy(bias.copy()))
        if pruned:
            mk = np.zeros(numel, dtype=flat.dtype)
            mk[pos] = 1
            masks[ly.path] = torch.from_numpy(mk).reshape(ly.module.weight.shape)
        elif m > 0 and bool((flat[pos] == 0).any()):
            raise DataError(f"layer {ly.path!r}: corrupt code (zero value at a nonzero position)")
    if masks:
        apply_masks(module, masks)
    return module
