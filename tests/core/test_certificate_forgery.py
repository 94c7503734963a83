"""A certificate cannot lie: for every registered kind, forging any derivable field makes ``verify`` fail.

Each kind is certified honestly on a tiny teacher task (verify: OK); then every derivable field (value,
empirical, complexity, n, both hashes, every part) is forged in turn, and each forgery must be reported with
a difference naming that field.  Declared-code kinds are never OK.  The Occam loophole of issue 14 (a code
length taken from the certificate) is closed: ``bits`` in an "occam" certificate is refused.
"""

from __future__ import annotations

import pytest
import torch

from prunebound import data as D
from prunebound import network as N
from prunebound.bounds import certify
from prunebound.bounds.grid import grid_certificate
from prunebound.bounds.pbb import pbb_train
from prunebound.bounds.permutation import occam_permutation_certificate
from prunebound.bounds.subspace import certify_subspace, subspace_compress
from prunebound.certificate import Certificate, certifiers, is_verifiable, verify
from prunebound.coding import code_length_bits, quantize_module
from prunebound.train import fit

VERIFIABLE_KINDS = ["occam", "zhou2019", "pac_bayes_gaussian", "coreset", "arora2018", "spectral_bartlett2017",
                    "spectral_neyshabur2018", "subspace", "grid_best", "pbb", "occam_permutation"]
DECLARED_KINDS = ["occam_declared_bits", "zhou2019_declared_code"]


@pytest.fixture(scope="module")
def honest():
    """One honest certificate per registered kind, with the model and data it was computed on."""
    task = D.teacher_task(d_in=4, width=8, seed=0)
    data = task.sample(60, 1)
    m = N.mlp(4, [6], 2, seed=0)
    fit(m, data, epochs=3, lr=0.1, seed=0)
    q = N.mlp(4, [6], 2, seed=0)
    q.load_state_dict(m.state_dict())
    quantize_module(q, bits=2)
    h = N.mlp(4, [6], 2, seed=0)
    h.load_state_dict(m.state_dict())
    with torch.no_grad():
        for p in h.parameters():
            p.copy_(p.half().float())
    nb = N.mlp(4, [6], 2, seed=0, bias=False)
    cases = {
        "occam": (q, {}),
        "zhou2019": (q, {"sigmas": [0.1], "taus": [0.3], "mc_samples": 5}),
        "pac_bayes_gaussian": (m, {"sigmas": [0.01], "mc_samples": 5}),
        "coreset": (h, {}),
        "arora2018": (m, {"bits_grid": [4]}),
        "spectral_bartlett2017": (m, {"gamma": 0.1}),
        "spectral_neyshabur2018": (nb, {"gamma": 0.1}),
        "occam_declared_bits": (q, {"bits": 0}),
        "zhou2019_declared_code": (q, {"sigmas": [0.1], "taus": [0.3], "mc_samples": 5, "index_code": "equal"}),
    }
    out = {}
    for kind, (mod, params) in cases.items():
        method = {"occam_declared_bits": "occam", "zhou2019_declared_code": "zhou2019"}.get(kind, kind)
        out[kind] = (certify(mod, data, method=method, seed=0, **params), mod, data)
    res = subspace_compress(N.mlp(4, [6], 2, seed=0), data, grid=((4, 2),), epochs=1, qat_epochs=1, seed=0)
    out["subspace"] = (certify_subspace(res.model, data, delta=0.05, seed=0, **res.params), res.model, data)
    out["grid_best"] = (grid_certificate(q, data, delta=0.05, seed=0, method="occam", grid=[2, 4], point=2), q, data)
    r = pbb_train(N.mlp(4, [6], 2, seed=0), data, objective="fquad", prior_epochs=1, epochs=1, mc_samples=5)
    out["pbb"] = (r.certificate, r.model, data)
    qh = N.mlp(4, [6], 2, seed=0)
    qh.load_state_dict(m.state_dict())
    quantize_module(qh, bits=2, half_bias=True)
    out["occam_permutation"] = (occam_permutation_certificate(qh, data, delta=0.05), qh, data)
    return out


def test_every_registered_kind_is_covered():
    """A new certifier must be added to the forgery test (kinds named test_* are test doubles)."""
    registered = {k for k in certifiers() if not k.startswith("test_")}
    assert registered == set(VERIFIABLE_KINDS) | set(DECLARED_KINDS)
    assert all(is_verifiable(k) for k in VERIFIABLE_KINDS)
    assert not any(is_verifiable(k) for k in DECLARED_KINDS)


@pytest.mark.parametrize("kind", VERIFIABLE_KINDS)
def test_honest_certificate_verifies(honest, kind):
    cert, m, d = honest[kind]
    assert cert.kind == kind and cert.verifiable
    rep = verify(Certificate.from_dict(cert.to_dict()), m, d)
    assert rep.ok and rep.checkable and rep.status == "ok", rep.differences


def _forge_number(v: float) -> float:
    return v * 0.5 - 1.0 if v != -2.0 else 1.0


def _forgeries(cert: Certificate):
    """(field name, forged dict) for every derivable field of ``cert``."""
    d = cert.to_dict()
    yield "value", {**d, "value": d["value"] * 0.5 if d["value"] > 0 else 0.25}
    yield "empirical", {**d, "empirical": d["empirical"] + 0.25 if d["empirical"] <= 0.5 else d["empirical"] - 0.25}
    yield "complexity", {**d, "complexity": d["complexity"] * 0.5 - 0.01}
    yield "n", {**d, "n": d["n"] + 1}
    flip = {"0": "1"}
    for h in ("model_sha256", "data_sha256"):
        yield h.replace("_", " "), {**d, h: flip.get(d[h][0], "0") + d[h][1:]}
    for k, v in d["parts"].items():
        forged = _forge_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "0"
        yield f"part {k!r}", {**d, "parts": {**d["parts"], k: forged}}
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # the same number as a string used to be skipped by verify
            yield f"part {k!r}", {**d, "parts": {**d["parts"], k: str(v)}}
        yield f"part {k!r}", {**d, "parts": {kk: vv for kk, vv in d["parts"].items() if kk != k}}
    yield "part 'extra'", {**d, "parts": {**d["parts"], "extra": 0.0}}


@pytest.mark.parametrize("kind", VERIFIABLE_KINDS)
def test_every_forged_derivable_field_fails(honest, kind):
    cert, m, d = honest[kind]
    n_forged = 0
    for name, forged in _forgeries(cert):
        rep = verify(Certificate.from_dict(forged), m, d)
        assert not rep.ok, f"{kind}: forging {name} was not detected"
        assert any(name in s for s in rep.differences), (kind, name, rep.differences)
        n_forged += 1
    assert n_forged >= 6 + len(cert.parts)


@pytest.mark.parametrize("kind", VERIFIABLE_KINDS)
def test_forged_delta_or_seed_changes_the_recomputation(honest, kind):
    cert, m, d = honest[kind]
    forged = Certificate.from_dict({**cert.to_dict(), "delta": cert.delta / 2})
    assert not verify(forged, m, d).ok
    rep = verify(Certificate.from_dict({**cert.to_dict(), "params": {**cert.params, "no_such": 1}}), m, d)
    assert not rep.ok and any("no_such" in s for s in rep.differences)


@pytest.mark.parametrize("kind", DECLARED_KINDS)
def test_declared_kinds_are_never_ok(honest, kind):
    cert, m, d = honest[kind]
    assert not cert.verifiable and "UNVERIFIABLE" in cert.summary() and "UNVERIFIABLE" in cert.note
    rep = verify(cert, m, d)
    assert not rep.ok and not rep.checkable and rep.status == "not checkable"
    assert rep.differences[0].startswith("not checkable")
    # claiming verifiability in the file does not help
    rep = verify(Certificate.from_dict({**cert.to_dict(), "verifiable": True}), m, d)
    assert not rep.ok and not rep.checkable


def test_issue14_occam_bits_loophole_is_closed(honest):
    """bits=0 gave a 'verified' Occam bound below the true risk; editing parts.bits passed; so did "0"."""
    cert, q, d = honest["occam"]
    assert cert.parts["bits"] == code_length_bits(q).total_bits
    declared, _, _ = honest["occam_declared_bits"]
    assert declared.value < cert.value  # what the loophole bought
    for forged_params in ({**cert.params, "bits": 0.0}, {**cert.params, "bits": "0"}):
        rep = verify(Certificate.from_dict({**cert.to_dict(), "params": forged_params}), q, d)
        assert not rep.ok and any("bits" in s for s in rep.differences)
    # a declared certificate relabelled as "occam" does not verify either
    relabelled = Certificate.from_dict({**declared.to_dict(), "kind": "occam", "verifiable": True})
    rep = verify(relabelled, q, d)
    assert not rep.ok and rep.checkable
    dropped = Certificate.from_dict({**relabelled.to_dict(), "params": {"form": "kl"}})
    rep = verify(dropped, q, d)
    assert not rep.ok and any(s.startswith("value differs") for s in rep.differences)
    assert any("part 'bits' differs" in s for s in rep.differences)


def test_zhou_declared_index_code_is_not_a_zhou2019_certificate(honest):
    cert, q, d = honest["zhou2019"]
    rep = verify(Certificate.from_dict({**cert.to_dict(), "params": {**cert.params, "index_code": "equal"}}), q, d)
    assert not rep.ok and any("index_code" in s for s in rep.differences)
    rep = verify(Certificate.from_dict({**cert.to_dict(), "params": {**cert.params, "bits": 10.0}}), q, d)
    assert not rep.ok and any("bits" in s for s in rep.differences)


def test_a_grid_of_declared_codes_is_not_checkable(honest):
    """grid_best wrapping a declared-code kind inherits its unverifiability (no laundering through a grid)."""
    _, q, data = honest["occam"]
    c = grid_certificate(q, data, delta=0.05, method="occam_declared_bits", grid=[0, 1], point=0,
                         inner={"bits": 0})
    assert not c.verifiable
    for claimed in (c, Certificate.from_dict({**c.to_dict(), "verifiable": True})):
        rep = verify(claimed, q, data)
        assert not rep.ok and not rep.checkable


def test_a_grid_that_does_not_pay_is_refused(honest):
    _, q, data = honest["occam"]
    c = grid_certificate(q, data, delta=0.05, method="occam", grid=[0, 1], point=0, pay_for_grid=False)
    rep = verify(c, q, data)
    assert not rep.ok and any("pay_for_grid" in d for d in rep.differences)
