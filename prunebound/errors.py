"""Exception hierarchy and argument validation shared by every prunebound module.

Every error names the argument, the value received, and what is allowed, so that a
researcher can fix a call without reading the source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = [
    "PruneboundError",
    "UnsupportedLayerError",
    "AssumptionError",
    "InvalidParameterError",
    "DataError",
    "UnsafeCheckpointError",
    "CertificateError",
    "DataSpecError",
    "UnsafeOutputError",
    "ConcurrentRunError",
    "check_probability",
    "check_positive",
    "check_positive_int",
    "check_finite_tensors",
    "check_finite_module",
]


class PruneboundError(Exception):
    """Base class of all errors raised by prunebound."""


class UnsupportedLayerError(PruneboundError, TypeError):
    """A module contains a layer that the common `Network` interface cannot represent."""


class AssumptionError(UnsupportedLayerError):
    """A model is valid but violates an assumption of the method's theorem (a ReLU chain, non-negative layer
    inputs, a bias-free target, ...). ``method``, ``assumption`` and ``node`` (the offending graph node or layer
    path) are kept as attributes; the message names all three."""

    def __init__(self, method: str, assumption: str, node: str, detail: str = "") -> None:
        self.method, self.assumption, self.node = method, assumption, node
        msg = f"{method} assumes {assumption}; violated at {node}"
        super().__init__(msg + (f": {detail}" if detail else ""))


class InvalidParameterError(PruneboundError, ValueError):
    """A hyperparameter (delta, eps, sigma, sparsity, ...) is outside its allowed range."""


class DataError(PruneboundError, ValueError):
    """Data is empty, malformed, non-finite, or does not match the model's shape."""


class UnsafeCheckpointError(PruneboundError):
    """A checkpoint could not be loaded safely (it needs arbitrary unpickling, or is not a state_dict)."""


class CertificateError(DataError):
    """A certificate (file, JSON or dict) violates the certificate schema: missing or unknown fields, wrong
    types, values out of range, oversized contents, or an unsupported schema version."""


class DataSpecError(InvalidParameterError):
    """A data spec string (``teacher:d=20,n=1000``) is malformed, has unknown keys, or exceeds the size
    limits (``max_n``, ``max_dim``) set for specs from untrusted sources."""


class UnsafeOutputError(PruneboundError):
    """An output path cannot be written safely: it is a symbolic link, a folder, or not writable."""


class ConcurrentRunError(PruneboundError):
    """Another process is already writing to the same output folder (its lock file is held)."""


def check_probability(name: str, value: float, *, open_left: bool = True, open_right: bool = True) -> float:
    """Return ``float(value)`` if it lies in (0, 1) (bounds inclusive when ``open_*`` is False).

    Raises :class:`InvalidParameterError` naming ``name`` otherwise (NaN, inf, non-numbers included).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number in (0, 1); got {value!r}") from None
    lo_ok = v > 0 if open_left else v >= 0
    hi_ok = v < 1 if open_right else v <= 1
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lb = "(" if open_left else "["
        rb = ")" if open_right else "]"
        raise InvalidParameterError(f"{name} must lie in {lb}0, 1{rb}; got {value!r}")
    return v


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is finite and > 0 (>= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a positive number; got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise InvalidParameterError(f"{name} must be finite and {allowed}; got {value!r}")
    return v


def check_positive_int(name: str, value: int, *, minimum: int = 1) -> int:
    """Return ``int(value)`` if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}; got {value!r}")
    v = int(value)
    if v < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return v


def check_finite_tensors(named: Iterable[tuple[str, torch.Tensor]], what: str = "parameter") -> None:
    """Raise :class:`DataError` if any tensor contains NaN or +-inf, naming the first offender."""
    for name, t in named:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise DataError(f"{what} {name!r} contains {n_bad} non-finite value(s) (NaN or inf)")


def check_finite_module(module: torch.nn.Module) -> None:
    """Raise :class:`DataError` if any parameter or buffer of ``module`` is NaN or infinite."""
    check_finite_tensors(module.named_parameters(), "parameter")
    check_finite_tensors(module.named_buffers(), "buffer")
