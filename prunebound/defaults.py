"""Defaults shared by every public function (one vocabulary across pruning, coresets and bounds).

``DEFAULT_DELTA`` is the failure probability used when a caller gives none: the same value for the
certifiers in ``bounds`` (``certify(..., delta=...)``), the coreset methods (``coresets.prune(..., delta=...)``)
and anything else that states a high-probability result. See ``docs/vocabulary.md``.
"""

from __future__ import annotations

#: default failure probability delta of every high-probability statement (bounds, coresets, certificates)
DEFAULT_DELTA: float = 0.05

__all__ = ["DEFAULT_DELTA", "resolve_sparsity", "resolve_keep_ratio"]


def resolve_sparsity(sparsity: float | None, keep_ratio: float | None, *, required: bool = True,
                     tol: float = 1e-9) -> float | None:
    """The fraction of weights to remove, from ``sparsity`` or its documented complement ``keep_ratio``.

    ``keep_ratio = 1 - sparsity`` (fraction of weights kept). Giving both is allowed only when they agree (within
    ``tol``); otherwise :class:`~prunebound.errors.InvalidParameterError`. With neither: ``None`` unless
    ``required``. Range checks are left to the caller (each method knows whether 0 or 1 is allowed).
    """
    from prunebound.errors import InvalidParameterError

    if sparsity is not None and keep_ratio is not None:
        if abs((1.0 - float(keep_ratio)) - float(sparsity)) > tol:
            raise InvalidParameterError(
                f"sparsity={sparsity!r} and keep_ratio={keep_ratio!r} disagree: keep_ratio is the fraction of "
                "weights kept, 1 - sparsity; give only one of them")
        return float(sparsity)
    if sparsity is not None:
        return float(sparsity)
    if keep_ratio is not None:
        return 1.0 - float(keep_ratio)
    if required:
        raise InvalidParameterError("give sparsity (fraction of weights removed) or keep_ratio (= 1 - sparsity)")
    return None


def resolve_keep_ratio(sparsity: float | None, keep_ratio: float | None, *, required: bool = True
                       ) -> float | None:
    """The fraction of weights to keep: ``keep_ratio`` as given, else ``1 - sparsity`` (same checks as
    :func:`resolve_sparsity`; a given ``keep_ratio`` is returned unchanged, so no rounding is introduced)."""
    s = resolve_sparsity(sparsity, keep_ratio, required=required)
    if keep_ratio is not None:
        return float(keep_ratio)
    return None if s is None else 1.0 - s
