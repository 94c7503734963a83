"""Baselines with the coreset API: uniform sampling and magnitude pruning (layer-wise and global).

* :func:`uniform` -- per neuron, ``m`` i.i.d. uniform draws over its non-zero incoming edges, reweighted by
  ``count / (m / n)`` (unbiased, like the coreset samplers but blind to sensitivity); ``m`` is chosen so the
  expected number of distinct kept edges is ``keep_ratio * n`` (``keep_ratio = 1 - sparsity``):
  ``m = log(1 - keep) / log(1 - 1/n)``.
* :func:`magnitude_layerwise` / :func:`magnitude_global` -- keep the largest ``|w|`` per layer / over the
  whole network (Han et al. 2015), no reweighting.

Each takes ``sparsity`` (fraction of non-zero weights removed) or its complement ``keep_ratio`` and returns a
:class:`~prunebound.pruning.PruneResult`. They guarantee nothing: its :class:`Guarantee` has ``eps=None`` and
``guaranteed=False``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunebound.coresets.prune import finish, prepare, set_layer
from prunebound.coresets.sampling import make_generator, sparsify_rows
from prunebound.defaults import DEFAULT_DELTA, resolve_keep_ratio
from prunebound.errors import check_probability
from prunebound.pruning.report import PruneResult

__all__ = ["uniform", "magnitude_layerwise", "magnitude_global"]


def _empty(L):
    return [0.0] * L


def uniform(module: nn.Module, data=None, *, sparsity: float | None = None, keep_ratio: float | None = None,
            delta: float = DEFAULT_DELTA,
            seed: int | torch.Generator | None = 0) -> PruneResult:
    """Uniform edge sampling per neuron with unbiased reweighting."""
    keep = check_probability("keep_ratio", resolve_keep_ratio(sparsity, keep_ratio), open_right=False)
    net, _, before = prepare(module, data, eps=None, delta=delta)
    g = make_generator(seed)
    m_l = []
    for i, ly in enumerate(net.layers):
        w = ly.weight_matrix().detach()
        s = (w != 0).double()
        n = s.sum(1)
        if keep >= 1.0:
            m = n.to(torch.int64)
        else:
            m = torch.where(n > 1, torch.ceil(math.log(1 - keep) / torch.log1p(-1.0 / n.clamp_min(2))), n)
            m = m.to(torch.int64)
        new_w, mask = sparsify_rows(w, s, m, g, dense_when_saturated=keep >= 1.0)
        set_layer(net, i, new_w, mask)
        m_l.append(int(m.sum()))
    L = len(net.layers)
    return finish(net, before, method="uniform", eps=None, delta=delta, eps_l=_empty(L), delta_l=_empty(L),
                  m_l=m_l, s_l=_empty(L), guaranteed=False, extra={"target_keep_ratio": keep}, requested=1.0 - keep,
                  original=module)


def magnitude_layerwise(module: nn.Module, data=None, *, sparsity: float | None = None, keep_ratio: float | None = None,
            delta: float = DEFAULT_DELTA,
                        seed: int | torch.Generator | None = 0) -> PruneResult:
    """Keep the ``ceil(keep_ratio * nnz_l)`` largest-magnitude weights of each layer."""
    keep = check_probability("keep_ratio", resolve_keep_ratio(sparsity, keep_ratio), open_right=False)
    net, _, before = prepare(module, data, eps=None, delta=delta)
    for i, ly in enumerate(net.layers):
        w = ly.weight.detach()
        a = w.abs().reshape(-1)
        k = int(math.ceil(keep * int((a > 0).sum())))
        mask = torch.zeros_like(a)
        if k > 0:
            mask[torch.topk(a, k).indices] = 1.0
        set_layer(net, i, w, mask.reshape(w.shape))
    L = len(net.layers)
    return finish(net, before, method="magnitude", eps=None, delta=delta, eps_l=_empty(L), delta_l=_empty(L),
                  m_l=[0] * L, s_l=_empty(L), guaranteed=False, extra={"target_keep_ratio": keep}, requested=1.0 - keep,
                  original=module)


def magnitude_global(module: nn.Module, data=None, *, sparsity: float | None = None, keep_ratio: float | None = None,
            delta: float = DEFAULT_DELTA,
                     seed: int | torch.Generator | None = 0) -> PruneResult:
    """Keep the ``ceil(keep_ratio * nnz)`` largest-magnitude weights of the whole network."""
    keep = check_probability("keep_ratio", resolve_keep_ratio(sparsity, keep_ratio), open_right=False)
    net, _, before = prepare(module, data, eps=None, delta=delta)
    flat = torch.cat([ly.weight.detach().abs().reshape(-1) for ly in net.layers])
    k = int(math.ceil(keep * int((flat > 0).sum())))
    thr = torch.topk(flat, k).values.min() if k > 0 else torch.tensor(float("inf"))
    for i, ly in enumerate(net.layers):
        w = ly.weight.detach()
        set_layer(net, i, w, ((w.abs() >= thr) & (w != 0)).to(w.dtype))
    L = len(net.layers)
    return finish(net, before, method="magnitude_global", eps=None, delta=delta, eps_l=_empty(L),
                  delta_l=_empty(L), m_l=[0] * L, s_l=_empty(L), guaranteed=False,
                  extra={"target_keep_ratio": keep}, requested=1.0 - keep,
                  original=module)
