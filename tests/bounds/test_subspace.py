"""Tests for prunebound.bounds.subspace (Lotfi et al. 2022) and its structured projections."""

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.optimize import brentq

from prunebound.bounds.subspace import (
    SubspaceModel,
    certify_subspace,
    decode_quantized,
    encode_quantized,
    prior_init,
    ste_quantize,
    subspace_bound,
    subspace_compress,
    universal_bits,
)
from prunebound.bounds.subspace_projection import (
    FastfoodProjection,
    KroneckerSumProjection,
    fwht,
    make_projection,
)
from prunebound.certificate import Certificate, certifiers, verify
from prunebound.coding import elias_delta_bits, empirical_entropy_bits
from prunebound.data import teacher_task
from prunebound.errors import DataError, InvalidParameterError
from prunebound.network import mlp, to_vector


# ------------------------------------------------------------------------------------------- projections
@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_fwht_matches_scipy_hadamard(n):
    x = torch.randn(3, n, dtype=torch.float64)
    H = torch.tensor(scipy.linalg.hadamard(n), dtype=torch.float64)
    assert torch.allclose(fwht(x), x @ H, atol=1e-10)


def test_fwht_rejects_non_power_of_two():
    with pytest.raises(InvalidParameterError):
        fwht(torch.zeros(6))


@pytest.mark.parametrize("D,d", [(37, 5), (100, 8), (7, 9), (1, 1)])
def test_kronecker_sum_matches_explicit_kronecker_sums(D, d):
    P = KroneckerSumProjection(D, d, seed=3)
    # independent route: column k = R1[:, k] (x) 1_b + 1_a (x) R2[:, k] via torch.kron, truncated and scaled
    ones_a, ones_b = torch.ones(P.a), torch.ones(P.b)
    cols = [torch.kron(P.R1[:, k], ones_b) + torch.kron(ones_a, P.R2[:, k]) for k in range(d)]
    M = torch.stack(cols, 1)[:D] / math.sqrt(2 * P.a * P.b)
    w = torch.randn(d)
    assert torch.allclose(P(w), M @ w, atol=1e-5)
    assert torch.allclose(P.dense(), M, atol=1e-6)


@pytest.mark.parametrize("D,d", [(37, 5), (100, 8), (7, 9), (64, 16)])
def test_fastfood_matches_dense_product_of_explicit_matrices(D, d):
    P = FastfoodProjection(D, d, seed=5)
    n = P.dp
    H = torch.tensor(scipy.linalg.hadamard(n), dtype=torch.float64)
    blocks = []
    for j in range(P.m):
        Pi = torch.zeros(n, n, dtype=torch.float64)
        Pi[torch.arange(n), P.perm[j]] = 1.0  # (Pi x)_i = x_perm[i]
        blocks.append(H @ torch.diag(P.G[j].double()) @ Pi @ H @ torch.diag(P.B[j].double()))
    M = torch.cat(blocks, 0)[:D, :d]
    w = torch.randn(d, dtype=torch.float64)
    assert torch.allclose(P(w), M @ w, atol=1e-9)
    assert torch.allclose(P.dense().double(), M, atol=1e-5)


def test_fastfood_columns_have_unit_norm_when_blocks_fill_D():
    P = FastfoodProjection(4 * 32, 20, seed=1)  # d' = 32, m = 4, no truncation
    norms = P.dense().norm(dim=0)
    assert torch.allclose(norms, torch.ones(20), atol=1e-5)


@pytest.mark.parametrize("kind", ["kronecker_sum", "fastfood"])
def test_projection_memory_is_far_below_dense_and_seed_determines_it(kind):
    D, d = 100_000, 1000
    P = make_projection(kind, D, d, seed=7)
    assert P.n_floats() <= 3 * (D + d) + 2 * math.isqrt(D) * d < D * d / 100
    w = torch.randn(d)
    assert torch.equal(P(w), make_projection(kind, D, d, seed=7)(w))
    assert not torch.equal(P(w), make_projection(kind, D, d, seed=8)(w))
    # roughly unit columns: ||P e_k|| ~ 1 (tolerance loose because it is random; exact for fastfood blocks)
    e = torch.zeros(d)
    e[3] = 1.0
    assert 0.5 < float(P(e).norm()) < 1.5


def test_make_projection_rejects_unknown_kind_and_bad_w():
    with pytest.raises(InvalidParameterError):
        make_projection("dense", 10, 2, seed=0)
    with pytest.raises(InvalidParameterError):
        make_projection("fastfood", 10, 2, seed=0)(torch.zeros(3))


# ------------------------------------------------------------------------------------------- model + STE
def test_subspace_model_matches_materialized_network_and_trains_only_w():
    base = mlp(4, [6], 3, seed=0)
    theta0 = to_vector(base)
    P = make_projection("fastfood", theta0.numel(), 5, seed=1)
    sub = SubspaceModel(base, theta0, P)
    x = torch.randn(10, 4)
    assert torch.allclose(sub(x), base(x), atol=1e-6)  # w = 0 gives theta0
    with torch.no_grad():
        sub.w.copy_(torch.randn(5))
    model = sub.materialize()
    assert torch.allclose(to_vector(model), theta0 + P.dense() @ sub.w.detach(), atol=1e-5)
    assert torch.allclose(sub(x), model(x), atol=1e-5)
    assert [n for n, p in sub.named_parameters() if p.requires_grad] == ["w"]
    sub(x).sum().backward()
    assert sub.w.grad is not None and float(sub.w.grad.abs().sum()) > 0


def test_ste_quantize_values_and_gradients():
    w = torch.tensor([-1.2, -0.1, 0.05, 0.9, 2.0], requires_grad=True)
    c = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    q, a = ste_quantize(w, c)
    assert a.tolist() == [0, 1, 1, 2, 2]
    assert torch.equal(q.detach(), torch.tensor([-1.0, 0.0, 0.0, 1.0, 1.0]))
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (q * g).sum().backward()
    assert torch.equal(w.grad, g)  # straight through
    assert torch.equal(c.grad, torch.tensor([1.0, 5.0, 9.0]))  # summed per cluster


# ------------------------------------------------------------------------------------------- coding
@pytest.mark.parametrize("d,L,p", [(500, 8, None), (200, 4, [0.7, 0.2, 0.1, 0.0]), (50, 1, None),
                                   (1, 3, None)])
def test_encode_decode_round_trip_and_lengths(d, L, p):
    rng = np.random.default_rng(d + L)
    sym = rng.choice(L, size=d, p=p)
    codebook = torch.tensor(np.sort(rng.normal(size=L)), dtype=torch.float32)
    code = encode_quantized(sym, codebook)
    # the length is the actual message: whole bytes hold exactly n_bits (up to padding)
    assert len(code.message) == -(-code.n_bits // 8)
    assert code.n_bits == code.codebook_bits + code.count_bits + code.body_bits
    assert code.codebook_bits == 16 * L
    counts = np.bincount(sym, minlength=L)
    assert code.count_bits == (int(np.sum(elias_delta_bits(counts[:-1] + 1))) if L > 1 else 0)
    H = empirical_entropy_bits(sym)
    assert code.entropy_bits == pytest.approx(H)
    assert H - 16 <= code.body_bits <= H + 24  # arithmetic coding: within a few bytes of d * H(p_hat)
    wq, sym2, c16 = decode_quantized(code.message, code.n_bits, d=d, levels=L)
    assert np.array_equal(sym2, sym)
    assert torch.equal(wq, codebook.half().float()[torch.from_numpy(sym)])
    assert torch.equal(c16, codebook.half())


def test_decode_rejects_corrupt_or_wrong_grid_point():
    code = encode_quantized(np.array([0, 1, 1, 2, 2, 2] * 20), torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(DataError):
        decode_quantized(code.message, code.n_bits, d=10, levels=3)  # counts exceed d
    with pytest.raises(DataError):
        decode_quantized(code.message[:4], 32, d=120, levels=3)


def test_encode_rejects_bad_input():
    with pytest.raises(InvalidParameterError):
        encode_quantized(np.array([0, 3]), torch.tensor([0.0, 1.0]))
    with pytest.raises(DataError):
        encode_quantized(np.array([0, 1]), torch.tensor([0.0, 1e6]))  # not finite in fp16


# ------------------------------------------------------------------------------------------- the bound
def _kl(q, p):
    return (q * math.log(q / p) if q > 0 else 0.0) + ((1 - q) * math.log((1 - q) / (1 - p)) if q < 1 else 0.0)


@pytest.mark.parametrize("emp,n,bits,G", [(0.1, 1000, 300, 1), (0.0, 500, 50, 12), (0.3, 10_000, 2000, 6)])
def test_subspace_bound_matches_brentq(emp, n, bits, G):
    delta = 0.05
    t = subspace_bound(emp, n, bits, delta=delta, grid_size=G)
    K = bits + math.log2(bits * (bits + 1)) + math.log2(G)
    c = (K * math.log(2) + math.log(1 / delta)) / n
    p = brentq(lambda p: _kl(emp, p) - c, emp + 1e-15, 1 - 1e-15, xtol=1e-14)
    assert t.value == pytest.approx(p, abs=1e-9)
    assert t.parts["total_bits"] == pytest.approx(K)
    assert t.parts["grid_bits"] == pytest.approx(math.log2(G))
    assert t.empirical == emp


def test_subspace_bound_monotone_in_grid_and_bits():
    a = subspace_bound(0.1, 1000, 200, delta=0.05, grid_size=1).value
    b = subspace_bound(0.1, 1000, 200, delta=0.05, grid_size=100).value
    c = subspace_bound(0.1, 1000, 400, delta=0.05, grid_size=100).value
    assert a < b < c
    assert universal_bits(1) == pytest.approx(1.0)
    with pytest.raises(InvalidParameterError):
        subspace_bound(0.1, 1000, 200, delta=1.5)
    with pytest.raises(InvalidParameterError):
        subspace_bound(0.1, 1000, 0, delta=0.05)


# ------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def small_run():
    task = teacher_task(5, 8, 2, 0.1, seed=0)
    data = task.sample(300, 1)
    res = subspace_compress(mlp(5, [16], 2, seed=0), data, grid=((8, 4), (16, 4)), epochs=5, qat_epochs=2,
                            lr=0.05, projection="fastfood", seed=3)
    return task, data, res


def test_compress_certificate_verifies_and_is_consistent(small_run):
    task, data, res = small_run
    assert len(res.grid_results) == 2
    assert res.value == min(g[2] for g in res.grid_results)
    assert res.terms.parts["grid_size"] == 2.0
    assert res.terms.value >= res.terms.empirical
    assert res.terms.parts["message_bits"] == res.code.n_bits
    cert = certify_subspace(res.model, data, delta=0.05, seed=3, **res.params)
    assert cert.value == pytest.approx(res.value, abs=1e-12)
    assert "subspace" in certifiers()
    rep = verify(cert, res.model, data)
    assert rep.ok, rep.differences
    again = Certificate.from_dict(json.loads(cert.to_json()))  # JSON round trip keeps it recomputable
    assert verify(again, res.model, data).ok
    from prunebound.bounds.certify import certify

    via_entry = certify(res.model, data, method="subspace", delta=0.05, seed=3, **res.params)
    assert via_entry.value == cert.value and via_entry.kind == "subspace"
    # the quantised model really is theta0 + P w_q with theta0 the seeded init
    init, _ = prior_init(res.model, data, init_seed=res.params["init_seed"])
    P = make_projection(res.params["projection"], to_vector(init).numel(), res.d,
                        seed=res.params["projection_seed"])
    wq, _, _ = decode_quantized(res.code.message, res.code.n_bits, d=res.d, levels=res.levels)
    assert torch.allclose(to_vector(res.model), to_vector(init) + P.dense() @ wq, atol=1e-5)


def test_certify_rejects_a_different_module(small_run):
    _, data, res = small_run
    with pytest.raises(InvalidParameterError):
        certify_subspace(mlp(5, [16], 2, seed=9), data, delta=0.05, **res.params)
    bad = dict(res.params, d=7)
    with pytest.raises(InvalidParameterError):
        certify_subspace(res.model, data, delta=0.05, **bad)


def test_unpaid_grid_is_smaller_and_flagged(small_run):
    _, data, res = small_run
    p = dict(res.params, pay_for_grid=False)
    cert = certify_subspace(res.model, data, delta=0.05, **p)
    assert cert.value < res.value
    assert "INVALID" in cert.note


def test_data_dependent_prior_uses_only_held_out_part():
    task = teacher_task(5, 8, 2, 0.1, seed=0)
    data = task.sample(300, 2)
    res = subspace_compress(mlp(5, [16], 2, seed=0), data, grid=((8, 4),), epochs=3, qat_epochs=1,
                            prior_fraction=0.5, prior_epochs=3, seed=1, projection="kronecker_sum")
    assert res.terms.parts["n_bound"] == 150.0
    assert res.terms.parts["grid_size"] == 1.0
    cert = certify_subspace(res.model, data, delta=0.05, seed=1, **res.params)
    assert cert.n == 300 and cert.parts["n_bound"] == 150.0
    assert verify(cert, res.model, data).ok


def test_compress_rejects_bad_arguments():
    data = teacher_task(5, 8, 2, 0.1, seed=0).sample(50, 0)
    m = mlp(5, [4], 2, seed=0)
    with pytest.raises(InvalidParameterError):
        subspace_compress(m, data, grid=())
    with pytest.raises(InvalidParameterError):
        subspace_compress(m, data, grid=((4, 2), (4, 2)))
    with pytest.raises(InvalidParameterError):
        subspace_compress(m, data, grid=((4, 2),), projection="gaussian")
    with pytest.raises(InvalidParameterError):
        subspace_compress(m, data, grid=((4, 2),), delta=0.0)
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    with pytest.raises(DataError):
        subspace_compress(m, data, grid=((4, 2),))


# ------------------------------------------------------------------------------------------- class-based models
def _residual_data():
    from prunebound.conformance import ResidualMLP

    task = teacher_task(8, 8, 3, 0.1, seed=0)
    return ResidualMLP, task.sample(240, 4)


@pytest.fixture(scope="module")
def class_run():
    ResidualMLP, data = _residual_data()
    res = subspace_compress(ResidualMLP(), data, grid=((8, 4), (16, 4)), epochs=3, qat_epochs=1, lr=0.05, seed=2)
    return ResidualMLP, data, res


def test_class_model_compresses_certifies_and_verifies(class_run):
    ResidualMLP, data, res = class_run
    from prunebound.bounds.subspace import architecture_sha256

    assert isinstance(res.model, ResidualMLP)  # a clone of the user's class, not a rebuilt Sequential
    assert res.params["init"] == "reset_parameters"
    assert res.params["architecture_sha256"] == architecture_sha256(ResidualMLP())
    cert = certify_subspace(res.model, data, delta=0.05, seed=2, **res.params)
    assert cert.value == pytest.approx(res.value, abs=1e-12)
    rep = verify(Certificate.from_dict(json.loads(cert.to_json())), res.model, data)
    assert rep.ok and rep.checkable, rep.differences
    # theta0 is the seeded re-initialisation of the architecture, whatever weights the given module holds:
    # the prior built from a freshly constructed (differently seeded) instance is the same vector
    a, _ = prior_init(res.model, data, init_seed=2)
    torch.manual_seed(123)
    b, _ = prior_init(ResidualMLP(), data, init_seed=2)
    assert torch.equal(to_vector(a), to_vector(b))
    assert not torch.equal(to_vector(a), to_vector(prior_init(ResidualMLP(), data, init_seed=3)[0]))
    # and the model really is theta0 + P w_q
    P = make_projection(res.params["projection"], to_vector(a).numel(), res.d, seed=res.params["projection_seed"])
    wq, _, _ = decode_quantized(res.code.message, res.code.n_bits, d=res.d, levels=res.levels)
    assert torch.allclose(to_vector(res.model), to_vector(a) + P.dense() @ wq, atol=1e-5)


def test_class_model_verify_refuses_other_weights_architecture_or_edited_extras(class_run):
    ResidualMLP, data, res = class_run
    cert = certify_subspace(res.model, data, delta=0.05, seed=2, **res.params)
    from prunebound.network import clone

    edited = clone(res.model)
    with torch.no_grad():
        edited.fc_out.bias.add_(0.5)
    rep = verify(cert, edited, data)
    assert not rep.ok and any("not the network decoded" in d for d in rep.differences), rep.differences
    wider = ResidualMLP(width=16, blocks=1)  # another architecture: named as such, never OK
    rep = verify(cert, wider, data)
    assert not rep.ok and any("another architecture" in d for d in rep.differences), rep.differences


def test_class_model_parameters_outside_weighted_layers_are_part_of_theta0():
    """A LayerNorm's affine weights are not in the subspace vector: they stay at their re-initialised value, and
    a model whose LayerNorm was edited afterwards is not the certified network."""
    from torch import nn

    class LNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(5, 12)
            self.ln = nn.LayerNorm(12)
            self.fc2 = nn.Linear(12, 2)

        def forward(self, x):
            return self.fc2(torch.relu(self.ln(self.fc1(x))))

    data = teacher_task(5, 8, 2, 0.1, seed=0).sample(200, 5)
    res = subspace_compress(LNNet(), data, grid=((8, 4),), epochs=2, qat_epochs=1, seed=0)
    assert torch.equal(res.model.ln.weight, torch.ones(12))  # reset_parameters() value
    cert = certify_subspace(res.model, data, delta=0.05, seed=0, **res.params)
    assert verify(cert, res.model, data).ok
    from prunebound.network import clone

    edited = clone(res.model)
    with torch.no_grad():
        edited.ln.weight.mul_(2.0)  # to_vector is unchanged, the function is not
    assert torch.equal(to_vector(edited), to_vector(res.model))
    with pytest.raises(InvalidParameterError, match="not the network decoded"):
        certify_subspace(edited, data, delta=0.05, seed=0, **res.params)
    from prunebound.bounds.certify import certify

    assert certify(res.model, data, method="subspace", delta=0.05, seed=0, **res.params).value == cert.value


def test_float64_class_model_stays_float64():
    from prunebound.conformance import FunctionalMLP

    data = teacher_task(8, 8, 3, 0.1, seed=0).sample(100, 1)
    data64 = type(data)(data.x.double(), data.y, name="t64")
    res = subspace_compress(FunctionalMLP().double(), data64, grid=((8, 4),), epochs=1, qat_epochs=1, seed=0)
    assert all(p.dtype == torch.float64 for p in res.model.parameters())
    cert = certify_subspace(res.model, data64, delta=0.05, seed=0, **res.params)
    assert verify(cert, res.model, data64).ok


def test_bn_class_model_and_zoo_resnet_are_accepted():
    from prunebound.conformance import ConvBNNet
    from prunebound.zoo import resnet20

    data = teacher_task(0, 8, 3, 0.0, seed=0, shape=(1, 8, 8)).sample(64, 1)
    res = subspace_compress(ConvBNNet(), data, grid=((8, 4),), epochs=1, qat_epochs=1, batch_size=32, seed=0)
    assert res.params["init"] == "reset_parameters"
    cert = certify_subspace(res.model, data, delta=0.05, seed=0, **res.params)
    assert verify(cert, res.model, data).ok
    data = teacher_task(0, 8, 2, 0.0, seed=0, shape=(3, 8, 8)).sample(32, 1)
    res = subspace_compress(resnet20(width=2, num_classes=2, seed=0), data, grid=((8, 2),), epochs=1,
                            qat_epochs=1, batch_size=32, seed=0)
    assert verify(certify_subspace(res.model, data, delta=0.05, seed=0, **res.params), res.model, data).ok


def test_sequential_models_keep_the_spec_route():
    from prunebound.bounds.subspace import init_route

    assert init_route(mlp(5, [4], 2, seed=0)) == "spec"


def test_module_with_parameters_but_no_reset_is_refused_naming_it():
    from torch import nn

    from prunebound.errors import UnsupportedLayerError

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(5, 4)
            self.b = nn.Linear(4, 2)
            self.b.reset_parameters = None  # its trained values would survive into the "random" prior

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    data = teacher_task(5, 8, 2, 0.1, seed=0).sample(50, 0)
    with pytest.raises(UnsupportedLayerError, match="'b'.*reset_parameters"):
        subspace_compress(Net(), data, grid=((4, 2),), epochs=1, qat_epochs=1)
