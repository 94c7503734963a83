"""Weight sharing: per-layer 1-D k-means quantization of the surviving weights, and centroid fine-tuning.

Deep Compression (Han, Mao & Dally, ICLR 2016), Sec. 3:

* :func:`quantize_module` -- per-layer weight sharing of the surviving (unmasked, nonzero) weights with 1-D
  k-means (:func:`kmeans_1d`, *linear* initialisation between min and max, Lloyd steps), ``k = 2^bits`` clusters;
* :func:`finetune_centroids` -- SGD on the shared centroids; the gradient of a centroid is the sum of the
  gradients of the weights in its cluster (Han et al. 2016, Eq. 3), assignments are kept.

The quantized model is what :mod:`prunebound.coding`'s exact encoder writes; :data:`MAX_CODEBOOK` is the most
distinct values per layer either accepts.  Everything here is re-exported by :mod:`prunebound.coding`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_positive_int,
)
from prunebound.network import Network, is_pruned, refresh_masked_weights

__all__ = ["kmeans_1d", "LayerQuantization", "QuantizeReport", "quantize_module", "finetune_centroids",
           "MAX_CODEBOOK"]

MAX_CODEBOOK = 2**16  # more distinct values per layer than this: "not quantized"


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
