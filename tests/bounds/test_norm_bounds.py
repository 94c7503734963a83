"""Tests for prunebound.bounds.norm_bounds (Bartlett et al. 2017; Neyshabur et al. 2018 comparators)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import prunebound.bounds.norm_bounds as nb
from prunebound.certificate import _REGISTRY, verify
from prunebound.data import Dataset, teacher_task
from prunebound.errors import InvalidParameterError, UnsupportedLayerError
from prunebound.network import conv1d_small, mlp
from prunebound.train import fit

torch.set_num_threads(1)


def _set(model, mats):
    lin = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, w in zip(lin, mats):
            layer.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
    return model


def test_norms_match_numpy():
    net = mlp(6, [7, 5], 3, seed=1)
    s = nb.norm_summary(net)
    ws = [m.weight.detach().double().numpy() for m in net if isinstance(m, nn.Linear)]
    assert s.spectral == pytest.approx([np.linalg.svd(w, compute_uv=False)[0] for w in ws], rel=1e-10)
    assert s.frobenius == pytest.approx([np.linalg.norm(w) for w in ws], rel=1e-10)
    # ||A^T||_{2,1}: sum over the columns of A^T (= rows of A) of their Euclidean norms
    assert s.l21 == pytest.approx([sum(np.linalg.norm(r) for r in w) for w in ws], rel=1e-10)
    assert s.widths == (6, 7, 5, 3)
    assert nb.spectral_norms(net) == pytest.approx(list(s.spectral))


def test_spectral_complexity_by_hand():
    # A1 = diag(3, 1): ||.||_2 = 3, ||A1^T||_{2,1} = 4; A2 = [[0, 2]]: ||.||_2 = 2, ||A2^T||_{2,1} = 2.
    net = _set(mlp(2, [2], 1, bias=False), [[[3.0, 0.0], [0.0, 1.0]], [[0.0, 2.0]]])
    want = 3 * 2 * ((4 / 3) ** (2 / 3) + (2 / 2) ** (2 / 3)) ** 1.5
    assert nb.spectral_complexity_bartlett2017(net) == pytest.approx(want, rel=1e-12)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert nb.bartlett2017_quantity(net, x, gamma=0.5) == pytest.approx(2.5 * want**2 / 0.25, rel=1e-12)
    # NBS: B = 2, d = 2, h = 2, prod ||A||^2 = 36, stable ranks (10/9, 1)
    want_n = 4 * 4 * 2 * math.log(4) * 36 * (10 / 9 + 1) / 0.25
    assert nb.neyshabur2018_quantity(net, x, gamma=0.5) == pytest.approx(want_n, rel=1e-12)


def test_complexities_scale_like_the_papers():
    # Scaling one layer by t multiplies R_A and prod ||A||_2 by t: both figure quantities scale by t^2.
    net = mlp(5, [6], 3, bias=False, seed=0)
    x = torch.randn(10, 5)
    q1, n1 = nb.bartlett2017_quantity(net, x, gamma=1.0), nb.neyshabur2018_quantity(net, x, gamma=1.0)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    assert nb.bartlett2017_quantity(net, x, gamma=1.0) == pytest.approx(9 * q1, rel=1e-5)
    assert nb.neyshabur2018_quantity(net, x, gamma=1.0) == pytest.approx(9 * n1, rel=1e-5)


def _trained(bias: bool):
    task = teacher_task(5, 8, 2, 0.0, seed=0)
    tr = task.sample(400, 1)
    f = mlp(5, [8], 2, bias=bias, seed=0)
    fit(f, tr, epochs=10, lr=0.1, seed=0)
    return f, tr


def test_neyshabur_bound_terms_and_kl_formula():
    f, tr = _trained(bias=False)
    # gamma large enough that beta^d lies inside [γ/(2B), γ sqrt(m)/(2B)] (non-trivial branch)
    gamma = 10.0
    t = nb.neyshabur2018_bound(f, tr, gamma=gamma, delta=0.05)
    assert 0 <= t.empirical <= t.value <= 1
    p = t.parts
    assert p["trivial"] == 0.0
    s = nb.norm_summary(f)
    d, h = 2, max(s.widths)
    sigma = gamma / (42 * d * p["B"] * p["beta_tilde"] ** (d - 1) * math.sqrt(h * math.log(4 * d * h)))
    assert p["sigma"] == pytest.approx(sigma, rel=1e-12)
    assert p["kl"] == pytest.approx(p["beta"] ** 2 * sum(s.stable_ranks) / (2 * sigma**2), rel=1e-12)
    assert p["beta"] <= p["beta_tilde"] <= p["beta"] * (1 + 1 / d) * (1 + 1e-12)
    m = len(tr)
    want = 4 * math.sqrt((p["kl"] + math.log(6 * m * p["grid_points"] / 0.05)) / (m - 1))
    assert t.complexity == pytest.approx(want, rel=1e-12)
    assert nb.neyshabur2018_bound(f, tr, gamma=0.5, delta=0.05).parts["trivial"] == 1.0  # beta too large
    with pytest.raises(UnsupportedLayerError):
        nb.neyshabur2018_bound(_trained(bias=True)[0], tr, gamma=0.5, delta=0.05)


def test_bartlett_bound_and_certificates():
    f, tr = _trained(bias=False)
    t = nb.bartlett2017_bound(f, tr, gamma=0.5, delta=0.05)
    assert t.parts["R_rounded"] >= t.parts["R_A"]  # norms rounded up to powers of two
    assert t.parts["gamma_rounded"] <= 0.5
    assert 0 <= t.empirical <= t.value <= 1
    # larger delta -> smaller bound (before capping)
    t2 = nb.bartlett2017_bound(f, tr, gamma=0.5, delta=0.5)
    assert t2.complexity < t.complexity
    assert "spectral_bartlett2017" in _REGISTRY and "spectral_neyshabur2018" in _REGISTRY
    for cert in (nb.certify_bartlett2017(f, tr, delta=0.05, gamma=0.5),
                 nb.certify_neyshabur2018(f, tr, delta=0.05, gamma=0.5)):
        assert verify(cert, f, tr).ok


def test_unsupported_and_parameter_count():
    with pytest.raises(InvalidParameterError):  # convolutions need the input shape
        nb.norm_summary(conv1d_small())
    with pytest.raises(UnsupportedLayerError):  # the explicit NBS bound is for fully-connected nets only
        nb.neyshabur2018_bound(conv1d_small(), Dataset(torch.randn(5, 40), torch.randint(0, 2, (5,))),
                               gamma=1.0, delta=0.05)
    net = mlp(4, [3], 2, seed=0)
    assert nb.parameter_count(net) == 4 * 3 + 3 + 3 * 2 + 2
    data = Dataset(torch.randn(5, 4), torch.randint(0, 2, (5,)))
    assert nb.bartlett2017_quantity(net, data, gamma=1.0) > 0


def _dense(conv: nn.Module, in_shape) -> np.ndarray:
    """Explicit matrix of a convolution (bias off) from torch's own layer applied to the identity basis."""
    n = math.prod(in_shape)
    c = nn.Conv1d if isinstance(conv, nn.Conv1d) else nn.Conv2d
    ref = c(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
            dilation=conv.dilation, bias=False).double()
    with torch.no_grad():
        ref.weight.copy_(conv.weight.double())
        return ref(torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)).reshape(n, -1).T.numpy()


@pytest.mark.parametrize("conv, in_shape", [
    (nn.Conv1d(3, 4, 5, stride=2, padding=3, dilation=2), (3, 13)),
    (nn.Conv1d(2, 3, 3), (2, 9)),  # no padding: ||A||_F = sqrt(#positions) ||W||_F
    (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2)), (2, 7, 5)),
])
def test_conv_operator_norms_match_dense_matrix(conv, in_shape):
    torch.manual_seed(0)
    seq = nn.Sequential(conv, nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        out = seq(torch.zeros(1, *in_shape))
    seq.append(nn.Linear(out.shape[1], 2))
    _, ops, _ = nb.network_operators(seq, input_shape=in_shape)
    op, A = ops[0], _dense(conv, in_shape)
    assert op.n_in == A.shape[1] and op.n_out == A.shape[0]
    assert op.frobenius() == pytest.approx(np.linalg.norm(A), rel=1e-12)
    assert op.row_norms_sq().numpy() == pytest.approx((A**2).sum(1), rel=1e-12, abs=1e-15)
    assert op.l21() == pytest.approx(np.linalg.norm(A, axis=1).sum(), rel=1e-12)
    assert op.spectral() == pytest.approx(np.linalg.svd(A, compute_uv=False)[0], rel=1e-8)
    v = torch.randn(4, *op.out_shape, dtype=torch.float64)
    np.testing.assert_allclose(op.apply_t(v).reshape(4, -1).numpy(), v.reshape(4, -1).numpy() @ A, atol=1e-12)
    w = conv.weight.detach().double()
    if conv.padding in (0, (0,), (0, 0)):
        positions = op.n_out // conv.out_channels
        assert op.frobenius() == pytest.approx(math.sqrt(positions) * float(w.norm()), rel=1e-12)
    else:  # padding drops taps: strictly below sqrt(#positions) ||W||_F
        assert op.frobenius() < math.sqrt(op.n_out // conv.out_channels) * float(w.norm()) * (1 - 1e-6)


def test_conv_quantities_equal_those_of_the_dense_network():
    # A pooling-free conv net and the MLP of its dense matrices have the same operators: same norms, same
    # figure quantities.  Overlapping max-pooling multiplies the spectral product by sqrt(#windows per entry).
    conv = conv1d_small(length=12, n_classes=3, channels=4, seed=2)
    mats, shape = [], (1, 12)
    for m in conv:
        if isinstance(m, nn.Conv1d):
            mats.append(_dense(m, shape))
            shape = (m.out_channels, mats[-1].shape[0] // m.out_channels)
        elif isinstance(m, nn.Linear):
            mats.append(m.weight.detach().double().numpy())
    fc = _set(mlp(12, [w.shape[0] for w in mats[:-1]], 3, bias=False), mats)
    x = torch.randn(20, 12)
    sc, sf = nb.norm_summary(conv, input_shape=(12,)), nb.norm_summary(fc)
    assert sc.widths == sf.widths
    assert sc.spectral == pytest.approx(sf.spectral, rel=1e-5)
    assert sc.frobenius == pytest.approx(sf.frobenius, rel=1e-5)
    assert sc.l21 == pytest.approx(sf.l21, rel=1e-5)
    assert nb.bartlett2017_quantity(conv, x, gamma=0.3) == pytest.approx(nb.bartlett2017_quantity(fc, x, gamma=0.3),
                                                                         rel=1e-4)
    assert nb.neyshabur2018_quantity(conv, x, gamma=0.3) == pytest.approx(
        nb.neyshabur2018_quantity(fc, x, gamma=0.3), rel=1e-4)
    pooled = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.MaxPool1d(3, stride=1), nn.Flatten(), nn.Linear(12, 2))
    s = nb.norm_summary(pooled, input_shape=(1, 10))
    assert s.lipschitz == pytest.approx((math.sqrt(3),))
    r_a = math.prod(s.spectral) * math.sqrt(3) * sum((b / a) ** (2 / 3) for a, b in zip(s.spectral, s.l21)) ** 1.5
    assert nb.spectral_complexity_bartlett2017(pooled, input_shape=(1, 10)) == pytest.approx(r_a, rel=1e-12)
    data = Dataset(x.reshape(20, 1, 12)[:, :, :10], torch.randint(0, 2, (20,)))
    cert = nb.certify_bartlett2017(pooled, data, delta=0.05, gamma=0.5)
    assert 0 <= cert.empirical <= cert.value <= 1 and verify(cert, pooled, data).ok
