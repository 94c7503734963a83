"""Synthetic teacher tasks: a fixed random ReLU teacher (:func:`teacher_task`) or convolutional teacher on
CIFAR-shaped images (:func:`conv_teacher_task`) labels fresh i.i.d. samples forever, so the true risk of any model
can be estimated to any precision (:meth:`TeacherTask.true_risk`).  The ground truth of every bound-verification
test.  Re-exported by :mod:`prunebound.data`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from prunebound.dataset import Dataset
from prunebound.errors import (
    InvalidParameterError,
    check_positive_int,
    check_probability,
)

__all__ = ["TeacherTask", "teacher_task", "ConvTeacherTask", "conv_teacher_task"]


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
