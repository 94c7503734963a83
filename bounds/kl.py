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

Outward rounding: the Newton root is only accurate to a few ulps, and at small budgets (``c`` around 1e-8)
half of those errors would fall on the optimistic side.  Every returned upper inverse is therefore *verified*
and, if needed, moved up: ``kl(q || p)`` is re-evaluated with a cancellation-free formula whose relative error
is below 1.2e-14 (:func:`_kl_accurate`), and ``p`` is increased (doubling steps) until
``kl(q || p) (1 - 1e-13) >= c``; as ``kl(q || .)`` increases on ``[q, 1]`` this proves ``p >= `` the exact
root.  The lower inverse is moved down the same way.  The closed forms at the edges are moved two ulps
outward (``q = 0``: ``1 - exp(-c)`` by ``expm1``; ``q = 1`` for the lower inverse: ``exp(-c)``; both accurate
to one ulp in the platform's libm).  Cost: about one extra kl evaluation per entry; the result lies
within relative 1e-13 of the gap ``|p - q|`` (or a few ulps) of the exact root, on the safe side.

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
    """Outward-rounded upper inverse on float64 arrays (domain already validated)."""
    q, c = np.broadcast_arrays(np.asarray(q, np.float64), np.asarray(c, np.float64))
    p = _kl_inv_upper_raw(q, c)
    # q = 0: p = 1 - exp(-c) in closed form; expm1 is accurate to 1 ulp, so two ulps up are outward
    z = (q == 0) & (c > 0) & np.isfinite(c)
    if z.any():
        p[z] = np.minimum(np.nextafter(np.nextafter(p[z], 2.0), 2.0), 1.0)
    m = (c > 0) & np.isfinite(c) & (0 < q) & (q < 1)
    if m.any():
        qm, cm, pm = q[m], c[m], p[m]
        sm = cm < _POLISH_BELOW
        if sm.any():
            pm[sm] = _polish(qm[sm], cm[sm], pm[sm], True)
        p[m] = _outward(qm, cm, pm, upper=True)
    return p


def _kl_inv_lower_np(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Outward-rounded lower inverse: ``1 - upper(1 - q)`` as the start, then moved down until verified."""
    q, c = np.broadcast_arrays(np.asarray(q, np.float64), np.asarray(c, np.float64))
    p = 1.0 - _kl_inv_upper_raw(1.0 - q, c)
    p = np.where(c == 0, q, p)
    p = np.where(np.isinf(c) | (q == 0), 0.0, p)
    # q = 1: p = exp(-c) in closed form (accurate to 1 ulp), two ulps down are outward
    one = (q == 1) & (c > 0) & np.isfinite(c)
    p = np.where(one, np.maximum(np.nextafter(np.nextafter(np.exp(-c), -1.0), -1.0), 0.0), p)
    m = (c > 0) & np.isfinite(c) & (0 < q) & (q < 1)
    if m.any():
        qm, cm, pm = q[m], c[m], p[m]
        sm = (cm < _POLISH_BELOW) | (pm < 0.5 * qm)
        if sm.any():
            pm[sm] = _polish(qm[sm], cm[sm], pm[sm], False)
        p[m] = _outward(qm, cm, pm, upper=False)
    return p


def _kl_inv_upper_raw(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Newton solver on broadcast float64 arrays (domain already validated); not outward-rounded."""
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


# ------------------------------------------------------------------------------- outward rounding
#: coefficients of S(u) = sum_k u^k / (2k + 3), u = t^2 <= 1/49 (10 terms: truncation < 1e-17 relative)
_S_COEF = 1.0 / (2.0 * np.arange(10)[::-1] + 3.0)
_POLISH_BELOW = 1e-5  # budgets under which the s-space Newton's absolute stopping rule is too coarse
_KL_REL = 1e-13  # margin on the relative error of _kl_accurate (about 50 roundings of 1.1e-16 each: < 1.2e-14)


def _phi(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``phi(x) = x - ln(1 + x) >= 0`` for ``x > -1`` without cancellation; ``r`` is ``1 + x`` computed
    independently (used where ``x <= -1/4``).  ``|x| < 1/4``: with ``t = x / (2 + x)``,
    ``ln(1 + x) = 2 atanh t``, so ``phi = x t - 2 t^3 S(t^2)`` (a positive leading term minus one at most a
    tenth of it); ``x >= 1/4``: ``x - log1p(x)``; ``x <= -1/4``: ``x - ln r``.  In the log branches the
    cancelling terms are at most 18 times ``phi`` (worst at ``x = 1/4``), so the relative error stays below
    about 40 roundings."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xs = np.clip(x, -0.25, 0.25)
        t = xs / (2.0 + xs)
        u = t * t
        s = np.full_like(t, _S_COEF[0])
        for a in _S_COEF[1:]:
            s *= u
            s += a
        series = xs * t - 2.0 * t * u * s
        logs = x - np.where(x >= 0, np.log1p(np.maximum(x, 0.0)), np.log(r))
    return np.where(np.abs(x) < 0.25, series, logs)


def _kl_accurate(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``kl(q || p)`` as ``q phi(d/q) + (1-q) phi(-d/(1-q))`` with ``d = p - q`` (the linear parts cancel
    exactly, both terms are >= 0), so there is no cancellation between terms even when ``p`` is within an ulp
    of ``q``.  ``q = 0`` (resp. 1) contributes the limit ``d`` (resp. ``-d``).  For the outward-rounding check
    only; relative error below 1.2e-14 for normal floats."""
    d = p - q
    omq = 1.0 - q
    omp = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        qs = np.where(q > 0, q, 1.0)
        xa = d / qs
        fa = _phi(np.where(np.isfinite(xa), xa, 0.0), p / qs)
        # x overflowed (q subnormal or tiny): phi(x) ~ x - ln(p/q), so q phi = d - q (ln p - ln q)
        fa_big = d - q * (np.log(p) - np.log(qs))
        a = np.where(q > 0, np.where(np.isfinite(xa), q * fa, fa_big), d)
        oms = np.where(omq > 0, omq, 1.0)
        xb = -d / oms
        fb = _phi(np.where(np.isfinite(xb), xb, 0.0), omp / oms)
        b = np.where(omq > 0, omq * fb, -d)
    out = a + b
    return np.where(np.isnan(out), np.inf, out)


def _polish(q: np.ndarray, c: np.ndarray, p: np.ndarray, upper: bool, iters: int = 3) -> np.ndarray:
    """Newton on ``F(p) = sqrt(kl(q||p)) - sqrt(c)`` with the accurate kl: ``sqrt(kl)`` is nearly linear in
    ``p - q``, so this resolves tiny budgets (``c`` down to 1e-300) that the ``s``-space solver, whose
    stopping rule is an absolute ``|kl - c|`` near 1e-15, cannot.  Kept on the right branch."""
    if not upper:  # roots far below q: kl is nearly linear in ln p there, so Newton in ln p first
        far = (p < 0.5 * q) & (p > 0)
        if far.any():
            qf, cf, lp = q[far], c[far], np.log(p[far])
            for _ in range(6):
                pf = np.exp(lp)
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    nxt = lp - (_kl_accurate(qf, pf) - cf) * (1.0 - pf) / (pf - qf)
                lp = np.where(np.isfinite(nxt), np.minimum(nxt, np.log(qf)), lp)
            p = p.copy()
            p[far] = np.exp(lp)
    sc = np.sqrt(c)
    for _ in range(iters):
        k = _kl_accurate(q, p)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            sk = np.sqrt(k)
            dk = (p - q) / (p * (1.0 - p))
            nxt = p - 2.0 * sk * (sk - sc) / dk
            # at p == q (k = 0) restart from the second-order root q +- sqrt(2 q (1-q) c)
            quad = q + (1.0 if upper else -1.0) * np.sqrt(2.0 * q * (1.0 - q) * c)
        nxt = np.where(k == 0, quad, nxt)
        ok = np.isfinite(nxt)
        nxt = np.clip(nxt, q, 1.0) if upper else np.clip(nxt, 0.0, q)
        p = np.where(ok, nxt, p)
    return p


def _outward(q: np.ndarray, c: np.ndarray, p: np.ndarray, upper: bool) -> np.ndarray:
    """Move approximate roots ``p`` of ``kl(q || p) = c`` outward (up for the upper inverse, down for the
    lower) until ``_kl_accurate(q, p) (1 - _KL_REL) >= c``, which proves that ``p`` is at least (at most) the
    exact root.  ``p`` at 1 (0) needs no check.  Each failing entry moves by the quadratic-model estimate of the
    missing distance (the smaller of a Newton step
    and a quadratic-model step) plus a step that starts at one ulp and doubles per round.  Vectorised; the working set
    shrinks to the entries that still fail."""
    p = np.clip(p, q, 1.0) if upper else np.clip(p, 0.0, q)
    edge = 1.0 if upper else 0.0
    sgn = 1.0 if upper else -1.0
    idx = np.flatnonzero(p != edge)
    if idx.size == 0:
        return p
    qi, ci, pi = q[idx], c[idx], p[idx]
    # the start is usually within ulps of the root: pre-shift it by the margin's worth, so most entries pass
    # the first check
    g0 = np.abs(pi - qi)
    with np.errstate(divide="ignore", invalid="ignore"):
        pre = np.fmin(4.0 * _KL_REL * ci * pi * (1.0 - pi) / g0, 2.0 * _KL_REL * g0)
    pre = np.where(np.isfinite(pre), pre, 0.0) + 2.0 * np.spacing(pi)
    pi = np.minimum(pi + pre, 1.0) if upper else np.maximum(pi - pre, 0.0)
    step = np.zeros_like(pi)
    for _ in range(2100):  # doubling steps cross [0, 1] from the smallest subnormal in < 1100 rounds
        k = _kl_accurate(qi, pi) * (1.0 - _KL_REL)
        bad = ~((k >= ci) | (pi == edge))
        if not bad.any():
            break
        sel = np.flatnonzero(bad)
        qb, cb, pb, kb = qi[sel], ci[sel], pi[sel], k[sel]
        g = np.abs(pb - qb)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            quad = g * (np.sqrt(cb / kb) - 1.0)  # kl ~ g^2 near q
            newton = (cb - kb) * pb * (1.0 - pb) / g  # kl is convex in p: a Newton step never stops short
            extra = np.fmin(np.where(quad > 0, quad, np.inf), np.where(newton > 0, newton, np.inf))
        extra = np.where(np.isfinite(extra), extra, 0.0)
        st = np.maximum(2.0 * step[sel], np.spacing(np.maximum(pb, np.finfo(np.float64).tiny)))
        nxt = pb + sgn * (extra + st)
        pi[sel] = np.minimum(nxt, 1.0) if upper else np.maximum(nxt, 0.0)
        step[sel] = st
        keep = np.zeros(pi.shape, bool)
        keep[sel] = True
        p[idx[~keep]] = pi[~keep]  # verified: final
        idx, qi, ci, pi, step = idx[keep], qi[keep], ci[keep], pi[keep], step[keep]
    p[idx] = pi
    return p


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
        p = torch.from_numpy(_kl_inv_lower_np(qn, cn)).to(device=q.device)
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

    Never below the exact value (outward rounding, module docstring) and within a few ulps above it.
    Torch inputs give a differentiable float64 tensor.
    """
    if _is_torch(q, c):
        return _KLInvUpper.apply(*_to_torch_pair(q, c))
    qn, cn = _prepare(q, c)
    return _scalar_out(_kl_inv_upper_np(qn, cn), q, c)


def kl_inverse_lower(q: Any, c: Any) -> Any:
    """``min{p in [0, q] : kl(q||p) <= c}`` (elementwise): ``1 - kl_inverse_upper(1-q, c)`` as the start,
    then rounded outward (never above the exact value)."""
    if _is_torch(q, c):
        return _KLInvLower.apply(*_to_torch_pair(q, c))
    qn, cn = _prepare(q, c)
    return _scalar_out(_kl_inv_lower_np(qn, cn), q, c)
