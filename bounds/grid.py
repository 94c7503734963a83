"""The best of a grid of certificates, with the union bound paid: one certificate at the overall confidence.

Trying ``K`` hyperparameter points (sparsity x bits, ...) and reporting the best bound is a multiple-testing
problem: each point's certificate at confidence ``1 - δ`` only gives ``1 - K δ`` for the minimum.  The union
bound (Bonferroni) fixes it: certify every point at ``δ / K``; then with probability ``>= 1 - δ`` *all* ``K``
bounds hold simultaneously, so the smallest one holds too (e.g. Langford 2005, Sec. 4.6; Lotfi et al. 2022
pay the same union as ``log2 K`` bits of prior).  The grid must be fixed before looking at the data.

:func:`grid_certificate` (certifier kind ``"grid_best"``) wraps the inner certifier of the chosen point: its
``delta`` is the overall ``δ``; ``parts`` add ``grid_size`` (the ``K`` paid), ``grid_points`` and
``delta_each = δ / K``; ``params`` record the
inner ``method``, the whole ``grid`` and the chosen ``point``.  :func:`prunebound.certificate.verify`
recomputes the inner certificate at ``δ / K``.  ``pay_for_grid=False`` certifies at ``δ`` per point -- an
*invalid* bound for the minimum, kept only so the coverage harness can show that it catches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from prunebound.certificate import Certificate, certifiers, param_validator, register_certifier
from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_probability

__all__ = ["grid_certificate"]


def _canon(point: Any) -> Any:
    if isinstance(point, Mapping):
        return {str(k): _canon(v) for k, v in sorted(point.items())}
    if isinstance(point, (list, tuple)):
        return [_canon(v) for v in point]
    if isinstance(point, int) and not isinstance(point, bool):
        return float(point)
    return point


def grid_certificate(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = None, method: str,
                     grid: Sequence[Any], point: Any, inner: Mapping[str, Any] | None = None,
                     pay_for_grid: bool = True) -> Certificate:
    """Certificate of kind ``"grid_best"``: ``method``'s certificate for ``module`` at ``δ / len(grid)``,
    stated at the overall ``δ`` (module docstring).  ``point`` must be one of ``grid``."""
    delta = check_probability("delta", delta)
    grid = list(grid)
    if not grid:
        raise InvalidParameterError("grid must list every hyperparameter point tried (got an empty grid)")
    canon = [_canon(g) for g in grid]
    if _canon(point) not in canon:
        raise InvalidParameterError(f"point {point!r} is not in the grid {grid!r}")
    if len({repr(c) for c in canon}) != len(canon):
        raise InvalidParameterError("the grid has duplicate points; list each point tried once")
    reg = certifiers()
    if method not in reg or method == "grid_best":
        raise InvalidParameterError(f"method must be a registered certifier other than 'grid_best'; got {method!r}")
    k = len(grid) if pay_for_grid else 1
    d_each = delta / k
    c = reg[method](module, data, delta=d_each, seed=seed, **dict(inner or {}))
    parts = dict(c.parts)
    parts.update(grid_size=float(k), grid_points=float(len(grid)), delta_each=float(d_each))
    note = f"{c.note}; best of {len(grid)} grid points, union bound paid (delta/{len(grid)} each)"
    if not pay_for_grid:
        note = f"{c.note}; INVALID: best of {len(grid)} grid points without paying the union bound"
    params = {"method": method, "grid": [_jsonable(g) for g in grid], "point": _jsonable(point),
              "inner": dict(c.params), "pay_for_grid": bool(pay_for_grid)}
    return Certificate(kind="grid_best", value=c.value, delta=delta, empirical=c.empirical,
                       complexity=c.complexity, n=c.n, parts=parts, model_sha256=c.model_sha256,
                       data_sha256=c.data_sha256, seed=seed, params=params, data_spec=c.data_spec, note=note,
                       verifiable=c.verifiable)  # a grid of declared-code certificates stays unverifiable


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _validate_grid(p: Mapping[str, Any], module: nn.Module, data: Any) -> None:
    """Recorded parameters of a ``grid_best`` certificate: the union bound paid, a real inner method, and the
    inner parameters valid for that method (its own validator)."""
    if p.get("pay_for_grid", True) is not True:
        raise InvalidParameterError("grid_best: pay_for_grid is not true -- the minimum over the grid is not "
                                    "covered (such certificates exist only to test the coverage harness)")
    method = p.get("method")
    if not isinstance(method, str) or method not in certifiers() or method == "grid_best":
        raise InvalidParameterError(f"grid_best: method must be a registered certifier other than 'grid_best'; "
                                    f"got {method!r}")
    inner = p.get("inner") or {}
    if not isinstance(inner, Mapping):
        raise InvalidParameterError(f"grid_best: inner must be an object of {method}'s parameters; got {inner!r}")
    grid = p.get("grid")
    if not isinstance(grid, list) or not 1 <= len(grid) <= 100_000:
        raise InvalidParameterError("grid_best: grid must be a non-empty list of at most 100000 points")
    v = param_validator(method)
    if v is not None:
        v(inner, module, data)


register_certifier("grid_best", grid_certificate, validate=_validate_grid)
