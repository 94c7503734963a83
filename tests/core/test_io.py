import os
import pickle

import pytest
import torch

from prunebound import io as pio
from prunebound import network as N
from prunebound.errors import DataError, UnsafeCheckpointError


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
