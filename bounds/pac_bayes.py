"""PAC-Bayes and Occam bounds on the risk of a (stochastic) classifier with the 0-1 loss, in float64.

Notation: ``n`` i.i.d. training examples, ``emp`` the empirical risk of the posterior Q (or of the single
hypothesis h), ``KL = KL(Q || P)`` in nats for a data-independent prior P, confidence ``1 - delta``.

* :func:`mcallester_bound` -- McAllester (1999) in Maurer's (2004) square-root form:
  ``L(Q) <= emp + sqrt((KL + ln(2 sqrt(n) / delta)) / (2 n))``.
* :func:`kl_bound` -- Langford & Seeger (2001) / Maurer (2004), Theorem 5:
  ``kl(emp || L(Q)) <= (KL + ln(2 sqrt(n) / delta)) / n``, so ``L(Q) <= kl^{-1}(emp, that)``.
* :func:`catoni_bound` -- Catoni (2007), Theorem 1.2.6: for a fixed ``C > 0``,
  ``L(Q) <= (1 - exp(-C emp - (KL + ln(1/delta)) / n)) / (1 - exp(-C))``; minimised over a geometric grid of
  ``K`` values of C with ``delta / K`` for each (union bound).
* :func:`occam_bound` -- Occam's razor for a countable class with prior ``2^{-bits}`` (prefix-free code;
  Langford 2005, "Tutorial on practical prediction theory", Theorem 4.6 in kl form):
  ``kl(emp || L(h)) <= (bits ln 2 + ln(1/delta)) / n``; or the Hoeffding relaxation
  ``L(h) <= emp + sqrt((bits ln 2 + ln(1/delta)) / (2 n))``.
* :func:`sample_convergence_bound` -- Langford & Caruana (2001): a Monte-Carlo estimate ``emp_hat`` of the
  stochastic empirical risk from ``m`` posterior samples (each sample's error in [0, 1]) satisfies, with
  probability ``>= 1 - delta'`` over the samples, ``emp <= kl^{-1}(emp_hat, ln(1/delta') / m)`` (one-sided
  Chernoff bound; Dziugaite & Roy 2017 use the two-sided ``ln(2/delta')``, which is looser).
  Because ``kl^{-1}`` is increasing in its first argument, plugging this upper bound into :func:`kl_bound`
  with ``delta - delta'`` gives a bound that holds with probability ``>= 1 - delta`` (:func:`split_delta`,
  :func:`combine_deltas`).

Every function validates its inputs and returns :class:`~prunebound.certificate.BoundTerms` with
``value``, ``empirical`` and ``complexity = value - empirical`` plus named ``parts``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prunebound.bounds.kl import kl_inverse_upper
from prunebound.certificate import BoundTerms
from prunebound.errors import InvalidParameterError, check_positive, check_positive_int, check_probability

__all__ = [
    "mcallester_bound",
    "kl_bound",
    "catoni_bound",
    "occam_bound",
    "sample_convergence_bound",
    "split_delta",
    "combine_deltas",
    "kl_gaussians",
]


def _check_common(emp: float, n: int, delta: float, kl: float | None = None) -> tuple[float, int, float]:
    emp = check_probability("emp_error", emp, open_left=False, open_right=False)
    n = check_positive_int("n", n)
    delta = check_probability("delta", delta)
    if kl is not None:
        try:
            k = float(kl)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"kl must be a number >= 0; got {kl!r}") from None
        if not (k >= 0) or math.isnan(k):
            raise InvalidParameterError(f"kl (KL(Q||P) in nats) must be >= 0; got {kl!r}")
    return emp, n, delta


def _terms(value: float, emp: float, parts: dict) -> BoundTerms:
    value = float(min(max(value, emp), 1.0)) if math.isfinite(value) else 1.0
    return BoundTerms(
        value=value,
        empirical=float(emp),
        complexity=float(value - emp),
        parts={k: float(v) for k, v in parts.items()},
    )


def mcallester_bound(emp_error: float, kl: float, n: int, *, delta: float) -> BoundTerms:
    """McAllester's bound, Maurer's form: ``emp + sqrt((KL + ln(2 sqrt(n)/delta)) / (2n))`` (capped at 1)."""
    emp, n, delta = _check_common(emp_error, n, delta, kl)
    log_term = math.log(2.0 * math.sqrt(n) / delta)
    rad = math.sqrt((float(kl) + log_term) / (2.0 * n))
    return _terms(
        emp + rad, emp, {"kl": kl, "ln_2sqrtn_over_delta": log_term, "radius": rad, "n": n, "delta": delta}
    )


def kl_bound(emp_error: float, kl: float, n: int, *, delta: float) -> BoundTerms:
    """Langford-Seeger / Maurer: ``kl^{-1}(emp, (KL + ln(2 sqrt(n)/delta)) / n)``."""
    emp, n, delta = _check_common(emp_error, n, delta, kl)
    log_term = math.log(2.0 * math.sqrt(n) / delta)
    budget = (float(kl) + log_term) / n
    value = kl_inverse_upper(emp, budget)
    return _terms(
        value, emp, {"kl": kl, "ln_2sqrtn_over_delta": log_term, "kl_budget": budget, "n": n, "delta": delta}
    )


def catoni_bound(
    emp_error: float, kl: float, n: int, *, delta: float, grid: Sequence[float] | None = None
) -> BoundTerms:
    """Catoni's bound minimised over a grid of C with ``delta/len(grid)`` per point.

    ``grid`` defaults to the geometric grid ``C = 2^k / 8, k = 0..9`` (fixed before seeing data).  The
    returned ``parts`` contain the chosen ``C`` and the grid size.
    """
    emp, n, delta = _check_common(emp_error, n, delta, kl)
    cs = np.asarray(grid if grid is not None else 2.0 ** np.arange(10) / 8.0, dtype=np.float64)
    if cs.ndim != 1 or cs.size == 0 or not np.all(np.isfinite(cs)) or np.any(cs <= 0):
        raise InvalidParameterError(f"grid must be a non-empty list of finite C > 0; got {grid!r}")
    d_each = delta / cs.size
    expo = cs * emp + (float(kl) + math.log(1.0 / d_each)) / n
    vals = -np.expm1(-expo) / -np.expm1(-cs)
    i = int(np.argmin(vals))
    return _terms(
        float(vals[i]),
        emp,
        {
            "kl": kl,
            "C": float(cs[i]),
            "grid_size": cs.size,
            "ln_1_over_delta_each": math.log(1.0 / d_each),
            "n": n,
            "delta": delta,
        },
    )


def occam_bound(emp_error: float, bits: float, n: int, *, delta: float, form: str = "kl") -> BoundTerms:
    """Occam bound for a hypothesis with a prefix-free code of ``bits`` bits (prior ``2^{-bits}``).

    ``form="kl"``: ``kl^{-1}(emp, (bits ln 2 + ln(1/delta)) / n)``; ``form="hoeffding"``:
    ``emp + sqrt((bits ln 2 + ln(1/delta)) / (2n))``.  Assumes the code (the decoder) was fixed before the
    data were seen and that ``emp_error`` is the error of the decoded hypothesis on the ``n`` examples.
    """
    emp, n, delta = _check_common(emp_error, n, delta)
    b = check_positive("bits", bits, allow_zero=True)
    complexity_nats = b * math.log(2.0) + math.log(1.0 / delta)
    if form == "kl":
        value = kl_inverse_upper(emp, complexity_nats / n)
    elif form == "hoeffding":
        value = emp + math.sqrt(complexity_nats / (2.0 * n))
    else:
        raise InvalidParameterError(f"form must be 'kl' or 'hoeffding'; got {form!r}")
    return _terms(
        value,
        emp,
        {
            "bits": b,
            "bits_nats": b * math.log(2.0),
            "ln_1_over_delta": math.log(1 / delta),
            "n": n,
            "delta": delta,
        },
    )


def sample_convergence_bound(emp_estimate: float, m: int, *, delta: float) -> BoundTerms:
    """Upper bound on the stochastic empirical risk from a Monte-Carlo estimate over ``m`` posterior samples.

    ``emp_estimate`` is the mean of ``m`` i.i.d. values in [0, 1] (per-sample training errors);
    returns ``kl^{-1}(emp_estimate, ln(1/delta) / m)`` (Langford & Caruana 2001, one-sided Chernoff).
    """
    emp, m, delta = _check_common(emp_estimate, m, delta)
    value = kl_inverse_upper(emp, math.log(1.0 / delta) / m)
    return _terms(value, emp, {"m": m, "delta": delta})


def split_delta(delta: float, fraction: float) -> tuple[float, float]:
    """Split ``delta`` into ``(delta * (1 - fraction), delta * fraction)``; the pieces sum to ``delta``."""
    delta = check_probability("delta", delta)
    fraction = check_probability("fraction", fraction)
    return delta * (1.0 - fraction), delta * fraction


def combine_deltas(*deltas: float) -> float:
    """Union bound: events failing with probabilities ``deltas`` fail jointly with prob. <= their sum."""
    total = 0.0
    for i, d in enumerate(deltas):
        total += check_probability(f"deltas[{i}]", d)
    if total >= 1:
        raise InvalidParameterError(
            f"the deltas sum to {total} >= 1; the combined statement would be vacuous"
        )
    return total


def kl_gaussians(mu_q, sigma_q, mu_p, sigma_p) -> float:
    """``KL(N(mu_q, diag sigma_q^2) || N(mu_p, diag sigma_p^2))`` in nats (float64), broadcasting scalars:

    ``sum_i [ ln(sigma_p/sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2 ]``.
    Accepts numpy arrays, torch tensors (converted) or floats.
    """

    def arr(x, name):
        try:
            import torch

            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().double().numpy()
        except ImportError:  # pragma: no cover
            pass
        a = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise InvalidParameterError(f"{name} contains NaN or inf")
        return a

    mq, sq, mp, sp = arr(mu_q, "mu_q"), arr(sigma_q, "sigma_q"), arr(mu_p, "mu_p"), arr(sigma_p, "sigma_p")
    if np.any(sq <= 0) or np.any(sp <= 0):
        raise InvalidParameterError("sigma_q and sigma_p must be > 0")
    try:
        mq, sq, mp, sp = np.broadcast_arrays(mq, sq, mp, sp)
    except ValueError as e:
        raise InvalidParameterError(
            f"shapes do not broadcast: {mq.shape}, {sq.shape}, {mp.shape}, {sp.shape}"
        ) from e
    r = (sq / sp) ** 2
    terms = 0.5 * (r - 1.0 - np.log(r)) + 0.5 * ((mq - mp) / sp) ** 2
    return float(np.sum(terms))
