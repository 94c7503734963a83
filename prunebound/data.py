"""Data sets: a :class:`Dataset` record, the synthetic teacher task, offline loaders, and CLI data specs.

One concept per module, all re-exported here (``from prunebound.data import teacher_task`` keeps working):
:mod:`prunebound.dataset` (the record), :mod:`prunebound.teacher` (teacher tasks), :mod:`prunebound.data_sources`
(MNIST-1D, digits, MNIST / CIFAR-10 file readers), :mod:`prunebound.data_cache` (the on-disk cache); the data
spec grammar of the CLI and certificates (:func:`resolve`) lives here.

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

import math

from prunebound.data_cache import cache_dir, cached_arrays
from prunebound.data_sources import digits, load_cifar10, load_mnist, mnist1d
from prunebound.dataset import Dataset, Split, as_dataset
from prunebound.errors import DataSpecError, check_positive_int
from prunebound.teacher import ConvTeacherTask, TeacherTask, conv_teacher_task, teacher_task

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
