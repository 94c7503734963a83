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

from dataclasses import dataclass

import torch
from torch import nn

from prunebound.coresets.keep_ratio import RowKeep
from prunebound.coresets.prune import finish, prepare, sensitivity_batch, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, importance_sample, make_generator
from prunebound.coresets.sensitivity import channel_sensitivity
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_probability
from prunebound.network import Network, clone
from prunebound.pruning.report import PruneResult

__all__ = ["pfp", "pfp_plan", "PFPPlan", "channel_step"]


def channel_step(q: torch.Tensor, m: int, seed: int | torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``m`` channels from sensitivities ``q`` (unnormalised). Returns ``(keep 0/1, scale)``."""
    q = q.detach().double()
    nnz = int((q > 0).sum())
    if m >= nnz:
        keep = (q > 0).double()
        return keep, keep.clone()
    counts = importance_sample(q[None], torch.tensor([m]), seed)[0]
    p = q / q.sum()
    scale = torch.where(counts > 0, counts / (m * p.clamp_min(1e-300)), torch.zeros_like(counts))
    return (counts > 0).double(), scale


def _conv_args(cons, prod) -> dict | None:
    if cons.kind != "linear" and cons.kind != prod.kind:
        raise InvalidParameterError(f"PFP cannot map channels of {prod.kind} {prod.path!r} to {cons.kind}")
    if cons.kind == "linear":
        return None
    mod = cons.module
    if isinstance(mod.padding, str):
        raise InvalidParameterError(f"PFP needs numeric padding in {cons.path!r}; got {mod.padding!r}")
    return {"stride": mod.stride, "padding": mod.padding, "dilation": mod.dilation}


@dataclass
class PFPPlan:
    """Everything of a PFP run that does not depend on ``eps`` (computed once per keep-ratio search)."""

    net: Network
    S: torch.Tensor
    gen_state: torch.Tensor
    before: int
    eta: int
    K: float
    delta: float
    sens: list  # channel sensitivities of each producer on the dense network
    keep: list  # RowKeep of each producer's channel distribution
    nz: list  # per layer: non-zeros per (output channel, input channel), (out, C_prev) (C_prev = 1 at layer 0)
    original: nn.Module | None = None  # the user's module: the result is returned on its architecture

    def kept_fraction(self, eps: float) -> float:
        """Expected kept weights: layer l keeps weight (j, k) iff output channel j and input channel k are
        kept; the two channel samplings are independent."""
        L = len(self.nz)
        p = []
        for rk in self.keep:
            m = bernstein_sample_size(rk.tot, eps=eps, delta=self.delta, eta=self.eta, K=self.K)
            p.append(rk.keep_probability(m)[0])
        kept = 0.0
        for i in range(L):
            out_p = p[i] if i < L - 1 else torch.ones(self.nz[i].shape[0], dtype=torch.float64)
            in_p = p[i - 1] if i > 0 else torch.ones(self.nz[i].shape[1], dtype=torch.float64)
            kept += float(out_p @ self.nz[i] @ in_p)
        return kept / self.before


def pfp_plan(module: nn.Module, data, *, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
             K: float = 3.0, n_points: int = 128) -> PFPPlan:
    """Validate, draw S and compute the dense network's channel sensitivities (independent of ``eps``)."""
    net, x, before = prepare(module, data, eps=None, delta=delta)
    if x is None:
        raise DataError("PFP is data-informed: pass data (a Dataset or input tensor)")
    eta = sum(ly.fan_out for ly in net.layers)
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points, g)
    tr = net.trace(S)
    L = len(net.layers)
    sens, nz = [], []
    for i in range(L):
        ly = net.layers[i]
        cprev = net.layers[i - 1].fan_out if i > 0 else 1
        nz.append((ly.weight.detach().reshape(ly.fan_out, cprev, -1) != 0).sum(-1).double())
        if i < L - 1:
            prod, cons = ly, net.layers[i + 1]
            conv = _conv_args(cons, prod)
            sens.append(channel_sensitivity(cons.weight.detach(), tr.inputs[i + 1], cons.kind, prod.fan_out, conv))
    return PFPPlan(net=net, S=S, gen_state=g.get_state(), before=before, eta=eta, K=K, delta=delta, sens=sens,
                   keep=[RowKeep(s[None]) for s in sens], nz=nz, original=module)


def pfp(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
        K: float = 3.0, n_points: int = 128, _allow_large_eps: bool = False, _plan: PFPPlan | None = None
        ) -> PruneResult:
    """Prune whole neurons/filters of a copy of ``module`` with PFP."""
    if _allow_large_eps:
        check_positive("eps", eps)
    else:
        check_probability("eps", eps)
    plan = _plan or pfp_plan(module, data, delta=delta, seed=seed, K=K, n_points=n_points)
    net = Network.from_module(clone(plan.net.module))
    g = torch.Generator()
    g.set_state(plan.gen_state)
    eta, S = plan.eta, plan.S
    L = len(net.layers)
    m_l, s_l = [0] * L, [0.0] * L
    for i in range(L - 1):
        prod, cons = net.layers[i], net.layers[i + 1]
        C = prod.fan_out
        if i == 0:
            s = plan.sens[0]
        else:
            s = channel_sensitivity(cons.weight.detach(), net.trace(S).inputs[i + 1], cons.kind, C,
                                    _conv_args(cons, prod))
        tot = float(s.double().sum())
        m = int(bernstein_sample_size(tot, eps=eps, delta=plan.delta, eta=eta, K=plan.K))
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
    return finish(net, plan.before, method="pfp", eps=eps, delta=plan.delta, eps_l=[eps] * (L - 1) + [0.0],
                  delta_l=[plan.delta / eta] * L, m_l=m_l, s_l=s_l,
                  extra={"eta": eta, "K": plan.K, "n_points_used": int(S.shape[0]),
                         "channels_kept": [int((ly.weight.reshape(ly.fan_out, -1) != 0).any(1).sum())
                                           for ly in net.layers]},
                  original=plan.original)
