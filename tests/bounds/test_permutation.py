"""Permutation gain: invariance of the code, the orbit count against brute force, refusals, the certificate."""

import itertools
import math

import pytest
import torch
from torch import nn

from prunebound.bounds.permutation import (
    code_is_permutation_invariant,
    occam_permutation_bound,
    occam_permutation_certificate,
    orbit_log2,
    permute_hidden,
)
from prunebound.certificate import verify
from prunebound.coding import code_length_bits, encode, quantize_module
from prunebound.data import teacher_task
from prunebound.errors import InvalidParameterError, UnsupportedLayerError
from prunebound.network import apply_masks, mlp


def _quantized(widths=(4, 3), bits=2, seed=0):
    m = mlp(3, list(widths), 2, seed=seed)
    quantize_module(m, bits=bits, half_bias=True)
    return m


def _pruned_net():
    """A pruned, quantized 8-5-2 MLP whose positions code length depends on the order of its hidden units."""
    pr = mlp(8, [5], 2, seed=2)
    quantize_module(pr, bits=2, half_bias=True)
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(5, 8, generator=g) > torch.linspace(0.1, 0.9, 5)[:, None]).float()
    apply_masks(pr, [mask, torch.ones(2, 5)])
    return pr


def _all_perms(m):
    lins = [c for c in m if isinstance(c, nn.Linear)]
    spaces = [list(itertools.permutations(range(lin.out_features))) for lin in lins[:-1]]
    for combo in itertools.product(*spaces):
        yield [torch.tensor(p) for p in combo]


def test_permuting_hidden_units_keeps_the_function():
    m = _quantized()
    x = torch.randn(20, 3)
    p = permute_hidden(m, [torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])])
    assert torch.allclose(m(x), p(x), atol=1e-6)
    assert not torch.equal(m[0].weight, p[0].weight)


def test_dense_huffman_code_length_is_invariant_and_pruned_positions_code_is_not():
    m = _quantized(widths=(3, 3))
    ok, _ = code_is_permutation_invariant(m)
    assert ok
    base = code_length_bits(m).total_bits
    assert {code_length_bits(permute_hidden(m, ps)).total_bits for ps in _all_perms(m)} == {base}
    pr = _pruned_net()
    ok, why = code_is_permutation_invariant(pr)
    assert not ok and "positions" in why
    lengths = {code_length_bits(permute_hidden(pr, ps)).total_bits for ps in _all_perms(pr)}
    assert len(lengths) > 1  # the reason it is refused: the length depends on the order


def _distinct_codes(m):
    return {encode(permute_hidden(m, ps)) for ps in _all_perms(m)}


def test_orbit_count_matches_brute_force_and_equal_units_count_less():
    m = _quantized(widths=(3, 3), bits=3, seed=2)
    total, per = orbit_log2(m)
    assert total == pytest.approx(math.log2(6 * 6))
    assert len(_distinct_codes(m)) == 36
    # two units with identical incoming rows but different outgoing weights: swapping them still changes
    # the network, and the count (a lower bound) may only be smaller than the truth
    with torch.no_grad():
        m[0].weight[1].copy_(m[0].weight[0])
        m[0].bias[1].copy_(m[0].bias[0])
    total, per = orbit_log2(m)
    assert per[0] == pytest.approx(math.log2(3)) and per[1] == pytest.approx(math.log2(6))
    assert math.log2(len(_distinct_codes(m))) >= total - 1e-9
    # fully identical units (outgoing weights too): the orbit really shrinks, to 3!/2! x 3! = 18 networks
    with torch.no_grad():
        m[2].weight[:, 1].copy_(m[2].weight[:, 0])
    exact = len(_distinct_codes(m))
    assert exact == 18 and orbit_log2(m)[0] == pytest.approx(math.log2(exact))


def _log2_mass(lengths):
    """log2 of sum_i 2^-lengths[i], stably."""
    lo = min(lengths)
    return -lo + math.log2(sum(2.0 ** -(x - lo) for x in lengths))


def test_prior_mass_of_the_function_covers_the_gain_and_the_broken_variant_is_caught():
    # valid: invariant code, so the distinct codes of the orbit have total mass |orbit| 2^-l = 2^-(l - gain)
    m = _quantized(widths=(3, 3), bits=3, seed=2)
    gain, _ = orbit_log2(m)
    codes = {encode(permute_hidden(m, ps)): code_length_bits(permute_hidden(m, ps)).total_bits
             for ps in _all_perms(m)}
    ell = code_length_bits(m).total_bits
    assert _log2_mass(list(codes.values())) >= -(ell - gain) - 1e-9
    # broken: a pruned net (order-dependent positions code), taking the shortest member of its orbit and the
    # gain log2|orbit| regardless: the claimed prior mass exceeds the true mass of the function's codes
    pr = _pruned_net()
    members = [permute_hidden(pr, ps) for ps in _all_perms(pr)]
    by_code = {encode(x): code_length_bits(x).total_bits for x in members}
    shortest = min(members, key=lambda x: code_length_bits(x).total_bits)
    claimed = -(code_length_bits(shortest).total_bits - orbit_log2(shortest)[0])
    assert claimed > _log2_mass(list(by_code.values())) + 0.01
    with pytest.raises(InvalidParameterError, match="positions"):
        occam_permutation_bound(shortest, teacher_task(8, 4, 2, seed=0).sample(50, 1), delta=0.05)
    broken = occam_permutation_bound(shortest, teacher_task(8, 4, 2, seed=0).sample(50, 1), delta=0.05,
                                     check_invariance=False)
    assert broken.parts["permutation_gain_bits"] > 0


def test_refusals_name_the_assumption():
    conv = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match="'0' is a Conv1d"):
        orbit_log2(conv)
    m = _quantized()
    ok, why = code_is_permutation_invariant(m, coder="arithmetic")
    assert not ok and "order" in why


def test_certificate_is_tighter_than_plain_occam_and_verifies():
    from prunebound.bounds import certify

    t = teacher_task(3, 8, 2, seed=0)
    data = t.sample(1000, 1)
    m = mlp(3, [64], 2, seed=0)
    from prunebound.train import fit

    fit(m, data, epochs=3, lr=0.01, optimizer="adam")
    quantize_module(m, bits=2, half_bias=True)
    c = occam_permutation_certificate(m, data, delta=0.05)
    plain = certify(m, data, method="occam", delta=0.05)
    assert c.parts["code_bits"] == pytest.approx(plain.parts["bits"])
    assert c.parts["permutation_gain_bits"] > 250  # log2(64!) = 295.9 if the units are distinct
    assert c.value < plain.value
    assert verify(c, m, data).ok
