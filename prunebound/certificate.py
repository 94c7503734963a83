"""Certificates: a bound's value and everything needed to recompute it, as JSON.

A :class:`Certificate` records the bound (kind, value, δ, empirical and complexity terms and their parts), the
sample size, SHA-256 hashes of the model's state_dict (canonical order) and of the data, the seed, the
hyperparameters, package versions and time.

**A certificate never vouches for itself.**  :func:`verify` treats it as untrusted input:

1. the certificate is checked against the schema (:mod:`prunebound.certificate_schema`: versioned, every
   field typed and range-checked, sizes bounded; a data spec recorded in it is resolved only within
   ``max_n`` / ``max_dim``);
2. the hyperparameters it records (δ, grids, seeds, prior choices: what cannot be derived) are validated --
   no parameter the certifier does not accept, and each kind's registered validator (types, ranges, sizes,
   consistency with the data);
3. every derivable quantity (the model and data hashes, ``n``, the empirical error, code lengths from the
   exact encoder, KL terms, sample sizes, the value) is recomputed from the model and the data by the
   certifier registered for ``kind``, and every field and every part must agree (numbers within
   ``rtol``; anything else exactly; a part missing on either side is a difference).

A kind registered with ``verifiable=False`` (e.g. ``"occam_declared_bits"``, whose code length is the
user's claim) is recomputed like the others but never reported OK: :class:`VerifyReport` says
``checkable=False``.

:class:`BoundTerms` is the shared result type of every bound in :mod:`prunebound.bounds` and friends.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import math
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebound.certificate_schema import (
    MAX_CERTIFICATE_BYTES,
    SCHEMA_VERSION,
    parse_certificate_json,
    validate_certificate_dict,
)
from prunebound.errors import CertificateError, InvalidParameterError, PruneboundError

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
    "is_verifiable",
    "set_param_validator",
    "compare_certificates",
    "SCHEMA_VERSION",
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
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


@dataclass(frozen=True)
class Certificate:
    """A certified bound on the true risk that :func:`verify` can recompute.

    The claim: with probability >= 1 - ``delta`` over the draw of the ``n`` training examples (hashed as
    ``data_sha256``), the risk of the model (hashed as ``model_sha256``, or of the posterior around it for
    PAC-Bayes kinds) is at most ``value``.  ``verifiable=False`` marks kinds that rest on a quantity the user
    declared (e.g. a code length) and that :func:`verify` therefore cannot check.
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
    schema_version: int = SCHEMA_VERSION
    verifiable: bool = True

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically (temp file + rename); a symlinked ``path`` is refused."""
        from prunebound.files import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n", what="certificate")

    @classmethod
    def from_dict(cls, d: Any) -> Certificate:
        """Build a certificate from a parsed JSON object, validated against the schema
        (:class:`~prunebound.errors.CertificateError` naming the offending field otherwise)."""
        return cls(**validate_certificate_dict(d))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Certificate:
        """Read and validate a certificate file (at most 16 MiB; strict JSON; schema-checked)."""
        p = Path(path)
        if not p.exists():
            raise CertificateError(f"certificate file not found: {p}")
        if p.is_dir():
            raise CertificateError(f"{p} is a folder, not a certificate file; pass the certificate's .json file")
        if not p.is_file():
            raise CertificateError(f"{p} is not a regular file; pass the certificate's .json file")
        size = p.stat().st_size
        if size > MAX_CERTIFICATE_BYTES:
            raise CertificateError(f"{p} is {size} bytes; a certificate is at most {MAX_CERTIFICATE_BYTES} bytes")
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise CertificateError(f"{p}: not a JSON certificate (not UTF-8 text)") from None
        except OSError as e:
            raise CertificateError(f"{p}: cannot read the certificate ({e.strerror or e})") from None
        d = parse_certificate_json(text, source=str(p))
        try:
            return cls.from_dict(d)
        except CertificateError as e:
            raise CertificateError(f"{p}: {e}") from None

    def summary(self) -> str:
        head = "" if self.verifiable else "UNVERIFIABLE (rests on a user-declared quantity) "
        g = int(self.parts.get("grid_size", 1) or 1)
        grid = f", best of {g} grid points, union bound paid" if g > 1 else ""
        return (f"{head}{self.kind}: risk <= {self.value:.4f} w.p. >= {1 - self.delta:g} overall{grid} "
                f"(empirical {self.empirical:.4f}, complexity {self.complexity:.4f}, n={self.n})")


Certifier = Callable[..., Certificate]
ParamValidator = Callable[[Mapping[str, Any], nn.Module, Any], None]
_REGISTRY: dict[str, Certifier] = {}
_VERIFIABLE: dict[str, bool] = {}
_VALIDATORS: dict[str, ParamValidator] = {}


def register_certifier(kind: str, fn: Certifier, *, verifiable: bool = True,
                       validate: ParamValidator | None = None) -> Certifier:
    """Register ``fn(module, data, *, delta, seed, **params) -> Certificate`` under ``kind`` (used by verify).

    ``verifiable=False``: the kind rests on a user-declared quantity; :func:`verify` never reports it OK.
    ``validate(params, module, data)``: raises :class:`InvalidParameterError` for recorded parameters that
    are out of range, oversized or inconsistent (see :func:`set_param_validator`).
    """
    _REGISTRY[kind] = fn
    _VERIFIABLE[kind] = bool(verifiable)
    if validate is not None:
        _VALIDATORS[kind] = validate
    return fn


def set_param_validator(kind: str, validate: ParamValidator) -> None:
    """Attach the parameter validator of a kind registered elsewhere (run by :func:`verify` and ``certify``)."""
    _VALIDATORS[kind] = validate


def is_verifiable(kind: str) -> bool:
    """Whether :func:`verify` can check certificates of ``kind`` (False for user-declared quantities)."""
    certifiers()
    return _VERIFIABLE.get(kind, True)


def param_validator(kind: str) -> ParamValidator | None:
    """The registered parameter validator of ``kind`` (or None)."""
    certifiers()
    return _VALIDATORS.get(kind)


def certifiers() -> dict[str, Certifier]:
    """All registered certifiers (the theory packages register theirs on import)."""
    for mod in ("prunebound.bounds",):
        try:
            __import__(mod)
        except ImportError:  # pragma: no cover
            pass
    return dict(_REGISTRY)


def make_certificate(kind: str, terms: BoundTerms, module: nn.Module, data, *, delta: float, seed: int | None,
                     params: Mapping[str, Any] | None = None, note: str = "",
                     verifiable: bool | None = None) -> Certificate:
    """Wrap a :class:`BoundTerms` into a :class:`Certificate` with hashes of ``module`` and ``data``.

    ``verifiable`` defaults to the registry's flag for ``kind``.
    """
    if verifiable is None:
        verifiable = _VERIFIABLE.get(kind, True)
    return Certificate(kind=kind, value=float(terms.value), delta=float(delta), empirical=float(terms.empirical),
                       complexity=float(terms.complexity), n=len(data), parts=dict(terms.parts),
                       model_sha256=model_sha256(module), data_sha256=data.sha256, seed=seed,
                       params=dict(params or {}), data_spec=getattr(data, "spec", None), note=note,
                       verifiable=bool(verifiable))


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: ``ok``, human-readable ``differences``, the recomputed certificate, and
    ``checkable`` (False for kinds that rest on a user-declared quantity: never ``ok``)."""

    ok: bool
    differences: tuple[str, ...]
    recomputed: Certificate | None
    checkable: bool = True

    @property
    def status(self) -> str:
        """``"ok"``, ``"mismatch"`` or ``"not checkable"``."""
        return "ok" if self.ok else ("not checkable" if not self.checkable else "mismatch")

    def to_dict(self) -> dict:
        return {"ok": self.ok, "status": self.status, "checkable": self.checkable,
                "differences": list(self.differences),
                "recomputed": self.recomputed.to_dict() if self.recomputed else None}


def _same(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Equality of two JSON values: numbers (not bools) within tolerance, everything else exactly, by type."""
    num_a = isinstance(a, (int, float)) and not isinstance(a, bool)
    num_b = isinstance(b, (int, float)) and not isinstance(b, bool)
    if num_a or num_b:
        return num_a and num_b and math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, rtol, atol) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def compare_certificates(claimed: Certificate, recomputed: Certificate, *, rtol: float = 1e-9,
                         atol: float = 1e-12) -> list[str]:
    """Every difference between a claimed certificate and its recomputation (fields, params and parts).

    Compared: kind, value, δ, empirical, complexity, n, both hashes, seed, params, every part (both ways:
    a part missing on either side is a difference), and the ``verifiable`` flag.  Numbers must agree to
    ``rtol``/``atol``; strings, booleans and nulls exactly; a number and a string never agree.
    """
    a, b = claimed.to_dict(), recomputed.to_dict()
    diffs = []
    for k in ("kind", "value", "delta", "empirical", "complexity", "n", "model_sha256", "data_sha256", "seed",
              "verifiable"):
        if not _same(a[k], b[k], rtol, atol):
            diffs.append(f"{k} differs: certificate {_short(a[k])}, recomputed {_short(b[k])}")
    if not _same(a["params"], b["params"], rtol, atol):
        keys = sorted(set(a["params"]) | set(b["params"]))
        bad = [k for k in keys if k not in a["params"] or k not in b["params"]
               or not _same(a["params"][k], b["params"][k], rtol, atol)]
        diffs.append(f"params differ in {bad}")
    pa, pb = a["parts"], b["parts"]
    for k in sorted(set(pa) | set(pb)):
        if k not in pb:
            diffs.append(f"part {k!r} is not produced by the recomputation (certificate {_short(pa[k])})")
        elif k not in pa:
            diffs.append(f"part {k!r} missing in the certificate (recomputed {_short(pb[k])})")
        elif not _same(pa[k], pb[k], rtol, atol):
            diffs.append(f"part {k!r} differs: certificate {_short(pa[k])}, recomputed {_short(pb[k])}")
    return diffs


def _resolve_data(cert: Certificate, data, max_n: int | None, max_dim: int | None):
    from prunebound import data as D

    if data is None:
        if not cert.data_spec:
            raise InvalidParameterError("the certificate records no data spec; pass the data to verify")
        data = cert.data_spec
    if isinstance(data, str):
        return D.resolve(data, max_n=max_n, max_dim=max_dim)
    return D.as_dataset(data)  # a Dataset, (x, y) tensors or a DataLoader


def _check_params(kind: str, fn: Certifier, params: Mapping[str, Any], model: nn.Module, data) -> list[str]:
    """Parameters the certifier does not accept, and the kind's validator's verdict."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        allowed = {n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY} - {"delta", "seed"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            return [f"params {unknown} are not parameters of the {kind!r} certifier (allowed: {sorted(allowed)})"]
    v = _VALIDATORS.get(kind)
    if v is not None:
        try:
            v(params, model, data)
        except PruneboundError as e:
            return [f"invalid parameter: {e}"]
    return []


def verify(cert: Certificate, model: nn.Module, data=None, *, rtol: float = 1e-9, atol: float = 1e-12,
           max_n: int | None = None, max_dim: int | None = None) -> VerifyReport:
    """Recompute ``cert`` from ``model`` and ``data`` and report every difference (module docstring).

    ``data``: a :class:`~prunebound.data.Dataset`, a data spec string, or None for the certificate's own
    ``data_spec``.  Specs are resolved within ``max_n`` examples and ``max_dim`` features (defaults
    :data:`prunebound.data.DEFAULT_MAX_N` / ``DEFAULT_MAX_DIM``; raise them for larger data you trust).
    Raises :class:`CertificateError` if ``cert`` violates the schema and :class:`InvalidParameterError`
    for a kind with no registered certifier; every other problem is a difference in the report.
    """
    if not isinstance(cert, Certificate):
        raise CertificateError(f"verify needs a Certificate; got {type(cert).__name__} (use Certificate.load)")
    validate_certificate_dict(cert.to_dict())
    reg = certifiers()
    if cert.kind not in reg:
        raise InvalidParameterError(f"no certifier registered for kind {cert.kind!r}; known: {sorted(reg)}")
    data = _resolve_data(cert, data, max_n, max_dim)
    checkable = _VERIFIABLE.get(cert.kind, True)
    diffs: list[str] = []
    if not checkable:
        diffs.append(f"not checkable: kind {cert.kind!r} rests on a quantity the user declared (see its note); "
                     "only its arithmetic is recomputed")
    msha = model_sha256(model)
    if msha != cert.model_sha256:
        diffs.append(f"model sha256 differs: certificate {cert.model_sha256[:16]}..., given model {msha[:16]}...")
    if data.sha256 != cert.data_sha256:
        diffs.append(f"data sha256 differs: certificate {cert.data_sha256[:16]}..., given data {data.sha256[:16]}...")
    if len(data) != cert.n:
        diffs.append(f"n differs: certificate {cert.n}, data {len(data)}")
    bad = _check_params(cert.kind, reg[cert.kind], cert.params, model, data)
    if bad:
        return VerifyReport(False, tuple(diffs + bad), None, checkable)
    try:
        new = reg[cert.kind](model, data, delta=cert.delta, seed=cert.seed, **dict(cert.params))
    except PruneboundError as e:
        return VerifyReport(False, tuple(diffs + [f"recomputation failed: {e}"]), None, checkable)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, MemoryError) as e:
        return VerifyReport(False, tuple(diffs + [f"recomputation failed ({type(e).__name__}: {e}); the "
                                                   "certificate's parameters are not valid for its kind"]),
                            None, checkable)
    reported = ("model_sha256 differs", "data_sha256 differs", "n differs")  # already compared above
    diffs += [d for d in compare_certificates(cert, new, rtol=rtol, atol=atol) if not d.startswith(reported)]
    if checkable and not new.verifiable:  # e.g. a grid_best over a declared-code kind
        checkable = False
        diffs.insert(0, f"not checkable: the recomputed {cert.kind!r} certificate rests on a quantity the user "
                        "declared (see its note)")
    ok = not diffs and checkable
    return VerifyReport(ok, tuple(diffs), new, checkable)
