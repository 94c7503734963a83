"""Searching for good subnetworks by optimisation: edge-popup and greedy forward selection.

* :func:`edge_popup` -- Ramanujan, Wortsman, Kembhavi, Farhadi, Rastegari (2020), "What's hidden in a randomly
  weighted neural network?", Alg. 1: the weights stay at their random values; every weight ``w_uv`` gets a
  score
  ``s_uv``; the forward pass uses the top-k scores of each layer (``W ⊙ 1[s in top-k]``); the backward pass is
  the straight-through estimator ``∂L/∂s_uv = ∂L/∂(w_uv m_uv) · w_uv`` (their Eq. 3, the mask's gradient
  treated as identity). Exactly ``k`` weights per layer are kept (``torch.topk``; ties by index).
* :func:`greedy_forward_selection` -- Ye, Gong, Nie, Zhu, Liu (2020), "Good subnetworks provably exist:
pruning
  via greedy forward selection", Alg. 1: a two-layer network ``f(x) = b2 + sum_j W2[:, j] s(W1[j] x + b1[j])``
  is written as the mean of ``N`` unit functions ``u_j(x) = N W2[:, j] s(W1[j] x + b1[j])`` (plus ``b2``);
  starting from the empty set, step ``n`` adds (with replacement) the unit that minimises the loss of
  ``f_n = b2 + (1/n) sum_{t <= n} u_{j_t}``. Their Thm. 1 gives ``L(f_n) - L* = O(1/n)`` (``L*``: best loss
  in the convex hull of the units); we report the loss curve next to the reference ``L_0 + c/n`` with
  ``L_0 = min(L(f_N), min_n L(f_n))`` (an upper estimate of ``L*``) and ``c = L(f_1) - L_0``.
  Deviation: the subnetwork has output weights rescaled by ``N count_j / n`` (as in the paper, which averages
  the selected units) -- so it is a masked *and rescaled* copy, not a pure mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from prunebound.data import Dataset
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_positive,
    check_positive_int,
    check_probability,
)
from prunebound.network import (
    Network,
    apply_masks,
    clone,
    remove_masks,
)

__all__ = ["EdgePopupResult", "edge_popup", "GreedySelectionResult", "greedy_forward_selection",
           "random_mask", "mask_loss"]


def _clone(module: nn.Module) -> nn.Module:
    """An unpruned copy holding the *effective* weights (masks made permanent); BatchNorm is folded by
    :meth:`Network.from_module`."""
    return remove_masks(clone(Network.from_module(module).module))


class _TopKSTE(torch.autograd.Function):
    """Forward: 0/1 mask of the ``k`` largest scores; backward: identity (straight-through)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int) -> torch.Tensor:
        flat = scores.reshape(-1)
        mask = torch.zeros_like(flat)
        if k > 0:
            mask[torch.topk(flat, k, sorted=False).indices] = 1.0
        return mask.reshape(scores.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def _keep_counts(net: Network, sparsity: float | None, keep: Sequence[int] | None) -> list[int]:
    if (sparsity is None) == (keep is None):
        raise InvalidParameterError(
            "give exactly one of sparsity (fraction pruned per layer) or keep (counts)"
        )
    if keep is not None:
        if len(keep) != len(net.layers):
            raise InvalidParameterError(
                f"keep has {len(keep)} entries; the model has {len(net.layers)} layers"
            )
        out = []
        for ly, k in zip(net.layers, keep):
            k = check_positive_int("keep[i]", k, minimum=0)
            if k > ly.n_weights:
                raise InvalidParameterError(
                    f"keep={k} for layer {ly.path!r} exceeds its {ly.n_weights} weights"
                )
            out.append(k)
        return out
    s = check_probability("sparsity", sparsity, open_left=False)
    return [int(round((1.0 - s) * ly.n_weights)) for ly in net.layers]


def _loss(z: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(z, y)
    if loss == "mse":
        return F.mse_loss(z, F.one_hot(y, z.shape[1]).to(z.dtype)) * z.shape[1]
    raise InvalidParameterError(f"loss must be 'ce' or 'mse'; got {loss!r}")


def mask_loss(module: nn.Module, data: Dataset, *, loss: str = "ce", batch_size: int = 8192) -> float:
    """Mean loss of ``module`` on ``data`` (no grad)."""
    if len(data) == 0:
        raise DataError("data is empty")
    tot = 0.0
    with torch.no_grad():
        for xb, yb in data.batches(batch_size):
            z = module(xb.to(next(module.parameters()).dtype))
            tot += float(_loss(z, yb, loss)) * len(yb)
    return tot / len(data)


@dataclass(frozen=True)
class EdgePopupResult:
    """``module``: a pruned copy (``torch.nn.utils.prune`` masks, weights untouched); ``keep[i]``: weights
    kept
    in layer ``i`` (exact); ``losses``: mean training loss per epoch."""

    module: nn.Module
    keep: tuple[int, ...]
    sparsity: float
    losses: tuple[float, ...]
    final_loss: float
    seed: int | None

    def to_dict(self) -> dict:
        return {"keep": list(self.keep), "sparsity": self.sparsity, "losses": list(self.losses),
                "final_loss": self.final_loss, "seed": self.seed}


def edge_popup(module: nn.Module, data: Dataset, *, sparsity: float | None = None,
               keep: Sequence[int] | None = None, epochs: int = 20, lr: float = 0.1, momentum: float = 0.9,
               weight_decay: float = 5e-4, batch_size: int = 128, loss: str = "ce",
               seed: int | None = 0) -> EdgePopupResult:
    """Edge-popup (Ramanujan et al. 2020): learn which ``k`` weights of each layer to keep, weights frozen.

    ``sparsity``: fraction of each layer's weights pruned (``k = round((1 - sparsity) n_weights)``) or
    ``keep``:
    explicit per-layer counts. Scores start at ``|kaiming-uniform|`` as in the paper; SGD with momentum on
    scores.
    Returns a pruned copy of ``module`` whose layers keep exactly ``keep[i]`` weights. If ``module`` is
    already pruned, its effective (masked) weights are the frozen random weights and its old mask is not kept.
    """
    net = Network.from_module(_clone(module))
    net.check_finite()
    if len(data) == 0:
        raise DataError("data is empty")
    ks = _keep_counts(net, sparsity, keep)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    m = net.module
    for p in m.parameters():
        p.requires_grad_(False)
    scores = []
    for ly in net.layers:
        bound = math.sqrt(6.0 / ly.fan_in)  # kaiming-uniform range, as in the edge-popup code base
        scores.append(((torch.rand(ly.weight.shape, generator=g, dtype=ly.weight.dtype) * 2 - 1) * bound)
                      .abs().requires_grad_(True))
    opt = torch.optim.SGD(scores, lr=lr, momentum=momentum, weight_decay=weight_decay)
    names = [f"{ly.path}.weight" if ly.path else "weight" for ly in net.layers]
    weights = [ly.weight.detach() for ly in net.layers]
    n = len(data)
    losses = []
    was = m.training
    m.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            xb, yb = data.x[idx].to(weights[0].dtype), data.y[idx]
            params = {nm: w * _TopKSTE.apply(sc, k) for nm, w, sc, k in zip(names, weights, scores, ks)}
            out = functional_call(m, params, (xb,))
            lval = _loss(out, yb, loss)
            opt.zero_grad()
            lval.backward()
            opt.step()
            tot += float(lval.detach()) * len(idx)
        losses.append(tot / n)
    m.train(was)
    with torch.no_grad():
        masks = [_TopKSTE.apply(sc.detach(), k) for sc, k in zip(scores, ks)]
    apply_masks(m, masks)
    total = sum(ly.n_weights for ly in net.layers)
    return EdgePopupResult(m, tuple(ks), 1.0 - sum(ks) / total, tuple(losses), mask_loss(m, data, loss=loss),
                           seed)


def random_mask(module: nn.Module, *, keep: Sequence[int], seed: int | None = 0) -> nn.Module:
    """Baseline: a pruned deep copy keeping ``keep[i]`` uniformly random weights of layer ``i``."""
    net = Network.from_module(_clone(module))
    ks = _keep_counts(net, None, keep)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    masks = []
    for ly, k in zip(net.layers, ks):
        flat = torch.zeros(ly.n_weights, dtype=ly.weight.dtype)
        flat[torch.randperm(ly.n_weights, generator=g)[:k]] = 1.0
        masks.append(flat.reshape(ly.weight.shape))
    return apply_masks(net.module, masks)


# ---------------------------------------------------------------------- greedy forward selection
@dataclass(frozen=True)
class GreedySelectionResult:
    """``selected``: unit chosen at each step (with replacement); ``loss_curve[n-1] = L(f_n)``;
    ``full_loss = L(f_N)`` of the whole network; ``rate_reference[n-1] = L_0 + c / n`` (see module doc)."""

    module: nn.Module
    selected: tuple[int, ...]
    loss_curve: tuple[float, ...]
    full_loss: float
    rate_reference: tuple[float, ...]
    n_units: int

    @property
    def n_distinct(self) -> int:
        return len(set(self.selected))

    def to_dict(self) -> dict:
        return {"selected": list(self.selected), "loss_curve": list(self.loss_curve),
                "full_loss": self.full_loss, "rate_reference": list(self.rate_reference),
                "n_units": self.n_units, "n_distinct": self.n_distinct}


def greedy_forward_selection(module: nn.Module, data: Dataset, *, n_select: int, loss: str = "ce"
                             ) -> GreedySelectionResult:
    """Greedy forward selection of hidden units (Ye et al. 2020, Alg. 1) in a ``Linear-ReLU-Linear`` network.

    Vectorised over candidates: the unit outputs ``u_j(x)`` on ``data`` are precomputed (``N x m x d_out``);
    each step evaluates all ``N`` candidate averages at once. Deterministic (ties to the lowest index).
    """
    net = Network.from_module(module)
    net.check_finite()
    if len(net.layers) != 2 or net.layers[0].kind != "linear" or net.layers[1].kind != "linear" \
            or net.layers[0].activation != "relu" or net.layers[1].activation is not None or not net.is_chain:
        raise UnsupportedLayerError("greedy_forward_selection needs a Linear-ReLU-Linear network")
    if len(data) == 0:
        raise DataError("data is empty")
    n_select = check_positive_int("n_select", n_select)
    l1, l2 = net.layers
    dt = torch.float64
    w1, w2 = l1.weight.detach().to(dt), l2.weight.detach().to(dt)
    b1 = l1.bias.detach().to(dt) if l1.bias is not None else torch.zeros(w1.shape[0], dtype=dt)
    b2 = l2.bias.detach().to(dt) if l2.bias is not None else torch.zeros(w2.shape[0], dtype=dt)
    x = data.x.to(dt).reshape(len(data), -1)
    y = data.y
    N = w1.shape[0]
    h = (x @ w1.T + b1).clamp(min=0)  # (m, N)
    units = N * h.T[:, :, None] * w2.T[:, None, :]  # (N, m, d_out)

    def batch_loss(z: torch.Tensor) -> torch.Tensor:  # z: (C, m, d_out) -> (C,)
        if loss == "ce":
            idx = y[None, :, None].expand(z.shape[0], -1, 1)
            return -torch.log_softmax(z, -1).gather(-1, idx).mean((1, 2))
        if loss == "mse":
            oh = F.one_hot(y, z.shape[-1]).to(dt)
            return ((z - oh) ** 2).sum(-1).mean(-1)
        raise InvalidParameterError(f"loss must be 'ce' or 'mse'; got {loss!r}")

    full = float(batch_loss((units.mean(0) + b2)[None])[0])
    f = torch.zeros_like(units[0])
    sel, curve = [], []
    for n in range(1, n_select + 1):  # loop over steps; candidates vectorised
        cand = ((n - 1) * f[None] + units) / n + b2
        lv = batch_loss(cand)
        j = int(torch.argmin(lv))
        f = ((n - 1) * f + units[j]) / n
        sel.append(j)
        curve.append(float(lv[j]))
    floor = min(full, min(curve))
    c = curve[0] - floor
    ref = tuple(floor + c / n for n in range(1, n_select + 1))
    counts = np.bincount(np.asarray(sel), minlength=N)
    sub = _clone(net.module)
    snet = Network.from_module(sub)
    with torch.no_grad():
        scale = torch.as_tensor(N * counts / n_select, dtype=snet.layers[1].weight.dtype)
        snet.layers[1].module.weight.mul_(scale[None, :])
    keep_units = torch.as_tensor(counts > 0)
    m1 = keep_units[:, None].expand_as(snet.layers[0].weight).to(snet.layers[0].weight.dtype)
    m2 = keep_units[None, :].expand_as(snet.layers[1].weight).to(snet.layers[1].weight.dtype)
    apply_masks(sub, [m1.contiguous(), m2.contiguous()])
    return GreedySelectionResult(sub, tuple(sel), tuple(curve), full, ref, N)
