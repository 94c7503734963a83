"""Sensitivities: how much one edge, neuron or filter can contribute to a unit's pre-activation.

All functions are vectorised over weights and neurons; the only Python loops run over cache-sized blocks of
rows and chunks of data points, so time grows linearly with the parameter count and memory stays at two
weight-sized buffers. The edge sensitivities need ``max_x inv_i(x) a_j(x)`` for every weight, a max-times
matrix product; it is computed exactly by a threshold algorithm over the ``K = 16`` points of largest
``inv_i`` and of largest ``a_j`` with a proof of optimality per entry (:func:`_max_prod`; ``O(K)`` instead of
``O(|S|)`` work per weight, bit-identical to the brute force, which remains the fallback).

* :func:`edge_sensitivity` -- CoreNet's empirical sensitivity (Baykal et al., ICLR 2019, Algorithm 2
  "SPARSIFY", line 2): for neuron ``i``, the positive-weight edges ``W+_i = {j : w_ij > 0}`` and the
  negative-weight edges ``W-_i`` are treated separately, and for ``j`` in ``W+_i``::

      s_ij = max_{x in S}  w_ij a_j(x) / sum_{k in W+_i} w_ik a_k(x)        (a(x) >= 0, i.e. after a ReLU)

  (and the same with ``-w`` on ``W-_i``).  Edges with zero weight get sensitivity 0.  Signed inputs are
  split into their positive and negative parts, each a non-negative point of its own (:func:`signed_split`).
* :func:`abs_edge_sensitivity` -- SiPP's sensitivity (Baykal et al. 2021/2022, "SiPPing neural networks",
  Sec. 3): ``s_ij = max_{x in S} |w_ij a_j(x)| / sum_k |w_ik a_k(x)|``, valid for signed inputs.
* :func:`channel_sensitivity` -- PFP's filter/neuron sensitivity (Liebenwein et al., ICLR 2020, Sec. 2,
  "empirical sensitivity of a filter"): for producer channel ``j`` feeding consumer layer ``l+1``::

      s_j = max_{x in S} max_{i, p}  c_ijp(x) / sum_k c_ikp(x),   c_ijp(x) = sum_{kernel} |w_ij.| |a_j.(x)|_p

  where ``p`` ranges over output patches (one for a Linear consumer).
* :func:`neuron_sensitivity_data_independent` -- Mussay et al. (ICLR 2020, Algorithm 1 "CORESET" with the
  per-layer extension "CORESET PER LAYER"): neuron ``p`` of layer ``l`` with incoming row ``(w_p, b_p)`` and
  outgoing weights ``u_ip``::

      s_p = max_i |u_ip| ||(w_p, b_p)|| / sum_q |u_iq| ||(w_q, b_q)||

  (the activation bound ``beta * ||p||`` of a 1-Lipschitz activation with ``phi(0) = 0`` over inputs of norm
``<= beta`` cancels in the ratio).

:func:`edge_sensitivity_naive` is the per-neuron reference loop used by tests and the benchmark.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from prunebound.errors import DataError, InvalidParameterError

__all__ = [
    "edge_sensitivity",
    "signed_split",
    "abs_edge_sensitivity",
    "edge_sensitivity_naive",
    "channel_sensitivity",
    "channel_contributions",
    "neuron_sensitivity_data_independent",
]

_CHUNK_ELEMS = 2**24  # numbers materialised per chunk of data points


def _check_inputs(weight: torch.Tensor, inputs: torch.Tensor) -> None:
    if weight.dim() != 2:
        raise DataError(f"weight must be a (fan_out, fan_in) matrix; got shape {tuple(weight.shape)}")
    if inputs.dim() != 2 or inputs.shape[1] != weight.shape[1]:
        raise DataError(
            f"inputs must have shape (n_points, {weight.shape[1]}); got {tuple(inputs.shape)}"
        )
    if inputs.shape[0] == 0:
        raise DataError("inputs is empty (0 points); sensitivities need at least one point")
    if not bool(torch.isfinite(weight).all()) or not bool(torch.isfinite(inputs).all()):
        raise DataError("weight or inputs contain NaN/inf")


_BLOCK_ELEMS = 2**15  # weights per row block (fits in L1/L2 with the per-chunk temporary)


def _max_prod_dense(inv: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``M_ij = max_x inv_i(x) a_j(x)`` for ``inv`` (S, out) and ``a`` (S, in), both non-negative, by brute
    force. Cache-blocked: rows in blocks of ``~2^15 / fan_in``, points in chunks of 8 (a ``(8, rows, fan_in)``
    temporary reduced by ``amax``), so the running maximum stays in cache."""
    out, n = inv.shape[1], a.shape[1]
    rows = max(1, _BLOCK_ELEMS // max(n, 1))
    chunk = 8
    best = torch.zeros(out, n, dtype=a.dtype)
    for r0 in range(0, out, rows):
        b = best[r0 : r0 + rows]
        ib = inv[:, r0 : r0 + rows]
        for c0 in range(0, a.shape[0], chunk):
            t = (ib[c0 : c0 + chunk, :, None] * a[c0 : c0 + chunk, None, :]).amax(0)
            torch.maximum(b, t, out=b)
    return best


_TOP = 16  # candidate points per row and per column in :func:`_max_prod`


def _max_prod(inv: torch.Tensor, a: torch.Tensor, top_a: tuple | None = None) -> torch.Tensor:
    """``M_ij = max_x inv_i(x) a_j(x)`` (non-negative ``inv`` (S, out), ``a`` (S, in)); exact, bit for bit
    the brute-force maximum of the rounded products (:func:`_max_prod_dense`).

    Threshold algorithm (Fagin's TA on two sorted lists): with ``T_i`` the ``K`` points of largest
    ``inv_i`` and ``A_j`` the ``K`` points of largest ``a_j``, the maximum over ``T_i u A_j`` is compared with
    ``inv_i^(K+1) a_j^(K+1)`` (the (K+1)-th largest values): any point outside both lists has a product at
    most that (rounding to nearest is monotone), so where the candidates' maximum reaches it, it is the
    maximum over all ``S`` points. The remaining entries (rare: points whose ``inv`` and ``a`` are both
    mediocre but whose product wins) are evaluated over all points. Cost ``O(K out in)`` instead of
    ``O(S out in)``. ``top_a``: ``a.topk(_TOP + 1, dim=0)`` when the caller already has it.
    """
    S, out = inv.shape
    n = a.shape[1]
    K = _TOP
    if S <= 4 * K or out * n == 0:
        return _max_prod_dense(inv, a)
    va, ia = a.topk(K + 1, dim=0) if top_a is None else top_a  # (K+1, in)
    vi, ii = inv.topk(K + 1, dim=0)  # (K+1, out)
    best = _gather_max(a, ii, vi, K)  # (out, in): over T_i
    torch.maximum(best, _gather_max(inv, ia, va, K).T, out=best)  # over A_j
    thr = vi[K][:, None] * va[K][None, :]
    fail = torch.nonzero(best < thr)
    if fail.shape[0] > out * n // 8:  # candidates do not settle it (flat data): brute force
        return _max_prod_dense(inv, a)
    if fail.shape[0]:
        step = max(1, (1 << 22) // S)
        invT, aT = inv.T.contiguous(), a.T.contiguous()
        for f0 in range(0, fail.shape[0], step):
            fi, fj = fail[f0 : f0 + step, 0], fail[f0 : f0 + step, 1]
            best[fi, fj] = (invT[fi] * aT[fj]).amax(1)
    return best


def _gather_max(src: torch.Tensor, idx: torch.Tensor, val: torch.Tensor, K: int) -> torch.Tensor:
    """``out[r, :] = max_{k < K} val[k, r] * src[idx[k, r], :]`` (``src`` (S, c), ``idx``/``val`` (>= K, R)).
    Rows gathered by ``index_select`` into one reused cache-sized buffer (a few rows at a time)."""
    R, c = idx.shape[1], src.shape[1]
    out = torch.empty(R, c, dtype=src.dtype)
    step = max(1, (1 << 17) // max(K * c, 1))
    buf = torch.empty(K * min(step, R), c, dtype=src.dtype)
    for r0 in range(0, R, step):
        r1 = min(R, r0 + step)
        b = buf[: K * (r1 - r0)]
        torch.index_select(src, 0, idx[:K, r0:r1].reshape(-1), out=b)
        b = b.view(K, r1 - r0, c)
        b.mul_(val[:K, r0:r1, None])
        torch.amax(b, 0, out=out[r0:r1])
    return out


def _max_ratio(w: torch.Tensor, a: torch.Tensor, top_a: tuple | None = None) -> torch.Tensor:
    """``max_x w_ij a_j(x) / sum_k w_ik a_k(x)`` for non-negative ``w`` (out, in) and ``a`` (S, in).

    Uses ``max_x w_ij a_j(x) / d_i(x) = w_ij * max_x a_j(x) / d_i(x)``; a zero denominator contributes 0.
    The maximum of the products is :func:`_max_prod`.
    """
    denom = a @ w.T  # (S, out)
    tiny = torch.finfo(denom.dtype).tiny
    inv = torch.where(denom > 0, 1.0 / denom.clamp_min(tiny), torch.zeros_like(denom))
    return _max_prod(inv, a, top_a) * w


def signed_split(inputs: torch.Tensor) -> torch.Tensor:
    """``[a+; a-]``: every point ``a`` becomes two non-negative points ``a+ = max(a, 0)``, ``a- = max(-a, 0)``
    (``a = a+ - a-``); for non-negative inputs the inputs are returned unchanged."""
    if not bool((inputs < 0).any()):
        return inputs
    return torch.cat([inputs.clamp_min(0), (-inputs).clamp_min(0)])


def edge_sensitivity(weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """CoreNet empirical sensitivities (see module docstring), shape ``(fan_out, fan_in)``.

    ``inputs`` are the layer's inputs on the sensitivity batch S (``(|S|, fan_in)``). The entry ``s_ij`` is
    relative to the sign group of ``w_ij``, so ``s[w > 0]`` summed over a row is the total sensitivity of
    ``W+_i``. Signed inputs (a first layer on raw data) are split, ``a = a+ - a-``: the maximum runs over the
    ``2|S|`` non-negative points ``a+(x), a-(x)`` (:func:`signed_split`), so one importance sample serves
    both non-negative problems ``sum_j w_ij a+_j`` and ``sum_j w_ij a-_j`` that share the weights (see
    :mod:`prunebound.coresets.corenet`). For non-negative inputs this is exactly CoreNet's definition.
    """
    _check_inputs(weight, inputs)
    w = weight.detach()
    a = signed_split(inputs.detach().to(w.dtype))
    top_a = a.topk(_TOP + 1, dim=0) if a.shape[0] > 4 * _TOP else None  # shared by both sign groups
    return _max_ratio(w.clamp_min(0), a, top_a) + _max_ratio((-w).clamp_min(0), a, top_a)


def abs_edge_sensitivity(weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """SiPP sensitivities ``max_x |w_ij a_j(x)| / sum_k |w_ik a_k(x)|``, shape ``(fan_out, fan_in)``."""
    _check_inputs(weight, inputs)
    w = weight.detach()
    return _max_ratio(w.abs(), inputs.detach().to(w.dtype).abs())


def edge_sensitivity_naive(weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Reference implementation of :func:`edge_sensitivity`: a Python loop over neurons (slow)."""
    _check_inputs(weight, inputs)
    w = weight.detach()
    a = signed_split(inputs.detach().to(w.dtype))
    s = torch.zeros_like(w)
    for i in range(w.shape[0]):
        for sign in (1.0, -1.0):
            wi = (sign * w[i]).clamp_min(0)
            g = a * wi  # (S, in)
            d = g.sum(1, keepdim=True)
            ratio = torch.where(d > 0, g / d.clamp_min(torch.finfo(w.dtype).tiny), torch.zeros_like(g))
            s[i] += ratio.amax(0) * (wi > 0)
    return s


def channel_contributions(weight: torch.Tensor, inputs: torch.Tensor, kind: str, n_channels: int,
                          conv: dict | None = None) -> torch.Tensor:
    """``c[x, i, j, p] = sum_kernel |w_ij.| |a_j.(x)|`` for a consumer layer (see module docstring).

    ``weight`` is the consumer's weight (PyTorch shape), ``inputs`` its inputs on S. For a Linear consumer the
    ``fan_in`` features are grouped channel-major into ``n_channels`` groups (as ``nn.Flatten`` lays them
    out).
    Returns ``(|S|, fan_out, n_channels, n_patches)``.
    """
    w = weight.detach().abs()
    a = inputs.detach().to(w.dtype).abs()
    if kind == "linear":
        out, fan_in = w.shape
        if fan_in % n_channels:
            raise InvalidParameterError(f"fan_in {fan_in} is not a multiple of n_channels={n_channels}")
        r = fan_in // n_channels
        return torch.einsum("xjr,ijr->xij", a.reshape(a.shape[0], n_channels, r),
                            w.reshape(out, n_channels, r))[..., None]
    conv = conv or {}
    if kind == "conv1d":
        a4, w4 = a[:, :, None, :], w[:, :, None, :]
        st, pad, dil = (1, conv["stride"][0]), (0, conv["padding"][0]), (1, conv["dilation"][0])
    elif kind == "conv2d":
        a4, w4 = a, w
        st, pad, dil = conv["stride"], conv["padding"], conv["dilation"]
    else:
        raise InvalidParameterError(f"unknown layer kind {kind!r}")
    k = tuple(w4.shape[2:])
    patches = F.unfold(a4, k, dilation=dil, padding=pad, stride=st)  # (S, C*kk, P)
    c_in = w4.shape[1]
    patches = patches.reshape(a.shape[0], c_in, math.prod(k), -1)
    return torch.einsum("xjkp,ijk->xijp", patches, w4.reshape(w4.shape[0], c_in, -1))


def channel_sensitivity(weight: torch.Tensor, inputs: torch.Tensor, kind: str, n_channels: int,
                        conv: dict | None = None) -> torch.Tensor:
    """PFP empirical sensitivity of each producer channel (length ``n_channels``), chunked over points."""
    if inputs.shape[0] == 0:
        raise DataError("inputs is empty (0 points); sensitivities need at least one point")
    if not bool(torch.isfinite(weight).all()) or not bool(torch.isfinite(inputs).all()):
        raise DataError("weight or inputs contain NaN/inf")
    per_point = max(1, weight.numel() * 8)
    chunk = max(1, _CHUNK_ELEMS // per_point)
    best = torch.zeros(n_channels, dtype=weight.dtype)
    for s in range(0, inputs.shape[0], chunk):
        c = channel_contributions(weight, inputs[s : s + chunk], kind, n_channels, conv)
        d = c.sum(2, keepdim=True)
        r = torch.where(d > 0, c / d.clamp_min(torch.finfo(c.dtype).tiny), torch.zeros_like(c))
        torch.maximum(best, r.amax(dim=(0, 1, 3)), out=best)
    return best


def neuron_sensitivity_data_independent(w_prev: torch.Tensor, b_prev: torch.Tensor | None,
                                        u_next: torch.Tensor) -> torch.Tensor:
    """Mussay et al. (2020) layer-wise neuron sensitivities ``s_p`` (length = number of neurons ``n``).

    ``w_prev`` (n, d) and ``b_prev`` (n,) define the neurons ``p = (w_p, b_p)``; ``u_next`` (k, n) are the
    next layer's weights. ``s_p = max_i |u_ip| ||p|| / sum_q |u_iq| ||q||`` (rows with zero sum are skipped).
    """
    if u_next.dim() != 2 or u_next.shape[1] != w_prev.shape[0]:
        raise DataError(f"u_next must be (k, {w_prev.shape[0]}); got {tuple(u_next.shape)}")
    rows = w_prev.detach()
    if b_prev is not None:
        rows = torch.cat([rows, b_prev.detach()[:, None]], 1)
    norms = rows.double().norm(dim=1)
    g = u_next.detach().double().abs() * norms[None, :]  # (k, n)
    d = g.sum(1, keepdim=True)
    r = torch.where(d > 0, g / d.clamp_min(1e-300), torch.zeros_like(g))
    return r.amax(0)
