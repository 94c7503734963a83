"""Shared machinery of the classic pruning methods (private).

Exact-count mask selection (the requested sparsity is met to the weight, ties broken deterministically by
``torch.topk``), structured unit removal (a neuron/channel is removed by masking its incoming row *and* its
outgoing columns in the next weighted layer), fine-tuning with masks fixed, and the report builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prunebound.data import Dataset, as_dataset
from prunebound.errors import DataError, InvalidParameterError, check_probability
from prunebound.network import Network, apply_masks, clone, masks_of, refresh_masked_weights
from prunebound.pruning.report import PruneResult

SCOPES = ("layer", "global")


def prepare(module: nn.Module) -> Network:
    """Deep-copy ``module`` (the caller's model is never modified), validate it and wrap it."""
    if not isinstance(module, nn.Module):
        raise InvalidParameterError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    net = Network.from_module(clone(module))
    net.check_finite()
    return net


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """``sparsity`` must lie in [0, 1): the fraction of weights (or units) to remove."""
    return check_probability(name, sparsity, open_left=False)


UNITS = ("neuron", "weight")


def structured_weight_sparsity(module, u) -> np.ndarray:
    """Weight sparsity after removing ``round(u * n_l)`` units of every hidden layer (vectorised over ``u``).

    Layer ``l`` keeps the fraction ``(1 - r_l / n_l)`` of its rows (if hidden) times ``(1 - r_{l-1} /
    n_{l-1})`` of its columns (if the previous layer is hidden), ``r_l = round(u n_l)`` (as :func:`n_prune`).
    """
    net = module if isinstance(module, Network) else Network.from_module(module)
    u = np.atleast_1d(np.asarray(u, dtype=np.float64))
    sizes = [ly.fan_out for ly in net.layers]
    kept_rows = [1.0 - np.round(u * n) / n for n in sizes[:-1]] + [np.ones_like(u)]
    kept = np.zeros_like(u)
    total = 0
    for i, ly in enumerate(net.layers):
        frac = kept_rows[i] * (kept_rows[i - 1] if i > 0 else 1.0)
        kept += frac * ly.weight.numel()
        total += ly.weight.numel()
    return 1.0 - kept / total


def unit_sparsity_for(module, s: float, *, grid: int = 20_001) -> float:
    """The unit fraction ``u`` (per hidden layer) whose weight sparsity is closest to ``s`` (smallest such
    ``u`` on a ``grid`` over [0, 1))."""
    check_sparsity(s)
    us = np.linspace(0.0, 1.0, grid, endpoint=False)
    ws = structured_weight_sparsity(module, us)
    return float(us[int(np.argmin(np.abs(ws - s)))])


def unit_fraction(net: Network, sparsity: float, unit: str) -> float:
    """Fraction of neurons/channels to remove per hidden layer for a structured method.

    ``unit="neuron"``: ``sparsity`` already is that fraction; ``unit="weight"``: ``sparsity`` is the fraction of
    weights to remove and the unit fraction whose weight sparsity is closest to it is returned
    (:func:`unit_sparsity_for`; exact up to the granularity of one unit per layer)."""
    if unit not in UNITS:
        raise InvalidParameterError(f"unit must be one of {UNITS}; got {unit!r}")
    return sparsity if unit == "neuron" else unit_sparsity_for(net, sparsity)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidParameterError(f"scope must be one of {SCOPES}; got {scope!r}")
    return scope


def require_data(data: Dataset | None, method: str) -> Dataset:
    if data is None:
        raise DataError(f"{method} needs training data: pass data=Dataset(...) (got data=None)")
    return as_dataset(data)


def n_prune(n: int, sparsity: float) -> int:
    """Number of entries to remove out of ``n`` at ``sparsity`` (round half to even, as Python's round)."""
    return int(round(sparsity * n))


def smallest_k_masks(
    scores: Sequence[torch.Tensor], sparsity: float, scope: str = "layer"
) -> list[torch.Tensor]:
    """0/1 masks that remove exactly the lowest-scoring entries.

    ``scope="layer"``: ``round(sparsity * n_l)`` entries of every layer; ``scope="global"``:
    ``round(sparsity * sum_l n_l)`` entries over all layers ranked together (scores must then be comparable).
    Entries that are already pruned should carry score ``-inf`` so they stay pruned and are counted.
    Vectorised with ``torch.topk`` (no threshold, so ties cannot change the count).
    """
    check_scope(scope)
    masks = [torch.ones_like(s, dtype=torch.float32) for s in scores]
    if scope == "layer":
        for s, m in zip(scores, masks):
            k = n_prune(s.numel(), sparsity)
            if k:
                idx = torch.topk(s.reshape(-1).double(), k, largest=False, sorted=False).indices
                m.view(-1)[idx] = 0.0
        return masks
    flat = torch.cat([s.reshape(-1).double() for s in scores])
    k = n_prune(flat.numel(), sparsity)
    if k:
        gm = torch.ones_like(flat, dtype=torch.float32)
        gm[torch.topk(flat, k, largest=False, sorted=False).indices] = 0.0
        pos = 0
        for m in masks:
            n = m.numel()
            m.view(-1).copy_(gm[pos : pos + n])
            pos += n
    return masks


def current_masks(net: Network) -> list[torch.Tensor]:
    mk = masks_of(net)
    return [mk[ly.path].float() for ly in net.layers]


def masked_scores(net: Network, scores: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Set the score of already-pruned weights to ``-inf`` (so they are always among the removed)."""
    return [
        torch.where(m > 0, s.double(), torch.tensor(float("-inf"), dtype=torch.float64))
        for s, m in zip(scores, current_masks(net))
    ]


def magnitude_scores(net: Network) -> list[torch.Tensor]:
    return [ly.weight.detach().abs() for ly in net.layers]


def set_masks(net: Network, masks: Sequence[torch.Tensor]) -> None:
    """Install ``masks`` as the layers' masks. New masks must contain the old pruned set (product == new)."""
    apply_masks(net.module, list(masks))


def finetune(
    net: Network,
    data: Dataset | None,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int | None,
    optimizer: str = "sgd",
    weight_decay: float = 0.0,
    what: str = "fine-tuned",
) -> str | None:
    """Train with the masks fixed (``torch.nn.utils.prune`` keeps masked weights at zero). Returns a
    description."""
    if data is None or epochs == 0:
        return None
    from prunebound.train import fit

    fit(
        net.module,
        data,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        optimizer=optimizer,
        weight_decay=weight_decay,
    )
    return f"{what} all unpruned weights and biases for {epochs} epochs ({optimizer}, lr={lr}), masks fixed"


def penalize_then_prune(
    net: Network,
    data: Dataset,
    regularizer,
    *,
    method: str,
    sparsity: float,
    scope: str,
    epochs: int,
    finetune_epochs: int,
    lr: float,
    batch_size: int,
    seed: int | None,
    desc: str,
    params: dict[str, Any],
    info=None,
) -> PruneResult:
    """Shared recipe of the penalty methods: train ``epochs`` on loss + ``regularizer(module)``, remove the
    smallest-magnitude weights to reach ``sparsity`` (``scope`` global/layer), fine-tune ``finetune_epochs`` with
    the masks fixed, and report. ``info(net)`` (optional) adds method-specific numbers after pruning."""
    from prunebound.train import fit

    fit(net.module, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, regularizer=regularizer)
    set_masks(net, smallest_k_masks(masked_scores(net, magnitude_scores(net)), sparsity, scope))
    rt = finetune(net, data, epochs=finetune_epochs, lr=lr, batch_size=batch_size,
                  seed=None if seed is None else seed + 1)
    return make_report(net, method, sparsity, retrained=desc if rt is None else f"{desc}; {rt}",
                       params=params, info=info(net) if info is not None else None)


def make_report(
    net: Network,
    method: str,
    requested: float | None,
    *,
    retrained: str | None,
    params: dict[str, Any],
    info: dict[str, Any] | None = None,
    unit: str = "weight",
) -> PruneResult:
    """Build the :class:`PruneResult`, reading sparsity from the installed masks (biases excluded)."""
    unmasked = {ly.path: torch.ones_like(ly.weight) for ly in net.layers if ly.mask is None}
    if unmasked:  # every weighted layer carries a torch prune mask, even when nothing was removed there
        apply_masks(net.module, unmasked)
    refresh_masked_weights(net.module)  # a detached cached weight keeps the module deep-copyable
    mk = masks_of(net)
    per, zeros, tot = {}, 0, 0
    for ly in net.layers:
        m = mk[ly.path]
        z = int((m == 0).sum())
        per[ly.path] = z / m.numel()
        zeros += z
        tot += m.numel()
    net.module.eval()
    return PruneResult(
        net.module, method, requested, per, zeros / tot, retrained, dict(params), dict(info or {}), unit
    )


# ---------------------------------------------------------------------------------------- structured removal
def hidden_layers(net: Network, method: str = "structured unit removal (apoz, neuron_merging, lasso_channel)"
                  ) -> list[int]:
    """Indices of the weighted layers whose units can be removed (every layer but the last).

    Removing a unit masks the columns of the *next* weighted layer that read it, so the graph must be a chain
    (:meth:`~prunebound.network.Network.require_chain`): no residual add, concatenation or shared layer."""
    net.require_chain(method=method)
    return list(range(len(net.layers) - 1))


def unit_columns(net: Network, i: int) -> torch.Tensor:
    """For unit (neuron/channel) ``c`` of layer ``i``: the columns of layer ``i+1``'s ``(fan_out, fan_in)``
    weight matrix that read it, as an ``(n_units, group)`` index tensor.

    Supports ``Linear -> Linear``, ``Conv -> Conv`` (group = kernel size) and ``Conv -> Flatten -> Linear``
    (group = spatial positions; channel-major flatten order), with pooling in between.
    """
    n = net.layers[i].fan_out
    nxt = net.layers[i + 1]
    fan_in = nxt.fan_in
    if fan_in % n:
        raise InvalidParameterError(
            f"layer {nxt.path!r} has fan-in {fan_in}, not a multiple of the {n} units of layer "
            f"{net.layers[i].path!r}; cannot map units to its columns"
        )
    g = fan_in // n
    return torch.arange(fan_in).reshape(n, g)


def unit_masks(net: Network, removed: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    """Masks that remove units ``removed[i]`` (index tensors) of layer ``i``: rows in ``i``, columns in
    ``i+1``."""
    masks = current_masks(net)
    for i, units in removed.items():
        if units.numel() == 0:
            continue
        masks[i].reshape(masks[i].shape[0], -1)[units] = 0.0
        cols = unit_columns(net, i)[units].reshape(-1)
        masks[i + 1].reshape(masks[i + 1].shape[0], -1)[:, cols] = 0.0
    return masks


def removed_units(net: Network) -> dict[str, list[int]]:
    """Units whose incoming row is entirely masked, per layer path (for reports)."""
    out = {}
    for ly, m in zip(net.layers, current_masks(net)):
        rows = m.reshape(m.shape[0], -1)
        out[ly.path] = torch.nonzero(rows.sum(1) == 0).reshape(-1).tolist()
    return out
