"""Certified uniform approximation error of a strong-lottery-ticket construction on an input ball.

For a bias-free ReLU target ``f(x) = W_l s(W_{l-1} ... s(W_1 x))`` and a ticket built by
:mod:`prunebound.subnet_search.construct` (two masked random layers ``V_i s(U_i .)`` per target layer, each
hidden
neuron of ``U_i`` seeing at most one input coordinate), the pair computes exactly

    g_i(x) = P_i x^+ + N_i x^-,      P_i = V_i (U_i)^+,  N_i = V_i (-U_i)^+,

(``x = x^+ - x^-``), because ``s(u x_k) = u^+ x_k^+ + (-u)^+ x_k^-``. Against ``W_i x = W_i x^+ - W_i x^-``:

    ||g_i(x) - W_i x||_2 <= ||D_i||_2 ||x||_2,     D_i = [ |P_i - W_i| , |N_i + W_i| ]   (d_i x 2 d_{i-1}),

since ``|| [x^+; x^-] ||_2 = ||x||_2``. This is the per-weight error argument of Pensia et al. (2020, proof of
Thm. 1; Malach et al. 2020, Lemma A.x) made explicit, with the operator norm instead of a union of per-weight
bounds. Propagating through the layers (ReLU is 1-Lipschitz with ``s(0) = 0``): with ``B_0 = r`` (the radius),
``B_i = ||W_i||_2 B_{i-1}`` (a bound on the target's activations) and ``e_0 = 0``,

    e_i = ||W_i||_2 e_{i-1} + ||D_i||_2 (B_{i-1} + e_{i-1}),

so ``sup_{||x||_2 <= r} ||f(x) - g(x)||_2 <= e_l``. All in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunebound.certificate import BoundTerms
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_positive,
    check_positive_int,
)
from prunebound.network import Network

__all__ = ["ApproximationError", "approximation_error", "target_weights", "pair_error_matrices",
           "collapsed_pair", "propagate_bound", "sample_ball", "sample_ball_parts", "spectral_norm_bound",
           "single_thread"]

_U64 = 2.0**-53  # unit roundoff of float64


@contextmanager
def single_thread():
    """Run small dense linear algebra on one thread: a 300 x 300 ``eigvalsh`` takes ~6 ms on one thread and
    seconds with two OpenMP threads on cores other processes also use (spinning workers)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def spectral_norm_bound(d: torch.Tensor) -> float:
    """A rigorous upper bound on ``||D||_2`` (float64), from the Gram matrix instead of an SVD.

    ``||D||_2^2 = lambda_max(G)``, ``G = D D^T`` on the shorter side (``k`` = the other side). The computed
    ``G^`` satisfies ``|G^ - G| <= gamma_k |D| |D|^T`` entrywise (Higham, Thm. 3.5; ``gamma_k = k u / (1 - k
    u)``), so ``||G^ - G||_2 <= gamma_k ||D||_F^2``; the symmetric eigensolver is backward stable, its largest
    eigenvalue within ``p(r) u ||G^||_2 <= p(r) u ||G^||_F`` of ``lambda_max(G^)`` (taken with the generous
    ``p(r) = 10 r``, ``r`` = the shorter side). Hence ``||D||_2 <= sqrt(lambda^ + gamma_k ||D||_F^2 + 10 r u
    ||G^||_F)``, rounded up. The slack is relatively ~``k u rank(D)``, far below anything a certificate shows;
    the Gram route is ~10x faster than ``svdvals`` and stays fast when the BLAS threads compete for cores.
    """
    d = d.detach().to(torch.float64)
    if d.numel() == 0:
        return 0.0
    if d.shape[0] > d.shape[1]:
        d = d.T
    r, k = d.shape
    with single_thread():
        g = d @ d.T
        lam = float(torch.linalg.eigvalsh(g)[-1])
        fro2 = float((d * d).sum())
    gamma = k * _U64 / (1 - k * _U64)
    slack = gamma * fro2 * (1 + 4 * _U64) + 10 * r * _U64 * float(torch.linalg.matrix_norm(g)) + fro2 * 4 * _U64
    return math.sqrt(max(lam, 0.0) + slack) * (1 + 4 * _U64)


@dataclass(frozen=True)
class ApproximationError:
    """``analytic``: certified sup of ``||f(x) - g(x)||_2`` over the ball; ``empirical``: max over samples;
    ``per_layer``: ``e_i`` after each target layer; ``d_norms``: ``||D_i||_2``."""

    analytic: float
    empirical: float
    per_layer: tuple[float, ...]
    d_norms: tuple[float, ...]
    radius: float
    n_samples: int
    seed: int | None

    @property
    def holds(self) -> bool:
        return self.empirical <= self.analytic

    def to_bound_terms(self) -> BoundTerms:
        parts = {f"e_{i + 1}": e for i, e in enumerate(self.per_layer)}
        parts.update({f"D_{i + 1}_norm": d for i, d in enumerate(self.d_norms)})
        return BoundTerms(self.analytic, self.empirical, self.analytic, parts)

    def to_dict(self) -> dict:
        return {"analytic": self.analytic, "empirical": self.empirical, "per_layer": list(self.per_layer),
                "d_norms": list(self.d_norms), "radius": self.radius, "n_samples": self.n_samples,
                "seed": self.seed, "holds": self.holds}


def target_weights(target: nn.Module | Network) -> list[torch.Tensor]:
    """The weight matrices (float64) of a bias-free fully connected ReLU target; raises otherwise.

    Requirements: only ``Linear`` layers, a ReLU after every layer except the last (none after the last),
    biases absent or zero (the constructions of Pensia/Malach/Orseau are stated without biases)."""
    net = Network.from_module(target)
    net.check_finite()
    # a residual add / cat / branch after a layer leaves its `activation` None: only a chain is an MLP target
    net.require_chain(method="the strong-LTH ticket constructions (Malach / Pensia / Orseau)")
    ws = []
    for ly in net.layers:
        if ly.kind != "linear":
            raise UnsupportedLayerError(
                f"layer {ly.path!r} is {ly.kind}; ticket constructions need Linear layers"
            )
        last = ly.index == len(net.layers) - 1
        if any(op not in ("relu", "identity", "dropout") for op in ly.ops_after):
            raise UnsupportedLayerError(f"layer {ly.path!r} is followed by {ly.ops_after}; only ReLU allowed")
        if (ly.activation == "relu") == last:
            raise UnsupportedLayerError(
                f"layer {ly.path!r}: a ReLU must follow every layer except the last (found "
                f"activation={ly.activation!r})"
            )
        if ly.bias is not None and bool((ly.bias != 0).any()):
            raise UnsupportedLayerError(
                f"layer {ly.path!r} has a non-zero bias; the constructions assume bias-free targets"
            )
        ws.append(ly.weight.detach().to(torch.float64).reshape(ly.fan_out, ly.fan_in).clone())
    return ws


def collapsed_pair(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P, N) = (V U^+, V (-U)^+)`` in float64 for a pair whose hidden neurons each see at most one input,
    without the dense product: neuron ``j`` with input ``k(j)`` and weight ``u_j`` adds ``v_{:j} u_j^+`` to
    column ``k(j)`` of ``P`` (``index_add``), so the cost is ``O(d_out h)`` instead of ``O(d_out h d_in)``.
    Raises :class:`UnsupportedLayerError` naming the first neuron that sees two inputs."""
    if u.shape[0] != v.shape[1]:
        raise DataError(f"pair shapes U{tuple(u.shape)}, V{tuple(v.shape)} do not chain")
    nz = u != 0
    cnt = nz.sum(1)
    if bool((cnt > 1).any()):
        j = int(torch.nonzero(cnt > 1)[0, 0])
        raise UnsupportedLayerError(
            f"the certificate needs each hidden neuron of U to see at most one input; neuron {j} sees "
            f"{int(cnt[j])}")
    k = nz.to(torch.uint8).argmax(1)  # the input of each neuron (0 for neurons without input: weight 0)
    uk = u.gather(1, k[:, None])[:, 0].to(torch.float64)
    v64 = v.to(torch.float64)
    d_out, d_in = v.shape[0], u.shape[1]
    p = torch.zeros(d_out, d_in, dtype=torch.float64).index_add_(1, k, v64 * uk.clamp(min=0))
    n_ = torch.zeros(d_out, d_in, dtype=torch.float64).index_add_(1, k, v64 * (-uk).clamp(min=0))
    return p, n_


def pair_error_matrices(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``D = [V U^+ - W, V (-U)^+ + W]`` for a masked pair; checks one input per hidden neuron.

    With one input per hidden neuron, ``relu(u x_j) = u^+ relu(x_j) + (-u)^+ relu(-x_j)``, so the pair computes
    ``P relu(x) + N relu(-x)`` with ``P = V U^+``, ``N = V (-U)^+`` (:func:`collapsed_pair`), while the target
    is ``W x = W relu(x) - W relu(-x)``. The error is ``D [relu(x); relu(-x)]`` and
    ``||[relu(x); relu(-x)]|| = ||x||``, hence ``||error|| <= ||D||_2 ||x||``. The signed ``D`` is used because
    ``||D||_2 <= || |D| ||_2`` (entrywise absolute values can only increase the spectral norm).
    """
    w = w.to(torch.float64)
    if u.shape[0] != v.shape[1] or v.shape[0] != w.shape[0] or u.shape[1] != w.shape[1]:
        raise DataError(
            f"pair shapes U{tuple(u.shape)}, V{tuple(v.shape)} do not fit target W{tuple(w.shape)}"
        )
    p, nn_ = collapsed_pair(u, v)
    return torch.cat([p - w, nn_ + w], dim=1)


def propagate_bound(w_norms, d_norms, radius: float) -> list[float]:
    """``e_i = ||W_i|| e_{i-1} + ||D_i|| (B_{i-1} + e_{i-1})``, ``B_i = ||W_i|| B_{i-1}``, ``B_0 = r``."""
    e, b, out = 0.0, float(radius), []
    for wn, dn in zip(w_norms, d_norms):
        e = float(wn) * e + float(dn) * (b + e)
        b = float(wn) * b
        out.append(e)
    return out


def sample_ball(n: int, d: int, radius: float, seed: int | None) -> torch.Tensor:
    """Half of the points uniform on the sphere of radius ``r`` (where the error of a positively homogeneous
    bias-free network is largest), half uniform in the ball (radius ``r U^{1/d}``). float64.
    ``= cat(directions) * radii`` of :func:`sample_ball_parts`."""
    dirs: list[torch.Tensor] = []
    rad = sample_ball_parts(n, d, radius, seed, lambda start, u: dirs.append(u))
    return torch.cat(dirs) * rad


def sample_ball_parts(n: int, d: int, radius: float, seed: int | None,
                      on_chunk: Callable[[int, torch.Tensor], None], chunk: int = 8192) -> torch.Tensor:
    """:func:`sample_ball` in pieces: calls ``on_chunk(start, directions)`` with the unit directions of rows
    ``start, start + 1, ...`` chunk by chunk, then returns the radii ``(n, 1)``; the points are ``direction *
    radius``, the same numbers :func:`sample_ball` returns (``torch.randn`` fills blocks of 16 numbers from
    the stream in order, so chunks whose sizes are multiples of 16 numbers, the last one at least 16,
    continue the one stream exactly). Memory: one chunk instead of ``n x d``."""
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    step = max(16, chunk // 16 * 16)
    s = 0
    while s < n:
        e = min(n, s + step)
        if e < n and (n - e) * d < 16:  # never leave a tail of fewer than 16 numbers
            e = n
        x = torch.randn(e - s, d, generator=g, dtype=torch.float64)
        on_chunk(s, x / x.norm(dim=1, keepdim=True).clamp(min=1e-300))
        s = e
    rad = torch.full((n, 1), float(radius), dtype=torch.float64)
    half = n // 2
    rad[half:] *= torch.rand(n - half, 1, generator=g, dtype=torch.float64) ** (1.0 / d)
    return rad


def _forward64(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    net = Network.from_module(module)
    ws = [ly.weight.detach().to(torch.float64).reshape(ly.fan_out, ly.fan_in) for ly in net.layers]
    acts = [ly.activation for ly in net.layers]
    # exact compaction: a hidden unit whose outgoing weights are all zero does not affect the output
    for i in range(len(ws) - 1, 0, -1):
        keep = (ws[i] != 0).any(dim=0)
        ws[i] = ws[i][:, keep]
        ws[i - 1] = ws[i - 1][keep]
    h = x
    for w, a in zip(ws, acts):
        h = h @ w.T
        if a == "relu":
            h = h.clamp(min=0)
    return h


def approximation_error(target: nn.Module | Network, ticket, radius: float | None = None, *,
                        n_samples: int = 100_000, seed: int | None = 0) -> ApproximationError:
    """Analytic sup-error certificate (module docstring) and empirical max error on ``n_samples`` points.

    ``ticket`` is a :class:`~prunebound.subnet_search.construct.Ticket` or a masked ``nn.Module`` of the same
    layout (``2 l`` bias-free Linear layers). ``radius`` defaults to ``ticket.radius``. The empirical error is
    computed in float64 from the effective (masked) weights; it must not exceed the analytic bound.
    """
    module = getattr(ticket, "module", ticket)
    if radius is None:
        radius = getattr(ticket, "radius", None)
        if radius is None:
            raise InvalidParameterError("radius is required when ticket is a plain module")
    radius = check_positive("radius", radius)
    n_samples = check_positive_int("n_samples", n_samples)
    ws = target_weights(target)
    tnet = Network.from_module(module)
    if len(tnet.layers) != 2 * len(ws):
        raise DataError(
            f"ticket has {len(tnet.layers)} weighted layers; expected {2 * len(ws)} (two per target)"
        )
    tl = tnet.layers
    for ly in tl:
        if ly.bias is not None and bool((ly.bias != 0).any()):
            raise UnsupportedLayerError(f"ticket layer {ly.path!r} has a non-zero bias")
    d_norms, w_norms = [], []
    for i, w in enumerate(ws):
        u = tl[2 * i].weight_matrix().detach()
        v = tl[2 * i + 1].weight_matrix().detach()
        d = pair_error_matrices(u, v, w)
        d_norms.append(spectral_norm_bound(d))
        w_norms.append(spectral_norm_bound(w))
    per = propagate_bound(w_norms, d_norms, radius)
    # guard against float64 rounding in the empirical pass: relative 1e-12 of the output scale
    x = sample_ball(n_samples, ws[0].shape[1], radius, seed)
    emp = 0.0
    for s in range(0, n_samples, 8192):
        xs = x[s : s + 8192]
        f = _forward64(target if isinstance(target, nn.Module) else target.module, xs)
        g = _forward64(module, xs)
        emp = max(emp, float((f - g).norm(dim=1).max()))
    analytic = per[-1] * (1 + 1e-12) + 1e-14 * float(np.prod(w_norms)) * radius
    return ApproximationError(analytic, emp, tuple(per), tuple(d_norms), radius, n_samples, seed)
