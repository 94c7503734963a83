"""Model zoo: shapes, documented parameter counts, seeding, the --arch grammar, save/load round trips."""

import pytest
import torch
from torch import nn

from prunebound import data as D
from prunebound import io as pio
from prunebound import network as N
from prunebound import zoo
from prunebound.certificate import model_sha256
from prunebound.cli import main
from prunebound.errors import InvalidParameterError

# Documented counts (module docstring of prunebound.zoo); computed on the meta device, so full sizes are cheap.
COUNTS = {
    ("resnet20", "A"): 269_722,
    ("resnet20", "B"): 272_474,
    ("resnet56", "A"): 853_018,
    ("resnet56", "B"): 855_770,
    ("vgg11", None): 9_231_114,
    ("vgg16", None): 14_728_266,
    ("mobilenet", None): 3_217_226,
    ("densenet", None): 75_562,
    ("lenet5", None): 61_706,
    ("resnet20_1d", "A"): 91_162,
    ("densenet_1d", None): 30_058,
}

# tiny versions for the forward / round-trip tests
TINY = {
    "resnet20": {"width": 2},
    "resnet56": {"width": 1},
    "resnet20_1d": {"width": 2},
    "vgg11": {"width": 2},
    "vgg16": {"width": 1},
    "mobilenet": {"width": 2},
    "densenet": {"width": 2, "layers": 2},
    "densenet_1d": {"width": 2, "layers": 2},
    "lenet5": {},
    "conv1d_small": {"channels": 4},
    "lenet300_100": {"d_in": 20, "d_out": 3},
    "mlp": {"d_in": 6, "widths": [5, 4], "d_out": 3},
}
CLASS_BASED = ["resnet20", "resnet56", "resnet20_1d", "vgg11", "vgg16", "mobilenet", "densenet", "densenet_1d"]


def _input_shape(m):
    if hasattr(m, "input_shape"):
        return m.input_shape
    return pio._infer_input_shape(m)


@pytest.mark.parametrize("name,shortcut", sorted(COUNTS, key=str))
def test_documented_parameter_counts(name, shortcut):
    kw = {"shortcut": shortcut} if shortcut else {}
    m = zoo.build(name, device="meta", **kw)
    assert zoo.count_params(m) == COUNTS[(name, shortcut)]


def test_resnet_counts_match_paper():
    # He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-56 0.85M parameters.
    assert round(zoo.count_params(zoo.build("resnet20", device="meta")) / 1e6, 2) == 0.27
    assert round(zoo.count_params(zoo.build("resnet56", device="meta")) / 1e6, 2) == 0.85


def test_registry_covers_the_issue():
    need = {"resnet20", "resnet56", "vgg11", "vgg16", "mobilenet", "densenet", "lenet5", "resnet20_1d",
            "densenet_1d", "mlp", "lenet300_100", "conv1d_small"}
    assert need <= set(zoo.REGISTRY)
    assert set(TINY) == set(zoo.REGISTRY)
    assert zoo.lenet5 is N.lenet5  # re-exported, not duplicated


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_shape_and_seed(name):
    kw = dict(TINY[name])
    classes_key = {"lenet5": "n_classes", "conv1d_small": "n_classes", "mlp": "d_out", "lenet300_100": "d_out"}
    k = classes_key.get(name, "num_classes")
    kw[k] = 7
    state = torch.random.get_rng_state()
    a = zoo.build(name, seed=3, **kw)
    assert torch.equal(torch.random.get_rng_state(), state), "building must not touch the global RNG"
    b = zoo.build(name, seed=3, **kw)
    c = zoo.build(name, seed=4, **kw)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[n], sb[n]) for n in sa)
    assert any(not torch.equal(sa[n], sc[n]) for n in sa if sa[n].is_floating_point())
    a.eval()
    x = torch.randn(3, *_input_shape(a))
    assert a(x).shape == (3, 7)


@pytest.mark.parametrize("name", CLASS_BASED)
def test_class_based_with_own_forward(name):
    m = zoo.build(name, **TINY[name])
    assert type(m).forward is not nn.Sequential.forward
    assert isinstance(m, zoo.ZooModel)


def test_depthwise_and_concat_present():
    m = zoo.build("mobilenet", width=2)
    dw = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.groups > 1]
    assert dw and all(c.groups == c.in_channels == c.out_channels for c in dw)
    d = zoo.build("densenet", width=2, layers=2)
    layer = d.features[0]
    x = torch.randn(1, layer.conv.in_channels, 8, 8)
    assert layer.eval()(x).shape[1] == layer.conv.in_channels + 2  # concatenation adds `growth` channels
    assert torch.equal(layer(x)[:, : layer.conv.in_channels], x)


def test_resnet_residual_is_used():
    m = zoo.build("resnet20", width=2, seed=0).eval()
    blk = m.layer1[0]
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        blk.conv2.weight.zero_()
        blk.bn2.bias.zero_()
        blk.bn2.running_mean.zero_()
        # with the residual branch silenced the block is relu(x): only the shortcut remains
        torch.testing.assert_close(blk(x), torch.relu(x))


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_save_load_identical(tmp_path, name, suffix):
    m = zoo.build(name, seed=1, **TINY[name])
    m.train()
    m(torch.randn(4, *_input_shape(m)))  # give BatchNorm non-trivial running statistics
    m.eval()
    p = pio.save_model(m, tmp_path / f"m{suffix}")
    ref = pio.read_header(p)["reference"]
    assert ref["kind"] == ("zoo" if name in CLASS_BASED else "spec")
    m2 = pio.load_model(p)
    assert type(m2) is type(m)
    x = torch.randn(5, *_input_shape(m))
    assert torch.equal(m2(x), m(x))
    assert model_sha256(m2) == model_sha256(m)


@pytest.mark.parametrize("name", sorted(TINY))
def test_float64_roundtrip(tmp_path, name):
    m = zoo.build(name, seed=2, **TINY[name]).double().eval()
    m2 = pio.load_model(pio.save_model(m, tmp_path / "m.pt"))
    assert all(t.dtype == torch.float64 for t in m2.parameters())
    x = torch.randn(3, *_input_shape(m), dtype=torch.float64)
    assert torch.equal(m2(x), m(x))
    assert model_sha256(m2) == model_sha256(m)


def test_pruned_zoo_model_roundtrip(tmp_path):
    import torch.nn.utils.prune as tprune

    m = zoo.build("resnet20", width=2, seed=0).eval()
    tprune.l1_unstructured(m.layer2[0].conv1, "weight", amount=0.5)
    tprune.random_unstructured(m.fc, "bias", amount=0.3)
    p = pio.save_model(m, tmp_path / "p.pt")
    assert pio.read_header(p)["reference"]["kind"] == "zoo"
    assert pio.read_header(p)["pruned"] == ["fc.bias", "layer2.0.conv1.weight"]
    m2 = pio.load_model(p)
    assert isinstance(m2.layer2[0].conv1.weight_mask, torch.Tensor)
    assert torch.equal(m2.layer2[0].conv1.weight_mask, m.layer2[0].conv1.weight_mask)
    assert torch.equal(m2.fc.bias_mask, m.fc.bias_mask)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(m2(x), m(x))
    assert model_sha256(m2) == model_sha256(m)
    # still an ordinary pruned module: the mask is applied in every forward
    with torch.no_grad():
        m2.layer2[0].conv1.weight_orig.add_(1.0)
    m2(x)
    assert bool((m2.layer2[0].conv1.weight[m2.layer2[0].conv1.weight_mask == 0] == 0).all())


# ------------------------------------------------------------------------------------------- --arch grammar
@pytest.mark.parametrize("spec,name,kwargs", [
    ("mlp:40,128,10", "mlp", {"d_in": 40, "widths": [128], "d_out": 10}),
    ("mlp:40,10", "mlp", {"d_in": 40, "widths": [], "d_out": 10}),
    ("mlp:40,64,32,10,seed=5", "mlp", {"d_in": 40, "widths": [64, 32], "d_out": 10, "seed": 5}),
    ("resnet20:classes=10,width=16", "resnet20", {"num_classes": 10, "width": 16}),
    ("resnet56:classes=100,shortcut=B", "resnet56", {"num_classes": 100, "shortcut": "B"}),
    ("vgg16", "vgg16", {}),
    ("lenet300_100:784,10", "lenet300_100", {"d_in": 784, "d_out": 10}),
    ("densenet_1d:width=8,layers=2,classes=10", "densenet_1d", {"width": 8, "layers": 2, "num_classes": 10}),
    ('resnet20:{"num_classes": 5}', "resnet20", {"num_classes": 5}),
    ("lenet5:classes=3", "lenet5", {"n_classes": 3}),
])
def test_parse_arch(spec, name, kwargs):
    assert zoo.parse_arch(spec) == (name, kwargs)


@pytest.mark.parametrize("spec,match", [
    ("", "non-empty"),
    ("resnet21", "unknown architecture"),
    ("resnet20:classes=ten", "num_classes"),
    ("resnet20:colour=red", "no parameter 'colour'"),
    ("resnet20:16", "only key=value"),
    ("resnet20:width=16,,", "empty item"),
    ("resnet20:width=0", "width"),
    ("resnet20:width=16,width=8", "repeated"),
    ("resnet20:shortcut=C", "shortcut"),
    ("mlp:40", "at least 2"),
    ("mlp:40,x,10", "widths"),
    ("mlp:bias=true", "needs d_in"),
    ("mlp:width=3", "no parameter .width."),
    ("resnet20:{not json", "malformed"),
    ("vgg16:width=4096", "budget"),
    ("lenet300_100:1,2,3", "at most 2"),
])
def test_parse_arch_errors(spec, match):
    with pytest.raises(InvalidParameterError, match=match):
        zoo.from_arch(spec)


def test_cli_arch_error_is_one_line(tmp_path, capsys):
    rc = main(["train", "--arch", "resnet20:classes=ten", "--data", "teacher:n=20", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("prunebound: error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "m.pt").exists()


def test_cli_train_zoo_model(tmp_path, capsys):
    out = tmp_path / "r.pt"
    rc = main(["train", "--arch", "resnet20_1d:width=2,classes=2,length=20", "--data", "teacher:d=20,n=64",
               "--epochs", "1", "--out", str(out)])
    assert rc == 0
    m = pio.load_model(out)
    assert isinstance(m, zoo.CifarResNet) and m.fc.out_features == 2


# ------------------------------------------------------------------------------------------- CIFAR-shaped teacher
def test_conv_teacher_task():
    t = D.teacher_task(shape=(3, 32, 32), width=8, n_classes=10, seed=0)
    assert isinstance(t, D.ConvTeacherTask)
    a, b = t.sample(2000, 1), t.sample(2000, 1)
    assert a.x.shape == (2000, 3, 32, 32) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(t.sample(50, 2).x, a.x[:50])  # fresh samples from another seed
    freq = torch.bincount(a.y, minlength=10).float() / 2000
    assert freq.min() > 0.03 and freq.max() < 0.25  # centred logits: no class dominates
    # the teacher itself has zero risk; a constant predictor has risk 1 - its class frequency
    assert t.true_risk(t.teacher, n=2000) == 0.0
    const = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with torch.no_grad():
        const[1].weight.zero_()
        const[1].bias.copy_(torch.arange(10.0))
    r = t.true_risk(const, n=4000, seed=7)
    n9 = int((t.sample(4000, 7).y == 9).sum())
    assert r == (4000 - n9) / 4000


def test_conv_teacher_label_noise_is_bayes_risk():
    t = D.conv_teacher_task(width=4, n_classes=4, label_noise=0.2, seed=1)
    r = t.true_risk(t.teacher, n=20000, seed=3)
    assert abs(r - 0.2) < 4 * (0.2 * 0.8 / 20000) ** 0.5


def test_conv_teacher_bad_shape():
    with pytest.raises(InvalidParameterError):
        D.conv_teacher_task(shape=(3, 32))
    with pytest.raises(InvalidParameterError):
        D.conv_teacher_task(shape=(3, 4, 4))


def test_resolve_conv_teacher():
    d = D.resolve("conv_teacher:n=16,k=3,width=4")
    assert d.x.shape == (16, 3, 32, 32) and d.n_classes == 3


def test_conv_teacher_inputs_smooth_and_unit_variance():
    x_iid = D.conv_teacher_task(width=4, upsample=1).sample(500, 0).x
    x_smooth = D.conv_teacher_task(width=4, upsample=4).sample(500, 0).x

    def neighbour_corr(x):
        a, b = x[..., :, :-1].reshape(-1), x[..., :, 1:].reshape(-1)
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert abs(float(x_iid.std()) - 1) < 0.02 and abs(neighbour_corr(x_iid)) < 0.02
    assert abs(float(x_smooth.std()) - 1) < 0.05 and neighbour_corr(x_smooth) > 0.8
