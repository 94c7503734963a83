import pytest
import torch

from prunebound.coresets import METHODS, prune
from prunebound.errors import InvalidParameterError
from prunebound.network import mlp


@pytest.mark.parametrize("method", ["corenet", "sipp", "pfp", "data_independent", "uniform", "magnitude"])
def test_keep_ratio_is_met(method):
    m = mlp(6, [40, 40], 3, seed=0)
    x = torch.rand(200, 6, generator=torch.Generator().manual_seed(0))  # not the global RNG: order-independent
    res = prune(m, x, method=method, keep_ratio=0.5, iters=20)
    p, g = res.module, res.guarantee
    assert g.keep_ratio == pytest.approx(0.5, abs=0.08)
    assert p(x).shape == (200, 3)


def test_dispatch_errors():
    m, x = mlp(3, [4], 2), torch.rand(5, 3)
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="nope", eps=0.5)
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="corenet")
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="corenet", eps=0.5, keep_ratio=0.5)
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="magnitude", eps=0.5)
    assert set(METHODS) >= {"corenet", "sipp", "pfp", "data_independent", "uniform", "magnitude"}


def test_corenet_keep_ratio_one_and_deepcopy():
    """Regression: tiny eps overflowed the int64 sample size; CoreNet results were not deep-copyable."""
    import copy

    from prunebound.coresets import prune as cprune
    from prunebound.coresets.sampling import corenet_sample_size
    from prunebound.data import teacher_task as _tt
    from prunebound.network import mlp as _mlp

    m = corenet_sample_size(torch.tensor([1.0]), eps=1e-12, delta=0.1, eta=10)
    assert int(m[0]) > 0
    task = _tt(d_in=5, width=8, seed=0)
    net = _mlp(5, [16, 16], 2, seed=0)
    out, g = cprune(net, task.sample(64, 0), method="corenet", eps=0.5, delta=0.1, seed=0)
    dup = copy.deepcopy(out)
    x = torch.randn(3, 5)
    torch.testing.assert_close(dup(x), out(x))


def test_uniform_and_magnitude_coresets_prune_conv_nets():
    """Coreset baselines build (fan_out, fan_in) masks; on a conv net they are applied in the kernel's shape."""
    import torch

    from prunebound import coresets
    from prunebound import network as N

    m = N.lenet5(1, 10, input_size=28, seed=0)
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    for method in ("uniform", "magnitude"):
        r = coresets.prune(m, (x, y), method=method, sparsity=0.5, seed=0)
        assert abs(N.sparsity(r.module).total - 0.5) < 0.02, method
        conv = r.module[0]
        assert conv.weight_mask.shape == conv.weight_orig.shape


def test_an_option_the_method_does_not_take_is_named_not_a_raw_type_error():
    msg = r"unknown option\(s\) \['n_points'\]; data_independent accepts \['c'\]"
    with pytest.raises(InvalidParameterError, match=msg):
        prune(mlp(4, [8], 2, seed=0), None, method="data_independent", keep_ratio=0.5, n_points=16)
