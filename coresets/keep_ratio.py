"""Meeting a keep ratio without re-pruning: expected kept counts on cached sensitivities, and a root finder.

Every sampler here draws ``m`` indices i.i.d. (with replacement) from a row distribution ``q``; the expected
number of *distinct* kept entries of a row is (torchprune ``expected_unique``; see the PFP / SiPP papers'
budget search)::

    E[kept_r](m) = sum_j 1 - (1 - q_rj)^m           (= nnz_r when m >= nnz_r: the row is kept dense)

It is non-decreasing in ``m``, and every method's ``m`` is a non-increasing function of ``eps`` (CoreNet
``~ 1/eps^2``, the Bernstein form ``~ (6 + 2 eps)/eps^2``), so the expected kept fraction is a monotone
function of ``eps`` (a step function, because ``m`` is rounded up). :func:`solve_eps` finds the ``eps`` where
it crosses the requested keep ratio by Brent's method on ``log eps`` (scipy ``brentq``); sensitivities and all
other ``eps``-independent quantities are computed once (:class:`RowKeep` caches ``log(1 - q)``).

The expected count is taken on the sensitivities of the *dense* network; the methods recompute the
sensitivities of later layers on the already sparsified earlier ones, so the realised keep ratio of the one
pruning pass at the solved ``eps`` differs from the target by sampling noise and that drift;
:func:`prunebound.coresets.prune` corrects the target once or twice if the miss exceeds ``tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["RowKeep", "solve_eps"]


class RowKeep:
    """Expected distinct kept entries of importance-sampled rows with sensitivities ``s`` (``(R, n)``)."""

    def __init__(self, s: torch.Tensor):
        s = s.detach().to(torch.float64, copy=True)  # the in-place steps below must never touch the caller's s
        self.tot = s.sum(1)
        self.nnz = (s > 0).sum(1)
        q = s.div_(self.tot[:, None].clamp_min(1e-300))  # rows without mass: q = 0
        # log(1 - q) in float32 (the count is a sum of many terms; float32 rounding is far below one weight)
        self.log1mq = q.clamp_(max=1.0).neg_().log1p_().clamp_(min=-80.0).float()
        self._n = self.log1mq.shape[1]

    def expected(self, m: torch.Tensor) -> torch.Tensor:
        """``E[kept_r]`` per row for sample sizes ``m`` (``(R,)`` int); ``sum_j 1 - (1 - q_j)^m`` is
        evaluated as ``n - sum_j exp(m log(1 - q_j))`` (entries with ``q_j = 0`` add ``1 - 1 = 0``)."""
        m = torch.as_tensor(m, dtype=torch.int64).reshape(-1)
        # closed forms: m >= nnz keeps the row dense, m <= 1 keeps min(m, nnz) entries
        out = torch.minimum(m, self.nnz).double()
        rows = (m > 1) & (m < self.nnz)
        k = int(rows.sum())
        if k == 0:
            return out
        if k == m.numel():
            buf = torch.mul(self.log1mq, m.float()[:, None])
            return self._n - buf.exp_().sum(1).double()  # float32 row sums (pairwise; error ~1e-6 of a row)
        idx = torch.nonzero(rows).squeeze(1)
        buf = self.log1mq.index_select(0, idx).mul_(m[idx].float()[:, None])
        out[idx] = self._n - buf.exp_().sum(1).double()
        return out

    def expected_total(self, m: torch.Tensor) -> float:
        return float(self.expected(m).sum())

    def keep_probability(self, m: torch.Tensor) -> torch.Tensor:
        """Per-entry probability of being kept, ``(R, n)`` (rows with ``m >= nnz`` are dense)."""
        m = torch.as_tensor(m, dtype=torch.int64).reshape(-1)
        p = 1.0 - torch.exp(m.clamp(max=2**40).float()[:, None] * self.log1mq)
        dense = (m >= self.nnz)[:, None] & (self.log1mq < 0)
        return torch.where(dense, torch.ones_like(p), p).double()


def solve_eps(kept_fraction: Callable[[float], float], target: float, *, eps_range: tuple[float, float],
              maxiter: int = 60) -> float:
    """The ``eps`` in ``eps_range`` whose (non-increasing) ``kept_fraction(eps)`` is closest to ``target``.

    Brent's method on ``t = log eps`` for ``kept_fraction(e^t) - target``; at the end the bracket end whose
    value is closer to ``target`` is returned (the function is a step function, so an exact root may not
    exist). If ``target`` lies outside the reachable range, the nearer end of ``eps_range`` is returned.
    """
    from scipy.optimize import brentq

    lo, hi = math.log(eps_range[0]), math.log(eps_range[1])
    cache: dict[float, float] = {}

    def h(t: float) -> float:
        if t not in cache:
            cache[t] = kept_fraction(math.exp(t)) - target
        return cache[t]

    if h(lo) <= 0:
        return math.exp(lo)
    if h(hi) >= 0:
        return math.exp(hi)
    try:
        brentq(h, lo, hi, xtol=1e-3, rtol=1e-8, maxiter=maxiter)  # 0.1 % in eps
    except RuntimeError:  # not converged within maxiter: use the best point seen
        pass
    t_best = min(cache, key=lambda t: (abs(cache[t]), cache[t] < 0))
    return math.exp(t_best)
