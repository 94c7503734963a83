"""Structured random projections ``P: R^d -> R^D`` for training in a random subspace, ``θ = θ0 + P w``.

Two seeded projections whose memory is far below the ``D * d`` floats of a dense Gaussian matrix:

* :class:`KroneckerSumProjection` -- Lotfi et al. (NeurIPS 2022, "PAC-Bayes compression bounds so tight that
  they can explain generalization", Sec. 4 / App. "Kronecker sum projector"): reshape the ``D`` coordinates
  into an ``a x b`` grid (``a = ceil(sqrt(D))``, ``b = ceil(D / a)``) and let column ``k`` of ``P`` be the
  Kronecker sum of two Gaussian columns, ``P[:, k] = (R1[:, k] ⊗ 1_b + 1_a ⊗ R2[:, k]) / sqrt(2ab)`` truncated
  to ``D`` rows, i.e. ``P w = vec(R1 w 1_b^T + 1_a (R2 w)^T) / sqrt(2ab)``.  Memory
  ``(a + b) d ~ 2 sqrt(D) d`` floats, matvec ``O(sqrt(D) d + D)``.
* :class:`FastfoodProjection` -- Le, Sarlós & Smola (ICML 2013), as used for intrinsic dimension by Li et al.
  (ICLR 2018): ``m = ceil(D / d')`` stacked blocks ``V_j = H G_j Π_j H B_j`` of size ``d' = 2^ceil(log2 d)``
  (``H`` the unnormalised Sylvester Walsh-Hadamard matrix, ``B_j`` random signs, ``Π_j`` a random permutation,
  ``G_j`` a Gaussian diagonal), applied to ``w`` zero-padded to ``d'``, concatenated and truncated to ``D``.
  Memory ``O(D + d)`` (three length-``m d'`` vectors), matvec ``O(D log d')``.  Deviation from Le et al.: the
  chi-distributed row scaling ``S`` is omitted (not needed for a subspace; only the span matters), and each
  block is scaled by ``1 / sqrt(m d' ||G_j||^2)`` so every column of ``P`` (before truncation) has unit norm.

Both are deterministic functions of ``(D, d, seed)`` (a ``torch.Generator`` seeded with ``seed``), so they
belong to the data-independent prior.  ``dense()`` materialises ``P`` for tests on tiny cases only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunebound.errors import InvalidParameterError, check_positive_int

__all__ = ["fwht", "KroneckerSumProjection", "FastfoodProjection", "make_projection", "PROJECTIONS"]


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised fast Walsh-Hadamard transform along the last dimension (length a power of two).

    Equals ``x @ H`` with ``H`` the Sylvester-ordered Hadamard matrix (``scipy.linalg.hadamard``), which is
    symmetric.  ``log2(n)`` vectorised butterfly stages, differentiable.
    """
    n = x.shape[-1]
    if n & (n - 1) or n == 0:
        raise InvalidParameterError(f"fwht needs a power-of-two length, got {n}")
    lead = x.shape[:-1]
    h = 1
    y = x
    while h < n:
        y = y.reshape(*lead, n // (2 * h), 2, h)
        a, b = y[..., 0, :], y[..., 1, :]
        y = torch.stack((a + b, a - b), dim=-2)
        h *= 2
    return y.reshape(*lead, n)


class _Projection(nn.Module):
    D: int
    d: int
    seed: int

    def _check(self, w: torch.Tensor) -> None:
        if w.ndim != 1 or w.shape[0] != self.d:
            raise InvalidParameterError(f"w must have shape ({self.d},), got {tuple(w.shape)}")

    def dense(self) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def n_floats(self) -> int:
        """Number of stored floats/ints (the projection's memory footprint in elements)."""
        return sum(b.numel() for b in self.buffers())


class KroneckerSumProjection(_Projection):
    """Lotfi et al. (2022) Kronecker-sum projector (see the module docstring).  ``forward(w) = P w``."""

    def __init__(self, D: int, d: int, *, seed: int) -> None:
        super().__init__()
        self.D = check_positive_int("D", D)
        self.d = check_positive_int("d", d)
        self.seed = int(seed)
        a = math.isqrt(D - 1) + 1 if D > 1 else 1
        b = -(-D // a)
        self.a, self.b = a, b
        g = torch.Generator().manual_seed(self.seed)
        self.register_buffer("R1", torch.randn(a, d, generator=g))
        self.register_buffer("R2", torch.randn(b, d, generator=g))
        self.scale = 1.0 / math.sqrt(2.0 * a * b)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w)
        u = self.R1.to(w.dtype) @ w
        v = self.R2.to(w.dtype) @ w
        return ((u[:, None] + v[None, :]).reshape(-1)[: self.D]) * self.scale

    def dense(self) -> torch.Tensor:
        """``P`` as a dense ``(D, d)`` matrix (tests only)."""
        full = (self.R1[:, None, :] + self.R2[None, :, :]).reshape(self.a * self.b, self.d)
        return full[: self.D] * self.scale


class FastfoodProjection(_Projection):
    """Stacked Fastfood transforms (Le et al. 2013; Li et al. 2018); see the module docstring."""

    def __init__(self, D: int, d: int, *, seed: int) -> None:
        super().__init__()
        self.D = check_positive_int("D", D)
        self.d = check_positive_int("d", d)
        self.seed = int(seed)
        dp = 1 << (d - 1).bit_length() if d > 1 else 1
        m = -(-D // dp)
        self.dp, self.m = dp, m
        g = torch.Generator().manual_seed(self.seed)
        self.register_buffer("B", (torch.randint(0, 2, (m, dp), generator=g) * 2 - 1).to(torch.float32))
        self.register_buffer("perm", torch.argsort(torch.rand(m, dp, generator=g), dim=1))
        G = torch.randn(m, dp, generator=g)
        norms = (G * G).sum(1, keepdim=True)  # per-block ||G_j||^2
        self.register_buffer("G", G / torch.sqrt(m * dp * norms))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w)
        x = torch.zeros(self.dp, dtype=w.dtype, device=w.device)
        x = torch.cat((w, x[self.d:])) if self.d < self.dp else w
        y = fwht(self.B.to(w.dtype) * x)  # (m, dp): H B_j x for every block
        y = torch.gather(y, 1, self.perm)  # Π_j
        y = fwht(self.G.to(w.dtype) * y)  # H G_j
        return y.reshape(-1)[: self.D]

    def dense(self) -> torch.Tensor:
        """``P`` as a dense ``(D, d)`` matrix, built block by block from explicit matrices (tests only)."""
        n = self.dp
        H = torch.ones(1, 1)
        while H.shape[0] < n:
            H = torch.cat((torch.cat((H, H), 1), torch.cat((H, -H), 1)), 0)
        blocks = []
        eye = torch.eye(n)
        for j in range(self.m):
            Pi = eye[self.perm[j]]
            blocks.append(H @ torch.diag(self.G[j]) @ Pi @ H @ torch.diag(self.B[j]))
        return torch.cat(blocks, 0)[: self.D, : self.d]


PROJECTIONS = {"kronecker_sum": KroneckerSumProjection, "fastfood": FastfoodProjection}


def make_projection(kind: str, D: int, d: int, *, seed: int) -> _Projection:
    """The projection ``kind`` (``"kronecker_sum"`` or ``"fastfood"``) from ``R^d`` to ``R^D``, seeded."""
    if kind not in PROJECTIONS:
        raise InvalidParameterError(f"projection must be one of {sorted(PROJECTIONS)}, got {kind!r}")
    return PROJECTIONS[kind](D, d, seed=seed)
