"""SiPP: sensitivity-informed provable pruning of weights (Baykal, Liebenwein, Gilitschenski, Feldman, Rus;
"SiPPing Neural Networks", arXiv 1910.05422, SIAM J. Math. Data Sci. 2022).

As published (``sensitivity="signed"``, the default): for every neuron ``i`` the positive edges ``W+_i`` and the
negative edges ``W-_i`` are separate rows ``f`` with CoreNet's empirical sensitivities ``s_fj = max_{x in S}
w_ij a_j(x) / sum_{k in f} w_ik a_k(x)`` (:func:`~prunebound.coresets.sensitivity.edge_sensitivity`; signed
inputs are split ``a = a+ - a-``, so the first layer is pruned too), ``S_f = sum_j s_fj``. Each row gets
``m_f`` i.i.d. draws from ``q = s / S_f``, reweighted ``w~ = w count / (m_f q)``; with the error model of
:mod:`prunebound.coresets.sipp_budget`, w.p. >= 1 - delta / eta per neuron, for ``x`` from the data
distribution::

    |z~_i(x) - z_i(x)| <= eps_i sum_j |w_ij a_j(x)|,     eps_i = max(err_{W+_i}(m), err_{W-_i}(m)).

* with ``eps`` (:func:`sipp`): every row gets ``m_f = sipp_sample_size(alpha_f, eps)`` (``err_f(m_f) <= eps``);
* with a size budget (:func:`prunebound.coresets.prune` with ``keep_ratio``): the sample budget ``B`` is
  allocated over all rows of all layers by the convex program of :mod:`~prunebound.coresets.sipp_budget`
  (cvxpy), and ``B`` is searched so that the expected kept fraction meets ``keep_ratio``. The Guarantee then
  reports ``eps = max_f err_f(m_f)`` (vacuous when >= 1) and each layer's maximum in ``eps_per_layer``.
* ``variant="det"`` (SiPP-Det): keep the ``m_f`` most sensitive edges of each row, no reweighting (no
  probabilistic statement; ``guaranteed=False``).

``sensitivity="abs"`` (method ``"sipp_abs"`` in :func:`prunebound.coresets.prune`) is this package's earlier
variant, kept under its own name: ``s_ij = max_x |w_ij a_j(x)| / sum_k |w_ik a_k(x)|`` per neuron (no sign
split, :func:`~prunebound.coresets.sensitivity.abs_edge_sensitivity`), ``m_i = ceil(K (6 + 2 eps) S_i log(8
eta / delta) / eps^2)`` (Bernstein form) and one common ``eps`` searched for a keep ratio.

Convolutions: a ``Conv1d``/``Conv2d`` with ``groups = 1`` is the linear map ``W.reshape(C_out, fan_in)`` on
every input patch (:mod:`prunebound.coresets.patches`); the sensitivities' maximum runs over every (sample,
output position) patch of S, one sampled kernel serves all positions, a neuron is an output channel at one
position (``eta`` counts ``C_out * P`` per conv) and the statement above holds per (channel, position).
This is how the authors' implementation (torchprune) treats conv layers for SiPP, CoreNet and PFP:
sensitivities on unfolded patches with the maximum over positions, and the number of patches ``P`` in the
log term of the sample size (here through ``eta``). Signed patches (a first conv on raw images) are split
as for a first Linear layer. Residual blocks need nothing else: each layer's inputs are read from the
(partially sparsified) network.

Deviations: ``delta_f = delta / (4 eta)`` instead of torchprune's fixed 1e-16 (see
:mod:`~prunebound.coresets.sipp_budget`); no SiPP-Hybrid; layers are processed from the input forward (later
layers' sensitivities on the sparsified earlier ones; the budget is allocated on the dense network's
sensitivities). Linear and ungrouped Conv1d/Conv2d layers; BatchNorm is folded for the computation and the
result is returned on the user's module (:mod:`prunebound.coresets.restore`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from prunebound.coresets.keep_ratio import RowKeep
from prunebound.coresets.patches import layer_input, layer_points, neurons_per_layer, require_patch_layers
from prunebound.coresets.prune import finish, prepare, sensitivity_batch, set_layer
from prunebound.coresets.sampling import bernstein_sample_size, make_generator, sparsify_rows
from prunebound.coresets.sensitivity import abs_edge_sensitivity, edge_sensitivity
from prunebound.coresets.sipp_budget import (
    BudgetProgram,
    kkt_allocation,
    sipp_alpha,
    sipp_error,
    sipp_sample_size,
)
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_probability
from prunebound.network import Network, clone
from prunebound.pruning.report import PruneResult

__all__ = ["sipp", "sipp_plan", "SiPPPlan", "sipp_budget_search"]


def _topk_rows(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """0/1 mask keeping the ``m_r`` largest positive entries of each row (vectorised)."""
    order = torch.argsort(s, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1]).expand_as(order).contiguous())
    return ((rank < m[:, None]) & (s > 0)).to(s.dtype)


def _weight_rows(w: torch.Tensor, signed: bool) -> torch.Tensor:
    """Row weights: sign groups stacked ``[W+; W-]`` (signed) or one row per neuron."""
    return torch.cat([w * (w > 0), w * (w < 0)]) if signed else w


def _rows(w: torch.Tensor, a: torch.Tensor, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(row weights, row sensitivities)``: sign groups stacked ``[W+; W-]`` (signed) or one row per neuron.
    ``a`` are the layer's input points ``(n_points, fan_in)`` (patches for a conv,
    :func:`~prunebound.coresets.patches.layer_points`)."""
    if not signed:
        return w, abs_edge_sensitivity(w, a)
    s = edge_sensitivity(w, a)
    pos, neg = w > 0, w < 0
    return _weight_rows(w, True), torch.cat([s * pos, s * neg])


@dataclass
class SiPPPlan:
    """Everything of a SiPP run that does not depend on ``eps`` or the budget (computed once)."""

    net: Network
    S: torch.Tensor
    gen_state: torch.Tensor
    before: int
    eta: int
    K: float
    delta: float
    variant: str
    signed: bool
    sens: list  # per layer: row sensitivities on the dense network
    keep: list
    _program: BudgetProgram | None = None
    original: nn.Module | None = None  # the user's module: the result is returned on its architecture

    def layer_m(self, i: int, tot: torch.Tensor, eps: float) -> torch.Tensor:
        if self.signed:
            return sipp_sample_size(sipp_alpha(tot, delta=self.delta, eta=self.eta), eps)
        return bernstein_sample_size(tot, eps=eps, delta=self.delta, eta=self.eta, K=self.K)

    def _kept(self, ms) -> float:
        kept = 0.0
        for rk, m in zip(self.keep, ms):
            kept += rk.expected_total(m) if self.variant == "rand" else float(torch.minimum(m, rk.nnz).sum())
        return kept / self.before

    def kept_fraction(self, eps: float) -> float:
        return self._kept([self.layer_m(i, rk.tot, eps) for i, rk in enumerate(self.keep)])

    def program(self) -> BudgetProgram:
        if self._program is None:  # rows weighted 1 / (neurons of the layer): each layer's mean error
            self._program = BudgetProgram(*self._rows_all())
        return self._program

    def _rows_all(self):
        alpha = torch.cat([sipp_alpha(rk.tot, delta=self.delta, eta=self.eta) for rk in self.keep])
        nnz = torch.cat([rk.nnz for rk in self.keep])
        wt = torch.cat([torch.full((rk.nnz.numel(),), 2.0 / rk.nnz.numel(), dtype=torch.float64)
                        for rk in self.keep])
        return alpha, nnz, wt

    def split(self, m: torch.Tensor) -> list[torch.Tensor]:
        out, k = [], 0
        for rk in self.keep:
            n = rk.nnz.numel()
            out.append(m[k : k + n])
            k += n
        return out

    def allocate(self, budget: float) -> list[torch.Tensor]:
        """Per-layer integer sample sizes from the budget program (rounded up)."""
        m = torch.ceil(self.program().solve(budget) - 1e-9).clamp_min(0).to(torch.int64)
        return self.split(m)


def sipp_plan(module: nn.Module, data, *, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
              variant: str = "rand", K: float = 3.0, n_points: int = 128, sensitivity: str = "signed") -> SiPPPlan:
    """Validate, draw S and compute the dense network's sensitivities (everything independent of ``eps``)."""
    if variant not in ("rand", "det"):
        raise InvalidParameterError(f"variant must be 'rand' or 'det'; got {variant!r}")
    if sensitivity not in ("signed", "abs"):
        raise InvalidParameterError(f"sensitivity must be 'signed' or 'abs'; got {sensitivity!r}")
    net, x, before = prepare(module, data, eps=None, delta=delta)
    if x is None:
        raise DataError("SiPP is data-informed: pass data (a Dataset or input tensor)")
    require_patch_layers(net, "SiPP")
    eta = sum(neurons_per_layer(net, x))  # a conv's neurons: channels x output positions
    g = make_generator(seed)
    S = sensitivity_batch(x, n_points, g)
    signed = sensitivity == "signed"
    sens = [_rows(ly.weight_matrix().detach(), layer_points(ly, layer_input(net, i, S)), signed)[1]
            for i, ly in enumerate(net.layers)]
    return SiPPPlan(net=net, S=S, gen_state=g.get_state(), before=before, eta=eta, K=K, delta=delta,
                    variant=variant, signed=signed, sens=sens, keep=[RowKeep(s) for s in sens], original=module)


def sipp(module: nn.Module, data, *, eps: float, delta: float = DEFAULT_DELTA, seed: int | torch.Generator | None = 0,
         variant: str = "rand", K: float = 3.0, n_points: int = 128, sensitivity: str = "signed",
         _allow_large_eps: bool = False, _plan: SiPPPlan | None = None, _m: list | None = None
         ) -> PruneResult:
    """Prune a copy of ``module`` with SiPP (``variant`` ``"rand"`` or ``"det"``; ``sensitivity`` ``"signed"``
    as published or ``"abs"``, the earlier variant). ``K`` is the Bernstein constant of the ``"abs"`` form."""
    if _allow_large_eps:
        check_positive("eps", eps)
    else:
        check_probability("eps", eps)
    plan = _plan or sipp_plan(module, data, delta=delta, seed=seed, variant=variant, K=K, n_points=n_points,
                              sensitivity=sensitivity)
    net = Network.from_module(clone(plan.net.module))
    g = torch.Generator()
    g.set_state(plan.gen_state)
    eta, S = plan.eta, plan.S
    m_l, s_l, e_l = [], [], []
    for i, ly in enumerate(net.layers):
        w = ly.weight_matrix().detach()
        if i == 0:  # nothing sparsified yet: the plan's sensitivities
            w_rows, s = _weight_rows(w, plan.signed), plan.sens[0]
        else:
            w_rows, s = _rows(w, layer_points(ly, layer_input(net, i, S)), plan.signed)
        tot = s.double().sum(1)
        m = plan.layer_m(i, tot, eps) if _m is None else _m[i]
        if plan.variant == "rand":
            new_rows, mask_rows = sparsify_rows(w_rows, s, m, g)
        else:
            mask_rows = _topk_rows(s, m)
            new_rows = w_rows * mask_rows
        out = w.shape[0]
        if plan.signed:
            new_w, mask = new_rows[:out] + new_rows[out:], torch.maximum(mask_rows[:out], mask_rows[out:])
            sat = m >= (s > 0).sum(1)
            err = torch.where(sat, torch.zeros(m.shape, dtype=torch.float64),
                              sipp_error(m, sipp_alpha(tot, delta=plan.delta, eta=eta)))
            e_l.append(float(err.max()) if err.numel() else 0.0)
        else:
            new_w, mask = new_rows, mask_rows
            e_l.append(eps)
        set_layer(net, i, new_w, mask)
        m_l.append(int(m.sum()))
        s_l.append(float(tot.sum()))
    L = len(net.layers)
    eps_out = eps if _m is None else max(e_l)
    if not math.isfinite(eps_out):
        eps_out = float("inf")
    name = f"sipp-{plan.variant}" if plan.signed else f"sipp_abs-{plan.variant}"
    return finish(net, plan.before, method=name, eps=eps_out, delta=plan.delta, eps_l=e_l,
                  delta_l=[plan.delta / eta] * L, m_l=m_l, s_l=s_l, guaranteed=plan.variant == "rand",
                  extra={"eta": eta, "K": plan.K, "n_points_used": int(S.shape[0]),
                         "sensitivity": "signed" if plan.signed else "abs",
                         "allocation": "eps" if _m is None else "budget program (cvxpy)"},
                  original=plan.original)


def sipp_budget_search(module, data, *, keep_ratio: float, delta: float = DEFAULT_DELTA, seed=0, iters: int = 30,
                       tol: float = 0.01, **kw) -> PruneResult:
    """SiPP at a keep ratio: allocate a sample budget ``B`` by the convex program and search ``B`` (bisection
    on ``log B``, expected kept fraction on the dense network's sensitivities), then one pruning pass."""
    plan = sipp_plan(module, data, delta=delta, seed=seed, **kw)
    alpha, nnz, wt = plan._rows_all()
    best = None
    target = keep_ratio
    for _ in range(2):
        # the budget B is searched through the program's multiplier (KKT, vectorised; kept fraction is
        # non-increasing in lam); the allocation at that B is then solved by cvxpy
        a, b = math.log(1e-12), math.log(1e12)
        for _ in range(max(iters, 40)):
            mid = 0.5 * (a + b)
            m = kkt_allocation(alpha, nnz, wt, math.exp(mid))
            if plan._kept(plan.split(torch.ceil(m - 1e-9).to(torch.int64))) > target:
                a = mid
            else:
                b = mid
        budget = float(kkt_allocation(alpha, nnz, wt, math.exp(0.5 * (a + b))).sum())
        ms = plan.allocate(budget)
        out = sipp(module, data, eps=1.0, delta=delta, seed=seed, _allow_large_eps=True, _plan=plan, _m=ms)
        if best is None or abs(out.guarantee.keep_ratio - keep_ratio) < abs(best.guarantee.keep_ratio - keep_ratio):
            best = out
        if abs(out.guarantee.keep_ratio - keep_ratio) <= tol:
            break
        target = min(1.0, max(1e-9, target + keep_ratio - out.guarantee.keep_ratio))
    return best
