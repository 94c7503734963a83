"""PFP: provable filter (and neuron) pruning (Liebenwein, Baykal, Lang, Feldman, Rus; ICLR 2020).

PFP samples the *input channels* of a layer (the consumer): channel ``j`` of consumer ``l`` (a feature map
of a Conv layer's input, a group of a Linear layer's inputs) gets the empirical sensitivity ``s_j = max_{x in
S} max_{i,p} c_ijp(x) / sum_k c_ikp(x)`` of its contribution ``c_ijp(x) = sum_kernel |w_ij.| |a_j.(x)|_p`` to
each consumer unit ``i`` and patch ``p`` (:func:`~prunebound.coresets.sensitivity.channel_sensitivity`),
``S_l = sum_j s_j``. PFP samples ``m_l = ceil(K (6 + 2 eps) S_l log(8 eta / delta) / eps^2)`` channels i.i.d.
from ``q_j = s_j / S_l`` (Algorithm 1; Bernstein form,
:func:`~prunebound.coresets.sampling.bernstein_sample_size`), zeroes the consumer's input slices of the
channels not drawn and rescales the slice of channel ``j`` by ``count_j / (m_l q_j)``, so every consumer
pre-activation is unbiased. Guarantee (Theorem 1): w.p. >= 1 - delta/eta per unit (a conv unit is one output
channel at one position; ``eta`` counts them), on the consumer's input ``a(x)``,
``|z~_i(x) - z_i(x)| <= eps sum_j c_ij(x)``.

Producers (filters). Where the consumer's input channel ``j`` is the output channel ``j`` of one weighted
layer (the producer) through channel-wise ops only (activation, folded BatchNorm, pooling, dropout, flatten)
and nothing else reads that path, the channels not drawn are never read: the producer's filters ``j`` are
removed too (masked rows) -- this is filter pruning. Where the consumer's input is a merge (``add`` of a
residual block, ``cat``, ``pad`` of an option-A shortcut) or feeds other layers as well, a removed filter
would change what the other readers see, so only the consumer's input slices are pruned. On a CIFAR ResNet
this prunes the filters of each block's first conv (their only reader is the block's second conv) and the
input channels of every other layer, the way filter pruning is applied to residual networks. Layers fed by
the network input are not sampled (raw input channels are kept).

Budget allocation (Sec. 3): one ``eps`` for all layers, set by bisection on ``eps`` to meet a size budget
(what :func:`prunebound.coresets.prune` does with ``keep_ratio``). Supports Linear and Conv1d/Conv2d consumers
(Linear after Flatten groups its inputs channel-major by the producer's channels). Consumers are processed
from the input forward (sensitivities on the already pruned earlier layers). A consumer whose ``m_l`` reaches
its number of candidate channels is kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunebound.coresets.keep_ratio import RowKeep
from prunebound.coresets.patches import layer_input, neurons_per_layer
from prunebound.coresets.prune import finish, prepare, sensitivity_batch, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, importance_sample, make_generator
from prunebound.coresets.sensitivity import channel_sensitivity
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_probability
from prunebound.network import Network, clone
from prunebound.pruning.report import PruneResult

__all__ = ["pfp", "pfp_plan", "PFPPlan", "ChannelPair", "channel_pairs", "channel_step"]


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


#: ops that act on each channel separately (BatchNorm is folded into an ``identity`` node); ``reshape``/``flatten``
#: only in front of a Linear consumer, whose inputs are then grouped channel-major
_CHANNELWISE = ("relu", "leakyrelu", "gelu", "silu", "tanh", "sigmoid", "identity", "dropout", "maxpool1d",
                "maxpool2d", "avgpool1d", "avgpool2d", "adaptiveavgpool1d", "adaptiveavgpool2d", "adaptivemaxpool1d",
                "adaptivemaxpool2d")
_FLATTENING = ("flatten", "reshape")


@dataclass(frozen=True)
class ChannelPair:
    """One sampled layer of PFP: ``consumer`` (layer index) has ``n_channels`` input channels; ``producer`` is
    the layer whose filters are removed with them, or ``None`` (input slices only; see module docstring)."""

    consumer: int
    n_channels: int
    producer: int | None


def channel_pairs(net: Network) -> list[ChannelPair]:
    """The consumers PFP samples and their producers, read from the captured graph (see module docstring)."""
    g = net.graph
    first_call = {ly.node: ly.index for ly in net.layers}
    pairs = []
    for ly in net.layers:
        if ly.shared:  # one module on several inputs: its channels are not one set of feature maps
            continue
        cur, private = g.node(ly.node).inputs[0], True
        while True:
            n = g.node(cur)
            ok = n.kind in _CHANNELWISE or (ly.kind == "linear" and n.kind in _FLATTENING)
            if n.weighted or not ok or len(n.inputs) != 1:
                break
            private = private and len(g.users(cur)) == 1
            cur = n.inputs[0]
        n = g.node(cur)
        if n.kind == "input":
            continue  # raw input channels are not pruned
        m = ly.module
        c_in = m.in_features if ly.kind == "linear" else m.in_channels
        prod = first_call.get(n.name) if n.weighted else None
        if prod is not None and net.layers[prod].shared:
            prod = None
        n_ch = c_in
        if prod is not None:
            c_prod = net.layers[prod].fan_out
            if ly.kind == "linear" and c_in % c_prod == 0:
                n_ch = c_prod
            elif c_prod != c_in:
                prod = None
        if prod is not None and not (private and len(g.users(cur)) == 1):
            prod = None
        pairs.append(ChannelPair(ly.index, n_ch, prod))
    return pairs


def _conv_args(cons) -> dict | None:
    if cons.kind == "linear":
        return None
    mod = cons.module
    if isinstance(mod.padding, str):
        if mod.padding != "valid":
            raise InvalidParameterError(f"PFP needs numeric padding in {cons.path!r}; got {mod.padding!r}")
        return {"stride": mod.stride, "padding": (0,) * len(mod.stride), "dilation": mod.dilation}
    return {"stride": mod.stride, "padding": mod.padding, "dilation": mod.dilation}


def _sensitivity(net: Network, pair: ChannelPair, S: torch.Tensor) -> torch.Tensor:
    cons = net.layers[pair.consumer]
    return channel_sensitivity(cons.weight.detach(), layer_input(net, pair.consumer, S), cons.kind,
                               pair.n_channels, _conv_args(cons))


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
    pairs: list  # ChannelPair per sampled consumer, in topological order
    sens: list  # channel sensitivities of each pair's consumer on the dense network
    keep: list  # RowKeep of each pair's channel distribution
    nz: list  # per layer: non-zeros per (output channel, input channel), (out, C_in) (C_in = 1 if not sampled)
    original: nn.Module | None = None  # the user's module: the result is returned on its architecture

    def kept_fraction(self, eps: float) -> float:
        """Expected kept weights: weight (j, k) of a layer is kept iff its output channel j (when it is a
        producer) and its input channel k (when it is a consumer) are drawn; the samplings are independent."""
        L = len(self.nz)
        p_in = [torch.ones(self.nz[i].shape[1], dtype=torch.float64) for i in range(L)]
        p_out = [torch.ones(self.nz[i].shape[0], dtype=torch.float64) for i in range(L)]
        for pair, rk in zip(self.pairs, self.keep):
            m = bernstein_sample_size(rk.tot, eps=eps, delta=self.delta, eta=self.eta, K=self.K)
            p = rk.keep_probability(m)[0]
            p_in[pair.consumer] = p
            if pair.producer is not None:
                p_out[pair.producer] = p
        kept = sum(float(p_out[i] @ self.nz[i] @ p_in[i]) for i in range(L))
        return kept / self.before


def pfp_plan(module: nn.Module, data, *, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
             K: float = 3.0, n_points: int = 128) -> PFPPlan:
    """Validate, draw S and compute the dense network's channel sensitivities (independent of ``eps``)."""
    net, x, before = prepare(module, data, eps=None, delta=delta)
    if x is None:
        raise DataError("PFP is data-informed: pass data (a Dataset or input tensor)")
    eta = sum(neurons_per_layer(net, x))
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points, g)
    pairs = channel_pairs(net)
    c_in = {p.consumer: p.n_channels for p in pairs}
    nz = [(ly.weight.detach().reshape(ly.fan_out, c_in.get(ly.index, 1), -1) != 0).sum(-1).double()
          for ly in net.layers]
    sens = [_sensitivity(net, p, S) for p in pairs]
    return PFPPlan(net=net, S=S, gen_state=g.get_state(), before=before, eta=eta, K=K, delta=delta, pairs=pairs,
                   sens=sens, keep=[RowKeep(s[None]) for s in sens], nz=nz, original=module)


def pfp(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
        K: float = 3.0, n_points: int = 128, _allow_large_eps: bool = False, _plan: PFPPlan | None = None
        ) -> PruneResult:
    """Prune whole filters/neurons (and input channels; see module docstring) of a copy of ``module`` with PFP.

    ``eps_per_layer[l]`` is ``eps`` for a sampled consumer (its statement is about its pre-activations on its
    input) and 0 for a layer that is not sampled."""
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
    m_l, s_l, e_l = [0] * L, [0.0] * L, [0.0] * L
    changed = False
    for k, pair in enumerate(plan.pairs):
        cons, C = net.layers[pair.consumer], pair.n_channels
        s = _sensitivity(net, pair, S) if changed else plan.sens[k]
        tot = float(s.double().sum())
        m = int(bernstein_sample_size(tot, eps=eps, delta=plan.delta, eta=eta, K=plan.K))
        keep, scale = channel_step(s, m, g)
        wc = cons.weight.detach()
        shape = (wc.shape[0], C, -1)
        new_c = (wc.reshape(shape).double() * scale[None, :, None]).reshape(wc.shape).to(wc.dtype)
        mask_c = (keep[None, :, None].expand(wc.shape[0], C, wc.reshape(shape).shape[2])).reshape(wc.shape)
        set_layer(net, pair.consumer, new_c, mask_c)
        if pair.producer is not None:
            prod = net.layers[pair.producer]
            wp = prod.weight.detach()
            mask_p = keep.reshape((-1,) + (1,) * (wp.dim() - 1)).expand_as(wp).to(wp.dtype)
            set_layer(net, pair.producer, wp, mask_p)
        changed = True
        m_l[pair.consumer], s_l[pair.consumer], e_l[pair.consumer] = m, tot, eps
    return finish(net, plan.before, method="pfp", eps=eps, delta=plan.delta, eps_l=e_l,
                  delta_l=[plan.delta / eta] * L, m_l=m_l, s_l=s_l,
                  extra={"eta": eta, "K": plan.K, "n_points_used": int(S.shape[0]),
                         "channels_kept": [int((ly.weight.reshape(ly.fan_out, -1) != 0).any(1).sum())
                                           for ly in net.layers],
                         "filter_pruned": [net.layers[p.producer].path for p in plan.pairs if p.producer is not None],
                         "input_pruned": [net.layers[p.consumer].path for p in plan.pairs]},
                  original=plan.original)
