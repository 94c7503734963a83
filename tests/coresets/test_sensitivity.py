import pytest
import torch
import torch.nn.functional as F

from prunebound.coresets.sensitivity import (
    abs_edge_sensitivity,
    channel_sensitivity,
    edge_sensitivity,
    edge_sensitivity_naive,
    neuron_sensitivity_data_independent,
)
from prunebound.errors import DataError


def test_vectorised_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(37, 23, generator=g, dtype=torch.float64)
    a = torch.rand(41, 23, generator=g, dtype=torch.float64)
    a[:, 3] = 0.0  # dead input
    torch.testing.assert_close(edge_sensitivity(w, a), edge_sensitivity_naive(w, a), rtol=1e-12, atol=1e-14)


def test_sign_groups_sum_to_at_least_one_and_single_point_sums_to_one():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 9, generator=g, dtype=torch.float64)
    a = torch.rand(1, 9, generator=g, dtype=torch.float64)
    s = edge_sensitivity(w, a)
    # with one point every sign group's sensitivities are the normalised contributions: they sum to exactly 1
    torch.testing.assert_close((s * (w > 0)).sum(1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close((s * (w < 0)).sum(1), torch.ones(5, dtype=torch.float64))


def test_hand_built_family_has_analytic_total_sensitivity():
    # points x^k = (1 - alpha) 1 + alpha n e_k, unit weights: S = 1 + alpha (n - 1) exactly
    n = 8
    for alpha in (0.0, 0.25, 1.0):
        x = (1 - alpha) * torch.ones(n, n, dtype=torch.float64)
        x = x + alpha * n * torch.eye(n, dtype=torch.float64)
        s = edge_sensitivity(torch.ones(1, n, dtype=torch.float64), x)
        assert float(s.sum()) == pytest.approx(1 + alpha * (n - 1), rel=1e-12)


def test_corenet_splits_signed_inputs_and_sipp_abs_variant():
    w = torch.tensor([[2.0, -1.0, 3.0]], dtype=torch.float64)
    a = torch.tensor([[1.0, -2.0, -1.0], [-1.0, 1.0, 2.0]], dtype=torch.float64)
    # hand-computed: a+ points (1,0,0), (0,1,2); a- points (0,2,1), (1,0,0)
    # W+ = {0: 2, 2: 3}: ratios (1,0,0)->(1, 0); (0,1,2)->(0, 1); (0,2,1)->(0, 1); (1,0,0)->(1, 0)
    # W- = {1: 1}: the single edge always has ratio 1 where its input is non-zero
    torch.testing.assert_close(edge_sensitivity(w, a), torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64))
    w2, a2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(edge_sensitivity(w2, a2), edge_sensitivity_naive(w2, a2))
    # the split equals CoreNet's definition on the 2|S| non-negative points
    split = torch.cat([a2.clamp_min(0), (-a2).clamp_min(0)])
    torch.testing.assert_close(edge_sensitivity(w2, a2), edge_sensitivity(w2, split))
    w, a = torch.randn(3, 4), torch.randn(5, 4)
    s = abs_edge_sensitivity(w, a)
    ref = (w.abs()[None] * a.abs()[:, None]) / (a.abs() @ w.abs().T)[..., None]
    torch.testing.assert_close(s, ref.amax(0))


def test_errors_on_empty_and_nan():
    with pytest.raises(DataError):
        edge_sensitivity(torch.randn(3, 4), torch.rand(0, 4))
    with pytest.raises(DataError):
        edge_sensitivity(torch.tensor([[float("nan"), 1.0]]), torch.rand(2, 2))
    with pytest.raises(DataError):
        edge_sensitivity(torch.randn(3, 4), torch.rand(2, 5))


def test_channel_sensitivity_linear_after_flatten_brute_force():
    g = torch.Generator().manual_seed(2)
    C, r, out = 4, 3, 5
    w = torch.randn(out, C * r, generator=g, dtype=torch.float64)
    a = torch.randn(7, C * r, generator=g, dtype=torch.float64)
    s = channel_sensitivity(w, a, "linear", C)
    best = torch.zeros(C, dtype=torch.float64)
    for x in a:
        for i in range(out):
            c = torch.stack([(w[i, j * r:(j + 1) * r].abs() * x[j * r:(j + 1) * r].abs()).sum()
                             for j in range(C)])
            best = torch.maximum(best, c / c.sum())
    torch.testing.assert_close(s, best)


def test_channel_sensitivity_conv1d_matches_conv_of_absolute_values():
    g = torch.Generator().manual_seed(3)
    C, out, k = 3, 4, 3
    w = torch.randn(out, C, k, generator=g, dtype=torch.float64)
    a = torch.randn(6, C, 10, generator=g, dtype=torch.float64)
    conv = {"stride": (2,), "padding": (1,), "dilation": (1,)}
    s = channel_sensitivity(w, a, "conv1d", C, conv)
    # independent route: per-channel contribution = conv1d of |a_j| with |w_.j.|
    contrib = torch.stack([F.conv1d(a[:, j:j + 1].abs(), w[:, j:j + 1].abs(), stride=2, padding=1)
                           for j in range(C)], 2)  # (S, out, C, P)
    ratio = contrib / contrib.sum(2, keepdim=True)
    torch.testing.assert_close(s, ratio.amax(dim=(0, 1, 3)))


def test_data_independent_neuron_sensitivity_brute_force():
    g = torch.Generator().manual_seed(4)
    w, b, u = torch.randn(6, 3, generator=g), torch.randn(6, generator=g), torch.randn(2, 6, generator=g)
    s = neuron_sensitivity_data_independent(w, b, u)
    norms = torch.cat([w, b[:, None]], 1).double().norm(dim=1)
    ref = torch.zeros(6, dtype=torch.float64)
    for i in range(2):
        v = u[i].double().abs() * norms
        ref = torch.maximum(ref, v / v.sum())
    torch.testing.assert_close(s, ref)
    assert float(s.sum()) >= 1.0 - 1e-12  # total sensitivity is at least 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threshold_max_product_equals_brute_force_bit_for_bit(dtype):
    """The candidate-list maximum (with its per-entry fallback and its brute-force fallback) is exactly the
    brute-force maximum of the rounded products, on data where the candidates settle almost everything
    (signed-split Gaussian), where a planted point wins only by its product (fallback entries), and on flat
    data."""
    import prunebound.coresets.sensitivity as sens

    g = torch.Generator().manual_seed(5)
    a = torch.randn(120, 70, generator=g, dtype=dtype)
    cases = [torch.cat([a.clamp_min(0), (-a).clamp_min(0)])]
    b = torch.rand(200, 60, generator=g, dtype=dtype) * 0.5
    b[7] = 0.45  # a point that is nowhere in any column's top list nor any row's, but wins its products
    cases.append(b)
    cases.append(torch.ones(150, 30, dtype=dtype))
    for x in cases:
        w = torch.rand(40, x.shape[1], generator=g, dtype=dtype)
        d = x @ w.T
        inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
        if x is b:
            inv[7] = inv.amax(0) * 0.9  # mediocre point 7 by inv too, yet ...
            inv[: sens._TOP + 1] = inv.amax(0) * 0.95  # the top inv points have small a
            x[: sens._TOP + 1] = 0.01
        fast, ref = sens._max_prod(inv, x), sens._max_prod_dense(inv, x)
        assert torch.equal(fast, ref)


def test_threshold_max_product_uses_the_fallback_path(monkeypatch):
    """A planted entry whose maximum is at a point outside both candidate lists goes through the per-entry
    fallback (the brute force is disabled here) and comes out exact."""
    import prunebound.coresets.sensitivity as sens

    K = sens._TOP
    S, n, out = 100, 20, 10
    a = torch.full((S, n), 0.5, dtype=torch.float64)
    inv = torch.full((S, out), 0.5, dtype=torch.float64)
    a[:K] = 1.0  # every column's top list: points 0..K-1
    inv[K : 2 * K] = 1.0  # every row's top list: points K..2K-1
    a[50, 3], inv[50, 4] = 0.99, 0.99  # outside both lists, the maximum of entry (4, 3): 0.9801 > 0.5
    ref = sens._max_prod_dense(inv, a)

    def no_brute_force(*_):
        raise AssertionError("brute force used")

    monkeypatch.setattr(sens, "_max_prod_dense", no_brute_force)
    fast = sens._max_prod(inv, a)
    assert torch.equal(fast, ref) and float(fast[4, 3]) == 0.99 * 0.99 and float(fast[0, 0]) == 0.5
