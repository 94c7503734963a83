import pytest
import torch
import torch.nn.utils.prune as tprune

from prunebound.conformance import reference_models
from prunebound.footprint import report
from prunebound.network import mlp

MODELS = {r.name: r for r in reference_models()}


@pytest.mark.parametrize("name", ["functional_mlp", "residual_mlp", "cnn_bn_dropout", "dense_cat", "tied_mlp"])
def test_layer_flops_sum_matches_torch_flop_counter(name):
    rm = MODELS[name]
    r = report(rm.make(), rm.inputs(4), repeats=2)
    assert sum(r.per_layer_flops.values()) == r.flops_dense  # analytic per layer vs FlopCounterMode
    assert r.flops_effective == pytest.approx(r.flops_dense)  # nothing pruned


def test_pruned_counts_bytes_and_effective_flops():
    m = mlp(10, [20], 5, seed=0)
    tprune.l1_unstructured(m[0], "weight", amount=0.5)
    r = report(m, torch.randn(3, 10), repeats=2)
    n_params = 10 * 20 + 20 + 20 * 5 + 5
    assert r.parameters == n_params and r.nonzero == n_params - 100
    assert r.bytes_dense == 4 * n_params and r.bytes_sparse == 8 * r.nonzero
    assert r.flops_dense == 2 * (10 * 20 + 20 * 5)
    assert r.flops_effective == pytest.approx(2 * (10 * 20 * 0.5 + 20 * 5))
    assert r.bytes_encoded is not None and 0 < r.bytes_encoded < r.bytes_dense
    assert r.latency_ms > 0


def test_network_report_is_the_footprint_report():
    from prunebound.network import report as net_report

    m = mlp(4, [3], 2, seed=0)
    assert net_report(m, torch.randn(2, 4), repeats=1).parameters == 4 * 3 + 3 + 3 * 2 + 2


def test_compacted_numbers_count_the_smaller_model():
    from prunebound.network import apply_masks, masks_of

    m = mlp(10, [20], 5, seed=0)
    mk = masks_of(m)
    mk["0"][:8] = 0  # 8 dead hidden units (bias zeroed below)
    with torch.no_grad():
        m[0].bias[:8] = 0
    apply_masks(m, mk)
    r = report(m, torch.randn(3, 10), repeats=2, compact=True)
    assert r.compact_parameters == 10 * 12 + 12 + 12 * 5 + 5 < r.parameters
    assert r.compact_flops == 2 * (10 * 12 + 12 * 5) < r.flops_dense
    assert r.compact_latency_ms > 0
    assert report(m, torch.randn(3, 10), repeats=1).compact_flops is None  # not requested
