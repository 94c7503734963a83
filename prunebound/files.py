"""Safe output files: atomic writes, refusal of symlinked outputs, early writability checks, run locks.

Every file prunebound writes goes through :func:`atomic_write_bytes` / :func:`atomic_write_text`: the data are
written to a temporary file in the *same* folder (so the final ``os.replace`` is an atomic rename on POSIX
file systems), flushed and ``fsync``-ed, then renamed over the target.  A reader therefore sees either the
old file or the complete new one, never a half-written file, and a kill leaves at most a stray
``.<name>.tmp-*`` file.

An output path that is a symbolic link is refused (:class:`~prunebound.errors.UnsafeOutputError`): writing
through it would overwrite whatever file the link points to, possibly outside the output folder.  Folders on
the way are created, but never through a symlinked final component either.

:func:`check_writable` is meant to be called *before* any expensive work, so that an unwritable ``--out`` is
reported at once rather than after an hour of computation.  :class:`RunLock` serialises (or refuses, with
``wait=False``) concurrent runs on one output folder with an exclusive ``fcntl`` lock on a lock file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from prunebound.errors import ConcurrentRunError, UnsafeOutputError

__all__ = ["check_output_path", "check_writable", "atomic_write_bytes", "atomic_write_text", "RunLock"]


def check_output_path(path: str | os.PathLike, *, what: str = "output") -> Path:
    """Return ``Path(path)`` if it may be (over)written: not a symlink, not a folder, parent not a file.

    Raises :class:`UnsafeOutputError` naming the path and what to do otherwise.  Nothing is created.
    """
    p = Path(path)
    if p.is_symlink():
        raise UnsafeOutputError(
            f"{what} {p} is a symbolic link (to {os.readlink(p)}); refusing to write through it. "
            "Remove the link or choose another path")
    if p.exists() and p.is_dir():
        raise UnsafeOutputError(f"{what} {p} is a folder; give a file name")
    for parent in p.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise UnsafeOutputError(f"{what} {p}: {parent} exists and is not a folder")
            break
    return p


def check_writable(path: str | os.PathLike, *, what: str = "output", is_dir: bool = False) -> Path:
    """Check that ``path`` (a file, or a folder with ``is_dir=True``) can be written, before any work starts.

    Refuses symlinked targets, and probes the nearest existing folder on the way with a temporary file that
    is removed again; nothing is left behind (missing folders are created later, by the write itself).
    Raises :class:`UnsafeOutputError` with the reason.
    """
    p = Path(path)
    if is_dir:
        if p.is_symlink():
            raise UnsafeOutputError(f"{what} folder {p} is a symbolic link; refusing to write through it")
        if p.exists() and not p.is_dir():
            raise UnsafeOutputError(f"{what} folder {p} exists and is not a folder")
        folder = p
    else:
        check_output_path(p, what=what)
        folder = p.parent
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise UnsafeOutputError(f"{what} {p}: {probe} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise UnsafeOutputError(f"{what} {p}: {probe} exists and is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".prunebound-probe-", dir=probe)
    except OSError as e:
        raise UnsafeOutputError(f"{what} {p}: folder {probe} is not writable ({e.strerror or e}); "
                                "choose a writable location") from None
    os.close(fd)
    os.unlink(tmp)
    return p


def new_file_mode() -> int:
    """The permission bits an ordinary ``open(path, "w")`` would give (0o666 minus the umask); ``mkstemp``
    creates 0o600 files, which would make every atomically written output private to its owner."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, what: str = "output") -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    p = check_output_path(path, what=what)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.tmp-", dir=p.parent)
    except OSError as e:
        raise UnsafeOutputError(f"cannot write {what} {p}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if p.is_symlink():  # appeared while we wrote: still refuse
            raise UnsafeOutputError(f"{what} {p} became a symbolic link while writing; refusing to replace it")
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return p


def atomic_write_text(path: str | os.PathLike, text: str, *, what: str = "output") -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), what=what)


class RunLock:
    """Exclusive lock on ``folder/.prunebound.lock`` for the duration of a ``with`` block.

    ``wait=True`` (default) serialises concurrent runs; ``wait=False`` raises :class:`ConcurrentRunError`
    at once if another process holds the lock.  The lock file is left in place (removing it would race).
    """

    def __init__(self, folder: str | os.PathLike, *, name: str = ".prunebound.lock", wait: bool = True) -> None:
        self.path = Path(folder) / name
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        check_output_path(self.path, what="lock file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(self.path, flags, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no locking
            return self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ConcurrentRunError(
                f"another prunebound run holds {self.path}; wait for it to finish or use another output "
                "folder") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(ImportError, OSError):
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
