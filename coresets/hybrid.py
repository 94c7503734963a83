"""Deterministic heavy hitters + importance sampling of the rest: CoreNet / SiPP / PFP with their guarantees.

Why (issue 17). Sampling ``m`` entries i.i.d. *with replacement* from ``q = s / S`` and reweighting by
``count / (m q)`` is unbiased, but at a moderate keep ratio most of the budget goes to the few heavy entries
(drawn many times) and every light entry that is drawn once is scaled up by ``1 / (m q_j) >> 1``: the variance
is what costs accuracy without retraining (digits MLP 64-64-10 at 50 % sparsity, 5 seeds: CoreNet 0.090,
SiPP-Rand 0.088 test error against 0.041 for global magnitude pruning; the methods' own deterministic
variants reach 0.044). The authors' partially derandomized PFP (torchprune ``PFPTop``, Liebenwein et al.,
ICLR 2020) keeps deterministically every channel whose expected count ``m q_j`` is at least one and samples
the rest; this module applies that rule to every sampler here.

The rule, for one row (a sign group ``W+_i`` / ``W-_i`` of a neuron for CoreNet and SiPP, the channels of a
producer layer for PFP) with sensitivities ``s``, total ``S`` and the method's sample size ``m(S)`` at ``eps``:

    D = { j : s_j m(S) >= S }                 (kept exactly, weight unchanged)
    R = the other entries, S_R = sum_{j in R} s_j, m_R = m(S_R) draws i.i.d. from q_R = s_R / S_R,
    w~_j = w_j count_j / (m_R q_R,j) for j in R.

Guarantee (unchanged; the proof is the method's own with ``S`` replaced by ``S_R``). On the event the methods'
analyses already condition on -- the empirical sensitivities dominate the relative contributions at ``x``,
``w_j a_j(x) <= s_j z(x)`` with ``z = sum_j w_j a_j`` the row's (non-negative) sum -- the sampled estimator
of ``z_R = sum_{j in R} w_j a_j`` has terms ``w_j a_j / (m_R q_R,j) <= S_R z / m_R`` and variance at most
``S_R z z_R / m_R <= S_R z^2 / m_R``. These are exactly the bounds CoreNet's SPARSIFY lemma (Baykal et al.,
ICLR 2019), SiPP's error model (Baykal et al. 2022) and PFP's Theorem 1 feed into Bernstein's inequality,
with ``S`` in place of ``S_R``; so ``m(S_R)`` samples give, w.p. ``>= 1 - delta_row``,
``|z~_R - z_R| <= eps z`` and the deterministic part adds no error: ``|z~ - z| <= eps z``, the statement of
the method at the same ``eps`` and ``delta``. ``D`` depends only on the sensitivities (not on the draws), so
nothing else changes. ``S_R <= S`` means fewer samples for the same ``eps``: at a fixed keep ratio the solved
``eps`` is smaller, i.e. the statement is stronger (at 50 % sparsity of these small nets it is still >= 1,
vacuous, as for the plain samplers; :class:`~prunebound.coresets.Guarantee` then says so).

Keep ratio: :func:`prunebound.coresets.prune` solves ``eps`` on the expected kept fraction
``|D| + sum_{j in R} 1 - (1 - q_R,j)^{m_R}`` (dense-network sensitivities), as for the plain methods.

Deviations: CoreNet and SiPP use one ``eps`` for all rows (CoreNet: ``eps'`` per layer, ``propagate=False`` as
the plain CoreNet at a keep ratio; SiPP: its error model inverted at one ``eps`` instead of the budget
program). PFP's ``D`` is exactly torchprune's PFPTop split; the sampled remainder is reweighted as in PFP.

The deterministic limit, :func:`pfp_det` (``D`` = the ``k`` most sensitive channels, nothing sampled, no
reweighting; ``k`` = the expected number of distinct channels PFP's ``m(eps)`` draws would keep), is the
variant of the authors' own experiments (torchprune ``PFPNet``, compared there with the structured
baselines of Li et al. 2017 -- L1 filter norm --, SoftNet and ThiNet). It has **no** sampling guarantee
(``guaranteed=False``): the statement would need every dropped channel's sensitivity to be negligible.

Everything except the split is the plain method's own pass (:mod:`~prunebound.coresets.corenet`,
:mod:`~prunebound.coresets.sipp`, :mod:`~prunebound.coresets.pfp`): ungrouped Conv1d/Conv2d layers are linear
maps on input patches (:mod:`~prunebound.coresets.patches`; a neuron is an output channel at one position),
signed inputs are split ``a = a+ - a-``, layers are processed from the input forward on the partially
sparsified network, PFP samples the consumers of :func:`~prunebound.coresets.pfp.channel_pairs` (filters are
removed only where the consumer is their sole reader: on a ResNet the first conv of each block), and the
result is a copy of the user's module with BatchNorm kept (:mod:`~prunebound.coresets.restore`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunebound.coresets.corenet import CoreNetPlan, _split_rows, corenet_plan, finish_corenet
from prunebound.coresets.patches import layer_input, layer_points
from prunebound.coresets.pfp import PFPPlan, _sensitivity, channel_step, pfp_plan
from prunebound.coresets.prune import finish, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, corenet_sample_size, sparsify_rows
from prunebound.coresets.sensitivity import edge_sensitivity
from prunebound.coresets.sipp import SiPPPlan, _rows, _weight_rows, sipp_plan
from prunebound.coresets.sipp_budget import sipp_alpha, sipp_error, sipp_sample_size
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import InvalidParameterError, check_positive, check_probability
from prunebound.network import Network, clone
from prunebound.pruning.report import PruneResult

__all__ = ["heavy_split", "hybrid_sparsify_rows", "expected_kept", "corenet_hybrid", "sipp_hybrid", "pfp_top",
           "pfp_det", "HybridPlan", "hybrid_plan"]

SampleSize = Callable[[torch.Tensor], torch.Tensor]


def heavy_split(s: torch.Tensor, m_of: SampleSize) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(D, s_R, m_R)``: the deterministic entries ``s_j m(S) >= S`` of each row of ``s`` (``(R, n)``), the
    remaining sensitivities (zero on ``D``) and the sample size of the remainder, ``m_of(S_R)``."""
    s = s.detach().double()
    tot = s.sum(1)
    m = m_of(tot)
    det = (s > 0) & (s * m.double()[:, None] >= tot[:, None])
    rest = torch.where(det, torch.zeros_like(s), s)
    return det, rest, m_of(rest.sum(1))


def hybrid_sparsify_rows(w: torch.Tensor, s: torch.Tensor, m_of: SampleSize, seed
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep ``D`` exactly, importance-sample the rest (:func:`~prunebound.coresets.sparsify_rows`).

    Returns ``(w_new, mask, det, m_R, S_R)``."""
    det, rest, m = heavy_split(s, m_of)
    new, mask = sparsify_rows(w, rest, m, seed)
    new = torch.where(det, w.detach(), new)
    mask = torch.where(det, torch.ones_like(mask), mask)
    return new, mask, det, m, rest.sum(1)


def expected_kept(s: torch.Tensor, m_of: SampleSize) -> float:
    """Expected number of kept entries: ``|D|`` plus the expected distinct draws of the remainder (a row whose
    ``m_R`` reaches its candidates is kept whole, as :func:`sparsify_rows` does)."""
    det, rest, m = heavy_split(s, m_of)
    nnz = (rest > 0).sum(1)
    q = rest / rest.sum(1, keepdim=True).clamp_min(1e-300)
    mf = m.clamp(max=2**40).double()[:, None]
    e = (1.0 - torch.exp(mf * torch.log1p(-q.clamp(max=1.0)).clamp_min(-80.0))).sum(1)
    e = torch.where(m >= nnz, nnz.double(), e)
    return float(det.sum()) + float(e.sum())


# ----------------------------------------------------------------------------------------------- the methods
def _corenet_m(plan: CoreNetPlan, i: int, eps_l: float) -> SampleSize:
    c = plan.constants
    return lambda tot: corenet_sample_size(tot, eps=eps_l, delta=plan.layer_delta(i), eta=c["eta"], K=plan.K)


def _sipp_m(plan: SiPPPlan, eps: float) -> SampleSize:
    return lambda tot: sipp_sample_size(sipp_alpha(tot, delta=plan.delta, eta=plan.eta), eps)


def _pfp_m(plan: PFPPlan, eps: float) -> SampleSize:
    return lambda tot: bernstein_sample_size(tot, eps=eps, delta=plan.delta, eta=plan.eta, K=plan.K)


@dataclass
class HybridPlan:
    """The ``eps``-independent part of a hybrid run (the plain method's plan) and its expected kept fraction."""

    kind: str  # "corenet", "sipp", "pfp" or "pfp_det"
    base: CoreNetPlan | SiPPPlan | PFPPlan

    def kept_fraction(self, eps: float) -> float:
        p = self.base
        if self.kind == "corenet":
            eps_l = p.layer_eps(eps)
            kept = sum(expected_kept(_split_rows(s, ly.weight_matrix().detach()), _corenet_m(p, i, eps_l[i]))
                       for i, (s, ly) in enumerate(zip(p.sens, p.net.layers)))
            return kept / p.before
        if self.kind == "sipp":
            return sum(expected_kept(s, _sipp_m(p, eps)) for s in p.sens) / p.before
        return _pfp_kept(p, eps, det=self.kind == "pfp_det")


def hybrid_plan(kind: str) -> Callable[..., HybridPlan]:
    """The planner :func:`prunebound.coresets.prune` calls for ``{kind}`` hybrid at a keep ratio."""

    def plan(module, data, *, delta=DEFAULT_DELTA, seed=0, **kw):
        if kind == "corenet":
            return HybridPlan(kind, corenet_plan(module, data, delta=delta, seed=seed, **kw))
        if kind == "sipp":
            for key, want in (("sensitivity", "signed"), ("variant", "rand")):
                if kw.get(key, want) != want:
                    raise InvalidParameterError(f"sipp_hybrid is SiPP-Rand with signed sensitivities; got "
                                                f"{key}={kw[key]!r}")
            return HybridPlan(kind, sipp_plan(module, data, delta=delta, seed=seed, **kw))
        return HybridPlan(kind, pfp_plan(module, data, delta=delta, seed=seed, **kw))  # "pfp", "pfp_det"

    return plan


def _check_eps(eps: float, allow_large: bool) -> None:
    if allow_large:
        check_positive("eps", eps)
    else:
        check_probability("eps", eps)


def _generator(state: torch.Tensor) -> torch.Generator:
    g = torch.Generator()
    g.set_state(state)
    return g


def corenet_hybrid(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed=0,
                   K: float | None = None, n_points: int | None = None, use_kappa: bool = True,
                   propagate: bool = True, _allow_large_eps: bool = False, _plan: HybridPlan | None = None
                   ) -> PruneResult:
    """CoreNet (:func:`~prunebound.coresets.corenet`) with the heavy entries of every sign group kept exactly and
    the rest sampled with ``m(S_R)``; same per-neuron ``(eps, delta)`` statement (module docstring)."""
    _check_eps(eps, _allow_large_eps)
    plan = (_plan or hybrid_plan("corenet")(module, data, delta=delta, seed=seed, K=K, n_points=n_points,
                                            use_kappa=use_kappa, propagate=propagate)).base
    net = Network.from_module(clone(plan.net.module))
    g = _generator(plan.gen_state)
    S = plan.S
    eps_l = plan.layer_eps(eps)
    m_l, s_l, n_det = [], [], 0
    for i, ly in enumerate(net.layers):
        w = ly.weight_matrix().detach()
        # layer 0: the plan's sensitivities (nothing sparsified yet); later layers on the sparsified network
        s = plan.sens[i] if i == 0 else edge_sensitivity(w, layer_points(ly, layer_input(net, i, S)))
        w2 = torch.cat([w * (w > 0), w * (w < 0)])
        new2, mask2, det, m, s_rest = hybrid_sparsify_rows(w2, _split_rows(s, w), _corenet_m(plan, i, eps_l[i]), g)
        out = w.shape[0]
        set_layer(net, i, new2[:out] + new2[out:], torch.maximum(mask2[:out], mask2[out:]))
        m_l.append(int(m.sum()))
        s_l.append(float(s_rest.sum()))
        n_det += int(det.sum())
    return finish_corenet(plan, net, "corenet_hybrid", eps, eps_l, m_l, s_l,
                          extra={"deterministic_fraction": n_det / plan.before,
                                 "total_sensitivity": "of the sampled remainder S_R"})


def sipp_hybrid(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed=0, n_points: int = 128,
                _allow_large_eps: bool = False, _plan: HybridPlan | None = None) -> PruneResult:
    """SiPP-Rand (signed sensitivities, :mod:`~prunebound.coresets.sipp`) with the heavy entries of every row
    kept exactly; each row's remainder gets ``m_f = sipp_sample_size(alpha(S_R), eps)``, so
    ``err_f <= eps`` w.p. ``>= 1 - delta / eta`` per neuron as for SiPP-Rand at ``eps``. ``eps_per_layer``
    is, as for SiPP, each layer's largest row error ``err_f(m_R)`` (0 for a row kept whole)."""
    _check_eps(eps, _allow_large_eps)
    plan = (_plan or hybrid_plan("sipp")(module, data, delta=delta, seed=seed, n_points=n_points)).base
    net = Network.from_module(clone(plan.net.module))
    g = _generator(plan.gen_state)
    S = plan.S
    m_l, s_l, e_l, n_det = [], [], [], 0
    for i, ly in enumerate(net.layers):
        w = ly.weight_matrix().detach()
        if i == 0:  # nothing sparsified yet: the plan's sensitivities
            w_rows, s = _weight_rows(w, True), plan.sens[0]
        else:
            w_rows, s = _rows(w, layer_points(ly, layer_input(net, i, S)), True)
        new, mask, det, m, s_rest = hybrid_sparsify_rows(w_rows, s, _sipp_m(plan, eps), g)
        out = w.shape[0]
        set_layer(net, i, new[:out] + new[out:], torch.maximum(mask[:out], mask[out:]))
        sat = m >= (s * ~det > 0).sum(1)  # the remainder is kept whole: no error
        err = torch.where(sat, torch.zeros(m.shape, dtype=torch.float64),
                          sipp_error(m, sipp_alpha(s_rest, delta=plan.delta, eta=plan.eta)))
        e_l.append(float(err.max()) if err.numel() else 0.0)
        m_l.append(int(m.sum()))
        s_l.append(float(s_rest.sum()))
        n_det += int(det.sum())
    L = len(net.layers)
    return finish(net, plan.before, method="sipp_hybrid", eps=eps, delta=plan.delta, eps_l=e_l,
                  delta_l=[plan.delta / plan.eta] * L, m_l=m_l, s_l=s_l,
                  extra={"eta": plan.eta, "K": plan.K, "n_points_used": int(S.shape[0]), "sensitivity": "signed",
                         "allocation": "one eps for all rows", "deterministic_fraction": n_det / plan.before},
                  original=plan.original)


def _pfp_keep_probability(s: torch.Tensor, m_of: SampleSize) -> torch.Tensor:
    det, rest, m = heavy_split(s[None], m_of)
    q = rest / rest.sum(1, keepdim=True).clamp_min(1e-300)
    p = 1.0 - (1.0 - q.clamp(max=1.0)) ** m.clamp(max=2**40).double()[:, None]
    nnz = (rest > 0).sum(1)
    p = torch.where((m >= nnz)[:, None] & (rest > 0), torch.ones_like(p), p)
    return torch.where(det, torch.ones_like(p), p)[0]


def _top_channels(s: torch.Tensor, m: int) -> torch.Tensor:
    """0/1 mask of the ``k`` most sensitive channels, ``k = round(E[distinct channels of m draws])`` (as
    torchprune's allocator: no "whole layer once m >= nnz" jump, so ``k`` grows smoothly as ``eps`` shrinks)."""
    s = s.detach().double()
    nnz = int((s > 0).sum())
    q = s / s.sum().clamp_min(1e-300)
    k = int(round(float((1.0 - (1.0 - q) ** min(m, 2**40)).sum())))
    keep = torch.zeros_like(s)
    keep[torch.topk(s, max(min(k, nnz), 1)).indices] = 1.0
    return keep * (s > 0)


def _pfp_det_k(plan: PFPPlan, k: int, eps: float) -> torch.Tensor:
    """The top-k mask of pair ``k`` on the dense network's sensitivities (``k`` fixed before the pass)."""
    s = plan.sens[k]
    return _top_channels(s, int(_pfp_m(plan, eps)(s.double().sum()[None])[0]))


def _pfp_kept(plan: PFPPlan, eps: float, det: bool = False) -> float:
    """Expected kept fraction, as :meth:`PFPPlan.kept_fraction`: weight (j, k) of a layer is kept iff its output
    channel j (when it is a producer) and its input channel k (when it is a consumer) are kept."""
    L = len(plan.nz)
    p_in = [torch.ones(plan.nz[i].shape[1], dtype=torch.float64) for i in range(L)]
    p_out = [torch.ones(plan.nz[i].shape[0], dtype=torch.float64) for i in range(L)]
    for k, (pair, s) in enumerate(zip(plan.pairs, plan.sens)):
        p = _pfp_det_k(plan, k, eps) if det else _pfp_keep_probability(s, _pfp_m(plan, eps))
        p_in[pair.consumer] = p
        if pair.producer is not None:
            p_out[pair.producer] = p
    return sum(float(p_out[i] @ plan.nz[i] @ p_in[i]) for i in range(L)) / plan.before


def pfp_det(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed=0, K: float = 3.0,
            n_points: int = 128, _allow_large_eps: bool = False, _plan: HybridPlan | None = None) -> PruneResult:
    """Deterministic PFP (torchprune ``PFPNet``): for every sampled consumer keep the ``k`` most sensitive input
    channels (``k`` = expected distinct channels of PFP's ``m(eps)`` draws), no reweighting; no guarantee."""
    return pfp_top(module, data, eps=eps, delta=delta, seed=seed, K=K, n_points=n_points,
                   _allow_large_eps=_allow_large_eps, _plan=_plan, _deterministic=True)


def pfp_top(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed=0, K: float = 3.0,
            n_points: int = 128, _allow_large_eps: bool = False, _plan: HybridPlan | None = None,
            _deterministic: bool = False) -> PruneResult:
    """PFP (:func:`~prunebound.coresets.pfp`) with torchprune's PFPTop split: channels with ``m q_j >= 1`` are
    kept whole (scale 1), the others sampled with ``m(S_R)`` and reweighted ``count / (m_R q_R)``. Consumers and
    producers are PFP's (:func:`~prunebound.coresets.pfp.channel_pairs`)."""
    _check_eps(eps, _allow_large_eps)
    plan = (_plan or hybrid_plan("pfp")(module, data, delta=delta, seed=seed, K=K, n_points=n_points)).base
    net = Network.from_module(clone(plan.net.module))
    g = _generator(plan.gen_state)
    S, L = plan.S, len(net.layers)
    m_l, s_l, e_l, n_det = [0] * L, [0.0] * L, [0.0] * L, 0
    m_of = _pfp_m(plan, eps)
    for k, pair in enumerate(plan.pairs):
        cons, C = net.layers[pair.consumer], pair.n_channels
        # pair 0: the plan's sensitivities (nothing pruned yet); later pairs on the pruned network
        s = plan.sens[k] if k == 0 else _sensitivity(net, pair, S)
        if _deterministic:  # k from the dense network's sensitivities (as kept_fraction), top-k on the current
            n_top = int(_pfp_det_k(plan, k, eps).sum())
            det = torch.zeros(s.shape, dtype=torch.bool)
            det[torch.topk(s, min(n_top, int((s > 0).sum()))).indices] = True
            det &= s > 0
            rest, m = torch.zeros(s.shape, dtype=torch.float64), 0
        else:
            det, rest, m = heavy_split(s[None], m_of)
            det, rest, m = det[0], rest[0], int(m[0])
        keep_r, scale_r = channel_step(rest, m, g)  # PFP's step on the remainder (kept whole if m >= nnz)
        keep = ((keep_r > 0) | det).double()
        scale = torch.where(det, torch.ones_like(scale_r), scale_r)
        wc = cons.weight.detach()
        shape = (wc.shape[0], C, -1)
        new_c = (wc.reshape(shape).double() * scale[None, :, None]).reshape(wc.shape).to(wc.dtype)
        mask_c = keep[None, :, None].expand(wc.shape[0], C, wc.reshape(shape).shape[2]).reshape(wc.shape)
        set_layer(net, pair.consumer, new_c, mask_c)
        if pair.producer is not None:
            wp = net.layers[pair.producer].weight.detach()
            mask_p = keep.reshape((-1,) + (1,) * (wp.dim() - 1)).expand_as(wp).to(wp.dtype)
            set_layer(net, pair.producer, wp, mask_p)
        m_l[pair.consumer], s_l[pair.consumer], e_l[pair.consumer] = m, float(rest.sum()), eps
        n_det += int(det.sum())
    return finish(net, plan.before, method="pfp_det" if _deterministic else "pfp_top", eps=eps, delta=plan.delta,
                  eps_l=e_l, delta_l=[plan.delta / plan.eta] * L, m_l=m_l, s_l=s_l,
                  guaranteed=not _deterministic,
                  extra={"eta": plan.eta, "K": plan.K, "n_points_used": int(S.shape[0]),
                         "deterministic_channels": n_det,
                         "channels_kept": [int((ly.weight.reshape(ly.fan_out, -1) != 0).any(1).sum())
                                           for ly in net.layers],
                         "filter_pruned": [net.layers[p.producer].path for p in plan.pairs if p.producer is not None],
                         "input_pruned": [net.layers[p.consumer].path for p in plan.pairs]},
                  original=plan.original)
