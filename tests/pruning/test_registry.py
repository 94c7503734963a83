"""Every registered method: exact sparsity, masks survive prune.remove, input untouched, errors, JSON
report."""

import json

import pytest
import torch

from prunebound import pruning
from prunebound.errors import DataError, InvalidParameterError
from prunebound.network import Network, conv1d_small, mlp
from prunebound.pruning import NEEDS_DATA, REGISTRY, STRUCTURED

from .conftest import assert_unchanged, check_masks_survive_remove, mask_zero_counts, snapshot

FAST = {
    "random": {},
    "magnitude": {"epochs": 1},
    "weight_decay": {"epochs": 1},
    "lottery": {"rounds": 2, "epochs": 1},
    "deep_compression": {"prune_epochs": 1, "centroid_epochs": 1},
    "obd": {"epochs": 1, "hessian": "hutchinson", "n_samples": 10},
    "apoz": {"epochs": 1},
    "neuron_merging": {},
    "lasso_channel": {"n_samples": 200},
    "snip": {},
    "rigl": {"epochs": 2, "delta_t": 3},
    "transformed_l1": {"epochs": 1},
}


def test_registry_lists_all_methods():
    assert set(REGISTRY) == set(FAST)
    assert pruning.get("snip") is pruning.snip
    with pytest.raises(InvalidParameterError, match="unknown pruning method"):
        pruning.get("nope")


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_exact_sparsity_and_masks(name, sparsity, trained_mlp, train_data):
    if name == "deep_compression":
        pytest.importorskip("prunebound.coding")
    snap = snapshot(trained_mlp)
    rep = REGISTRY[name](trained_mlp, train_data, sparsity=sparsity, seed=0, **FAST[name])
    assert_unchanged(trained_mlp, snap)
    assert rep.module is not trained_mlp
    assert rep.method == name
    zeros, sizes = mask_zero_counts(rep.module)
    net = Network.from_module(rep.module)
    if name in STRUCTURED:
        assert rep.unit == "neuron"
        for i, ly in enumerate(net.layers[:-1]):
            rows = net.layers[i].mask.reshape(ly.fan_out, -1)
            dead = int((rows.sum(1) == 0).sum())
            assert dead == round(sparsity * ly.fan_out), (ly.path, dead)
    else:
        total = sum(zeros.values())
        n = sum(sizes.values())
        assert abs(total - sparsity * n) <= len(sizes), (total, sparsity * n)
        for p in zeros:
            if name in ("random", "lottery", "rigl"):  # layer-wise by default
                assert abs(zeros[p] - sparsity * sizes[p]) <= 1
    for p in zeros:
        assert rep.per_layer[p] == pytest.approx(zeros[p] / sizes[p])
    assert rep.total == pytest.approx(sum(zeros.values()) / sum(sizes.values()))
    check_masks_survive_remove(rep.module)
    json.dumps(rep.to_dict())
    assert "module" not in rep.to_dict()


@pytest.mark.parametrize("name", sorted(NEEDS_DATA))
def test_data_required(name):
    with pytest.raises(DataError, match="needs training data"):
        REGISTRY[name](mlp(4, [4], 2, seed=0), None, sparsity=0.5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan")])
def test_bad_sparsity(name, bad, train_data):
    with pytest.raises(InvalidParameterError, match="sparsity"):
        REGISTRY[name](mlp(10, [4], 3, seed=0), train_data, sparsity=bad, **FAST[name])


def test_nan_weights_rejected(train_data):
    m = mlp(10, [4], 3, seed=0)
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    with pytest.raises(DataError, match="non-finite"):
        pruning.magnitude(m, None, sparsity=0.5)


def test_unsupported_layer():
    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Softplus(), torch.nn.Linear(3, 2))
    from prunebound.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError):
        pruning.random_pruning(m, sparsity=0.5)


@pytest.mark.parametrize(
    "name", ["magnitude", "snip", "obd", "apoz", "neuron_merging", "lasso_channel", "rigl"]
)
def test_conv_network(name, mnist1d_small):
    data = mnist1d_small
    m = conv1d_small(channels=6, seed=0)
    kw = dict(FAST[name])
    if name == "obd":
        kw["n_hessian"] = 50
    rep = REGISTRY[name](m, data, sparsity=0.5, seed=0, **kw)
    zeros, sizes = mask_zero_counts(rep.module)
    if name not in STRUCTURED:
        assert abs(sum(zeros.values()) - 0.5 * sum(sizes.values())) <= len(sizes)
    check_masks_survive_remove(rep.module)  # conv1d_small takes (N, 40) inputs


def test_prune_dispatch(train_data, trained_mlp):
    a = pruning.prune(trained_mlp, train_data, method="snip", sparsity=0.6)
    b = pruning.snip(trained_mlp, train_data, sparsity=0.6)
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("name", ["random", "magnitude", "snip", "obd", "transformed_l1"])
def test_pruning_an_already_pruned_model(name, trained_mlp, train_data):
    """Old pruned weights stay pruned and count toward the requested sparsity; a model that was trained after
    pruning (non-leaf cached weight) is accepted."""
    from prunebound.network import masks_of
    from prunebound.train import fit

    pre = pruning.magnitude(trained_mlp, None, sparsity=0.5, scope="layer").module
    fit(pre, train_data, epochs=1, seed=0)
    old = masks_of(pre)
    rep = REGISTRY[name](pre, train_data, sparsity=0.8, **FAST[name])
    new = masks_of(rep.module)
    for p in old:
        assert bool((new[p][old[p] == 0] == 0).all())
    n = sum(m.numel() for m in new.values())
    assert abs(sum(int((m == 0).sum()) for m in new.values()) - 0.8 * n) <= len(new)
    check_masks_survive_remove(rep.module)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_zero_sparsity_keeps_every_weight(name, trained_mlp, train_data):
    if name == "deep_compression":
        pytest.importorskip("prunebound.coding")
    rep = REGISTRY[name](trained_mlp, train_data, sparsity=0.0, **FAST[name])
    assert rep.total == 0.0
    check_masks_survive_remove(rep.module)
