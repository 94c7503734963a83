"""Certificates: a bound's value and everything needed to recompute it, as JSON.

A :class:`Certificate` records the bound (kind, value, δ, empirical and complexity terms and their parts), the
sample size, SHA-256 hashes of the model's state_dict (canonical order) and of the data, the seed, the
hyperparameters, package versions and time.  :func:`verify` recomputes it from scratch with the certifier that
produced it (looked up by ``kind`` in a registry filled by :func:`register_certifier`) and reports every
difference.

:class:`BoundTerms` is the shared result type of every bound in :mod:`prunebound.bounds` and friends.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebound.errors import DataError, InvalidParameterError, PruneboundError

__all__ = [
    "BoundTerms",
    "Certificate",
    "VerifyReport",
    "model_sha256",
    "versions",
    "register_certifier",
    "certifiers",
    "make_certificate",
    "verify",
]


@dataclass(frozen=True)
class BoundTerms:
    """A bound and its breakdown: ``value`` (the bound on the risk), the ``empirical`` term, the ``complexity``
    term, and named ``parts`` (e.g. ``{"bits": ..., "kl": ..., "ln_1_over_delta": ...}``)."""

    value: float
    empirical: float
    complexity: float
    parts: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"value": self.value, "empirical": self.empirical, "complexity": self.complexity,
                "parts": dict(self.parts)}


def model_sha256(module: nn.Module) -> str:
    """SHA-256 of the state_dict: keys sorted, each key's name, dtype, shape and little-endian bytes."""
    h = hashlib.sha256()
    sd = module.state_dict()
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.dtype == torch.bfloat16:
            t = t.float()
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python, prunebound and the numeric libraries that can change a bound's value."""
    import numpy
    import scipy

    try:
        from importlib.metadata import version

        pb = version("prunebound")
    except Exception:  # pragma: no cover
        pb = "unknown"
    return {"python": platform.python_version(), "prunebound": pb, "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


@dataclass(frozen=True)
class Certificate:
    """A certified bound on the true risk that :func:`verify` can recompute.

    The claim: with probability >= 1 - ``delta`` over the draw of the ``n`` training examples (hashed as
    ``data_sha256``), the risk of the model (hashed as ``model_sha256``, or of the posterior around it for
    PAC-Bayes kinds) is at most ``value``.
    """

    kind: str
    value: float
    delta: float
    empirical: float
    complexity: float
    n: int
    parts: Mapping[str, float] = field(default_factory=dict)
    model_sha256: str = ""
    data_sha256: str = ""
    seed: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    data_spec: str | None = None
    note: str = ""
    versions: Mapping[str, str] = field(default_factory=versions)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json() + "\n")
        return p

    @classmethod
    def from_dict(cls, d: Mapping) -> Certificate:
        names = {f.name for f in fields(cls)}
        missing = {"kind", "value", "delta", "empirical", "complexity", "n"} - set(d)
        if missing:
            raise DataError(f"certificate is missing fields {sorted(missing)}")
        unknown = set(d) - names
        if unknown:
            raise DataError(f"certificate has unknown fields {sorted(unknown)}")
        kw = dict(d)
        for k in ("value", "empirical", "complexity", "delta"):
            kw[k] = float(kw[k])
        return cls(**kw)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Certificate:
        p = Path(path)
        if not p.exists():
            raise DataError(f"certificate file not found: {p}")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: not a JSON certificate ({e})") from e
        return cls.from_dict(d)

    def summary(self) -> str:
        g = int(self.parts.get("grid_size", 1) or 1)
        grid = f", best of {g} grid points, union bound paid" if g > 1 else ""
        return (f"{self.kind}: risk <= {self.value:.4f} w.p. >= {1 - self.delta:g} overall{grid} "
                f"(empirical {self.empirical:.4f}, complexity {self.complexity:.4f}, n={self.n})")


Certifier = Callable[..., Certificate]
_REGISTRY: dict[str, Certifier] = {}


def register_certifier(kind: str, fn: Certifier) -> Certifier:
    """Register ``fn(module, data, *, delta, seed, **params) -> Certificate`` under ``kind`` (used by verify)."""
    _REGISTRY[kind] = fn
    return fn


def certifiers() -> dict[str, Certifier]:
    """All registered certifiers (the theory packages register theirs on import)."""
    for mod in ("prunebound.bounds",):
        try:
            __import__(mod)
        except ImportError:  # pragma: no cover
            pass
    return dict(_REGISTRY)


def make_certificate(kind: str, terms: BoundTerms, module: nn.Module, data, *, delta: float, seed: int | None,
                     params: Mapping[str, Any] | None = None, note: str = "") -> Certificate:
    """Wrap a :class:`BoundTerms` into a :class:`Certificate` with hashes of ``module`` and ``data``."""
    return Certificate(kind=kind, value=float(terms.value), delta=float(delta), empirical=float(terms.empirical),
                       complexity=float(terms.complexity), n=len(data), parts=dict(terms.parts),
                       model_sha256=model_sha256(module), data_sha256=data.sha256, seed=seed,
                       params=dict(params or {}), data_spec=getattr(data, "spec", None), note=note)


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: ``ok`` and a list of human-readable differences."""

    ok: bool
    differences: tuple[str, ...]
    recomputed: Certificate | None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "differences": list(self.differences),
                "recomputed": self.recomputed.to_dict() if self.recomputed else None}


def verify(cert: Certificate, model: nn.Module, data, *, rtol: float = 1e-9, atol: float = 1e-12) -> VerifyReport:
    """Recompute ``cert`` from ``model`` and ``data`` and report every difference (hashes, value, terms)."""
    diffs: list[str] = []
    msha = model_sha256(model)
    if msha != cert.model_sha256:
        diffs.append(f"model sha256 differs: certificate {cert.model_sha256[:16]}..., given model {msha[:16]}...")
    if data.sha256 != cert.data_sha256:
        diffs.append(f"data sha256 differs: certificate {cert.data_sha256[:16]}..., given data {data.sha256[:16]}...")
    if len(data) != cert.n:
        diffs.append(f"n differs: certificate {cert.n}, data {len(data)}")
    reg = certifiers()
    if cert.kind not in reg:
        raise InvalidParameterError(f"no certifier registered for kind {cert.kind!r}; known: {sorted(reg)}")
    try:
        new = reg[cert.kind](model, data, delta=cert.delta, seed=cert.seed, **dict(cert.params))
    except PruneboundError as e:
        return VerifyReport(False, tuple(diffs + [f"recomputation failed: {e}"]), None)
    for k in ("value", "empirical", "complexity"):
        a, b = getattr(cert, k), getattr(new, k)
        if not math.isclose(a, b, rel_tol=rtol, abs_tol=atol):
            diffs.append(f"{k} differs: certificate {a!r}, recomputed {b!r}")
    for k, a in cert.parts.items():
        b = new.parts.get(k)
        if b is None:
            diffs.append(f"part {k!r} missing in recomputation")
        elif isinstance(a, (int, float)) and not math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol):
            diffs.append(f"part {k!r} differs: certificate {a!r}, recomputed {b!r}")
    return VerifyReport(not diffs, tuple(diffs), new)
