"""On-disk cache of generated data sets: one file per generator call, named by the SHA-256 of the generator's
name, arguments and version, written atomically (temp file + rename) with a SHA-256 checksum of its payload.  A
missing, truncated or corrupt file is regenerated, never trusted.  ``PRUNEBOUND_CACHE=DIR`` moves the cache,
``PRUNEBOUND_CACHE=off`` disables it; otherwise it lives in ``$XDG_CACHE_HOME/prunebound`` (default
``~/.cache/prunebound``).  Re-exported by :mod:`prunebound.data`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "cached_arrays"]

log = logging.getLogger("prunebound.data")  # the name users configured before the split


# --------------------------------------------------------------------------------------------- on-disk cache

_CACHE_MAGIC = b"PBCACHE1"
_CACHE_OFF = {"off", "0", "none", "false", "no", ""}


def cache_dir() -> Path | None:
    """Directory of the data cache, or ``None`` when disabled (``PRUNEBOUND_CACHE=off``).

    ``$PRUNEBOUND_CACHE`` if set, else ``$XDG_CACHE_HOME/prunebound``, else ``~/.cache/prunebound``.
    """
    env = os.environ.get("PRUNEBOUND_CACHE")
    if env is not None:
        return None if env.strip().lower() in _CACHE_OFF else Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "prunebound"


def _cache_key(name: str, params: dict) -> str:
    blob = json.dumps({"name": name, "params": params}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_cache(path: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays in ``path`` if it is an intact cache file holding ``names``; else ``None`` (with a warning)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("data cache %s unreadable (%s); regenerating", path, e)
        return None
    head = len(_CACHE_MAGIC) + 32
    if len(raw) < head or raw[: len(_CACHE_MAGIC)] != _CACHE_MAGIC:
        log.warning("data cache %s has no valid header; regenerating", path)
        return None
    payload = raw[head:]
    if hashlib.sha256(payload).digest() != raw[len(_CACHE_MAGIC) : head]:
        log.warning("data cache %s fails its checksum (truncated or corrupt); regenerating", path)
        return None
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 -- any decoding failure means: do not trust, regenerate
        log.warning("data cache %s cannot be decoded (%s); regenerating", path, e)
        return None
    if set(out) != set(names):
        log.warning("data cache %s holds %s, expected %s; regenerating", path, sorted(out), sorted(names))
        return None
    return out


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_CACHE_MAGIC + hashlib.sha256(payload).digest() + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:  # a read-only or full cache directory only costs time
        log.warning("could not write data cache %s (%s); continuing without it", path, e)


def cached_arrays(name: str, params: dict, make, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``make()`` (a dict of numpy arrays with keys ``names``), cached on disk under the hash of ``name`` and
    ``params`` (see the module docstring).  A file that fails its checksum or holds other arrays is replaced."""
    root = cache_dir()
    if root is None:
        return make()
    path = root / f"{name}-{_cache_key(name, params)[:32]}.npzc"
    hit = _read_cache(path, names)
    if hit is not None:
        return hit
    arrays = {k: np.ascontiguousarray(v) for k, v in make().items()}
    _write_cache(path, arrays)
    return arrays
