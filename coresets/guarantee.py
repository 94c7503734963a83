"""The record returned by every coreset pruning method: what was done and what is guaranteed.

A :class:`Guarantee` states, for the pruned network returned alongside it, the target relative error ``eps``
and failure probability ``delta`` of the method's theorem, the per-layer tolerances ``eps_l`` / ``delta_l``
that the theorem's analysis allocates, the per-layer sample sizes (summed over the rows / neurons of a layer),
the per-layer total sensitivity ``S_l`` (summed over rows), and the achieved keep ratio (non-zero weights kept
/ non-zero weights before).  Baselines (uniform, magnitude) carry ``eps = None``: they guarantee nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Guarantee"]


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_clean(a) for a in v]
    if isinstance(v, Mapping):
        return {str(k): _clean(a) for k, a in v.items()}
    return v


@dataclass(frozen=True)
class Guarantee:
    """What a coreset method guarantees for the network it returned.

    ``layers`` are the layer paths (``Layer.path``) in forward order; all per-layer tuples align with it.
    ``guaranteed`` is False for baselines and for layers a method leaves dense (their ``eps_l`` is 0).
    """

    method: str
    eps: float | None
    delta: float
    layers: tuple[str, ...]
    eps_per_layer: tuple[float, ...]
    delta_per_layer: tuple[float, ...]
    sample_sizes: tuple[int, ...]
    total_sensitivity: tuple[float, ...]
    keep_ratio: float
    kept: int
    total: int
    guaranteed: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _clean({
            "method": self.method, "eps": self.eps, "delta": self.delta, "layers": list(self.layers),
            "eps_per_layer": list(self.eps_per_layer), "delta_per_layer": list(self.delta_per_layer),
            "sample_sizes": list(self.sample_sizes), "total_sensitivity": list(self.total_sensitivity),
            "keep_ratio": self.keep_ratio, "kept": self.kept, "total": self.total,
            "guaranteed": self.guaranteed, "extra": dict(self.extra),
        })
