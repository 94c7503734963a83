"""Model zoo: real architectures written as ordinary classes with their own ``forward`` (torchvision is unavailable).

Every model takes ``num_classes``, ``in_channels``, a ``width`` knob (tiny versions for tests) and a ``seed``;
construction under a seed is reproducible and leaves the global RNG untouched.  Parameter counts (all trainable
parameters, BatchNorm affine included; 10 classes, default width, checked in ``tests/core/test_zoo.py``):

===================  ==========  ======================================================================
name                 parameters  architecture
===================  ==========  ======================================================================
``resnet20``            269,722  He et al. 2016 (CVPR), Sec. 4.2: 3x3 conv 16 - 3 stages x 3 basic blocks
                                 (16/32/64 filters) - global average pool - fc; option-A shortcuts
``resnet20`` (B)        272,474  same with option-B (1x1 conv + BN projection) shortcuts where the shape changes
``resnet56``            853,018  as ResNet-20 with 9 blocks per stage (option A; 855,770 with option B)
``vgg11``             9,231,114  Simonyan & Zisserman 2015 config A with BatchNorm, CIFAR variant (one fc 512-10)
``vgg16``            14,728,266  config D with BatchNorm, CIFAR variant
``mobilenet``         3,217,226  Howard et al. 2017 MobileNet-v1, CIFAR variant (stride-1 stem): depthwise 3x3
                                 (``groups = channels``) + pointwise 1x1 blocks
``densenet``             75,562  DenseNet-style (Huang et al. 2017): 3 dense blocks of 4 layers, growth 12,
                                 concatenation, 1x1 compression transitions (0.5)
``lenet5``               61,706  :func:`prunebound.network.lenet5` (re-exported, an ``nn.Sequential``)
``resnet20_1d``          91,162  ResNet-20 with 1-D convolutions for MNIST-1D (40 inputs), option A
``densenet_1d``          30,058  the DenseNet-style net with 1-D convolutions for MNIST-1D
===================  ==========  ======================================================================

Deviations, and why: ResNets default to **option A** (parameter-free shortcuts: stride-2 subsampling and zero
padding of the new channels), as in the paper's CIFAR experiments (0.27 M / 0.85 M parameters);
``shortcut="B"`` gives 1x1 projections, whose BatchNorm directly follows a convolution (foldable).  The
DenseNet-style net orders each layer Conv-BN-ReLU (post-activation) instead of the paper's BN-ReLU-Conv so that
every BatchNorm directly follows the convolution it can be folded into.

:data:`REGISTRY` maps names to :class:`ZooEntry` (factory and validated keyword arguments); :func:`build` builds
one by name, :func:`parse_arch` / :func:`from_arch` read the CLI ``--arch`` grammar
(``resnet20:classes=10,width=16``, ``mlp:40,128,10``).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.errors import InvalidParameterError, check_positive_int
from prunebound.network import conv1d_small, lenet5, lenet300_100, mlp

__all__ = [
    "ZooModel",
    "CifarResNet",
    "VGG",
    "MobileNet",
    "DenseNet",
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


class _Seeded:
    """``torch.manual_seed(seed)`` inside a forked RNG (global state restored); no-op for ``seed=None``."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._fork = None

    def __enter__(self):
        if self.seed is not None:
            self._fork = torch.random.fork_rng(devices=[])
            self._fork.__enter__()
            torch.manual_seed(int(self.seed))
        return self

    def __exit__(self, *a):
        if self._fork is not None:
            return self._fork.__exit__(*a)
        return False


class ZooModel(nn.Module):
    """Base of the zoo's classes: remembers its registry name, its constructor keywords and its input shape,
    so :func:`prunebound.io.save_model` can record a zoo reference instead of pickling anything."""

    zoo_name: str = ""

    def _record(self, name: str, kwargs: Mapping, input_shape: tuple[int, ...]) -> None:
        self.zoo_name = name
        self.zoo_kwargs = {k: v for k, v in kwargs.items() if k != "seed"}
        self.input_shape = tuple(int(s) for s in input_shape)


def _conv(dims: int):
    return nn.Conv1d if dims == 1 else nn.Conv2d


def _bn(dims: int):
    return nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d


def _check_dims(dims: int) -> int:
    if dims not in (1, 2):
        raise InvalidParameterError(f"dims must be 1 (MNIST-1D style) or 2 (images); got {dims!r}")
    return dims


# ------------------------------------------------------------------------------------------- ResNet (CIFAR)
class _PadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016, Sec. 3.3): subsample by ``stride`` and zero-pad the new channels."""

    def __init__(self, extra: int, stride: int, dims: int) -> None:
        super().__init__()
        self.lo, self.hi, self.stride, self.dims = extra // 2, extra - extra // 2, stride, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 1:
            x = x[:, :, :: self.stride]
            return F.pad(x, (0, 0, self.lo, self.hi))
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.lo, self.hi))


class BasicBlock(nn.Module):
    """conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, *, dims: int = 2, shortcut: str = "A") -> None:
        super().__init__()
        Conv, BN = _conv(dims), _bn(dims)
        self.conv1 = Conv(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BN(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = Conv(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = BN(cout)
        self.relu2 = nn.ReLU()
        if stride != 1 or cin != cout:
            if shortcut == "B":
                self.shortcut = nn.Sequential(Conv(cin, cout, 1, stride=stride, bias=False), BN(cout))
            else:
                self.shortcut = _PadShortcut(cout - cin, stride, dims)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(ZooModel):
    """CIFAR ResNet of depth ``6n + 2`` (He et al. 2016, Sec. 4.2): ResNet-20 (n=3), ResNet-56 (n=9).

    Stages of ``width``, ``2 width``, ``4 width`` filters (16/32/64 in the paper) on 32x32, 16x16, 8x8 maps;
    global average pooling; a ``num_classes``-way fc.  ``shortcut="A"`` (paper's CIFAR choice, parameter-free)
    or ``"B"`` (1x1 conv + BN projection where the shape changes).  ``dims=1`` gives the same net with 1-D
    convolutions on inputs of shape ``(N, in_channels * length)`` (MNIST-1D: ``length=40``).
    """

    def __init__(self, depth: int = 20, *, num_classes: int = 10, in_channels: int = 3, width: int = 16,
                 shortcut: str = "A", dims: int = 2, length: int = 40, seed: int | None = None,
                 _name: str = "resnet") -> None:
        super().__init__()
        depth = check_positive_int("depth", depth, minimum=8)
        if (depth - 2) % 6:
            raise InvalidParameterError(f"depth must be 6n + 2 (20, 32, 44, 56, 110); got {depth}")
        if shortcut not in ("A", "B"):
            raise InvalidParameterError(f"shortcut must be 'A' (zero padding) or 'B' (projection); got {shortcut!r}")
        num_classes = check_positive_int("num_classes", num_classes)
        in_channels = check_positive_int("in_channels", in_channels)
        width = check_positive_int("width", width)
        dims = _check_dims(dims)
        n = (depth - 2) // 6
        Conv, BN = _conv(dims), _bn(dims)
        with _Seeded(seed):
            self.unflatten = nn.Unflatten(1, (in_channels, length)) if dims == 1 else nn.Identity()
            self.conv1 = Conv(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.bn1 = BN(width)
            self.relu = nn.ReLU()
            stages, cin = [], width
            for s, cout in enumerate((width, 2 * width, 4 * width)):
                blocks = []
                for b in range(n):
                    stride = 2 if (s > 0 and b == 0) else 1
                    blocks.append(BasicBlock(cin, cout, stride, dims=dims, shortcut=shortcut))
                    cin = cout
                stages.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(4 * width, num_classes)
            for m in self.modules():  # He et al. 2015 init, as in the paper
                if isinstance(m, (nn.Conv1d, nn.Conv2d)) and not m.weight.is_meta:  # meta: shapes only
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        kw = {"num_classes": num_classes, "in_channels": in_channels, "width": width, "shortcut": shortcut}
        if dims == 1:
            kw["length"] = length
        shape = (in_channels * length,) if dims == 1 else (in_channels, 32, 32)
        self._record(_name, kw, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.unflatten(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


def resnet20(*, num_classes: int = 10, in_channels: int = 3, width: int = 16, shortcut: str = "A",
             seed: int | None = None) -> CifarResNet:
    """ResNet-20 for 32x32 images (269,722 parameters with option A, 272,474 with option B)."""
    return CifarResNet(20, num_classes=num_classes, in_channels=in_channels, width=width, shortcut=shortcut,
                       seed=seed, _name="resnet20")


def resnet56(*, num_classes: int = 10, in_channels: int = 3, width: int = 16, shortcut: str = "A",
             seed: int | None = None) -> CifarResNet:
    """ResNet-56 for 32x32 images (853,018 parameters with option A, 855,770 with option B)."""
    return CifarResNet(56, num_classes=num_classes, in_channels=in_channels, width=width, shortcut=shortcut,
                       seed=seed, _name="resnet56")


def resnet20_1d(*, num_classes: int = 10, in_channels: int = 1, length: int = 40, width: int = 16,
                shortcut: str = "A", seed: int | None = None) -> CifarResNet:
    """ResNet-20 with 1-D convolutions for MNIST-1D (inputs ``(N, in_channels * length)``)."""
    return CifarResNet(20, num_classes=num_classes, in_channels=in_channels, width=width, shortcut=shortcut,
                       dims=1, length=length, seed=seed, _name="resnet20_1d")


# ------------------------------------------------------------------------------------------- VGG (CIFAR)
_VGG_CFG = {
    11: (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"),
    16: (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"),
}


class VGG(ZooModel):
    """VGG with BatchNorm (Simonyan & Zisserman 2015, configs A = VGG-11 and D = VGG-16), CIFAR variant.

    3x3 conv - BN - ReLU blocks with 2x2 max-pooling (channel multiples 1/2/4/8 of ``width``, 64 in the paper),
    a 32x32 input reduced to 1x1, and a single ``8 width -> num_classes`` fc (the usual CIFAR classifier in
    place of the ImageNet 4096-4096 head).
    """

    def __init__(self, depth: int = 16, *, num_classes: int = 10, in_channels: int = 3, width: int = 64,
                 seed: int | None = None) -> None:
        super().__init__()
        if depth not in _VGG_CFG:
            raise InvalidParameterError(f"VGG depth must be one of {sorted(_VGG_CFG)}; got {depth!r}")
        num_classes = check_positive_int("num_classes", num_classes)
        in_channels = check_positive_int("in_channels", in_channels)
        width = check_positive_int("width", width)
        with _Seeded(seed):
            layers: list[nn.Module] = []
            c = in_channels
            for v in _VGG_CFG[depth]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2))
                else:
                    layers += [nn.Conv2d(c, v * width, 3, padding=1), nn.BatchNorm2d(v * width), nn.ReLU()]
                    c = v * width
            self.features = nn.Sequential(*layers)
            self.flatten = nn.Flatten()
            self.classifier = nn.Linear(c, num_classes)
        self._record(f"vgg{depth}", {"num_classes": num_classes, "in_channels": in_channels, "width": width},
                     (in_channels, 32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def vgg11(*, num_classes: int = 10, in_channels: int = 3, width: int = 64, seed: int | None = None) -> VGG:
    """VGG-11 with BatchNorm, CIFAR variant (9,231,114 parameters)."""
    return VGG(11, num_classes=num_classes, in_channels=in_channels, width=width, seed=seed)


def vgg16(*, num_classes: int = 10, in_channels: int = 3, width: int = 64, seed: int | None = None) -> VGG:
    """VGG-16 with BatchNorm, CIFAR variant (14,728,266 parameters)."""
    return VGG(16, num_classes=num_classes, in_channels=in_channels, width=width, seed=seed)


# ------------------------------------------------------------------------------------------- MobileNet
_MOBILENET_CFG = (2, (4, 2), 4, (8, 2), 8, (16, 2), 16, 16, 16, 16, 16, (32, 2), 32)  # multiples of width


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv (``groups = channels``) - BN - ReLU - pointwise 1x1 conv - BN - ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.bn2(self.pw(self.relu1(self.bn1(self.dw(x))))))


class MobileNet(ZooModel):
    """MobileNet-v1 (Howard et al. 2017), CIFAR variant: a stride-1 3x3 stem of ``width`` channels (32 in the
    paper), 13 depthwise separable blocks (channels 64 ... 1024 for ``width=32``, stride 2 at four of them),
    global average pooling, fc.  ``width`` acts as the paper's width multiplier (``alpha = width / 32``).
    """

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3, width: int = 32,
                 seed: int | None = None) -> None:
        super().__init__()
        num_classes = check_positive_int("num_classes", num_classes)
        in_channels = check_positive_int("in_channels", in_channels)
        width = check_positive_int("width", width)
        with _Seeded(seed):
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU()
            blocks, c = [], width
            for v in _MOBILENET_CFG:
                mult, stride = (v, 1) if isinstance(v, int) else v
                blocks.append(DepthwiseSeparable(c, mult * width, stride))
                c = mult * width
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(c, num_classes)
        self._record("mobilenet", {"num_classes": num_classes, "in_channels": in_channels, "width": width},
                     (in_channels, 32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.fc(self.flatten(self.pool(self.blocks(x))))


# ------------------------------------------------------------------------------------------- DenseNet-style
class DenseLayer(nn.Module):
    """``cat([x, ReLU(BN(conv3x3(x)))])``: adds ``growth`` channels (Conv-BN-ReLU order, see module docstring)."""

    def __init__(self, cin: int, growth: int, dims: int) -> None:
        super().__init__()
        self.conv = _conv(dims)(cin, growth, 3, padding=1, bias=False)
        self.bn = _bn(dims)(growth)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.relu(self.bn(self.conv(x)))], dim=1)


class Transition(nn.Module):
    """1x1 conv (compression) - BN - ReLU - 2x average pooling."""

    def __init__(self, cin: int, cout: int, dims: int) -> None:
        super().__init__()
        self.conv = _conv(dims)(cin, cout, 1, bias=False)
        self.bn = _bn(dims)(cout)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool1d(2) if dims == 1 else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class DenseNet(ZooModel):
    """A small DenseNet-style net (Huang et al. 2017): stem conv of ``2 width`` channels, 3 dense blocks of
    ``layers`` layers each adding ``width`` (the growth rate k) channels by concatenation, 1x1 transitions
    halving the channels (compression 0.5) with 2x average pooling, global average pooling, fc.

    ``dims=1`` gives the 1-D version for MNIST-1D (inputs ``(N, in_channels * length)``).
    """

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3, width: int = 12, layers: int = 4,
                 dims: int = 2, length: int = 40, seed: int | None = None) -> None:
        super().__init__()
        num_classes = check_positive_int("num_classes", num_classes)
        in_channels = check_positive_int("in_channels", in_channels)
        width = check_positive_int("width", width)
        layers = check_positive_int("layers", layers)
        dims = _check_dims(dims)
        Conv, BN = _conv(dims), _bn(dims)
        with _Seeded(seed):
            self.unflatten = nn.Unflatten(1, (in_channels, length)) if dims == 1 else nn.Identity()
            c = 2 * width
            self.conv1 = Conv(in_channels, c, 3, padding=1, bias=False)
            self.bn1 = BN(c)
            self.relu = nn.ReLU()
            stages: list[nn.Module] = []
            for b in range(3):
                for _ in range(layers):
                    stages.append(DenseLayer(c, width, dims))
                    c += width
                if b < 2:
                    stages.append(Transition(c, c // 2, dims))
                    c //= 2
            self.features = nn.Sequential(*stages)
            self.pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(c, num_classes)
        kw = {"num_classes": num_classes, "in_channels": in_channels, "width": width, "layers": layers}
        if dims == 1:
            kw["length"] = length
        self._record("densenet_1d" if dims == 1 else "densenet", kw,
                     (in_channels * length,) if dims == 1 else (in_channels, 32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.unflatten(x))))
        return self.fc(self.flatten(self.pool(self.features(x))))


def densenet(*, num_classes: int = 10, in_channels: int = 3, width: int = 12, layers: int = 4,
             seed: int | None = None) -> DenseNet:
    """The DenseNet-style net for 32x32 images (75,562 parameters at the defaults)."""
    return DenseNet(num_classes=num_classes, in_channels=in_channels, width=width, layers=layers, seed=seed)


def densenet_1d(*, num_classes: int = 10, in_channels: int = 1, length: int = 40, width: int = 12,
                layers: int = 4, seed: int | None = None) -> DenseNet:
    """The DenseNet-style net with 1-D convolutions for MNIST-1D."""
    return DenseNet(num_classes=num_classes, in_channels=in_channels, width=width, layers=layers, dims=1,
                    length=length, seed=seed)


def mobilenet(*, num_classes: int = 10, in_channels: int = 3, width: int = 32,
              seed: int | None = None) -> MobileNet:
    """MobileNet-v1, CIFAR variant (3,217,226 parameters at ``width=32``)."""
    return MobileNet(num_classes=num_classes, in_channels=in_channels, width=width, seed=seed)


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
