"""Resumable parameter sweeps: one JSON line per finished trial, on joblib or a Dask cluster.

A *trial* is a JSON-serialisable ``dict`` of parameters; ``fn(trial) -> dict`` computes its result.  Each
trial is identified by a stable key, the SHA-256 of its canonical JSON (keys sorted, no whitespace), so equal
parameters always give the same key, in any process, on any machine.

:func:`run_sweep` appends one record ``{"key", "trial", "result", "seconds"}`` per finished trial to a JSONL
file *as the trial finishes* (written by the driver process only, flushed and ``fsync``-ed, under an advisory
file lock).  Restarted with the same trials and file, it skips every key already recorded, so a killed run
loses at most the trials that were in flight.  A kill can leave a truncated last line; it is ignored when
reading and, before appending, moved to ``<file>.corrupt-<timestamp>`` (quarantined, never deleted).  A last
record that is complete but lacks its newline is kept.

Backends:

* ``"local"``: joblib (``loky`` processes, ``return_as="generator_unordered"``) with ``n_jobs`` workers;
  ``n_jobs=1`` runs in the calling process.
* ``"dask"``: a ``distributed`` cluster: ``scheduler`` is an address (``"tcp://host:8786"``), a
  ``distributed.Client``, or a cluster object (e.g. ``LocalCluster``); ``None`` starts a ``LocalCluster`` with
  ``n_jobs`` single-threaded workers for the duration of the sweep.

``fn`` must be picklable (a module-level function) for every backend except ``local`` with ``n_jobs=1``.
Two runs of the same sweep on one file are serialised by a lock file (``.<name>.lock``); records are
appended under an advisory lock and :func:`read_results` keeps the first record of each key.
Results must not depend on execution order: seed every random choice from the trial's parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prunebound.errors import DataError, InvalidParameterError, PruneboundError, UnsafeOutputError
from prunebound.files import RunLock, atomic_write_bytes, check_writable

__all__ = ["canonical_json", "trial_key", "to_jsonable", "read_results", "run_sweep", "SweepError",
           "quarantine_path"]


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


def _parse_record(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(rec, dict) or "key" not in rec or "result" not in rec:
        return None
    return rec


def _parse_lines(raw: bytes, path: Path) -> tuple[list[dict], int, bool]:
    """``(records, end, complete_tail)``: the records in ``raw``, the byte length of its intact prefix, and
    whether that prefix ends in a complete record without its final newline.

    Every newline-terminated line must be a record (else :class:`DataError` naming the line).  Bytes after
    the last newline are a complete record missing only its newline (kept; ``complete_tail``) or a truncated
    record from a kill (not a record; ``end`` stops before it).
    """
    records: list[dict] = []
    cut = raw.rfind(b"\n") + 1
    lines = raw[:cut].split(b"\n")[:-1] if cut else []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rec = _parse_record(line)
        if rec is None:
            raise DataError(
                f"{path}: line {i} is not a sweep record (valid JSON with 'key' and 'result'); the results file "
                "is corrupt in the middle. Move it aside (or fix that line) and rerun; nothing was changed")
        records.append(rec)
    tail = raw[cut:]
    if tail.strip():
        rec = _parse_record(tail)
        if rec is not None:
            records.append(rec)
            return records, len(raw), True
    elif tail:  # trailing blanks only
        return records, len(raw), False
    return records, cut, False


def _check_results_path(p: Path) -> None:
    if p.is_symlink():
        raise UnsafeOutputError(
            f"results file {p} is a symbolic link (to {os.readlink(p)}); refusing to append through it. "
            "Remove the link or choose another output path")
    if p.exists() and not p.is_file():
        raise UnsafeOutputError(f"results file {p} exists and is not a regular file")


def read_results(path: str | os.PathLike) -> list[dict]:
    """All records in a sweep's JSONL file, in file order, one per key (the first wins).

    Each record is ``{"key": str, "trial": dict, "result": dict, "seconds": float}``.  A missing file gives
    ``[]``; every complete record is kept, including a last one without its final newline; a truncated last
    line (from a killed run) is ignored here (and quarantined by the next :func:`run_sweep`); any other
    unparsable line raises :class:`~prunebound.errors.DataError` naming the line.
    """
    p = Path(path)
    if not p.exists():
        return []
    if not p.is_file():
        raise DataError(f"results file {p} is not a regular file")
    records, _, _ = _parse_lines(p.read_bytes(), p)
    seen: set[str] = set()
    out = []
    for r in records:
        if r["key"] not in seen:
            seen.add(r["key"])
            out.append(r)
    return out


def quarantine_path(path: Path) -> Path:
    """A fresh ``<path>.corrupt-<UTC timestamp>[-k]`` name next to ``path`` for a truncated tail."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    cand = path.with_name(f"{path.name}.corrupt-{stamp}")
    k = 1
    while cand.exists() or cand.is_symlink():
        cand = path.with_name(f"{path.name}.corrupt-{stamp}-{k}")
        k += 1
    return cand


class _Writer:
    """Append-only JSONL writer: one ``write`` per record, then flush + fsync, under ``fcntl.flock``.

    On open, a truncated last line (a kill mid-write) is copied to ``<file>.corrupt-<timestamp>`` (never
    deleted) and cut off; a complete last record without its newline gets the newline.  Symlinks are refused.
    """

    def __init__(self, path: Path) -> None:
        _check_results_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.quarantined: Path | None = None
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        self.f = os.fdopen(fd, "ab")
        self._lock()
        try:
            raw = path.read_bytes()
            _, end, complete_tail = _parse_lines(raw, path)
            if end != len(raw):
                q = quarantine_path(path)
                atomic_write_bytes(q, raw[end:], what="quarantined tail")
                self.quarantined = q
                warnings.warn(f"{path}: a truncated last record ({len(raw) - end} bytes, from an interrupted "
                              f"run) was moved to {q}", stacklevel=3)
                self.f.truncate(end)
            elif complete_tail:
                self.f.write(b"\n")
            self.f.flush()
            os.fsync(self.f.fileno())
        except BaseException:
            self._unlock()
            self.f.close()
            raise
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
    gen = par(delayed(_call)(fn, key, trial) for key, trial in todo)
    finished = False
    try:
        yield from gen
        finished = True
    finally:
        if not finished:  # interrupted (KeyboardInterrupt, a failed trial, the caller stopped): no orphans
            with contextlib.suppress(Exception):
                gen.close()
            _shutdown_loky()


@contextlib.contextmanager
def _terminate_as_exit():
    """While a sweep runs in the main thread, SIGTERM raises ``SystemExit(143)`` instead of killing the
    process outright, so that the ``finally`` blocks run: the workers are shut down (they would otherwise be
    orphaned, computing abandoned trials) and the results file is closed.  SIGKILL cannot be caught: kill the
    process group (``kill -9 -PGID``) to stop the workers too."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _shutdown_loky() -> None:
    """Terminate joblib's reusable loky workers now (they would otherwise idle on, computing abandoned trials)."""
    with contextlib.suppress(Exception):
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True, kill_workers=True)


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
    futures: list = []
    try:
        futures = [client.submit(_call, fn, key, trial, pure=False) for key, trial in todo]
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:  # interrupted: do not leave work running on a cluster we do not own
            with contextlib.suppress(Exception):
                client.cancel(pending)
        for obj in owned:
            with contextlib.suppress(Exception):
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
    wait: bool = True,
) -> list[dict]:
    """Run ``fn`` on every trial not yet in ``out_path``; return the records of ``trials``, in their order.

    ``trials``: dicts of JSON-serialisable parameters with distinct keys (:func:`trial_key`).
    ``out_path``: the JSONL file; created if missing, appended to otherwise.  Records of other trials in the
    file are kept but not returned.  ``backend``: ``"local"`` (joblib) or ``"dask"`` (module docstring).
    ``n_jobs``: workers (``-1`` = all cores for joblib).  ``progress``: show a tqdm bar over trials.

    If a trial raises, the sweep waits for nothing more, keeps every record already written, and raises
    :class:`SweepError` naming the failed trial (rerun to resume).  On ``KeyboardInterrupt`` or SIGTERM
    (which raises ``SystemExit(143)`` during the sweep) the joblib workers are terminated and pending Dask
    tasks cancelled before the exception propagates.

    Safety: a ``out_path`` that is a symlink is refused (:class:`~prunebound.errors.UnsafeOutputError`) and
    its folder is checked writable before any trial runs.  Runs on one results file are serialised by an
    exclusive lock on ``.<name>.lock`` next to it: a second run waits (``wait=True``) and then skips what the
    first finished, or raises :class:`~prunebound.errors.ConcurrentRunError` at once (``wait=False``).
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
    _check_results_path(path)
    check_writable(path, what="results file")
    with RunLock(path.parent, name=f".{path.name}.lock", wait=wait), _terminate_as_exit():
        done = {r["key"]: r for r in read_results(path)}
        todo = [(k, t) for k, t in zip(keys, trials) if k not in done]

        from tqdm.auto import tqdm

        bar = tqdm(total=len(trials), initial=len(trials) - len(todo), desc=desc or path.stem,
                   disable=not progress, unit="trial", dynamic_ncols=True)
        by_key = dict(zip(keys, trials))
        writer = _Writer(path)
        runner: Any = None
        try:
            if todo:
                runner = (_run_local(fn, todo, n_jobs) if backend == "local"
                          else _run_dask(fn, todo, n_jobs, scheduler))
                for key, res, secs, err in runner:
                    if err is not None:
                        raise SweepError(f"trial {by_key[key]!r} (key {key}) failed:\n{err}")
                    rec = {"key": key, "trial": by_key[key], "result": res, "seconds": round(secs, 6)}
                    writer.write(rec)
                    done[key] = rec
                    bar.update(1)
        finally:
            if runner is not None:
                runner.close()  # on an interrupt or a failed trial: stops and shuts down the workers
            writer.close()
            bar.close()
    return [done[k] for k in keys]

