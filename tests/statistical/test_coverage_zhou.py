"""Coverage of the Zhou et al. (2019) PAC-Bayes compression bound on a teacher task.

* Valid bound: a bias-free ``5-8-2`` ReLU MLP is trained on a teacher task with 10% label noise, pruned to 50%
  (magnitude, with retraining) and quantized to 4 shared values per layer (k-means); its
  :func:`~prunebound.bounds.compression_bound.zhou2019_bound` is compared with the *true* risk of the posterior
  the bound is about: the compressed network with independent Gaussian noise ``N(0, sigma_l^2)`` on every
  coded (unpruned) weight, ``sigma_l = sigma_rel * Delta_l`` for the chosen ``sigma_rel`` and the mean codebook
  spacing ``Delta_l`` (recomputed here from the weights, independently of the bound's code).  The Gibbs risk
  is estimated on ``n_test >= 1e5`` fresh examples, each classified by its own posterior draw (so the 0-1
  outcomes are i.i.d. Bernoulli(Gibbs risk)).  The violation rate must be consistent with <= delta
  (one-sided binomial test).
* Broken bound: on a pure-noise task (2 classes, label noise 1/2, so every predictor -- deterministic or
  stochastic -- has risk exactly 1/2) an over-fitted, pruned and quantized model gets the same Monte-Carlo
  posterior training error as in Zhou's bound, but the bound is recomputed with ``KL = 0``, without the
  sample-convergence correction and without splitting delta: ``min_sigma kl^{-1}(emp_mc(sigma),
  ln(2 sqrt(n)/delta) / n)``.  The harness must flag it (p-value < 0.01).
* A cross-check that the posterior sampled here is the one whose training error the bound estimates.

``PRUNEBOUND_FULL=1`` runs 200 repetitions of the valid bound and 100 of the broken one (instead of 6 and 5).
"""

import math
import os

import pytest
import torch
from torch import nn

from prunebound.bounds.compression_bound import zhou2019_bound
from prunebound.bounds.pac_bayes import kl_bound
from prunebound.coding import quantize_module
from prunebound.data import TeacherTask, teacher_task
from prunebound.network import mlp
from prunebound.pruning.magnitude import magnitude
from prunebound.testing import coverage
from prunebound.train import fit

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
REPS = 200 if FULL else 6
BROKEN_REPS = 100 if FULL else 5
DELTA = 0.05
TASK = teacher_task(d_in=5, width=8, n_classes=2, label_noise=0.1, seed=2)
NOISE_TASK = teacher_task(d_in=5, width=8, n_classes=2, label_noise=0.5, seed=3)
SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5)


class NoisyCompressed(nn.Module):
    """The Zhou et al. posterior of a pruned + quantized bias-free MLP: Gaussian noise ``N(0, sigma_l^2)`` on the
    coded weights of layer ``l`` (the mask support), nothing elsewhere.  ``sigma_l = sigma_rel * Delta_l`` with
    ``Delta_l = (max c - min c) / (r - 1)`` over the ``r`` distinct coded values ``c`` (``|c|`` if ``r = 1``).

    ``forward(x)`` is the mean network; :meth:`gibbs_errors` classifies each row with its own posterior draw.
    """

    def __init__(self, compressed: nn.Sequential, sigma_rel: float) -> None:
        super().__init__()
        self.weights: list[torch.Tensor] = []
        self.sigmas: list[torch.Tensor] = []  # sigma_l * 1[coded], weight-shaped
        for mod in compressed:
            if not isinstance(mod, nn.Linear):
                assert isinstance(mod, nn.ReLU)
                continue
            assert mod.bias is None
            if hasattr(mod, "weight_mask"):
                w = (mod.weight_orig * mod.weight_mask).detach().double()
                pos = mod.weight_mask.detach() != 0
            else:
                w = mod.weight.detach().double()
                pos = w != 0
            vals = torch.unique(w[pos])
            if vals.numel() >= 2:
                spacing = float(vals[-1] - vals[0]) / (vals.numel() - 1)
            elif vals.numel() == 1 and float(vals[0]) != 0:
                spacing = abs(float(vals[0]))
            else:
                spacing = 1.0
            self.weights.append(w)
            self.sigmas.append(sigma_rel * spacing * pos.double())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.double()
        for i, w in enumerate(self.weights):
            h = h @ w.T
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h

    def gibbs_errors(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """0-1 errors of independent posterior draws, one per row of ``x``."""
        h = x.double()
        for i, (w, s) in enumerate(zip(self.weights, self.sigmas)):
            wb = w + s * torch.randn((h.shape[0], *w.shape), generator=g, dtype=torch.float64)
            h = torch.einsum("boi,bi->bo", wb, h)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return (h.argmax(1) != y).double()


def gibbs_risk(model: NoisyCompressed, task: TeacherTask, n_test: int, g: torch.Generator,
               chunk: int = 50_000) -> float:
    """``risk_fn`` for :func:`prunebound.testing.coverage`: Gibbs risk on ``n_test`` fresh examples, data drawn
    from ``g`` exactly as :meth:`TeacherTask.true_risk` draws them, noise from a separate stream seeded with
    ``g``'s seed + 1."""
    g_noise = torch.Generator().manual_seed(g.initial_seed() + 1)
    wrong, done = 0.0, 0
    while done < n_test:
        m = min(chunk, n_test - done)
        d = task.sample(m, g)
        wrong += float(model.gibbs_errors(d.x, d.y, g_noise).sum())
        done += m
    return wrong / n_test


def _compress(train, seed: int, *, hidden: int, epochs: int, lr: float, optimizer: str, bits: int) -> nn.Module:
    m = mlp(5, [hidden], 2, bias=False, seed=seed)
    fit(m, train, epochs=epochs, lr=lr, batch_size=32 if optimizer == "adam" else 64, seed=seed,
        optimizer=optimizer)
    m = magnitude(m, train, sparsity=0.5, seed=seed, epochs=max(1, epochs // 4), lr=lr, optimizer=optimizer).module
    quantize_module(m, bits=bits)
    return m


def _teacher_model(train, seed: int) -> nn.Module:
    return _compress(train, seed, hidden=8, epochs=8, lr=0.05, optimizer="sgd", bits=2)


def _zhou(train, seed):
    m = _teacher_model(train, seed)
    t = zhou2019_bound(m, train, delta=DELTA, seed=seed, sigmas=SIGMAS, mc_samples=200)
    return NoisyCompressed(m, t.parts["sigma_rel"]), t.value


def _zhou_broken(train, seed):
    """KL term dropped, sample-convergence correction removed, delta not split: the Monte-Carlo posterior
    training error of each sigma (from zhou2019_bound itself) fed to a fixed-posterior kl bound."""
    m = _compress(train, seed, hidden=32, epochs=100, lr=0.01, optimizer="adam", bits=3)
    best = None
    for s in SIGMAS:
        emp = zhou2019_bound(m, train, delta=DELTA, seed=seed, sigmas=(s,), taus=(1.0,), mc_samples=50,
                             index_code="none").parts["emp_mc"]
        value = kl_bound(emp, 0.0, len(train), delta=DELTA).value
        if best is None or value < best[0]:
            best = (value, s)
    return NoisyCompressed(m, best[1]), best[0]


def test_gibbs_risk_sigma_zero_matches_true_risk():
    """With no noise the Gibbs risk estimator is the deterministic 0-1 risk on the very same samples."""
    m = _teacher_model(TASK.sample(1000, 0), 0)
    post = NoisyCompressed(m, 0.0)
    r1 = gibbs_risk(post, TASK, 60_000, torch.Generator().manual_seed(5))
    r2 = TASK.true_risk(m, n=60_000, seed=torch.Generator().manual_seed(5))
    assert r1 == r2
    assert 0.05 < r1 < 0.5


def test_posterior_matches_bound_monte_carlo():
    """The posterior sampled here has the training error that zhou2019_bound estimates by Monte Carlo for the
    same sigma (a large sigma, so that a wrong noise scale or noisy positions would show)."""
    train = TASK.sample(2000, 1)
    m = _teacher_model(train, 1)
    t = zhou2019_bound(m, train, delta=DELTA, seed=3, sigmas=(0.5,), taus=(0.5,), mc_samples=400)
    post = NoisyCompressed(m, 0.5)
    g = torch.Generator().manual_seed(11)
    ours = float(torch.cat([post.gibbs_errors(train.x, train.y, g) for _ in range(100)]).mean())
    clean = float((post(train.x).argmax(1) != train.y).double().mean())
    # the noise must matter for this check to have power
    assert ours > clean + 0.02, (ours, clean)
    # MC error of both estimates is < 0.003 (s.d.); a noise scale off by a factor 2 moves it by > 0.02
    assert abs(ours - t.parts["emp_mc"]) < 0.012, (ours, t.parts)


@pytest.mark.statistical
@pytest.mark.slow
def test_zhou2019_bound_covers_posterior_risk():
    res = coverage(_zhou, TASK, n=3000, reps=REPS, delta=DELTA, seed=0, n_test=100_000, risk_fn=gibbs_risk)
    print(f"zhou2019: {res.violations}/{res.reps} violations, p={res.p_value:.3g}, median bound/risk "
          f"{res.median_ratio:.2f}")
    assert res.holds(0.01), res.to_dict()
    assert max(res.bounds) < 0.75, res.to_dict()  # informative, so a violation is possible
    assert min(res.risks) > 0.05, res.to_dict()


@pytest.mark.statistical
@pytest.mark.slow
def test_zhou2019_without_kl_and_mc_correction_is_caught():
    res = coverage(_zhou_broken, NOISE_TASK, n=100, reps=BROKEN_REPS, delta=DELTA, seed=0, n_test=100_000,
                   risk_fn=gibbs_risk)
    print(f"broken zhou2019: {res.violations}/{res.reps} violations, p={res.p_value:.3g}")
    assert all(abs(r - 0.5) < 5 * math.sqrt(0.25 / 100_000) for r in res.risks), res.risks
    assert res.p_value < 0.01, res.to_dict()
