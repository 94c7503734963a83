"""CoreNet: data-dependent coresets for weights (Baykal, Liebenwein, Gilitschenski, Feldman, Rus; ICLR 2019).

Algorithm 1 (CORENET), for a ReLU MLP with ``L`` weighted layers, ``eta = sum_l eta^l`` neurons and ``eta_star
= max_{l < L} eta^l``:

1. draw ``S``, ``|S| = ceil(log(8 eta eta_star / delta) * log(eta eta_star))`` points from the data;
2. ``lambda_star = log(eta eta_star) / 2``, ``kappa = sqrt(2 lambda_star) (1 + sqrt(2 lambda_star) log(8 eta
   eta_star / delta))`` and per layer ``Delta_l = max_i mean_{x in S} (sum_k |w_ik a_k(x)|) / |sum_k w_ik
   a_k(x)| + kappa``; ``Delta_{l->} = prod_{k >= l} Delta_k``;
3. ``eps' = eps / (2 (L - 1))`` and ``eps_l = eps' / Delta_{l->}``;
4. for each layer from the input forward (later layers see the already sparsified earlier ones) and each
   neuron ``i``: SPARSIFY the positive edges ``W+_i`` and the negative edges ``W-_i`` separately with
   empirical sensitivities (:func:`~prunebound.coresets.sensitivity.edge_sensitivity`) and ``m = ceil(8 S K
   log(8 eta / delta) / eps_l^2)`` samples (Algorithm 2), reweighting ``w~_j = w_j count_j / (m q_j)`` so that
   ``E[z~_i(x)] = z_i(x)``.

Per-neuron guarantee (Lemma/Theorem for SPARSIFY, under Assumption 1): for ``x`` from the data distribution,
with probability >= 1 - delta / eta, ``|z~+_i(x) - z+_i(x)| <= eps_l z+_i(x)`` (and for ``z-``), hence
``|z~_i(x) - z_i(x)| <= eps_l (z+_i(x) + z-_i(x))``.

Assumptions and deviations: ReLU activations (non-negative layer inputs); a layer whose inputs are negative on
S (the first layer on raw signed data) is left dense (CoreNet sparsifies layers ``l = 2..L`` whose inputs are
post-ReLU), with ``eps_l = 0``; biases are kept exactly; ``K`` defaults to ``log(eta eta_star)`` (arXiv v1)
and a row whose ``m`` reaches its number of candidate edges is kept dense (exact). MLPs only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunebound.coresets.guarantee import Guarantee
from prunebound.coresets.prune import finish, prepare, require_linear, sensitivity_batch, set_layer
from prunebound.coresets.sampling import corenet_sample_size, make_generator, sparsify_rows
from prunebound.coresets.sensitivity import edge_sensitivity
from prunebound.errors import DataError, check_positive

__all__ = ["corenet", "sparsify_layer", "corenet_constants", "delta_hat"]


def corenet_constants(widths: list[int], delta: float) -> dict[str, float]:
    """``eta``, ``eta_star``, ``|S|``, ``lambda_star``, ``kappa`` of Algorithm 1 for widths ``eta^l``."""
    eta = int(sum(widths))
    eta_star = int(max(widths[:-1])) if len(widths) > 1 else 1
    ee = max(eta * eta_star, 2)
    lam = math.log(ee) / 2.0
    r = math.sqrt(2.0 * lam)
    kappa = r * (1.0 + r * math.log(8.0 * ee / delta))
    n_s = int(math.ceil(math.log(8.0 * ee / delta) * math.log(ee)))
    return {"eta": eta, "eta_star": eta_star, "n_points": n_s, "lambda_star": lam, "kappa": kappa,
            "K": math.log(ee)}


def delta_hat(weight: torch.Tensor, inputs: torch.Tensor) -> float:
    """``max_i mean_x sum_k |w_ik a_k(x)| / |sum_k w_ik a_k(x)|`` (zero pre-activations are skipped)."""
    w = weight.detach().double()
    a = inputs.detach().double()
    num = a.abs() @ w.abs().T
    den = (a @ w.T).abs()
    ok = den > 0
    ratio = torch.where(ok, num / den.clamp_min(1e-300), torch.zeros_like(num))
    cnt = ok.sum(0).clamp_min(1)
    return float((ratio.sum(0) / cnt).max())


def sparsify_layer(weight: torch.Tensor, inputs: torch.Tensor, *, eps: float, delta: float, eta: int,
                   K: float, generator: torch.Generator, m_scale: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SPARSIFY every neuron of one layer (positive and negative edges separately), all rows at once.

    Returns ``(new_weight, mask, m, S)`` where ``m`` and ``S`` are ``(2, fan_out)`` (row 0: ``W+``, row 1:
    ``W-``). ``m_scale`` multiplies the theorem's sample size (1 = the theorem; tests use < 1 to show that
    too few samples break the guarantee).
    """
    w = weight.detach()
    s = edge_sensitivity(w, inputs)
    pos, neg = w > 0, w < 0
    s2 = torch.cat([s * pos, s * neg])
    tot = s2.double().sum(1)
    m = corenet_sample_size(tot, eps=eps, delta=delta, eta=eta, K=K)
    if m_scale != 1.0:
        m = torch.ceil(m.double() * m_scale).to(torch.int64)
    w2 = torch.cat([w * pos, w * neg])
    new2, mask2 = sparsify_rows(w2, s2, m, generator)
    out = w.shape[0]
    mask = torch.maximum(mask2[:out], mask2[out:])
    return new2[:out] + new2[out:], mask, m.reshape(2, out), tot.reshape(2, out)


def corenet(module: nn.Module, data, *, eps: float, delta: float = 0.1,
            seed: int | torch.Generator | None = 0,
            K: float | None = None, n_points: int | None = None, use_kappa: bool = True,
            propagate: bool = True, _allow_large_eps: bool = False) -> tuple[nn.Module, Guarantee]:
    """Prune a copy of ``module`` with CoreNet at relative error ``eps`` and failure probability ``delta``.

    ``propagate=False`` drops the error-propagation factor ``Delta_{l->}`` from ``eps_l`` (every layer gets
    ``eps'``): a practical variant whose per-layer statement holds but whose end-to-end guarantee does not.
    """
    if _allow_large_eps:
        check_positive("eps", eps)
    net, x, before = prepare(module, data, eps=None if _allow_large_eps else eps, delta=delta)
    if x is None:
        raise DataError("CoreNet is data-dependent: pass data (a Dataset or input tensor)")
    require_linear(net, "CoreNet")
    widths = [ly.fan_out for ly in net.layers]
    c = corenet_constants(widths, delta)
    K = c["K"] if K is None else check_positive("K", K)
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points or c["n_points"], g)
    L = len(net.layers)
    tr = net.trace(S)
    kappa = c["kappa"] if use_kappa else 0.0
    deltas = [delta_hat(ly.weight_matrix(), tr.inputs[i]) + kappa for i, ly in enumerate(net.layers)]
    eps_prime = eps / (2.0 * max(L - 1, 1))
    eps_l, m_l, s_l, dense = [], [], [], []
    for i, ly in enumerate(net.layers):
        a = net.trace(S).inputs[i]
        if bool((a < 0).any()):
            eps_l.append(0.0)
            m_l.append(0)
            s_l.append(0.0)
            dense.append(ly.path)
            continue
        e = eps_prime / math.prod(deltas[i:]) if propagate else eps_prime
        new_w, mask, m, tot = sparsify_layer(ly.weight_matrix(), a, eps=e, delta=delta, eta=c["eta"], K=K,
                                             generator=g)
        set_layer(net, i, new_w, mask)
        eps_l.append(e)
        m_l.append(int(m.sum()))
        s_l.append(float(tot.sum()))
    return finish(net, before, method="corenet", eps=eps, delta=delta, eps_l=eps_l,
                  delta_l=[delta / c["eta"]] * L, m_l=m_l, s_l=s_l, guaranteed=propagate,
                  extra={**c, "K": K, "Delta_hat": deltas, "eps_prime": eps_prime, "dense_layers": dense,
                         "n_points_used": int(S.shape[0])})
