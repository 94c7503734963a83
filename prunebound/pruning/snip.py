"""SNIP: single-shot network pruning by connection sensitivity (Lee, Ajanthan & Torr 2019, ICLR).

With auxiliary indicators ``c`` on every connection (``w_eff = c * w``), the sensitivity of connection ``j``
is
``|dL/dc_j|`` at ``c = 1`` on one mini-batch, normalised (eq. 6)::

    s_j = |g_j(w; D_b)| / sum_k |g_k(w; D_b)|,    g_j = dL/dc_j = w_j * dL/dw_j,

and the top ``kappa = (1 - sparsity) * m`` connections (globally, over all layers) are kept (eq. 7). Pruning
happens *at initialisation*; the pruned network is then trained (``epochs`` here, default 0: return the
pruned initialisation).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import check_positive_int
from prunebound.network import Network
from prunebound.pruning._common import (
    check_scope,
    check_sparsity,
    finetune,
    make_report,
    masked_scores,
    prepare,
    require_data,
    set_masks,
    smallest_k_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["snip", "snip_scores"]


def snip_scores(net: Network, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Normalised connection sensitivities ``s_j`` (eq. 6), one tensor per layer (weight shape).

    Computed as the gradient w.r.t. multiplicative indicators ``c = 1`` via ``torch.func.functional_call``.
    """
    from torch.func import functional_call

    names = [f"{ly.path}.weight" if ly.path else "weight" for ly in net.layers]
    w = [ly.weight.detach() for ly in net.layers]
    c = [torch.ones_like(t, requires_grad=True) for t in w]
    base = {n: t for n, t in net.module.named_parameters() if not n.endswith("weight_orig")}
    base.update({n: ci * wi for n, ci, wi in zip(names, c, w)})
    was = net.module.training
    net.module.eval()
    out = functional_call(net.module, base, (x,))
    net.module.train(was)
    loss = F.cross_entropy(out, y)
    grads = torch.autograd.grad(loss, c)
    total = sum(g.abs().sum() for g in grads)
    return [(g.abs() / total).detach() for g in grads]


def snip(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    batch_size: int = 128,
    scope: str = "global",
    epochs: int = 0,
    lr: float = 0.01,
) -> PruneResult:
    """Prune ``module`` (at initialisation) by SNIP on one random mini-batch of ``batch_size`` examples."""
    data = require_data(data, "snip (Lee et al. 2019)")
    net = prepare(module)
    sparsity = check_sparsity(sparsity)
    check_scope(scope)
    check_positive_int("batch_size", batch_size)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    idx = torch.randperm(len(data), generator=g)[: min(batch_size, len(data))]
    net_plain = net
    if any(ly.mask is not None for ly in net.layers):  # score the effective (masked) weights
        from prunebound.network import remove_masks

        net_plain = Network.from_module(remove_masks(copy.deepcopy(net.module)))
    scores = snip_scores(net_plain, data.x[idx], data.y[idx])
    set_masks(net, smallest_k_masks(masked_scores(net, scores), sparsity, scope))
    rt = finetune(net, data, epochs=epochs, lr=lr, batch_size=64, seed=seed, what="trained")
    return make_report(
        net,
        "snip",
        sparsity,
        retrained=rt,
        params=dict(sparsity=sparsity, seed=seed, batch_size=batch_size, scope=scope, epochs=epochs, lr=lr),
        info={"batch_indices": idx.tolist()},
    )
