"""Training and evaluation helpers: deterministic ``fit`` and ``evaluate`` with the γ-margin loss.

The γ-margin loss of a classifier f on (x, y) is ``1[ f(x)_y <= γ + max_{j != y} f(x)_j ]`` (Bartlett et al.
2017; Neyshabur et al. 2018; Arora et al. 2018); at γ = 0 it upper-bounds the 0-1 error (ties count as errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_positive_int

__all__ = ["FitResult", "EvalResult", "fit", "evaluate", "margins", "check_compatible"]


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did: final training loss/error, per-epoch losses, and the hyperparameters."""

    epochs: int
    final_loss: float
    train_error: float
    losses: tuple[float, ...]
    lr: float
    batch_size: int
    optimizer: str
    seed: int | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EvalResult:
    """Error rate, mean cross-entropy, γ-margin loss (at ``gamma``) and ``n``."""

    error: float
    cross_entropy: float
    margin_loss: float
    gamma: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_compatible(module: nn.Module, data: Dataset) -> torch.Tensor:
    """Run the model on one example; raise :class:`DataError` naming both shapes if they do not fit.

    The probe runs in eval mode (training mode restored afterwards): BatchNorm in training mode cannot
    normalise a batch of one, and the check must not update running statistics either.
    """
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(data.x[:1])
    except (RuntimeError, ValueError, IndexError) as e:
        raise DataError(
            f"model does not accept inputs of shape {tuple(data.x.shape[1:])} from dataset {data.name!r}: {e}"
        ) from e
    finally:
        module.train(was)
    if out.ndim != 2:
        raise DataError(f"model output must be (batch, classes) logits, got shape {tuple(out.shape)}")
    if data.n_classes is not None and out.shape[1] < data.n_classes:
        raise DataError(f"model outputs {out.shape[1]} logits but dataset {data.name!r} has {data.n_classes} classes")
    return out


def margins(module: nn.Module, data: Dataset, *, batch_size: int = 8192) -> torch.Tensor:
    """Per-example margin ``f(x)_y - max_{j != y} f(x)_j`` (float64)."""
    check_compatible(module, data)
    was = module.training
    module.eval()
    out = []
    with torch.no_grad():
        for xb, yb in data.batches(batch_size):
            z = module(xb).double()
            zy = z.gather(1, yb[:, None]).squeeze(1)
            other = z.scatter(1, yb[:, None], float("-inf")).amax(1)
            out.append(zy - other)
    module.train(was)
    return torch.cat(out)


def evaluate(module: nn.Module, data: Dataset, *, gamma: float = 0.0, batch_size: int = 8192) -> EvalResult:
    """0-1 error (argmax, ties to the lowest index as ``argmax`` does), cross-entropy and γ-margin loss."""
    if gamma < 0:
        raise InvalidParameterError(f"gamma must be >= 0, got {gamma}")
    check_compatible(module, data)
    was = module.training
    module.eval()
    wrong, ce = 0, 0.0
    with torch.no_grad():
        for xb, yb in data.batches(batch_size):
            z = module(xb)
            wrong += int((z.argmax(1) != yb).sum())
            ce += float(F.cross_entropy(z.double(), yb, reduction="sum"))
    module.train(was)
    m = margins(module, data, batch_size=batch_size)
    n = len(data)
    return EvalResult(wrong / n, ce / n, float((m <= gamma).double().mean()), float(gamma), n)


def fit(
    module: nn.Module,
    data: Dataset,
    *,
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 64,
    seed: int | None = 0,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    quiet: bool = True,
) -> FitResult:
    """Train ``module`` in place with cross-entropy (+ optional ``regularizer(module)``), deterministic for ``seed``.

    Works on pruned models: gradients flow to ``weight_orig`` and masked weights stay zero.  With BatchNorm
    layers a final mini-batch of a single example is merged into the previous one (BatchNorm cannot
    normalise a batch of one in training mode).
    ``after_step(module)`` is called after each optimiser step (e.g. to re-apply a projection).
    """
    check_positive_int("epochs", epochs, minimum=0)
    check_positive("lr", lr)
    check_positive_int("batch_size", batch_size)
    check_compatible(module, data)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    params = [p for p in module.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise InvalidParameterError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    n = len(data)
    losses: list[float] = []
    from tqdm.auto import tqdm

    starts = list(range(0, n, batch_size))
    has_bn = any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in module.modules())
    if has_bn and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()  # BatchNorm cannot train on a batch of one: the last example joins the previous batch
    module.train()
    bar = tqdm(range(epochs), desc="fit", disable=quiet, leave=False)
    for _ in bar:
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for i in starts:
            idx = perm[i : i + batch_size] if i != starts[-1] else perm[i:]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(module(data.x[idx]), data.y[idx])
            if regularizer is not None:
                loss = loss + regularizer(module)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(module)
            tot += float(loss.detach()) * len(idx)
        losses.append(tot / n)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if not torch.isfinite(torch.tensor(losses[-1])):
            raise InvalidParameterError(f"training diverged (loss={losses[-1]}); lower lr={lr}")
    module.eval()
    ev = evaluate(module, data)
    return FitResult(epochs, losses[-1] if losses else float("nan"), ev.error, tuple(losses), lr, batch_size,
                     optimizer, seed)
