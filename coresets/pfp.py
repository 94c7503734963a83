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
(what :func:`prunebound.coresets.prune` does with ``keep_ratio``). Two per-layer alternatives (Theorem 1 is a
statement per layer, so each sampled consumer may have its own ``eps_l``; the failure probability is still
``delta / eta`` per unit, ``delta`` in all by the union bound):

* ``eps_per_layer`` (one value per weighted layer, aligned with ``Guarantee.layers``): consumer ``l`` draws
  ``m_l = m(eps_l)``; ``eps_l = 0`` keeps it whole (not sampled).
* ``filter_keep = f`` (deviation from the paper, whose one ``eps`` keeps the early, cheap-per-channel layers
  nearly whole): every consumer with a producer gets the sample size ``m_l`` whose expected number of distinct
  channels ``sum_j 1 - (1 - q_j)^m`` (torchprune ``expected_unique``) is closest to ``f C_l`` (integer bisection;
  on the sensitivities at the time the layer is sampled, which depend on the data and on the earlier layers'
  draws, not on this layer's draw), and ``eps_l`` is the smallest ``eps`` whose Bernstein size is ``<= m_l``:
  with ``A = K S_l log(8 eta / delta)``, ``m eps^2 - 2 A eps - 6 A >= 0``, i.e. ``eps_l = (A + sqrt(A^2 + 6 A
  m_l)) / m_l``. Consumers without a producer (their input is a residual stream or otherwise shared: removing
  their input slices removes no filter and no computation after compaction) are kept whole, ``eps_l = 0``.
  The realised number of filters kept is random around ``f C_l`` (sampling with replacement; no rounding to
  a multiple of 8: the kept set is whatever the ``m_l`` draws hit, and adding channels that were not drawn would
  not be part of the estimator). ``extra["expected_channels_kept"]`` holds the expected count per producer
  (aligned with ``extra["channels_kept"]``; ``None`` elsewhere).

With per-layer tolerances the result's ``Guarantee.eps`` is ``max_l eps_l`` (every layer's statement holds with
it; vacuous when ``>= 1``) and ``Guarantee.eps_per_layer`` holds each ``eps_l``.

Supports Linear and Conv1d/Conv2d consumers (Linear after Flatten groups its inputs channel-major by the
producer's channels). Consumers are processed from the input forward (sensitivities on the already pruned
earlier layers). A consumer whose ``m_l`` reaches its number of candidate channels is kept whole.
"""

from __future__ import annotations

import math
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

__all__ = ["pfp", "pfp_plan", "PFPPlan", "ChannelPair", "channel_pairs", "channel_step", "filter_keep_allocation"]


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


def _eps_for_m(tot: float, m: int, *, delta: float, eta: int, K: float) -> float:
    """The smallest ``eps`` with ``bernstein_sample_size(tot, eps) <= m`` (see module docstring); checked
    against the formula and nudged up by ulps for floating-point rounding, so that the size is exactly ``m``."""
    A = K * tot * math.log(8.0 * eta / delta)
    e = (A + math.sqrt(A * A + 6.0 * A * m)) / m
    while int(bernstein_sample_size(tot, eps=e, delta=delta, eta=eta, K=K)) > m:
        e = math.nextafter(e, math.inf)
    return e


def filter_keep_allocation(s: torch.Tensor, n_channels: int, f: float) -> tuple[int, float]:
    """The sample size ``m`` whose expected number of distinct drawn channels (of sensitivities ``s``) is
    closest to ``f * n_channels`` (ties: the larger ``m``), and that expected number. ``m = nnz`` (every channel
    with ``s_j > 0`` kept) when the target reaches ``nnz``."""
    rk = RowKeep(s[None])
    nnz = int(rk.nnz[0])
    target = f * n_channels
    if nnz == 0:
        return 0, 0.0
    if target >= nnz:
        return nnz, float(nnz)

    def e(m: int) -> float:
        return rk.expected_total(torch.tensor([m]))

    lo, hi = 1, nnz  # E(lo) may exceed target (then m = 1); E(nnz) = nnz > target
    if e(lo) >= target:
        return lo, e(lo)
    while hi - lo > 1:  # invariant: E(lo) < target <= E(hi)
        mid = (lo + hi) // 2
        if e(mid) >= target:
            hi = mid
        else:
            lo = mid
    el, eh = e(lo), e(hi)
    return (lo, el) if target - el < eh - target else (hi, eh)


def _per_layer_eps(net: Network, pairs: list, eps_per_layer) -> list[float]:
    """Validate ``eps_per_layer`` (one value per layer) and return it per pair."""
    try:
        vals = [float(v) for v in eps_per_layer]
    except (TypeError, ValueError):
        raise InvalidParameterError("eps_per_layer must be a sequence of numbers, one per weighted layer") from None
    if len(vals) != len(net.layers):
        raise InvalidParameterError(f"eps_per_layer needs one value per weighted layer ({len(net.layers)}: "
                                    f"{[ly.path for ly in net.layers]}); got {len(vals)}")
    sampled = {p.consumer for p in pairs}
    for ly, v in zip(net.layers, vals):
        if not math.isfinite(v) or v < 0:
            raise InvalidParameterError(f"eps_per_layer[{ly.path!r}] must be finite and >= 0; got {v!r}")
        if v > 0 and ly.index not in sampled:
            raise InvalidParameterError(
                f"eps_per_layer[{ly.path!r}] = {v!r}, but PFP does not sample layer {ly.path!r} (its input is the "
                "network input or not one set of feature maps); give 0 there")
    return [vals[p.consumer] for p in pairs]


def pfp(module: nn.Module, data, *, eps: float | None = None, delta: float = DEFAULT_DELTA,
        seed: int | torch.Generator | None = 0, K: float = 3.0, n_points: int = 128,
        filter_keep: float | None = None, eps_per_layer=None, _allow_large_eps: bool = False,
        _plan: PFPPlan | None = None) -> PruneResult:
    """Prune whole filters/neurons (and input channels; see module docstring) of a copy of ``module`` with PFP.

    Give exactly one of ``eps`` (one tolerance for every sampled layer, the paper's allocation),
    ``filter_keep`` (each layer whose filters PFP removes keeps about this fraction of them; the other sampled
    layers are kept whole) or ``eps_per_layer`` (one tolerance per weighted layer; 0 = keep whole); see the
    module docstring. ``eps_per_layer[l]`` of the result's Guarantee is the tolerance of a sampled consumer (its
    statement is about its pre-activations on its input) and 0 for a layer that is not sampled."""
    given = [n for n, v in (("eps", eps), ("filter_keep", filter_keep), ("eps_per_layer", eps_per_layer))
             if v is not None]
    if len(given) != 1:
        raise InvalidParameterError(f"pfp: give exactly one of eps, filter_keep, eps_per_layer; got {given or 'none'}")
    if eps is not None:
        if _allow_large_eps:
            check_positive("eps", eps)
        else:
            check_probability("eps", eps)
    if filter_keep is not None:
        filter_keep = check_probability("filter_keep", filter_keep, open_right=False)
    plan = _plan or pfp_plan(module, data, delta=delta, seed=seed, K=K, n_points=n_points)
    net = Network.from_module(clone(plan.net.module))
    pair_eps = None if eps_per_layer is None else _per_layer_eps(net, plan.pairs, eps_per_layer)
    g = torch.Generator()
    g.set_state(plan.gen_state)
    eta, S = plan.eta, plan.S
    L = len(net.layers)
    m_l, s_l, e_l = [0] * L, [0.0] * L, [0.0] * L
    expected = [None] * L
    changed = False
    for k, pair in enumerate(plan.pairs):
        cons, C = net.layers[pair.consumer], pair.n_channels
        s = _sensitivity(net, pair, S) if changed else plan.sens[k]
        tot = float(s.double().sum())
        if eps is not None:
            e = eps
            m = int(bernstein_sample_size(tot, eps=eps, delta=plan.delta, eta=eta, K=plan.K))
        elif filter_keep is not None:
            if pair.producer is None:
                s_l[pair.consumer] = tot
                continue  # kept whole: removing its input slices removes no filter
            m, expected[pair.producer] = filter_keep_allocation(s, C, filter_keep)
            e = 0.0 if m == 0 else _eps_for_m(tot, m, delta=plan.delta, eta=eta, K=plan.K)
        else:
            e = pair_eps[k]
            if e == 0:
                s_l[pair.consumer] = tot
                continue
            m = int(bernstein_sample_size(tot, eps=e, delta=plan.delta, eta=eta, K=plan.K))
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
        m_l[pair.consumer], s_l[pair.consumer], e_l[pair.consumer] = m, tot, e
    extra = {"eta": eta, "K": plan.K, "n_points_used": int(S.shape[0]),
             "channels_kept": [int((ly.weight.reshape(ly.fan_out, -1) != 0).any(1).sum()) for ly in net.layers],
             "filter_pruned": [net.layers[p.producer].path for p in plan.pairs if p.producer is not None],
             "input_pruned": [net.layers[p.consumer].path for p in plan.pairs]}
    if eps is None:
        eps = max(e_l)  # every sampled layer's statement holds with it
        extra["allocation"] = "filter_keep" if filter_keep is not None else "eps_per_layer"
        extra["input_pruned"] = [net.layers[p.consumer].path for p in plan.pairs if e_l[p.consumer] > 0]
        if filter_keep is not None:
            extra["filter_keep"] = filter_keep
            extra["expected_channels_kept"] = expected
    return finish(net, plan.before, method="pfp", eps=eps, delta=plan.delta, eps_l=e_l,
                  delta_l=[plan.delta / eta] * L, m_l=m_l, s_l=s_l, extra=extra, original=plan.original)
