"""Data-free neuron merging (Srinivas & Babu 2015, "Data-free parameter pruning for deep neural networks",
BMVC).

If two neurons ``i, j`` of a ReLU layer have equal incoming weight sets, ``W_i = W_j``, their outputs are
equal, so neuron ``j`` can be removed and its outgoing weights added to ``i``'s (``a_i <- a_i + a_j``) without
changing the network. For unequal weights the increase in the squared output error of the next layer is
bounded by
(their Sec. 3, eq. 5-6) the *saliency*::

    s_{i,j} = <a_j^2> * ||eps_{i,j}||_2^2,     eps_{i,j} = W_i - W_j,

with ``<a_j^2>`` the mean of the squared outgoing weights of ``j``. The procedure repeatedly picks the pair of
lowest saliency, removes ``j``, sets ``a_i <- a_i + a_j`` and updates the saliencies -- no data is used.

Here ``W_i`` includes the neuron's bias (so that merging is exact for duplicated neurons including biases),
``sparsity`` is the fraction of units removed in every hidden ReLU layer (exactly ``round(sparsity * n)``),
hidden layers are processed first to last, and convolutional channels are merged the same way (the channel's
filter is its weight set and its input-channel slice of the next kernel its outgoing weights).
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.network import refresh_masked_weights
from prunebound.pruning._common import (
    check_sparsity,
    current_masks,
    hidden_layers,
    make_report,
    n_prune,
    prepare,
    removed_units,
    set_masks,
    unit_columns,
    unit_fraction,
    unit_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["neuron_merging"]


def neuron_merging(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.5,
    unit: str = "neuron",
    seed: int | None = 0,
) -> PruneResult:
    """Merge the most similar neurons of each hidden ReLU layer (data-free; ``data`` and ``seed`` are unused,
    accepted for the common API -- ties are broken by the lowest index)."""
    net = prepare(module)
    requested = check_sparsity(sparsity)
    sparsity = unit_fraction(net, requested, unit)  # fraction of units removed per hidden layer
    merges: dict[str, list[list[int]]] = {}
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    for li in hidden_layers(net):
        ly, nxt = net.layers[li], net.layers[li + 1]
        if ly.activation != "relu":
            continue
        masks = current_masks(net)
        w = ly.weight_matrix().detach().double()
        if ly.bias is not None:
            w = torch.cat([w, ly.bias.detach().double()[:, None]], 1)
        n = w.shape[0]
        alive = masks[li].reshape(n, -1).sum(1) > 0
        k = n_prune(n, sparsity) - int((~alive).sum())
        if k <= 0:
            continue
        cols = unit_columns(net, li)  # (n, g)
        a = nxt.weight_matrix().detach().double()[:, cols]  # (fan_out_next, n, g)
        a2 = (a * a).mean(dim=(0, 2))  # <a_j^2>
        dist = torch.cdist(w, w) ** 2
        s = dist * a2[None, :]  # s[i, j]: remove j, merge into i
        s.fill_diagonal_(float("inf"))
        s[~alive, :] = inf
        s[:, ~alive] = inf
        removed, pairs = [], []
        orig_next = nxt.module.weight_orig if hasattr(nxt.module, "weight_orig") else nxt.module.weight
        o2 = orig_next.data.reshape(orig_next.shape[0], -1)
        for _ in range(k):
            flat = int(torch.argmin(s))
            i, j = divmod(flat, n)
            with torch.no_grad():
                o2[:, cols[i]] += a[:, j, :].to(o2.dtype)
            a[:, i, :] += a[:, j, :]
            a2[i] = (a[:, i, :] ** 2).mean()
            alive[j] = False
            s[j, :] = inf
            s[:, j] = inf
            s[:, i] = torch.where(alive, dist[:, i] * a2[i], inf)
            s[i, i] = inf
            removed.append(j)
            pairs.append([i, j])
        refresh_masked_weights(nxt.module)
        set_masks(net, unit_masks(net, {li: torch.tensor(removed, dtype=torch.long)}))
        merges[ly.path] = pairs
    return make_report(
        net,
        "neuron_merging",
        requested,
        retrained=None,
        unit=unit,
        params=dict(sparsity=requested, unit=unit, seed=seed),
        info={"merged_pairs": merges, "removed_units": removed_units(net)},
    )
