"""Resumable parameter sweeps: one JSON line per finished trial, on joblib or a Dask cluster.

A *trial* is a JSON-serialisable ``dict`` of parameters; ``fn(trial) -> dict`` computes its result.  Each
trial is identified by a stable key, the SHA-256 of its canonical JSON (keys sorted, no whitespace), so equal
parameters always give the same key, in any process, on any machine.

:func:`run_sweep` appends one record ``{"key", "trial", "result", "seconds"}`` per finished trial to a JSONL
file *as the trial finishes* (written by the driver process only, flushed and ``fsync``-ed, under an advisory
file lock).  Restarted with the same trials and file, it skips every key already recorded, so a killed run
loses at most the trials that were in flight.  A kill can leave a truncated last line; it is ignored when
reading and cut off before appending.

Backends:

* ``"local"``: joblib (``loky`` processes, ``return_as="generator_unordered"``) with ``n_jobs`` workers;
  ``n_jobs=1`` runs in the calling process.
* ``"dask"``: a ``distributed`` cluster: ``scheduler`` is an address (``"tcp://host:8786"``), a
  ``distributed.Client``, or a cluster object (e.g. ``LocalCluster``); ``None`` starts a ``LocalCluster`` with
  ``n_jobs`` single-threaded workers for the duration of the sweep.

``fn`` must be picklable (a module-level function) for every backend except ``local`` with ``n_jobs=1``.
Two runs of the same sweep on one file at the same time duplicate work, not results: records are appended
under the lock and :func:`read_results` keeps the first record of each key.
Results must not depend on execution order: seed every random choice from the trial's parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prunebound.errors import DataError, InvalidParameterError, PruneboundError

__all__ = ["canonical_json", "trial_key", "to_jsonable", "read_results", "run_sweep", "SweepError"]


class SweepError(PruneboundError):
    """A trial raised; the message names the trial. Trials finished before it are kept in the JSONL file."""


# ---------------------------------------------------------------------------------------------- JSON helpers


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types: numpy/torch scalars and arrays, tuples, Paths, dataclasses
    (``to_dict()`` if defined).  NaN/inf are kept (Python's ``json`` writes them as ``NaN``/``Infinity``).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    # numpy / torch scalars and arrays, without importing either eagerly
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    raise InvalidParameterError(
        f"cannot serialise a {type(obj).__name__} to JSON; trials and results must be made of numbers, "
        "strings, lists, dicts (numpy/torch arrays and dataclasses with to_dict() are converted)"
    )


def canonical_json(obj: Any) -> str:
    """Canonical JSON: plain types (see :func:`to_jsonable`), keys sorted, no whitespace."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)


def trial_key(trial: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit key of a trial: the first 64 bits of SHA-256 of its canonical JSON.

    ``{"a": 1, "b": 2.0}`` and ``{"b": 2.0, "a": 1}`` have the same key; ``1`` and ``1.0`` do not (they are
    different JSON).
    """
    if not isinstance(trial, Mapping):
        raise InvalidParameterError(f"a trial must be a dict of parameters, got {type(trial).__name__}")
    return hashlib.sha256(canonical_json(trial).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- JSONL file


def _parse_lines(raw: bytes, path: Path) -> tuple[list[dict], int]:
    """Records in ``raw`` and the byte length of its intact prefix (everything up to the last newline)."""
    records: list[dict] = []
    end = raw.rfind(b"\n") + 1  # bytes after the last newline are a truncated record from a kill
    lines = raw[:end].split(b"\n")[:-1] if end else []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i} is not valid JSON ({e}); the results file is corrupt") from e
        if not isinstance(rec, dict) or "key" not in rec or "result" not in rec:
            raise DataError(f"{path}: line {i} is not a sweep record (needs 'key' and 'result')")
        records.append(rec)
    return records, end


def read_results(path: str | os.PathLike) -> list[dict]:
    """All records in a sweep's JSONL file, in file order, one per key (the first wins).

    Each record is ``{"key": str, "trial": dict, "result": dict, "seconds": float}``.  A missing file gives
    ``[]``; a truncated last line (from a killed run) is ignored; any other unparsable line raises
    :class:`~prunebound.errors.DataError` naming the line.
    """
    p = Path(path)
    if not p.exists():
        return []
    records, _ = _parse_lines(p.read_bytes(), p)
    seen: set[str] = set()
    out = []
    for r in records:
        if r["key"] not in seen:
            seen.add(r["key"])
            out.append(r)
    return out


class _Writer:
    """Append-only JSONL writer: one ``write`` per record, then flush + fsync, under ``fcntl.flock``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = open(path, "ab")  # noqa: SIM115 -- closed in close()
        self._lock()
        try:
            # cut a truncated last line (a kill mid-write) so the next record starts on a fresh line
            raw = path.read_bytes()
            _, end = _parse_lines(raw, path)
            if end != len(raw):
                self.f.truncate(end)
                self.f.flush()
                os.fsync(self.f.fileno())
        finally:
            self._unlock()

    def _lock(self) -> None:
        try:
            import fcntl

            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass

    def _unlock(self) -> None:
        try:
            import fcntl

            fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass

    def write(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        self._lock()
        try:
            self.f.write(line)
            self.f.flush()
            os.fsync(self.f.fileno())
        finally:
            self._unlock()

    def close(self) -> None:
        self.f.close()


# ---------------------------------------------------------------------------------------------- execution


def _call(fn: Callable[[dict], Any], key: str, trial: dict) -> tuple[str, Any, float, str | None]:
    """Run one trial; return (key, jsonable result, seconds, error text or None). Never raises."""
    t0 = time.perf_counter()
    try:
        res = to_jsonable(fn(trial))
        err = None
    except Exception as e:  # noqa: BLE001 -- reported to the driver with the trial
        import traceback

        res, err = None, "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return key, res, time.perf_counter() - t0, err


def _run_local(fn, todo: list[tuple[str, dict]], n_jobs: int) -> Iterator[tuple[str, Any, float, str | None]]:
    if n_jobs == 1:
        for key, trial in todo:
            yield _call(fn, key, trial)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    yield from par(delayed(_call)(fn, key, trial) for key, trial in todo)


def _run_dask(fn, todo: list[tuple[str, dict]], n_jobs: int, scheduler
              ) -> Iterator[tuple[str, Any, float, str | None]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as e:  # pragma: no cover
        raise InvalidParameterError(
            "backend='dask' needs dask.distributed: pip install 'dask[distributed]'") from e
    owned: list[Any] = []
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        owned.append(cluster)
        client = Client(cluster)
        owned.insert(0, client)
    elif isinstance(scheduler, Client):
        client = scheduler
    elif isinstance(scheduler, str):
        client = Client(scheduler)
        owned.append(client)
    elif hasattr(scheduler, "scheduler_address"):
        client = Client(scheduler)
        owned.append(client)
    else:
        raise InvalidParameterError(
            f"scheduler must be None, an address string, a distributed.Client or a cluster; got "
            f"{type(scheduler).__name__}")
    try:
        futures = [client.submit(_call, fn, key, trial, pure=False) for key, trial in todo]
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        for obj in owned:
            obj.close()


def run_sweep(
    fn: Callable[[dict], Mapping[str, Any]],
    trials: Sequence[Mapping[str, Any]],
    out_path: str | os.PathLike,
    *,
    backend: str = "local",
    n_jobs: int = 1,
    scheduler: Any = None,
    progress: bool = True,
    desc: str | None = None,
) -> list[dict]:
    """Run ``fn`` on every trial not yet in ``out_path``; return the records of ``trials``, in their order.

    ``trials``: dicts of JSON-serialisable parameters with distinct keys (:func:`trial_key`).
    ``out_path``: the JSONL file; created if missing, appended to otherwise.  Records of other trials in the
    file are kept but not returned.  ``backend``: ``"local"`` (joblib) or ``"dask"`` (module docstring).
    ``n_jobs``: workers (``-1`` = all cores for joblib).  ``progress``: show a tqdm bar over trials.

    If a trial raises, the sweep waits for nothing more, keeps every record already written, and raises
    :class:`SweepError` naming the failed trial (rerun to resume).
    """
    if backend not in ("local", "dask"):
        raise InvalidParameterError(f"backend must be 'local' or 'dask', got {backend!r}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0 or n_jobs < -1:
        raise InvalidParameterError(f"n_jobs must be a positive int or -1, got {n_jobs!r}")
    if backend == "dask" and n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    trials = [to_jsonable(t) for t in trials]
    keys = [trial_key(t) for t in trials]
    if len(set(keys)) != len(keys):
        dup = next(t for t, k in zip(trials, keys) if keys.count(k) > 1)
        raise InvalidParameterError(f"trials must be distinct; {dup!r} appears more than once")
    path = Path(out_path)
    done = {r["key"]: r for r in read_results(path)}
    todo = [(k, t) for k, t in zip(keys, trials) if k not in done]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(trials), initial=len(trials) - len(todo), desc=desc or path.stem,
               disable=not progress, unit="trial", dynamic_ncols=True)
    by_key = dict(zip(keys, trials))
    writer = _Writer(path)
    try:
        if todo:
            runner: Iterable = (_run_local(fn, todo, n_jobs) if backend == "local"
                                else _run_dask(fn, todo, n_jobs, scheduler))
            for key, res, secs, err in runner:
                if err is not None:
                    raise SweepError(f"trial {by_key[key]!r} (key {key}) failed:\n{err}")
                rec = {"key": key, "trial": by_key[key], "result": res, "seconds": round(secs, 6)}
                writer.write(rec)
                done[key] = rec
                bar.update(1)
    finally:
        writer.close()
        bar.close()
    return [done[k] for k in keys]

