"""Class-based reference models and the method × model conformance matrix.

The models cover what users write: a class with its own ``forward`` and functional calls, a residual MLP, a CNN
with BatchNorm and dropout, a DenseNet-style concatenation, a depthwise convolution, a model pre-pruned with
``torch.nn.utils.prune``, weight tying (one module called twice), a float64 model, and an ``nn.Sequential``
subclass with a custom ``forward``. :func:`method_matrix` runs every method (registered certifiers,
``pruning.REGISTRY``, ``coresets.prune`` methods, quantization, Arora 2018, strong-LTH construction) on each
model and records whether it works or refuses with a :class:`~prunebound.errors.PruneboundError` (and why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn

__all__ = ["ReferenceModel", "reference_models", "zoo_models", "Cell", "method_matrix", "method_names",
           "format_matrix", "format_zoo_table", "short_reason", "SLOW_METHODS"]


class FunctionalMLP(nn.Module):
    """A class with its own forward: ``F.relu`` between ``nn.Linear`` layers."""

    def __init__(self, d_in: int = 8, width: int = 16, d_out: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, width)
        self.fc2 = nn.Linear(width, width)
        self.out = nn.Linear(width, d_out)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.out(x)


class ResidualMLP(nn.Module):
    """``h = relu(fc_in x); h = relu(h + fc2(relu(fc1 h)))`` twice; logits ``fc_out h``."""

    def __init__(self, d_in: int = 8, width: int = 16, d_out: int = 3, blocks: int = 2) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"fc1": nn.Linear(width, width), "fc2": nn.Linear(width, width)}) for _ in range(blocks))
        self.fc_out = nn.Linear(width, d_out)

    def forward(self, x):
        h = F.relu(self.fc_in(x))
        for b in self.blocks:
            h = F.relu(h + b["fc2"](F.relu(b["fc1"](h))))
        return self.fc_out(h)


class ConvBNNet(nn.Module):
    """A CNN class: conv-BN-ReLU-pool twice, dropout, ``x.view(x.size(0), -1)``, two Linear layers."""

    def __init__(self, in_ch: int = 1, n_classes: int = 3, size: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.2)
        self.fc1 = nn.Linear(6 * (size // 4) ** 2, 12)
        self.fc2 = nn.Linear(12, n_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = self.drop(x.view(x.size(0), -1))
        return self.fc2(F.relu(self.fc1(x)))


class ResBlockCNN(nn.Module):
    """A ResNet-style basic block (conv-BN-ReLU-conv-BN + identity, ReLU), global average pooling, a head."""

    def __init__(self, in_ch: int = 1, ch: int = 4, n_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_ch, ch, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(ch)
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(ch)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, n_classes)

    def forward(self, x):
        h = F.relu(self.bn0(self.stem(x)))
        h = F.relu(h + self.b2(self.c2(F.relu(self.b1(self.c1(h))))))
        return self.fc(torch.flatten(self.gap(h), 1))


class DenseCatNet(nn.Module):
    """DenseNet-style: each layer sees the concatenation of all previous ReLU features."""

    def __init__(self, d_in: int = 8, growth: int = 6, d_out: int = 3) -> None:
        super().__init__()
        self.f0 = nn.Linear(d_in, growth)
        self.f1 = nn.Linear(growth, growth)
        self.f2 = nn.Linear(2 * growth, growth)
        self.head = nn.Linear(3 * growth, d_out)

    def forward(self, x):
        a = F.relu(self.f0(x))
        b = F.relu(self.f1(a))
        c = F.relu(self.f2(torch.cat([a, b], dim=1)))
        return self.head(torch.cat([a, b, c], dim=1))


class DepthwiseNet(nn.Module):
    """Depthwise-separable conv (MobileNet style) on 1-D signals, with GELU and LayerNorm in the head."""

    def __init__(self, ch: int = 4, length: int = 16, n_classes: int = 3) -> None:
        super().__init__()
        self.unflat = nn.Unflatten(1, (1, length))
        self.stem = nn.Conv1d(1, ch, 3, padding=1)
        self.dw = nn.Conv1d(ch, ch, 3, padding=1, groups=ch)
        self.pw = nn.Conv1d(ch, ch, 1)
        self.norm = nn.LayerNorm(ch * length)
        self.head = nn.Linear(ch * length, n_classes)

    def forward(self, x):
        h = F.relu(self.stem(self.unflat(x)))
        h = F.relu(self.pw(F.relu(self.dw(h))))
        return self.head(F.gelu(self.norm(h.flatten(1))))


class TiedMLP(nn.Module):
    """Weight tying: the hidden layer ``mid`` is applied twice."""

    def __init__(self, d_in: int = 8, width: int = 16, d_out: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.mid = nn.Linear(width, width)
        self.out = nn.Linear(width, d_out)

    def forward(self, x):
        h = F.relu(self.inp(x))
        h = F.relu(self.mid(h))
        h = F.relu(self.mid(h))
        return self.out(h)


class SequentialResidual(nn.Sequential):
    """An ``nn.Sequential`` subclass whose ``forward`` adds a skip connection: must not be read as a chain."""

    def __init__(self, d: int = 8, d_out: int = 3) -> None:
        super().__init__(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d_out))

    def forward(self, x):
        h = self[1](self[0](x))
        h = self[3](self[2](h)) + h
        return self[4](h)


def _prepruned() -> nn.Module:
    m = FunctionalMLP()
    for name in ("fc1", "fc2"):
        tprune.l1_unstructured(getattr(m, name), "weight", amount=0.3)
    return m


def _bias_free_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 3, bias=False))


@dataclass(frozen=True)
class ReferenceModel:
    """A named model factory with its per-example input shape (inputs are ``randn``)."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    def make(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        m = self.build().to(self.dtype)
        with torch.no_grad():  # non-trivial BatchNorm statistics so folding is exercised
            for bn in m.modules():
                if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                    bn.running_mean.uniform_(-0.5, 0.5)
                    bn.running_var.uniform_(0.5, 2.0)
                    bn.weight.uniform_(0.5, 1.5)
                    bn.bias.uniform_(-0.2, 0.2)
        return m.eval()

    def inputs(self, n: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn((n, *self.input_shape), generator=g).to(self.dtype)


def reference_models() -> list[ReferenceModel]:
    """The class-based models every method is run on (see module docstring)."""
    return [
        ReferenceModel("sequential_mlp", lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16),
                                                               nn.ReLU(), nn.Linear(16, 3)), (8,)),
        ReferenceModel("functional_mlp", FunctionalMLP, (8,)),
        ReferenceModel("residual_mlp", ResidualMLP, (8,)),
        ReferenceModel("cnn_bn_dropout", ConvBNNet, (1, 8, 8)),
        ReferenceModel("resblock_cnn", ResBlockCNN, (1, 8, 8)),
        ReferenceModel("dense_cat", DenseCatNet, (8,)),
        ReferenceModel("depthwise_ln_gelu", DepthwiseNet, (16,)),
        ReferenceModel("prepruned_mlp", _prepruned, (8,)),
        ReferenceModel("tied_mlp", TiedMLP, (8,)),
        ReferenceModel("float64_mlp", FunctionalMLP, (8,), torch.float64),
        ReferenceModel("sequential_subclass_residual", SequentialResidual, (8,)),
        ReferenceModel("bias_free_mlp", _bias_free_mlp, (8,)),
    ]


def _zoo(name: str, **kw) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from prunebound import zoo

        return zoo.build(name, seed=0, **kw)

    build.__name__ = f"zoo_{name}"
    return build


def zoo_models() -> list[ReferenceModel]:
    """The architectures of :mod:`prunebound.zoo` at small widths (3 classes), built with
    :func:`prunebound.zoo.build`: the same classes and graphs as the paper-size models, only narrower."""
    cifar = (3, 32, 32)
    return [
        ReferenceModel("mlp", _zoo("mlp", d_in=40, widths=[32, 32], d_out=3), (40,)),
        ReferenceModel("lenet300_100", _zoo("lenet300_100", d_in=40, d_out=3), (40,)),
        ReferenceModel("lenet5", _zoo("lenet5", in_channels=3, n_classes=3, input_size=32), cifar),
        ReferenceModel("conv1d_small", _zoo("conv1d_small", length=40, n_classes=3, channels=4), (40,)),
        ReferenceModel("resnet20", _zoo("resnet20", num_classes=3, width=2), cifar),
        ReferenceModel("resnet20_B", _zoo("resnet20", num_classes=3, width=2, shortcut="B"), cifar),
        ReferenceModel("resnet56", _zoo("resnet56", num_classes=3, width=2), cifar),
        ReferenceModel("vgg11_bn", _zoo("vgg11", num_classes=3, width=2), cifar),
        ReferenceModel("vgg16_bn", _zoo("vgg16", num_classes=3, width=2), cifar),
        ReferenceModel("mobilenet", _zoo("mobilenet", num_classes=3, width=2), cifar),
        ReferenceModel("densenet", _zoo("densenet", num_classes=3, width=2, layers=2), cifar),
        ReferenceModel("resnet20_1d", _zoo("resnet20_1d", num_classes=3, width=2), (40,)),
        ReferenceModel("densenet_1d", _zoo("densenet_1d", num_classes=3, width=2, layers=2), (40,)),
    ]


# ---------------------------------------------------------------------- the method × model matrix
@dataclass(frozen=True)
class Cell:
    """One method on one model: ``status`` is ``"works"``, ``"refuses"`` (a documented
    :class:`~prunebound.errors.PruneboundError`; ``reason`` is its message) or ``"BUG"`` (anything else)."""

    method: str
    model: str
    status: str
    reason: str = ""
    error: str = ""
    assumption: str = ""  #: short name of what the method needs (refusals only; see :func:`short_reason`)

    def to_dict(self) -> dict:
        return {"method": self.method, "model": self.model, "status": self.status, "reason": self.reason,
                "error": self.error, "assumption": self.assumption}


def _kw(fn: Callable, **candidates) -> dict:
    import inspect

    params = inspect.signature(fn).parameters
    return {k: v for k, v in candidates.items() if k in params}


def _methods() -> dict[str, Callable]:
    """name → ``f(module, data)``, with budgets small enough for a conformance run."""
    from prunebound import bounds  # noqa: F401 - registers the certifiers
    from prunebound.bounds.certify import certify
    from prunebound.bounds.subspace import subspace_compress
    from prunebound.coding import quantize_module
    from prunebound.coresets import METHODS as CORESETS
    from prunebound.coresets import prune as coreset_prune
    from prunebound.network import clone
    from prunebound.pruning import REGISTRY
    from prunebound.subnet_search.construct import construct_ticket

    out: dict[str, Callable] = {}
    cert_params = {
        "occam": {},
        "zhou2019": {"sigmas": (0.1,), "taus": (0.1,), "mc_samples": 20},
        "pac_bayes_gaussian": {"sigmas": (0.01,), "mc_samples": 20},
        "arora2018": {},
        "spectral_bartlett2017": {"gamma": 1.0},
        "spectral_neyshabur2018": {"gamma": 1.0},
        "coreset": {"compress": {"method": "corenet", "keep_ratio": 0.5}},
    }
    for name, params in cert_params.items():
        out[f"certify:{name}"] = lambda m, d, name=name, params=params: certify(m, d, method=name, delta=0.05,
                                                                                 seed=0, **params)

    def _subspace(m, d):
        res = subspace_compress(m, d, grid=((8, 4),), epochs=1, qat_epochs=1, batch_size=32, seed=0)
        model = res.model if hasattr(res, "model") else res[0]
        params = res.params if hasattr(res, "params") else res[1]
        return certify(model, d, method="subspace", delta=0.05, seed=0, **params)

    out["certify:subspace"] = _subspace
    for name, fn in REGISTRY.items():
        kw = _kw(fn, epochs=1, prune_epochs=1, rounds=1, iterations=1, n_samples=32, n_eval=64, n_hessian=32,
                 delta_t=2, finetune_epochs=0, compare_random=False, batch_size=32, centroid_epochs=1,
                 kmeans_iters=5)
        out[f"pruning:{name}"] = lambda m, d, fn=fn, kw=kw: fn(m, d, sparsity=0.5, seed=0, **kw)
    for name in CORESETS:
        out[f"coresets:{name}"] = lambda m, d, name=name: coreset_prune(m, d, method=name, keep_ratio=0.5, seed=0)
    out["quantize"] = lambda m, d: quantize_module(clone(m), bits=4, iters=5)
    out["strong_lth:pensia"] = lambda m, d: construct_ticket(m, method="pensia", eps=0.5, seed=0, max_attempts=1)
    out["save_load"] = _save_load
    return out


def _save_load(m: nn.Module, d) -> None:
    """``io.save_model`` then ``io.load_model``: rebuilt from the file's own reference (zoo or ``nn.Sequential``
    spec) where it has one, else loaded into a copy of the model; the outputs must be identical."""
    import copy
    import tempfile
    from pathlib import Path

    from prunebound.io import load_model, save_model
    from prunebound.zoo_models import ZooModel

    with tempfile.TemporaryDirectory(prefix="prunebound-conformance-") as tmp:
        path = Path(tmp) / "model.pt"
        save_model(m, path)
        rebuilt = isinstance(m, ZooModel) or type(m) is nn.Sequential
        back = load_model(path) if rebuilt else load_model(path, module=copy.deepcopy(m))
    x = d.x[:8]
    with torch.no_grad():
        same = torch.equal(m.eval()(x), back.eval()(x))
    if not same:  # a silently different function: what the matrix must catch (reported as "BUG")
        raise AssertionError("save_model -> load_model changed the model's outputs")


#: methods skipped by ``--fast`` (Zhou 2019's sigma search and subspace training take ~20 s per model)
SLOW_METHODS = ("certify:zhou2019", "certify:subspace")

#: full assumption texts (prefixes) of :mod:`prunebound.assumptions` and elsewhere -> the name the tables print
_ASSUMPTION_NAMES = (
    ("a fully-connected ReLU chain", "a fully-connected ReLU chain"),
    ("a single chain of weighted layers with exactly one ReLU", "a ReLU chain"),
    ("a single chain of weighted layers, each unit", "a chain (each unit read only by the next layer)"),
    ("a bias-free fully-connected ReLU network", "a bias-free fully-connected ReLU net"),
    ("non-negative layer inputs", "non-negative layer inputs"),
    ("every trainable parameter lives in a Linear/Conv layer", "every parameter in a Linear/Conv layer"),
)
#: messages of other refusals (UnsupportedLayerError / InvalidParameterError) -> the name the tables print
_MESSAGE_NAMES = (
    ("grouped convolution", "ungrouped convolutions (groups = 1)"),
    ("fully connected (nn.Linear) layers only", "Linear layers only"),
    ("as an architecture spec", "an nn.Sequential spec (the model is rebuilt)"),
    ("distinct coded weights", "a quantized model (quantize_module first)"),
    ("distinct weight values", "a quantized model (quantize_module first)"),
    ("needs a bias-free network", "a bias-free network"),
    ("Network folds into a copy", "BatchNorm folded first (fold_batchnorm)"),
    ("is not reachable", "a reachable keep ratio"),
)


def short_reason(exc: BaseException) -> str:
    """A few words naming what the method assumes, for a refusal ``exc`` (the full message is in
    :attr:`Cell.reason`): the :class:`~prunebound.errors.AssumptionError`'s ``assumption``, or a known
    refusal message, else the message's first 60 characters."""
    from prunebound.errors import AssumptionError

    if isinstance(exc, AssumptionError):
        for prefix, name in _ASSUMPTION_NAMES:
            if exc.assumption.startswith(prefix):
                return name
        return exc.assumption.split(" (")[0][:60]
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for needle, name in _MESSAGE_NAMES:
        if needle in msg:
            return name
    return msg[:60]


def method_names() -> list[str]:
    return list(_methods())


def method_matrix(models: list[ReferenceModel] | None = None, methods: list[str] | None = None, *,
                  n: int = 64) -> list[Cell]:
    """Run every method on every reference model; each cell works, refuses clearly, or is a ``"BUG"``.

    Data: ``n`` seeded Gaussian inputs labelled by the model's own prediction (3 classes).
    """
    import warnings

    from prunebound.data import Dataset
    from prunebound.errors import PruneboundError

    table = _methods()
    models = reference_models() if models is None else models
    names = list(table) if methods is None else methods
    cells: list[Cell] = []
    for rm in models:
        for meth in names:
            m = rm.make()
            x = rm.inputs(n)
            with torch.no_grad():
                y = m(x).argmax(1)
            data = Dataset(x, y, name=rm.name, n_classes=3)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table[meth](m, data)
                cells.append(Cell(meth, rm.name, "works"))
            except PruneboundError as e:
                cells.append(Cell(meth, rm.name, "refuses", str(e).splitlines()[0], type(e).__name__,
                                  short_reason(e)))
            except Exception as e:  # noqa: BLE001 - a raw error is exactly what the matrix must catch
                cells.append(Cell(meth, rm.name, "BUG", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                                  type(e).__name__))
    return cells


def format_matrix(cells: list[Cell], *, width: int = 3) -> str:
    """A Markdown table (methods × models: ``ok`` / ``no`` / ``BUG``) plus one line per distinct refusal."""
    models = list(dict.fromkeys(c.model for c in cells))
    methods = list(dict.fromkeys(c.method for c in cells))
    by = {(c.method, c.model): c for c in cells}
    mark = {"works": "ok", "refuses": "no", "BUG": "BUG"}
    lines = ["| method | " + " | ".join(f"M{i + 1}" for i in range(len(models))) + " |",
             "|---|" + "---|" * len(models)]
    for meth in methods:
        lines.append(f"| {meth} | " + " | ".join(mark[by[(meth, mo)].status] for mo in models) + " |")
    lines.append("")
    lines += [f"M{i + 1} = {mo}" for i, mo in enumerate(models)]
    lines.append("")
    lines.append("Refusals (method, model: reason):")
    for c in cells:
        if c.status != "works":
            lines.append(f"- {c.method}, {c.model}: [{c.error}] {c.reason[:220]}")
    return "\n".join(lines)


def format_zoo_table(cells: list[Cell]) -> str:
    """A Markdown table, methods × models with the models' names as columns: ``works``, ``refuses: <what the
    method assumes>`` (:func:`short_reason`) or ``BUG: <error>``."""
    models = list(dict.fromkeys(c.model for c in cells))
    methods = list(dict.fromkeys(c.method for c in cells))
    by = {(c.method, c.model): c for c in cells}

    def text(c: Cell) -> str:
        if c.status == "works":
            return "works"
        if c.status == "refuses":
            return f"refuses: {c.assumption}"
        return f"BUG: {c.error}"

    lines = ["| method | " + " | ".join(f"`{m}`" for m in models) + " |", "|---|" + "---|" * len(models)]
    for meth in methods:
        lines.append(f"| {meth} | " + " | ".join(text(by[(meth, mo)]) for mo in models) + " |")
    return "\n".join(lines)
