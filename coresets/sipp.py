"""SiPP: sensitivity-informed provable pruning of weights (Baykal, Liebenwein, Gilitschenski, Feldman, Rus;
"SiPPing Neural Networks", arXiv 1910.05422, SIAM J. Math. Data Sci. 2022).

For every neuron ``i`` of every layer, the edge sensitivities are ``s_ij = max_{x in S} |w_ij a_j(x)| / sum_k
|w_ik a_k(x)|`` (:func:`~prunebound.coresets.sensitivity. abs_edge_sensitivity`, valid for signed inputs, so
the first layer is pruned too), ``S_i = sum_j s_ij``.

* ``variant="rand"`` (SiPP-Rand): importance sampling with ``m_i = ceil(K (6 + 2 eps) S_i log(8 eta / delta) /
  eps^2)`` draws (Bernstein form, :func:`~prunebound.coresets.sampling.bernstein_sample_size`), reweighted
  ``w~_ij = w_ij count_j / (m_i q_ij)``; guarantee: w.p. >= 1 - delta/eta, ``|z~_i(x) - z_i(x)| <= eps sum_j
  |w_ij a_j(x)|``.
* ``variant="det"`` (SiPP-Det): keep the ``m_i`` most sensitive edges of each row, no reweighting (the error
  is at most the pruned sensitivity mass times ``sum_j |w_ij a_j(x)|`` on S).

Deviation: the paper allocates ``eps_l`` across layers by a convex program (minimise the summed error bound
subject to the budget); here one common ``eps`` is used for all layers and a target size is met by bisection
on ``eps`` (:func:`prunebound.coresets.prune`). Layers are processed from the input forward. MLPs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunebound.coresets.guarantee import Guarantee
from prunebound.coresets.keep_ratio import RowKeep
from prunebound.coresets.prune import finish, prepare, require_linear, sensitivity_batch, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, make_generator, sparsify_rows
from prunebound.coresets.sensitivity import abs_edge_sensitivity
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_probability
from prunebound.network import Network, clone

__all__ = ["sipp", "sipp_plan", "SiPPPlan"]


def _topk_rows(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """0/1 mask keeping the ``m_r`` largest positive entries of each row (vectorised)."""
    order = torch.argsort(s, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1]).expand_as(order).contiguous())
    return ((rank < m[:, None]) & (s > 0)).to(s.dtype)


@dataclass
class SiPPPlan:
    """Everything of a SiPP run that does not depend on ``eps`` (computed once per keep-ratio search)."""

    net: Network
    S: torch.Tensor
    gen_state: torch.Tensor
    before: int
    eta: int
    K: float
    delta: float
    variant: str
    sens: list
    keep: list

    def kept_fraction(self, eps: float) -> float:
        kept = 0.0
        for rk in self.keep:
            m = bernstein_sample_size(rk.tot, eps=eps, delta=self.delta, eta=self.eta, K=self.K)
            kept += rk.expected_total(m) if self.variant == "rand" else float(torch.minimum(m, rk.nnz).sum())
        return kept / self.before


def sipp_plan(module: nn.Module, data, *, delta: float = 0.1, seed: int | torch.Generator | None = 0,
              variant: str = "rand", K: float = 3.0, n_points: int = 128) -> SiPPPlan:
    """Validate, draw S and compute the dense network's sensitivities (everything independent of ``eps``)."""
    if variant not in ("rand", "det"):
        raise InvalidParameterError(f"variant must be 'rand' or 'det'; got {variant!r}")
    net, x, before = prepare(module, data, eps=None, delta=delta)
    if x is None:
        raise DataError("SiPP is data-informed: pass data (a Dataset or input tensor)")
    require_linear(net, "SiPP")
    eta = sum(ly.fan_out for ly in net.layers)
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points, g)
    tr = net.trace(S)
    sens = [abs_edge_sensitivity(ly.weight_matrix().detach(), tr.inputs[i]) for i, ly in enumerate(net.layers)]
    return SiPPPlan(net=net, S=S, gen_state=g.get_state(), before=before, eta=eta, K=K, delta=delta,
                    variant=variant, sens=sens, keep=[RowKeep(s) for s in sens])


def sipp(module: nn.Module, data, *, eps: float, delta: float = 0.1, seed: int | torch.Generator | None = 0,
         variant: str = "rand", K: float = 3.0, n_points: int = 128, _allow_large_eps: bool = False,
         _plan: SiPPPlan | None = None) -> tuple[nn.Module, Guarantee]:
    """Prune a copy of ``module`` with SiPP (``variant`` ``"rand"`` or ``"det"``)."""
    if variant not in ("rand", "det"):
        raise InvalidParameterError(f"variant must be 'rand' or 'det'; got {variant!r}")
    if _allow_large_eps:
        check_positive("eps", eps)
    else:
        check_probability("eps", eps)
    plan = _plan or sipp_plan(module, data, delta=delta, seed=seed, variant=variant, K=K, n_points=n_points)
    net = Network.from_module(clone(plan.net.module))
    g = torch.Generator()
    g.set_state(plan.gen_state)
    eta, S = plan.eta, plan.S
    m_l, s_l = [], []
    for i, ly in enumerate(net.layers):
        w = ly.weight_matrix().detach()
        s = plan.sens[i] if i == 0 else abs_edge_sensitivity(w, net.trace(S).inputs[i])
        tot = s.double().sum(1)
        m = bernstein_sample_size(tot, eps=eps, delta=plan.delta, eta=eta, K=plan.K)
        if plan.variant == "rand":
            new_w, mask = sparsify_rows(w, s, m, g)
        else:
            mask = _topk_rows(s, m)
            new_w = w * mask
        set_layer(net, i, new_w, mask)
        m_l.append(int(m.sum()))
        s_l.append(float(tot.sum()))
    L = len(net.layers)
    return finish(net, plan.before, method=f"sipp-{plan.variant}", eps=eps, delta=plan.delta, eps_l=[eps] * L,
                  delta_l=[plan.delta / eta] * L, m_l=m_l, s_l=s_l, guaranteed=plan.variant == "rand",
                  extra={"eta": eta, "K": plan.K, "n_points_used": int(S.shape[0])})
