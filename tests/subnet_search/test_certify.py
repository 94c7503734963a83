import pytest
import torch

from prunebound.errors import DataError, UnsupportedLayerError
from prunebound.network import Network, mlp
from prunebound.subnet_search.certify import (
    approximation_error,
    pair_error_matrices,
    propagate_bound,
    sample_ball,
)
from prunebound.subnet_search.construct import construct_ticket


def test_pair_identity_is_exact():
    """A pair g(x) = V s(U x) with one input per hidden unit equals P x+ + N x- (checked on random x)."""
    g = torch.Generator().manual_seed(0)
    d_in, d_out, n = 3, 4, 5
    h = 2 * n * d_in
    u = torch.zeros(h, d_in, dtype=torch.float64)
    blk = torch.arange(h) // (2 * n)
    u[torch.arange(h), blk] = torch.randn(h, generator=g, dtype=torch.float64)
    v = torch.randn(d_out, h, generator=g, dtype=torch.float64)
    x = torch.randn(200, d_in, generator=g, dtype=torch.float64)
    out = (x @ u.T).clamp(min=0) @ v.T
    p, nm = v @ u.clamp(min=0), v @ (-u).clamp(min=0)
    ref = x.clamp(min=0) @ p.T + (-x).clamp(min=0) @ nm.T
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # with W = P the positive part of D vanishes
    d = pair_error_matrices(u, v, p)
    assert float(d[:, :d_in].abs().max()) <= 1e-14  # zero up to the summation order of V U^+


def test_pair_rejects_dense_first_layer():
    with pytest.raises(UnsupportedLayerError):
        pair_error_matrices(torch.ones(4, 2), torch.ones(1, 4), torch.ones(1, 2))


def test_propagate_bound_by_hand():
    # e1 = 0*1 + 0.1*(2+0) = 0.2; e2 = 3*0.2 + 0.5*(2*1 + 0.2) = 1.7
    assert propagate_bound([1.0, 3.0], [0.1, 0.5], 2.0) == pytest.approx([0.2, 1.7])


def test_sample_ball_radius():
    x = sample_ball(10_000, 5, 2.5, seed=0)
    r = x.norm(dim=1)
    assert float(r.max()) <= 2.5 * (1 + 1e-12)
    assert float((r > 2.5 * (1 - 1e-12)).float().mean()) >= 0.5  # half on the sphere
    assert float(r.min()) < 2.0


def test_certificate_catches_a_broken_ticket():
    """Perturbing the ticket's kept weights raises the empirical error; the certificate still dominates it,
    and a ticket for another target is flagged as far from eps."""
    target = mlp(3, [6], 2, bias=False, seed=1)
    tk = construct_ticket(target, method="pensia", eps=0.05, seed=0)
    ok = approximation_error(target, tk, n_samples=100_000, seed=0)
    assert ok.holds and ok.analytic <= 0.05
    bad = tk.module  # modified in place (deepcopy of a pruned module is not supported by torch)
    m = Network.from_module(bad).layers[1].module
    with torch.no_grad():
        m.weight_orig.mul_(1.25)
    m.weight = m.weight_orig * m.weight_mask  # refresh the cached masked weight
    ae = approximation_error(target, bad, radius=1.0, n_samples=100_000, seed=0)
    assert ae.empirical > ok.empirical * 5
    assert ae.empirical <= ae.analytic
    other = mlp(3, [6], 2, bias=False, seed=2)
    ae2 = approximation_error(other, tk, n_samples=20_000, seed=0)
    assert ae2.analytic > 0.05 and ae2.empirical <= ae2.analytic


def test_radius_scales_linearly():
    """Bias-free ReLU networks are positively homogeneous: the sup error scales with the radius."""
    target = mlp(3, [6], 2, bias=False, seed=1)
    tk = construct_ticket(target, method="pensia", eps=0.05, seed=0)
    a1 = approximation_error(target, tk, radius=1.0, n_samples=20_000, seed=0)
    a3 = approximation_error(target, tk, radius=3.0, n_samples=20_000, seed=0)
    assert a3.analytic == pytest.approx(3 * a1.analytic, rel=1e-9)
    assert a3.empirical == pytest.approx(3 * a1.empirical, rel=1e-9)


def test_shape_mismatch_is_reported():
    target = mlp(3, [6], 2, bias=False, seed=1)
    with pytest.raises(DataError):
        approximation_error(target, mlp(3, [6], 2, bias=False), radius=1.0, n_samples=10)


def test_signed_pair_error_bounds_the_output_error():
    """||V relu(U x) - W x|| <= ||D||_2 ||x|| with the signed D, which is never looser than |D|."""
    g = torch.Generator().manual_seed(3)
    d_in, n, d_out = 4, 3, 5
    h = 2 * n * d_in
    u = torch.zeros(h, d_in, dtype=torch.float64)
    u[torch.arange(h), torch.arange(h) // (2 * n)] = torch.randn(h, generator=g, dtype=torch.float64)
    v = torch.randn(d_out, h, generator=g, dtype=torch.float64)
    w = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    d = pair_error_matrices(u, v, w)
    x = torch.randn(20_000, d_in, generator=g, dtype=torch.float64)
    err = ((x @ u.T).clamp(min=0) @ v.T - x @ w.T).norm(dim=1)
    bound = torch.linalg.matrix_norm(d, ord=2) * x.norm(dim=1)
    assert bool((err <= bound * (1 + 1e-12)).all())
    assert float(torch.linalg.matrix_norm(d, ord=2)) <= float(torch.linalg.matrix_norm(d.abs(), ord=2)) + 1e-12
    # not vacuous: [relu(x); relu(-x)] has complementary supports, so equality need not hold, but it comes close
    assert float((err / bound).max()) > 0.5


def test_spectral_norm_bound_is_an_upper_bound_and_tight():
    """The Gram-matrix bound is >= the float64 SVD's largest singular value (whose own error is ~1e-16
    relative) and within 1e-9 of it, on wide, tall, low-rank and zero matrices."""
    from prunebound.subnet_search.certify import spectral_norm_bound

    g = torch.Generator().manual_seed(3)
    cases = [torch.randn(30, 200, generator=g, dtype=torch.float64),
             torch.randn(300, 17, generator=g, dtype=torch.float64) * 1e-3,
             torch.randn(40, 1, generator=g, dtype=torch.float64)
             @ torch.randn(1, 90, generator=g, dtype=torch.float64),
             torch.zeros(5, 7, dtype=torch.float64),
             torch.randn(50, 60, generator=g).to(torch.float64)]
    for d in cases:
        ref = float(torch.linalg.svdvals(d)[0]) if d.abs().max() > 0 else 0.0
        b = spectral_norm_bound(d)
        assert b >= ref * (1 + 1e-14) or (ref == 0.0 and b == 0.0)
        assert b <= ref * (1 + 1e-9) + 1e-300
    # a pure rescaling: the bound scales with the matrix (homogeneous up to the rounding slack)
    d = cases[0]
    assert spectral_norm_bound(4.0 * d) == pytest.approx(4.0 * spectral_norm_bound(d), rel=1e-12)


@pytest.mark.parametrize("n,d,chunk", [(1000, 784, 64), (37, 5, 16), (300, 10, 48), (3, 3, 16), (9, 17, 16),
                                       (33, 1, 16)])
def test_sample_ball_in_chunks_is_the_one_stream(n, d, chunk):
    """The chunked directions times the radii are exactly the points of the one-shot draw (the reference is
    written out here as it was before the chunking)."""
    from prunebound.subnet_search.certify import sample_ball_parts

    g = torch.Generator().manual_seed(4)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-300)
    rad = torch.full((n, 1), 2.0, dtype=torch.float64)
    rad[n // 2:] *= torch.rand(n - n // 2, 1, generator=g, dtype=torch.float64) ** (1.0 / d)
    parts: list[torch.Tensor] = []
    r = sample_ball_parts(n, d, 2.0, 4, lambda s, u: parts.append(u), chunk=chunk)
    assert len(parts) >= min(2, n * d // 16 // max(chunk, 1)) or n <= chunk
    assert torch.equal(torch.cat(parts) * r, x * rad)
    assert torch.equal(sample_ball(n, d, 2.0, 4), x * rad)
