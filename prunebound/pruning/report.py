"""The one result record of every pruning entry point: :class:`PruneResult`.

Returned by every classic method of :data:`prunebound.pruning.REGISTRY`, by :func:`prunebound.coresets.prune`
and by every per-method coreset function (``corenet``, ``sipp``, ``pfp``, ...). Achieved sparsity (fraction of
weights removed, biases excluded) is read from the pruned module, per layer and in total; coreset methods also
attach their :class:`prunebound.coresets.Guarantee` (``None`` for the classic methods, which guarantee nothing).

``PruneReport`` is the former name of this class, kept as an alias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from prunebound.coresets.guarantee import Guarantee

__all__ = ["PruneResult", "PruneReport"]


@dataclass(frozen=True)
class PruneResult:
    """What a pruning method returned and did.

    Attributes
    ----------
    module:
        The pruned model: an ordinary ``nn.Module`` whose weighted layers carry ``torch.nn.utils.prune``
        masks (``weight_orig`` * ``weight_mask``). Never the caller's module (methods work on a deep copy).
    method:
        Name of the method (e.g. ``"magnitude"``, ``"corenet"``).
    requested:
        The requested amount in ``unit``: the fraction of weights to remove (``unit="weight"``) or of
        neurons/channels removed per prunable layer (``unit="neuron"``); ``None`` when the method was driven by a
        tolerance (a coreset's ``eps``) instead of a size.
    per_layer:
        Achieved sparsity: fraction of zero weights per layer path (biases excluded), read from the module.
    total:
        Achieved sparsity over all weighted layers (== ``prunebound.network.sparsity(module).total``).
    retrained:
        Human-readable description of what was (re)trained after pruning, ``None`` if nothing.
    params:
        The hyperparameters the method ran with (JSON-serialisable).
    extra:
        Method-specific extras (curves, code lengths, removed units, ...), JSON-serialisable.
    unit:
        ``"weight"`` for unstructured methods, ``"neuron"`` for structured ones (see ``requested``).
    guarantee:
        The coreset method's :class:`~prunebound.coresets.Guarantee`, ``None`` for methods without one.
    """

    module: nn.Module = field(repr=False, compare=False)
    method: str
    requested: float | None
    per_layer: dict[str, float]
    total: float
    retrained: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    unit: str = "weight"
    guarantee: Guarantee | None = None

    @property
    def sparsity(self) -> float:
        """Achieved total sparsity (alias of :attr:`total`)."""
        return self.total

    @property
    def keep_ratio(self) -> float:
        """Achieved fraction of weights kept, ``1 - sparsity``."""
        return 1.0 - self.total

    @property
    def info(self) -> dict[str, Any]:
        """Former name of :attr:`extra` (kept for compatibility)."""
        return self.extra

    def __iter__(self):
        """Legacy unpacking ``module, guarantee = coresets.prune(...)`` (the former tuple return)."""
        return iter((self.module, self.guarantee))

    def summary(self) -> str:
        """One line in words: method, achieved sparsity, what was retrained, and the guarantee if any."""
        req = "" if self.requested is None else f" (requested {self.requested:g} of the {self.unit}s)"
        s = f"{self.method}: removed {100.0 * self.total:.1f} % of weights{req}"
        if self.retrained:
            s += f"; {self.retrained}"
        if self.guarantee is not None:
            s += f". {self.guarantee.summary()}"
        return s

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
            "extra": dict(self.extra),
            "guarantee": None if self.guarantee is None else self.guarantee.to_dict(),
        }


#: former name, kept as an alias of :class:`PruneResult`
PruneReport = PruneResult
