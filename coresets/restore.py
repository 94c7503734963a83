"""Map a coreset computed on the BatchNorm-folded network back onto the user's own module (BatchNorm kept).

Coresets compute on :class:`~prunebound.network.Network`, which folds every ``BatchNorm`` (eval mode) into the
weighted layer before it: with ``s = gamma / sqrt(var + eps)`` per output channel, the folded layer computes
``W' x + c'`` with ``W' = s * W`` (row ``i`` scaled by ``s_i``) and ``c' = s * (c - mu) + beta``
(:func:`~prunebound.network.fold_batchnorm`). Sensitivities and sampling therefore see exactly the function
the user's eval-mode module computes. A coreset changes only weights: it returns a mask ``M`` and a
reweighted ``W~'`` (``weight_orig``) with effective weight ``M * W~'``. Since ``s`` scales whole rows,

    BN(M * (W~' / s) x + c) = s * (M * W~' / s) x + s (c - mu) + beta = M * W~' x + c',

so the user's layer gets ``weight_orig = W~' / s`` and the same ``weight_mask`` (``torch.nn.utils.prune``
style), with its bias and the BatchNorm (affine parameters and running statistics) untouched: the returned
module is a copy of the user's module, same classes, computing the pruned folded function (up to rounding).
A row with ``s_i = 0`` feeds nothing through the BatchNorm (its output is ``beta_i``); it keeps its weights.
"""

from __future__ import annotations

import torch
import torch.nn.utils.prune as tprune
from torch import nn

from prunebound.graph import capture
from prunebound.network import Network, clone, is_pruned, refresh_masked_weights

__all__ = ["batchnorm_scales", "to_user_module"]


def batchnorm_scales(module: nn.Module) -> dict[str, torch.Tensor]:
    """``{path of a weighted layer: s}`` for every layer followed by a BatchNorm, ``s = gamma / sqrt(var + eps)``
    (``1 / sqrt(var + eps)`` without affine parameters), as :func:`~prunebound.network.fold_batchnorm` uses."""
    g = capture(module)
    out: dict[str, torch.Tensor] = {}
    for n in g.nodes:
        if not n.kind.startswith("batchnorm"):
            continue
        bn = module.get_submodule(n.path)
        s = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        if bn.affine:
            s = s * bn.weight.detach().double()
        out[g.node(n.inputs[0]).path] = s
    return out


def to_user_module(folded: Network, original: nn.Module) -> nn.Module:
    """A copy of ``original`` whose weighted layers carry the masks and (un-folded) reweighted weights of the
    pruned ``folded`` network (see module docstring). Without BatchNorm in ``original`` this is just a copy of
    ``folded.module``'s masks and weights on ``original``'s classes (identical values)."""
    out = clone(original)
    scales = batchnorm_scales(out)
    with torch.no_grad():
        for ly in folded.layers:
            src = ly.module
            dst = out.get_submodule(ly.path)
            mask = src.weight_mask.detach() if is_pruned(src) else torch.ones_like(src.weight)
            w = (src.weight_orig if is_pruned(src) else src.weight).detach()
            old = (dst.weight_orig if is_pruned(dst) else dst.weight).detach()
            s = scales.get(ly.path)
            if s is not None:
                shape = (-1,) + (1,) * (w.dim() - 1)
                s = s.reshape(shape)
                w = torch.where(s != 0, w.double() / torch.where(s != 0, s, torch.ones_like(s)), old.double())
            w = w.to(old.dtype)
            if is_pruned(dst):  # the folded mask already is the product with the user's old mask
                dst.weight_mask.copy_(mask.to(dst.weight_mask.dtype))
            else:
                tprune.custom_from_mask(dst, "weight", mask.to(old.dtype))
            dst.weight_orig.copy_(w)
    return refresh_masked_weights(out)
