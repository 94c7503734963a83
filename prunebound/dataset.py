"""The data record every method takes: :class:`Dataset` (inputs, integer labels, name, classes, spec and a SHA-256
of the contents), :func:`as_dataset` (also ``(x, y)`` tensors or a ``DataLoader``) and :class:`Split`.

Re-exported by :mod:`prunebound.data`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from prunebound.errors import (
    DataError,
    check_probability,
)

__all__ = ["Dataset", "as_dataset", "Split"]


def _as_tensor_x(x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not torch.is_floating_point(t):
        t = t.to(torch.float32)
    return t


def _as_tensor_y(y) -> torch.Tensor:
    t = torch.as_tensor(y)
    if torch.is_floating_point(t):
        if not torch.all(t == t.round()):
            raise DataError("labels y must be integers (class indices); got non-integral floats")
    return t.to(torch.int64)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled classification data set: ``x`` (N, ...) float tensor, ``y`` (N,) int64 class indices.

    Raises :class:`~prunebound.errors.DataError` on empty data, length mismatch, non-finite inputs or negative
    labels.  ``sha256`` hashes the raw bytes of ``x`` and ``y`` (dtype and shape included) and is what a
    :class:`~prunebound.certificate.Certificate` records.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str = "data"
    n_classes: int | None = None
    spec: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        x = _as_tensor_x(self.x)
        y = _as_tensor_y(self.y)
        if x.ndim == 0 or x.shape[0] == 0:
            raise DataError(f"dataset {self.name!r} is empty (x has shape {tuple(x.shape)}); need >= 1 example")
        if y.ndim != 1:
            raise DataError(f"dataset {self.name!r}: y must be 1-D class indices, got shape {tuple(y.shape)}")
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"dataset {self.name!r}: x has {x.shape[0]} rows but y has {y.shape[0]} labels; they must match"
            )
        if not torch.isfinite(x).all():
            raise DataError(f"dataset {self.name!r}: x contains NaN or inf values")
        if (y < 0).any():
            raise DataError(f"dataset {self.name!r}: labels must be >= 0, got min {int(y.min())}")
        k = int(y.max()) + 1
        if self.n_classes is not None and k > self.n_classes:
            raise DataError(f"dataset {self.name!r}: label {k - 1} >= n_classes={self.n_classes}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if self.n_classes is None:
            object.__setattr__(self, "n_classes", k)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def sha256(self) -> str:
        """Content hash of ``x`` and ``y`` (dtype, shape and bytes)."""
        h = hashlib.sha256()
        for t in (self.x, self.y):
            a = t.detach().cpu().contiguous().numpy()
            h.update(str(a.dtype).encode())
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def subset(self, index) -> Dataset:
        """Rows ``index`` (slice, bool mask or integer indices) as a new :class:`Dataset`."""
        return Dataset(self.x[index], self.y[index], name=self.name, n_classes=self.n_classes)

    def split(self, fraction: float, *, seed: int | None = 0) -> tuple[Dataset, Dataset]:
        """Random split into (first, second) with ``round(fraction * N)`` examples in the first part."""
        check_probability("fraction", fraction)
        g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        perm = torch.randperm(len(self), generator=g)
        k = int(round(fraction * len(self)))
        if k == 0 or k == len(self):
            raise DataError(f"split fraction {fraction} leaves an empty part of a {len(self)}-example dataset")
        return self.subset(perm[:k]), self.subset(perm[k:])

    def batches(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.x[i : i + batch_size], self.y[i : i + batch_size]

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, n={len(self)}, input_shape={self.input_shape}, n_classes={self.n_classes})"


def as_dataset(obj, *, name: str | None = None) -> Dataset:
    """Convert what users pass as data into a :class:`Dataset` (a :class:`Dataset` is returned unchanged).

    Accepted: a :class:`Dataset`; a pair ``(x, y)`` of tensors / arrays (inputs and integer class labels); a
    ``torch.utils.data.DataLoader`` (or any iterable of ``(x, y)`` batches) — every batch is read once, in the
    loader's order, and concatenated, so use a loader without shuffling when the result must be reproducible.
    Anything else raises :class:`~prunebound.errors.DataError` naming the type received and what is allowed.
    """
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and not isinstance(obj[0], (tuple, list)):
        x, y = obj
        try:
            return Dataset(_as_tensor_x(x), _as_tensor_y(y), name=name or "tensors")
        except (TypeError, RuntimeError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"data (x, y) could not be read as tensors: {e}") from None
    if isinstance(obj, torch.utils.data.DataLoader) or (
            hasattr(obj, "__iter__") and not isinstance(obj, (torch.Tensor, str, bytes, dict, tuple, list))):
        xs, ys = [], []
        for i, batch in enumerate(obj):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise DataError(f"data loader batch {i} is a {type(batch).__name__}; each batch must be a pair "
                                "(inputs, labels)")
            xs.append(_as_tensor_x(batch[0]))
            ys.append(_as_tensor_y(batch[1]).reshape(-1))
        if not xs:
            raise DataError("data loader yielded no batches (0 examples)")
        return Dataset(torch.cat(xs), torch.cat(ys), name=name or "loader")
    raise DataError(f"data must be a prunebound Dataset, a pair (x, y) of tensors or a DataLoader of (x, y) "
                    f"batches; got {type(obj).__name__}")

@dataclass(frozen=True)
class Split:
    """A train/test pair."""

    train: Dataset
    test: Dataset
