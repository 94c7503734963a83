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
