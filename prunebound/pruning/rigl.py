"""RigL: dynamic sparse training (Evci, Gale, Menick, Castro & Elsen 2020, "Rigging the lottery: making all
tickets winners", ICML).

The network is sparse from the start (random mask at ``sparsity``; per layer ``"uniform"`` or Erdos-Renyi
``"erk"`` densities, Sec. 3) and stays exactly as sparse: every ``delta_t`` steps until ``t_end`` (Sec. 3,
Algorithm 1), in every layer

* drop the ``k = f(t) * n_active`` active connections with the smallest ``|w|``,
* grow the ``k`` inactive connections (including the ones just dropped) with the largest dense gradient
  ``|dL/dW|`` on the current mini-batch; grown connections start at zero,

with the cosine update schedule (eq. 1) ``f(t) = alpha/2 * (1 + cos(pi t / t_end))``. Between updates the
masked network is trained with SGD (momentum); the dense gradient is that of the loss w.r.t. the effective
weight, available because ``torch.nn.utils.prune`` recomputes ``weight = weight_orig * weight_mask`` in
the graph.

ERK: the density of a layer is proportional to ``(n_in + n_out) / (n_in * n_out)`` (dense) or
``(n_in + n_out + w + h) / (n_in * n_out * w * h)`` (convolution, Sec. 3). Deviation: the optimizer's momentum
of regrown connections is zeroed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_positive, check_positive_int, check_probability
from prunebound.network import Network
from prunebound.pruning._common import (
    check_sparsity,
    current_masks,
    make_report,
    n_prune,
    prepare,
    require_data,
    set_masks,
    smallest_k_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["rigl", "erk_densities", "cosine_update_fraction"]


def cosine_update_fraction(t: int, *, alpha: float, t_end: int) -> float:
    """``f(t) = alpha/2 (1 + cos(pi t / t_end))`` for ``t < t_end``, else 0 (Evci et al. eq. 1)."""
    return 0.0 if t >= t_end else alpha / 2.0 * (1.0 + math.cos(math.pi * t / t_end))


def erk_densities(net: Network, sparsity: float) -> list[float]:
    """Per-layer densities ``min(1, eps * sum(shape) / prod(shape))`` (ERK) with ``eps`` fitted so the total
    density is ``1 - sparsity`` (layers that saturate at 1 are fixed and ``eps`` refitted)."""
    n = [ly.n_weights for ly in net.layers]
    raw = []
    for ly in net.layers:
        shape = tuple(ly.weight.shape)  # (out, in, *kernel)
        raw.append((sum(shape)) / ly.n_weights)
    dense: set[int] = set()
    budget = (1.0 - sparsity) * sum(n)
    while True:
        rest = budget - sum(n[i] for i in dense)
        denom = sum(raw[i] * n[i] for i in range(len(n)) if i not in dense)
        eps = rest / denom if denom > 0 else 0.0
        over = [i for i in range(len(n)) if i not in dense and eps * raw[i] > 1.0]
        if not over:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(n))]
        dense.update(over)


def rigl(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    epochs: int = 5,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 64,
    alpha: float = 0.3,
    delta_t: int = 100,
    t_end_fraction: float = 0.75,
    distribution: str = "uniform",
) -> PruneResult:
    """Train ``module`` sparse from scratch with RigL updates; returns the trained sparse network.

    ``info["history"]`` lists, for every connectivity update, the step, ``f(t)``, connections swapped and the
    number of active weights per layer (constant by construction).
    """
    data = require_data(data, "rigl (Evci et al. 2020)")
    net = prepare(module)
    sparsity = check_sparsity(sparsity)
    check_positive_int("epochs", epochs, minimum=0)
    check_positive("lr", lr)
    check_probability("alpha", alpha, open_right=False)
    check_positive_int("delta_t", delta_t)
    check_probability("t_end_fraction", t_end_fraction, open_right=False)
    if distribution not in ("uniform", "erk"):
        raise InvalidParameterError(f"distribution must be 'uniform' or 'erk'; got {distribution!r}")
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    # initial random mask (exact counts per layer)
    if distribution == "uniform":
        per_layer = [sparsity] * len(net.layers)
    else:
        per_layer = [1.0 - d for d in erk_densities(net, sparsity)]
    masks = []
    for ly, s in zip(net.layers, per_layer):
        sc = torch.rand(ly.weight.shape, generator=g, dtype=torch.float64)
        masks.append(smallest_k_masks([sc], s, "layer")[0])
    set_masks(net, masks)
    module_ = net.module
    opt = torch.optim.SGD([p for p in module_.parameters() if p.requires_grad], lr=lr, momentum=momentum)
    n = len(data)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    t_end = max(1, int(t_end_fraction * total_steps))
    history: list[dict] = []
    step = 0
    module_.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            out = module_(data.x[idx])  # prune's pre-hook rebuilt each layer's `weight` for this pass
            eff = [ly.module.weight for ly in net.layers]
            for w in eff:
                w.retain_grad()
            loss = F.cross_entropy(out, data.y[idx])
            loss.backward()
            step += 1
            if step % delta_t == 0 and step < t_end:
                frac = cosine_update_fraction(step, alpha=alpha, t_end=t_end)
                history.append(_update(net, [w.grad for w in eff], frac, step, opt))
            opt.step()
    module_.eval()
    from prunebound.train import evaluate

    ev = evaluate(module_, data)
    return make_report(
        net,
        "rigl",
        sparsity,
        retrained=f"trained sparse from scratch for {epochs} epochs with "
        f"{len(history)} RigL connectivity updates",
        params=dict(
            sparsity=sparsity,
            seed=seed,
            epochs=epochs,
            lr=lr,
            momentum=momentum,
            batch_size=batch_size,
            alpha=alpha,
            delta_t=delta_t,
            t_end_fraction=t_end_fraction,
            distribution=distribution,
        ),
        info={"history": history, "train_error": ev.error, "per_layer_target": per_layer, "t_end": t_end},
    )


def _update(
    net: Network, grads: list[torch.Tensor], frac: float, step: int, opt: torch.optim.Optimizer
) -> dict:
    """One RigL connectivity update: drop by magnitude, grow by |dense gradient| (counts preserved)."""
    new_masks, swapped = [], []
    for ly, m, gr in zip(net.layers, current_masks(net), grads):
        w = ly.module.weight_orig.detach()
        active = m > 0
        n_act = int(active.sum())
        k = min(n_prune(n_act, frac), n_act)  # the grow pool (inactive after the drop) has >= k entries
        if k == 0 or gr is None:
            new_masks.append(m)
            swapped.append(0)
            continue
        mag = torch.where(active, (w * m).abs().double(), torch.tensor(float("inf"), dtype=torch.float64))
        drop = torch.topk(mag.reshape(-1), k, largest=False).indices
        m2 = m.clone().reshape(-1)
        m2[drop] = 0.0
        score = torch.where(
            m2.reshape(m.shape) > 0,
            torch.tensor(float("-inf"), dtype=torch.float64),
            gr.detach().abs().double(),
        )
        grow = torch.topk(score.reshape(-1), k, largest=True).indices
        m2[grow] = 1.0
        m2 = m2.reshape(m.shape)
        with torch.no_grad():  # grown connections start at zero (and without momentum)
            newly = (m2 > 0) & (m == 0)
            ly.module.weight_orig[newly] = 0.0
            st = opt.state.get(ly.module.weight_orig, {})
            if "momentum_buffer" in st and st["momentum_buffer"] is not None:
                st["momentum_buffer"][newly] = 0.0
        new_masks.append(m2)
        swapped.append(int(newly.sum()))
    # replace the masks (not multiply): rewrite the buffers in place
    for ly, m2 in zip(net.layers, new_masks):
        ly.module.weight_mask.copy_(m2.to(ly.module.weight_mask.dtype))
    return {"step": step, "fraction": frac, "swapped": swapped, "active": [int(m.sum()) for m in new_masks]}
