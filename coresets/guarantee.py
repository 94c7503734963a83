"""What a coreset pruning method guarantees (attached to its :class:`~prunebound.pruning.PruneResult`).

A :class:`Guarantee` states, for the pruned network of the result it is attached to, the target relative error ``eps``
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
    ``guaranteed`` is False for baselines, for variants without the theorem's statement, and when the
    statement is ``vacuous`` (a relative error ``eps >= 1``, e.g. the ``eps`` a small keep ratio needs).
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
    vacuous: bool = False

    def summary(self) -> str:
        """One paragraph in words: what was kept and what (if anything) is guaranteed."""
        kept = f"kept {self.kept} of {self.total} weights ({100.0 * self.keep_ratio:.1f} %)"
        if self.eps is None:
            return f"{self.method}: {kept}; a baseline, no guarantee."
        if self.vacuous:
            return (f"{self.method}: {kept}. VACUOUS: the relative error eps = {self.eps:.4g} needed for this size "
                    f"is >= 1, so the (eps, delta) statement says nothing about the outputs (an error as large as "
                    f"the output itself is allowed); no guarantee.")
        if not self.guaranteed:
            return (f"{self.method}: {kept} at eps = {self.eps:.4g}; this variant's statement is not the "
                    f"theorem's, no guarantee.")
        return (f"{self.method}: {kept}; with probability >= 1 - {self.delta:g} the theorem's error statement "
                f"holds with eps = {self.eps:.4g} (per-layer eps_l and delta_l in this record).")

    def to_dict(self) -> dict:
        return _clean({
            "method": self.method, "eps": self.eps, "delta": self.delta, "layers": list(self.layers),
            "eps_per_layer": list(self.eps_per_layer), "delta_per_layer": list(self.delta_per_layer),
            "sample_sizes": list(self.sample_sizes), "total_sensitivity": list(self.total_sensitivity),
            "keep_ratio": self.keep_ratio, "kept": self.kept, "total": self.total,
            "guaranteed": self.guaranteed, "vacuous": self.vacuous, "extra": dict(self.extra),
        })
