"""SiPP's error model and its budget allocation across all rows of a network, as a convex program.

Error model (Baykal et al., "SiPPing neural networks", SIAM J. Math. Data Sci. 2022; torchprune
``sipp_allocator``). Row ``f`` (the positive or the negative edges of one neuron) with total empirical
sensitivity ``S_f`` has the coefficient ``alpha_f = 2 c log(8 (P + 1) k / delta_f) S_f`` (``c = 3``; ``P = 1``
patch and kernel size ``k = 1`` for a linear layer). Sampling ``m`` edges i.i.d. from ``q = s / S_f`` and
reweighting gives, by Bernstein's inequality, w.p. >= 1 - delta_f, a relative error (of the row's contribution
``sum_j |w_fj a_j(x)|``) at most::

    err_f(m) = 1/2 ( sqrt( (alpha_f / (K m))^2 + 6 alpha_f / (K m) ) + alpha_f / (K m) ),     K = 3,

equivalently ``m_f(eps) = alpha_f (3 + 2 eps) / (2 K eps^2)`` (:func:`sipp_sample_size`). Here ``delta_f =
delta / (4 eta)``: a union bound over the ``eta`` neurons, their two sign groups and, for a layer on signed
inputs, the two non-negative problems of the split ``a = a+ - a-`` (torchprune uses a fixed ``delta = 1e-16``).

Budget program (torchprune ``_allocate_method``; there solved with MOSEK, here with an open conic solver,
CLARABEL / ECOS / SCS, whichever cvxpy has)::

    minimise   sum_f  err_f(m_f) / F_{l(f)}          (F_l = number of rows of f's layer: each layer's mean)
    subject to sum_f m_f <= B,   0 <= m_f <= nnz_f.

``err_f`` is convex in ``m > 0``: it is ``1/2 (|| (sqrt(a)/m, sqrt(b/m)) ||_2 + c/m)`` with ``a = c^2``,
``b = 6 c``, ``c = alpha_f / K`` -- a Euclidean norm of convex non-negative functions plus a convex one (DCP).
Allocations are rounded up, as in torchprune.
"""

from __future__ import annotations

import math

import torch

from prunebound.errors import InvalidParameterError

__all__ = ["sipp_alpha", "sipp_error", "sipp_sample_size", "allocate_budget", "kkt_allocation", "BudgetProgram",
           "SOLVERS"]

SOLVERS = ("CLARABEL", "ECOS", "SCS")
K_SIPP = 3.0


def sipp_alpha(total_sensitivity: torch.Tensor, *, delta: float, eta: int, c: float = 3.0) -> torch.Tensor:
    """``alpha_f = 2 c log(8 * 2 / delta_f) S_f`` with ``delta_f = delta / (4 eta)`` (linear layer: P = k = 1)."""
    d_f = delta / (4.0 * eta)
    return 2.0 * c * math.log(16.0 / d_f) * torch.as_tensor(total_sensitivity, dtype=torch.float64)


def sipp_error(m: torch.Tensor, alpha: torch.Tensor, K: float = K_SIPP) -> torch.Tensor:
    """``err_f(m)`` of the module docstring (``inf`` where ``m = 0`` and ``alpha > 0``; 0 where ``alpha = 0``)."""
    m = torch.as_tensor(m, dtype=torch.float64)
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    t = alpha / (K * m)
    e = 0.5 * (torch.sqrt(t * t + 6.0 * t) + t)
    return torch.where(alpha == 0, torch.zeros_like(e), e)


def sipp_sample_size(alpha: torch.Tensor, eps: float, K: float = K_SIPP) -> torch.Tensor:
    """The inverse of :func:`sipp_error`: ``m = ceil(alpha (3 + 2 eps) / (2 K eps^2))``."""
    if not eps > 0:
        raise InvalidParameterError(f"eps must be > 0; got {eps!r}")
    a = torch.as_tensor(alpha, dtype=torch.float64)
    return torch.ceil(a * (3.0 + 2.0 * eps) / (2.0 * K * eps * eps)).clamp(max=2.0**62).to(torch.int64)


def _solver() -> str:
    import cvxpy as cp

    for s in SOLVERS:
        if s in cp.installed_solvers():
            return s
    raise InvalidParameterError(f"SiPP's budget program needs one of the open solvers {SOLVERS} in cvxpy")


class BudgetProgram:
    """The budget program for fixed ``alpha``, ``nnz`` and row weights; ``solve(B)`` re-solves for a budget."""

    def __init__(self, alpha: torch.Tensor, nnz: torch.Tensor, weight: torch.Tensor, K: float = K_SIPP):
        import cvxpy as cp
        import numpy as np

        alpha = torch.as_tensor(alpha, dtype=torch.float64)
        self.live = (alpha > 0) & (torch.as_tensor(nnz) > 0)
        self.n = int(alpha.numel())
        a = (alpha[self.live] / K).numpy()
        w = torch.as_tensor(weight, dtype=torch.float64)[self.live].numpy()
        ub = torch.as_tensor(nnz, dtype=torch.float64)[self.live].numpy()
        self.ub = ub
        self.m = cp.Variable(a.size)
        self.B = cp.Parameter(nonneg=True)
        inv = cp.inv_pos(self.m)
        err = 0.5 * (cp.norm(cp.vstack([cp.multiply(a, inv), cp.multiply(np.sqrt(6.0 * a), cp.power(self.m, -0.5))]),
                             2, axis=0) + cp.multiply(a, inv))
        self.objective = cp.sum(cp.multiply(w, err))
        lo = np.minimum(1e-6, ub)
        self.problem = cp.Problem(cp.Minimize(self.objective), [cp.sum(self.m) <= self.B, self.m >= lo,
                                                                 self.m <= ub])
        self.solver = _solver()

    def solve(self, budget: float) -> torch.Tensor:
        """Continuous optimal ``m`` (length = all rows; 0 for rows without sensitivity)."""
        out = torch.zeros(self.n, dtype=torch.float64)
        if int(self.live.sum()) == 0:
            return out
        self.B.value = float(max(budget, float(min(1e-6, self.ub.min())) * self.ub.size))
        import cvxpy as cp

        solved = False
        for solver in (self.solver, *(s for s in SOLVERS if s != self.solver and s in cp.installed_solvers())):
            try:  # a numerical failure of one open solver: retry with the next, else refuse below
                self.problem.solve(solver=solver)
                solved = True
                break
            except cp.error.SolverError:
                continue
        if not solved or self.m.value is None:
            raise InvalidParameterError(f"SiPP budget program failed ({self.problem.status}) at budget {budget}")
        out[self.live] = torch.as_tensor(self.m.value, dtype=torch.float64).clamp_min(0)
        return out


def allocate_budget(alpha: torch.Tensor, nnz: torch.Tensor, weight: torch.Tensor, budget: float,
                    K: float = K_SIPP) -> torch.Tensor:
    """Optimal real allocation of ``budget`` samples over rows (see the module docstring)."""
    return BudgetProgram(alpha, nnz, weight, K).solve(budget)


def kkt_allocation(alpha: torch.Tensor, nnz: torch.Tensor, weight: torch.Tensor, lam: float,
                   K: float = K_SIPP, steps: int = 60) -> torch.Tensor:
    """The program's solution for the Lagrange multiplier ``lam`` of the budget constraint: per row,
    ``m_f = argmin_{0 < m <= nnz_f} weight_f err_f(m) + lam m`` (the derivative is increasing in ``m``;
    vectorised bisection on ``log m``). ``sum_f m_f(lam)`` is non-increasing in ``lam``; the budget at which
    the program's solution equals this allocation is that sum (KKT). Used to search the budget quickly; the
    final allocation is solved by cvxpy."""
    c = torch.as_tensor(alpha, dtype=torch.float64) / K
    w = torch.as_tensor(weight, dtype=torch.float64)
    ub = torch.as_tensor(nnz, dtype=torch.float64)

    def grad(m):
        t = c / m
        root = torch.sqrt(t * t + 6.0 * t).clamp_min(1e-300)
        return w * 0.5 * ((2.0 * t + 6.0) / (2.0 * root) + 1.0) * (-c / (m * m)) + lam

    live = (c > 0) & (ub > 0)
    lo = torch.full_like(c, math.log(1e-6))
    hi = torch.log(ub.clamp_min(1e-6))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = grad(torch.exp(mid)) > 0
        hi = torch.where(up, mid, hi)
        lo = torch.where(up, lo, mid)
    m = torch.exp(0.5 * (lo + hi))
    m = torch.where(grad(ub.clamp_min(1e-6)) <= 0, ub, m)
    return torch.where(live, m, torch.zeros_like(m))
