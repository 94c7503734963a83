"""Coresets on convolutional and residual networks (CIFAR ResNet-20 from the zoo, with BatchNorm).

A convolution is a linear map on input patches (:mod:`prunebound.coresets.patches`); CoreNet, SiPP and PFP state a
per-layer guarantee for every (input, neuron) case -- a conv neuron is an output channel at one position:
``|z~_i(x) - z_i(x)| <= eps_l sum_j |w_ij a_j(x)|`` on the layer's input ``a(x)`` (the input the layer had when
it was sampled: the network with every earlier layer already pruned), failing with probability <= delta / eta per
case. The held-out tests count violations over fresh CIFAR-shaped inputs and test "rate <= delta" with a one-sided
binomial test; a deliberately wrong claim (eps_l / 100 or / 500: the certified eps_l is loose at this size) is caught by
the same test, and the sampled conv weights are unbiased (checked with ``F.conv2d``, independently of patches).
"""

import pytest
import torch
import torch.nn.utils.prune as tprune
from scipy.stats import binomtest
from torch import nn

from prunebound.coresets import prune
from prunebound.coresets.held_out import held_out_violations
from prunebound.coresets.patches import layer_input, layer_points
from prunebound.data import ConvTeacherTask
from prunebound.errors import UnsupportedLayerError
from prunebound.network import Network, fold_batchnorm, is_pruned
from prunebound.testing import randomize_batchnorm
from prunebound.zoo_models import mobilenet, resnet20, resnet20_1d

DELTA = 0.05
WIDTH = 4  # ResNet-20 with 4/8/16 filters per stage: same graph as the paper's 16/32/64, 16x fewer weights


@pytest.fixture(scope="module")
def task():
    return ConvTeacherTask(seed=0)


@pytest.fixture(scope="module")
def model():
    return randomize_batchnorm(resnet20(width=WIDTH, seed=0))


@pytest.fixture(scope="module")
def results(task, model):
    """Each method once on ResNet-20 (128 training inputs; sensitivities on 8 of them x 64-1024 positions)."""
    x = task.sample(128, seed=1).x
    return {
        "corenet": prune(model, x, method="corenet", keep_ratio=0.5, delta=DELTA, seed=0, n_points=8),
        "sipp": prune(model, x, method="sipp", keep_ratio=0.5, delta=DELTA, seed=0, n_points=8),
        "pfp": prune(model, x, method="pfp", keep_ratio=0.55, delta=DELTA, seed=0, n_points=8),
    }


@pytest.mark.statistical
@pytest.mark.parametrize("method", ["corenet", "sipp", "pfp"])
def test_per_layer_guarantee_on_held_out_inputs(results, model, task, method):
    res = results[method]
    assert res.sparsity > 0.3  # the statement is about a real pruning
    x = task.sample(16, seed=2).x
    v, n, sparsified = held_out_violations(res, model, x)
    assert sparsified >= 5, f"{method}: only {sparsified} layers sparsified; the test would be trivial"
    assert binomtest(v, n, DELTA, alternative="greater").pvalue > 0.01, (method, v, n)


@pytest.mark.statistical
@pytest.mark.parametrize("method, claim", [("corenet", 0.01), ("sipp", 0.01), ("pfp", 0.002)])
def test_guarantee_test_catches_a_much_smaller_claimed_eps(results, model, task, method, claim):
    """The certified ``eps_l`` at keep ratio ~0.5 on this small net is large (CoreNet ~20, SiPP 5-11, PFP ~36)
    and loose: observed errors stay below about 4 %, 11 % and 3 % of it (medians 0.2-1 %). The test has power:
    a claim of ``claim * eps_l`` is rejected."""
    x = task.sample(16, seed=2).x
    v, n, _ = held_out_violations(results[method], model, x, claim=claim)
    assert binomtest(v, n, DELTA, alternative="greater").pvalue < 0.01, (method, v, n)


@pytest.mark.parametrize("method", ["corenet", "sipp", "pfp"])
def test_result_is_the_users_resnet_with_batchnorm_and_masks(results, model, task, method):
    res = results[method]
    out = res.module
    assert type(out) is type(model) and out is not model
    assert [type(m) for m in out.modules()] == [type(m) for m in model.modules()]  # BatchNorm kept, no Identity
    for (name, mod), ref in zip(out.named_modules(), model.modules()):
        if isinstance(mod, nn.BatchNorm2d):
            for key in ("weight", "bias", "running_mean", "running_var"):
                assert torch.equal(getattr(mod, key), getattr(ref, key)), (name, key)
    layers = Network.from_module(model).layers
    assert all(is_pruned(out.get_submodule(ly.path)) for ly in layers)
    # the user's module computes what the method computed on the folded network: the same method on a model
    # folded beforehand (same sensitivities, same seed) gives the same function
    x = task.sample(128, seed=1).x
    kr = {"corenet": 0.5, "sipp": 0.5, "pfp": 0.55}[method]
    twin = prune(fold_batchnorm(model), x, method=method, keep_ratio=kr, delta=DELTA, seed=0, n_points=8)
    xt = task.sample(32, seed=3).x
    with torch.no_grad():
        torch.testing.assert_close(out(xt), twin.module(xt), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(out(xt), model(xt), rtol=1e-3, atol=1e-3)  # it was pruned
    assert res.sparsity == pytest.approx(twin.sparsity)
    # after torch.nn.utils.prune.remove it is a plain state dict of the user's class
    for ly in layers:
        tprune.remove(plain := out.get_submodule(ly.path), "weight")
        assert not is_pruned(plain)
    fresh = resnet20(width=WIDTH, seed=1)
    fresh.load_state_dict(out.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(xt), twin.module(xt), rtol=1e-4, atol=1e-4)


def test_only_the_first_conv_reads_signed_inputs(results):
    # raw images are signed (split a = a+ - a-, as for a first Linear layer); every other conv reads a ReLU output
    assert results["corenet"].guarantee.extra["signed_input_layers"] == ["conv1"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:coresets.prune")  # PFP's nearest keep ratio on this tiny net is 0.62
@pytest.mark.parametrize("method", ["corenet", "sipp", "sipp_abs", "pfp"])
def test_conv1d_resnet20_1d(method):
    m = randomize_batchnorm(resnet20_1d(width=WIDTH, seed=0))
    x = torch.randn(96, 40)
    res = prune(m, x, method=method, keep_ratio=0.5, seed=0, n_points=16)
    assert type(res.module) is type(m) and 0.3 < res.sparsity < 0.7
    assert any(isinstance(mod, nn.BatchNorm1d) for mod in res.module.modules())
    if method == "sipp":
        v, n, sparsified = held_out_violations(res, m, torch.randn(32, 40))
        assert sparsified >= 5 and binomtest(v, n, DELTA, alternative="greater").pvalue > 0.01


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_pfp_removes_filters_only_where_their_consumer_is_the_sole_reader(task, shortcut):
    """On a ResNet the output channels of a block's second conv (and of a projection shortcut) feed the residual
    stream, read by later blocks: PFP may only prune the input channels of their readers. Filters are removed
    only in each block's first conv, whose sole reader is the block's second conv (option B used to raise a raw
    RuntimeError: layers were paired by topological order)."""
    m = randomize_batchnorm(resnet20(width=WIDTH, shortcut=shortcut, seed=0))
    res = prune(m, task.sample(64, seed=1).x, method="pfp", eps=0.9, delta=0.5, seed=0, K=0.01, n_points=8)
    net = Network.from_module(res.module)
    assert sorted(res.guarantee.extra["filter_pruned"]) == sorted(
        ly.path for ly in net.layers if ly.path.endswith(".conv1") and ly.path != "conv1")
    removed_any = False
    for ly in net.layers:
        dead = ~(ly.weight.reshape(ly.fan_out, -1) != 0).any(1)
        if not ly.path.endswith(".conv1") or ly.path == "conv1":
            assert not bool(dead.any()), ly.path  # residual-stream producers and the head keep every filter
            continue
        removed_any |= bool(dead.any())
        reader = net.layers[ly.index + 1]  # the block's conv2
        assert reader.path == ly.path[: -len("conv1")] + "conv2"
        assert not bool((reader.weight[:, dead] != 0).any())  # ...which ignores the removed channels
    assert removed_any
    with torch.no_grad():
        assert torch.isfinite(res.module(task.sample(4, seed=3).x)).all()


@pytest.mark.parametrize("method", ["corenet", "sipp", "sipp_abs"])
def test_depthwise_conv_is_refused_naming_the_layer(method):
    m = mobilenet(width=8, seed=0).eval()
    with pytest.raises(UnsupportedLayerError, match=r"grouped convolution \(groups=8\)"):
        prune(m, torch.rand(4, 3, 32, 32), method=method, eps=0.5)


@pytest.mark.parametrize("reweight", [True, False])
def test_sampled_conv_weights_are_unbiased_checked_with_conv2d(model, task, reweight):
    """CoreNet's sampler on the patches of a residual-stage conv (layer3.0.conv2, input relu(...)), R = 200 seeds:
    ``F.conv2d`` with the sampled kernels averages to ``F.conv2d`` with the dense kernels (mean squared z-score
    ~ 1 over all outputs). Without the ``1 / (m q)`` reweighting (a broken sampler) it does not."""
    import torch.nn.functional as F

    from prunebound.coresets.corenet import _split_rows
    from prunebound.coresets.sampling import make_generator, sparsify_rows
    from prunebound.coresets.sensitivity import edge_sensitivity

    net = Network.from_module(model)
    i = next(ly.index for ly in net.layers if ly.path == "layer3.0.conv2")
    ly = net.layers[i]
    a = layer_input(net, i, task.sample(4, seed=5).x).double()
    w = ly.weight_matrix().detach().double()
    s = _split_rows(edge_sensitivity(w, layer_points(ly, a)), w)
    w2 = torch.cat([w * (w > 0), w * (w < 0)])
    m = torch.full((w2.shape[0],), 40)  # < the 144 edges of a row
    g, out = make_generator(0), []
    for _ in range(200):
        new, mask = sparsify_rows(w2, s, m, g)
        new = new if reweight else w2 * mask
        k = (new[: w.shape[0]] + new[w.shape[0]:]).reshape(ly.weight.shape)
        out.append(F.conv2d(a, k, padding=1))
    est = torch.stack(out)
    ref = F.conv2d(a, ly.weight.detach().double(), padding=1)
    sd = est.std(0)
    z2 = ((est.mean(0) - ref) / (sd / 200**0.5)).pow(2)[sd > 1e-9]
    assert z2.numel() > 1000
    if reweight:
        assert 0.8 < float(z2.mean()) < 1.25
    else:
        assert float(z2.mean()) > 10


def test_user_module_with_a_zero_batchnorm_scale_and_a_prepruned_conv():
    """BatchNorm with gamma_0 = 0 (channel 0 ignores its conv row) and a conv pruned beforehand with
    ``torch.nn.utils.prune``: the result keeps both and computes what pruning the folded model computes."""
    from prunebound.conformance import reference_models

    rm = next(r for r in reference_models() if r.name == "cnn_bn_dropout")
    m = rm.make()
    with torch.no_grad():
        m.bn1.weight[0] = 0.0
    tprune.l1_unstructured(m.conv2, "weight", amount=0.3)
    old_mask = m.conv2.weight_mask.clone()
    x = torch.relu(rm.inputs(64))
    res = prune(m, x, method="sipp", keep_ratio=0.5, seed=0)
    twin = prune(fold_batchnorm(m), x, method="sipp", keep_ratio=0.5, seed=0)
    out = res.module
    assert isinstance(out.bn1, nn.BatchNorm2d) and float(out.bn1.weight[0].detach()) == 0.0
    assert bool((out.conv2.weight_mask <= old_mask).all())  # the user's own mask is kept (composed)
    torch.testing.assert_close(out.conv1.weight_orig[0], m.conv1.weight[0])  # the ignored row is untouched
    xt = torch.relu(rm.inputs(16, seed=9))
    with torch.no_grad():
        torch.testing.assert_close(out(xt), twin.module(xt), rtol=1e-4, atol=1e-5)


def test_patches_reproduce_the_convolution():
    g = torch.Generator().manual_seed(0)
    for conv, shape in [(nn.Conv2d(3, 5, 3, padding=1, stride=2), (4, 3, 9, 9)),
                        (nn.Conv2d(3, 5, (3, 2), padding="same", dilation=2), (4, 3, 9, 9)),
                        (nn.Conv1d(3, 4, 5, padding=2, stride=3), (4, 3, 17)),
                        (nn.Conv1d(3, 4, 4, padding="same"), (4, 3, 17))]:
        net = Network.from_module(nn.Sequential(conv).double())
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            y = conv.double()(x)
        z = layer_points(net.layers[0], x) @ net.layers[0].weight_matrix().T + conv.bias
        ref = y.reshape(shape[0], y.shape[1], -1).transpose(1, 2).reshape(-1, y.shape[1])
        torch.testing.assert_close(z, ref)
