"""Data sets: a :class:`Dataset` record, the synthetic teacher task, and offline loaders.

Nothing here touches a network except :meth:`TeacherTask.true_risk`, which evaluates a user's model on fresh
samples.  Every random choice takes a ``seed`` or a ``torch.Generator``.

Data sets shipped or generated offline:

* :func:`teacher_task` -- a fixed random ReLU teacher network; :meth:`TeacherTask.sample` draws fresh i.i.d.
  labelled points forever, so the true risk of any model can be estimated to any precision.  This is the ground
  truth for every bound-verification test.
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

from prunebound.errors import DataError, InvalidParameterError, check_positive_int, check_probability

__all__ = [
    "Dataset",
    "Split",
    "TeacherTask",
    "teacher_task",
    "mnist1d",
    "digits",
    "load_mnist",
    "load_cifar10",
    "resolve",
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

    def sample(self, n: int, generator: torch.Generator | int | None = None) -> Dataset:
        """Draw ``n`` fresh labelled points (seeded by ``generator``: a ``torch.Generator`` or an int seed)."""
        check_positive_int("n", n)
        g = self._gen(generator)
        x = torch.randn(n, self.d_in, generator=g)
        with torch.no_grad():
            y = self.teacher(x).argmax(1)
        if self.label_noise > 0:
            flip = torch.rand(n, generator=g) < self.label_noise
            shift = torch.randint(1, self.n_classes, (n,), generator=g)
            y = torch.where(flip, (y + shift) % self.n_classes, y)
        return Dataset(x, y, name=self.name, n_classes=self.n_classes)

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
                 seed: int = 0) -> TeacherTask:
    """Create a :class:`TeacherTask` (see there)."""
    return TeacherTask(d_in, width, n_classes, label_noise, seed=seed)


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


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"file not found: {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from e
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


def _parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    name, _, rest = spec.partition(":")
    kw: dict[str, str] = {}
    if rest:
        for item in rest.split(","):
            if "=" not in item:
                raise InvalidParameterError(f"data spec {spec!r}: expected key=value, got {item!r}")
            k, v = item.split("=", 1)
            kw[k.strip()] = v.strip()
    return name.strip(), kw


def resolve(spec: str) -> Dataset:
    """Turn a CLI data spec into a :class:`Dataset`.

    Forms: ``mnist1d:n=4000,seed=0[,part=train|test]``, ``digits[:seed=0,part=...]``,
    ``teacher:d=20,width=64,k=2,noise=0.0,seed=0,n=1000,sample_seed=1``, ``mnist:dir=PATH[,part=...]``,
    ``cifar10:dir=PATH[,part=...]``.  ``part`` defaults to ``train``.
    """
    name, kw = _parse_spec(spec)
    part = kw.pop("part", "train")
    if part not in ("train", "test"):
        raise InvalidParameterError(f"data spec {spec!r}: part must be train or test, got {part!r}")
    if name == "teacher":
        t = teacher_task(int(kw.get("d", 20)), int(kw.get("width", 64)), int(kw.get("k", 2)),
                         float(kw.get("noise", 0.0)), int(kw.get("seed", 0)))
        ds = t.sample(int(kw.get("n", 1000)), int(kw.get("sample_seed", 1)))
        return Dataset(ds.x, ds.y, ds.name, ds.n_classes, spec=spec)
    if name == "mnist1d":
        s = mnist1d(int(kw.get("n", 4000)), int(kw.get("seed", 0)))
    elif name == "digits":
        s = digits(seed=int(kw.get("seed", 0)))
    elif name == "mnist":
        s = load_mnist(kw["dir"])
    elif name == "cifar10":
        s = load_cifar10(kw["dir"])
    else:
        raise InvalidParameterError(
            f"unknown data set {name!r} in spec {spec!r}; known: teacher, mnist1d, digits, mnist, cifar10")
    ds = s.train if part == "train" else s.test
    return Dataset(ds.x, ds.y, ds.name, ds.n_classes, spec=spec)
