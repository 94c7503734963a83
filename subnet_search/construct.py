"""Strong lottery tickets by construction: prune a random network to approximate a given ReLU target.

All three constructions share the two-layers-per-target-layer decomposition of Malach et al. (2020, Sec. 3)
and
Pensia et al. (2020, Sec. 4): target layer ``W_i`` (``d_i x d_{i-1}``) becomes ``V_i s(U_i x)`` where ``U_i``
has
``2 n_i`` random neurons per input coordinate (``n_i`` with positive, ``n_i`` with negative weight on that
coordinate; the mask keeps only that coordinate), and ``V_i`` (``d_i x 2 n_i d_{i-1}``) is pruned so that for
each target weight ``w = W_i[o, k]``

    sum_{j in S+} |u_j| v_{o j}  ~  w        (neurons active for x_k > 0)
    sum_{j in S-} |u_j| v_{o j}  ~ -w        (neurons active for x_k < 0).

This is a subset-sum problem over the ``n_i`` products ``|u_j| v_{oj}``; the three methods differ in the
random
distribution, in how the subset is chosen and hence in the width needed:

* ``"pensia"`` -- Pensia, Rajput, Nagle, Vishwakarma, Papailiopoulos (2020), "Optimal lottery tickets via
  SubsetSum", Thm. 1: weights ~ Uniform[-1, 1], *exact* subset sum (:func:`subset_sum_exact_batched`, all
  weights of a layer at once; over a sign-balanced subset of ``m <= n`` candidates per weight, ``m`` from a
  pilot -- see :func:`construct_ticket`), width
  ``O(d log(d l / eps))``. We use ``n_i = ceil(PENSIA_C log2(2 P / (delta eps_w)))`` (the ``log2(P/delta)``
  term pays for the union bound: the failure rate of one product subset-sum instance decays only like
  ``2^{-c n}``, because an instance may have few products of the target's sign -- measured, not assumed).
* ``"malach"`` -- Malach, Yehudai, Shalev-Shwartz, Shamir (2020), "Proving the lottery ticket hypothesis:
  pruning is all you need", Thm. 2.1: one neuron per sign (subset of size 1), polynomial width. The product
  ``|u| v`` (``|u| ~ U[0,1], v ~ U[-1,1]``) has density ``f(w) = ln(1/|w|) / 2``, so one of ``n`` products is
  within ``eps_w`` of ``w`` except with probability ``(1 - 2 eps_w f_min)^n``; we use
  ``n_i = ceil(ln(2 P / delta) / (2 eps_w f_min))``, ``f_min = ln(1/(max|W| + eps_w)) / 2`` (needs max|W| <
  1).
* ``"orseau"`` -- Orseau, Hutter, Rivasplata (2020), "Logarithmic pruning is all you need": hyperbolic weights
  (density ``∝ 1/|w|`` on ``[alpha, 1]``, ``alpha = eps_w``) in the first layer of each pair, Uniform[-1, 1]
  in the second, so that the products ``|u| v`` are (nearly) hyperbolic; greedy selection
  (:func:`subset_sum_greedy`), width
  ``O(log(1/eps_w))`` per weight: ``n_i = ceil(ORSEAU_C * (log2(1/eps_w) + log2(ln(2 P / delta))))``.

``eps_w`` (per-weight tolerance) is the largest value for which the certificate of
:mod:`prunebound.subnet_search.certify` with ``||D_i||_2 <= ||D_i||_F <= sqrt(2 d_i d_{i-1}) eps_w`` gives
``<= eps``; ``P = 2 sum_i d_i d_{i-1}`` is the number of subset-sum problems (union bound with ``delta``).
After selection the *achieved* certificate is computed; if it exceeds ``eps`` (probability ``<= delta`` for
Pensia/Malach) a fresh random network is drawn (``Ticket.attempts`` counts draws).

Deviations from the papers (documented): bias-free targets only; signs of the first-layer weights are balanced
(``n_i`` positive, ``n_i`` negative per coordinate) instead of i.i.d.; Orseau et al.'s construction uses a
different layer layout and a golden-ratio argument -- we keep their weight distribution and greedy selection
inside the shared layout above; the constants ``PENSIA_C`` and ``ORSEAU_C`` are ours (the papers' O(.)
constants are not explicit or are loose), chosen so that one draw suffices with high probability.
Storage and certificate: the random network is stored in float32 by default (``dtype``); its weights are
drawn as float32 numbers and the certificate is computed in float64 from exactly those values, with the
float64 rounding of the subset sums bounded and added (:func:`_pair_certificate`), so it is a bound for the
stored network in exact arithmetic.  Pensia's subset sums are solved over ``m <= n`` candidates per weight,
``m`` chosen by a pilot so that the certificate lands near ``eps`` (:func:`construct_ticket`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from prunebound.errors import InvalidParameterError, check_positive, check_positive_int, check_probability
from prunebound.network import Network
from prunebound.subnet_search.certify import (
    ApproximationError,
    collapsed_pair,
    propagate_bound,
    sample_ball_parts,
    spectral_norm_bound,
    target_weights,
)
from prunebound.subnet_search.subset_sum import MAX_EXACT_N, subset_sum_exact, subset_sum_exact_batched

__all__ = ["Ticket", "construct_ticket", "measured_width", "WidthRow", "pensia_ticket", "malach_ticket",
           "orseau_ticket", "required_width", "per_weight_tolerance", "pensia_work", "ticket_error",
           "PENSIA_C", "ORSEAU_C", "PENSIA_MAX_WORK"]

PENSIA_C = 1.0
ORSEAU_C = 4.0
#: Default budget of the Pensia subset-sum solve: total meet-in-the-middle list length
#: ``sum_i P_i (2^{floor(n/2)} + 2^{ceil(n/2)})`` (about 20 s on one core at the default).
PENSIA_MAX_WORK = 1 << 30
_METHODS = ("pensia", "malach", "orseau")


@dataclass(frozen=True)
class Ticket:
    """A pruned random network approximating a target on the ball ``||x||_2 <= radius``.

    ``module``: ``nn.Sequential`` of ``2 l`` bias-free Linear layers (float32 unless ``dtype`` said otherwise)
    with ``torch.nn.utils.prune`` masks; ``n_per_sign[i]``: random neurons per sign per input coordinate for
    target layer ``i``; ``hidden_widths[i] = 2 n_i d_{i-1}``; ``certified_error``: the analytic sup-error
    (certify.py) of the stored network, float64 rounding included; ``width_formula``: the formula that gave
    ``n_i``; ``n_theory``: the formula's ``n`` (differs from ``n_per_sign`` only when ``n`` was given);
    ``width_mode`` (Pensia): ``"exact"`` (subset sum over all ``n`` candidates) or ``"bounded"`` (over
    ``candidates`` of them, chosen by the pilot, see :func:`construct_ticket`); ``solver``: the Pensia
    subset-sum route."""

    module: nn.Module
    method: str
    eps: float
    delta: float
    radius: float
    target_widths: tuple[int, ...]
    n_per_sign: tuple[int, ...]
    hidden_widths: tuple[int, ...]
    weight_tol: float
    max_weight_error: float
    certified_error: float
    random_params: int
    kept_params: int
    width_formula: str
    attempts: int
    seed: int | None
    seconds: float
    n_theory: int = 0
    width_mode: str = "formula"
    candidates: int = 0
    solver: str = ""

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
                if k != "module"}


def per_weight_tolerance(ws: list[torch.Tensor], eps: float, radius: float) -> float:
    """Largest ``eps_w`` with ``propagate_bound(||W_i||, sqrt(2 d_i d_{i-1}) eps_w, r) <= eps`` (bisection on
    a log scale; the bound is increasing in ``eps_w``)."""
    wn = [spectral_norm_bound(w) for w in ws]
    fro = [math.sqrt(2 * w.shape[0] * w.shape[1]) for w in ws]

    def bound(t: float) -> float:
        return propagate_bound(wn, [f * t for f in fro], radius)[-1]

    lo, hi = 1e-300, 1.0
    while bound(hi) < eps:
        hi *= 2.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if bound(mid) <= eps:
            lo = mid
        else:
            hi = mid
    return lo


def required_width(method: str, *, eps_w: float, n_problems: int, delta: float, w_max: float = 0.5) -> int:
    """Neurons per sign per input coordinate, ``n``, of each method (formulas in the module docstring)."""
    if method == "pensia":
        return int(math.ceil(PENSIA_C * math.log2(2 * n_problems / (delta * eps_w))))
    if method == "malach":
        if w_max + eps_w >= 1:
            raise InvalidParameterError(
                f"malach construction needs max|W| + eps_w < 1 (product density > 0); got max|W|={w_max:.4g}"
            )
        f_min = math.log(1 / (w_max + eps_w)) / 2
        return int(math.ceil(math.log(2 * n_problems / delta) / (2 * eps_w * f_min)))
    if method == "orseau":
        return int(math.ceil(ORSEAU_C * (math.log2(1 / eps_w) + math.log2(math.log(2 * n_problems / delta)))))
    raise InvalidParameterError(f"method must be one of {_METHODS}; got {method!r}")


_FORMULAS = {
    "pensia": f"n = ceil({PENSIA_C} log2(2P / (delta eps_w)))",
    "malach": "n = ceil(ln(2P/delta) / (2 eps_w f_min)), f_min = ln(1/(max|W|+eps_w))/2",
    "orseau": f"n = ceil({ORSEAU_C} (log2(1/eps_w) + log2(ln(2P/delta))))",
}


def _draw(method: str, shape: tuple[int, ...], g: torch.Generator, alpha: float, first: bool,
          dtype: torch.dtype) -> torch.Tensor:
    """Random weights in ``dtype``: Uniform[-1, 1] (pensia, malach, orseau second layer) or hyperbolic on
    ±[alpha, 1] (orseau first layer, so that the products ``|u| v`` have density ~ 1/|w| on [alpha, 1]).
    Drawn in place (no float64 temporaries of the full matrix)."""
    if method == "orseau" and first:
        u = torch.rand(shape, generator=g, dtype=dtype)
        neg = torch.rand(shape, generator=g, dtype=dtype) < 0.5
        u = torch.pow(torch.tensor(alpha, dtype=dtype), u)  # log-uniform magnitude: density ∝ 1/|w|
        u[neg] *= -1
        return u
    return torch.empty(shape, dtype=dtype).uniform_(-1.0, 1.0, generator=g)


def _candidate_positions(vals: np.ndarray, m: int) -> np.ndarray:
    """Column indices ``(P, m)`` of the candidates kept for the bounded subset sum: per row, ``k = m/2``
    candidates of each sign (``>= 0`` / ``< 0``; moved to the other sign when one has fewer), at evenly
    spaced magnitude ranks within the sign (the smallest, the largest, and a ladder in between). Balancing the
    signs removes the ``2^{-m}`` event "every candidate has the wrong sign" that dominates the worst error of
    ``m`` arbitrary candidates; the magnitude ladder keeps every target in reach while the small values make
    the subset sums dense. One ``argsort`` per row; ``m <= n``."""
    P, n = vals.shape
    key = np.abs(vals)
    neg = vals < 0
    key[neg] += 2.0  # non-negative candidates first, each sign by increasing magnitude
    npos = (n - np.count_nonzero(neg, axis=1))[:, None]
    nneg = n - npos
    kp = np.minimum(npos, np.maximum(m // 2, m - nneg))
    kn = m - kp
    order = np.argsort(key, axis=1)
    j = np.arange(m)[None, :]
    dp, dn = np.maximum(kp - 1, 1), np.maximum(kn - 1, 1)
    rp = (j * (npos - 1) + dp // 2) // dp  # j-th of kp ranks spread over [0, npos - 1] (integer rounding)
    rn = npos + ((j - kp) * (nneg - 1) + dn // 2) // dn
    return np.take_along_axis(order, np.where(j < kp, rp, rn), axis=1)


def _pensia_select(vals: np.ndarray, tgt: np.ndarray, *, m: int | None = None,
                   solver: str = "batched") -> np.ndarray:
    """Exact subset sum per row over all ``n`` candidates (``m is None or m >= n``) or over the ``m`` chosen
    by :func:`_candidate_positions`: ``"batched"`` (:func:`subset_sum_exact_batched`, all rows at once) or
    ``"per_weight"`` (:func:`subset_sum_exact` row by row; the reference route, slow)."""
    P, n = vals.shape
    if m is None or m >= n:
        cols, sub = None, vals
    else:
        cols = _candidate_positions(vals, m)
        sub = np.take_along_axis(vals, cols, axis=1)
    if solver == "batched":
        sel = subset_sum_exact_batched(sub, tgt).masks
    elif solver == "per_weight":
        sel = np.stack([subset_sum_exact(sub[i], tgt[i]).masks[0] for i in range(P)])
    else:
        raise InvalidParameterError(f"solver must be 'batched' or 'per_weight'; got {solver!r}")
    if cols is None:
        return sel
    out = np.zeros((P, n), dtype=bool)
    np.put_along_axis(out, cols, sel, axis=1)
    return out


def _select(method: str, vals: np.ndarray, tgt: np.ndarray, *, m: int | None = None,
            solver: str = "batched") -> np.ndarray:
    """Boolean masks (P, n) choosing a subset of each row of ``vals`` to approximate ``tgt``."""
    if method == "pensia":
        return _pensia_select(vals, tgt, m=m, solver=solver)
    if method == "malach":
        j = np.abs(vals - tgt[:, None]).argmin(axis=1)
        out = np.zeros(vals.shape, dtype=bool)
        out[np.arange(len(j)), j] = True
        # the empty subset is also allowed (w close to 0)
        empty = np.abs(tgt) <= np.abs(vals[np.arange(len(j)), j] - tgt)
        out[empty] = False
        return out
    # orseau: greedy by decreasing magnitude, vectorised over problems
    masks = np.zeros(vals.shape, dtype=bool)
    order = np.argsort(-np.abs(vals), axis=1, kind="stable")
    resid = tgt.copy()
    rows = np.arange(vals.shape[0])
    for c in range(vals.shape[1]):  # loop over the n candidates, vectorised over the P problems
        vi = vals[rows, order[:, c]]
        take = np.abs(resid - vi) < np.abs(resid)
        resid = np.where(take, resid - vi, resid)
        masks[rows, order[:, c]] = take
    return masks


@dataclass
class _Pair:
    """One target layer's random pair before pruning: ``u`` (``h x d_in``, block diagonal signs set), ``v``
    (``d_out x h``), the subset-sum instances ``vals`` (``P_i x n``, float64, ``|u_j| v_oj``) and targets."""

    u: torch.Tensor
    v: torch.Tensor
    vals: np.ndarray
    tg: np.ndarray
    blk: torch.Tensor


def _draw_pair(method: str, w: torch.Tensor, n: int, g: torch.Generator, alpha: float,
               dtype: torch.dtype) -> _Pair:
    d_out, d_in = w.shape
    h = 2 * n * d_in
    u = _draw(method, (h, d_in), g, alpha, True, dtype)
    v = _draw(method, (d_out, h), g, alpha, False, dtype)
    # block k holds hidden neurons [2nk, 2n(k+1)): first n positive, last n negative weight on input k
    rows = torch.arange(h)
    blk = rows // (2 * n)
    pos = (rows % (2 * n)) < n
    diag = u[rows, blk].abs()
    u[rows, blk] = torch.where(pos, diag, -diag)
    a = diag.to(torch.float64).reshape(d_in, 2, n)  # |u| per (k, sign, j)
    # products of two float32 numbers are exact in float64 (24 + 24 <= 53 mantissa bits)
    vals = (a[None] * v.to(torch.float64).reshape(d_out, d_in, 2, n)).numpy().reshape(-1, n)
    tg = np.stack([w.numpy(), -w.numpy()], axis=-1).reshape(-1)  # (d_out, d_in, 2)
    return _Pair(u, v, vals, tg, blk)


def _pair_certificate(pair: _Pair, sel: np.ndarray, w: torch.Tensor) -> tuple[float, float]:
    """``(||D_i||_2 upper bound, max |error|)`` straight from the subset sums: ``D_i = [P_i - W_i, N_i + W_i]``
    has the entries ``sum(selected vals) - target``.  Rounding is accounted for: each entry's float64 sum of
    ``<= n`` exact products (``n + 1`` more roundings for the products of float64 weights and the subtraction)
    is off by at most ``(n + 2) u_64 (sum |terms| + |target|)``, so ``||D||_2 <= ||D_float||_2 (1 + 1e-12) +
    ||E||_F``."""
    d_out, d_in = w.shape
    n = pair.vals.shape[1]
    picked = np.where(sel, pair.vals, 0.0)
    r = picked.sum(1) - pair.tg
    slack = (n + 2) * 1.12e-16 * (np.abs(picked).sum(1) + np.abs(pair.tg))
    r3 = r.reshape(d_out, d_in, 2)
    d = torch.from_numpy(np.concatenate([r3[:, :, 0], r3[:, :, 1]], axis=1))
    dn = spectral_norm_bound(d) + float(np.sqrt((slack ** 2).sum()))
    return dn, float(np.abs(r).max())


def _pair_modules(pair: _Pair, sel: np.ndarray, last: bool) -> tuple[list[nn.Module], int, int]:
    """The pruned ``Linear`` pair (``torch.nn.utils.prune`` masks), its unpruned parameter count and its
    number of kept non-zero weights."""
    h, d_in = pair.u.shape
    d_out = pair.v.shape[0]
    dtype = pair.u.dtype
    # built on the meta device (no allocation, no init; skip_init's to_empty also imports sympy, ~1 s), then
    # the drawn tensors become the parameters without a copy
    lin_u = nn.Linear(d_in, h, bias=False, device="meta", dtype=dtype)
    lin_v = nn.Linear(h, d_out, bias=False, device="meta", dtype=dtype)
    lin_u.weight = nn.Parameter(pair.u)
    lin_v.weight = nn.Parameter(pair.v)
    mask_u = torch.zeros(h, d_in, dtype=dtype)
    mask_u[torch.arange(h), pair.blk] = 1.0
    mask_v = torch.from_numpy(sel.reshape(d_out, h)).to(dtype)
    tprune.custom_from_mask(lin_u, "weight", mask_u)
    tprune.custom_from_mask(lin_v, "weight", mask_v)
    mods: list[nn.Module] = [lin_u, nn.ReLU(), lin_v] + ([] if last else [nn.ReLU()])
    kept = int(torch.count_nonzero(pair.u[torch.arange(h), pair.blk])) + int(
        torch.count_nonzero(pair.v[torch.from_numpy(sel.reshape(d_out, h))]))
    return mods, h * d_in + d_out * h, kept


def pensia_work(ws: list[torch.Tensor], m: int) -> int:
    """Meet-in-the-middle list length of the Pensia solve with ``m`` candidates per weight and sign:
    ``sum_i 2 |W_i| (2^{floor(m/2)} + 2^{ceil(m/2)})`` (time is proportional to it)."""
    return sum(2 * w.numel() for w in ws) * ((1 << (m // 2)) + (1 << (m - m // 2)))


def _pilot_candidates(ws: list[torch.Tensor], *, n: int, eps: float, radius: float, m_max: int,
                      seed: int | None, n_pilot: int = 2048, margin: float = 1.25) -> tuple[int, list[float]]:
    """Smallest ``m <= m_max`` whose *predicted* certificate is ``<= eps / margin``, from a pilot: per
    target layer, ``n_pilot`` instances with the construction's distribution (targets ``±w`` at random
    entries, ``n`` candidates ``|u| v``, ``u, v ~ U[-1, 1]``, the ``m`` of :func:`_candidate_positions`)
    solved exactly; the error matrix ``D_i`` (entries with mean ``mu`` and standard deviation ``s`` of the
    signed residual, mean ``a`` of its absolute value) is predicted as ``||D_i||_2 ~ |mu| sqrt(2 d_i d_{i-1})
    + s (sqrt(d_i) + sqrt(2 d_{i-1}))`` (rank-one mean part plus the Bai-Yin edge of the fluctuation), never
    below the largest single entry.  Returns ``(m, predicted certificate per m tried)``.  A starting point
    only: the certificate of the real draw is always computed, and ``m`` grows if it fails."""
    rng = np.random.default_rng(10_007 + (0 if seed is None else int(seed)))
    wn = [spectral_norm_bound(w) for w in ws]
    insts = []
    for w in ws:
        wf = w.reshape(-1).numpy()
        k = min(n_pilot, 2 * wf.size)
        tg = wf[rng.integers(0, wf.size, k)] * rng.choice([-1.0, 1.0], k)
        insts.append((tg, rng.uniform(0, 1, (k, n)) * rng.uniform(-1, 1, (k, n))))
    preds: list[float] = []
    for m in range(2, m_max + 1):
        pred = []
        for w, (tg, vals) in zip(ws, insts):
            sel = _pensia_select(vals, tg, m=m)
            r = (vals * sel).sum(1) - tg
            d_out, d_in = w.shape
            pred.append(abs(r.mean()) * math.sqrt(2 * d_out * d_in)
                        + r.std() * (math.sqrt(d_out) + math.sqrt(2 * d_in)))
        preds.append(propagate_bound(wn, pred, radius)[-1])
        if preds[-1] * margin <= eps:
            return m, preds
    return m_max, preds


def construct_ticket(target: nn.Module | Network, *, method: str, eps: float, radius: float = 1.0,
                     delta: float = 0.05, seed: int | None = 0, max_attempts: int = 5,
                     n: int | None = None, solver: str = "batched", max_work: int = PENSIA_MAX_WORK,
                     candidates: int | None = None, dtype: torch.dtype = torch.float32) -> Ticket:
    """Build a random network and a mask whose subnetwork is within ``eps`` (Euclidean norm of the output
    error) of ``target`` on ``{||x||_2 <= radius}``, with an analytic certificate.

    ``target``: bias-free ``Linear``/``ReLU`` network. ``delta``: failure probability budget of the random
    draw (enters the width). ``n``: override the formula's neurons per sign (used to *measure* the width
    needed, see :func:`measured_width`). Raises :class:`InvalidParameterError` if ``max_attempts`` draws all
    fail.

    ``dtype``: storage of the random network (default float32: half the memory of float64).  The random
    weights are drawn *as* ``dtype`` numbers, and the certificate is computed in float64 from exactly those
    stored values (products of two float32 numbers are exact in float64; the remaining float64 roundings are
    bounded and added, see :func:`_pair_certificate`), so it bounds the error of the stored network evaluated
    in exact arithmetic -- what :func:`ticket_error` measures in float64.  A float32 forward pass adds its
    own rounding (relative ~1e-7 of the activations), which is not part of the certificate.

    Pensia only -- route and candidate count: the random network always has the formula's (or the given)
    width ``n``, but each weight's subset sum is solved exactly over ``m <= n`` of its ``n`` candidates
    (:func:`_candidate_positions`; any subset of the candidates is a valid subnetwork and the certificate is
    computed from the achieved errors).  ``m`` comes from a cheap pilot (:func:`_pilot_candidates`): the
    smallest ``m`` whose predicted certificate is ``<= eps / 1.25``, so the certificate lands near ``eps``
    instead of orders of magnitude below it at exponential extra cost.  ``width_mode`` is ``"exact"`` when
    ``m = n`` (all candidates) and ``"bounded"`` otherwise.  If the certificate of the actual draw exceeds
    ``eps``, the subset sums of the *same* draw are re-solved with ``m + 1``, up to the largest ``m`` within
    ``max_work`` (:func:`pensia_work`) and 40; only then is a fresh network drawn.  ``candidates``: fix
    ``m`` instead of the pilot (``candidates >= n``: the exact route).  ``solver``: ``"batched"`` (every
    weight of a layer in one vectorised meet-in-the-middle, :func:`subset_sum_exact_batched`) or
    ``"per_weight"`` (:func:`subset_sum_exact` per weight, the reference route; same optimum).
    """
    if method not in _METHODS:
        raise InvalidParameterError(f"method must be one of {_METHODS}; got {method!r}")
    eps = check_probability("eps", eps)
    delta = check_probability("delta", delta)
    radius = check_positive("radius", radius)
    max_attempts = check_positive_int("max_attempts", max_attempts)
    max_work = check_positive_int("max_work", max_work)
    if solver not in ("batched", "per_weight"):
        raise InvalidParameterError(f"solver must be 'batched' or 'per_weight'; got {solver!r}")
    if dtype not in (torch.float32, torch.float64):
        raise InvalidParameterError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    t0 = time.perf_counter()
    Network.from_module(target).require_bias_free_relu_mlp(method=f"strong-LTH construction ({method})")
    ws = target_weights(target)
    eps_w = per_weight_tolerance(ws, eps, radius)
    n_problems = sum(2 * w.numel() for w in ws)
    w_max = max(float(w.abs().max()) for w in ws)
    formula = _FORMULAS[method]
    n_theory = required_width(method, eps_w=eps_w, n_problems=n_problems, delta=delta, w_max=w_max)
    if n is None:
        n = n_theory
    else:
        n = check_positive_int("n", n)
        formula = "given"
    m = m_max = n
    if method == "pensia":
        m_max = min(n, MAX_EXACT_N)
        while m_max > 2 and pensia_work(ws, m_max) > max_work:
            m_max -= 1
        if candidates is not None:
            m = min(check_positive_int("candidates", candidates), n)
            if m > m_max:
                raise InvalidParameterError(
                    f"candidates={candidates}: the exact subset sum over {m} candidates exceeds max_work or the "
                    f"solver's limit of {MAX_EXACT_N}; at most {m_max} here")
        else:
            m, _ = _pilot_candidates(ws, n=n, eps=eps, radius=radius, m_max=m_max, seed=seed)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    wn = [spectral_norm_bound(w) for w in ws]
    cert, m_first = math.inf, m
    for attempt in range(1, max_attempts + 1):  # noqa: B007
        pairs = [_draw_pair(method, w, n, g, eps_w, dtype) for w in ws]
        m = m_first
        while True:
            sels, d_norms, max_err = [], [], 0.0
            for pair, w in zip(pairs, ws):
                sel = _select(method, pair.vals, pair.tg, m=m, solver=solver)
                dn, me = _pair_certificate(pair, sel, w)
                sels.append(sel)
                d_norms.append(dn)
                max_err = max(max_err, me)
            cert = propagate_bound(wn, d_norms, radius)[-1] * (1 + 1e-12)
            if cert <= eps or method != "pensia" or m >= m_max:
                break
            m += 1  # same draw, one more candidate per subset sum
        if cert <= eps:
            break
        pairs = []  # release the failed draw before the next one
    if cert > eps:
        raise InvalidParameterError(
            f"{method} construction did not reach eps={eps} in {attempt} draws (last certificate {cert:.4g}, "
            f"n={n} per sign, subset sums over m={m} candidates)"
        )
    layers: list[nn.Module] = []
    n_random = n_kept = 0
    for i, (pair, sel) in enumerate(zip(pairs, sels)):
        mods, cnt, kept = _pair_modules(pair, sel, last=i == len(ws) - 1)
        layers += mods
        n_random += cnt
        n_kept += kept
        pair.vals = pair.tg = None  # free the float64 instances as soon as the layer is built
    del pairs, sels
    module = nn.Sequential(*layers)
    ns = [n] * len(ws)
    widths = (ws[0].shape[1],) + tuple(w.shape[0] for w in ws)
    mode = ("exact" if m >= n else "bounded") if method == "pensia" else "formula"
    return Ticket(module, method, eps, delta, radius, widths, tuple(ns),
                  tuple(2 * ns[i] * ws[i].shape[1] for i in range(len(ws))), eps_w, max_err, cert, n_random,
                  n_kept, formula, attempt, seed, time.perf_counter() - t0, n_theory,
                  mode, m if method == "pensia" else 0, solver if method == "pensia" else "")


def ticket_error(target: nn.Module | Network, ticket: Ticket | nn.Module, radius: float | None = None, *,
                 n_samples: int = 100_000, seed: int | None = 0, n_dense: int = 16,
                 screen: bool = True) -> ApproximationError:
    """:func:`~prunebound.subnet_search.certify.approximation_error` for large tickets: the same analytic
    certificate and the same sample points (:func:`sample_ball`), but the empirical error is evaluated
    through the *collapsed* pairs ``g_i(x) = P_i x^+ + N_i x^-`` (``P_i = V_i U_i^+``, ``N_i = V_i
    (-U_i)^+``, exact when each hidden neuron of ``U_i`` sees one input; built in ``O(d_i h_i)`` by
    :func:`~prunebound.subnet_search.certify.collapsed_pair`), which costs as much as the target.
    The collapsed forward is first checked against the dense masked forward of the ticket on the first
    ``n_dense`` sample directions (relative ``1e-9``); a mismatch raises. Equal to ``approximation_error``
    (to rounding) on tickets small enough for both.

    Cost: the points are drawn chunk by chunk (:func:`~prunebound.subnet_search.certify.sample_ball_parts`,
    the same numbers as ``sample_ball``), and since target and ticket are positively homogeneous (bias-free
    ReLU), the error at ``r u`` is ``r`` times the error at the unit direction ``u``; the first layer of
    target and ticket is one product (``g_1 = A x + B |x|``, ``A = (P_1 - N_1) / 2``, ``B = (P_1 + N_1) /
    2``). Spectral norms: :func:`~prunebound.subnet_search.certify.spectral_norm_bound`.

    ``screen`` (default): the sweep runs in float32, with the error propagated in error form (``e_1 = x (D+ -
    D-)^T / 2 + |x| (D+ + D-)^T / 2``, ``e_i = (relu(f + e) - relu(f)) P_i^T + relu(f) (P_i - W_i)^T``), so
    it is accurate relative to the error itself (~1e-5); every point whose screened error is within 1 % of
    the screened maximum is then evaluated in float64 as above, and ``empirical`` is the float64 maximum of
    those. Should the screen disagree with float64 by more than 0.2 % on them, or keep too many points, the
    full float64 sweep runs instead (``screen=False``). ``empirical`` is always the float64 error of sample
    points, a lower bound of the sup error.
    """
    module = getattr(ticket, "module", ticket)
    if radius is None:
        radius = getattr(ticket, "radius", None)
        if radius is None:
            raise InvalidParameterError("radius is required when ticket is a plain module")
    radius = check_positive("radius", radius)
    n_samples = check_positive_int("n_samples", n_samples)
    n_dense = check_positive_int("n_dense", n_dense, minimum=0)
    ws = target_weights(target)
    tl = Network.from_module(module).layers
    if len(tl) != 2 * len(ws):
        raise InvalidParameterError(f"ticket has {len(tl)} weighted layers; expected {2 * len(ws)}")
    pos, neg, d_norms, w_norms = [], [], [], []
    for i, w in enumerate(ws):
        u = tl[2 * i].weight_matrix().detach()
        v = tl[2 * i + 1].weight_matrix().detach()
        if u.shape[1] != w.shape[1] or v.shape[0] != w.shape[0]:
            raise InvalidParameterError(
                f"ticket pair {i} maps {u.shape[1]} -> {v.shape[0]}; the target layer maps {w.shape[1]} -> "
                f"{w.shape[0]}")
        p_i, n_i = collapsed_pair(u, v)  # also checks one input per hidden neuron
        d = torch.cat([p_i - w, n_i + w], dim=1)
        pos.append(p_i)
        neg.append(n_i)
        d_norms.append(spectral_norm_bound(d))
        w_norms.append(spectral_norm_bound(w))
    per = propagate_bound(w_norms, d_norms, radius)

    def collapsed(x: torch.Tensor) -> torch.Tensor:
        h = x.clamp(min=0) @ pos[0].T + (-x).clamp(min=0) @ neg[0].T
        for i in range(1, len(ws)):  # inputs >= 0 after the ReLU: the N_i x^- term is exactly 0
            h = h.clamp(min=0) @ pos[i].T
        return h

    # the sweep: first layer of target and ticket in one product, g_1 = A x + B |x| with A = (P - N) / 2,
    # B = (P + N) / 2 (x^+ = (x + |x|) / 2, x^- = (|x| - x) / 2), so no x^+ / x^- copies
    d1 = ws[0].shape[0]
    wa0 = torch.cat([ws[0], (pos[0] - neg[0]) / 2])
    b0t = ((pos[0] + neg[0]) / 2).T.contiguous()

    def error_norms(x: torch.Tensor) -> torch.Tensor:
        y = x @ wa0.T
        f, g = y[:, :d1], torch.addmm(y[:, d1:], x.abs(), b0t)
        for i in range(1, len(ws)):
            f = f.clamp(min=0) @ ws[i].T
            g = g.clamp(min=0) @ pos[i].T
        return (f - g).norm(dim=1)

    # float32 screening in error form: e_1 = x (D+ - D-)^T / 2 + |x| (D+ + D-)^T / 2 (D+ = P_1 - W_1, D- = N_1 +
    # W_1), then e_i = (relu(f + e) - relu(f)) P_i^T + relu(f) (P_i - W_i)^T: the error is computed as a small
    # quantity of its own (relative accuracy ~1e-5), not as the difference of two O(1) outputs
    if screen:
        dm32 = ((pos[0] - ws[0]) - (neg[0] + ws[0])).div(2).float()
        dp32t = ((pos[0] - ws[0]) + (neg[0] + ws[0])).div(2).float().T.contiguous()
        w32 = [w.float() for w in ws]
        p32 = [p.float() for p in pos]
        dpos32 = [(p - w).float() for p, w in zip(pos, ws)]
        wdm32t = torch.cat([w32[0], dm32]).T.contiguous()  # f_1 and the x-part of e_1 in one product

    def error_norms32(x64: torch.Tensor) -> torch.Tensor:
        x = x64.float()
        y = x @ wdm32t
        f = y[:, :d1]
        e = torch.addmm(y[:, d1:], x.abs(), dp32t)
        for i in range(1, len(ws)):
            fs = f + e
            delta = torch.where(f > 0, torch.where(fs > 0, e, -f), fs.clamp(min=0))
            fr = f.clamp(min=0)
            e = torch.addmm(delta @ p32[i].T, fr, dpos32[i].T)
            f = fr @ w32[i].T
        return e.norm(dim=1).double()

    # unit directions chunk by chunk (never the n x d sample at once); f and g are positively homogeneous
    # (bias-free ReLU), so the error at r u is r times the error at u (up to float64 rounding)
    err_u = torch.empty(n_samples, dtype=torch.float64)
    half = n_samples // 2  # rows [0, half) lie on the sphere (r = radius), the rest inside the ball (r <= radius)
    keep_idx: list[torch.Tensor] = []
    keep_u: list[torch.Tensor] = []
    state = {"sphere_max": 0.0, "kept": 0}

    def on_chunk(start: int, u: torch.Tensor) -> None:
        if start == 0 and n_dense:
            ud = u[:n_dense]
            with torch.no_grad():
                dense = _dense_forward(tl, ud)
            ref = collapsed(ud)
            if float((dense - ref).abs().max()) > 1e-9 * max(1.0, float(ref.abs().max())):
                raise InvalidParameterError("collapsed ticket forward disagrees with the dense forward")
        e = error_norms32(u) if screen else error_norms(u)
        err_u[start : start + u.shape[0]] = e
        if not screen or state["kept"] > _SCREEN_CAP:
            return
        # keep the directions that can still come within 1 % of the maximum of r e(u): the maximum is at least
        # radius * (max over the sphere rows), and r <= radius, so e(u) >= 0.99 * sphere max is necessary
        n_sph = max(0, min(u.shape[0], half - start))
        if n_sph:
            state["sphere_max"] = max(state["sphere_max"], float(e[:n_sph].max()))
        thr = 0.99 * state["sphere_max"] if half > 0 else 0.0
        rows = torch.nonzero(e >= thr).squeeze(1)
        keep_idx.append(rows + start)
        keep_u.append(u[rows])
        state["kept"] += rows.numel()

    rad = sample_ball_parts(n_samples, ws[0].shape[1], radius, seed, on_chunk)
    if not screen:
        emp = float((err_u * rad[:, 0]).max())
    else:
        emp = None
        if state["kept"] <= _SCREEN_CAP:
            idx, u = torch.cat(keep_idx), torch.cat(keep_u)
            r = rad[idx, 0]
            e32 = err_u[idx] * r
            sel = e32 >= 0.99 * float((err_u * rad[:, 0]).max())
            e64 = error_norms(u[sel]) * r[sel]
            # the screen's own accuracy, checked where it matters; beyond 0.2 % the 1 % margin is not trusted
            if float(((e32[sel] - e64).abs() / e64.clamp(min=1e-300)).max()) <= 2e-3:
                emp = float(e64.max())
        if emp is None:  # the screen cannot decide: the full float64 sweep
            return ticket_error(target, ticket, radius, n_samples=n_samples, seed=seed, n_dense=0, screen=False)
    analytic = per[-1] * (1 + 1e-12) + 1e-14 * float(np.prod(w_norms)) * radius
    return ApproximationError(analytic, emp, tuple(per), tuple(d_norms), radius, n_samples, seed)


_SCREEN_CAP = 50_000  # directions kept for the float64 re-evaluation before the screen gives up


def _dense_forward(layers, x: torch.Tensor) -> torch.Tensor:
    """The masked ticket's forward in float64 from its effective weights (ReLU after every layer but the
    last); each weight goes to float64 in row blocks (never a float64 copy of a whole random layer)."""
    h = x
    for i, ly in enumerate(layers):
        w = ly.weight_matrix().detach()
        step = max(1, (1 << 22) // max(w.shape[1], 1))
        h = torch.cat([h @ w[r : r + step].to(torch.float64).T for r in range(0, w.shape[0], step)], dim=1)
        if i < len(layers) - 1:
            h = h.clamp(min=0)
    return h


def pensia_ticket(target, *, eps: float, radius: float = 1.0, delta: float = 0.05,
                  seed: int | None = 0) -> Ticket:
    """Pensia et al. (2020) construction (see :func:`construct_ticket`)."""
    return construct_ticket(target, method="pensia", eps=eps, radius=radius, delta=delta, seed=seed)


def malach_ticket(target, *, eps: float, radius: float = 1.0, delta: float = 0.05,
                  seed: int | None = 0) -> Ticket:
    """Malach et al. (2020) construction (see :func:`construct_ticket`)."""
    return construct_ticket(target, method="malach", eps=eps, radius=radius, delta=delta, seed=seed)


def orseau_ticket(target, *, eps: float, radius: float = 1.0, delta: float = 0.05,
                  seed: int | None = 0) -> Ticket:
    """Orseau, Hutter, Rivasplata (2020) construction (see :func:`construct_ticket`)."""
    return construct_ticket(target, method="orseau", eps=eps, radius=radius, delta=delta, seed=seed)


@dataclass(frozen=True)
class WidthRow:
    """One point of the width-vs-eps curve: ``theory_n`` from the formula, ``measured_n`` the smallest ``n``
    (binary search) whose first draw certifies ``eps`` for every seed tried."""

    method: str
    eps: float
    theory_n: int
    measured_n: int
    theory_hidden: tuple[int, ...]
    measured_hidden: tuple[int, ...]

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def measured_width(target, *, method: str, eps: float, radius: float = 1.0, delta: float = 0.05,
                   seeds: tuple[int, ...] = (0, 1, 2)) -> WidthRow:
    """Smallest ``n`` (neurons per sign per input) for which one random draw certifies ``eps`` on every seed,
    found by binary search on ``[1, n_theory]`` (success is treated as monotone in ``n``), next to the
    formula's ``n_theory``. For the "required width vs eps" experiment."""
    ws = target_weights(target)
    eps_w = per_weight_tolerance(ws, check_probability("eps", eps), check_positive("radius", radius))
    n_problems = sum(2 * w.numel() for w in ws)
    w_max = max(float(w.abs().max()) for w in ws)
    n_theory = required_width(method, eps_w=eps_w, n_problems=n_problems, delta=delta, w_max=w_max)

    def ok(n: int) -> bool:
        for s in seeds:
            try:
                construct_ticket(target, method=method, eps=eps, radius=radius, delta=delta, seed=s,
                                 max_attempts=1, n=n)
            except InvalidParameterError:
                return False
        return True

    lo, hi = 0, n_theory  # invariant: ok(hi) assumed (checked below), not ok(lo)
    if not ok(hi):
        hi_found = hi
        while not ok(hi_found) and hi_found < 8 * n_theory:
            hi_found *= 2
        hi = hi_found
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    d_in = [w.shape[1] for w in ws]
    return WidthRow(method, eps, n_theory, hi, tuple(2 * n_theory * d for d in d_in),
                    tuple(2 * hi * d for d in d_in))
