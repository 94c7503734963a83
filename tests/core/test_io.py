import os
import pickle
import sys
import textwrap

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

from prunebound import io as pio
from prunebound import network as N
from prunebound.archspec import architecture as strict_architecture
from prunebound.certificate import model_sha256
from prunebound.errors import DataError, InvalidParameterError, UnsafeCheckpointError, UnsupportedLayerError


def _pruned_model():
    m = N.mlp(6, [5], 3, seed=0)
    mk = (torch.rand(5, 6, generator=torch.Generator().manual_seed(1)) > 0.4).float()
    N.apply_masks(m, {"0": mk})
    return m


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_roundtrip_pruned(tmp_path, suffix):
    m = _pruned_model()
    p = pio.save_model(m, tmp_path / f"m{suffix}")
    m2 = pio.load_model(p)
    assert N.is_pruned(m2[0])
    assert torch.equal(m2[0].weight_mask, m[0].weight_mask)
    x = torch.randn(7, 6)
    torch.testing.assert_close(m2(x), m(x))


def test_cnn_roundtrip(tmp_path):
    m = N.lenet5(seed=0)
    m2 = pio.load_model(pio.save_model(m, tmp_path / "c.pt"))
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(m2(x), m(x))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/prunebound_pwned",))


def test_malicious_pickle_refused(tmp_path):
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    if os.path.exists("/tmp/prunebound_pwned"):
        os.remove("/tmp/prunebound_pwned")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        pio.load_model(p)
    assert not os.path.exists("/tmp/prunebound_pwned")


def test_not_a_state_dict(tmp_path):
    p = tmp_path / "list.pt"
    torch.save([1, 2, 3], p)
    with pytest.raises(DataError, match="not a state_dict"):
        pio.load_model(p)


def test_bare_state_dict_needs_architecture(tmp_path):
    m = N.mlp(3, [2], 2, seed=0)
    p = tmp_path / "sd.pt"
    torch.save(m.state_dict(), p)
    with pytest.raises(DataError, match="architecture"):
        pio.load_model(p)
    m2 = pio.load_model(p, architecture=N.architecture(m))
    torch.testing.assert_close(N.to_vector(m2), N.to_vector(m))
    with pytest.raises(DataError, match="does not match"):
        pio.load_model(p, module=N.mlp(3, [4], 2))


def test_nan_checkpoint_rejected(tmp_path):
    m = N.mlp(3, [2], 2, seed=0)
    with torch.no_grad():
        m[0].bias[0] = float("inf")
    p = pio.save_model(m, tmp_path / "nan.pt")
    with pytest.raises(DataError, match="non-finite"):
        pio.load_model(p)


# ------------------------------------------------------------------------------------------- class-based models


class ResMLP(nn.Module):
    """A user's class: residual MLP with BatchNorm and dropout."""

    def __init__(self, d=6, h=8, k=3):
        super().__init__()
        self.inp = nn.Linear(d, h)
        self.bn = nn.BatchNorm1d(h)
        self.block = nn.Linear(h, h)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(h, k)

    def forward(self, x):
        h = torch.relu(self.bn(self.inp(x)))
        h = h + torch.relu(self.block(self.drop(h)))
        return self.out(h)


class TiedAE(nn.Module):
    """Weight tying: the decoder reuses the encoder's weight."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(5, 5)
        self.dec = nn.Linear(5, 5)
        self.dec.weight = self.enc.weight

    def forward(self, x):
        return self.dec(torch.relu(self.enc(x)))


class Residual(nn.Sequential):
    """An nn.Sequential subclass with its own forward: NOT the chain of its children."""

    def forward(self, x):
        return x + super().forward(x)


def _trained(m, x):
    m.train()
    m(x)
    return m.eval()


def test_class_model_via_module(tmp_path):
    torch.manual_seed(0)
    m = _trained(ResMLP(), torch.randn(16, 6))
    p = pio.save_model(m, tmp_path / "r.pt")
    assert pio.read_header(p)["reference"] == {"kind": "none"}
    with pytest.raises(DataError, match="module="):
        pio.load_model(p)
    m2 = pio.load_model(p, module=ResMLP())
    x = torch.randn(4, 6)
    assert torch.equal(m2(x), m(x)) and model_sha256(m2) == model_sha256(m)


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    """An importable user package with factories (what `package.module:factory` points at)."""
    pkg = tmp_path / "userpkg_io"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from pathlib import Path
        MARK = Path(__file__).with_name("imported.flag")
        MARK.write_text("imported")

        class Net(nn.Module):
            def __init__(self, h=8):
                super().__init__()
                self.a = nn.Linear(4, h)
                self.b = nn.Linear(h, 4)
                self.b2 = nn.Linear(4, 4)
                self.b2.weight = self.a.weight if h == 4 else self.b2.weight

            def forward(self, x):
                y = self.b(torch.relu(self.a(x)))
                return y + self.b2(y)

        def make(h=8):
            return Net(h)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [n for n in sys.modules if n.startswith("userpkg_io")]:
        del sys.modules[name]


def test_class_model_via_import_path(tmp_path, factory_module):
    import importlib

    mod = importlib.import_module("userpkg_io.models")
    m = mod.make(h=6).double().eval()
    p = pio.save_model(m, tmp_path / "imp.safetensors", factory="userpkg_io.models:make", kwargs={"h": 6})
    assert pio.read_header(p)["reference"] == {"kind": "import", "target": "userpkg_io.models:make",
                                               "kwargs": {"h": 6}}
    m2 = pio.load_model(p, allow_import=True)
    assert type(m2).__name__ == "Net" and all(t.dtype == torch.float64 for t in m2.parameters())
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(m2(x), m(x)) and model_sha256(m2) == model_sha256(m)


def test_import_path_with_tied_factory(tmp_path, factory_module):
    import importlib

    m = importlib.import_module("userpkg_io.models").make(h=4).eval()
    assert m.b2.weight is m.a.weight
    p = pio.save_model(m, tmp_path / "t.pt", factory="userpkg_io.models:make", kwargs={"h": 4})
    m2 = pio.load_model(p, allow_import=True)
    assert m2.b2.weight is m2.a.weight
    x = torch.randn(2, 4)
    assert torch.equal(m2(x), m(x))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_tied_weights_stored_once_and_retied(tmp_path, suffix):
    torch.manual_seed(1)
    m = TiedAE().eval()
    p = pio.save_model(m, tmp_path / f"t{suffix}")
    h = pio.read_header(p)
    assert h["tied"] == [["enc.weight", "dec.weight"]] and "dec.weight" not in h["dtypes"]
    m2 = pio.load_model(p, module=TiedAE())
    assert m2.dec.weight is m2.enc.weight
    x = torch.randn(3, 5)
    assert torch.equal(m2(x), m(x)) and model_sha256(m2) == model_sha256(m)
    # an untied instance gets the tie back (the file says so)
    plain = TiedAE()
    plain.dec.weight = nn.Parameter(torch.zeros(5, 5))
    m3 = pio.load_model(p, module=plain)
    assert m3.dec.weight is m3.enc.weight and torch.equal(m3(x), m(x))


def test_tied_sequential_spec_retied(tmp_path):
    m = N.mlp(4, [4], 4, seed=0)
    m[2].weight = m[0].weight
    m2 = pio.load_model(pio.save_model(m, tmp_path / "s.pt"))
    assert m2[2].weight is m2[0].weight
    x = torch.randn(2, 4)
    assert torch.equal(m2(x), m(x))


def test_float64_sequential_not_downcast(tmp_path):
    m = N.mlp(5, [7], 3, seed=0).double()
    for suffix in (".pt", ".safetensors"):
        m2 = pio.load_model(pio.save_model(m, tmp_path / f"d{suffix}"))
        assert all(t.dtype == torch.float64 for t in m2.parameters())
        assert model_sha256(m2) == model_sha256(m)
    # loading into a user's float32 instance converts it to the file's dtype rather than rounding the weights
    m3 = pio.load_model(tmp_path / "d.pt", module=N.mlp(5, [7], 3))
    assert m3[0].weight.dtype == torch.float64 and torch.equal(m3[0].weight, m[0].weight)


def test_sequential_subclass_is_not_a_chain(tmp_path):
    m = nn.Sequential(nn.Linear(4, 4), Residual(nn.Linear(4, 4), nn.ReLU()), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match="subclass of nn.Sequential"):
        strict_architecture(m)
    with pytest.raises(UnsupportedLayerError):
        N.architecture(m)  # network's name re-exports the strict version
    p = pio.save_model(m, tmp_path / "res.pt")
    assert pio.read_header(p)["reference"] == {"kind": "none"}
    with pytest.raises(DataError, match="module="):
        pio.load_model(p)
    m2 = pio.load_model(p, module=nn.Sequential(nn.Linear(4, 4), Residual(nn.Linear(4, 4), nn.ReLU()),
                                                nn.Linear(4, 2)))
    x = torch.randn(3, 4)
    assert torch.equal(m2(x), m(x))


def test_pruned_class_model_masks_restored(tmp_path):
    torch.manual_seed(0)
    m = _trained(ResMLP(), torch.randn(8, 6))
    tprune.l1_unstructured(m.block, "weight", amount=0.5)
    p = pio.save_model(m, tmp_path / "pr.pt")
    assert pio.read_header(p)["pruned"] == ["block.weight"]
    m2 = pio.load_model(p, module=ResMLP())
    assert tprune.is_pruned(m2) and torch.equal(m2.block.weight_mask, m.block.weight_mask)
    x = torch.randn(3, 6)
    assert torch.equal(m2(x), m(x)) and model_sha256(m2) == model_sha256(m)


def test_v1_checkpoint_still_loads(tmp_path):
    import json

    m = N.mlp(3, [4], 2, seed=0)
    p = tmp_path / "v1.pt"
    torch.save({"format": "prunebound-model-v1", "architecture": json.dumps(N.architecture(m)),
                "state_dict": m.state_dict()}, p)
    m2 = pio.load_model(p)
    assert torch.equal(N.to_vector(m2), N.to_vector(m))


def test_save_is_atomic_and_leaves_no_temp(tmp_path):
    m = N.mlp(3, [4], 2, seed=0)
    p = pio.save_model(m, tmp_path / "a.pt")
    first = p.read_bytes()
    pio.save_model(N.mlp(3, [4], 2, seed=1), p)  # overwrite
    assert p.read_bytes() != first
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.pt"]


def test_fingerprint_recorded(tmp_path):
    m = N.lenet5(seed=0).eval()
    fp = pio.read_header(pio.save_model(m, tmp_path / "l.pt"))["fingerprint"]
    assert fp["input_shape"] == [1, 28, 28] and fp["output_shape"] == [4, 10]
    x = pio._fingerprint_inputs((1, 28, 28), torch.float32)
    assert torch.equal(torch.tensor(fp["outputs"], dtype=torch.float64).reshape(4, 10), m(x).double())


def test_cli_allow_import(tmp_path, factory_module, capsys):
    from prunebound.cli import main

    (factory_module / "seq.py").write_text(
        "from prunebound.network import mlp\ndef make(h=5):\n    return mlp(4, [h], 2, seed=0)\n")
    p = pio.save_model(pio.load_model(pio.save_model(N.mlp(4, [5], 2, seed=0), tmp_path / "a.pt")),
                       tmp_path / "imp.pt", factory="userpkg_io.seq:make", kwargs={"h": 5})
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunebound: error:") and "--allow-import" in err and len(err.strip().splitlines()) == 1
    assert "userpkg_io.seq" not in sys.modules
    assert main(["info", str(p), "--allow-import"]) == 0
    assert "2 weighted layers" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- architecture specs
def _spec_models():
    return [
        N.mlp(5, [4, 3], 2, seed=0),
        N.lenet5(seed=0),
        N.conv1d_small(seed=0),
        nn.Sequential(nn.Conv2d(4, 4, 3, groups=4, padding=1, bias=False), nn.BatchNorm2d(4), nn.GELU(),
                      nn.Conv2d(4, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(8), nn.SiLU(),
                      nn.Linear(8, 3)),
        nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.LeakyReLU(0.2), nn.Tanh()), nn.Dropout(0.1),
                      nn.BatchNorm1d(3, affine=False), nn.Sigmoid(), nn.LayerNorm(3, elementwise_affine=False)),
    ]


@pytest.mark.parametrize("i", range(5))
def test_spec_shapes_match_built_module(i):
    from prunebound.archspec import build_architecture, spec_state_shapes

    m = _spec_models()[i]
    spec = strict_architecture(m)
    shapes = spec_state_shapes(spec)
    # independent route: the state_dict of the real module and of a rebuilt one
    assert shapes == {k: tuple(v.shape) for k, v in m.state_dict().items()}
    meta = build_architecture(spec, device="meta")
    assert all(t.is_meta for t in meta.state_dict().values())
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == shapes


@pytest.mark.parametrize("i", range(5))
def test_spec_models_roundtrip(tmp_path, i):
    m = _spec_models()[i]
    m.train()
    shape = pio._infer_input_shape(m) or (3,)
    m(torch.randn(4, *shape))
    m.eval()
    m2 = pio.load_model(pio.save_model(m, tmp_path / "s.pt", input_shape=shape))
    x = torch.randn(3, *shape)
    assert torch.equal(m2(x), m(x)) and model_sha256(m2) == model_sha256(m)


def test_spec_refuses_what_it_cannot_describe():
    class MyLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(UnsupportedLayerError, match="MyLinear"):
        strict_architecture(nn.Sequential(MyLinear(2, 2)))
    hooked = nn.Sequential(nn.Linear(2, 2))
    hooked[0].register_forward_hook(lambda mod, inp, out: out * 2)
    with pytest.raises(UnsupportedLayerError, match="hook"):
        strict_architecture(hooked)
    pruned = N.mlp(2, [2], 2)
    N.apply_masks(pruned, {"0": torch.ones(2, 2)})
    assert strict_architecture(pruned) == strict_architecture(N.mlp(2, [2], 2))  # prune hooks are fine


def test_save_with_wrong_input_shape(tmp_path):
    with pytest.raises(InvalidParameterError, match="input_shape"):
        pio.save_model(N.mlp(3, [2], 2), tmp_path / "w.pt", input_shape=(5,))
    assert list(tmp_path.iterdir()) == []
