"""The certificate schema: what a certificate file may contain, checked before anything else reads it.

A certificate is untrusted input (anyone can edit a JSON file).  :func:`validate_certificate_dict` checks a
parsed certificate against schema version :data:`SCHEMA_VERSION` -- required fields, no unknown fields, the
type and range of every field, and the size of every container -- and returns the keyword arguments of
:class:`~prunebound.certificate.Certificate`.  It raises :class:`~prunebound.errors.CertificateError`
naming the field, the value and what is allowed.

Version history: 1 (no ``schema_version`` field; read as version 1, same rules), 2 (adds
``schema_version`` and ``verifiable``).

:func:`parse_certificate_json` parses text strictly: ``NaN``/``Infinity`` tokens and duplicate keys are
refused, and the top level must be a JSON object.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from prunebound.errors import CertificateError

__all__ = ["SCHEMA_VERSION", "MAX_CERTIFICATE_BYTES", "validate_certificate_dict", "parse_certificate_json",
           "check_json_tree"]

SCHEMA_VERSION = 2
MAX_CERTIFICATE_BYTES = 16 * 2**20  # a certificate file larger than this is refused before parsing

_REQUIRED = ("kind", "value", "delta", "empirical", "complexity", "n")
_OPTIONAL = ("parts", "model_sha256", "data_sha256", "seed", "params", "data_spec", "note", "versions",
             "created", "schema_version", "verifiable")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_MAX_N = 10**12
_MAX_PARTS = 10_000
_MAX_STR = 4096
_MAX_TREE_NODES = 1_000_000
_MAX_DEPTH = 8


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    return type(v).__name__


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(d: Mapping, key: str, *, lo: float | None = None, hi: float | None = None,
            open_lo: bool = False, open_hi: bool = False) -> float:
    v = d[key]
    if not _is_number(v):
        raise CertificateError(f"certificate field {key!r} must be a number; got {_type_name(v)} {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise CertificateError(f"certificate field {key!r} must be finite; got {v!r}")
    if lo is not None and (f < lo or (open_lo and f == lo)):
        raise CertificateError(f"certificate field {key!r} must be {'>' if open_lo else '>='} {lo}; got {v!r}")
    if hi is not None and (f > hi or (open_hi and f == hi)):
        raise CertificateError(f"certificate field {key!r} must be {'<' if open_hi else '<='} {hi}; got {v!r}")
    return f


def _string(d: Mapping, key: str, *, max_len: int = _MAX_STR, allow_none: bool = False) -> str | None:
    v = d[key]
    if v is None and allow_none:
        return None
    if not isinstance(v, str):
        raise CertificateError(f"certificate field {key!r} must be a string; got {_type_name(v)} {v!r}"[:300])
    if len(v) > max_len:
        raise CertificateError(f"certificate field {key!r} is {len(v)} characters long; at most {max_len}")
    return v


def check_json_tree(v: Any, where: str, *, max_nodes: int = _MAX_TREE_NODES, max_depth: int = _MAX_DEPTH,
                    max_str: int = 2**22) -> None:
    """Raise :class:`CertificateError` unless ``v`` is a JSON tree (dicts with string keys, lists, strings,
    numbers, booleans, null) of at most ``max_nodes`` nodes, ``max_depth`` levels and strings of at most
    ``max_str`` characters."""
    count = 0
    stack = [(v, 0, where)]
    while stack:
        x, depth, path = stack.pop()
        count += 1
        if count > max_nodes:
            raise CertificateError(f"certificate {where} has more than {max_nodes} entries; refusing it")
        if depth > max_depth:
            raise CertificateError(f"certificate {path} is nested deeper than {max_depth} levels")
        if isinstance(x, Mapping):
            for k, y in x.items():
                if not isinstance(k, str):
                    raise CertificateError(f"certificate {path} has a non-string key {k!r}")
                stack.append((y, depth + 1, f"{path}.{k}"))
        elif isinstance(x, (list, tuple)):
            stack.extend((y, depth + 1, f"{path}[{i}]") for i, y in enumerate(x))
        elif isinstance(x, str):
            if len(x) > max_str:
                raise CertificateError(f"certificate {path} is a string of {len(x)} characters; at most {max_str}")
        elif x is None or isinstance(x, bool):
            pass
        elif isinstance(x, (int, float)):
            if isinstance(x, float) and not math.isfinite(x):
                raise CertificateError(f"certificate {path} is {x!r}; non-finite numbers are not allowed here")
        else:
            raise CertificateError(f"certificate {path} has a {type(x).__name__}, which is not a JSON value")


def validate_certificate_dict(d: Any) -> dict[str, Any]:
    """Check ``d`` against the certificate schema; return the keyword arguments of ``Certificate``."""
    if not isinstance(d, Mapping):
        raise CertificateError(
            f"a certificate must be a JSON object with fields {list(_REQUIRED)}; got a JSON {_json_type(d)} "
            "(pass the .json file written by `prunebound certify --out`)")
    bad_keys = [k for k in d if not isinstance(k, str)]
    if bad_keys:
        raise CertificateError(f"certificate has non-string field names {bad_keys[:5]!r}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise CertificateError(f"certificate is missing fields {missing}")
    unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CertificateError(f"certificate has unknown fields {unknown[:10]}; allowed: "
                               f"{sorted(_REQUIRED + _OPTIONAL)}")
    out: dict[str, Any] = {}
    version = d.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise CertificateError(
            f"certificate schema_version must be an integer 1..{SCHEMA_VERSION}; got {version!r} (a newer "
            "prunebound may have written it: upgrade)")
    out["schema_version"] = SCHEMA_VERSION
    kind = _string(d, "kind", max_len=100)
    if not _KIND.fullmatch(kind):
        raise CertificateError(f"certificate kind must match {_KIND.pattern}; got {kind!r}")
    out["kind"] = kind
    out["value"] = _number(d, "value", lo=0.0)
    out["delta"] = _number(d, "delta", lo=0.0, hi=1.0, open_lo=True, open_hi=True)
    out["empirical"] = _number(d, "empirical", lo=0.0, hi=1.0)
    out["complexity"] = _number(d, "complexity")
    n = d["n"]
    if isinstance(n, bool) or not isinstance(n, int):
        raise CertificateError(f"certificate field 'n' must be an integer; got {_type_name(n)} {n!r}")
    if not 1 <= n <= _MAX_N:
        raise CertificateError(f"certificate field 'n' must be between 1 and {_MAX_N}; got {n}")
    out["n"] = n
    parts = d.get("parts", {})
    if not isinstance(parts, Mapping):
        raise CertificateError(f"certificate field 'parts' must be an object; got {_type_name(parts)}")
    if len(parts) > _MAX_PARTS:
        raise CertificateError(f"certificate has {len(parts)} parts; at most {_MAX_PARTS}")
    for k, v in parts.items():
        if not isinstance(k, str) or len(k) > 200:
            raise CertificateError(f"certificate part name {k!r} must be a string of <= 200 characters")
        if not (v is None or isinstance(v, (str, bool)) or _is_number(v)):
            raise CertificateError(f"certificate part {k!r} must be a number or a string; got {_type_name(v)}")
        if isinstance(v, str) and len(v) > _MAX_STR:
            raise CertificateError(f"certificate part {k!r} is a string of {len(v)} characters")
        if isinstance(v, float) and not math.isfinite(v):
            raise CertificateError(f"certificate part {k!r} is {v!r}; store non-finite values as strings")
    out["parts"] = dict(parts)
    for key in ("model_sha256", "data_sha256"):
        if key in d:
            h = _string(d, key, max_len=64)
            if not _HEX64.fullmatch(h):
                raise CertificateError(f"certificate field {key!r} must be 64 lowercase hex digits; got {h!r}")
            out[key] = h
    if "seed" in d:
        seed = d["seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or not -(2**63) <= seed < 2**64):
            raise CertificateError(f"certificate field 'seed' must be null or a 64-bit integer; got {seed!r}")
        out["seed"] = seed
    if "params" in d:
        params = d["params"]
        if not isinstance(params, Mapping):
            raise CertificateError(f"certificate field 'params' must be an object; got {_type_name(params)}")
        check_json_tree(params, "params")
        out["params"] = dict(params)
    if "data_spec" in d:
        out["data_spec"] = _string(d, "data_spec", allow_none=True)
    if "note" in d:
        out["note"] = _string(d, "note", max_len=10_000)
    if "created" in d:
        out["created"] = _string(d, "created", max_len=64)
    if "versions" in d:
        vs = d["versions"]
        if not isinstance(vs, Mapping) or len(vs) > 50 or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 100 and len(v) <= 200
                for k, v in vs.items()):
            raise CertificateError("certificate field 'versions' must map at most 50 names to version strings")
        out["versions"] = dict(vs)
    if "verifiable" in d:
        if not isinstance(d["verifiable"], bool):
            raise CertificateError(f"certificate field 'verifiable' must be true or false; got {d['verifiable']!r}")
        out["verifiable"] = d["verifiable"]
    return out


def _no_constants(token: str) -> Any:
    raise CertificateError(f"certificate JSON contains {token}; non-finite numbers are not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise CertificateError(f"certificate JSON has the key {k!r} twice")
        out[k] = v
    return out


def parse_certificate_json(text: str, *, source: str = "certificate") -> Any:
    """Parse ``text`` strictly (no NaN/Infinity, no duplicate keys); raise :class:`CertificateError`."""
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise CertificateError(f"{source}: not a JSON certificate ({e})") from None
    except RecursionError:
        raise CertificateError(f"{source}: JSON nested too deeply") from None
