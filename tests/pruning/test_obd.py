"""OBD: exact Hessian diagonal == autograd full Hessian diagonal; GN == J^T A J diagonal; Hutchinson
converges."""

import pytest
import torch
import torch.nn.functional as F

from prunebound.network import Network, masks_of, mlp
from prunebound.pruning import hessian_diagonal, obd, obd_saliency
from prunebound.pruning.obd import _Flat


@pytest.fixture(scope="module")
def tiny(task):
    return mlp(10, [6, 5], 3, seed=3).double(), task.sample(60, 5)


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def _full_hessian(m, d):
    fl = _Flat(m)
    return torch.autograd.functional.hessian(
        lambda th: F.cross_entropy(fl.logits(th, d.x.double()), d.y), fl.theta
    )


def test_exact_diagonal_matches_full_hessian(tiny):
    m, d = tiny
    h = _flat(hessian_diagonal(m, d, hessian="exact", chunk=17))
    full = _full_hessian(m, d)
    assert torch.allclose(h, full.diagonal(), rtol=1e-10, atol=1e-14)
    assert full.diagonal().abs().max() > 1e-4  # non-trivial
    auto = _flat(hessian_diagonal(m, d))  # gauss_newton: equal on piecewise-linear nets
    assert torch.allclose(auto, full.diagonal(), rtol=1e-8, atol=1e-14)


def test_gauss_newton_matches_explicit_jacobian(tiny):
    m, d = tiny
    gn = _flat(hessian_diagonal(m, d, hessian="gauss_newton", chunk=8))
    fl = _Flat(m)
    x = d.x.double()
    jac = torch.autograd.functional.jacobian(lambda th: fl.logits(th, x), fl.theta)  # (N, C, P)
    p = torch.softmax(fl.logits(fl.theta, x), 1)
    a = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    g = torch.einsum("ncp,ncd,ndq->pq", jac, a, jac) / len(x)
    assert torch.allclose(gn, g.diagonal(), rtol=1e-10, atol=1e-14)
    # for a ReLU net the logits are piecewise linear in each single weight, so diag(H) == diag(GN)
    assert torch.allclose(gn, _full_hessian(m, d).diagonal(), rtol=1e-8, atol=1e-14)


def test_hutchinson_converges(tiny):
    m, d = tiny
    exact = _flat(hessian_diagonal(m, d, hessian="exact"))

    def err(n):
        est = _flat(hessian_diagonal(m, d, hessian="hutchinson", n_samples=n, seed=1))
        return float((est - exact).norm() / exact.norm())

    e_small, e_big = err(50), err(3200)
    assert e_big < 0.35 * e_small  # ~ 1/sqrt(n): expected ratio 1/8
    assert e_big < 0.5


def test_saliency_formula_and_pruned_set(trained_mlp, train_data):
    sal = obd_saliency(trained_mlp, train_data, hessian="gauss_newton")
    h = hessian_diagonal(trained_mlp, train_data, hessian="gauss_newton")
    net = Network.from_module(trained_mlp)
    for s, hi, ly in zip(sal, h, net.layers):
        assert torch.allclose(s, 0.5 * hi * ly.weight.detach().double() ** 2)
    rep = obd(trained_mlp, train_data, sparsity=0.6, hessian="gauss_newton", epochs=0)
    mk = masks_of(rep.module)
    s_all = torch.cat([s.reshape(-1) for s in sal])
    m_all = torch.cat([mk[ly.path].reshape(-1) for ly in net.layers])
    assert int((m_all == 0).sum()) == round(0.6 * m_all.numel())
    assert s_all[m_all == 0].max() <= s_all[m_all == 1].min()
    assert rep.info["hessian_used"] == "gauss_newton"
    assert rep.retrained is None


def test_obd_beats_random_without_retraining(trained_mlp, train_data):
    from prunebound.pruning import random_pruning

    with torch.no_grad():
        base = F.cross_entropy(trained_mlp(train_data.x), train_data.y)
    o = obd(trained_mlp, train_data, sparsity=0.5, hessian="exact", epochs=0)
    r = random_pruning(trained_mlp, sparsity=0.5, scope="global")
    with torch.no_grad():
        lo = F.cross_entropy(o.module(train_data.x), train_data.y)
        lr_ = F.cross_entropy(r.module(train_data.x), train_data.y)
    assert base <= lo < lr_


def test_bad_hessian_name(tiny):
    from prunebound.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="hessian"):
        hessian_diagonal(tiny[0], tiny[1], hessian="bfgs")
