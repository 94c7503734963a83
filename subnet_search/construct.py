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
  SubsetSum", Thm. 1: weights ~ Uniform[-1, 1], *exact* subset sum (:func:`subset_sum_exact_many`), width
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
The random network is built in float64 so that the certificate is not polluted by float32 rounding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunebound.errors import InvalidParameterError, check_positive, check_positive_int, check_probability
from prunebound.network import Network, apply_masks, count_nonzero, count_parameters
from prunebound.subnet_search.certify import pair_error_matrices, propagate_bound, target_weights
from prunebound.subnet_search.subset_sum import subset_sum_exact_many

__all__ = ["Ticket", "construct_ticket", "measured_width", "WidthRow", "pensia_ticket", "malach_ticket",
           "orseau_ticket", "required_width", "per_weight_tolerance", "PENSIA_C", "ORSEAU_C"]

PENSIA_C = 1.0
ORSEAU_C = 4.0
_METHODS = ("pensia", "malach", "orseau")


@dataclass(frozen=True)
class Ticket:
    """A pruned random network approximating a target on the ball ``||x||_2 <= radius``.

    ``module``: ``nn.Sequential`` of ``2 l`` bias-free Linear layers (float64) with ``torch.nn.utils.prune``
    masks; ``n_per_sign[i]``: random neurons per sign per input coordinate for target layer ``i``;
    ``hidden_widths[i] = 2 n_i d_{i-1}``; ``certified_error``: the analytic sup-error (certify.py);
    ``width_formula``: the formula that gave ``n_i``."""

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

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
                if k != "module"}


def per_weight_tolerance(ws: list[torch.Tensor], eps: float, radius: float) -> float:
    """Largest ``eps_w`` with ``propagate_bound(||W_i||, sqrt(2 d_i d_{i-1}) eps_w, r) <= eps`` (bisection on
    a log scale; the bound is increasing in ``eps_w``)."""
    wn = [float(torch.linalg.matrix_norm(w, ord=2)) for w in ws]
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


def _draw(method: str, shape: tuple[int, ...], g: torch.Generator, alpha: float, first: bool) -> torch.Tensor:
    """Random weights: Uniform[-1, 1] (pensia, malach, orseau second layer) or hyperbolic on ±[alpha, 1]
    (orseau first layer, so that the products ``|u| v`` have density ~ 1/|w| on [alpha, 1])."""
    u = torch.rand(shape, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    if method == "orseau" and first:
        return sign * alpha ** u  # log-uniform magnitude: density ∝ 1/|w| on [alpha, 1]
    return sign * u


def _select(method: str, vals: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Boolean masks (P, n) choosing a subset of each row of ``vals`` to approximate ``tgt``."""
    if method == "pensia":
        return subset_sum_exact_many(vals, tgt).masks
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


def _build_once(method: str, ws: list[torch.Tensor], ns: list[int], g: torch.Generator, alpha: float):
    layers: list[nn.Module] = []
    masks: list[torch.Tensor] = []
    max_err = 0.0
    for i, w in enumerate(ws):
        d_out, d_in = w.shape
        n = ns[i]
        h = 2 * n * d_in
        u = _draw(method, (h, d_in), g, alpha, True)
        v = _draw(method, (d_out, h), g, alpha, False)
        # block k holds hidden neurons [2nk, 2n(k+1)): first n positive, last n negative weight on input k
        blk = torch.arange(h) // (2 * n)
        pos = (torch.arange(h) % (2 * n)) < n
        diag = u[torch.arange(h), blk].abs()
        u[torch.arange(h), blk] = torch.where(pos, diag, -diag)
        mask_u = torch.zeros(h, d_in, dtype=torch.float64)
        mask_u[torch.arange(h), blk] = 1.0
        a = diag.reshape(d_in, 2, n)  # |u| per (k, sign, j)
        vv = v.reshape(d_out, d_in, 2, n)
        vals = (a[None] * vv).numpy()  # (d_out, d_in, 2, n)
        tg = np.stack([w.numpy(), -w.numpy()], axis=-1)  # (d_out, d_in, 2)
        sel = _select(method, vals.reshape(-1, n), tg.reshape(-1))
        mask_v = torch.from_numpy(sel.reshape(d_out, h).astype(np.float64))
        approx = (vals.reshape(-1, n) * sel).sum(1)
        max_err = max(max_err, float(np.abs(approx - tg.reshape(-1)).max()))
        lin_u = nn.Linear(d_in, h, bias=False).double()
        lin_v = nn.Linear(h, d_out, bias=False).double()
        with torch.no_grad():
            lin_u.weight.copy_(u)
            lin_v.weight.copy_(v)
        layers += [lin_u, nn.ReLU(), lin_v]
        if i < len(ws) - 1:
            layers.append(nn.ReLU())
        masks += [mask_u, mask_v]
    module = nn.Sequential(*layers)
    n_random = count_parameters(module)
    apply_masks(module, masks)
    return module, max_err, n_random


def construct_ticket(target: nn.Module | Network, *, method: str, eps: float, radius: float = 1.0,
                     delta: float = 0.05, seed: int | None = 0, max_attempts: int = 5,
                     n: int | None = None) -> Ticket:
    """Build a random network and a mask whose subnetwork is within ``eps`` (Euclidean norm of the output
    error) of ``target`` on ``{||x||_2 <= radius}``, with an analytic certificate.

    ``target``: bias-free ``Linear``/``ReLU`` network. ``delta``: failure probability budget of the random
    draw (enters the width). ``n``: override the formula's neurons per sign (used to *measure* the width
    needed, see :func:`measured_width`). Raises :class:`InvalidParameterError` if ``max_attempts`` draws all
    fail.
    """
    if method not in _METHODS:
        raise InvalidParameterError(f"method must be one of {_METHODS}; got {method!r}")
    eps = check_probability("eps", eps)
    delta = check_probability("delta", delta)
    radius = check_positive("radius", radius)
    max_attempts = check_positive_int("max_attempts", max_attempts)
    t0 = time.perf_counter()
    ws = target_weights(target)
    eps_w = per_weight_tolerance(ws, eps, radius)
    n_problems = sum(2 * w.numel() for w in ws)
    w_max = max(float(w.abs().max()) for w in ws)
    formula = _FORMULAS[method]
    if n is None:
        n = required_width(method, eps_w=eps_w, n_problems=n_problems, delta=delta, w_max=w_max)
    else:
        n = check_positive_int("n", n)
        formula = "given"
    if method == "pensia" and n > 30:
        raise InvalidParameterError(
            f"pensia construction needs n={n} > 30 neurons per sign for eps_w={eps_w:.3g}; exact subset sum "
            "over more values is out of reach -- increase eps or use method='orseau'"
        )
    ns = [n] * len(ws)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    for attempt in range(1, max_attempts + 1):  # noqa: B007
        module, max_err, n_random = _build_once(method, ws, ns, g, alpha=eps_w)
        tl = Network.from_module(module).layers
        d_norms, w_norms = [], []
        for i, w in enumerate(ws):
            u_i, v_i = tl[2 * i].weight_matrix().detach(), tl[2 * i + 1].weight_matrix().detach()
            d = pair_error_matrices(u_i, v_i, w)
            d_norms.append(float(torch.linalg.matrix_norm(d, ord=2)))
            w_norms.append(float(torch.linalg.matrix_norm(w, ord=2)))
        cert = propagate_bound(w_norms, d_norms, radius)[-1]
        if cert <= eps:
            break
    else:
        raise InvalidParameterError(
            f"{method} construction did not reach eps={eps} in {max_attempts} draws "
            f"(last certificate {cert:.4g})"
        )
    widths = (ws[0].shape[1],) + tuple(w.shape[0] for w in ws)
    return Ticket(module, method, eps, delta, radius, widths, tuple(ns),
                  tuple(2 * ns[i] * ws[i].shape[1] for i in range(len(ws))), eps_w, max_err, cert, n_random,
                  count_nonzero(module), formula, attempt, seed, time.perf_counter() - t0)


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
