"""Check a coreset's per-layer guarantee on held-out inputs (Baykal et al. 2019; Liebenwein et al. 2020).

CoreNet, SiPP and PFP (and their hybrids) state, for every weighted layer ``l`` they sampled and every case
(input ``x``, output unit ``i``; for a convolution, an output channel at one position),

    |z~_i(x) - z_i(x)| <= eps_l * sum_j |w_ij a_j(x)|

with probability ``>= 1 - delta / eta``, where ``a(x)`` is the layer's input *as it was when the layer was
sampled* (the network with every earlier layer already pruned), ``w`` the dense weights and ``z~`` the
pre-activation with the sampled weights. :func:`held_out_violations` counts the cases on fresh inputs where
the inequality fails; a one-sided binomial test of "rate <= delta" on ``(violations, cases)`` is then the
statistical check of the theorem (``scipy.stats.binomtest(v, n, delta, alternative="greater")``).

For PFP a producer's filters are masked *after* its consumer drew its input channels: the consumer ignores the
removed channels, but its reference input had them, so the producer's rows are un-masked for the check (its own
input-channel mask is kept).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from prunebound.coresets.patches import layer_input, layer_points
from prunebound.coresets.pfp import channel_pairs
from prunebound.network import Network, clone
from prunebound.pruning.report import PruneResult

__all__ = ["HeldOutCheck", "held_out_violations"]


class HeldOutCheck(NamedTuple):
    """``violations`` of the per-layer statement among ``cases`` held-out cases over ``layers`` checked layers."""

    violations: int
    cases: int
    layers: int


def _as_sampled(result: PruneResult) -> Network:
    if not result.method.startswith("pfp"):
        return Network.from_module(result.module)
    net = Network.from_module(clone(result.module))
    for pair in channel_pairs(net):
        if pair.producer is None:
            continue
        m = net.layers[pair.producer].module
        mk = m.weight_mask
        cols = mk.reshape(mk.shape[0], -1).amax(0)  # an input slot is kept iff some row keeps it
        with torch.no_grad():
            mk.copy_(cols.reshape(mk.shape[1:]).expand_as(mk))
            m.weight = m.weight_orig * m.weight_mask
    return net


def held_out_violations(result: PruneResult, dense: nn.Module, x: torch.Tensor, *, claim: float = 1.0,
                        only_sparsified: bool = True) -> HeldOutCheck:
    """Count held-out cases violating ``|z~ - z| <= claim * eps_l * sum_j |w_ij a_j|`` (module docstring).

    ``result``: a coreset :class:`PruneResult` (its ``guarantee.eps_per_layer``); ``dense``: the module it was
    pruned from; ``x``: fresh inputs. Layers with ``eps_l = 0`` are skipped, and with ``only_sparsified`` also
    layers the method left without a new zero (exact up to the rounding of folding BatchNorm back and forth).
    ``claim < 1`` states a deliberately smaller error, to check that the test has power. Cases with
    ``sum_j |w_ij a_j| = 0`` are not counted; ``1e-4`` absolute slack absorbs float32 rounding.
    ``result.module`` is not modified (PFP's un-masking works on a copy)."""
    pruned, ref = _as_sampled(result), Network.from_module(dense)
    eps_l = result.guarantee.eps_per_layer
    v = n = checked = 0
    for i, (lp, ld) in enumerate(zip(pruned.layers, ref.layers)):
        w_new, w = lp.weight_matrix().double(), ld.weight_matrix().double()
        if eps_l[i] <= 0 or (only_sparsified and not bool((w_new == 0).sum() > (w == 0).sum())):
            continue
        checked += 1
        a = layer_points(lp, layer_input(pruned, i, x)).double()
        err = (a @ (w_new - w).T).abs()
        scale = a.abs() @ w.abs().T
        ok = scale > 0
        v += int(((err > (claim * eps_l[i] + 1e-4) * scale) & ok).sum())
        n += int(ok.sum())
    return HeldOutCheck(v, n, checked)

