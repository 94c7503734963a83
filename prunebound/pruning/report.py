"""The result record shared by every classic pruning method: :class:`PruneReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["PruneReport"]


@dataclass(frozen=True)
class PruneReport:
    """What a pruning method returned and did.

    Attributes
    ----------
    module:
        The pruned model: an ordinary ``nn.Module`` whose weighted layers carry ``torch.nn.utils.prune``
        masks (``weight_orig`` * ``weight_mask``). Never the caller's module (methods work on a deep copy).
    method:
        Registry name of the method (e.g. ``"magnitude"``).
    requested:
        The requested sparsity (fraction of weights removed; for structured methods the fraction of
        neurons/channels removed per prunable layer, see ``unit``).
    per_layer:
        Fraction of masked weights per layer path (biases excluded), read from the masks.
    total:
        Fraction of masked weights over all weighted layers.
    retrained:
        Human-readable description of what was (re)trained after pruning, ``None`` if nothing.
    params:
        The hyperparameters the method ran with (JSON-serialisable).
    info:
        Method-specific extras (curves, code lengths, removed units, ...), JSON-serialisable.
    unit:
        ``"weight"`` for unstructured methods, ``"neuron"`` for structured ones.
    """

    module: nn.Module = field(repr=False, compare=False)
    method: str
    requested: float | None
    per_layer: dict[str, float]
    total: float
    retrained: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    unit: str = "weight"

    def to_dict(self) -> dict[str, Any]:
        """Everything but the module, as plain Python types."""
        return {
            "method": self.method,
            "requested": self.requested,
            "unit": self.unit,
            "per_layer": dict(self.per_layer),
            "total": self.total,
            "retrained": self.retrained,
            "params": dict(self.params),
            "info": dict(self.info),
        }
