"""Data sets: a :class:`Dataset` record, the synthetic teacher task, and offline loaders.

Nothing here touches a network except :meth:`TeacherTask.true_risk`, which evaluates a user's model on fresh
samples.  Every random choice takes a ``seed`` or a ``torch.Generator``.

Data sets shipped or generated offline:

* :func:`teacher_task` -- a fixed random ReLU teacher network; :meth:`TeacherTask.sample` draws fresh i.i.d.
  labelled points forever, so the true risk of any model can be estimated to any precision.  This is the ground
  truth for every bound-verification test.
* :func:`conv_teacher_task` (or ``teacher_task(shape=(3, 32, 32))``) -- the same for CIFAR-shaped images: a
  fixed random convolutional teacher labels smooth random 3x32x32 images, so conv nets (ResNet-20, VGG, ...)
  get a measurable true risk.
* :func:`mnist1d` -- MNIST-1D (Greydanus 2020), generated with ``mnist1d.data.make_dataset`` (never downloaded).
* :func:`digits` -- scikit-learn's 8x8 digits.
* :func:`load_mnist` (IDX files, plain or ``.gz``) and :func:`load_cifar10` (the *binary* release, no pickle).

Generated data sets (MNIST-1D) are cached on disk (:func:`cache_dir`, :func:`cached_arrays`): one file per
generator call, named by the SHA-256 of the generator's name, arguments and version, written atomically (temp
file + rename) with a SHA-256 checksum of its payload.  A missing, truncated or corrupt file is regenerated,
never trusted.  ``PRUNEBOUND_CACHE=DIR`` moves the cache, ``PRUNEBOUND_CACHE=off`` disables it; otherwise it
lives in ``$XDG_CACHE_HOME/prunebound`` (default ``~/.cache/prunebound``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import math
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunebound.errors import (
    DataError,
    DataSpecError,
    InvalidParameterError,
    check_positive_int,
    check_probability,
)

__all__ = [
    "Dataset",
    "as_dataset",
    "Split",
    "TeacherTask",
    "teacher_task",
    "ConvTeacherTask",
    "conv_teacher_task",
    "mnist1d",
    "digits",
    "load_mnist",
    "load_cifar10",
    "resolve",
    "DEFAULT_MAX_N",
    "DEFAULT_MAX_DIM",
    "cache_dir",
    "cached_arrays",
]

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------- teacher task


class TeacherTask:
    """A fixed random ReLU teacher: ``x ~ N(0, I_d)`` and ``y = argmax teacher(x)``, flipped with prob. ``label_noise``.

    The teacher is a one-hidden-layer ReLU net ``d_in -> width -> n_classes`` with Gaussian weights drawn from
    ``seed``.  With label noise η the labels of a fraction η of points are replaced by a uniformly random *other*
    class, so the Bayes risk is exactly η (when the teacher is deterministic), which makes the task useful for
    checking that bounds never go below reality.

    :meth:`sample` draws fresh i.i.d. samples; :meth:`true_risk` estimates a model's 0-1 risk on ``n`` fresh
    samples (``>= 1e5`` by default) and returns the estimate.
    """

    def __init__(self, d_in: int = 20, width: int = 64, n_classes: int = 2, label_noise: float = 0.0,
                 *, seed: int = 0) -> None:
        check_positive_int("d_in", d_in)
        check_positive_int("width", width)
        check_positive_int("n_classes", n_classes, minimum=2)
        check_probability("label_noise", label_noise, open_left=False)
        self.d_in, self.width, self.n_classes, self.label_noise, self.seed = d_in, width, n_classes, label_noise, seed
        g = torch.Generator().manual_seed(int(seed))
        w1 = torch.randn(width, d_in, generator=g) / math.sqrt(d_in)
        b1 = 0.1 * torch.randn(width, generator=g)
        w2 = torch.randn(n_classes, width, generator=g) / math.sqrt(width)
        self.teacher = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, n_classes))
        with torch.no_grad():
            self.teacher[0].weight.copy_(w1)
            self.teacher[0].bias.copy_(b1)
            self.teacher[2].weight.copy_(w2)
            self.teacher[2].bias.zero_()
        self.teacher.requires_grad_(False)
        self.name = f"teacher(d={d_in},w={width},k={n_classes},eta={label_noise},seed={seed})"

    def _gen(self, seed_or_gen) -> torch.Generator:
        if isinstance(seed_or_gen, torch.Generator):
            return seed_or_gen
        g = torch.Generator()
        g.manual_seed(int(seed_or_gen) if seed_or_gen is not None else int(torch.seed() % (2**63)))
        return g

    def sample(self, n: int, seed: int | torch.Generator | None = None) -> Dataset:
        """Draw ``n`` fresh labelled points (seeded by ``seed``: an int, or a ``torch.Generator`` to continue a
        stream)."""
        check_positive_int("n", n)
        g = self._gen(seed)
        x = self._inputs(n, g)
        with torch.no_grad():
            y = self.teacher(x).argmax(1)
        if self.label_noise > 0:
            flip = torch.rand(n, generator=g) < self.label_noise
            shift = torch.randint(1, self.n_classes, (n,), generator=g)
            y = torch.where(flip, (y + shift) % self.n_classes, y)
        return Dataset(x, y, name=self.name, n_classes=self.n_classes)

    def _inputs(self, n: int, g: torch.Generator) -> torch.Tensor:
        """``n`` i.i.d. standard Gaussian inputs (subclasses draw other input distributions)."""
        return torch.randn(n, self.d_in, generator=g)

    def true_risk(self, model: nn.Module, *, n: int = 100_000, seed: int | torch.Generator = 12345,
                  batch_size: int = 50_000) -> float:
        """Monte-Carlo estimate of the 0-1 risk of ``model`` on ``n`` fresh samples (std. error <= 0.5/sqrt(n))."""
        check_positive_int("n", n)
        g = self._gen(seed)
        was = model.training
        model.eval()
        wrong = 0
        done = 0
        try:
            with torch.no_grad():
                while done < n:
                    m = min(batch_size, n - done)
                    d = self.sample(m, g)
                    wrong += int((model(d.x).argmax(1) != d.y).sum())
                    done += m
        finally:
            model.train(was)
        return wrong / n

    def __repr__(self) -> str:
        return f"TeacherTask({self.name})"


def teacher_task(d_in: int = 20, width: int = 64, n_classes: int = 2, label_noise: float = 0.0,
                 seed: int = 0, *, shape: Sequence[int] | None = None) -> TeacherTask:
    """Create a :class:`TeacherTask` (see there); with ``shape=(C, H, W)`` a :class:`ConvTeacherTask`
    (``d_in`` is then ignored and ``width`` is the teacher's number of filters)."""
    if shape is not None:
        return ConvTeacherTask(tuple(shape), width, n_classes, label_noise, seed=seed)
    return TeacherTask(d_in, width, n_classes, label_noise, seed=seed)


class ConvTeacherTask(TeacherTask):
    """A fixed random convolutional teacher on image-shaped inputs (CIFAR-shaped by default: 3x32x32).

    Inputs are smooth random images: ``z ~ N(0, I)`` of shape ``(C, ceil(H / upsample), ceil(W / upsample))``,
    bilinearly upsampled to ``(C, H, W)`` and scaled to unit pixel variance (``upsample=1``: i.i.d. Gaussian
    pixels).  The teacher is conv5x5(C -> ``width``, stride 2, padding 2) - ReLU - 4x4 average pooling -
    fc(-> ``n_classes``) with Gaussian weights from ``seed``, and ``y = argmax teacher(x)``, flipped to a
    uniformly random other class with probability ``label_noise`` (so the Bayes risk is exactly
    ``label_noise``).  The fc bias is set to minus the teacher's mean logit (estimated once on 4,096 seeded
    inputs) so that the classes are roughly balanced.  :meth:`sample` draws fresh i.i.d. samples forever and
    :meth:`true_risk` estimates a model's 0-1 risk, as for :class:`TeacherTask`.

    Why smooth inputs: with i.i.d. pixels (``upsample=1``, 3,072 independent dimensions) a LeNet-5 trained on
    4,000 samples for 20 epochs (Adam, lr 2e-3) stays near chance (train error 0.87, true risk 0.87 with 10
    classes); with ``upsample=4`` (192 latent dimensions, image-like spatial correlation) the same run reaches
    train error 0.29 and true risk 0.43, leaving room both to learn and to overfit.
    """

    def __init__(self, shape: tuple[int, ...] = (3, 32, 32), width: int = 16, n_classes: int = 10,
                 label_noise: float = 0.0, *, upsample: int = 4, seed: int = 0) -> None:
        if len(shape) != 3:
            raise InvalidParameterError(f"shape must be (channels, height, width); got {shape!r}")
        c, h, w = (check_positive_int(f"shape[{i}]", s) for i, s in enumerate(shape))
        if h < 8 or w < 8 or h * w * c > 1 << 20:
            raise InvalidParameterError(f"shape {shape!r}: height and width must be >= 8 and C*H*W <= 2**20")
        check_positive_int("width", width)
        check_positive_int("n_classes", n_classes, minimum=2)
        check_positive_int("upsample", upsample)
        check_probability("label_noise", label_noise, open_left=False)
        self.shape, self.d_in, self.upsample = (c, h, w), c * h * w, upsample
        self.width, self.n_classes, self.label_noise, self.seed = width, n_classes, label_noise, seed
        self._latent = (c, -(-h // upsample), -(-w // upsample))
        self._scale = 1.0
        g = torch.Generator().manual_seed(int(seed))
        conv = nn.Conv2d(c, width, 5, stride=2, padding=2)
        pooled = ((h + 1) // 2 // 4) * ((w + 1) // 2 // 4)
        fc = nn.Linear(width * pooled, n_classes)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / math.sqrt(c * 25))
            conv.bias.copy_(0.1 * torch.randn(width, generator=g))
            fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) / math.sqrt(width * pooled))
            fc.bias.zero_()
        self.teacher = nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), fc)
        self.teacher.requires_grad_(False)
        with torch.no_grad():
            probe = self._inputs(4096, g)
            self._scale = float(probe.std())
            fc.bias.copy_(-self.teacher(probe / self._scale).mean(0))
        self.name = (f"conv_teacher(shape={c}x{h}x{w},w={width},k={n_classes},eta={label_noise},up={upsample},"
                     f"seed={seed})")

    def _inputs(self, n: int, g: torch.Generator) -> torch.Tensor:
        if self.upsample == 1:
            return torch.randn(n, *self.shape, generator=g)
        z = torch.randn(n, *self._latent, generator=g)
        x = torch.nn.functional.interpolate(z, size=self.shape[1:], mode="bilinear", align_corners=False)
        return x / self._scale


def conv_teacher_task(shape: Sequence[int] = (3, 32, 32), width: int = 16, n_classes: int = 10,
                      label_noise: float = 0.0, seed: int = 0, *, upsample: int = 4) -> ConvTeacherTask:
    """Create a :class:`ConvTeacherTask` (CIFAR-shaped by default; see there)."""
    return ConvTeacherTask(tuple(shape), width, n_classes, label_noise, upsample=upsample, seed=seed)


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


# --------------------------------------------------------------------------------------------- specs for the CLI


DEFAULT_MAX_N = 1_000_000
"""Largest number of examples a data spec may ask for unless the caller raises ``max_n``."""
DEFAULT_MAX_DIM = 10_000
"""Largest input dimension / teacher width / class count a spec may ask for unless ``max_dim`` is raised."""

_SPEC_KEYS = {
    "teacher": {"d", "width", "k", "noise", "seed", "n", "sample_seed", "part"},
    "conv_teacher": {"width", "k", "noise", "up", "seed", "n", "sample_seed", "part"},
    "mnist1d": {"n", "seed", "part"},
    "digits": {"seed", "part"},
    "mnist": {"dir", "part"},
    "cifar10": {"dir", "part"},
}
_SPEC_FORMS = ("teacher:d=20,width=64,k=2,noise=0.0,seed=0,n=1000,sample_seed=1, "
               "conv_teacher:width=16,k=10,noise=0.0,up=4,seed=0,n=1000,sample_seed=1, mnist1d:n=4000,seed=0, "
               "digits:seed=0, mnist:dir=PATH, cifar10:dir=PATH (each optionally ,part=train|test)")


def _parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    if not isinstance(spec, str):
        raise DataSpecError(f"a data spec must be a string like 'teacher:d=20,n=1000'; got {type(spec).__name__}")
    if len(spec) > 4096:
        raise DataSpecError(f"data spec is {len(spec)} characters long; at most 4096")
    name, _, rest = spec.partition(":")
    kw: dict[str, str] = {}
    if rest:
        for item in rest.split(","):
            if "=" not in item:
                raise DataSpecError(f"data spec {spec!r}: expected key=value, got {item!r}")
            k, v = item.split("=", 1)
            k = k.strip()
            if k in kw:
                raise DataSpecError(f"data spec {spec!r}: key {k!r} is given twice")
            kw[k] = v.strip()
    name = name.strip()
    if name not in _SPEC_KEYS:
        raise DataSpecError(
            f"unknown data set {name!r} in spec {spec!r}; "
            "known: teacher, conv_teacher, mnist1d, digits, mnist, cifar10")
    unknown = sorted(set(kw) - _SPEC_KEYS[name])
    if unknown:
        raise DataSpecError(f"data spec {spec!r}: unknown keys {unknown} for {name!r}; allowed: "
                            f"{sorted(_SPEC_KEYS[name])}")
    return name, kw


def _spec_int(spec: str, kw: dict, key: str, default: int, *, lo: int, hi: int | None, limit: str = "") -> int:
    raw = kw.get(key, str(default))
    try:
        v = int(raw)
    except ValueError:
        raise DataSpecError(f"data spec {spec!r}: {key} must be an integer; got {raw!r}") from None
    if v < lo:
        raise DataSpecError(f"data spec {spec!r}: {key} must be >= {lo}; got {v}")
    if hi is not None and v > hi:
        raise DataSpecError(f"data spec {spec!r}: {key}={v} exceeds the limit {hi}{limit}")
    return v


def _spec_float(spec: str, kw: dict, key: str, default: float) -> float:
    raw = kw.get(key, str(default))
    try:
        v = float(raw)
    except ValueError:
        raise DataSpecError(f"data spec {spec!r}: {key} must be a number; got {raw!r}") from None
    if not (math.isfinite(v) and 0.0 <= v < 1.0):
        raise DataSpecError(f"data spec {spec!r}: {key} must lie in [0, 1); got {raw!r}")
    return v


def resolve(spec: str, *, max_n: int | None = None, max_dim: int | None = None) -> Dataset:
    """Turn a CLI data spec into a :class:`Dataset`.

    Forms: ``mnist1d:n=4000,seed=0[,part=train|test]``, ``digits[:seed=0,part=...]``,
    ``teacher:d=20,width=64,k=2,noise=0.0,seed=0,n=1000,sample_seed=1``, ``mnist:dir=PATH[,part=...]``,
    ``cifar10:dir=PATH[,part=...]``.  ``part`` defaults to ``train``.

    Specs can come from untrusted certificates, so the sizes they ask for are bounded *before* anything is
    allocated: at most ``max_n`` examples (default :data:`DEFAULT_MAX_N`) and ``max_dim`` input features,
    teacher width or classes (default :data:`DEFAULT_MAX_DIM`).  Raise the limits for data you trust.
    Malformed specs, unknown keys and values over the limits raise :class:`~prunebound.errors.DataSpecError`.
    """
    max_n = DEFAULT_MAX_N if max_n is None else check_positive_int("max_n", max_n)
    max_dim = DEFAULT_MAX_DIM if max_dim is None else check_positive_int("max_dim", max_dim)
    name, kw = _parse_spec(spec)
    part = kw.pop("part", "train")
    if part not in ("train", "test"):
        raise DataSpecError(f"data spec {spec!r}: part must be train or test, got {part!r}")
    n_lim = " (max_n; pass a larger max_n / --max-n for data you trust)"
    d_lim = " (max_dim; pass a larger max_dim / --max-dim for data you trust)"
    if name == "conv_teacher":  # CIFAR-shaped: conv_teacher:width=16,k=10,noise=0.0,up=4,seed=0,n=1000,sample_seed=1
        width = _spec_int(spec, kw, "width", 16, lo=1, hi=max_dim, limit=d_lim)
        k = _spec_int(spec, kw, "k", 10, lo=2, hi=max_dim, limit=d_lim)
        up = _spec_int(spec, kw, "up", 4, lo=1, hi=32)
        n = _spec_int(spec, kw, "n", 1000, lo=1, hi=max_n, limit=n_lim)
        if n * 3 * 32 * 32 > 1000 * max_n:
            raise DataSpecError(f"data spec {spec!r}: n * 3072 = {n * 3072} values exceeds the limit "
                                f"1000 * max_n = {1000 * max_n}{n_lim}")
        t = conv_teacher_task((3, 32, 32), width, k, _spec_float(spec, kw, "noise", 0.0),
                              _spec_int(spec, kw, "seed", 0, lo=0, hi=2**63 - 1), upsample=up)
        ds = t.sample(n, _spec_int(spec, kw, "sample_seed", 1, lo=0, hi=2**63 - 1))
        return Dataset(ds.x, ds.y, ds.name, ds.n_classes, spec=spec)
    if name == "teacher":
        d_in = _spec_int(spec, kw, "d", 20, lo=1, hi=max_dim, limit=d_lim)
        width = _spec_int(spec, kw, "width", 64, lo=1, hi=max_dim, limit=d_lim)
        k = _spec_int(spec, kw, "k", 2, lo=2, hi=max_dim, limit=d_lim)
        noise = _spec_float(spec, kw, "noise", 0.0)
        seed = _spec_int(spec, kw, "seed", 0, lo=0, hi=2**63 - 1)
        n = _spec_int(spec, kw, "n", 1000, lo=1, hi=max_n, limit=n_lim)
        sample_seed = _spec_int(spec, kw, "sample_seed", 1, lo=0, hi=2**63 - 1)
        if n * max(d_in, width, k) > 100 * max_n:
            raise DataSpecError(f"data spec {spec!r}: n * max(d, width, k) = {n * max(d_in, width, k)} values "
                                f"exceeds the limit 100 * max_n = {100 * max_n}{n_lim}")
        ds = teacher_task(d_in, width, k, noise, seed).sample(n, sample_seed)
        return Dataset(ds.x, ds.y, ds.name, ds.n_classes, spec=spec)
    if name == "mnist1d":
        # mnist1d generates n examples and splits them; both parts are at most n
        s = mnist1d(_spec_int(spec, kw, "n", 4000, lo=10, hi=max_n, limit=n_lim),
                    _spec_int(spec, kw, "seed", 0, lo=0, hi=2**32 - 1))
    elif name == "digits":
        s = digits(seed=_spec_int(spec, kw, "seed", 0, lo=0, hi=2**32 - 1))
    else:
        if "dir" not in kw or not kw["dir"]:
            raise DataSpecError(f"data spec {spec!r}: {name} needs dir=PATH (the folder of the data files)")
        s = load_mnist(kw["dir"]) if name == "mnist" else load_cifar10(kw["dir"])
    ds = s.train if part == "train" else s.test
    if len(ds) > max_n:
        raise DataSpecError(f"data spec {spec!r} gives {len(ds)} examples > max_n={max_n}{n_lim}")
    return Dataset(ds.x, ds.y, ds.name, ds.n_classes, spec=spec)
