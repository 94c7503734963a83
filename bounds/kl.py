"""Binary KL divergence and its inverses, vectorised over numpy arrays and torch tensors.

``kl(q || p) = q ln(q/p) + (1-q) ln((1-q)/(1-p))`` (with ``0 ln 0 = 0``) is the divergence between
Bernoulli(q) and Bernoulli(p).  PAC-Bayes and Occam bounds in kl form (Langford & Seeger 2001; Maurer 2004;
Langford 2005) read ``kl(emp || risk) <= c``; the certified risk is the *upper inverse*

    kl_inverse_upper(q, c) = max{ p in [q, 1] : kl(q || p) <= c },

and the *lower inverse* ``kl_inverse_lower(q, c) = min{ p in [0, q] : kl(q || p) <= c }``.

Numerics: float64, safeguarded Newton iterations in ``s = -ln(1-p)`` inside a shrinking bracket (a Newton
step that leaves the bracket is replaced by bisection).  In ``s`` the function ``kl(q || 1 - e^-s)`` is
convex, increasing on ``s >= -ln(1-q)`` and asymptotically linear, and the start
``min(-ln(1 - q - sqrt(c/2)), (c + H(q)) / (1-q))`` lies right of the root (Pinsker's inequality, and
``kl >= -H(q) + (1-q) s``), so Newton descends monotonically and fast even for roots within 1e-300 of 1.
Closed forms at the edges: ``q = 0`` gives ``p = 1 - exp(-c)``; ``c = 0`` gives ``q``; ``c = inf`` or
``q = 1`` gives ``1``.  The lower inverse uses ``kl(q||p) = kl(1-q||1-p)``.  Roots closer to 1 than float64
resolves come back as the nearest float (possibly 1.0).

Torch inputs are differentiable: the gradient comes from the implicit function theorem applied to
``F(q, c, p) = kl(q||p) - c = 0``:

    dp/dc = 1 / d_p kl = p (1-p) / (p - q),
    dp/dq = - d_q kl / d_p kl,   d_q kl = ln(q (1-p) / (p (1-q))).

At saturated points (``p`` = 0 or 1) both derivatives are set to 0; at ``c = 0`` (``p = q``) ``dp/dq = 1``
and ``dp/dc = +inf`` (the inverse has a square-root singularity there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import xlogy

from prunebound.errors import InvalidParameterError

__all__ = ["kl_bernoulli", "kl_inverse_upper", "kl_inverse_lower"]

_MAX_ITER = 100
_PLAIN_NEWTON = 4
_ONE_MINUS = np.nextafter(1.0, 0.0)


def _check_domain(q: np.ndarray, c: np.ndarray | None = None) -> None:
    if np.isnan(q).any() or (q < 0).any() or (q > 1).any():
        bad = q[np.isnan(q) | (q < 0) | (q > 1)].ravel()[0]
        raise InvalidParameterError(f"q (empirical risk) must lie in [0, 1]; got {bad!r}")
    if c is not None and (np.isnan(c).any() or (c < 0).any()):
        bad = c[np.isnan(c) | (c < 0)].ravel()[0]
        raise InvalidParameterError(f"c (kl budget) must be >= 0 (inf allowed); got {bad!r}")


def _kl_np(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = xlogy(q, q) - xlogy(q, p) + xlogy(1 - q, 1 - q) - xlogy(1 - q, 1 - p)
    return np.where(np.isnan(out), np.inf, out)


def _kl_inv_upper_np(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Core solver on broadcast float64 arrays (domain already validated)."""
    q, c = np.broadcast_arrays(np.asarray(q, np.float64), np.asarray(c, np.float64))
    out = np.empty(q.shape, np.float64)
    q0 = q == 0
    done = q0 | (q == 1) | (c == 0) | np.isinf(c)
    if not done.any():  # fast path: no edge cases
        out.ravel()[:] = _solve_interior(q.ravel(), c.ravel())
        return out
    with np.errstate(over="ignore"):
        out[q0] = -np.expm1(-c[q0])  # kl(0||p) = -ln(1-p)
    out[~q0 & (q == 1)] = 1.0
    m = ~q0 & (q < 1)
    out[m & (c == 0)] = q[m & (c == 0)]
    out[m & np.isinf(c) & (c != 0)] = 1.0
    idx = np.flatnonzero(~done)
    if idx.size == 0:
        return out
    out.ravel()[idx] = _solve_interior(q.ravel()[idx], c.ravel()[idx])
    return out


def _solve_interior(qq: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """Upper inverse for 0 < q < 1 and 0 < c < inf (1-D float64 arrays)."""
    qq = np.ascontiguousarray(qq, np.float64)
    cc = np.ascontiguousarray(cc, np.float64)
    # Newton in s = -ln(1 - p): f(s) = kl(q || 1 - e^-s) - c is convex, increasing for s > -ln(1 - q)
    # and asymptotically linear, so Newton from the right converges fast even for roots extremely close to 1
    l1 = np.log1p(-qq)
    neg_h = qq * np.log(qq) + (1 - qq) * l1  # -H(q); 0 < q < 1 here
    lo = -l1  # f(lo) = -c < 0
    s_lin = (cc - neg_h) / (1 - qq)  # kl >= -H(q) + (1-q) s, so this point is right of the root
    with np.errstate(divide="ignore"):
        s_pin = -np.log1p(-np.minimum(qq + np.sqrt(cc / 2.0), 1.0))  # Pinsker: right of the root (inf if >= 1)
    s = np.minimum(s_lin, s_pin)
    hi = s.copy()
    # phase 1: plain Newton on the whole array (monotone from the right for a convex increasing function),
    # then clipped into the initial bracket so that rounding can never leave it
    qa, ca, nh, omq = qq, cc, neg_h, 1 - qq
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        step = np.full_like(s, np.inf)
        for _ in range(_PLAIN_NEWTON):
            pa = -np.expm1(-s)
            f = nh - qa * np.log(pa) + omq * s - ca
            step = f / (omq - qa * (1 - pa) / pa)
            s = s - step
        s = np.clip(np.nan_to_num(s, nan=0.0, posinf=np.inf), lo, hi)
    # entries whose last (quadratically convergent) step was already below 1e-12 relative are done; the rest
    # go to phase 2 (safeguarded Newton + bisection), whose working set shrinks as entries converge
    pending = ~(np.abs(step) <= 1e-12 * np.maximum(1.0, s))
    pos = np.flatnonzero(pending)
    qa, ca, nh, omq, lo, hi = qa[pos], ca[pos], nh[pos], omq[pos], lo[pos], hi[pos]
    sa = s[pos]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for _ in range(_MAX_ITER):
            if pos.size == 0:
                break
            pa = -np.expm1(-sa)
            t_log = qa * np.log(pa)  # q > 0 here
            oq_s = omq * sa
            f = nh - t_log + oq_s - ca
            left = f < 0
            lo_a = np.where(left, sa, lo)
            hi_a = np.where(left, hi, sa)
            newton = sa - f / (omq - qa * (1 - pa) / pa)
            tol = 4e-15 * np.maximum(1.0, sa)
            fin = np.isfinite(newton)
            small = fin & (np.abs(newton - sa) <= tol)
            ok = fin & (newton >= lo_a) & (newton <= hi_a)
            # |f| at the rounding level of its own evaluation: nothing more can be resolved
            noise = 1e-15 * (np.abs(nh) + np.abs(t_log) + oq_s + ca)
            conv = small | (np.abs(f) <= noise) | (hi_a - lo_a <= tol)
            nxt = np.where(conv, sa, np.where(ok, newton, 0.5 * (lo_a + hi_a)))
            s[pos] = nxt
            keep = ~conv
            pos, omq, qa, ca, nh, sa, lo, hi = (
                pos[keep],
                omq[keep],
                qa[keep],
                ca[keep],
                nh[keep],
                nxt[keep],
                lo_a[keep],
                hi_a[keep],
            )
    return -np.expm1(-s)


def _prepare(q: Any, c: Any) -> tuple[np.ndarray, np.ndarray]:
    qn = np.asarray(q, dtype=np.float64)
    cn = np.asarray(c, dtype=np.float64)
    _check_domain(qn, cn)
    return qn, cn


def _grads(q: torch.Tensor, c: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Implicit-function derivatives (dp/dq, dp/dc) of a root of kl(q||p) = c (any branch)."""
    dkl_dp = (p - q) / (p * (1 - p))
    dkl_dq = torch.log(q * (1 - p)) - torch.log(p * (1 - q))
    dq = -dkl_dq / dkl_dp
    dc = 1.0 / dkl_dp
    sat = (p <= 0) | (p >= 1)
    at_q = (p == q) & ~sat
    dq = torch.where(at_q, torch.ones_like(dq), dq)
    dc = torch.where(at_q, torch.full_like(dc, float("inf")), dc)
    dq = torch.where(sat, torch.zeros_like(dq), dq)
    dc = torch.where(sat, torch.zeros_like(dc), dc)
    # q = 0 or 1 with p inside (0, 1): d_q kl is infinite there; use the one-sided limit 0 for stability
    dq = torch.where(torch.isnan(dq), torch.zeros_like(dq), dq)
    return dq, dc


class _KLInvUpper(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        qn, cn = _prepare(q.detach().cpu().double().numpy(), c.detach().cpu().double().numpy())
        p = torch.from_numpy(_kl_inv_upper_np(qn, cn)).to(device=q.device)
        ctx.save_for_backward(q.double(), c.double(), p)
        return p

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, c, p = ctx.saved_tensors
        qb, cb, pb = torch.broadcast_tensors(q, c, p)
        dq, dc = _grads(qb, cb, pb)
        return _reduce(grad * dq, q.shape), _reduce(grad * dc, c.shape)


class _KLInvLower(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        qn, cn = _prepare(q.detach().cpu().double().numpy(), c.detach().cpu().double().numpy())
        p = torch.from_numpy(1.0 - _kl_inv_upper_np(1.0 - qn, cn)).to(device=q.device)
        ctx.save_for_backward(q.double(), c.double(), p)
        return p

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, c, p = ctx.saved_tensors
        qb, cb, pb = torch.broadcast_tensors(q, c, p)
        dq, dc = _grads(qb, cb, pb)
        dc = torch.where(torch.isinf(dc), -dc, dc)  # on the lower branch p decreases with c
        return _reduce(grad * dq, q.shape), _reduce(grad * dc, c.shape)


def _reduce(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while g.dim() > len(shape):
        g = g.sum(0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdim=True)
    return g


def _is_torch(*xs: Any) -> bool:
    return any(isinstance(x, torch.Tensor) for x in xs)


def _to_torch_pair(q: Any, c: Any) -> tuple[torch.Tensor, torch.Tensor]:
    dev = next(x.device for x in (q, c) if isinstance(x, torch.Tensor))
    qt = q if isinstance(q, torch.Tensor) else torch.as_tensor(q, dtype=torch.float64, device=dev)
    ct = c if isinstance(c, torch.Tensor) else torch.as_tensor(c, dtype=torch.float64, device=dev)
    return qt.double(), ct.double()


def _scalar_out(x: np.ndarray, *inputs: Any) -> Any:
    if all(np.ndim(v) == 0 and not isinstance(v, np.ndarray) for v in inputs):
        return float(x)
    return x


def kl_bernoulli(q: Any, p: Any) -> Any:
    """``kl(q || p) = q ln(q/p) + (1-q) ln((1-q)/(1-p))`` for q, p in [0, 1] (``+inf`` where p hits 0 or 1 and
    q does not).  numpy/scalars in, numpy/float out; torch in, differentiable float64 torch out."""
    if _is_torch(q, p):
        qt, pt = _to_torch_pair(q, p)
        _check_domain(qt.detach().cpu().numpy())
        _check_domain(pt.detach().cpu().numpy())
        out = (
            torch.xlogy(qt, qt)
            - torch.xlogy(qt, pt)
            + torch.xlogy(1 - qt, 1 - qt)
            - torch.xlogy(1 - qt, 1 - pt)
        )
        return torch.where(torch.isnan(out), torch.full_like(out, float("inf")), out)
    qn = np.asarray(q, np.float64)
    pn = np.asarray(p, np.float64)
    _check_domain(qn)
    _check_domain(pn)
    return _scalar_out(_kl_np(qn, pn), q, p)


def kl_inverse_upper(q: Any, c: Any) -> Any:
    """``max{p in [q, 1] : kl(q||p) <= c}`` (elementwise, broadcasting).

    ``q`` in [0, 1], ``c`` >= 0 (inf allowed).

    Accurate to ~1e-15 absolute in float64.  Torch inputs give a differentiable float64 tensor.
    """
    if _is_torch(q, c):
        return _KLInvUpper.apply(*_to_torch_pair(q, c))
    qn, cn = _prepare(q, c)
    return _scalar_out(_kl_inv_upper_np(qn, cn), q, c)


def kl_inverse_lower(q: Any, c: Any) -> Any:
    """``min{p in [0, q] : kl(q||p) <= c}`` (elementwise), via ``1 - kl_inverse_upper(1-q, c)``."""
    if _is_torch(q, c):
        return _KLInvLower.apply(*_to_torch_pair(q, c))
    qn, cn = _prepare(q, c)
    return _scalar_out(1.0 - _kl_inv_upper_np(1.0 - qn, cn), q, c)
