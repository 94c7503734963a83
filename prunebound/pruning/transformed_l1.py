"""Transformed l1 regularisation, then pruning (Ma, Miao, Niu & Zhang 2019, "Transformed l1 regularization for
learning sparse deep neural networks", Neural Networks 119).

The transformed l1 (TL1) penalty of one weight is (their eq. for ``rho_a``)::

    rho_a(w) = (a + 1) |w| / (a + |w|),   a > 0,

which interpolates between l0 (``a -> 0``) and l1 (``a -> inf``). The paper's objective adds TL1 on all
weights and, for structured sparsity, a group-lasso term on the weights into each neuron / filter::

    E = E_0 + lam * sum_i rho_a(w_i) + lam_g * sum_g sqrt(|g|) ||w_g||_2.

Training here uses the (sub)gradient of this objective with SGD; afterwards the smallest-magnitude weights
are removed to reach ``sparsity`` exactly. Deviation: the paper also discusses a proximal (thresholding)
update; we use plain subgradient training followed by one magnitude threshold.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import check_positive, check_positive_int
from prunebound.network import Network
from prunebound.pruning._common import (
    check_scope,
    check_sparsity,
    penalize_then_prune,
    prepare,
    require_data,
)
from prunebound.pruning.report import PruneResult

__all__ = ["transformed_l1", "tl1_penalty", "group_l1_penalty"]


def tl1_penalty(w: torch.Tensor, a: float = 1.0) -> torch.Tensor:
    """``sum_i (a + 1) |w_i| / (a + |w_i|)``."""
    check_positive("a", a)
    aw = w.abs()
    return ((a + 1.0) * aw / (a + aw)).sum()


def group_l1_penalty(net: Network) -> torch.Tensor:
    """``sum_g sqrt(|g|) ||w_g||_2`` over groups = the incoming weights of each neuron / filter."""
    total = torch.zeros((), dtype=net.layers[0].weight.dtype)
    for ly in net.layers:
        w = ly.weight_matrix()
        total = total + math.sqrt(w.shape[1]) * w.norm(dim=1).sum()
    return total


def transformed_l1(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    a: float = 1.0,
    lam: float = 1e-4,
    lam_g: float = 0.0,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 64,
    scope: str = "global",
    finetune_epochs: int = 0,
) -> PruneResult:
    """Train with ``lam * TL1_a + lam_g * group-l1``, threshold to ``sparsity``, optionally fine-tune."""
    data = require_data(data, "transformed_l1 (Ma et al. 2019)")
    net = prepare(module)
    sparsity = check_sparsity(sparsity)
    check_scope(scope)
    check_positive("a", a)
    check_positive("lam", lam, allow_zero=True)
    check_positive("lam_g", lam_g, allow_zero=True)
    check_positive_int("epochs", epochs, minimum=0)

    def reg(_m: nn.Module) -> torch.Tensor:
        r = lam * sum(tl1_penalty(ly.weight, a) for ly in net.layers)
        return r + lam_g * group_l1_penalty(net) if lam_g else r

    return penalize_then_prune(
        net, data, reg, method="transformed_l1", sparsity=sparsity, scope=scope, epochs=epochs,
        finetune_epochs=finetune_epochs, lr=lr, batch_size=batch_size, seed=seed,
        desc=f"trained {epochs} epochs with TL1(a={a}) lam={lam}, group-l1 lam_g={lam_g} before pruning",
        params=dict(sparsity=sparsity, seed=seed, a=a, lam=lam, lam_g=lam_g, epochs=epochs, lr=lr,
                    batch_size=batch_size, scope=scope, finetune_epochs=finetune_epochs),
    )
