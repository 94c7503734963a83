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

Signed inputs (extension; the paper sparsifies layers ``l = 2..L``, whose inputs are post-ReLU). A layer
whose inputs take negative values on S (the first layer on raw data) is handled by splitting every input,
``a = a+ - a-`` with ``a+ = max(a, 0)``, ``a- = max(-a, 0)``, so that for each sign group

    z+_i(x) = sum_{j in W+_i} w_ij a+_j(x)  -  sum_{j in W+_i} w_ij a-_j(x) =: u_i(x) - v_i(x),

two non-negative problems that share the weights. The sensitivity is the maximum over both families of points
(``2|S|`` non-negative points, :func:`~prunebound.coresets.sensitivity.signed_split`); since ``q_j >= s_j(u)
/ S`` and ``q_j >= s_j(v) / S`` with ``S`` the total of the shared sensitivities, each term of the importance
sampling estimator of ``u_i`` is at most ``S u_i(x) / m`` (and the same for ``v_i``), which is all SPARSIFY's
concentration argument uses. With a union bound over the two problems (``delta`` halved in the sample size of
such a layer), w.p. >= 1 - delta / eta per neuron ``|u~ - u| <= eps_l u`` and ``|v~ - v| <= eps_l v``, hence

    |z~_i(x) - z_i(x)| <= eps_l sum_j |w_ij a_j(x)| = eps_l Delta_i(x) |z_i(x)|,

the same form as for post-ReLU layers, so the propagation through ``Delta_hat`` is unchanged (``Delta_hat``
already uses ``|w a|``). For non-negative inputs nothing changes.

Vacuous statements: CoreNet's statement is a *relative* error ``eps`` of the output; for ``eps >= 1`` (what a
small keep ratio may need) it allows any sign and any magnitude up to ``2|f(x)|`` and says nothing useful.
The :class:`Guarantee` then has ``guaranteed=False`` and ``vacuous=True``, and ``summary()`` says so.

Convolutions (extension, as in the authors' conv experiments): a ``Conv1d``/``Conv2d`` with ``groups = 1``
computes ``z_{i,p}(x) = <W_i, P_p(x)> + b_i`` on the input patch ``P_p(x)`` at output position ``p``
(:mod:`prunebound.coresets.patches`), i.e. the Linear map ``W.reshape(C_out, fan_in)`` on every patch. A
neuron is an output channel at one position, so ``eta^l = C_out * P`` (neurons, in ``delta / eta`` and in the
constants of step 1), and the sensitivity batch is every (sample, position) patch of the ``|S|`` samples:
``s_ij = max_{x in S, p} w_ij P_p(x)_j / sum_{k in W+_i} w_ik P_p(x)_k``. One sampled kernel serves every
position (weights are shared), and the per-neuron statement above holds for each (channel, position).
Patches of a ReLU output (also ``relu(x + shortcut)`` in a residual block) are non-negative (zero padding
adds zeros); a conv on raw images gets the signed split like a first Linear layer. Residual networks need
nothing else: each layer's inputs are read from the (partially sparsified) network, whatever the graph.
Cost: ``|S|`` counts samples (patches of one image are not independent draws), and each brings all its
positions: on ResNet-20 (width 16, ``eta`` = 188,426 neurons) Algorithm 1 asks for ``|S|`` = 589 images;
``n_points=64`` took 34 s on one CPU thread (keep ratio 0.3) and the time grows linearly in ``|S|`` (about 5
minutes at 589, extrapolated); ``n_points`` trades the estimate's confidence for time.

Assumptions and deviations: ReLU activations between layers; biases are kept exactly; ``K`` defaults to
``log(eta eta_star)`` (arXiv v1) and a row whose ``m`` reaches its number of candidate edges
is kept dense (exact). Linear and ungrouped Conv1d/Conv2d layers; BatchNorm is folded for the computation
and the result is returned on the user's module (:mod:`prunebound.coresets.restore`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from prunebound.coresets.keep_ratio import RowKeep
from prunebound.coresets.patches import layer_input, layer_points, neurons_per_layer, require_patch_layers
from prunebound.coresets.prune import finish, prepare, sensitivity_batch, set_layer
from prunebound.coresets.sampling import corenet_sample_size, make_generator, sparsify_rows
from prunebound.coresets.sensitivity import edge_sensitivity
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import DataError, check_positive, check_probability
from prunebound.network import Network, clone
from prunebound.pruning.report import PruneResult

__all__ = ["corenet", "corenet_plan", "CoreNetPlan", "sparsify_layer", "corenet_constants", "delta_hat"]


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
                   K: float, seed: int | torch.Generator | None, m_scale: float = 1.0, s: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SPARSIFY every neuron of one layer (positive and negative edges separately), all rows at once.

    Returns ``(new_weight, mask, m, S)`` where ``m`` and ``S`` are ``(2, fan_out)`` (row 0: ``W+``, row 1:
    ``W-``). ``m_scale`` multiplies the theorem's sample size (1 = the theorem; tests use < 1 to show that
    too few samples break the guarantee). ``s`` are precomputed sensitivities of ``(weight, inputs)``.
    """
    w = weight.detach()
    if s is None:
        s = edge_sensitivity(w, inputs)
    s2 = _split_rows(s, w)
    tot = s2.double().sum(1)
    m = corenet_sample_size(tot, eps=eps, delta=delta, eta=eta, K=K)
    if m_scale != 1.0:
        m = torch.ceil(m.double() * m_scale).to(torch.int64)
    pos, neg = w > 0, w < 0
    w2 = torch.cat([w * pos, w * neg])
    new2, mask2 = sparsify_rows(w2, s2, m, seed)
    out = w.shape[0]
    mask = torch.maximum(mask2[:out], mask2[out:])
    return new2[:out] + new2[out:], mask, m.reshape(2, out), tot.reshape(2, out)


def _split_rows(s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Rows ``W+_i`` then ``W-_i``: sensitivities masked to each sign group, ``(2 fan_out, fan_in)``."""
    return torch.cat([s * (w > 0), s * (w < 0)])


@dataclass
class CoreNetPlan:
    """Everything of a CoreNet run that does not depend on ``eps`` (computed once per keep-ratio search)."""

    net: Network
    x: torch.Tensor
    S: torch.Tensor
    gen_state: torch.Tensor
    before: int
    constants: dict
    K: float
    deltas: list
    delta: float
    signed_input: list  # layer has signed inputs on S (split a = a+ - a-; delta halved in its sample size)
    inputs: list  # [layer 0's input points on S] (patches for a conv; reused while nothing is sparsified)
    sens: list  # dense-network sensitivities per layer (None where dense)
    keep: list  # RowKeep per layer (None where dense)
    nnz: list
    propagate: bool
    original: nn.Module | None = None  # the user's module: the result is returned on its architecture

    def layer_eps(self, eps: float) -> list[float]:
        L = len(self.net.layers)
        eps_prime = eps / (2.0 * max(L - 1, 1))
        return [eps_prime / math.prod(self.deltas[i:]) if self.propagate else eps_prime for i in range(L)]

    def layer_delta(self, i: int) -> float:
        """``delta`` in layer ``i``'s sample size: halved for a signed-input layer (two problems per neuron)."""
        return self.delta / 2.0 if self.signed_input[i] else self.delta

    def kept_fraction(self, eps: float) -> float:
        """Expected kept fraction of non-zero weights at ``eps`` (on the dense network's sensitivities)."""
        kept = 0.0
        for i, e in enumerate(self.layer_eps(eps)):
            m = corenet_sample_size(self.keep[i].tot, eps=e, delta=self.layer_delta(i),
                                    eta=self.constants["eta"], K=self.K)
            kept += self.keep[i].expected_total(m)
        return kept / self.before


def corenet_plan(module: nn.Module, data, *, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
                 K: float | None = None, n_points: int | None = None, use_kappa: bool = True,
                 propagate: bool = True) -> CoreNetPlan:
    """Validate, draw the sensitivity batch S and compute every ``eps``-independent quantity of CoreNet."""
    net, x, before = prepare(module, data, eps=None, delta=delta)
    if x is None:
        raise DataError("CoreNet is data-dependent: pass data (a Dataset or input tensor)")
    require_patch_layers(net, "CoreNet")
    widths = neurons_per_layer(net, x)  # a conv's neurons: channels x output positions
    c = corenet_constants(widths, delta)
    K = c["K"] if K is None else check_positive("K", K)
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points or c["n_points"], g)
    kappa = c["kappa"] if use_kappa else 0.0
    deltas, dense, sens, keep, nnz, first = [], [], [], [], [], []
    for i, ly in enumerate(net.layers):
        a = layer_points(ly, layer_input(net, i, S))  # (|S| * positions, fan_in)
        w = ly.weight_matrix().detach()
        deltas.append(delta_hat(w, a) + kappa)
        nnz.append(int((w != 0).sum()))
        dense.append(bool((a < 0).any()))
        s = edge_sensitivity(w, a)
        sens.append(s)
        keep.append(RowKeep(_split_rows(s, w)))
        if i == 0:
            first.append(a)
    return CoreNetPlan(net=net, x=x, S=S, gen_state=g.get_state(), before=before, constants=c, K=K,
                       deltas=deltas, delta=delta, signed_input=dense, inputs=first, sens=sens,
                       keep=keep, nnz=nnz, propagate=propagate, original=module)


def corenet(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA,
            seed: int | torch.Generator | None = 0,
            K: float | None = None, n_points: int | None = None, use_kappa: bool = True,
            propagate: bool = True, _allow_large_eps: bool = False, _plan: CoreNetPlan | None = None
            ) -> PruneResult:
    """Prune a copy of ``module`` with CoreNet at relative error ``eps`` and failure probability ``delta``.

    ``propagate=False`` allocates the error uniformly, ``eps_l = eps'`` for every layer, instead of the
    theorem's ``eps' / Delta_{l->}``. The end-to-end statement then holds with the larger
    ``eps_end_to_end = 2 (L - 1) max_l eps_l Delta_{l->}`` (sound by monotonicity: with ``eps'' = max_l eps_l
    Delta_{l->}`` every layer gets at least the samples the theorem asks for at ``eps''``), recorded in
    ``extra["eps_end_to_end"]``; ``guaranteed`` is False when it is >= 1 (vacuous). At a fixed size budget
    this allocation is far better in practice: ``Delta_hat`` (a mean of ``sum|w a| / |sum w a|``, inflated by
    near-zero pre-activations) is in the hundreds on trained nets, so the theorem's allocation gives the last
    layer a ``prod Delta``-times larger ``eps_l`` and prunes it to a few percent (digits MLP 64-64-10 at 50 %
    sparsity: last layer 3 % kept, test error 0.71; uniform: 0.05) while its certified ``eps`` is vacuous
    anyway. :func:`prunebound.coresets.prune` uses ``propagate=False`` for CoreNet with ``keep_ratio``.
    """
    if _allow_large_eps:
        check_positive("eps", eps)
    else:
        check_probability("eps", eps)
    plan = _plan or corenet_plan(module, data, delta=delta, seed=seed, K=K, n_points=n_points,
                                 use_kappa=use_kappa, propagate=propagate)
    return _apply(plan, eps)


def _apply(plan: CoreNetPlan, eps: float) -> PruneResult:
    """One CoreNet pass at ``eps`` on a fresh copy; layers from the input forward (later layers see the
    sparsified earlier ones; cached sensitivities are used while every earlier layer is unchanged)."""
    net = Network.from_module(clone(plan.net.module))
    g = torch.Generator()
    g.set_state(plan.gen_state)
    c, S = plan.constants, plan.S
    eps_all = plan.layer_eps(eps)
    eps_l, m_l, s_l = [], [], []
    changed = False
    for i, ly in enumerate(net.layers):
        a = layer_points(ly, layer_input(net, i, S)) if changed else plan.inputs[i]
        s = None if changed else plan.sens[i]
        new_w, mask, m, tot = sparsify_layer(ly.weight_matrix(), a, eps=eps_all[i], delta=plan.layer_delta(i),
                                             eta=c["eta"], K=plan.K, seed=g, s=s)
        set_layer(net, i, new_w, mask)
        changed = True
        eps_l.append(eps_all[i])
        m_l.append(int(m.sum()))
        s_l.append(float(tot.sum()))
    return finish_corenet(plan, net, "corenet", eps, eps_l, m_l, s_l)


def finish_corenet(plan: CoreNetPlan, net: Network, method: str, eps: float, eps_l: list[float], m_l: list[int],
                   s_l: list[float], extra: dict | None = None) -> PruneResult:
    """The :class:`PruneResult` of a CoreNet pass (plain or hybrid): the certified end-to-end error is ``eps``
    when the per-layer ``eps_l`` follow the theorem's allocation (``propagate``), else
    ``2 (L - 1) max_l eps_l prod_{k >= l} Delta_hat_k``; ``extra`` adds method-specific fields."""
    c, L = plan.constants, len(net.layers)
    eps_prime = eps / (2.0 * max(L - 1, 1))
    e2e = 2.0 * max(L - 1, 1) * max(e * math.prod(plan.deltas[i:]) for i, e in enumerate(eps_l))
    e2e = eps if plan.propagate else e2e
    return finish(net, plan.before, method=method, eps=eps, delta=plan.delta, eps_l=eps_l,
                  delta_l=[plan.delta / c["eta"]] * L, m_l=m_l, s_l=s_l, eps_certified=e2e,
                  extra={**c, "K": plan.K, "Delta_hat": plan.deltas, "eps_prime": eps_prime,
                         "allocation": "theorem" if plan.propagate else "uniform", "eps_end_to_end": e2e,
                         "dense_layers": [],
                         "signed_input_layers": [ly.path for i, ly in enumerate(net.layers) if plan.signed_input[i]],
                         **(extra or {}), "n_points_used": int(plan.S.shape[0])},
                  original=plan.original)
