import json
import math

import pytest
import torch

from prunebound import certificate as C
from prunebound import data as D
from prunebound import network as N
from prunebound.errors import DataError, InvalidParameterError


def _hoeffding_certifier(module, data, *, delta, seed, extra=0.0):
    err = float((module(data.x).argmax(1) != data.y).double().mean())
    comp = math.sqrt(math.log(1 / delta) / (2 * len(data))) + extra
    return C.make_certificate("test_hoeffding", C.BoundTerms(err + comp, err, comp, {"ln_1_over_delta":
                                                                                      math.log(1 / delta)}),
                              module, data, delta=delta, seed=seed, params={"extra": extra})


C.register_certifier("test_hoeffding", _hoeffding_certifier)


@pytest.fixture
def setup():
    t = D.teacher_task(d_in=4, width=8, seed=0)
    return N.mlp(4, [5], 2, seed=0), t.sample(200, 0)


def test_model_hash_canonical(setup):
    m, _ = setup
    m2 = N.mlp(4, [5], 2, seed=0)
    assert C.model_sha256(m) == C.model_sha256(m2)
    with torch.no_grad():
        m2[0].weight[0, 0] += 1e-6
    assert C.model_sha256(m) != C.model_sha256(m2)


def test_save_load_verify_roundtrip(setup, tmp_path):
    m, d = setup
    cert = _hoeffding_certifier(m, d, delta=0.05, seed=1, extra=0.01)
    p = cert.save(tmp_path / "c.json")
    back = C.Certificate.load(p)
    assert back == cert
    assert json.loads(p.read_text())["kind"] == "test_hoeffding"
    rep = C.verify(back, m, d)
    assert rep.ok, rep.differences
    assert {"python", "torch", "numpy", "prunebound"} <= set(cert.versions)


def test_verify_detects_changes(setup):
    m, d = setup
    cert = _hoeffding_certifier(m, d, delta=0.05, seed=1)
    m2 = N.mlp(4, [5], 2, seed=1)
    rep = C.verify(cert, m2, d)
    assert not rep.ok and any("model sha256" in s for s in rep.differences)
    d2 = D.teacher_task(d_in=4, width=8, seed=0).sample(200, 1)
    rep = C.verify(cert, m, d2)
    assert not rep.ok and any("data sha256" in s for s in rep.differences)
    forged = C.Certificate.from_dict({**cert.to_dict(), "value": cert.value - 0.1})
    rep = C.verify(forged, m, d)
    assert not rep.ok and any(s.startswith("value differs") for s in rep.differences)


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        C.Certificate.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(DataError, match="JSON"):
        C.Certificate.load(tmp_path / "bad.json")
    (tmp_path / "miss.json").write_text('{"kind": "x"}')
    with pytest.raises(DataError, match="missing"):
        C.Certificate.load(tmp_path / "miss.json")


def test_unknown_kind(setup):
    m, d = setup
    cert = _hoeffding_certifier(m, d, delta=0.05, seed=1)
    bad = C.Certificate.from_dict({**cert.to_dict(), "kind": "no_such_bound"})
    with pytest.raises(InvalidParameterError, match="no certifier"):
        C.verify(bad, m, d)
