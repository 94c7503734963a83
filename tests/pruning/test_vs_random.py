"""Issue 7 verification: on MNIST-1D at 90 % sparsity every data-aware method beats random pruning, mean
over 3
seeds, with a difference larger than the seed spread. Equal retraining budgets on both sides.

Default size: a 40-128-64-10 MLP on 3,000 MNIST-1D samples; ``PRUNEBOUND_FULL=1``: LeNet-300-100 shape
(40-300-100-10) on 4,000 samples. Structured methods are compared with removing random neurons (same count).
"""

import copy
import os

import pytest
import torch

from prunebound import pruning
from prunebound.data import mnist1d
from prunebound.network import Network, mlp
from prunebound.pruning._common import n_prune, unit_masks
from prunebound.train import evaluate, fit

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
WIDTHS = [300, 100] if FULL else [128, 64]
SEEDS = (0, 1, 2)
FT = dict(epochs=3, lr=0.05)

pytestmark = [pytest.mark.slow, pytest.mark.statistical]


@pytest.fixture(scope="module")
def split():
    return mnist1d(4000 if FULL else 3000, 0)


@pytest.fixture(scope="module")
def trained(split):
    out = {}
    for seed in SEEDS:
        m = mlp(40, WIDTHS, 10, seed=seed)
        fit(m, split.train, epochs=20, lr=0.005, optimizer="adam", seed=seed)
        out[seed] = m
    return out


def _errors(run, split):
    return torch.tensor([evaluate(run(seed), split.test).error for seed in SEEDS])


def _assert_beats(ours, base):
    spread = float(torch.maximum(ours.std(), base.std()))
    print(
        f"ours {ours.tolist()} mean {float(ours.mean()):.3f} | random {base.tolist()} "
        f"mean {float(base.mean()):.3f}"
    )
    assert float(base.mean() - ours.mean()) > spread, (ours.tolist(), base.tolist())


POST_TRAINING = {
    "magnitude": dict(scope="global", **FT),
    "obd": dict(n_hessian=300, **FT),
    "weight_decay": dict(epochs=3, finetune_epochs=3, lr=0.05, penalty="l2", lam=1e-3),
    "transformed_l1": dict(epochs=3, finetune_epochs=3, lr=0.05),
    "deep_compression": dict(prune_epochs=3, lr=0.05, centroid_epochs=1),
}


@pytest.mark.parametrize("name", sorted(POST_TRAINING))
def test_post_training_methods_beat_random(name, trained, split):
    if name == "deep_compression":
        pytest.importorskip("prunebound.coding")
    rnd = _errors(
        lambda s: (
            pruning.random_pruning(trained[s], split.train, sparsity=0.9, seed=s, scope="global", **FT).module
        ),
        split,
    )
    ours = _errors(
        lambda s: (
            pruning.REGISTRY[name](
                trained[s], split.train, sparsity=0.9, seed=s, **POST_TRAINING[name]
            ).module
        ),
        split,
    )
    _assert_beats(ours, rnd)


@pytest.mark.parametrize("name", ["snip", "rigl"])
def test_at_init_methods_beat_random_sparse_training(name, split):
    """SNIP / RigL from a fresh init vs a static random mask at the same init, same number of epochs."""

    def fresh(s):
        return mlp(40, WIDTHS, 10, seed=100 + s)

    def rnd(s):
        r = pruning.random_pruning(fresh(s), sparsity=0.9, seed=s)
        fit(r.module, split.train, epochs=5, lr=0.05, seed=s)
        return r.module

    def ours(s):
        if name == "snip":
            return pruning.snip(fresh(s), split.train, sparsity=0.9, seed=s, epochs=5, lr=0.05).module
        return pruning.rigl(fresh(s), split.train, sparsity=0.9, seed=s, epochs=5, lr=0.05, delta_t=20).module

    _assert_beats(_errors(ours, split), _errors(rnd, split))


def _random_neurons(model, sp, s, split, epochs):
    from prunebound.network import apply_masks

    net = Network.from_module(copy.deepcopy(model))
    g = torch.Generator().manual_seed(s)
    removed = {
        i: torch.randperm(net.layers[i].fan_out, generator=g)[: n_prune(net.layers[i].fan_out, sp)]
        for i in range(len(net.layers) - 1)
    }
    apply_masks(net.module, unit_masks(net, removed))
    if epochs:
        fit(net.module, split.train, epochs=epochs, lr=0.05, seed=s)
    return net.module


@pytest.mark.parametrize("name", ["lasso_channel", "neuron_merging"])
def test_structured_methods_beat_random_neurons(name, trained, split):
    """Same number of neurons removed per hidden layer, no retraining on either side (LASSO's least-squares
    refit of the next layer and the merging's weight folding are part of the methods)."""
    rnd = _errors(lambda s: _random_neurons(trained[s], 0.9, s, split, 0), split)
    ours = _errors(
        lambda s: pruning.REGISTRY[name](trained[s], split.train, sparsity=0.9, seed=s).module, split
    )
    _assert_beats(ours, rnd)


@pytest.mark.xfail(
    strict=True,
    reason="negative finding: on MNIST-1D MLPs the highest-APoZ neurons are not the "
    "least useful (APoZ ranges 0.27-0.70 in layer 1, no dead units), so trimming them loses to "
    "random neuron removal; Hu et al. target VGG layers with APoZ near 90%",
)
def test_apoz_beats_random_neurons(trained, split):
    rnd = _errors(lambda s: _random_neurons(trained[s], 0.9, s, split, 3), split)
    ours = _errors(
        lambda s: pruning.apoz(trained[s], split.train, sparsity=0.9, seed=s, epochs=3, lr=0.05).module, split
    )
    _assert_beats(ours, rnd)
