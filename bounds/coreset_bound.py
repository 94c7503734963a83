"""Generalization bound from coreset compression (Baykal et al. ICLR 2019, Sec. 6 corollary;
Arora et al. 2018; in the Occam form of Zhou et al. 2019).

CoreNet's corollary bounds the risk of the *compressed* network by its size: a network with ``k`` non-zero
weights out of ``N`` (plus ``B`` biases) whose values are stored with ``b`` bits each is described by a code
of

    bits = log2(N + 1) + log2 binom(N, k) + (k + B) * b

bits (the count ``k``, the support, the values) once the architecture is fixed in advance. Weighting every
such network by ``2^{-bits}`` (a prefix-free code, so the weights sum to <= 1), the Occam/Chernoff bound with
a union over the code gives, with probability >= 1 - delta over an i.i.d. sample of size ``n``, simultaneously
for every coded network ``h`` -- in particular for the data-dependent output of a coreset method:

    kl( err_S(h) || err(h) ) <= (bits * ln 2 + ln(1/delta)) / n          (Langford 2005, Thm 4.1 + union
    bound)

so ``err(h) <= kl^{-1}(err_S(h), (bits ln 2 + ln(1/delta)) / n)``, the value this certifier reports (0-1
loss).

Use: :func:`coreset_compress` prunes with a method of :mod:`prunebound.coresets` and rounds the surviving
weights and biases to float16 (``b = 16``), so the pruned network lies in the coded class;
:func:`certify_coreset` (registered as certifier ``"coreset"``) certifies a given compressed module, or, with
``compress={...}``, compresses ``module`` first (deterministically, with ``seed``) and certifies the result --
the certificate is then about ``coreset_compress(module, data, seed=seed, **compress)`` and says so in its
note. Assumptions: i.i.d. data; the architecture is fixed before seeing the data; 0-1 loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from prunebound.bounds.pac_bayes import occam_bound
from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.data import Dataset
from prunebound.errors import DataError, InvalidParameterError, check_positive_int, check_probability
from prunebound.network import Network, is_pruned, refresh_masked_weights
from prunebound.train import evaluate

__all__ = ["code_bits", "coreset_compress", "coreset_bound", "certify_coreset"]


def _effective(net: Network):
    for ly in net.layers:
        yield ly.weight.detach(), (ly.bias.detach() if ly.bias is not None else None)


def code_bits(module: nn.Module, *, value_bits: int = 16) -> dict[str, float]:
    """Description length (bits) of a pruned network: count + support + values (see module docstring)."""
    net = Network.from_module(module)
    N = sum(ly.n_weights for ly in net.layers)
    k = sum(int((ly.weight != 0).sum()) for ly in net.layers)
    B = sum(int(ly.bias.numel()) for ly in net.layers if ly.bias is not None)
    log2_binom = (math.lgamma(N + 1) - math.lgamma(k + 1) - math.lgamma(N - k + 1)) / math.log(2)
    bits = math.log2(N + 1) + log2_binom + (k + B) * value_bits
    return {"bits": bits, "n_weights": float(N), "nonzero": float(k), "biases": float(B),
            "support_bits": log2_binom, "value_bits": float(value_bits)}


def _check_float16(net: Network) -> None:
    for w, b in _effective(net):
        for t in (w, b):
            if t is not None and not bool((t.to(torch.float16).to(t.dtype) == t).all()):
                raise InvalidParameterError(
                    "the coreset bound codes every weight and bias in float16; this module has values that "
                    "float16 cannot represent. Compress it with coreset_compress(...) first"
                )


def coreset_compress(module: nn.Module, data, *, method: str = "corenet", seed: int | None = 0,
                     **kw) -> tuple[nn.Module, object]:
    """Prune with :func:`prunebound.coresets.prune` and round weight_orig and biases to float16 values."""
    from prunebound.coresets import prune

    res = prune(module, data, method=method, seed=seed, **kw)
    pruned, guarantee = res.module, res.guarantee
    net = Network.from_module(pruned)
    with torch.no_grad():
        for ly in net.layers:
            m = ly.module
            tgt = m.weight_orig if is_pruned(m) else m.weight
            tgt.copy_(tgt.to(torch.float16).to(tgt.dtype))
            if m.bias is not None:
                m.bias.copy_(m.bias.to(torch.float16).to(m.bias.dtype))
    return refresh_masked_weights(net.module), guarantee


def coreset_bound(module: nn.Module, data: Dataset, *, delta: float, value_bits: int = 16) -> BoundTerms:
    """The compression bound for an already compressed ``module``.

    With ``value_bits=16`` every weight and bias must be exactly representable in float16.
    """
    check_probability("delta", delta)
    check_positive_int("value_bits", value_bits)
    if not isinstance(data, Dataset):
        raise DataError(f"data must be a prunebound Dataset; got {type(data).__name__}")
    net = Network.from_module(module)
    net.check_finite()
    if value_bits == 16:
        _check_float16(net)
    elif value_bits < 16:
        raise InvalidParameterError(f"value_bits must be >= 16 (float16 or wider); got {value_bits}")
    code = code_bits(module, value_bits=value_bits)
    n = len(data)
    err = float(evaluate(module, data).error)
    occ = occam_bound(err, code["bits"], n, delta=delta, form="kl")
    rhs = (code["bits"] * math.log(2) + math.log(1 / delta)) / n
    parts = {**code, "kl_rhs": rhs, "ln_1_over_delta": math.log(1 / delta), "n": float(n)}
    return BoundTerms(value=occ.value, empirical=err, complexity=occ.value - err, parts=parts)


def certify_coreset(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = 0,
                    value_bits: int = 16, compress: Mapping | None = None) -> Certificate:
    """Certificate ``"coreset"`` (deterministic given its arguments; ``verify`` recomputes it)."""
    note = "risk bound for the given (compressed) module"
    target = module
    if compress is not None:
        if not isinstance(compress, Mapping):
            raise InvalidParameterError(f"compress must be a dict of prune() arguments; got {compress!r}")
        target, _ = coreset_compress(module, data, seed=seed, **dict(compress))
        note = (f"risk bound for coreset_compress(module, data, seed={seed}, **{dict(compress)}), "
                "not for the "
                "dense module hashed here")
    terms = coreset_bound(target, data, delta=delta, value_bits=value_bits)
    params = {"value_bits": value_bits}
    if compress is not None:
        params["compress"] = dict(compress)
    return make_certificate("coreset", terms, module, data, delta=delta, seed=seed, params=params, note=note)


register_certifier("coreset", certify_coreset)
