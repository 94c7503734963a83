"""Random subset-sum: exact (meet-in-the-middle), MIP, greedy, and the Lueker (1998) experiment.

Problem. Given values ``a_1..a_n`` and a target ``z``, find ``S ⊆ [n]`` (optionally ``|S| <= k``) minimising
``|z - sum_{i in S} a_i|``.

* :func:`subset_sum_exact` -- meet-in-the-middle (Horowitz & Sahni 1974): split the values in two halves,
  enumerate the ``2^{n/2}`` half-sums of each, sort one side and, for every sum ``s_A`` of the other side,
  find the
  nearest ``s_B`` to ``z - s_A`` by binary search (``searchsorted``). ``O(2^{n/2} n)`` per target, vectorised
  over a
  batch of targets. Exact (up to float64 rounding of the sums) for ``n <= 40``.
* :func:`subset_sum_exact_many` -- the same, for many independent instances (a different value vector per
  target), as needed by the Pensia et al. (2020) construction.
* :func:`subset_sum_mip` -- the same problem as a mixed-integer program ``min s  s.t.  -s <= z - a^T x <= s,
  x in {0,1}^n`` solved by HiGHS (through cvxpy, or ``scipy.optimize.milp`` if cvxpy lacks HiGHS).
* :func:`subset_sum_greedy` -- a baseline: values by decreasing magnitude, each kept if it reduces the
residual.
* :func:`lueker_experiment` -- Lueker (1998), "Exponentially small bounds on the expected optimum of the
partition
  and subset sum problems" (Random Structures & Algorithms 12(1)); used by Pensia et al. (2020), Corollary
  3.3:
  ``n = O(log(1/eps))`` i.i.d. Uniform[-1, 1] samples eps-approximate *every* ``z in [-1, 1]`` with high
  probability. The experiment measures that probability against the reference curve ``n = C log2(1/eps)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from prunebound.errors import DataError, InvalidParameterError, check_positive_int, check_probability

__all__ = [
    "SubsetSumResult",
    "subset_sum_exact",
    "subset_sum_exact_many",
    "subset_sum_exact_batched",
    "subset_sum_brute_force",
    "subset_sum_mip",
    "subset_sum_greedy",
    "LuekerResult",
    "lueker_experiment",
    "LUEKER_C",
]

MAX_EXACT_N = 40
#: Constant of the reference curve n*(eps) = LUEKER_C * log2(1/eps). Lueker (1998) and Pensia et al. (2020,
#: Cor. 3.3) prove n = O(log(1/eps)) without an explicit small constant; the counting argument
#: (2^n subset sums must cover [-1, 1] at spacing 2 eps) gives C >= 1. We use C = 2 (documented choice; the
#: measured 0.9-crossing lies within a factor 2 of it, see tests/subnet_search/test_subset_sum.py).
LUEKER_C = 2.0


@dataclass(frozen=True)
class SubsetSumResult:
    """Best subsets for a batch of targets: ``masks[t, i]`` is True if value ``i`` is used for target ``t``;
    ``sums[t] = values @ masks[t]``, ``errors[t] = |targets[t] - sums[t]|``."""

    masks: np.ndarray
    sums: np.ndarray
    errors: np.ndarray
    targets: np.ndarray
    method: str
    k: int | None = None

    def to_dict(self) -> dict:
        return {"masks": self.masks.astype(int).tolist(), "sums": self.sums.tolist(),
                "errors": self.errors.tolist(), "targets": self.targets.tolist(), "method": self.method,
                "k": self.k}


# ---------------------------------------------------------------------- validation helpers
def _as_values(values, *, max_n: int | None = MAX_EXACT_N) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise DataError(f"values must be a 1-D array; got shape {v.shape}")
    if v.size == 0:
        raise DataError("values is empty; need at least one candidate value")
    if not np.isfinite(v).all():
        raise DataError("values contains NaN or inf")
    if max_n is not None and v.size > max_n:
        raise InvalidParameterError(
            f"values has n={v.size} entries; meet-in-the-middle supports n <= {max_n} (use subset_sum_mip)"
        )
    return v


def _as_targets(targets) -> tuple[np.ndarray, bool]:
    t = np.asarray(targets, dtype=np.float64)
    scalar = t.ndim == 0
    t = t.reshape(-1)
    if t.size == 0:
        raise DataError("targets is empty")
    if not np.isfinite(t).all():
        raise DataError("targets contains NaN or inf")
    return t, scalar


def _check_k(k: int | None, n: int) -> int | None:
    if k is None:
        return None
    k = check_positive_int("k", k, minimum=0)
    return min(k, n)


def _bits(m: int) -> np.ndarray:
    """All 2^m subsets of m items as a (2^m, m) boolean matrix (row r = binary digits of r)."""
    r = np.arange(1 << m, dtype=np.int64)
    return ((r[:, None] >> np.arange(m, dtype=np.int64)) & 1).astype(bool)


# ---------------------------------------------------------------------- exact (meet in the middle)
def _nearest(sorted_b: torch.Tensor, q: torch.Tensor, *, index: bool = True
             ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """For each query, index (into ``sorted_b``, last dim) and absolute distance of the nearest element.

    ``sorted_b`` is 1-D or has the leading dims of ``q``. With ``index=False`` only distances are returned."""
    m = sorted_b.shape[-1]
    idx = torch.searchsorted(sorted_b, q.contiguous())
    hi = idx.clamp_(max=m) - 1  # reuse the buffer: hi = idx - 1 in [-1, m-1]
    lo = hi.clamp(min=0)
    hi = hi.add_(1).clamp_(max=m - 1)
    if sorted_b.dim() == 1:
        bhi, blo = sorted_b[hi], sorted_b[lo]
    else:
        bhi, blo = torch.gather(sorted_b, -1, hi), torch.gather(sorted_b, -1, lo)
    dhi, dlo = bhi.sub_(q).abs_(), blo.sub_(q).abs_()
    if not index:
        return None, torch.minimum(dhi, dlo)
    use_lo = dlo < dhi
    return torch.where(use_lo, lo, hi), torch.where(use_lo, dlo, dhi)


def subset_sum_exact(values, targets, *, k: int | None = None, chunk: int = 1 << 22) -> SubsetSumResult:
    """Closest subset sum to each target, exactly, by meet-in-the-middle (vectorised over targets).

    Args:
        values: ``n <= 40`` candidate values (float64).
        targets: a scalar or 1-D batch of targets.
        k: optional maximum subset size ``|S| <= k``.
        chunk: bound on the number of (target, half-sum) pairs handled at once (memory).

    Returns a :class:`SubsetSumResult`; ties between equally close subsets are broken arbitrarily.
    Cost: ``O(2^{n/2} (n + T log 2^{n/2}))`` for ``T`` targets; no Python loop over subsets.
    With ``k``: the half-sums are grouped by popcount; for the A-half subsets of size ``c`` the B-half is
    searched among subsets of size ``<= k - c`` (one sorted array per size budget).
    """
    v = _as_values(values)
    t, _ = _as_targets(targets)
    n = v.size
    k = _check_k(k, n)
    n1 = n // 2
    n2 = n - n1
    bits_a, bits_b = _bits(n1), _bits(n2)
    sums_a = bits_a.astype(np.float64) @ v[:n1]
    sums_b = bits_b.astype(np.float64) @ v[n1:]
    pop_a, pop_b = bits_a.sum(1), bits_b.sum(1)
    T = t.size
    best_err = np.full(T, np.inf)
    best_a = np.zeros(T, dtype=np.int64)
    best_b = np.zeros(T, dtype=np.int64)
    tt = torch.from_numpy(t)
    # groups: (A indices, B indices allowed for them)
    if k is None:
        groups = [(np.arange(sums_a.size), np.arange(sums_b.size))]
    else:
        groups = []
        for c in range(0, min(k, n1) + 1):
            a_idx = np.flatnonzero(pop_a == c)
            b_idx = np.flatnonzero(pop_b <= k - c)
            if a_idx.size and b_idx.size:
                groups.append((a_idx, b_idx))
    for a_idx, b_idx in groups:
        order = np.argsort(sums_b[b_idx], kind="stable")
        b_sorted_idx = b_idx[order]
        b_sorted = torch.from_numpy(sums_b[b_sorted_idx])
        sa = torch.from_numpy(sums_a[a_idx])
        step = max(1, chunk // max(1, a_idx.size))
        for s in range(0, T, step):
            q = tt[s : s + step, None] - sa[None, :]  # (Tc, |A|)
            _, d = _nearest(b_sorted, q, index=False)
            dmin, amin = d.min(dim=1)
            dmin_np = dmin.numpy()
            better = dmin_np < best_err[s : s + step]
            sl = np.arange(s, min(s + step, T))[better]
            best_err[sl] = dmin_np[better]
            am = amin.numpy()[better]
            best_a[sl] = a_idx[am]
            # the B partner of the winning A sum: one more search per target
            j, _ = _nearest(b_sorted, tt[sl] - sa[am])
            best_b[sl] = b_sorted_idx[j.numpy()]
    masks = np.concatenate([bits_a[best_a], bits_b[best_b]], axis=1)
    sums = masks.astype(np.float64) @ v
    return SubsetSumResult(masks, sums, np.abs(t - sums), t, "meet_in_the_middle", k)


def subset_sum_exact_many(values, targets, *, chunk: int = 1 << 22) -> SubsetSumResult:
    """Exact closest subset sum for ``P`` independent instances: ``values`` is ``(P, n)``,
    ``targets`` ``(P,)``.

    Same meet-in-the-middle as :func:`subset_sum_exact`, batched over instances with a row-wise
    ``torch.searchsorted`` (each instance has its own sorted half-sums). ``n <= 30`` (memory ``P * 2^{n/2}``).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise DataError(f"values must be a non-empty (P, n) array; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise DataError("values contains NaN or inf")
    P, n = v.shape
    if n > 30:
        raise InvalidParameterError(f"subset_sum_exact_many supports n <= 30 values per instance; got {n}")
    t, _ = _as_targets(targets)
    if t.size != P:
        raise DataError(f"targets has {t.size} entries; values has {P} rows (one target per instance)")
    n1 = n // 2
    bits_a, bits_b = _bits(n1), _bits(n - n1)
    ba = torch.from_numpy(bits_a.astype(np.float64))
    bb = torch.from_numpy(bits_b.astype(np.float64))
    vt, tt = torch.from_numpy(v), torch.from_numpy(t)
    best_a = np.zeros(P, dtype=np.int64)
    best_b = np.zeros(P, dtype=np.int64)
    step = max(1, chunk // max(bits_a.shape[0], bits_b.shape[0]))
    for s in range(0, P, step):
        vs = vt[s : s + step]
        sa = vs[:, :n1] @ ba.T  # (Pc, 2^n1)
        sb = vs[:, n1:] @ bb.T  # (Pc, 2^n2)
        sb_sorted, sb_order = torch.sort(sb, dim=1)
        q = tt[s : s + step, None] - sa
        j, d = _nearest(sb_sorted, q)
        amin = d.argmin(dim=1)
        jb = j.gather(1, amin[:, None])[:, 0]
        best_a[s : s + step] = amin.numpy()
        best_b[s : s + step] = sb_order.gather(1, jb[:, None])[:, 0].numpy()
    masks = np.concatenate([bits_a[best_a], bits_b[best_b]], axis=1)
    sums = (masks * v).sum(1)
    return SubsetSumResult(masks, sums, np.abs(t - sums), t, "meet_in_the_middle_many", None)


def subset_sum_brute_force(values, targets, *, k: int | None = None) -> SubsetSumResult:
    """Reference solver: enumerate all ``2^n`` subsets (vectorised; ``n <= 24``). For tests and benchmarks."""
    v = _as_values(values, max_n=24)
    t, _ = _as_targets(targets)
    k = _check_k(k, v.size)
    bits = _bits(v.size)
    if k is not None:
        bits = bits[bits.sum(1) <= k]
    sums_all = bits.astype(np.float64) @ v
    order = np.argsort(sums_all, kind="stable")
    j, _ = _nearest(torch.from_numpy(sums_all[order]), torch.from_numpy(t))
    masks = bits[order[j.numpy()]]
    sums = masks.astype(np.float64) @ v
    return SubsetSumResult(masks, sums, np.abs(t - sums), t, "brute_force", k)


# ---------------------------------------------------------------------- MIP
def subset_sum_mip(values, target: float, *, k: int | None = None, time_limit: float | None = 60.0,
                   backend: str = "auto") -> SubsetSumResult:
    """Closest subset sum as a mixed-integer program, solved by HiGHS.

    ``min_{x in {0,1}^n, s}  s   s.t.  z - a^T x <= s,  a^T x - z <= s  (and 1^T x <= k)``.
    ``backend``: ``"cvxpy"`` (cvxpy's HIGHS interface), ``"scipy"`` (``scipy.optimize.milp``, also HiGHS) or
    ``"auto"`` (cvxpy if it lists HIGHS, else scipy). The MIP gaps are set to 0 so that the optimum is exact
    up
    to HiGHS's feasibility tolerances; the reported error is recomputed in float64 from the rounded ``x``.
    """
    v = _as_values(values, max_n=None)
    t, scalar = _as_targets(target)
    if t.size != 1:
        raise DataError(f"subset_sum_mip solves one target at a time; got {t.size}")
    z = float(t[0])
    n = v.size
    k = _check_k(k, n)
    if backend not in ("auto", "cvxpy", "scipy"):
        raise InvalidParameterError(f"backend must be 'auto', 'cvxpy' or 'scipy'; got {backend!r}")
    if backend == "auto":
        import cvxpy as cp

        backend = "cvxpy" if "HIGHS" in cp.installed_solvers() else "scipy"
    opts = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0}
    if backend == "cvxpy":
        import cvxpy as cp

        x = cp.Variable(n, boolean=True)
        s = cp.Variable()
        cons = [z - v @ x <= s, v @ x - z <= s]
        if k is not None:
            cons.append(cp.sum(x) <= k)
        prob = cp.Problem(cp.Minimize(s), cons)
        if time_limit is not None:
            opts["time_limit"] = float(time_limit)
        prob.solve(solver=cp.HIGHS, **opts)
        if x.value is None:
            raise InvalidParameterError(f"HiGHS (cvxpy) returned no solution: status {prob.status}")
        xs = np.round(np.asarray(x.value)).astype(bool)
    else:
        from scipy.optimize import Bounds, LinearConstraint, milp

        c = np.zeros(n + 1)
        c[-1] = 1.0
        A = [np.concatenate([-v, [-1.0]]), np.concatenate([v, [-1.0]])]
        lb, ub = [-np.inf, -np.inf], [-z, z]
        if k is not None:
            A.append(np.concatenate([np.ones(n), [0.0]]))
            lb.append(-np.inf)
            ub.append(k)
        integrality = np.concatenate([np.ones(n), [0]])
        bounds = Bounds(np.concatenate([np.zeros(n), [0.0]]), np.concatenate([np.ones(n), [np.inf]]))
        options = {"mip_rel_gap": 0.0}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        res = milp(c, constraints=LinearConstraint(np.array(A), lb, ub), integrality=integrality,
                   bounds=bounds, options=options)
        if res.x is None:
            raise InvalidParameterError(f"HiGHS (scipy.milp) returned no solution: {res.message}")
        xs = np.round(res.x[:n]).astype(bool)
    sums = np.array([xs.astype(np.float64) @ v])
    return SubsetSumResult(xs[None, :], sums, np.abs(t - sums), t, f"mip_{backend}", k)


# ---------------------------------------------------------------------- greedy baseline
def subset_sum_greedy(values, targets, *, k: int | None = None) -> SubsetSumResult:
    """Greedy baseline: scan values by decreasing ``|a_i|``; keep ``a_i`` if it strictly reduces
    ``|z - sum|`` (and the size budget ``k`` is not exhausted). Vectorised over targets; ``O(n T)``.
    Not optimal in general (it is the selection rule of Orseau et al. 2020 for hyperbolic samples)."""
    v = _as_values(values, max_n=None)
    t, _ = _as_targets(targets)
    k = _check_k(k, v.size)
    order = np.argsort(-np.abs(v), kind="stable")
    masks = np.zeros((t.size, v.size), dtype=bool)
    resid = t.copy()
    used = np.zeros(t.size, dtype=np.int64)
    for i in order:  # loop over the n values (not subsets), vectorised over the targets
        take = np.abs(resid - v[i]) < np.abs(resid)
        if k is not None:
            take &= used < k
        resid = np.where(take, resid - v[i], resid)
        masks[:, i] = take
        used += take
    sums = masks.astype(np.float64) @ v
    return SubsetSumResult(masks, sums, np.abs(t - sums), t, "greedy", k)


# ---------------------------------------------------------------------- Lueker experiment
@dataclass(frozen=True)
class LuekerResult:
    """Success probability ``p[i, j]`` that ``n_grid[i]`` samples eps-approximate every grid target for
    ``eps_grid[j]``; ``theory_n[j] = C log2(1/eps_j)``; ``n_at_90[j]`` the smallest n with ``p >= 0.9``."""

    n_grid: tuple[int, ...]
    eps_grid: tuple[float, ...]
    trials: int
    success: np.ndarray
    theory_n: tuple[float, ...]
    n_at_90: tuple[int | None, ...]
    C: float
    dist: str
    grid_points: tuple[int, ...]
    seed: int | None
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict:
        return {"n_grid": list(self.n_grid), "eps_grid": list(self.eps_grid), "trials": self.trials,
                "success": self.success.tolist(), "theory_n": list(self.theory_n),
                "n_at_90": list(self.n_at_90), "C": self.C, "dist": self.dist,
                "grid_points": list(self.grid_points), "seed": self.seed, "seconds": self.seconds}


def _sample(dist: str, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dist == "uniform[-1,1]":
        return rng.uniform(-1.0, 1.0, size)
    if dist == "uniform[0,1]*uniform[-1,1]":  # products as in Pensia et al. 2020 (Cor. 3.3)
        return rng.uniform(0.0, 1.0, size) * rng.uniform(-1.0, 1.0, size)
    if dist == "normal":
        return rng.standard_normal(size)
    raise InvalidParameterError(
        f"dist must be 'uniform[-1,1]', 'uniform[0,1]*uniform[-1,1]' or 'normal'; got {dist!r}"
    )


def lueker_experiment(n_grid: Sequence[int], eps_grid: Sequence[float], trials: int, *,
                      dist: str = "uniform[-1,1]", C: float = LUEKER_C, grid_factor: float = 2.0,
                      seed: int | None = 0, half_width: float = 1.0,
                      on_result: Callable[[dict], None] | None = None) -> LuekerResult:
    """Empirical probability that ``n`` i.i.d. samples eps-approximate every target of a fine grid of
    ``[-half_width, half_width]`` (Lueker's Corollary 2.5 states ``[-1/2, 1/2]`` for Uniform[-1, 1] samples;
    the default 1 is the restatement used by Pensia et al.).

    For each ``(n, eps)`` and trial, draw ``n`` values from ``dist`` and solve :func:`subset_sum_exact` for
    the ``m = ceil(grid_factor * 2 half_width / eps) + 1`` equispaced targets (spacing about
    ``eps / grid_factor``);
    success iff every target is within ``eps``. (With spacing ``h`` the sup over the continuum is at most
    ``max_grid + h/2``, so a grid success certifies ``(1 + 1/(2 grid_factor)) eps`` on all of [-1, 1].)
    Reference curve ``theory_n = C log2(1/eps)`` (Lueker 1998; Pensia et al. 2020, Cor. 3.3, constant not
    specified there -- see :data:`LUEKER_C`). ``on_result`` receives each ``(n, eps)`` row as soon as it is
    done
    (incremental results for long sweeps). Deterministic given ``seed``.
    """
    ns = tuple(check_positive_int("n_grid[i]", n) for n in n_grid)
    epss = tuple(check_probability("eps_grid[j]", e) for e in eps_grid)
    if not ns or not epss:
        raise DataError("n_grid and eps_grid must be non-empty")
    trials = check_positive_int("trials", trials)
    if not (isinstance(half_width, (int, float)) and 0 < half_width < math.inf):
        raise InvalidParameterError(f"half_width must be a positive finite number; got {half_width!r}")
    if max(ns) > MAX_EXACT_N:
        raise InvalidParameterError(f"n_grid entries must be <= {MAX_EXACT_N}; got {max(ns)}")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    success = np.zeros((len(ns), len(epss)))
    m_list = tuple(int(math.ceil(grid_factor * 2.0 * half_width / e)) + 1 for e in epss)
    for j, e in enumerate(epss):
        grid = np.linspace(-half_width, half_width, m_list[j])
        for i, n in enumerate(ns):
            ok = 0
            for _ in range(trials):
                r = subset_sum_exact(_sample(dist, (n,), rng), grid)
                ok += bool(r.errors.max() <= e)
            success[i, j] = ok / trials
            if on_result is not None:
                on_result({"n": n, "eps": e, "trials": trials, "success": success[i, j]})
    theory = tuple(C * math.log2(1.0 / e) for e in epss)
    n90 = []
    for j in range(len(epss)):
        hit = [ns[i] for i in range(len(ns)) if success[i, j] >= 0.9]
        n90.append(min(hit) if hit else None)
    return LuekerResult(ns, epss, trials, success, theory, tuple(n90), C, dist, m_list, seed,
                        time.perf_counter() - t0)


# ---------------------------------------------------------------------- batched, bounded candidate subsets
def _half_sums(vs: np.ndarray) -> np.ndarray:
    """All ``2^m`` subset sums of each row of ``vs`` (``R x m``), column ``r`` = the subset of the binary
    digits of ``r`` (the order of :func:`_bits`), by doubling: ``S_{i+1} = [S_i, S_i + v_i]``."""
    R, m = vs.shape
    out = np.empty((R, 1 << m))
    out[:, 0] = 0.0
    for i in range(m):  # m doublings, vectorised over rows and subsets
        w = 1 << i
        np.add(out[:, :w], vs[:, i : i + 1], out=out[:, w : 2 * w])
    return out


def _mitm_rows(vs: np.ndarray, ts: np.ndarray, m1: int) -> tuple[np.ndarray, np.ndarray]:
    """Best (A index, B index) per row by merging the query and half-sum lists (see
    :func:`subset_sum_exact_batched`)."""
    rows = np.arange(vs.shape[0])
    sa = _half_sums(vs[:, :m1])
    sb = _half_sums(vs[:, m1:])
    ha = sa.shape[1]
    q = np.subtract(ts[:, None], sa)
    buf = np.concatenate([q, sb], axis=1)
    bi = buf.view(np.int64)
    bi[:, :ha] &= ~np.int64(1)  # list membership in the lowest mantissa bit: 0 = query, 1 = B sum
    bi[:, ha:] |= np.int64(1)
    buf.sort(axis=1)
    flag = bi & 1
    cross = flag[:, 1:] != flag[:, :-1]
    gap = np.diff(buf, axis=1)
    gap[~cross] = np.inf
    p = gap.argmin(axis=1)
    left, right = buf[rows, p], buf[rows, p + 1]
    left_is_q = flag[rows, p] == 0
    qv = np.where(left_is_q, left, right)
    bv = np.where(left_is_q, right, left)
    ia = np.abs(q - qv[:, None]).argmin(axis=1)
    ib = np.abs(sb - bv[:, None]).argmin(axis=1)
    return ia, ib


def subset_sum_exact_batched(values, targets, *, n_use: int | None = None,
                             chunk: int = 1 << 16) -> SubsetSumResult:
    """Exact closest subset sum for ``P`` independent instances, restricted to each row's first ``n_use``
    candidates: ``values`` is ``(P, n)``, ``targets`` ``(P,)``; returns masks ``(P, n)`` (False beyond
    ``n_use``).

    Meet-in-the-middle (Horowitz & Sahni 1974) batched over instances, in the *merge* form: with
    ``m = n_use``, ``m1 = floor(m/2)``, the A half-sums ``s_A`` (first ``m1`` candidates) give the queries
    ``q = z - s_A`` and the B half-sums ``s_B`` (the other ``m - m1``); ``|z - s_A - s_B| = |q - s_B|``, and
    the closest (query, B sum) pair of a row is *adjacent* in the sorted union of both lists (any element
    between them would form a closer cross pair). So one row-wise sort of ``2^{m1} + 2^{m - m1}`` numbers
    (the list membership stored in the lowest mantissa bit, i.e. values moved by at most 1 ulp) and a minimum
    over adjacent cross gaps solve every row; the winning A and B subsets are then looked up by value.
    Half-sums by doubling (no matrix product). ``O(P 2^{m/2} m)`` time, ``chunk`` bounds the elements per
    step (small chunks stay in cache; one thread -- a thread pool over the chunks gave no speed-up on 2
    cores and was removed). Optimal over the prefix up to float64 rounding (ulp-level ties);
    any subset of the candidates is feasible for the full instance, so the prefix restriction keeps a
    construction valid and its error is an upper bound on the optimum over all ``n`` candidates.
    Cross-checked against :func:`subset_sum_exact` row by row in the tests.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise DataError(f"values must be a non-empty (P, n) array; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise DataError("values contains NaN or inf")
    P, n = v.shape
    m = n if n_use is None else check_positive_int("n_use", n_use)
    if m > n:
        raise InvalidParameterError(f"n_use={m} exceeds the {n} candidates per instance")
    if m > MAX_EXACT_N:
        raise InvalidParameterError(f"n_use={m}: meet-in-the-middle supports at most {MAX_EXACT_N} candidates")
    t, _ = _as_targets(targets)
    if t.size != P:
        raise DataError(f"targets has {t.size} entries; values has {P} rows (one target per instance)")
    chunk = check_positive_int("chunk", chunk)
    m1 = m // 2
    bits_a, bits_b = _bits(m1), _bits(m - m1)
    vm = np.ascontiguousarray(v[:, :m])
    step = max(1, chunk // (bits_a.shape[0] + bits_b.shape[0]))
    starts = list(range(0, P, step))
    best_a = np.zeros(P, dtype=np.int64)
    best_b = np.zeros(P, dtype=np.int64)

    for s in starts:
        best_a[s : s + step], best_b[s : s + step] = _mitm_rows(vm[s : s + step], t[s : s + step], m1)
    masks = np.zeros((P, n), dtype=bool)
    masks[:, :m1] = bits_a[best_a]
    masks[:, m1:m] = bits_b[best_b]
    sums = np.where(masks, v, 0.0).sum(1)
    return SubsetSumResult(masks, sums, np.abs(t - sums), t, "meet_in_the_middle_batched", None)
