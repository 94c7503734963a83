"""Magnitude pruning with retraining (Han, Pool, Tran & Dally 2015, "Learning both weights and connections
for efficient neural networks", NeurIPS).

Rule (Sec. 3): after training, remove every connection whose weight lies below a threshold, then retrain the
remaining connections with the pruned ones fixed at zero; optionally iterate prune/retrain (Sec. 3.3, Fig. 5).
The paper's threshold is "a quality parameter multiplied by the standard deviation of a layer's weights":
``|w| < q * std(W_l)``.

Scopes here
-----------
* ``scope="std"`` (the paper's rule): prune ``|w_i| / std(W_l(i)) < q``. With ``quality=q`` given, exactly the
  paper's threshold (sparsity then follows from ``q``); with ``sparsity`` given, ``q`` is the single quality
  parameter (shared by all layers) that removes exactly ``round(sparsity * N)`` weights, i.e. a global
  ranking of ``|w_i| / std_l`` (the ``q`` found is reported).
* ``scope="layer"``: each layer loses exactly ``round(sparsity * n_l)`` of its smallest weights.
* ``scope="global"``: one magnitude threshold over all layers.

Deviations: Han et al. also lower dropout during retraining and use L2 regularisation (``weight_decay``
here); dropout rescaling is not modelled. ``std`` is that of the layer's currently unpruned weights.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_positive, check_positive_int
from prunebound.pruning._common import (
    check_sparsity,
    current_masks,
    finetune,
    magnitude_scores,
    make_report,
    masked_scores,
    prepare,
    set_masks,
    smallest_k_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["magnitude", "magnitude_masks"]

_SCOPES = ("std", "layer", "global")


def _std_normalised(net, scores):
    out = []
    for ly, s, m in zip(net.layers, scores, current_masks(net)):
        alive = ly.weight.detach()[m > 0]
        sd = float(alive.double().std()) if alive.numel() > 1 else 1.0
        out.append(s.double() / (sd if sd > 0 else 1.0))
    return out


def magnitude_masks(net, sparsity: float, scope: str = "std") -> tuple[list[torch.Tensor], float | None]:
    """Masks removing the smallest weights at ``sparsity`` (see module docstring); returns (masks, q or
    None)."""
    if scope not in _SCOPES:
        raise InvalidParameterError(f"scope must be one of {_SCOPES}; got {scope!r}")
    scores = magnitude_scores(net)
    if scope == "std":
        norm = masked_scores(net, _std_normalised(net, scores))
        masks = smallest_k_masks(norm, sparsity, "global")
        pruned = torch.cat([n.reshape(-1)[m.reshape(-1) == 0] for n, m in zip(norm, masks)])
        finite = pruned[torch.isfinite(pruned)]
        q = float(finite.max()) if finite.numel() else None
        return masks, q
    return smallest_k_masks(masked_scores(net, scores), sparsity, scope), None


def magnitude(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float | None = 0.9,
    seed: int | None = 0,
    scope: str = "std",
    quality: float | None = None,
    iterations: int = 1,
    epochs: int = 3,
    lr: float = 0.01,
    batch_size: int = 64,
    weight_decay: float = 1e-4,
    optimizer: str = "sgd",
) -> PruneResult:
    """Han et al. (2015) prune-and-retrain.

    ``iterations`` rounds each prune to sparsity ``1 - (1 - sparsity)^(r / iterations)`` (round ``r``) and
    retrain for ``epochs`` epochs on ``data`` with masks fixed (no retraining when ``data`` is None or
    ``epochs == 0``). With ``quality=q`` (``scope="std"`` only, ``sparsity=None``) one round prunes
    ``|w| < q * std(W_l)`` exactly as in the paper.
    """
    net = prepare(module)
    check_positive_int("iterations", iterations)
    check_positive_int("epochs", epochs, minimum=0)
    if quality is not None:
        check_positive("quality", quality)
        if sparsity is not None or scope != "std":
            raise InvalidParameterError(
                f"quality={quality} sets the threshold itself: pass sparsity=None and scope='std' "
                f"(got sparsity={sparsity}, scope={scope!r})"
            )
    else:
        if sparsity is None:
            raise InvalidParameterError("give either sparsity (a fraction in [0, 1)) or quality (> 0)")
        sparsity = check_sparsity(sparsity)
    retrained = None
    q_used: list[float | None] = []
    for r in range(1, iterations + 1):
        if quality is not None:
            scores = _std_normalised(net, magnitude_scores(net))
            masks = [((s >= quality) & (m > 0)).float() for s, m in zip(scores, current_masks(net))]
            q_used.append(float(quality))
        else:
            target = 1.0 - (1.0 - sparsity) ** (r / iterations)
            masks, q = magnitude_masks(net, target if r < iterations else sparsity, scope)
            q_used.append(q)
        set_masks(net, masks)
        rt = finetune(
            net,
            data,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=None if seed is None else seed + r,
            optimizer=optimizer,
            weight_decay=weight_decay,
            what="retrained",
        )
        retrained = retrained if rt is None else f"{rt}; {iterations} prune/retrain round(s)"
    params = dict(
        sparsity=sparsity,
        seed=seed,
        scope=scope,
        quality=quality,
        iterations=iterations,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        optimizer=optimizer,
    )
    return make_report(
        net, "magnitude", sparsity, retrained=retrained, params=params, info={"quality_per_round": q_used}
    )
