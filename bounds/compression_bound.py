"""Compression bounds for pruned + quantized networks: plain Occam and Zhou et al. (2019).

**Occam** (deterministic).  A compressed network ``h`` with a prefix-free code of ``|s|`` bits has prior
mass ``2^{-|s|}``; with probability ``>= 1 - delta``,
``L(h) <= kl^{-1}(emp(h), (|s| ln 2 + ln(1/delta)) / n)`` (:func:`~prunebound.bounds.pac_bayes.occam_bound`).

**Zhou et al. 2019** ("Non-vacuous generalization bounds at the ImageNet scale: a PAC-Bayesian compression
approach", ICLR 2019, Section 4, Theorem 4.3).  Prior: pick a code ``s`` with probability ``2^{-|s|}``,
decode it to a network whose coded weights (kept by the mask, or non-zero if unpruned) take values in
per-layer codebooks, and add Gaussian noise ``N(0, tau_l^2)`` to each coded weight.  Posterior: the
compressed network ``s*`` with noise ``N(0, sigma_l^2)`` on each coded weight.  Lower-bounding the prior by
the codes that differ from ``s*`` only in the codebook index of each coded weight gives (their Thm 4.3)

    KL(rho || pi) <= |s*| ln 2
                     + sum_l sum_{i in layer l} KL( N(w_i, sigma_l^2) || sum_j u_lj N(c_lj, tau_l^2) ),

where the mixture is *unnormalised*.  In the paper every index has the same code length, so ``u_lj = 1``;
we allow per-symbol codeword lengths ``ell_lj`` (Huffman-coded indices), in which case
``u_lj = 2^(ell_{l,a_i} - ell_lj)`` (changing one index from ``a_i`` to ``j`` changes the code length by
``ell_j - ell_{a_i}``).  Assumption (stated; only sanity-checked by requiring ``|s*| >= sum_i ell_{a_i}``):
the code is a header that does not depend on the index assignment followed by per-weight index codewords.

The empirical risk of the noisy posterior is estimated by Monte Carlo (``mc_samples`` seeded noisy networks)
and certified with the sample-convergence bound; the final value is
``kl^{-1}(emp_upper, (KL + ln(2 sqrt(n) / delta_pb)) / n)`` (Maurer's kl form rather than the Catoni form of
the paper's code; both are valid).

Noise scales: ``sigma_l = sigma_rel * Delta_l`` and ``tau_l = tau_rel * Delta_l`` with ``Delta_l`` the mean
spacing of layer l's codebook, ``(max c - min c) / (r - 1)`` (``|c|`` when ``r = 1``) -- a function of the
code, so the prior stays data-independent.  The bound is minimised over a grid of ``(sigma_rel, tau_rel)``
pairs; ``delta_pb`` is split evenly over the pairs and ``delta_mc`` over the sigma values (union bounds).

Deviation from the paper: the per-weight mixture KL is computed by trapezoid quadrature with node
doubling until two successive values agree to 1e-9 (conservatively adding the difference), instead of Monte
Carlo, so that certificates are deterministic and reproducible.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import logsumexp
from torch import nn

from prunebound.bounds.pac_bayes import kl_bound, occam_bound, sample_convergence_bound, split_delta
from prunebound.certificate import BoundTerms, Certificate, make_certificate
from prunebound.coding import huffman_code_lengths
from prunebound.data import Dataset
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    check_positive,
    check_positive_int,
    check_probability,
)
from prunebound.network import Network, clone, is_pruned, remove_masks
from prunebound.train import check_compatible, evaluate

__all__ = [
    "QuantizedLayer",
    "quantized_layers",
    "huffman_lengths",
    "mixture_kl",
    "zhou2019_kl",
    "monte_carlo_error",
    "code_bits",
    "occam_compression_bound",
    "zhou2019_bound",
    "occam_certificate",
    "occam_encoded_certificate",
    "occam_declared_bits_certificate",
    "zhou2019_certificate",
    "zhou2019_encoded_certificate",
]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class QuantizedLayer:
    """The quantization structure of one weighted layer: the coded positions (``positions``, a bool tensor of
    the weight's shape: the mask support of a pruned layer, the non-zero weights otherwise -- the same rule as
    :func:`prunebound.coding.encode`), their distinct values (``codebook``), how many coded weights take each
    value (``counts``) and the mean codebook spacing ``scale``."""

    path: str
    codebook: np.ndarray
    counts: np.ndarray
    scale: float
    positions: torch.Tensor = field(repr=False, compare=False, default=None)

    @property
    def k(self) -> int:
        return int(self.counts.sum())

    def to_dict(self) -> dict:
        return {"path": self.path, "codebook": self.codebook.tolist(), "counts": self.counts.tolist(),
                "scale": self.scale}


def quantized_layers(module: nn.Module | Network, *, max_codebook: int = 256) -> list[QuantizedLayer]:
    """Read the codebook of each weighted layer from the effective (masked) weights at its coded positions.

    Raises :class:`InvalidParameterError` if a layer has more than ``max_codebook`` distinct coded values
    (the model is not quantized: run ``prunebound.coding.quantize_module`` first).
    """
    net = Network.from_module(module)
    net.check_finite()
    out = []
    for ly in net.layers:
        eff = ly.weight.detach()
        pos = (ly.mask.detach() != 0) if is_pruned(ly.module) else (eff != 0)
        vals_t = eff[pos].double().cpu().numpy()
        vals, counts = np.unique(vals_t, return_counts=True)
        if vals.size > max_codebook:
            raise InvalidParameterError(
                f"layer {ly.path!r} has {vals.size} distinct coded weights > max_codebook={max_codebook}; "
                "the Zhou et al. bound needs a quantized model (prunebound.coding.quantize_module)"
            )
        if vals.size >= 2:
            scale = float((vals[-1] - vals[0]) / (vals.size - 1))
        elif vals.size == 1 and vals[0] != 0:
            scale = float(abs(vals[0]))
        else:
            scale = 1.0
        out.append(QuantizedLayer(ly.path, vals, counts.astype(np.int64), scale, pos.cpu().clone()))
    return out


def huffman_lengths(counts: Sequence[int]) -> np.ndarray:
    """Codeword lengths of a Huffman code for symbol ``counts`` (deterministic tie-breaking by index).

    One symbol gets length 0 (nothing to transmit); zero counts get the length they would get with count 0.
    """
    c = [int(x) for x in counts]
    r = len(c)
    if r == 0:
        return np.zeros(0, dtype=np.int64)
    if r == 1:
        return np.zeros(1, dtype=np.int64)
    heap = [(c[i], i, (i,)) for i in range(r)]
    heapq.heapify(heap)
    lengths = np.zeros(r, dtype=np.int64)
    tie = r
    while len(heap) > 1:
        a = heapq.heappop(heap)
        b = heapq.heappop(heap)
        for s in a[2] + b[2]:
            lengths[s] += 1
        heapq.heappush(heap, (a[0] + b[0], tie, a[2] + b[2]))
        tie += 1
    return lengths


def _coder_huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Codeword lengths the encoder uses (:func:`prunebound.coding.huffman_code_lengths`; unused symbols get 0)."""
    return np.asarray(huffman_code_lengths(counts), dtype=np.float64)


def _quad_mixture_kl(
    centers: np.ndarray, sigma: float, tau: float, log_w: np.ndarray, nodes: int
) -> np.ndarray:
    """Trapezoid rule in ``z = (x - c_a) / sigma`` on ``[-12, 12]`` (Gaussian tail mass < 1e-32)."""
    z = np.linspace(-12.0, 12.0, nodes)
    h = z[1] - z[0]
    wq = h * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    wq[0] *= 0.5
    wq[-1] *= 0.5
    const = -math.log(tau) - 0.5 * math.log(2 * math.pi)
    out = np.empty(centers.size)
    for a in range(centers.size):
        x = centers[a] + sigma * z  # (nodes,)
        comp = -0.5 * ((x[:, None] - centers[None, :]) / tau) ** 2 + const + log_w[a][None, :]
        out[a] = float((logsumexp(comp, axis=1) * wq).sum())
    neg_entropy = -0.5 * math.log(2 * math.pi * math.e * sigma**2)
    return neg_entropy - out


def mixture_kl(
    centers: Sequence[float],
    *,
    sigma: float,
    tau: float,
    symbol_bits: Sequence[float] | None = None,
    tol: float = 1e-9,
) -> np.ndarray:
    """``D_a = KL(N(c_a, sigma^2) || sum_j u_{aj} N(c_j, tau^2))`` for every codebook entry ``a`` (nats).

    ``u_{aj} = 2^{ell_a - ell_j}`` with ``ell = symbol_bits`` (all ones when ``None``).  The mixture is an
    unnormalised measure, so ``D_a`` may be negative (that is the gain of Zhou et al.'s Theorem 4.3).
    Trapezoid quadrature on [-12 sigma, 12 sigma], doubling the node count until successive values agree to
    ``tol``; the returned value adds the last difference (conservative).
    """
    c = np.asarray(centers, dtype=np.float64).reshape(-1)
    sigma = check_positive("sigma", sigma)
    tau = check_positive("tau", tau)
    if c.size == 0:
        return np.zeros(0)
    if symbol_bits is None:
        log_w = np.zeros((c.size, c.size))
    else:
        ell = np.asarray(symbol_bits, dtype=np.float64).reshape(-1)
        if ell.shape != c.shape:
            raise InvalidParameterError(f"symbol_bits has {ell.size} entries; the codebook has {c.size}")
        log_w = (ell[:, None] - ell[None, :]) * _LN2
    nodes = 1001
    prev = _quad_mixture_kl(c, sigma, tau, log_w, nodes)
    while nodes < 128_001:
        nodes = 2 * nodes - 1  # nested grids: every old node is kept
        cur = _quad_mixture_kl(c, sigma, tau, log_w, nodes)
        diff = np.abs(cur - prev)
        if np.all(diff <= tol * np.maximum(1.0, np.abs(cur))):
            return cur + diff
        prev = cur
    raise InvalidParameterError(
        f"mixture KL quadrature did not converge (sigma={sigma}, tau={tau}); the ratio of noise scales "
        "to the "
        "codebook spacing is too extreme"
    )


def zhou2019_kl(
    layers: Sequence[QuantizedLayer],
    bits: float,
    *,
    sigma_rel: float,
    tau_rel: float,
    index_code: str | Sequence[Sequence[float]] = "huffman",
) -> tuple[float, dict]:
    """Upper bound on ``KL(rho || pi)`` of Zhou et al. 2019, Theorem 4.3 (see the module docstring).

    ``index_code``: ``"equal"`` (all codeword lengths equal: the paper's setting), ``"huffman"`` (per-layer
    Huffman lengths of the index counts), ``"none"`` (prior component of ``s*`` only, no mixture; always valid
    for any prefix code), or explicit per-layer codeword lengths.  Returns ``(kl, parts)``.
    """
    bits = check_positive("bits", bits, allow_zero=True)
    sigma_rel = check_positive("sigma_rel", sigma_rel)
    tau_rel = check_positive("tau_rel", tau_rel)
    total_gain = 0.0
    index_bits = 0.0
    for i, ly in enumerate(layers):
        if ly.k == 0:
            continue
        s, t = sigma_rel * ly.scale, tau_rel * ly.scale
        if isinstance(index_code, str):
            if index_code == "equal":
                ell = np.full(
                    ly.codebook.size, math.ceil(math.log2(ly.codebook.size)) if ly.codebook.size > 1 else 0.0
                )
            elif index_code == "huffman":
                ell = _coder_huffman_lengths(ly.counts)
            elif index_code == "none":
                # single component: KL(N(c, s^2) || N(c, t^2)), closed form
                d = 0.5 * ((s / t) ** 2 - 1.0 - 2.0 * math.log(s / t))
                total_gain += d * ly.k
                continue
            else:
                raise InvalidParameterError(
                    f"index_code must be 'equal', 'huffman', 'none' or per-layer lengths; got {index_code!r}"
                )
        else:
            if len(index_code) != len(layers):
                raise InvalidParameterError(
                    f"index_code has {len(index_code)} layers; model has {len(layers)}"
                )
            ell = np.asarray(index_code[i], dtype=np.float64)
        index_bits += float((ell * ly.counts).sum())
        d = mixture_kl(ly.codebook, sigma=s, tau=t, symbol_bits=ell)
        total_gain += float((d * ly.counts).sum())
    if index_code != "none" and bits < index_bits - 1e-9:
        raise InvalidParameterError(
            f"bits={bits} is smaller than the {index_bits:.0f} bits that the index codewords alone "
            f"need under index_code={index_code!r}; the code cannot have that layout (pass the code's "
            "real codeword lengths)"
        )
    kl = max(0.0, bits * _LN2 + total_gain)
    return kl, {"bits": bits, "bits_nats": bits * _LN2, "noise_kl": total_gain, "index_bits": index_bits}


def monte_carlo_error(
    module: nn.Module,
    data: Dataset,
    perturb: Callable[[Network, torch.Generator], None],
    *,
    m: int,
    seed: int | None,
    batch_size: int = 8192,
) -> np.ndarray:
    """Training errors of ``m`` perturbed copies of ``module``: ``perturb(net, generator)`` edits a dense
    (masks made permanent) copy's weights in place, starting from the original each time.  Returns an array
    of ``m`` errors in [0, 1]; reproducible for a given ``seed``."""
    m = check_positive_int("m", m)
    check_compatible(module, data)
    work = clone(module)
    net = Network.from_module(work)
    remove_masks(net)
    net = Network.from_module(net.module)
    orig = [
        (ly.weight.detach().clone(), None if ly.bias is None else ly.bias.detach().clone())
        for ly in net.layers
    ]
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    errs = np.empty(m)
    y = data.y
    for k in range(m):
        with torch.no_grad():
            for ly, (w, b) in zip(net.layers, orig):
                ly.module.weight.copy_(w)
                if b is not None:
                    ly.module.bias.copy_(b)
        perturb(net, g)
        out = net.forward(data.x, batch_size=batch_size)
        errs[k] = float((out.argmax(1) != y).double().mean())
    return errs


def code_bits(module: nn.Module, bits: float | None = None) -> float:
    """The code length in bits: ``bits`` if given, else
    ``prunebound.coding.code_length_bits(module).total_bits``."""
    if bits is not None:
        return check_positive("bits", bits, allow_zero=True)
    try:
        from prunebound.coding import code_length_bits
    except ImportError as e:  # pragma: no cover - depends on the coding module being present
        raise InvalidParameterError("prunebound.coding is not available; pass bits= explicitly") from e
    return float(code_length_bits(module).total_bits)


def occam_compression_bound(
    module: nn.Module, data: Dataset, *, delta: float, bits: float | None = None, form: str = "kl"
) -> BoundTerms:
    """Occam bound for the deterministic compressed ``module`` (code length from ``prunebound.coding`` or
    ``bits``): ``kl^{-1}(emp, (bits ln 2 + ln(1/delta)) / n)`` (``form="hoeffding"``: square-root form)."""
    b = code_bits(module, bits)
    emp = evaluate(module, data).error
    return occam_bound(emp, b, len(data), delta=delta, form=form)


_DEFAULT_SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5)
_DEFAULT_TAUS = (0.1, 0.2, 0.3, 0.5, 1.0)


def zhou2019_bound(
    module: nn.Module,
    data: Dataset,
    *,
    delta: float,
    seed: int | None = 0,
    bits: float | None = None,
    sigmas: Sequence[float] = _DEFAULT_SIGMAS,
    taus: Sequence[float] = _DEFAULT_TAUS,
    mc_samples: int = 500,
    mc_delta_fraction: float = 0.2,
    index_code: str | Sequence[Sequence[float]] = "huffman",
    max_codebook: int = 256,
) -> BoundTerms:
    """Zhou et al. (2019) PAC-Bayes compression bound for the quantized ``module`` (see the module docstring).

    ``sigmas``/``taus``: grids of posterior/prior noise scales relative to each layer's codebook spacing.
    ``delta`` is split into ``delta_mc = mc_delta_fraction * delta`` (Monte-Carlo error, over the sigma
    grid) and ``delta_pb`` (PAC-Bayes, over all pairs).  ``parts`` report the chosen pair and every term.
    """
    delta = check_probability("delta", delta)
    mc_samples = check_positive_int("mc_samples", mc_samples)
    sig = [check_positive("sigmas[i]", s) for s in sigmas]
    tau = [check_positive("taus[i]", t) for t in taus]
    if not sig or not tau:
        raise InvalidParameterError("sigmas and taus must be non-empty grids")
    n = len(data)
    b = code_bits(module, bits)
    layers = quantized_layers(module, max_codebook=max_codebook)
    d_pb, d_mc = split_delta(delta, mc_delta_fraction)
    d_pb_each = d_pb / (len(sig) * len(tau))
    d_mc_each = d_mc / len(sig)
    by_path = {ly.path: ly for ly in layers}
    best: tuple[float, BoundTerms, dict] | None = None
    for si, s_rel in enumerate(sig):

        def perturb(net: Network, g: torch.Generator, s_rel=s_rel) -> None:
            with torch.no_grad():
                for ly in net.layers:
                    w = ly.module.weight
                    q = by_path[ly.path]
                    noise = torch.randn(w.shape, generator=g, dtype=torch.float64)
                    w.add_((noise * (s_rel * q.scale) * q.positions.to(w.device)).to(w.dtype))

        errs = monte_carlo_error(
            module, data, perturb, m=mc_samples, seed=None if seed is None else int(seed) * 1000 + si
        )
        emp_hat = float(errs.mean())
        emp_up = sample_convergence_bound(emp_hat, mc_samples, delta=d_mc_each).value
        for t_rel in tau:
            kl, kparts = zhou2019_kl(layers, b, sigma_rel=s_rel, tau_rel=t_rel, index_code=index_code)
            terms = kl_bound(emp_up, kl, n, delta=d_pb_each)
            if best is None or terms.value < best[0]:
                parts = {
                    **kparts,
                    "kl": kl,
                    "sigma_rel": s_rel,
                    "tau_rel": t_rel,
                    "emp_mc": emp_hat,
                    "emp_upper": emp_up,
                    "mc_samples": mc_samples,
                    "delta_pb": d_pb,
                    "delta_mc": d_mc,
                    "grid_size": len(sig) * len(tau),
                    "n": n,
                }
                best = (terms.value, terms, parts)
    assert best is not None
    _, terms, parts = best
    return BoundTerms(
        value=terms.value, empirical=parts["emp_mc"], complexity=terms.value - parts["emp_mc"], parts=parts
    )


_DECLARED_NOTE = (
    "UNVERIFIABLE: the code length bits={bits} was declared by the user, not computed by the encoder; "
    "verify cannot check it. The bound holds only if a prefix-free code fixed before seeing the data "
    "describes this model in that many bits."
)


def occam_certificate(
    module: nn.Module,
    data: Dataset,
    *,
    delta: float = DEFAULT_DELTA,
    seed: int | None = None,
    bits: float | None = None,
    form: str = "kl",
) -> Certificate:
    """Certificate for :func:`occam_compression_bound`.

    Without ``bits`` (the normal case) the code length is the exact length of
    :func:`prunebound.coding.encode` and the kind is ``"occam"``: :func:`~prunebound.certificate.verify`
    re-encodes the model.  With a user-declared ``bits`` the kind is ``"occam_declared_bits"``, registered as
    *unverifiable*: the certificate, its summary and ``verify`` all say that the code length is a claim.
    """
    terms = occam_compression_bound(module, data, delta=delta, bits=bits, form=form)
    params: dict = {"form": form}
    if bits is None:
        kind, note, verifiable = "occam", "Occam bound on the deterministic compressed model (prior 2^-bits, " \
            "bits = exact length of prunebound.coding.encode)", True
    else:
        params["bits"] = float(bits)
        kind, note, verifiable = "occam_declared_bits", _DECLARED_NOTE.format(bits=float(bits)), False
    return make_certificate(kind, terms, module, data, delta=delta, seed=seed, params=params, note=note,
                            verifiable=verifiable)


def occam_encoded_certificate(module: nn.Module, data: Dataset, *, delta: float = DEFAULT_DELTA,
                              seed: int | None = None, form: str = "kl") -> Certificate:
    """The ``"occam"`` certifier: code length always from the encoder (a ``bits`` parameter is refused)."""
    return occam_certificate(module, data, delta=delta, seed=seed, form=form)


def occam_declared_bits_certificate(module: nn.Module, data: Dataset, *, delta: float = DEFAULT_DELTA,
                                    seed: int | None = None, bits: float, form: str = "kl") -> Certificate:
    """The ``"occam_declared_bits"`` certifier (unverifiable): the Occam bound with a user-declared code length."""
    return occam_certificate(module, data, delta=delta, seed=seed, bits=bits, form=form)


def zhou2019_certificate(
    module: nn.Module,
    data: Dataset,
    *,
    delta: float = DEFAULT_DELTA,
    seed: int | None = 0,
    bits: float | None = None,
    sigmas: Sequence[float] = _DEFAULT_SIGMAS,
    taus: Sequence[float] = _DEFAULT_TAUS,
    mc_samples: int = 500,
    mc_delta_fraction: float = 0.2,
    index_code: str | Sequence[Sequence[float]] = "huffman",
    max_codebook: int = 256,
) -> Certificate:
    """Certificate for :func:`zhou2019_bound`; the risk bounded is the noisy posterior's.

    Kind ``"zhou2019"`` when every code length comes from the encoder (``bits=None`` and ``index_code``
    ``"huffman"`` or ``"none"``); otherwise ``"zhou2019_declared_code"``, registered as unverifiable.
    """
    if len(data) == 0:  # pragma: no cover - Dataset forbids it
        raise DataError("empty data")
    terms = zhou2019_bound(
        module,
        data,
        delta=delta,
        seed=seed,
        bits=bits,
        sigmas=sigmas,
        taus=taus,
        mc_samples=mc_samples,
        mc_delta_fraction=mc_delta_fraction,
        index_code=index_code,
        max_codebook=max_codebook,
    )
    params = {
        "sigmas": [float(s) for s in sigmas],
        "taus": [float(t) for t in taus],
        "mc_samples": mc_samples,
        "mc_delta_fraction": float(mc_delta_fraction),
        "index_code": index_code
        if isinstance(index_code, str)
        else [list(map(float, x)) for x in index_code],
        "max_codebook": max_codebook,
    }
    kind, note, verifiable = "zhou2019", "Zhou et al. 2019 PAC-Bayes compression bound (risk of the noisy " \
        "posterior; code lengths from prunebound.coding's encoder)", True
    if bits is not None or not (isinstance(index_code, str) and index_code in ("huffman", "none")):
        # a declared code length, or index codeword lengths that are not the encoder's: a claim
        if bits is not None:
            params["bits"] = float(bits)
        kind, verifiable = "zhou2019_declared_code", False
        note = ("UNVERIFIABLE: Zhou et al. 2019 bound with a user-declared code (bits="
                f"{'encoder' if bits is None else float(bits)}, index_code={params['index_code']!r}); verify "
                "cannot check that the code has these lengths")
    return make_certificate(kind, terms, module, data, delta=delta, seed=seed, params=params, note=note,
                            verifiable=verifiable)


def zhou2019_encoded_certificate(module: nn.Module, data: Dataset, *, delta: float = DEFAULT_DELTA,
                                 seed: int | None = 0,
                                 sigmas: Sequence[float] = _DEFAULT_SIGMAS, taus: Sequence[float] = _DEFAULT_TAUS,
                                 mc_samples: int = 500, mc_delta_fraction: float = 0.2,
                                 index_code: str = "huffman", max_codebook: int = 256) -> Certificate:
    """The ``"zhou2019"`` certifier: code lengths from the encoder only (``bits`` refused; ``index_code``
    ``"huffman"`` -- the encoder's codeword lengths -- or ``"none"``)."""
    if not (isinstance(index_code, str) and index_code in ("huffman", "none")):
        raise InvalidParameterError(
            f"the zhou2019 certifier takes index codeword lengths from the encoder: index_code must be "
            f"'huffman' or 'none', got {index_code!r} (declared lengths: kind 'zhou2019_declared_code')")
    return zhou2019_certificate(module, data, delta=delta, seed=seed, sigmas=sigmas, taus=taus,
                                mc_samples=mc_samples, mc_delta_fraction=mc_delta_fraction,
                                index_code=index_code, max_codebook=max_codebook)
