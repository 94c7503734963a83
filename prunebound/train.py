"""Training and evaluation helpers: deterministic ``fit`` and ``evaluate`` with the γ-margin loss.

The γ-margin loss of a classifier f on (x, y) is ``1[ f(x)_y <= γ + max_{j != y} f(x)_j ]`` (Bartlett et al.
2017; Neyshabur et al. 2018; Arora et al. 2018); at γ = 0 it upper-bounds the 0-1 error (ties count as errors).

:func:`fit` options for longer runs: a learning-rate ``schedule`` (``"cosine"``: ``lr_t = lr (1 + cos(π t/T))/2``
per optimiser step, Loshchilov & Hutter 2017 without restarts; ``"step"``: ``lr`` times ``step_gamma`` every
``step_size`` epochs), a ``device`` (``"cpu"`` by default; ``"cuda"``, or ``"auto"`` = CUDA when available; the
module is returned on the device it came from), a tqdm progress bar (only on a terminal) and ``threads``
(torch intra-op threads for the duration of the call, see :func:`torch_threads`).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.data import Dataset, as_dataset
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_positive_int

__all__ = ["FitResult", "EvalResult", "fit", "evaluate", "margins", "check_compatible", "torch_threads",
           "resolve_device", "SCHEDULES"]

SCHEDULES = (None, "constant", "cosine", "step")


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
    schedule: str | None = None
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads(n)`` for the ``with`` block and restore it after (``None``: leave as is).

    Parallel workers should use one thread each (``n=1``): torch's default of one thread per core in every
    worker oversubscribes the CPU (we measured ~25x slower epochs under load).
    """
    if n is None:
        yield
        return
    n = check_positive_int("threads", n)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"cpu"`` -> CPU; ``"auto"`` -> CUDA when available else CPU; ``"cuda[:i]"`` must be available."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidParameterError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"device={device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidParameterError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return dev


def _module_device(module: nn.Module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def _show_progress(progress: bool | None, quiet: bool) -> bool:
    want = (not quiet) if progress is None else bool(progress)
    return want and sys.stderr.isatty()


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
    data = as_dataset(data)  # also (x, y) tensors or a DataLoader
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
    schedule: str | None = None,
    step_size: int | None = None,
    step_gamma: float = 0.1,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    desc: str = "fit",
    threads: int | None = None,
) -> FitResult:
    """Train ``module`` in place with cross-entropy (+ optional ``regularizer(module)``), deterministic for ``seed``.

    Works on pruned models: gradients flow to ``weight_orig`` and masked weights stay zero.  With BatchNorm
    layers a final mini-batch of a single example is merged into the previous one (BatchNorm cannot
    normalise a batch of one in training mode).
    ``after_step(module)`` is called after each optimiser step (e.g. to re-apply a projection).
    ``schedule``: ``None``/``"constant"``, ``"cosine"`` (per step, to 0 at the end) or ``"step"`` (``lr`` times
    ``step_gamma`` every ``step_size`` epochs, default ``max(1, epochs // 3)``).  ``device``: see
    :func:`resolve_device`; the module goes back to its original device afterwards.  ``progress``: a tqdm bar
    over epochs (default: shown when ``quiet=False``), never when stderr is not a terminal.  ``threads``: torch
    threads during the call (:func:`torch_threads`).
    """
    data = as_dataset(data)  # also (x, y) tensors or a DataLoader
    check_positive_int("epochs", epochs, minimum=0)
    check_positive("lr", lr)
    check_positive_int("batch_size", batch_size)
    if schedule not in SCHEDULES:
        raise InvalidParameterError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "step":
        step_size = check_positive_int("step_size", step_size if step_size is not None else max(1, epochs // 3))
        check_positive("step_gamma", step_gamma)
    dev = resolve_device(device)
    check_compatible(module, data)
    with torch_threads(threads):
        home = _module_device(module)
        module.to(dev)
        try:
            losses = _train_loop(module, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                                 optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                                 regularizer=regularizer, after_step=after_step, schedule=schedule,
                                 step_size=step_size, step_gamma=step_gamma, dev=dev,
                                 show=_show_progress(progress, quiet), desc=desc)
        finally:
            module.to(home)
        module.eval()
        ev = evaluate(module, data)
    return FitResult(epochs, losses[-1] if losses else float("nan"), ev.error, tuple(losses), lr, batch_size,
                     optimizer, seed, schedule, str(dev))


def _lr_factor(schedule: str | None, step: int, total: int, epoch: int, step_size: int | None,
               step_gamma: float) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    if schedule == "step":
        return step_gamma ** (epoch // step_size)
    return 1.0


def _train_loop(module, data, *, epochs, lr, batch_size, seed, optimizer, momentum, weight_decay, regularizer,
                after_step, schedule, step_size, step_gamma, dev, show, desc) -> list[float]:
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    params = [p for p in module.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise InvalidParameterError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    n = len(data)
    x, y = data.x.to(dev), data.y.to(dev)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    losses: list[float] = []
    from tqdm.auto import tqdm

    starts = list(range(0, n, batch_size))
    has_bn = any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in module.modules())
    if has_bn and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()  # BatchNorm cannot train on a batch of one: the last example joins the previous batch
    module.train()
    bar = tqdm(range(epochs), desc=desc, disable=not show, leave=False, dynamic_ncols=True)
    step = 0
    for epoch in bar:
        perm = torch.randperm(n, generator=g).to(dev)
        tot = torch.zeros((), dtype=torch.float64, device=dev)
        for i in starts:
            f = _lr_factor(schedule, step, total, epoch, step_size, step_gamma)
            for group in opt.param_groups:
                group["lr"] = lr * f
            idx = perm[i : i + batch_size] if i != starts[-1] else perm[i:]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(module(x[idx]), y[idx])
            if regularizer is not None:
                loss = loss + regularizer(module)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(module)
            tot += loss.detach().double() * len(idx)
            step += 1
        losses.append(float(tot) / n)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr * f:.2g}")
        if not math.isfinite(losses[-1]):
            raise InvalidParameterError(f"training diverged (loss={losses[-1]}); lower lr={lr}")
    return losses
