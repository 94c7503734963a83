"""Offline data sources: MNIST-1D (generated, cached), scikit-learn's digits, and readers for the MNIST IDX and
CIFAR-10 *binary* files a user points at (size-checked before reading, no pickle).  Re-exported by
:mod:`prunebound.data`.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from prunebound.data_cache import cached_arrays
from prunebound.dataset import Dataset, Split
from prunebound.errors import (
    DataError,
    check_positive_int,
    check_probability,
)

__all__ = ["mnist1d", "digits", "load_mnist", "load_cifar10"]


# --------------------------------------------------------------------------------------------- MNIST-1D


def mnist1d(n_samples: int = 4000, seed: int = 0, *, train_fraction: float = 0.8) -> Split:
    """MNIST-1D (Greydanus 2020) generated offline by ``mnist1d.data.make_dataset``: 40-dim inputs, 10 classes.

    The generator seeds numpy's *global* RNG; we save and restore that state so calling this has no side effects.
    The generated arrays are cached on disk (:func:`cached_arrays`; key: n, seed, train fraction, mnist1d's
    version and generator arguments).
    """
    check_positive_int("n_samples", n_samples, minimum=10)
    check_probability("train_fraction", train_fraction)
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover
        raise DataError("mnist1d is not installed: pip install mnist1d") from e
    args = get_dataset_args()
    args.num_samples = int(n_samples)
    args.seed = int(seed)
    args.train_split = float(train_fraction)

    def make() -> dict[str, np.ndarray]:
        state = np.random.get_state()
        try:
            d = make_dataset(args)
        finally:
            np.random.set_state(state)
        return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}

    try:
        from importlib.metadata import version as _version

        mv = _version("mnist1d")
    except Exception:  # pragma: no cover
        mv = "unknown"
    key = {"mnist1d": mv, "args": {k: v for k, v in vars(args).items() if k != "url"}}
    d = cached_arrays("mnist1d", key, make, ("x", "y", "x_test", "y_test"))
    spec = f"mnist1d:n={n_samples},seed={seed}"
    tr = Dataset(torch.tensor(d["x"], dtype=torch.float32), torch.tensor(d["y"]), name="mnist1d-train",
                 n_classes=10, spec=spec + ",part=train")
    te = Dataset(torch.tensor(d["x_test"], dtype=torch.float32), torch.tensor(d["y_test"]), name="mnist1d-test",
                 n_classes=10, spec=spec + ",part=test")
    return Split(tr, te)


def digits(*, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's 8x8 digits (1797 images), pixels scaled to [0, 1], flattened to 64 features."""
    from sklearn.datasets import load_digits

    d = load_digits()
    ds = Dataset(torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target), name="digits",
                 n_classes=10)
    te, tr = ds.split(test_fraction, seed=seed)
    spec = f"digits:seed={seed}"
    return Split(Dataset(tr.x, tr.y, "digits-train", 10, spec=spec + ",part=train"),
                 Dataset(te.x, te.y, "digits-test", 10, spec=spec + ",part=test"))


# --------------------------------------------------------------------------------------------- file loaders


_MAX_FILE_BYTES = 2 * 2**30  # a data file larger than this (or a device, a FIFO) is refused before reading


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a folder, device or pipe); expected a data file")
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise DataError(f"{path} is {path.stat().st_size} bytes; data files are at most {_MAX_FILE_BYTES} bytes")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(_MAX_FILE_BYTES + 1)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from e
        if len(raw) > _MAX_FILE_BYTES:
            raise DataError(f"{path} decompresses to more than {_MAX_FILE_BYTES} bytes; refusing it")
    return raw


def _read_idx(path: Path, expect_ndim: int) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format): magic 0x0000 | dtype 0x08 | ndim, then big-endian sizes."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    if ndim != expect_ndim:
        raise DataError(f"{path}: expected an IDX file with {expect_ndim} dimensions, found {ndim}")
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {4 + 4 * ndim})")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for cand in (directory / stem, directory / (stem + ".gz")):
        if cand.exists():
            return cand
    raise DataError(f"file not found: {directory / stem} (or {stem}.gz) -- expected the MNIST IDX release")


def load_mnist(directory: str | os.PathLike, *, flatten: bool = True) -> Split:
    """MNIST from the four IDX files (``train-images-idx3-ubyte`` etc., plain or ``.gz``) in ``directory``.

    Pixels scaled to [0, 1]; ``flatten=True`` gives (N, 784) else (N, 1, 28, 28).
    """
    d = Path(directory)
    parts = []
    for prefix in ("train", "t10k"):
        imgs = _read_idx(_find(d, f"{prefix}-images-idx3-ubyte"), 3)
        labels = _read_idx(_find(d, f"{prefix}-labels-idx1-ubyte"), 1)
        if imgs.shape[0] != labels.shape[0]:
            raise DataError(f"{d}: {prefix} images ({imgs.shape[0]}) and labels ({labels.shape[0]}) differ in count")
        x = torch.tensor(imgs, dtype=torch.float32) / 255.0
        x = x.reshape(len(x), -1) if flatten else x.unsqueeze(1)
        parts.append(Dataset(x, torch.tensor(labels.astype(np.int64)), name=f"mnist-{prefix}", n_classes=10,
                             spec=f"mnist:dir={d}"))
    return Split(parts[0], parts[1])


def load_cifar10(directory: str | os.PathLike) -> Split:
    """CIFAR-10 from the *binary* release (``data_batch_1.bin`` ... ``test_batch.bin``); no pickle is read.

    Each record is 1 label byte + 3072 pixel bytes (3x32x32, channel-major).  Pixels scaled to [0, 1].
    """
    d = Path(directory)
    rec = 1 + 3072

    def read(names: Sequence[str], name: str) -> Dataset:
        xs, ys = [], []
        for nm in names:
            raw = _read_bytes(d / nm)
            if len(raw) == 0 or len(raw) % rec:
                raise DataError(f"{d / nm}: size {len(raw)} is not a multiple of the {rec}-byte CIFAR-10 record")
            a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, rec)
            ys.append(a[:, 0].astype(np.int64))
            xs.append(a[:, 1:].reshape(-1, 3, 32, 32))
        y = np.concatenate(ys)
        if y.max() > 9:
            raise DataError(f"{d}: CIFAR-10 label {int(y.max())} out of range 0..9 (is this the binary release?)")
        return Dataset(torch.tensor(np.concatenate(xs), dtype=torch.float32) / 255.0, torch.tensor(y), name=name,
                       n_classes=10, spec=f"cifar10:dir={d}")

    return Split(read([f"data_batch_{i}.bin" for i in range(1, 6)], "cifar10-train"),
                 read(["test_batch.bin"], "cifar10-test"))
