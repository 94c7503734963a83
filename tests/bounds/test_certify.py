"""certify(): dispatch through the core registry, reproducible certificates that verify() recomputes."""

import json

import pytest
import torch

from prunebound.bounds import certify, kl_gaussians, pac_bayes_gaussian_bound
from prunebound.certificate import Certificate, certifiers, verify
from prunebound.data import teacher_task
from prunebound.errors import InvalidParameterError
from prunebound.network import architecture, build_architecture, mlp, to_vector
from prunebound.train import fit


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    task = teacher_task(d_in=6, width=8, seed=0)
    data = task.sample(300, 1)
    m = mlp(6, [8], 2, seed=0)
    fit(m, data, epochs=5, lr=0.05, seed=0)
    with torch.no_grad():
        for layer in (m[0], m[2]):
            s = float(layer.weight.abs().max()) / 3
            layer.weight.copy_(torch.round(layer.weight / s) * s)
    return m, data


def _perturbed(m):
    m2 = build_architecture(architecture(m))
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        m2[0].bias.add_(0.5)
    return m2


def test_methods_registered():
    reg = certifiers()
    for k in ("occam", "zhou2019", "pac_bayes_gaussian"):
        assert k in reg


def test_unknown_method_lists_known(setup):
    m, data = setup
    with pytest.raises(InvalidParameterError, match="occam"):
        certify(m, data, method="nope")
    with pytest.raises(InvalidParameterError):
        certify(m, data, method="occam", delta=0.0, bits=10)


@pytest.mark.parametrize(
    "method,params",
    [
        ("occam", {}),
        ("occam", {"form": "hoeffding"}),
        ("zhou2019", {"sigmas": [0.1, 0.3], "taus": [0.3], "mc_samples": 20, "index_code": "none"}),
        ("pac_bayes_gaussian", {"sigmas": [0.01, 0.05], "mc_samples": 20, "prior_mean": "init"}),
    ],
)
def test_certificate_round_trip_and_tamper_detection(setup, method, params):
    m, data = setup
    cert = certify(m, data, method=method, delta=0.05, seed=4, **params)
    assert isinstance(cert, Certificate) and cert.kind == method and cert.verifiable
    assert 0 <= cert.empirical <= cert.value <= 1 and cert.n == len(data)
    rep = verify(cert, m, data)
    assert rep.ok, rep.differences
    # JSON round trip keeps it verifiable
    back = Certificate.from_dict(json.loads(cert.to_json()))
    assert verify(back, m, data).ok
    # a changed model is detected
    rep2 = verify(cert, _perturbed(m), data)
    assert not rep2.ok and any("model sha256" in d for d in rep2.differences)
    # a tampered value is detected
    forged = Certificate.from_dict({**cert.to_dict(), "value": cert.value * 0.5})
    assert not verify(forged, m, data).ok


def test_occam_certificate_value(setup):
    from prunebound.bounds.pac_bayes import occam_bound
    from prunebound.train import evaluate

    m, data = setup
    cert = certify(m, data, method="occam", bits=400)
    assert cert.value == occam_bound(evaluate(m, data).error, 400, len(data), delta=0.05).value
    # a declared code length is never an "occam" certificate: its own, unverifiable kind
    assert cert.kind == "occam_declared_bits" and not cert.verifiable and "UNVERIFIABLE" in cert.summary()
    rep = verify(cert, m, data)
    assert not rep.ok and not rep.checkable and rep.status == "not checkable"


def test_pac_bayes_gaussian_kl_and_prior_choice(setup):
    m, data = setup
    t0 = pac_bayes_gaussian_bound(m, data, delta=0.05, sigmas=[0.05], mc_samples=10, prior_mean="zero")
    w = to_vector(m).double().numpy()
    assert t0.parts["kl"] == pytest.approx(kl_gaussians(w, 0.05, 0.0, 0.05), rel=1e-12)
    t1 = pac_bayes_gaussian_bound(
        m, data, delta=0.05, sigmas=[0.05], mc_samples=10, prior_mean="init", init_seed=0
    )
    w0 = to_vector(mlp(6, [8], 2, seed=0)).double().numpy()
    assert t1.parts["kl"] == pytest.approx(kl_gaussians(w, 0.05, w0, 0.05), rel=1e-12)
    t2 = pac_bayes_gaussian_bound(m, data, delta=0.05, sigmas=[0.05], sigma_prior=0.5, mc_samples=10)
    assert t2.parts["sigma_prior"] == 0.5
    with pytest.raises(InvalidParameterError):
        pac_bayes_gaussian_bound(m, data, delta=0.05, prior_mean="bogus")


def test_default_code_length_from_prunebound_coding(setup):
    coding = pytest.importorskip("prunebound.coding")
    m, data = setup
    q = build_architecture(architecture(m))
    q.load_state_dict(m.state_dict())
    coding.quantize_module(q, bits=2)
    bits = coding.code_length_bits(q).total_bits
    occ = certify(q, data, method="occam")
    assert occ.parts["bits"] == bits
    assert verify(occ, q, data).ok
    zh = certify(q, data, method="zhou2019", sigmas=[0.1], taus=[0.2, 0.5], mc_samples=20)
    assert zh.parts["bits"] == bits and zh.parts["index_bits"] <= bits
    assert verify(zh, q, data).ok
