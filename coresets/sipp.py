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

import torch
from torch import nn

from prunebound.coresets.guarantee import Guarantee
from prunebound.coresets.prune import finish, prepare, require_linear, sensitivity_batch, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, make_generator, sparsify_rows
from prunebound.coresets.sensitivity import abs_edge_sensitivity
from prunebound.errors import DataError, InvalidParameterError, check_positive

__all__ = ["sipp"]


def _topk_rows(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """0/1 mask keeping the ``m_r`` largest positive entries of each row (vectorised)."""
    order = torch.argsort(s, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1]).expand_as(order).contiguous())
    return ((rank < m[:, None]) & (s > 0)).to(s.dtype)


def sipp(module: nn.Module, data, *, eps: float, delta: float = 0.1, seed: int | torch.Generator | None = 0,
         variant: str = "rand", K: float = 3.0, n_points: int = 128, _allow_large_eps: bool = False
         ) -> tuple[nn.Module, Guarantee]:
    """Prune a copy of ``module`` with SiPP (``variant`` ``"rand"`` or ``"det"``)."""
    if variant not in ("rand", "det"):
        raise InvalidParameterError(f"variant must be 'rand' or 'det'; got {variant!r}")
    if _allow_large_eps:
        check_positive("eps", eps)
    net, x, before = prepare(module, data, eps=None if _allow_large_eps else eps, delta=delta)
    if x is None:
        raise DataError("SiPP is data-informed: pass data (a Dataset or input tensor)")
    require_linear(net, "SiPP")
    eta = sum(ly.fan_out for ly in net.layers)
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points, g)
    m_l, s_l = [], []
    for i, ly in enumerate(net.layers):
        a = net.trace(S).inputs[i]
        w = ly.weight_matrix().detach()
        s = abs_edge_sensitivity(w, a)
        tot = s.double().sum(1)
        m = bernstein_sample_size(tot, eps=eps, delta=delta, eta=eta, K=K)
        if variant == "rand":
            new_w, mask = sparsify_rows(w, s, m, g)
        else:
            mask = _topk_rows(s, m)
            new_w = w * mask
        set_layer(net, i, new_w, mask)
        m_l.append(int(m.sum()))
        s_l.append(float(tot.sum()))
    L = len(net.layers)
    return finish(net, before, method=f"sipp-{variant}", eps=eps, delta=delta, eps_l=[eps] * L,
                  delta_l=[delta / eta] * L, m_l=m_l, s_l=s_l, guaranteed=variant == "rand",
                  extra={"eta": eta, "K": K, "n_points_used": int(S.shape[0])})
