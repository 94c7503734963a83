"""Random pruning: the baseline every data-aware method must beat.

Each layer loses exactly ``round(sparsity * n_l)`` weights chosen uniformly at random (``scope="layer"``), or
``round(sparsity * N)`` over all layers (``scope="global"``); optional fine-tuning with masks fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import check_positive_int
from prunebound.pruning._common import (
    check_scope,
    check_sparsity,
    finetune,
    make_report,
    masked_scores,
    prepare,
    set_masks,
    smallest_k_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["random_pruning"]


def random_pruning(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    scope: str = "layer",
    epochs: int = 0,
    lr: float = 0.01,
    batch_size: int = 64,
) -> PruneResult:
    """Remove uniformly random weights (scores ~ U(0,1) from ``seed``), then optionally fine-tune."""
    net = prepare(module)
    sparsity = check_sparsity(sparsity)
    check_scope(scope)
    check_positive_int("epochs", epochs, minimum=0)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    scores = [torch.rand(ly.weight.shape, generator=g, dtype=torch.float64) for ly in net.layers]
    set_masks(net, smallest_k_masks(masked_scores(net, scores), sparsity, scope))
    rt = finetune(net, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return make_report(
        net,
        "random",
        sparsity,
        retrained=rt,
        params=dict(sparsity=sparsity, seed=seed, scope=scope, epochs=epochs, lr=lr, batch_size=batch_size),
    )
