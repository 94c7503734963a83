"""Model zoo registry: build architectures by name, with validated keyword arguments, and the CLI ``--arch`` grammar.

The architectures themselves (classes with their own ``forward``, parameter counts, deviations from the papers)
are in :mod:`prunebound.zoo_models` and re-exported here; ``lenet5``, ``mlp``, ``lenet300_100`` and
``conv1d_small`` are :mod:`prunebound.network`'s ``nn.Sequential`` factories, re-exported unchanged.

:data:`REGISTRY` maps names to :class:`ZooEntry` (factory and validated keyword arguments); :func:`build` builds
one by name (checked on the ``meta`` device against a parameter budget first), :func:`parse_arch` /
:func:`from_arch` read the CLI ``--arch`` grammar (``resnet20:classes=10,width=16``, ``mlp:40,128,10``).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from prunebound.errors import InvalidParameterError
from prunebound.network import conv1d_small, lenet5, lenet300_100, mlp
from prunebound.zoo_models import (
    VGG,
    BasicBlock,
    CifarResNet,
    DenseNet,
    DepthwiseSeparable,
    MobileNet,
    ZooModel,
    densenet,
    densenet_1d,
    mobilenet,
    resnet20,
    resnet20_1d,
    resnet56,
    vgg11,
    vgg16,
)

__all__ = [
    "ZooModel",
    "BasicBlock",
    "CifarResNet",
    "VGG",
    "DepthwiseSeparable",
    "MobileNet",
    "DenseNet",
    "resnet20",
    "resnet56",
    "resnet20_1d",
    "vgg11",
    "vgg16",
    "mobilenet",
    "densenet",
    "densenet_1d",
    "ZooEntry",
    "REGISTRY",
    "build",
    "parse_arch",
    "from_arch",
    "count_params",
    "lenet5",
    "mlp",
    "lenet300_100",
    "conv1d_small",
]


# ------------------------------------------------------------------------------------------- registry
MAX_WIDTH = 4096
MAX_CLASSES = 100_000
MAX_PARAMS = 2_000_000_000


def _int_range(lo: int, hi: int) -> Callable:
    def check(name: str, v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InvalidParameterError(f"{name} must be an integer in [{lo}, {hi}]; got {v!r:.60}")
        return v

    check.allowed = f"integer in [{lo}, {hi}]"
    return check


def _choice(*opts) -> Callable:
    def check(name: str, v):
        if v not in opts:
            raise InvalidParameterError(f"{name} must be one of {list(opts)}; got {v!r:.60}")
        return v

    check.allowed = f"one of {list(opts)}"
    return check


def _bool(name: str, v):
    if not isinstance(v, bool):
        raise InvalidParameterError(f"{name} must be true or false; got {v!r:.60}")
    return v


_bool.allowed = "true/false"


def _opt_seed(name: str, v):
    if v is None:
        return v
    return _int_range(0, 2**63 - 1)(name, v)


_opt_seed.allowed = "integer >= 0 or null"


def _width_list(name: str, v):
    if not isinstance(v, (list, tuple)) or len(v) > 64:
        raise InvalidParameterError(f"{name} must be a list of at most 64 integers; got {v!r:.60}")
    return [_int_range(1, 1 << 20)(f"{name}[{i}]", w) for i, w in enumerate(v)]


_width_list.allowed = "list of integers"

_CLS = _int_range(1, MAX_CLASSES)
_CH = _int_range(1, 4096)
_W = _int_range(1, MAX_WIDTH)
_LEN = _int_range(1, 1 << 20)
_FEAT = _int_range(1, 1 << 24)


@dataclass(frozen=True)
class ZooEntry:
    """A registered architecture: ``factory(**kwargs)`` with each keyword validated by ``params[k]``;
    ``positional`` names the keywords the ``--arch`` grammar accepts without ``key=`` (in order; a ``*``
    suffix takes all remaining values as a list)."""

    factory: Callable[..., nn.Module]
    params: Mapping[str, Callable] = field(default_factory=dict)
    positional: tuple[str, ...] = ()
    doc: str = ""

    def validate(self, name: str, kwargs: Mapping) -> dict:
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            allowed = ", ".join(f"{k} ({c.allowed})" for k, c in self.params.items())
            raise InvalidParameterError(f"architecture {name!r} has no parameter {unknown[0]!r}; allowed: {allowed}")
        required = [p.name for p in inspect.signature(self.factory).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD]
        missing = [k for k in required if k not in kwargs]
        if missing:
            raise InvalidParameterError(f"architecture {name!r} needs {', '.join(missing)}")
        return {k: self.params[k](k, v) for k, v in kwargs.items()}


def _mlp_entry(d_in: int, widths=(), d_out: int = 10, *, bias: bool = True, seed: int | None = None):
    return mlp(d_in, list(widths), d_out, bias=bias, seed=seed)


REGISTRY: dict[str, ZooEntry] = {
    "mlp": ZooEntry(_mlp_entry, {"d_in": _FEAT, "widths": _width_list, "d_out": _CLS, "bias": _bool,
                                 "seed": _opt_seed}, ("d_in", "widths*", "d_out"), "ReLU MLP (network.mlp)"),
    "lenet300_100": ZooEntry(lenet300_100, {"d_in": _FEAT, "d_out": _CLS, "seed": _opt_seed}, ("d_in", "d_out"),
                             "LeNet-300-100"),
    "lenet5": ZooEntry(lenet5, {"in_channels": _CH, "n_classes": _CLS, "input_size": _int_range(12, 4096),
                                "seed": _opt_seed}, (), "LeNet-5 (network.lenet5)"),
    "conv1d_small": ZooEntry(conv1d_small, {"length": _LEN, "n_classes": _CLS, "channels": _W, "seed": _opt_seed},
                             (), "small 1-D CNN for MNIST-1D"),
    "resnet20": ZooEntry(resnet20, {"num_classes": _CLS, "in_channels": _CH, "width": _W,
                                    "shortcut": _choice("A", "B"), "seed": _opt_seed}, (), "CIFAR ResNet-20"),
    "resnet56": ZooEntry(resnet56, {"num_classes": _CLS, "in_channels": _CH, "width": _W,
                                    "shortcut": _choice("A", "B"), "seed": _opt_seed}, (), "CIFAR ResNet-56"),
    "resnet20_1d": ZooEntry(resnet20_1d, {"num_classes": _CLS, "in_channels": _CH, "length": _LEN, "width": _W,
                                          "shortcut": _choice("A", "B"), "seed": _opt_seed}, (),
                            "ResNet-20 with 1-D convolutions (MNIST-1D)"),
    "vgg11": ZooEntry(vgg11, {"num_classes": _CLS, "in_channels": _CH, "width": _W, "seed": _opt_seed}, (),
                      "VGG-11 with BatchNorm (CIFAR)"),
    "vgg16": ZooEntry(vgg16, {"num_classes": _CLS, "in_channels": _CH, "width": _W, "seed": _opt_seed}, (),
                      "VGG-16 with BatchNorm (CIFAR)"),
    "mobilenet": ZooEntry(mobilenet, {"num_classes": _CLS, "in_channels": _CH, "width": _W, "seed": _opt_seed},
                          (), "MobileNet-v1, depthwise separable convolutions (CIFAR)"),
    "densenet": ZooEntry(densenet, {"num_classes": _CLS, "in_channels": _CH, "width": _W,
                                    "layers": _int_range(1, 64), "seed": _opt_seed}, (),
                         "DenseNet-style net with concatenation (CIFAR)"),
    "densenet_1d": ZooEntry(densenet_1d, {"num_classes": _CLS, "in_channels": _CH, "length": _LEN, "width": _W,
                                          "layers": _int_range(1, 64), "seed": _opt_seed}, (),
                            "DenseNet-style net with 1-D convolutions (MNIST-1D)"),
}

# short keys accepted by the --arch grammar and by build()
_ALIASES = {"classes": ("num_classes", "n_classes", "d_out"), "channels": ("in_channels", "channels"),
            "k": ("num_classes", "n_classes", "d_out")}


def _resolve_alias(entry: ZooEntry, key: str) -> str:
    if key in entry.params:
        return key
    for target in _ALIASES.get(key, ()):
        if target in entry.params:
            return target
    return key


def count_params(module: nn.Module) -> int:
    """All parameters (tied ones once), the usual way papers count them."""
    return sum(p.numel() for p in module.parameters())


def build(name: str, *, max_params: int = MAX_PARAMS, device: str | torch.device | None = None,
          **kwargs) -> nn.Module:
    """Build the zoo model ``name`` with validated keyword arguments.

    The model is first built on the ``meta`` device (no memory) to check its size against ``max_params``;
    ``device="meta"`` returns that shell (what :mod:`prunebound.io` uses to check a checkpoint before loading).
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise InvalidParameterError(f"unknown architecture {name!r}; known: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    kwargs = {_resolve_alias(entry, k): v for k, v in kwargs.items()}
    kw = entry.validate(name, kwargs)
    with torch.device("meta"):
        shell = entry.factory(**kw)
    n = sum(t.numel() for t in shell.state_dict().values())
    if n > max_params:
        raise InvalidParameterError(f"architecture {name!r} with {kw} has {n:,} parameters and buffers, over the "
                                    f"budget max_params={max_params:,}")
    if device is not None and torch.device(device).type == "meta":
        return shell
    with torch.device(device) if device is not None else _NoDevice():
        return entry.factory(**kw)


class _NoDevice:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _value(text: str):
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    if "/" in t:  # list of ints, e.g. widths=128/64
        return [_value(a) for a in t.split("/")]
    return t


def parse_arch(spec: str) -> tuple[str, dict]:
    """Parse the ``--arch`` grammar into ``(name, kwargs)`` (validated against the registry).

    Grammar: ``NAME[:ITEM,ITEM,...]`` with ``ITEM`` either ``key=value`` or, for architectures with positional
    parameters, a bare value: ``mlp:40,128,64,10`` (d_in, hidden widths..., d_out), ``lenet300_100:784,10``,
    ``resnet20:classes=10,width=16,shortcut=B``, ``vgg16:classes=100``, ``densenet_1d:width=8``.  Values are
    integers, numbers, ``true``/``false``, ``none``, ``a/b/c`` lists or words.  Short keys: ``classes`` (number
    of classes), ``channels`` (input channels).  A JSON object after the colon is accepted too:
    ``resnet20:{"num_classes": 10}``.  Malformed strings raise :class:`InvalidParameterError`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError(f"--arch must be a non-empty string like 'resnet20:classes=10'; got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in REGISTRY:
        raise InvalidParameterError(f"unknown architecture {name!r} in --arch {spec!r}; known: "
                                    f"{', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    rest = rest.strip()
    kwargs: dict = {}
    if rest.startswith("{"):
        try:
            obj = json.loads(rest)
        except json.JSONDecodeError as e:
            raise InvalidParameterError(f"--arch {spec!r}: the JSON after ':' is malformed ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InvalidParameterError(f"--arch {spec!r}: the JSON after ':' must be an object")
        kwargs = {_resolve_alias(entry, str(k)): v for k, v in obj.items()}
        return name, entry.validate(name, kwargs)
    positional: list = []
    for item in rest.split(",") if rest else []:
        item = item.strip()
        if not item:
            raise InvalidParameterError(f"--arch {spec!r}: empty item (two commas in a row or a trailing comma)")
        if "=" in item:
            k, _, v = item.partition("=")
            k = _resolve_alias(entry, k.strip())
            if not k or k in kwargs:
                raise InvalidParameterError(f"--arch {spec!r}: empty or repeated key in {item!r}")
            kwargs[k] = _value(v)
        else:
            if kwargs:
                raise InvalidParameterError(f"--arch {spec!r}: positional value {item!r} after key=value items")
            positional.append(_value(item))
    if positional:
        if not entry.positional:
            raise InvalidParameterError(f"--arch {spec!r}: {name} takes only key=value items (allowed keys: "
                                        f"{', '.join(entry.params)})")
        names = list(entry.positional)
        star = [i for i, n in enumerate(names) if n.endswith("*")]
        if star:  # mlp: first, middle*, last
            i = star[0]
            n_fixed = len(names) - 1
            if len(positional) < n_fixed:
                raise InvalidParameterError(f"--arch {spec!r}: {name} needs at least {n_fixed} values "
                                            f"({', '.join(n.rstrip('*') for n in names)})")
            head, tail = positional[:i], positional[len(positional) - (len(names) - i - 1):]
            middle = positional[i: len(positional) - len(tail)]
            values = dict(zip(names[:i], head))
            values[names[i].rstrip("*")] = middle
            values.update(zip(names[i + 1:], tail))
        else:
            if len(positional) > len(names):
                raise InvalidParameterError(f"--arch {spec!r}: {name} takes at most {len(names)} positional "
                                            f"values ({', '.join(names)})")
            values = dict(zip(names, positional))
        for k, v in values.items():
            if k in kwargs:
                raise InvalidParameterError(f"--arch {spec!r}: {k} given twice")
            kwargs[k] = v
    return name, entry.validate(name, kwargs)


def from_arch(spec: str, *, seed: int | None = 0, max_params: int = MAX_PARAMS) -> nn.Module:
    """Build a model from the ``--arch`` grammar (:func:`parse_arch`); ``seed`` unless the string gives one."""
    name, kwargs = parse_arch(spec)
    kwargs.setdefault("seed", seed)
    return build(name, max_params=max_params, **kwargs)
