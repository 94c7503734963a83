"""One result type and one vocabulary across classic pruning and coresets (issue 12).

* every registry method and every coreset function returns a :class:`PruneResult` whose achieved sparsity is the
  fraction of zero weights of the returned module (``prunebound.network.sparsity``), per layer and in total;
* ``sparsity`` and its complement ``keep_ratio`` give the same coreset result; both given inconsistently raise;
* structured methods take ``unit="weight"`` to meet a weight sparsity instead of a neuron fraction;
* no public function of prunebound.pruning / prunebound.coresets has a ``generator`` parameter;
* every ``delta`` default of the coresets and of the certifiers is the one constant ``DEFAULT_DELTA``.
"""

import inspect
import json

import pytest
import torch

from prunebound import coresets, pruning
from prunebound.defaults import DEFAULT_DELTA, resolve_keep_ratio, resolve_sparsity
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, mlp
from prunebound.network import sparsity as sparsity_of
from prunebound.pruning import REGISTRY, STRUCTURED, PruneReport, PruneResult

from .test_registry import FAST


def _same_sparsity(res: PruneResult) -> None:
    sp = sparsity_of(res.module)
    assert res.total == pytest.approx(sp.total, abs=1e-12)
    assert res.sparsity == res.total and res.keep_ratio == pytest.approx(1.0 - sp.total)
    assert res.per_layer.keys() == sp.per_layer.keys()
    for p, v in sp.per_layer.items():
        assert res.per_layer[p] == pytest.approx(v, abs=1e-12), p
    d = res.to_dict()
    json.dumps(d)
    assert "module" not in d and d["total"] == res.total
    assert res.method in res.summary()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_method_returns_prune_result(name, trained_mlp, train_data):
    if name == "deep_compression":
        pytest.importorskip("prunebound.coding")
    res = REGISTRY[name](trained_mlp, train_data, sparsity=0.6, seed=0, **FAST[name])
    assert type(res) is PruneResult and PruneReport is PruneResult
    assert res.guarantee is None and res.requested == 0.6
    assert res.unit == ("neuron" if name in STRUCTURED else "weight")
    _same_sparsity(res)
    assert res.total > 0.3  # something was really removed


def _cs_model():
    return mlp(6, [24, 12], 3, seed=0), torch.rand(80, 6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", coresets.METHODS)
def test_coreset_prune_returns_prune_result_with_guarantee(method):
    m, x = _cs_model()
    with _quiet():
        res = coresets.prune(m, x, method=method, sparsity=0.5, seed=0, iters=12)
    assert type(res) is PruneResult
    assert res.requested == pytest.approx(0.5)
    g = res.guarantee
    assert isinstance(g, coresets.Guarantee)
    assert g.keep_ratio == pytest.approx(1.0 - res.total, abs=1e-12)  # dense input: kept/nnz == 1 - sparsity
    _same_sparsity(res)
    mod, g2 = res  # legacy (module, guarantee) unpacking
    assert mod is res.module and g2 is g


@pytest.mark.parametrize("fn,kw", [
    (coresets.corenet, {"eps": 0.9, "use_kappa": False, "K": 0.01}),
    (coresets.sipp, {"eps": 0.9}),
    (coresets.pfp, {"eps": 0.9, "K": 0.01}),
    (coresets.data_independent, {"eps": 0.5}),
    (coresets.uniform, {"sparsity": 0.6}),
    (coresets.magnitude_layerwise, {"sparsity": 0.6}),
    (coresets.magnitude_global, {"sparsity": 0.6}),
])
def test_per_method_coreset_functions_return_prune_result(fn, kw):
    m, x = _cs_model()
    res = fn(m, x, seed=0, **kw)
    assert type(res) is PruneResult and isinstance(res.guarantee, coresets.Guarantee)
    _same_sparsity(res)
    if "sparsity" in kw:
        assert res.requested == pytest.approx(0.6) and res.total == pytest.approx(0.6, abs=0.05)
    else:
        assert res.requested is None  # driven by eps


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *a):
        return self._w.__exit__(*a)


@pytest.mark.parametrize("method", ["magnitude_global", "uniform", "sipp"])
def test_sparsity_and_keep_ratio_give_the_same_result(method):
    m, x = _cs_model()
    with _quiet():
        a = coresets.prune(m, x, method=method, sparsity=0.7, seed=3, iters=12)
        b = coresets.prune(m, x, method=method, keep_ratio=0.3, seed=3, iters=12)
        c = coresets.prune(m, x, method=method, sparsity=0.7, keep_ratio=0.3, seed=3, iters=12)
    for r in (b, c):  # same pruned weights; requested 0.7 vs 1 - 0.3 may differ in the last bit
        assert r.total == a.total and r.per_layer == a.per_layer and r.requested == pytest.approx(a.requested)
        assert r.guarantee.kept == a.guarantee.kept and r.guarantee.sample_sizes == a.guarantee.sample_sizes
        for (k, v), (k2, v2) in zip(a.module.state_dict().items(), r.module.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)


def test_inconsistent_sparsity_and_keep_ratio_raise():
    m, x = _cs_model()
    with pytest.raises(InvalidParameterError, match="disagree"):
        coresets.prune(m, x, method="magnitude", sparsity=0.7, keep_ratio=0.7)
    with pytest.raises(InvalidParameterError, match="disagree"):
        coresets.uniform(m, x, sparsity=0.2, keep_ratio=0.2)
    with pytest.raises(InvalidParameterError):
        resolve_sparsity(None, None)
    assert resolve_sparsity(None, 0.25) == 0.75 and resolve_keep_ratio(0.75, None) == 0.25
    assert resolve_keep_ratio(None, 0.3) == 0.3  # given keep_ratio returned unchanged (no 1 - (1 - k) rounding)


@pytest.mark.parametrize("name", sorted(STRUCTURED))
def test_structured_unit_weight_meets_weight_sparsity(name, trained_mlp, train_data):
    from prunebound.pruning._common import structured_weight_sparsity, unit_sparsity_for

    res = REGISTRY[name](trained_mlp, train_data, sparsity=0.6, unit="weight", seed=0, **FAST[name])
    assert res.unit == "weight" and res.requested == 0.6
    _same_sparsity(res)
    u = unit_sparsity_for(trained_mlp, 0.6)
    assert res.total == pytest.approx(float(structured_weight_sparsity(trained_mlp, u)[0]), abs=1e-12)
    neuron = REGISTRY[name](trained_mlp, train_data, sparsity=0.6, seed=0, **FAST[name])
    assert abs(res.total - 0.6) < abs(neuron.total - 0.6)  # 0.6 of the neurons removes more than 0.6 of weights
    with pytest.raises(InvalidParameterError, match="unit"):
        REGISTRY[name](trained_mlp, train_data, sparsity=0.6, unit="filter", **FAST[name])


def _public_functions(mod):
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", obj


def test_no_public_generator_parameter():
    found = [(q, p) for mod in (pruning, coresets) for q, f in _public_functions(mod)
             for p in inspect.signature(f).parameters if p == "generator"]
    assert not found, found
    # the seeded functions take seed; a torch.Generator passed as seed continues a stream
    assert "seed" in inspect.signature(coresets.sparsify_rows).parameters
    g = torch.Generator().manual_seed(0)
    a = coresets.importance_sample(torch.ones(2, 5), torch.tensor([3, 4]), 5)
    b = coresets.importance_sample(torch.ones(2, 5), torch.tensor([3, 4]), torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(a.sum(1), torch.tensor([3.0, 4.0], dtype=a.dtype))
    del g


def test_default_delta_is_one_constant():
    from prunebound import bounds

    mods = [coresets, bounds]
    seen = {}
    for mod in mods:
        for q, f in _public_functions(mod):
            p = inspect.signature(f).parameters.get("delta")
            if p is not None and p.default is not inspect.Parameter.empty:
                seen[q] = p.default
    for f in (coresets.prune, bounds.certify):
        seen[f.__qualname__] = inspect.signature(f).parameters["delta"].default
    assert len(seen) >= 10, seen
    bad = {q: d for q, d in seen.items() if d != DEFAULT_DELTA}
    assert not bad, bad


def test_net_wrapper_is_accepted_by_network_sparsity():
    res = REGISTRY["random"](mlp(4, [8], 2, seed=0), None, sparsity=0.5, seed=0)
    assert sparsity_of(Network.from_module(res.module)).total == pytest.approx(res.total)
