"""SiPP's budget program: a cvxpy SolverError falls back to the other open solvers, then refuses clearly."""

import pytest
import torch

from prunebound.coresets import sipp_budget
from prunebound.errors import InvalidParameterError


def _program():
    return sipp_budget.BudgetProgram(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4, 4, 4]),
                                     torch.ones(3, dtype=torch.float64))


def test_failing_solver_falls_back_to_another_with_the_same_answer(monkeypatch):
    import cvxpy as cp

    ref = _program().solve(6.0)
    prog = _program()
    real = cp.Problem.solve
    used = []

    def flaky(self, *a, solver=None, **k):
        used.append(solver)
        if solver == prog.solver:
            raise cp.error.SolverError("numerical trouble")
        return real(self, *a, solver=solver, **k)

    monkeypatch.setattr(cp.Problem, "solve", flaky)
    if len([s for s in sipp_budget.SOLVERS if s in cp.installed_solvers()]) < 2:
        pytest.skip("only one open solver installed")
    got = prog.solve(6.0)
    assert used[0] == prog.solver and len(used) >= 2
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-3)


def test_every_solver_failing_is_a_clear_refusal(monkeypatch):
    import cvxpy as cp

    prog = _program()
    prog.solve(6.0)  # a previous success must not leak its values into a failed solve

    def broken(self, *a, **k):
        raise cp.error.SolverError("numerical trouble")

    monkeypatch.setattr(cp.Problem, "solve", broken)
    with pytest.raises(InvalidParameterError, match="SiPP budget program failed"):
        prog.solve(5.0)
