"""Coverage on teacher tasks of the routes added by the compress pipeline, each with a broken variant caught.

* compress pipeline (subspace grid, union paid, files written) covers; the ``grid_best`` union bound of the
  prune -> quantize route covers, and dropping the union (δ per point instead of δ / |grid|) is caught on a task
  whose labels are noise (every classifier has true risk 1/2) with a large grid of fixed classifiers.
* data-dependent prior: the prior trained on a seeded split and the bound on the rest covers; the prior trained
  on the bound split itself (it memorises noise labels) is caught.
* PAC-Bayes with backprop: the MC + kl certificate covers the Gibbs risk; plugging the Monte-Carlo estimate in
  without its sample-convergence correction (m = 1 sample of a broad posterior) is caught.
"""

import os
import tempfile

import pytest
import torch
from torch import nn

from prunebound.bounds.grid import grid_certificate
from prunebound.bounds.pbb import pbb_train
from prunebound.bounds.subspace import base_subspace_params, prior_init, train_point
from prunebound.compress import compress
from prunebound.data import teacher_task
from prunebound.network import mlp
from prunebound.testing import binomial_upper_pvalue, coverage
from prunebound.train import fit

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
DELTA = 0.05
pytestmark = [pytest.mark.statistical, pytest.mark.slow]


# ------------------------------------------------------------------------------------------ compress pipeline
def _compress(train, seed):
    with tempfile.TemporaryDirectory() as d:
        r = compress(mlp(5, [16], 2, seed=0), train, out=d, grid=[(6, 4, 0.05), (12, 4, 0.05)], epochs=6,
                     qat_epochs=2, seed=seed, delta=DELTA, progress=False, quiet=True)
    return r.model, r.value


def test_compress_pipeline_covers():
    task = teacher_task(5, 8, 2, 0.2, seed=0)
    reps = 100 if FULL else 10
    r = coverage(_compress, task, n=150, reps=reps, delta=DELTA, seed=300, n_test=100_000 if FULL else 20_000)
    assert r.holds(0.01), r.to_dict()
    assert r.violations <= max(1, int(0.1 * reps))


class _FixedGrid:
    """Best of ``K`` classifiers fixed before the data (seeded random MLPs), certified by ``grid_best``."""

    def __init__(self, K: int, pay: bool):
        self.K, self.pay = K, pay
        g = torch.Generator().manual_seed(11)
        self.W1, self.b1 = torch.randn(K, 16, 5, generator=g), torch.randn(K, 16, generator=g)
        self.W2, self.b2 = torch.randn(K, 2, 16, generator=g), torch.randn(K, 2, generator=g)

    def module(self, k: int) -> nn.Module:
        m = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
        with torch.no_grad():
            m[0].weight.copy_(self.W1[k])
            m[0].bias.copy_(self.b1[k])
            m[2].weight.copy_(self.W2[k])
            m[2].bias.copy_(self.b2[k])
        return m

    def __call__(self, train, seed):
        h = torch.relu(torch.einsum("khi,ni->knh", self.W1, train.x) + self.b1[:, None, :])
        z = torch.einsum("kch,knh->knc", self.W2, h) + self.b2[:, None, :]
        err = (z.argmax(-1) != train.y[None, :]).double().mean(1)
        j = int(torch.argmin(err))
        m = self.module(j)
        # the classifiers are fixed in advance: a 0-bit code given the grid index
        c = grid_certificate(m, train, delta=DELTA, method="occam_declared_bits", grid=list(range(self.K)), point=j,
                             inner={"bits": 0.0}, pay_for_grid=self.pay)
        return m, c.value


def test_grid_best_unpaid_union_is_caught_and_paid_covers():
    task = teacher_task(5, 8, 2, 0.5, seed=0)  # labels independent of x
    reps = 100 if FULL else 15
    bad = coverage(_FixedGrid(2000, pay=False), task, n=100, reps=reps, delta=DELTA, seed=5, n_test=20_000)
    assert bad.violations > DELTA * reps and binomial_upper_pvalue(bad.violations, reps, DELTA) < 1e-3, bad.to_dict()
    good = coverage(_FixedGrid(2000, pay=True), task, n=100, reps=reps, delta=DELTA, seed=5, n_test=20_000)
    assert good.holds(0.01), good.to_dict()
    assert good.violations <= max(1, int(0.1 * reps))


# ------------------------------------------------------------------------------------------ data-dependent prior
class _PriorSplit:
    """A wide MLP prior trained to memorise (noise) labels, then a 2-dimensional subspace around it."""

    def __init__(self, honest: bool):
        self.honest = honest

    def __call__(self, train, seed):
        arch = mlp(5, [64], 2, seed=0)
        if self.honest:
            init, bound = prior_init(arch, train, init_seed=seed, prior_fraction=0.5, split_seed=seed,
                                     prior_epochs=60, prior_lr=1e-2, prior_batch_size=32)
        else:  # the flaw: the prior sees the examples the bound is computed on
            init, _ = prior_init(arch, None, init_seed=seed)
            fit(init, train, epochs=60, lr=1e-2, batch_size=32, seed=seed, optimizer="adam")
            bound = train
        base = base_subspace_params(projection="fastfood", seed=seed, grid=[(2, 2)])
        model, terms, _, _ = train_point(init, train, bound, d=2, levels=2, lr=1e-3, base_params=base,
                                         delta=DELTA, grid_size=1, epochs=1, qat_epochs=0, seed=seed)
        return model, terms.value


def test_prior_on_the_bound_split_is_caught_and_honest_split_covers():
    task = teacher_task(5, 8, 2, 0.5, seed=0)  # noise labels: a memorising prior has risk 1/2
    reps = 60 if FULL else 8
    bad = coverage(_PriorSplit(honest=False), task, n=200, reps=reps, delta=DELTA, seed=21, n_test=20_000)
    assert bad.violations > DELTA * reps and binomial_upper_pvalue(bad.violations, reps, DELTA) < 1e-3, bad.to_dict()
    good = coverage(_PriorSplit(honest=True), task, n=200, reps=reps, delta=DELTA, seed=21, n_test=20_000)
    assert good.holds(0.01), good.to_dict()
    assert good.violations <= max(1, int(0.15 * reps))


# ------------------------------------------------------------------------------------------ PAC-Bayes training
def _gibbs_risk(model, task, n_test, g, *, sigma_of):
    """Risk of the Gibbs predictor N(mu, diag sigma^2): mean error of 200 posterior draws on fresh data."""
    from prunebound.bounds.pbb import GaussianPosterior
    from prunebound.network import to_vector

    mu = to_vector(model).float()
    post = GaussianPosterior(model, mu, 1.0)
    sigma = sigma_of(model)
    data = task.sample(min(n_test, 20_000), g)
    errs = []
    with torch.no_grad():
        for _ in range(200):
            theta = mu + sigma * torch.randn(mu.shape, generator=g)
            errs.append(float((post._call(theta, data.x).argmax(1) != data.y).double().mean()))
    return sum(errs) / len(errs)


class _PBB:
    def __init__(self, *, correct: bool, train_epochs: int, prior_sigma: float, mc: int, objective="fquad"):
        self.correct, self.epochs, self.prior_sigma, self.mc, self.objective = (correct, train_epochs, prior_sigma,
                                                                                mc, objective)
        self.sigmas: dict[str, torch.Tensor] = {}

    def __call__(self, train, seed):
        from prunebound.bounds.pbb import _decode_sigma
        from prunebound.certificate import model_sha256

        r = pbb_train(mlp(5, [16], 2, seed=0), train, objective=self.objective, seed=seed, prior_fraction=0.0,
                      prior_sigma=self.prior_sigma, epochs=self.epochs, lr=1e-2, mc_samples=self.mc,
                      mc_correction=self.correct)
        p = r.certificate.params
        self.sigmas[model_sha256(r.model)] = _decode_sigma(p["sigma"], p["sigma_sha256"], 130)
        return r.model, r.value

    def risk(self, model, task, n_test, g):
        from prunebound.certificate import model_sha256

        return _gibbs_risk(model, task, n_test, g, sigma_of=lambda m: self.sigmas[model_sha256(m)])


def test_pbb_mc_correction_dropped_is_caught_and_kept_covers():
    task = teacher_task(5, 8, 2, 0.0, seed=0)
    reps = 60 if FULL else 12
    # posterior = prior (no training, KL = 0), broad enough that one sample's error is far from the mean
    bad = _PBB(correct=False, train_epochs=0, prior_sigma=0.6, mc=1)
    rb = coverage(bad, task, n=5000, reps=reps, delta=DELTA, seed=41, n_test=20_000, risk_fn=bad.risk)
    assert rb.violations > DELTA * reps and binomial_upper_pvalue(rb.violations, reps, DELTA) < 1e-2, rb.to_dict()
    good = _PBB(correct=True, train_epochs=0, prior_sigma=0.6, mc=1)
    rg = coverage(good, task, n=5000, reps=reps, delta=DELTA, seed=41, n_test=20_000, risk_fn=good.risk)
    assert rg.holds(0.01), rg.to_dict()


@pytest.mark.parametrize("objective", ["fquad", "flamb", "fclassic", "kl"])
def test_pbb_objectives_cover(objective):
    task = teacher_task(5, 8, 2, 0.1, seed=0)
    reps = 40 if FULL else 6
    m = _PBB(correct=True, train_epochs=3, prior_sigma=0.05, mc=20, objective=objective)
    r = coverage(m, task, n=400, reps=reps, delta=DELTA, seed=61, n_test=20_000, risk_fn=m.risk)
    assert r.holds(0.01), r.to_dict()
    assert r.violations <= max(1, int(0.15 * reps))


# ------------------------------------------------------------------------------------------ permutation gain
def _perm_occam(train, seed):
    from prunebound.bounds.permutation import occam_permutation_bound
    from prunebound.coding import quantize_module

    m = mlp(5, [64], 2, seed=seed)
    fit(m, train, epochs=10, lr=1e-2, batch_size=64, seed=seed, optimizer="adam")
    quantize_module(m, bits=2, half_bias=True)
    return m, occam_permutation_bound(m, train, delta=DELTA).value


def test_permutation_gain_covers():
    # the broken variant (gain on an order-dependent code) is caught by the brute-force prior-mass check in
    # tests/bounds/test_permutation.py; here the valid gain (log2 64! ~ 296 bits) must keep coverage
    task = teacher_task(5, 8, 2, 0.1, seed=0)
    reps = 100 if FULL else 10
    r = coverage(_perm_occam, task, n=1000, reps=reps, delta=DELTA, seed=81, n_test=20_000)
    assert r.holds(0.01), r.to_dict()
    assert r.violations <= max(1, int(0.1 * reps))
