"""Network Trimming by APoZ (Hu, Peng, Tai & Tang 2016, "Network trimming: a data-driven neuron pruning
approach towards efficient deep architectures", arXiv:1607.03250).

The Average Percentage of Zeros of output ``c`` of layer ``i`` (their eq. 1)::

    APoZ_c^(i) = sum_k sum_j 1[O_c,j^(i)(k) = 0] / (N * M),

over ``N`` validation examples ``k`` and the ``M`` spatial positions ``j`` of the channel (``M = 1`` for a
neuron), where ``O`` is the output *after* the ReLU. Neurons/channels with the highest APoZ are trimmed (their
incoming and outgoing connections removed), and the network is retrained warm-started from the surviving
weights; prune/retrain may iterate (Sec. 3).

Structured sparsity: ``sparsity`` is the fraction of units removed in *every* hidden layer followed by a ReLU
(exactly ``round(sparsity * n_units)`` each; the output layer is never trimmed). The report's weight sparsity
follows from it (rows in the layer and columns in the next one are masked). Deviation: Hu et al. trim layer by
layer; we trim all hidden layers each round (``iterations`` rounds, each to ``1 - (1-s)^(r/iterations)``).
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import check_positive_int
from prunebound.network import Network
from prunebound.pruning._common import (
    check_sparsity,
    current_masks,
    finetune,
    hidden_layers,
    make_report,
    n_prune,
    prepare,
    removed_units,
    require_data,
    set_masks,
    unit_fraction,
    unit_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["apoz", "apoz_scores"]


def apoz_scores(net: Network, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """APoZ (eq. 1) of every unit of every hidden ReLU layer, keyed by layer index (float64, in [0, 1])."""
    tr = net.trace(x)
    out = {}
    for i in hidden_layers(net):
        if net.layers[i].activation != "relu":
            continue
        z = tr.preacts[i]  # ReLU output is zero exactly where the pre-activation is <= 0
        zero = (z <= 0).double()
        out[i] = zero.transpose(0, 1).reshape(z.shape[1], -1).mean(1)
    return out


def apoz(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.5,
    unit: str = "neuron",
    seed: int | None = 0,
    iterations: int = 1,
    n_eval: int | None = 2000,
    epochs: int = 3,
    lr: float = 0.01,
    batch_size: int = 64,
) -> PruneResult:
    """Trim the highest-APoZ neurons/channels of each hidden layer, retrain warm-started (masks fixed)."""
    data = require_data(data, "apoz (Hu et al. 2016)")
    net = prepare(module)
    requested = check_sparsity(sparsity)
    sparsity = unit_fraction(net, requested, unit)  # fraction of units removed per hidden layer
    check_positive_int("iterations", iterations)
    check_positive_int("epochs", epochs, minimum=0)
    x = data.x if n_eval is None else data.x[: check_positive_int("n_eval", n_eval)]
    rt = None
    history = []
    for r in range(1, iterations + 1):
        target = sparsity if r == iterations else 1.0 - (1.0 - sparsity) ** (r / iterations)
        scores = apoz_scores(net, x)
        masks = current_masks(net)
        removed = {}
        for i, s in scores.items():
            rows = masks[i].reshape(masks[i].shape[0], -1)
            dead = rows.sum(1) == 0
            s = torch.where(dead, torch.tensor(float("inf"), dtype=torch.float64), s)  # already trimmed first
            k = n_prune(s.numel(), target)
            removed[i] = torch.topk(s, k, largest=True).indices if k else torch.zeros(0, dtype=torch.long)
        set_masks(net, unit_masks(net, removed))
        history.append(
            {
                "round": r,
                "unit_sparsity": target,
                "mean_apoz": {net.layers[i].path: float(s.mean()) for i, s in scores.items()},
            }
        )
        rt = (
            finetune(
                net,
                data,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                seed=None if seed is None else seed + r,
                what="retrained (warm start)",
            )
            or rt
        )
    return make_report(
        net,
        "apoz",
        requested,
        retrained=rt,
        unit=unit,
        params=dict(
            sparsity=requested,
            unit=unit,
            seed=seed,
            iterations=iterations,
            n_eval=n_eval,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
        ),
        info={"history": history, "removed_units": removed_units(net)},
    )
