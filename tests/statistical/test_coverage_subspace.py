"""Coverage of the subspace compression bound (Lotfi et al. 2022) with the harness on teacher tasks.

* ``test_subspace_bound_covers``: the full pipeline (subspace training, learned quantization, arithmetic
  coding, Occam/kl-inverse with the grid paid) must violate at a rate consistent with <= δ (one-sided
  binomial test).
* ``test_unpaid_grid_union_is_caught`` / ``test_paid_grid_union_covers``: a grid of many random subspaces (one
  per projection seed, d = 1, codebook {-s, +s} fixed in the prior, so the message is 1 bit) on a task whose
  labels are pure noise (every classifier has true risk 1/2).  Keeping the best of the grid while paying
  ``log2 |grid|`` bits is a valid bound; dropping that payment (δ unadjusted for the union) must be caught.
"""

import os

import pytest
import torch

from prunebound.bounds.subspace import SubspaceModel, subspace_bound, subspace_compress
from prunebound.bounds.subspace_projection import make_projection
from prunebound.data import teacher_task
from prunebound.network import mlp, to_vector
from prunebound.testing import binomial_upper_pvalue, coverage

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
DELTA = 0.05


def _pipeline(train, seed):
    res = subspace_compress(mlp(5, [16], 2, seed=0), train, grid=((6, 4), (12, 4)), epochs=6, qat_epochs=2,
                            lr=0.05, projection="fastfood", seed=seed, delta=DELTA)
    return res.model, res.value


@pytest.mark.statistical
@pytest.mark.slow
def test_subspace_bound_covers():
    task = teacher_task(5, 8, 2, 0.2, seed=0)
    reps = 200 if FULL else 12
    r = coverage(_pipeline, task, n=150, reps=reps, delta=DELTA, seed=100, n_test=100_000 if FULL else 20_000)
    assert r.holds(0.01), r.to_dict()
    assert r.violations <= max(1, int(0.1 * reps))


class _SeedGrid:
    """Best of ``K`` random one-dimensional subspaces (projection seeds) x signs, on ``n`` examples."""

    def __init__(self, K: int, s: float, pay: bool):
        self.K, self.s, self.pay = K, s, pay
        self.base = mlp(5, [16], 2, seed=0)
        self.theta0 = to_vector(self.base)
        D = self.theta0.numel()
        # all K directions u_k = P_k e_1 (each P_k a seeded fastfood projection R^1 -> R^D)
        self.U = torch.stack([make_projection("fastfood", D, 1, seed=k)(torch.ones(1)) for k in range(K)])

    def _errors(self, x, y):
        thetas = torch.cat([self.theta0 + self.s * self.U, self.theta0 - self.s * self.U])  # (2K, D)
        W1 = thetas[:, :80].reshape(-1, 16, 5)
        b1 = thetas[:, 80:96]
        W2 = thetas[:, 96:128].reshape(-1, 2, 16)
        b2 = thetas[:, 128:130]
        h = torch.relu(torch.einsum("khi,ni->knh", W1, x) + b1[:, None, :])
        z = torch.einsum("kch,knh->knc", W2, h) + b2[:, None, :]
        return (z.argmax(-1) != y[None, :]).double().mean(1)

    def __call__(self, train, seed):
        err = self._errors(train.x, train.y)
        j = int(torch.argmin(err))
        k, sign = j % self.K, (1.0 if j < self.K else -1.0)
        P = make_projection("fastfood", self.theta0.numel(), 1, seed=k)
        sub = SubspaceModel(self.base, self.theta0, P)
        with torch.no_grad():
            sub.w.fill_(sign * self.s)
        # message = 1 bit (the sign); the grid of K projection seeds is paid (or not) by log2 K bits
        t = subspace_bound(float(err[j]), len(train), 1, delta=DELTA, grid_size=self.K if self.pay else 1)
        return sub.materialize(), t.value


@pytest.mark.statistical
@pytest.mark.slow
def test_unpaid_grid_union_is_caught():
    task = teacher_task(5, 8, 2, 0.5, seed=0)  # labels independent of x: every classifier has risk 1/2
    reps = 100 if FULL else 15
    r = coverage(_SeedGrid(2000, 8.0, pay=False), task, n=100, reps=reps, delta=DELTA, seed=7, n_test=20_000)
    assert r.violations > DELTA * reps
    assert binomial_upper_pvalue(r.violations, reps, DELTA) < 1e-3, r.to_dict()
    assert not r.holds(0.01)


@pytest.mark.statistical
@pytest.mark.slow
def test_paid_grid_union_covers():
    task = teacher_task(5, 8, 2, 0.5, seed=0)
    reps = 100 if FULL else 15
    r = coverage(_SeedGrid(2000, 8.0, pay=True), task, n=100, reps=reps, delta=DELTA, seed=7, n_test=20_000)
    assert r.holds(0.01), r.to_dict()
    assert r.violations <= max(1, int(0.1 * reps))
