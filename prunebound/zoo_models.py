"""Model zoo architectures: real networks as ordinary classes with their own ``forward`` (no torchvision).

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
``lenet5``               61,706  :func:`lenet5` (an ``nn.Sequential``; also ``mlp``, ``lenet300_100``,
                                 ``conv1d_small``; re-exported by :mod:`prunebound.network`)
``resnet20_1d``          91,162  ResNet-20 with 1-D convolutions for MNIST-1D (40 inputs), option A
``densenet_1d``          30,058  the DenseNet-style net with 1-D convolutions for MNIST-1D
===================  ==========  ======================================================================

Deviations, and why: ResNets default to **option A** (parameter-free shortcuts: stride-2 subsampling and zero
padding of the new channels), as in the paper's CIFAR experiments (0.27 M / 0.85 M parameters);
``shortcut="B"`` gives 1x1 projections, whose BatchNorm directly follows a convolution (foldable).  The
DenseNet-style net orders each layer Conv-BN-ReLU (post-activation) instead of the paper's BN-ReLU-Conv so that
every BatchNorm directly follows the convolution it can be folded into.

The registry, :func:`prunebound.zoo.build` and the ``--arch`` grammar live in :mod:`prunebound.zoo`, which
re-exports everything here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.errors import InvalidParameterError, check_positive_int

__all__ = [
    "ZooModel", "BasicBlock", "CifarResNet", "VGG", "DepthwiseSeparable", "MobileNet", "DenseLayer", "Transition",
    "DenseNet", "mlp", "lenet300_100", "lenet5", "conv1d_small",
    "resnet20", "resnet56", "resnet20_1d", "vgg11", "vgg16", "mobilenet", "densenet", "densenet_1d",
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


# ------------------------------------------------------------------------------------------- small nn.Sequential nets
def mlp(d_in: int, widths: Sequence[int], d_out: int, *, bias: bool = True, seed: int | None = None
        ) -> nn.Sequential:
    """``Linear(d_in, w1) - ReLU - ... - Linear(w_L, d_out)``.

    Parameter count: ``sum_l (n_{l-1} + 1) n_l`` over ``n = (d_in, *widths, d_out)`` (without ``+1`` if
    ``bias=False``). PyTorch's default (Kaiming-uniform) initialisation, reproducible with ``seed``.
    """
    d_in = check_positive_int("d_in", d_in)
    d_out = check_positive_int("d_out", d_out)
    sizes = [d_in, *[check_positive_int("widths[i]", w) for w in widths], d_out]
    with _Seeded(seed):
        mods: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            mods.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)


def lenet300_100(d_in: int = 784, d_out: int = 10, *, seed: int | None = None) -> nn.Sequential:
    """LeNet-300-100 (LeCun et al. 1998): ``d_in-300-100-d_out`` ReLU MLP.

    266,610 parameters for ``d_in=784, d_out=10``; 43,810 for MNIST-1D (``d_in=40``).
    """
    return mlp(d_in, [300, 100], d_out, seed=seed)


def lenet5(in_channels: int = 1, n_classes: int = 10, *, input_size: int = 28, seed: int | None = None
           ) -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998), ReLU/max-pool variant for ``input_size`` x ``input_size`` images.

    conv(6@5x5, pad 2) - pool - conv(16@5x5) - pool - fc120 - fc84 - fc``n_classes``.
    61,706 parameters for 1x28x28 inputs and 10 classes.
    """
    s = input_size // 2
    s = (s - 4) // 2
    with _Seeded(seed):
        return nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * s * s, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, n_classes),
        )


def conv1d_small(length: int = 40, n_classes: int = 10, *, channels: int = 32, seed: int | None = None
                 ) -> nn.Sequential:
    """A small 1-D CNN for MNIST-1D (inputs ``(N, length)``).

    Unflatten - conv(c@5, pad 2) - ReLU - conv(c@3, stride 2, pad 1) - ReLU - conv(c@3, stride 2, pad 1) -
    ReLU - Flatten - Linear(c * ceil(length/4), n_classes). With ``channels=32, length=40``: 192 + 3,104 +
    3,104 + 3,210 = 9,610 parameters.
    """
    l2 = (length + 1) // 2
    l4 = (l2 + 1) // 2
    with _Seeded(seed):
        return nn.Sequential(
            nn.Unflatten(1, (1, length)),
            nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * l4, n_classes),
        )


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
