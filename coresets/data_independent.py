"""Data-independent neuron coresets (Mussay, Osadchy, Braverman, Zhou, Feldman; ICLR 2020).

For hidden layer ``l`` with neurons ``p = (w_p, b_p)`` and next-layer weights ``u_ip``, "CORESET PER LAYER"
(Algorithm 2, built on Algorithm 1) computes one sensitivity per neuron, shared by all next-layer units,

    s_p = max_i |u_ip| ||p|| / sum_q |u_iq| ||q||,        t = sum_p s_p

(:func:`~prunebound.coresets.sensitivity.neuron_sensitivity_data_independent`), samples ``m = ceil(c t / eps^2
(d log t + log(1/delta_l)))`` neurons i.i.d. from ``s / t`` with ``d = fan_in + 1`` (Theorem 3 via Braverman
et al. 2016, Thm 5.5; :func:`~prunebound.coresets.sampling.epsilon_sample_size`), prunes the others and
reweights ``u~_ip = u_ip count_p / (m q_p)``. Guarantee (Theorem 4, ReLU and other 1-Lipschitz activations
with ``phi(0) = 0``): w.p. >= 1 - delta_l, for *every* input ``x`` with ``||(x, 1)|| <= beta``, ``|z~_i(x) -
z_i(x)| <= eps beta sum_p |u_ip| ||p||`` (an additive error).

No data is needed (``data`` may be ``None``). ``delta`` is split evenly over the ``L - 1`` pruned layers.
Deviation: the paper's universal constant ``c`` is unspecified; it is a parameter (default 1). MLPs only.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.coresets.pfp import channel_step
from prunebound.coresets.prune import finish, prepare, require_linear, set_layer
from prunebound.coresets.sampling import epsilon_sample_size, make_generator
from prunebound.coresets.sensitivity import neuron_sensitivity_data_independent
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import check_positive
from prunebound.pruning.report import PruneResult

__all__ = ["data_independent"]


def data_independent(module: nn.Module, data=None, *, eps: float, delta: float = DEFAULT_DELTA,
                     seed: int | torch.Generator | None = 0, c: float = 1.0, _allow_large_eps: bool = False
                     ) -> PruneResult:
    """Prune hidden neurons of a copy of ``module`` with data-independent coresets."""
    if _allow_large_eps:
        check_positive("eps", eps)
    net, _, before = prepare(module, data, eps=None if _allow_large_eps else eps, delta=delta)
    require_linear(net, "data-independent coresets")
    # a neuron's outgoing weights must be exactly the next layer's columns: on a residual add, a concatenation or
    # a shared layer, removing it would also change what reads it elsewhere, which the guarantee does not cover
    net.require_chain(method="data-independent coresets")
    check_positive("c", c)
    g = make_generator(seed)
    L = len(net.layers)
    d_l = delta / max(L - 1, 1)
    m_l, s_l = [0] * L, [0.0] * L
    for i in range(L - 1):
        prod, cons = net.layers[i], net.layers[i + 1]
        s = neuron_sensitivity_data_independent(prod.weight.detach(), prod.bias, cons.weight.detach())
        t = float(s.sum())
        m = epsilon_sample_size(t, eps=eps, delta=d_l, d=prod.fan_in + 1, c=c)
        keep, scale = channel_step(s, m, g)
        wc = cons.weight.detach()
        set_layer(net, i + 1, (wc.double() * scale[None, :]).to(wc.dtype), keep[None, :].expand_as(wc))
        wp = prod.weight.detach()
        set_layer(net, i, wp, keep[:, None].expand_as(wp))
        m_l[i], s_l[i] = m, t
    return finish(net, before, method="data_independent", eps=eps, delta=delta,
                  eps_l=[eps] * (L - 1) + [0.0], delta_l=[d_l] * (L - 1) + [0.0], m_l=m_l, s_l=s_l,
                  extra={"c": c, "error": "additive: eps * beta * sum_p |u_ip| ||p||"}, relative=False,
                  original=module)
