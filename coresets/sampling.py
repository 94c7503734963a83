"""The shared sampling core: sample-size formulas and one vectorised importance sampler.

Sample sizes (``S`` = total sensitivity of the set being sampled, ``eta`` = number of neurons the union bound
runs over, ``ceil`` everywhere):

* CoreNet (Baykal et al., ICLR 2019, Algorithm 2 "SPARSIFY", line 4)::

      m = ceil( 8 * S * K * log(8 * eta / delta) / eps^2 )

  ``K`` is the constant of the paper's Assumption 1 (concentration of the empirical sensitivity); the arXiv v1
  form uses ``K = log(eta * eta_star)``. With the sensitivities dominating on x, Bernstein's inequality for
  the importance-sampling mean (each term in ``[0, S z]``, variance ``<= S z^2``) gives failure
  ``<= 2 exp(-m eps^2 / (2 S (1 + eps/3)))``, which this ``m`` makes ``<= delta / (4 eta)`` for ``K >= 1``.
* PFP / SiPP (Liebenwein et al., ICLR 2020, Algorithm 1 / Theorem 1; Baykal et al. 2022, SiPP) use the
  Bernstein form::

      m = ceil( K * (6 + 2 eps) * S * log(8 * eta / delta) / eps^2 )

  with ``K = 3`` as in the authors' reference implementation (torchprune ``pfp_allocator``; see the report).
* Data-independent coresets (Mussay et al., ICLR 2020, Theorem 3, via the epsilon-sample bound of Braverman,
  Feldman and Lang 2016, Theorem 5.5)::

      m = ceil( c * t / eps^2 * (d * log t + log(1 / delta)) )

  with ``t`` the total sensitivity, ``d`` the VC dimension of one neuron's range space (``fan_in + 1``) and
``c`` a universal constant the theorem leaves unspecified (default 1).

:func:`importance_sample` draws, for many rows at once, ``m_r`` i.i.d. indices from a row distribution ``q_r``
(with replacement) and returns the counts; :func:`sparsify_rows` turns counts into the unbiased estimator
``w~_j = w_j * count_j / (m q_j)`` (so that ``E[w~ . a] = w . a`` for every input ``a``).
"""

from __future__ import annotations

import math

import torch

from prunebound.errors import InvalidParameterError, check_positive, check_probability

__all__ = [
    "make_generator",
    "corenet_sample_size",
    "bernstein_sample_size",
    "epsilon_sample_size",
    "importance_sample",
    "sparsify_rows",
]


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A ``torch.Generator`` from an int seed (a fresh random one for ``None``); generators pass through."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def _as_f64(s) -> torch.Tensor:
    t = torch.as_tensor(s, dtype=torch.float64)
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise InvalidParameterError("total sensitivity must be finite and >= 0")
    return t


_MAX_COUNT = 2**62


def _to_count(m: torch.Tensor) -> torch.Tensor:
    """Float sample sizes to int64, clamped to 2^62 (a huge m for tiny eps would otherwise overflow to < 0; any
    m above a row's number of candidates keeps that row dense anyway)."""
    return torch.clamp(m, max=float(_MAX_COUNT)).to(torch.int64)


def corenet_sample_size(total_sensitivity, *, eps: float, delta: float, eta: int, K: float = 1.0
                        ) -> torch.Tensor:
    """CoreNet's ``m = ceil(8 S K log(8 eta / delta) / eps^2)`` (elementwise over ``total_sensitivity``)."""
    check_positive("eps", eps)
    check_probability("delta", delta)
    check_positive("K", K)
    if int(eta) < 1:
        raise InvalidParameterError(f"eta must be a positive integer; got {eta!r}")
    s = _as_f64(total_sensitivity)
    return _to_count(torch.ceil(8.0 * s * K * math.log(8.0 * eta / delta) / eps**2))


def bernstein_sample_size(total_sensitivity, *, eps: float, delta: float, eta: int, K: float = 3.0
                          ) -> torch.Tensor:
    """PFP/SiPP's ``m = ceil(K (6 + 2 eps) S log(8 eta / delta) / eps^2)``."""
    check_positive("eps", eps)
    check_probability("delta", delta)
    check_positive("K", K)
    if int(eta) < 1:
        raise InvalidParameterError(f"eta must be a positive integer; got {eta!r}")
    s = _as_f64(total_sensitivity)
    return _to_count(torch.ceil(K * (6.0 + 2.0 * eps) * s * math.log(8.0 * eta / delta) / eps**2))


def epsilon_sample_size(total_sensitivity: float, *, eps: float, delta: float, d: int, c: float = 1.0) -> int:
    """Mussay et al.'s ``m = ceil(c t / eps^2 (d log t + log(1/delta)))``."""
    check_positive("eps", eps)
    check_probability("delta", delta)
    check_positive("c", c)
    t = float(total_sensitivity)
    if not math.isfinite(t) or t < 0:
        raise InvalidParameterError(f"total sensitivity must be finite and >= 0; got {t!r}")
    if t == 0:
        return 0
    return int(math.ceil(c * t / eps**2 * (d * math.log(max(t, 1.0)) + math.log(1.0 / delta))))


def importance_sample(q: torch.Tensor, m: torch.Tensor, seed: int | torch.Generator | None) -> torch.Tensor:
    """Counts of ``m[r]`` i.i.d. draws (with replacement) from each row distribution ``q[r]``.

    ``q`` is ``(R, n)`` non-negative (rows are normalised here; all-zero rows or ``m[r] = 0`` give zero
    counts);
    returns float64 counts ``(R, n)`` with row sums ``m`` (for rows with mass). One ``torch.multinomial``
    call. ``seed``: an int, or a ``torch.Generator`` to continue a stream shared across calls.
    """
    if q.dim() != 2:
        raise InvalidParameterError(f"q must be a (rows, n) matrix; got shape {tuple(q.shape)}")
    m = torch.as_tensor(m, dtype=torch.int64).reshape(-1)
    if m.numel() != q.shape[0]:
        raise InvalidParameterError(f"m has {m.numel()} entries; q has {q.shape[0]} rows")
    if bool((m < 0).any()):
        raise InvalidParameterError("sample sizes m must be >= 0")
    q = q.detach().double()
    counts = torch.zeros_like(q)
    mass = q.sum(1)
    live = (mass > 0) & (m > 0)
    if not bool(live.any()):
        return counts
    idx = torch.nonzero(live).squeeze(1)
    M = int(m[idx].max())
    draws = torch.multinomial(q[idx] / mass[idx, None], M, replacement=True, generator=make_generator(seed))
    valid = (torch.arange(M)[None, :] < m[idx, None]).double()
    sub = torch.zeros(idx.numel(), q.shape[1], dtype=torch.float64)
    sub.scatter_add_(1, draws, valid)
    counts[idx] = sub
    return counts


def sparsify_rows(w: torch.Tensor, s: torch.Tensor, m: torch.Tensor, seed: int | torch.Generator | None,
                  *, dense_when_saturated: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sample each row of ``w`` with ``q_r = s_r / sum(s_r)`` and ``m_r`` draws; reweight.

    Returns ``(w_new, mask)``: ``w_new_j = w_j count_j / (m q_j)`` on sampled entries, 0 elsewhere; ``mask``
    is 1 where ``w_new != 0`` was sampled. With ``dense_when_saturated`` a row whose ``m_r`` is at least its
    number of candidate entries (``s > 0``) is kept exactly (no error, no compression possible) -- the cap
    ``m <= nnz`` of the reference implementation. Entries with ``s = 0`` are dropped (they never contribute
    on S). All rows are processed in one vectorised call.
    """
    s = s.detach().double()
    m = torch.as_tensor(m, dtype=torch.int64).reshape(-1)
    nnz = (s > 0).sum(1)
    saturated = (m >= nnz) if dense_when_saturated else torch.zeros_like(m, dtype=torch.bool)
    m_eff = torch.where(saturated, torch.zeros_like(m), m)
    # the same draws as importance_sample(s, m_eff, seed) (one multinomial call on the same probabilities),
    # but the reweighting touches only the sampled entries instead of dense (R, n) float64 matrices
    tot = s.sum(1)
    w_new = torch.zeros_like(w.detach())
    mask = torch.zeros_like(w_new)
    live = (tot > 0) & (m_eff > 0)
    if bool(live.any()):
        all_live = bool(live.all())
        idx = torch.arange(s.shape[0]) if all_live else torch.nonzero(live).squeeze(1)
        M = int(m_eff[idx].max())
        p = s / tot[:, None] if all_live else s[idx] / tot[idx, None]
        draws = torch.multinomial(p, M, replacement=True, generator=make_generator(seed))
        del p
        n = s.shape[1]
        keys = (torch.arange(idx.numel())[:, None] * n + draws)[torch.arange(M)[None, :] < m_eff[idx, None]]
        keys, cnt = torch.unique(keys, sorted=True, return_counts=True)  # distinct sampled entries
        rows, cols = idx[keys // n], keys % n
        q = s[rows, cols] / tot[rows].clamp_min(1e-300)
        scale = cnt.double() / (m_eff[rows].clamp_min(1).double() * q.clamp_min(1e-300))
        w_new[rows, cols] = (w.detach()[rows, cols].double() * scale).to(w.dtype)
        mask[rows, cols] = 1
    keep_dense = saturated[:, None] & (s > 0)
    if bool(saturated.any()):
        w_new = torch.where(keep_dense, w.detach(), w_new)
        mask = torch.where(keep_dense, torch.ones_like(mask), mask)
    return w_new, mask
