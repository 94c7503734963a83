"""Pay only for what distinguishes functions: the permutation gain of an Occam bound.

Permuting the hidden units of a layer of an MLP chain (rows of ``W_l`` and ``b_l``, columns of ``W_{l+1}``) does
not change the function.  With a prefix-free code ``c`` and the Occam prior ``2^{-ℓ(c)}`` over codes, the prior
mass of a *function* ``f`` is ``Π(f) = Σ_{c decodes to a net computing f} 2^{-ℓ(c)}``, and ``Σ_f Π(f) <= 1``
(Kraft), so the Occam bound holds with ``-log2 Π(f)`` in place of ``ℓ``.  If

1. the code length is **invariant** under the permutations: ``ℓ(σ·θ) = ℓ(θ)``, and
2. the permuted parameter tuples ``σ·θ`` are **distinct** (so their codes are distinct codes of ``f``),

then ``Π(f) >= |orbit(θ)| 2^{-ℓ(θ)}`` and the bound may use ``ℓ - log2 |orbit(θ)|`` bits (Zhou et al. 2019's
code subtracts ``log n!`` per layer for this; we take it only where 1 and 2 hold).

*Invariance* (checked, :func:`code_is_permutation_invariant`): :func:`prunebound.coding.encode` with
``coder="huffman"`` on layers without zero weights writes a header, the sorted codebook, a Huffman table built
from the symbol counts, one codeword per weight and fixed-width biases; permuting units permutes the symbols of
each layer, so every count and hence the length is unchanged.  Layers with zeros also code the *positions* of
the nonzeros (gap codes), whose length depends on the order; the range coder's length depends on the order by a
few bits.  Both are refused.

*Distinctness* (counted, :func:`orbit_log2`): the group ``Π_l S_{n_l}`` acts on ``θ``; ``|orbit| = |G| /
|Stab|``.  A stabilising ``σ`` must map ``W_l P_{l-1}^T`` to itself under the row permutation ``P_l``, and two
rows of ``W_l P_{l-1}^T`` are equal iff the same rows of ``W_l`` are, so ``|Stab| <= Π_l Π_k m_{l,k}!`` where
``m_{l,k}`` are the multiplicities of identical rows of ``[W_l | b_l]``.  Hence
``log2 |orbit| >= Σ_l (log2 n_l! - Σ_k log2 m_{l,k}!)`` -- equal units give fewer permutations.

Scope: ``nn.Sequential`` chains of ``nn.Linear`` layers and elementwise activations (an optional leading
``nn.Flatten``); anything else (convolutions, residual connections, normalisation) is refused naming the module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from prunebound.bounds.pac_bayes import occam_bound
from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, UnsupportedLayerError, check_probability
from prunebound.network import is_pruned

__all__ = ["orbit_log2", "code_is_permutation_invariant", "permute_hidden", "occam_permutation_bound",
           "occam_permutation_certificate"]

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Softplus, nn.Identity)


def _linears(module: nn.Module) -> list[nn.Linear]:
    if not isinstance(module, nn.Sequential):
        raise UnsupportedLayerError(
            f"the permutation gain needs an nn.Sequential chain of Linear layers and elementwise activations; got "
            f"{type(module).__name__}")
    out = []
    for i, (name, child) in enumerate(module.named_children()):
        if isinstance(child, nn.Linear):
            out.append(child)
        elif isinstance(child, _ELEMENTWISE) or (i == 0 and isinstance(child, nn.Flatten)):
            continue
        else:
            raise UnsupportedLayerError(
                f"the permutation gain assumes hidden units that permute freely (Linear layers and elementwise "
                f"activations only); module {name!r} is a {type(child).__name__}")
    if not out:
        raise UnsupportedLayerError("the model has no Linear layers")
    return out


def _eff(lin: nn.Linear) -> torch.Tensor:
    w = lin.weight.detach()
    if is_pruned(lin):
        w = lin.weight_orig.detach() * lin.weight_mask.detach()
    return w


def orbit_log2(module: nn.Module) -> tuple[float, list[float]]:
    """``(total, per hidden layer)`` lower bound on ``log2`` of the number of distinct networks obtained by
    permuting hidden units (module docstring): ``log2 n_l! - Σ_k log2 m_{l,k}!`` per hidden layer."""
    lins = _linears(module)
    per = []
    for lin in lins[:-1]:
        rows = _eff(lin)
        if lin.bias is not None:
            rows = torch.cat([rows, lin.bias.detach()[:, None]], 1)
        _, counts = torch.unique(rows, dim=0, return_counts=True)
        n = rows.shape[0]
        g = (math.lgamma(n + 1) - sum(math.lgamma(int(c) + 1) for c in counts.tolist())) / math.log(2)
        per.append(max(0.0, g))
    return float(sum(per)), per


def code_is_permutation_invariant(module: nn.Module, coder: str = "huffman") -> tuple[bool, str]:
    """Whether the length of :func:`prunebound.coding.encode` (``coder``) is invariant under hidden-unit
    permutations, with the reason (module docstring)."""
    if coder != "huffman":
        return False, f"the {coder!r} coder's length depends on the symbol order"
    for i, lin in enumerate(_linears(module)):
        if bool((_eff(lin) == 0).any()):
            return False, (f"Linear layer {i} has zero (pruned) weights: their positions are gap-coded, a length "
                           "that depends on the order of the units")
    return True, "Huffman code of dense layers: length depends only on the symbol counts"


def permute_hidden(module: nn.Module, perms: Sequence[torch.Tensor]) -> nn.Module:
    """A copy of ``module`` with the units of hidden layer ``l`` permuted by ``perms[l]`` (same function)."""
    from prunebound.network import clone, refresh_masked_weights

    m = clone(module)
    lins = _linears(m)
    if len(perms) != len(lins) - 1:
        raise InvalidParameterError(f"need one permutation per hidden layer ({len(lins) - 1}), got {len(perms)}")

    def wparam(lin):
        return lin.weight_orig if is_pruned(lin) else lin.weight

    with torch.no_grad():
        for lin, nxt, p in zip(lins[:-1], lins[1:], perms):
            wparam(lin).copy_(wparam(lin)[p])
            if is_pruned(lin):
                lin.weight_mask.copy_(lin.weight_mask[p])
            if lin.bias is not None:
                lin.bias.copy_(lin.bias[p])
            wparam(nxt).copy_(wparam(nxt)[:, p])
            if is_pruned(nxt):
                nxt.weight_mask.copy_(nxt.weight_mask[:, p])
    return refresh_masked_weights(m)


def occam_permutation_bound(module: nn.Module, data: Dataset, *, delta: float, coder: str = "huffman",
                            check_invariance: bool = True) -> BoundTerms:
    """Occam kl bound with ``ℓ - log2 |orbit|`` bits (module docstring); refuses a non-invariant code.

    ``check_invariance=False`` takes the gain regardless -- an *invalid* bound kept for the tests.
    """
    from prunebound.coding import code_length_bits
    from prunebound.train import evaluate

    delta = check_probability("delta", delta)
    ok, why = code_is_permutation_invariant(module, coder)
    if check_invariance and not ok:
        raise InvalidParameterError(f"permutation gain refused: {why}; use the plain 'occam' bound")
    bits = float(code_length_bits(module, coder=coder).total_bits)
    gain, per = orbit_log2(module)
    t = occam_bound(evaluate(module, data).error, max(bits - gain, 0.0), len(data), delta=delta)
    parts = dict(t.parts)
    parts.update(code_bits=bits, permutation_gain_bits=gain, **{f"gain_layer_{i}": g for i, g in enumerate(per)})
    return BoundTerms(t.value, t.empirical, t.complexity, parts)


def occam_permutation_certificate(module: nn.Module, data: Dataset, *, delta: float = 0.05, seed: int | None = None,
                                  coder: str = "huffman") -> Certificate:
    """Certificate (kind ``"occam_permutation"``) for :func:`occam_permutation_bound`."""
    terms = occam_permutation_bound(module, data, delta=delta, coder=coder)
    return make_certificate("occam_permutation", terms, module, data, delta=delta, seed=seed,
                            params={"coder": coder},
                            note="Occam bound on the function: code length minus log2 of the number of distinct "
                                 "hidden-unit permutations (permutation-invariant Huffman code)")


register_certifier("occam_permutation", occam_permutation_certificate)
