"""PFP: provable filter (and neuron) pruning (Liebenwein, Baykal, Lang, Feldman, Rus; ICLR 2020).

For every pair (producer layer ``l``, consumer layer ``l+1``) the producer's channels (neurons of a Linear
layer, filters of a Conv layer) get the empirical sensitivity ``s_j = max_{x in S} max_{i,p} c_ijp(x) / sum_k
c_ikp(x)`` of their contribution to each consumer unit ``i`` and patch ``p``
(:func:`~prunebound.coresets.sensitivity.channel_sensitivity`), ``S_l = sum_j s_j``. PFP samples ``m_l =
ceil(K (6 + 2 eps) S_l log(8 eta / delta) / eps^2)`` channels i.i.d. from ``q_j = s_j / S_l`` (Algorithm 1;
Bernstein form, :func:`~prunebound.coresets.sampling.bernstein_sample_size`), keeps the sampled filters,
zeroes the rest (producer rows *and* consumer input slices) and rescales the consumer's input slice of channel
``j`` by ``count_j / (m_l q_j)``, so every consumer pre-activation is unbiased. Guarantee (Theorem 1): w.p. >=
1 - delta/eta per unit, ``|z~_i(x) - z_i(x)| <= eps sum_j c_ij(x)``.

Budget allocation (Sec. 3): one ``eps`` for all layers, set by bisection on ``eps`` to meet a size budget
(what :func:`prunebound.coresets.prune` does with ``keep_ratio``). Supports Linear and Conv1d/Conv2d consumers
(Linear after Flatten groups its inputs channel-major). Layers are processed from the input forward. A layer
whose ``m_l`` reaches its number of candidate channels is kept whole.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.coresets.guarantee import Guarantee
from prunebound.coresets.prune import finish, prepare, sensitivity_batch, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, importance_sample, make_generator
from prunebound.coresets.sensitivity import channel_sensitivity
from prunebound.errors import DataError, InvalidParameterError, check_positive

__all__ = ["pfp", "channel_step"]


def channel_step(q: torch.Tensor, m: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``m`` channels from sensitivities ``q`` (unnormalised). Returns ``(keep 0/1, scale)``."""
    q = q.detach().double()
    nnz = int((q > 0).sum())
    if m >= nnz:
        keep = (q > 0).double()
        return keep, keep.clone()
    counts = importance_sample(q[None], torch.tensor([m]), generator)[0]
    p = q / q.sum()
    scale = torch.where(counts > 0, counts / (m * p.clamp_min(1e-300)), torch.zeros_like(counts))
    return (counts > 0).double(), scale


def pfp(module: nn.Module, data, *, eps: float, delta: float = 0.1, seed: int | torch.Generator | None = 0,
        K: float = 3.0, n_points: int = 128, _allow_large_eps: bool = False) -> tuple[nn.Module, Guarantee]:
    """Prune whole neurons/filters of a copy of ``module`` with PFP."""
    if _allow_large_eps:
        check_positive("eps", eps)
    net, x, before = prepare(module, data, eps=None if _allow_large_eps else eps, delta=delta)
    if x is None:
        raise DataError("PFP is data-informed: pass data (a Dataset or input tensor)")
    eta = sum(ly.fan_out for ly in net.layers)
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points, g)
    L = len(net.layers)
    m_l, s_l = [0] * L, [0.0] * L
    for i in range(L - 1):
        prod, cons = net.layers[i], net.layers[i + 1]
        C = prod.fan_out
        if cons.kind != "linear" and cons.kind != prod.kind:
            raise InvalidParameterError(
                f"PFP cannot map channels of {prod.kind} {prod.path!r} to {cons.kind}")
        a = net.trace(S).inputs[i + 1]
        conv = None
        if cons.kind != "linear":
            mod = cons.module
            conv = {"stride": mod.stride, "padding": mod.padding, "dilation": mod.dilation}
            if isinstance(mod.padding, str):
                raise InvalidParameterError(
                    f"PFP needs numeric padding in {cons.path!r}; got {mod.padding!r}")
        s = channel_sensitivity(cons.weight.detach(), a, cons.kind, C, conv)
        tot = float(s.double().sum())
        m = int(bernstein_sample_size(tot, eps=eps, delta=delta, eta=eta, K=K))
        keep, scale = channel_step(s, m, g)
        wc = cons.weight.detach()
        shape = (wc.shape[0], C, -1)
        new_c = (wc.reshape(shape).double() * scale[None, :, None]).reshape(wc.shape).to(wc.dtype)
        mask_c = (keep[None, :, None].expand(wc.shape[0], C, wc.reshape(shape).shape[2])).reshape(wc.shape)
        set_layer(net, i + 1, new_c, mask_c)
        wp = prod.weight.detach()
        mask_p = keep.reshape((-1,) + (1,) * (wp.dim() - 1)).expand_as(wp).to(wp.dtype)
        set_layer(net, i, wp, mask_p)
        m_l[i], s_l[i] = m, tot
    return finish(net, before, method="pfp", eps=eps, delta=delta, eps_l=[eps] * (L - 1) + [0.0],
                  delta_l=[delta / eta] * L, m_l=m_l, s_l=s_l,
                  extra={"eta": eta, "K": K, "n_points_used": int(S.shape[0]),
                         "channels_kept": [int((ly.weight.reshape(ly.fan_out, -1) != 0).any(1).sum())
                                           for ly in net.layers]})
