"""The graph-based Network view: class models, residual adds, cat, functional ops, tying, pre-pruning, BN folding,
and the assumption checks methods call."""

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn

from prunebound import network as N
from prunebound.conformance import (
    ConvBNNet,
    DenseCatNet,
    FunctionalMLP,
    ResidualMLP,
    SequentialResidual,
    TiedMLP,
    reference_models,
)
from prunebound.errors import AssumptionError, PruneboundError, UnsupportedLayerError
from prunebound.graph import capture

MODELS = reference_models()


@pytest.mark.parametrize("rm", MODELS, ids=[r.name for r in MODELS])
def test_trace_output_equals_module_output(rm):
    m = rm.make()
    x = rm.inputs(7)
    net = N.Network.from_module(m)
    tr = net.trace(x, batch_size=3)
    ref = m(x)
    assert tr.output.dtype == ref.dtype == rm.dtype
    tol = 1e-5 if any(isinstance(c, nn.BatchNorm2d) for c in m.modules()) else 1e-6
    torch.testing.assert_close(tr.output, ref, atol=tol, rtol=tol)
    # every weighted layer's pre-activation is its module applied to its recorded input
    for ly, i, z in zip(net.layers, tr.inputs, tr.preacts):
        torch.testing.assert_close(ly.module(i), z, atol=tol, rtol=tol)


def test_functional_mlp_trace_matches_manual():
    m = FunctionalMLP().eval()
    x = torch.randn(9, 8)
    tr = N.Network.from_module(m).trace(x)
    h1 = x @ m.fc1.weight.T + m.fc1.bias
    h2 = F.relu(h1) @ m.fc2.weight.T + m.fc2.bias
    for got, want in zip(tr.inputs, [x, F.relu(h1), F.relu(h2)]):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(tr.preacts[1], h2)


def test_residual_graph_edges_and_activations():
    m = ResidualMLP()
    net = N.Network.from_module(m)
    g = net.graph
    adds = [n for n in g.nodes if n.kind == "add"]
    assert len(adds) == 2
    # the first add joins the block input (a ReLU node) and blocks.0.fc2
    feeders = {g.node(i).kind for i in adds[0].inputs}
    assert feeders == {"relu", "linear"}
    assert g.node([i for i in adds[0].inputs if g.node(i).kind == "linear"][0]).path == "blocks.0.fc2"
    assert [ly.path for ly in net.layers] == ["fc_in", "blocks.0.fc1", "blocks.0.fc2", "blocks.1.fc1",
                                              "blocks.1.fc2", "fc_out"]
    assert [ly.activation for ly in net.layers] == ["relu", "relu", None, "relu", None, None]
    assert [ly.input_nonnegative for ly in net.layers] == [False] + [True] * 5
    assert (adds[0].inputs[0], adds[0].name) in g.edges()
    assert not net.is_chain


def test_cat_node_and_nonnegativity():
    net = N.Network.from_module(DenseCatNet())
    cats = [n for n in net.graph.nodes if n.kind == "cat"]
    assert [len(c.inputs) for c in cats] == [2, 3]
    assert all(ly.input_nonnegative for ly in net.layers[1:])


def test_sequential_subclass_with_forward_is_traced_not_chained():
    m = SequentialResidual()
    net = N.Network.from_module(m)
    assert any(n.kind == "add" for n in net.graph.nodes)
    assert not net.is_chain
    x = torch.randn(5, 8)
    chain = nn.Sequential(*m)  # what the old container walk computed
    assert not torch.allclose(chain(x), m(x))
    torch.testing.assert_close(net.forward(x), m(x))
    with pytest.raises(AssumptionError, match="add"):
        net.require_relu_chain(method="spectral bound")


def test_tied_module_is_one_layer_counted_once():
    m = TiedMLP()
    net = N.Network.from_module(m)
    assert [ly.path for ly in net.layers] == ["inp", "mid", "out"]
    assert net.layers[1].shared and len(net.layers[1].calls) == 2
    n_params = sum(p.numel() for p in m.parameters())
    assert N.count_parameters(m) == n_params
    assert N.to_vector(m).numel() == n_params
    x = torch.randn(4, 8)
    tr = net.trace(x)
    assert tr.inputs[1].shape == (8, 16)  # both calls, concatenated along the batch
    h = F.relu(m.inp(x))
    torch.testing.assert_close(tr.inputs[1][:4], h)
    torch.testing.assert_close(tr.inputs[1][4:], F.relu(m.mid(h)))
    with pytest.raises(AssumptionError, match="weight tying"):
        net.require_relu_chain(method="arora2018")


def test_prepruned_class_masks_live_on_user_submodules():
    m = FunctionalMLP()
    tprune.l1_unstructured(m.fc1, "weight", amount=0.5)
    net = N.Network.from_module(m)
    assert net.module is m and net.layers[0].module is m.fc1
    assert net.layers[0].mask is not None
    assert N.sparsity(m).per_layer["fc1"] == pytest.approx(0.5, abs=1 / m.fc1.weight.numel())
    mk = (torch.rand_like(m.fc2.weight) > 0.5).float()
    N.apply_masks(m, {"fc2": mk})
    assert torch.equal(m.fc2.weight_mask, mk)
    x = torch.randn(3, 8)
    torch.testing.assert_close(net.forward(x), m(x))


def test_batchnorm_folded_in_a_copy_of_a_class_model():
    m = reference_models()[3].make()  # ConvBNNet with non-trivial statistics
    net = N.Network.from_module(m)
    assert net.module is not m
    assert isinstance(m.bn1, nn.BatchNorm2d) and isinstance(net.module.bn1, nn.Identity)
    x = torch.randn(6, 1, 8, 8)
    torch.testing.assert_close(net.forward(x), m(x), atol=1e-5, rtol=1e-5)


def test_batchnorm_fold_through_pruned_conv():
    m = reference_models()[3].make()
    tprune.random_unstructured(m.conv2, "weight", amount=0.4)
    x = torch.randn(6, 1, 8, 8)
    net = N.Network.from_module(m)
    torch.testing.assert_close(net.forward(x), m(x), atol=1e-5, rtol=1e-5)
    assert torch.equal(net.layers[1].mask, m.conv2.weight_mask)


def test_batchnorm_not_after_weighted_layer_named():
    class BNFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(4)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.bn(x))

    with pytest.raises(UnsupportedLayerError, match=r"BatchNorm.*'bn'.*after input"):
        N.Network.from_module(BNFirst().eval())


def test_depthwise_conv_layer_facts():
    net = N.Network.from_module(reference_models()[6].make())
    dw = net.layers[1]
    assert dw.kind == "conv1d" and dw.groups == 4 and dw.fan_in == 3
    assert net.layers[-1].input_nonnegative is False  # LayerNorm + GELU feed the head
    with pytest.raises(AssumptionError, match=r"non-negative.*'head'") as ei:
        net.require_nonnegative_inputs(method="corenet")
    assert ei.value.method == "corenet"


class _Sin(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.sin(x))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class _RawParam(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return F.linear(x, self.w)


@pytest.mark.parametrize("model, pattern", [
    (_Sin(), r"torch\.sin.*node 'sin'.*fed by 'x'.*supported"),
    (nn.Sequential(nn.Linear(4, 4), nn.Softplus(), nn.Linear(4, 2)), r"'1'.*Softplus.*fed by '_0'"),
    (_Branchy(), r"cannot trace _Branchy.*control flow"),
    (_RawParam(), r"parameter/buffer 'w'.*nn\.Linear"),
])
def test_unsupported_ops_are_named(model, pattern):
    with pytest.raises(UnsupportedLayerError, match=pattern):
        N.Network.from_module(model)


def test_relu_chain_and_bias_free_checks():
    N.Network.from_module(FunctionalMLP()).require_relu_chain(method="arora2018", linear_only=True)
    N.Network.from_module(ConvBNNet().eval()).require_relu_chain(method="spectral")
    with pytest.raises(AssumptionError, match="fully-connected.*conv2d"):
        N.Network.from_module(ConvBNNet().eval()).require_relu_chain(method="spectral", linear_only=True)
    with pytest.raises(AssumptionError) as ei:
        N.Network.from_module(ResidualMLP()).require_relu_chain(method="norm bound")
    assert ei.value.method == "norm bound" and "add" in str(ei.value)
    bf = nn.Sequential(nn.Linear(8, 6, bias=False), nn.ReLU(), nn.Linear(6, 2, bias=False))
    N.Network.from_module(bf).require_bias_free_relu_mlp(method="pensia")
    with pytest.raises(AssumptionError, match=r"pensia assumes a bias-free.*'fc1'.*non-zero bias"):
        N.Network.from_module(FunctionalMLP()).require_bias_free_relu_mlp(method="pensia")
    logits_relu = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    with pytest.raises(AssumptionError, match="logits"):
        N.Network.from_module(logits_relu).require_relu_chain(method="arora2018")


def test_entry_points_refuse_residual_models_naming_the_method():
    from prunebound.bounds.noise_stability import arora2018_bound
    from prunebound.bounds.norm_bounds import spectral_norms
    from prunebound.data import Dataset
    from prunebound.subnet_search.construct import construct_ticket

    data = Dataset(torch.randn(20, 8), torch.randint(0, 3, (20,)))
    with pytest.raises(AssumptionError, match="arora2018.*add"):
        arora2018_bound(ResidualMLP(), data)
    with pytest.raises(AssumptionError, match="norm bounds.*add"):
        spectral_norms(SequentialResidual())
    with pytest.raises(AssumptionError, match="strong-LTH construction \\(pensia\\).*bias"):
        construct_ticket(FunctionalMLP(), method="pensia", eps=0.1)


def test_capture_bare_layer_and_leaves_of_functional_chain():
    net = N.Network.from_module(nn.Linear(3, 2))
    assert [ly.path for ly in net.layers] == [""]
    leaves = N.Network.from_module(FunctionalMLP()).leaves
    assert [type(m).__name__ for _, m in leaves] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    g = capture(ConvBNNet().eval())
    assert [n.kind for n in g.nodes if n.kind == "flatten"] == ["flatten"]  # x.view(x.size(0), -1)


def test_errors_are_prunebound_errors():
    assert issubclass(AssumptionError, UnsupportedLayerError)
    assert issubclass(AssumptionError, PruneboundError)


class _FunctionalPoolCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        return self.fc(torch.flatten(h, 1))


def test_functional_pooling_chain_replays_through_leaves():
    from prunebound.bounds.norm_bounds import spectral_norms

    m = _FunctionalPoolCNN()
    net = N.Network.from_module(m)
    net.require_relu_chain(method="spectral")
    mods = [mod for _, mod in net.leaves]
    assert isinstance(mods[2], nn.MaxPool2d) and mods[2].kernel_size == 2
    x = torch.randn(3, 1, 8, 8)
    h = x
    for mod in mods:  # replay op by op equals the user's forward
        h = mod(h)
    torch.testing.assert_close(h, m(x))
    seq = nn.Sequential(m.c1, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), m.fc)  # same weights, as a chain
    got, want = spectral_norms(m, input_shape=(1, 8, 8)), spectral_norms(seq, input_shape=(1, 8, 8))
    assert len(got) == 2
    assert got == pytest.approx(want, rel=1e-9)


def test_architecture_spec_refuses_sequential_subclass_with_forward():
    with pytest.raises(UnsupportedLayerError, match="SequentialResidual.*plain chain"):
        N.architecture(SequentialResidual())


class _OptionAShortcut(nn.Module):
    """CIFAR ResNet (He et al. 2016) option-A shortcut: stride-2 subsampling plus zero-padded channels."""

    def __init__(self, value=0.0):
        super().__init__()
        self.value = value
        self.c1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(x)
        h = self.c2(F.relu(self.c1(x)))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 1, 1), "constant", value=self.value)
        h = F.relu(h + short)
        h = F.adaptive_avg_pool2d(h, 1)
        return self.fc(h.view(h.size(0), -1))


def test_option_a_shortcut_traces_and_keeps_nonnegativity():
    m = _OptionAShortcut()
    net = N.Network.from_module(m)
    kinds = [n.kind for n in net.graph.nodes]
    assert {"getitem", "pad", "add", "adaptiveavgpool2d", "flatten"} <= set(kinds)
    x = torch.randn(5, 2, 8, 8)
    torch.testing.assert_close(net.trace(x).output, m(x))
    assert [ly.input_nonnegative for ly in net.layers] == [True, True, True]
    for value, expect in ((0.0, True), (-1.0, False)):
        g = N.Network.from_module(_OptionAShortcut(value=value)).graph
        facts = N._nonnegative(g)
        pad = next(n for n in g.nodes if n.kind == "pad")
        add = next(n for n in g.nodes if n.kind == "add")
        assert facts[pad.name] is expect and facts[add.name] is False  # c2's output is signed


# ---------------------------------------------------------------------------------------- what follows each layer
def _by_path(net):
    return {ly.path: ly for ly in net.layers}


def test_residual_mlp_reports_merge_and_activation_after_it():
    net = N.Network.from_module(ResidualMLP())
    g = net.graph
    ly = _by_path(net)
    # fc2's own activation stays None (a ReLU after the add acts on a sum), the add and the ReLU after it are named
    assert ly["blocks.0.fc2"].activation is None
    (merge, act), = ly["blocks.0.fc2"].after_merge
    assert g.node(merge).kind == "add" and act == "relu"
    assert ly["blocks.0.fc2"].consumers == (merge,)
    assert ly["blocks.0.fc2"].feeds_merge and not ly["blocks.0.fc2"].is_output
    # fc_in's ReLU output feeds both fc1 and (as the skip) the add: both are consumers, the add is reported
    assert set(ly["fc_in"].consumers) == {ly["blocks.0.fc1"].node, merge}
    assert ly["fc_in"].after_merge == ((merge, "relu"),)
    # a layer in a plain stretch feeds the next weighted layer only
    assert ly["blocks.0.fc1"].consumers == (ly["blocks.0.fc2"].node,) and ly["blocks.0.fc1"].after_merge == ()
    assert ly["fc_out"].is_output and ly["fc_out"].consumers == ("<output>",)


def test_resnet20_blocks_conv2_add_relu_and_nonnegative_inputs():
    from prunebound.zoo import resnet20

    net = N.Network.from_module(resnet20(width=4, seed=0).eval())
    g = net.graph
    ly = _by_path(net)
    c2 = ly["layer1.0.conv2"]  # conv2 -> bn2 (folded to Identity) -> add(shortcut) -> relu
    assert c2.activation is None and c2.ops_after == ("identity",)
    (merge, act), = c2.after_merge
    assert g.node(merge).kind == "add" and act == "relu" and c2.consumers == (merge,)
    # the add's other input is the shortcut, the ReLU after it feeds the next block's conv1
    relu = g.users(merge)[0]
    assert g.node(relu).kind == "relu" and ly["layer1.1.conv1"].node in g.users(relu)
    # every conv2 of every block (both shortcut options) ends in add -> relu; every conv1 in its own ReLU
    for shortcut in ("A", "B"):
        net = N.Network.from_module(resnet20(width=4, seed=0, shortcut=shortcut).eval())
        for layer in net.layers:
            if layer.path.endswith("conv2"):
                assert [a for _, a in layer.after_merge] == ["relu"], layer.path
            elif layer.path.endswith("conv1"):
                assert layer.activation == "relu" and layer.after_merge in ((),) + (
                    tuple((m, "relu") for m, _ in layer.after_merge),), layer.path
        # the input of every conv but the stem is relu(...) of an add or of a conv: non-negative, and the
        # coreset assumption check accepts the whole ResNet
        assert [layer.input_nonnegative for layer in net.layers] == [False] + [True] * (len(net.layers) - 1)
        net.require_nonnegative_inputs(method="test")


def test_densenet_cat_consumers_and_input_nonnegativity():
    from prunebound.zoo import densenet

    net = N.Network.from_module(densenet(width=4, layers=2, seed=0).eval())
    g = net.graph
    cats = [n.name for n in g.nodes if n.kind == "cat"]
    assert cats
    fed = [layer for layer in net.layers if layer.feeds_merge]
    assert fed, "no layer reported as feeding a concatenation"
    for layer in fed:
        assert layer.activation == "relu"  # Conv-BN-ReLU, then cat
        for m, act in layer.after_merge:
            assert m in cats and act is None  # the cat feeds a conv (or a transition) directly
            assert m in layer.consumers or any(g.node(c).kind != "cat" for c in layer.consumers)
    assert all(layer.input_nonnegative for layer in net.layers[1:])
    small = N.Network.from_module(DenseCatNet())
    ly = _by_path(small)
    assert len(ly["f0"].after_merge) == 2 and {a for _, a in ly["f0"].after_merge} == {None}
    assert ly["head"].is_output


class _AddThenLinear(nn.Module):
    """A merge with no activation after it: the next layer's input h + b(h) can be negative."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 6)
        self.c = nn.Linear(6, 2)

    def forward(self, x):
        h = F.relu(self.a(x))
        return self.c(h + self.b(h))


class _ReluOfAdd(_AddThenLinear):
    def forward(self, x):
        h = F.relu(self.a(x))
        return self.c(F.relu(h + self.b(h)))


def test_nonnegativity_after_add_is_decided_by_what_follows_the_add():
    bad = N.Network.from_module(_AddThenLinear())
    ly = _by_path(bad)
    assert ly["b"].after_merge[0][1] is None and ly["a"].activation == "relu"
    assert ly["c"].input_nonnegative is False
    with pytest.raises(AssumptionError, match="non-negative") as e:
        bad.require_nonnegative_inputs(method="CoreNet")
    assert "'c'" in str(e.value) and "add" in str(e.value)
    assert "linear node 'b' is not a ReLU/Sigmoid output" in str(e.value)  # the signed summand is named
    good = N.Network.from_module(_ReluOfAdd())
    ly = _by_path(good)
    assert ly["b"].activation is None and ly["b"].after_merge[0][1] == "relu"
    assert ly["a"].activation == "relu" and ly["a"].after_merge[0][1] == "relu"  # h is the skip of the add
    assert ly["c"].input_nonnegative is True
    good.require_nonnegative_inputs(method="CoreNet")
    # and the check is right: the recorded input of c is >= 0 on data
    assert bool((good.trace(torch.randn(50, 4)).inputs[2] >= 0).all())
    assert bool((bad.trace(torch.randn(200, 4)).inputs[2] < 0).any())


def test_ticket_target_with_residual_add_after_last_layer_is_refused():
    from prunebound.subnet_search.certify import target_weights

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8, bias=False)
            self.fc2 = nn.Linear(8, 4, bias=False)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x))) + x

    net = N.Network.from_module(Res())
    assert net.layers[-1].activation is None and not net.layers[-1].is_output  # activation alone would accept it
    with pytest.raises(AssumptionError, match="residual adds"):
        target_weights(Res())
    target_weights(N.mlp(4, [8], 4, bias=False, seed=0))  # the plain MLP target stays accepted
