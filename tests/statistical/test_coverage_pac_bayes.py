"""Coverage of the Occam bound and the Gaussian-posterior kl PAC-Bayes bound on a teacher task.

* Occam: a fixed, data-independent finite class -- the ``5-4-2`` ReLU MLP with every weight and bias rounded
  to the grid ``0.5 * {-3, ..., 3}`` (uniform prior, ``bits = n_params * log2 7``).  The trained-then-
  rounded model is the selected hypothesis.  The violation rate must be consistent with <= delta (one-sided
  binomial test).
* Broken Occam: the best of 100 random members of that class (selected by training error) with the
  complexity term dropped (bits = 0, delta' = 0.9): a fixed-hypothesis bound applied to a selected one.
* Gaussian kl bound: posterior ``N(w, sigma^2 I)`` with the prior centred at the (seeded, data-independent)
  initialisation; the risk compared is the Gibbs risk of the posterior, estimated with independent weight
  noise for every test example.
"""

import math
import os

import pytest
import torch
from torch import nn

from prunebound.bounds.certify import pac_bayes_gaussian_bound
from prunebound.bounds.pac_bayes import occam_bound
from prunebound.data import teacher_task
from prunebound.network import count_parameters, mlp
from prunebound.testing import coverage
from prunebound.train import evaluate, fit

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
REPS = 200 if FULL else 30
DELTA = 0.05
TASK = teacher_task(d_in=5, width=8, n_classes=2, label_noise=0.1, seed=2)
GRID_STEP, GRID_HALF = 0.5, 3


def _train(train, seed: int) -> nn.Module:
    m = mlp(5, [4], 2, seed=seed)
    fit(m, train, epochs=8, lr=0.05, batch_size=64, seed=seed)
    return m


def _round_to_grid(m: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.clamp(torch.round(p / GRID_STEP), -GRID_HALF, GRID_HALF) * GRID_STEP)
    return m


def _occam_bits(m: nn.Module) -> float:
    return count_parameters(m) * math.log2(2 * GRID_HALF + 1)


def _occam(train, seed):
    m = _round_to_grid(_train(train, seed))
    return m, occam_bound(evaluate(m, train).error, _occam_bits(m), len(train), delta=DELTA).value


def _occam_broken(train, seed):
    """Select the best of K random members of the finite class by training error, then report an Occam bound
    that drops the complexity (bits = 0, delta = 0.9): a fixed-hypothesis bound applied to a selected one."""
    g = torch.Generator().manual_seed(seed)
    best, best_err = None, 2.0
    for _ in range(100):
        m = mlp(5, [4], 2, seed=None)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randint(-GRID_HALF, GRID_HALF + 1, p.shape, generator=g) * GRID_STEP)
        err = evaluate(m, train).error
        if err < best_err:
            best, best_err = m, err
    return best, occam_bound(best_err, 0.0, len(train), delta=0.9).value


@pytest.mark.statistical
@pytest.mark.slow
def test_occam_bound_covers():
    res = coverage(_occam, TASK, n=1000, reps=REPS, delta=DELTA, seed=0, n_test=50_000)
    assert res.holds(0.01), res.to_dict()
    assert max(res.bounds) < 1.0  # the bound is informative, so the test has power


@pytest.mark.statistical
@pytest.mark.slow
def test_occam_without_complexity_is_caught():
    res = coverage(_occam_broken, TASK, n=200, reps=REPS, delta=DELTA, seed=0, n_test=50_000)
    assert res.p_value < 0.01, res.to_dict()


class GibbsMLP(nn.Module):
    """A Gaussian posterior N(w, sigma^2 I) over an MLP's weights and biases, drawing independent weights for
    every input row (so the 0-1 error over a test set estimates the Gibbs risk without dependence)."""

    def __init__(self, base: nn.Sequential, sigma: float, seed: int) -> None:
        super().__init__()
        self.base, self.sigma = base, float(sigma)
        self.g = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.double()
        for mod in self.base:
            if isinstance(mod, nn.Linear):
                b = h.shape[0]
                w = mod.weight.double() + self.sigma * torch.randn(
                    (b, *mod.weight.shape), generator=self.g, dtype=torch.float64
                )
                bias = mod.bias.double() + self.sigma * torch.randn(
                    (b, mod.out_features), generator=self.g, dtype=torch.float64
                )
                h = torch.einsum("boi,bi->bo", w, h) + bias
            else:
                h = mod(h)
        return h


def _gaussian(train, seed):
    m = _train(train, seed)
    t = pac_bayes_gaussian_bound(
        m,
        train,
        delta=DELTA,
        seed=seed,
        sigmas=(0.05, 0.1, 0.2),
        prior_mean="init",
        init_seed=seed,
        mc_samples=100,
    )
    return GibbsMLP(m, t.parts["sigma"], seed), t.value


@pytest.mark.statistical
@pytest.mark.slow
def test_gaussian_kl_bound_covers_gibbs_risk():
    res = coverage(_gaussian, TASK, n=1000, reps=REPS, delta=DELTA, seed=100, n_test=20_000)
    assert res.holds(0.01), res.to_dict()
    assert max(res.bounds) < 1.0
