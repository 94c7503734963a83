"""Penalty-driven shrinkage, then pruning (Hanson & Pratt 1989, "Comparing biases for minimal network
construction with back-propagation", NeurIPS 1).

Following Rumelhart's minimal-network proposal, training minimises ``E = E_0 + lam * B(W)`` with a bias
(penalty) ``B`` on the weight search space; the weights it drives toward zero are then removed. Penalties
(``penalty=``):

* ``"l2"``: Rumelhart's plain weight decay ``B = sum_ij w_ij^2``;
* ``"hyperbolic"`` (Hanson & Pratt's hyperbolic bias) ``B = sum_i u_i / (1 + beta u_i)`` and
* ``"exponential"`` (their exponential bias) ``B = sum_i (1 - exp(-beta u_i))``, where ``u_i = sum_j |w_ij|``
  is the total absolute weight *into* unit ``i``: both saturate, so small units are pushed to zero while large
  ones are nearly unpenalised -- the bias toward few hidden units.

After training, the smallest-magnitude weights are removed to reach ``sparsity`` exactly (per layer or
global; the paper stops at the shrinkage and counts near-zero units: the final threshold and the optional
fine-tuning with masks fixed are our additions so the method fits the common API).
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_positive, check_positive_int
from prunebound.network import Network
from prunebound.pruning._common import (
    check_scope,
    check_sparsity,
    penalize_then_prune,
    prepare,
    require_data,
)
from prunebound.pruning.report import PruneResult

__all__ = ["weight_decay", "hanson_pratt_penalty"]

PENALTIES = ("l2", "hyperbolic", "exponential")


def hanson_pratt_penalty(net: Network, penalty: str = "hyperbolic", *, beta: float = 1.0) -> torch.Tensor:
    """The bias ``B(W)`` of the module docstring, summed over all weighted layers (differentiable)."""
    if penalty not in PENALTIES:
        raise InvalidParameterError(f"penalty must be one of {PENALTIES}; got {penalty!r}")
    total = torch.zeros((), dtype=net.layers[0].weight.dtype)
    for ly in net.layers:
        w = ly.weight_matrix()
        if penalty == "l2":
            total = total + (w * w).sum()
            continue
        u = w.abs().sum(1)
        total = total + (
            (u / (1 + beta * u)).sum() if penalty == "hyperbolic" else (1 - torch.exp(-beta * u)).sum()
        )
    return total


def weight_decay(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    lam: float = 1e-3,
    penalty: str = "hyperbolic",
    beta: float = 1.0,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 64,
    scope: str = "global",
    finetune_epochs: int = 0,
) -> PruneResult:
    """Train ``epochs`` epochs on ``E_0 + lam * B(W)``, prune the smallest weights, optionally fine-tune."""
    data = require_data(data, "weight_decay (Hanson & Pratt 1989)")
    net = prepare(module)
    sparsity = check_sparsity(sparsity)
    check_scope(scope)
    check_positive("lam", lam, allow_zero=True)
    check_positive("beta", beta)
    check_positive_int("epochs", epochs, minimum=0)
    if penalty not in PENALTIES:
        raise InvalidParameterError(f"penalty must be one of {PENALTIES}; got {penalty!r}")
    return penalize_then_prune(
        net, data, lambda m: lam * hanson_pratt_penalty(net, penalty, beta=beta),
        method="weight_decay", sparsity=sparsity, scope=scope, epochs=epochs, finetune_epochs=finetune_epochs,
        lr=lr, batch_size=batch_size, seed=seed,
        desc=f"trained {epochs} epochs with {penalty} penalty lam={lam} before pruning",
        params=dict(sparsity=sparsity, seed=seed, lam=lam, penalty=penalty, beta=beta, epochs=epochs, lr=lr,
                    batch_size=batch_size, scope=scope, finetune_epochs=finetune_epochs),
        info=lambda n: {"penalty_final": float(hanson_pratt_penalty(n, penalty, beta=beta).detach())},
    )

