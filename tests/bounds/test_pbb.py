"""PAC-Bayes with backprop (Pérez-Ortiz et al. 2021): objectives, KL, the MC + kl certificate, verify."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize_scalar

from prunebound.bounds.pac_bayes import kl_gaussians
from prunebound.bounds.pbb import (
    GaussianPosterior,
    _lambda_update,
    bounded_cross_entropy,
    pbb_bound,
    pbb_objective,
    pbb_train,
)
from prunebound.certificate import Certificate, certifiers, verify
from prunebound.data import teacher_task
from prunebound.errors import InvalidParameterError
from prunebound.network import mlp, to_vector


def _kl_bern(q, p):
    return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))


@pytest.mark.parametrize("emp,kl,n", [(0.1, 50.0, 1000), (0.02, 5.0, 20000), (0.3, 300.0, 500)])
def test_objectives_match_their_formulas(emp, kl, n):
    delta = 0.05
    B = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    e, k = torch.tensor(emp, dtype=torch.float64), torch.tensor(kl, dtype=torch.float64)
    assert float(pbb_objective("fclassic", e, k, n, delta=delta)) == pytest.approx(emp + math.sqrt(B / 2))
    assert float(pbb_objective("fquad", e, k, n, delta=delta)) == pytest.approx(
        (math.sqrt(emp + B / 2) + math.sqrt(B / 2)) ** 2)
    lam = 0.37
    assert float(pbb_objective("flamb", e, k, n, delta=delta, lam=lam)) == pytest.approx(
        emp / (1 - lam / 2) + B / (lam * (1 - lam / 2)))
    # kl inverse: independent root finding
    p = brentq(lambda p: _kl_bern(emp, p) - B, emp + 1e-12, 1 - 1e-12)
    assert float(pbb_objective("kl", e, k, n, delta=delta)) == pytest.approx(p, rel=1e-7)
    # fquad (refined Pinsker) and fclassic (Pinsker) relax the kl inverse: both lie above it
    assert float(pbb_objective("fquad", e, k, n, delta=delta)) >= p - 1e-12
    assert float(pbb_objective("fclassic", e, k, n, delta=delta)) >= p - 1e-12
    with pytest.raises(InvalidParameterError):
        pbb_objective("fbbb", e, k, n, delta=delta)


@pytest.mark.parametrize("emp,B", [(0.1, 0.01), (0.02, 0.003), (0.4, 0.2)])
def test_lambda_update_minimises_flamb(emp, B):
    lam = _lambda_update(emp, B)
    res = minimize_scalar(lambda t: emp / (1 - t / 2) + B / (t * (1 - t / 2)), bounds=(1e-6, 1 - 1e-9),
                          method="bounded", options={"xatol": 1e-10})
    assert lam == pytest.approx(res.x, rel=1e-4)


def test_kl_gradients_flow_through_the_kl_objective():
    e = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    k = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    pbb_objective("kl", e, k, 1000, delta=0.05).backward()
    assert e.grad > 0 and k.grad > 0


def test_posterior_kl_matches_closed_form_and_bounded_ce_is_in_unit_interval():
    base = mlp(3, [4], 2, seed=0)
    mu0 = to_vector(base)
    post = GaussianPosterior(base, mu0, 0.05)
    with torch.no_grad():
        post.mu.add_(0.01 * torch.randn_like(post.mu))
        post.rho.add_(0.3 * torch.randn_like(post.rho))
    ref = kl_gaussians(post.mu.double(), post.sigma().double(), mu0.double(), 0.05)
    assert float(post.kl().detach()) == pytest.approx(ref, rel=1e-4)
    assert float(GaussianPosterior(base, mu0, 0.05).kl().detach()) == pytest.approx(0.0, abs=1e-3)
    z = torch.tensor([[100.0, -100.0], [0.0, 0.0]])
    v = bounded_cross_entropy(z, torch.tensor([1, 0]), pmin=1e-4)
    assert float(v) == pytest.approx((1.0 + math.log(2) / math.log(1e4)) / 2, rel=1e-6)
    # the mean network of the posterior computes the base network at mu
    x = torch.randn(5, 3)
    assert torch.allclose(post(x, sample=False), post.mean_module()(x), atol=1e-6)


@pytest.fixture(scope="module")
def trained():
    t = teacher_task(d_in=5, width=16, seed=0)
    data = t.sample(2000, 1)
    r = pbb_train(mlp(5, [16], 2, seed=0), data, objective="fquad", prior_epochs=5, epochs=3, mc_samples=30,
                  prior_sigma=0.05)
    return data, r


def test_certificate_is_the_mc_plus_kl_route_and_verifies(trained):
    from prunebound.bounds.pac_bayes import kl_bound, sample_convergence_bound

    data, r = trained
    c = r.certificate
    assert c.kind == "pbb" and "pbb" in certifiers()
    p = c.parts
    assert p["delta_mc"] + p["delta_pb"] == pytest.approx(c.delta)
    up = sample_convergence_bound(p["mc_estimate"], 30, delta=p["delta_mc"]).value
    assert p["mc_upper"] == pytest.approx(up) and up > p["mc_estimate"]
    assert c.value == pytest.approx(kl_bound(up, p["kl"], int(p["n_bound"]), delta=p["delta_pb"]).value)
    assert p["n_bound"] == 1000
    assert verify(c, r.model, data).ok
    bad = dict(c.params)
    sig = bytearray(__import__("base64").b64decode(bad["sigma"]))
    sig[0] ^= 1
    bad["sigma"] = __import__("base64").b64encode(bytes(sig)).decode()
    rep = verify(Certificate.from_dict({**c.to_dict(), "params": bad}), r.model, data)
    assert not rep.ok and any("sigma" in d for d in rep.differences)


def test_dropping_the_mc_correction_is_labelled_and_lower(trained):
    data, r = trained
    c = r.certificate
    prior_mean = None
    from prunebound.bounds.pbb import _decode_sigma, _prior

    init, bound = _prior(r.model, data, c.params)
    prior_mean = to_vector(init).float()
    sigma = _decode_sigma(c.params["sigma"], c.params["sigma_sha256"], prior_mean.numel())
    kw = dict(delta=0.05, mc_samples=30, mc_seed=c.params["mc_seed"])
    good = pbb_bound(r.model, sigma, prior_mean, 0.05, bound, **kw)
    broken = pbb_bound(r.model, sigma, prior_mean, 0.05, bound, mc_correction=False, **kw)
    assert good.value == pytest.approx(c.value)
    assert broken.value < good.value and broken.parts["mc_upper"] == broken.parts["mc_estimate"]


def test_all_objectives_train_and_bad_arguments_are_refused():
    t = teacher_task(d_in=5, width=16, seed=0)
    data = t.sample(600, 1)
    vals = {}
    for obj in ("fquad", "flamb", "fclassic", "kl"):
        r = pbb_train(mlp(5, [8], 2, seed=0), data, objective=obj, prior_epochs=2, epochs=2, mc_samples=5,
                      prior_sigma=0.05)
        vals[obj] = r.value
        assert 0 < r.value <= 1 and np.isfinite(r.losses).all()
    with pytest.raises(InvalidParameterError, match="objective"):
        pbb_train(mlp(5, [8], 2, seed=0), data, objective="bbb")
    with pytest.raises(InvalidParameterError, match="train_on"):
        pbb_train(mlp(5, [8], 2, seed=0), data, train_on="prior")
