"""One entry point for certified bounds: ``certify(module, data, method=..., delta=..., seed=..., **params)``.

Methods registered here (``prunebound.certificate.register_certifier``; other bound modules add theirs):

* ``"occam"`` -- Occam kl bound on the deterministic (pruned, quantized) model with prior ``2^{-bits}``,
  ``bits`` always the exact length of ``prunebound.coding.encode`` (recomputed by ``verify``)
  (:func:`~prunebound.bounds.compression_bound.occam_certificate`).  ``certify(..., method="occam",
  bits=B)`` gives kind ``"occam_declared_bits"`` instead: the code length is the user's claim, and the kind is
  registered as *unverifiable* (``verify`` reports it as not checkable, never OK).
* ``"zhou2019"`` -- Zhou et al. 2019 PAC-Bayes compression bound on the noisy compressed model
  (:func:`~prunebound.bounds.compression_bound.zhou2019_certificate`).  With the default
  ``index_code="huffman"`` the mixture weights use the Huffman codeword lengths of
  ``prunebound.coding`` (default ``coder="huffman"``), whose bitstream is a header plus per-weight index
  codewords, as the bound assumes; do not use it with bits from the range coder (use ``"none"`` there).
  A declared ``bits`` or declared index codeword lengths (``index_code="equal"`` or explicit lengths) give
  the unverifiable kind ``"zhou2019_declared_code"``.
* ``"pac_bayes_gaussian"`` -- the kl bound (Langford-Seeger/Maurer) for the isotropic Gaussian posterior
  ``N(w, sigma^2 I)`` around the trained weights ``w`` (all weights and biases of the weighted layers, pruned
  coordinates included, i.e. the noisy network is dense) with prior ``N(w0, sigma_p^2 I)``, ``w0 = 0``
  (``prior_mean="zero"``) or the architecture's default initialisation from ``init_seed``
  (``prior_mean="init"``, data-independent).  ``KL = sum_i [ln(sigma_p/sigma) + (sigma^2 + (w_i - w0_i)^2) /
  (2 sigma_p^2) - 1/2]``; ``sigma_p = sigma`` when ``sigma_prior`` is None.  The stochastic training error is
  estimated from ``mc_samples`` noisy networks and certified by the sample-convergence bound; the bound is
  minimised over the ``sigmas`` grid with ``delta`` split evenly across it (and between the Monte-Carlo and
  PAC-Bayes parts by ``mc_delta_fraction``).  Dziugaite & Roy (2017) style, without optimising the posterior.

Every registered kind also has a *parameter validator* here (:func:`prunebound.certificate.set_param_validator`):
the parameters a certificate records cannot be derived from the model and data (δ, grids, seeds, prior
choices), so ``verify`` and :func:`certify` check their types, ranges, sizes (no grid or sample count that
would make a recomputation run for days) and consistency with the data before anything is computed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from prunebound.bounds.compression_bound import (
    monte_carlo_error,
    occam_declared_bits_certificate,
    occam_encoded_certificate,
    zhou2019_certificate,
    zhou2019_encoded_certificate,
)
from prunebound.bounds.pac_bayes import kl_bound, kl_gaussians, sample_convergence_bound, split_delta
from prunebound.certificate import (
    BoundTerms,
    Certificate,
    certifiers,
    make_certificate,
    param_validator,
    register_certifier,
    set_param_validator,
)
from prunebound.data import Dataset, as_dataset
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import InvalidParameterError, check_positive, check_positive_int, check_probability
from prunebound.network import Network, architecture, build_architecture, to_vector

__all__ = ["certify", "pac_bayes_gaussian_bound", "pac_bayes_gaussian_certificate"]

_DEFAULT_GAUSS_SIGMAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def _prior_mean(module: nn.Module, prior_mean: str, init_seed: int) -> torch.Tensor:
    if prior_mean == "zero":
        return torch.zeros_like(to_vector(module), dtype=torch.float64)
    if prior_mean == "init":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(init_seed))
            fresh = build_architecture(architecture(module))
        return to_vector(fresh).double()
    raise InvalidParameterError(f"prior_mean must be 'zero' or 'init'; got {prior_mean!r}")


def pac_bayes_gaussian_bound(
    module: nn.Module,
    data: Dataset,
    *,
    delta: float,
    seed: int | None = 0,
    sigmas: Sequence[float] = _DEFAULT_GAUSS_SIGMAS,
    sigma_prior: float | None = None,
    prior_mean: str = "zero",
    init_seed: int = 0,
    mc_samples: int = 500,
    mc_delta_fraction: float = 0.2,
) -> BoundTerms:
    """kl bound for ``N(w, sigma^2 I)`` around ``module``'s weights (see the module docstring)."""
    delta = check_probability("delta", delta)
    mc_samples = check_positive_int("mc_samples", mc_samples)
    sig = [check_positive("sigmas[i]", s) for s in sigmas]
    if not sig:
        raise InvalidParameterError("sigmas must be a non-empty grid")
    if sigma_prior is not None:
        check_positive("sigma_prior", sigma_prior)
    net = Network.from_module(module)
    net.check_finite()
    w = to_vector(net).double()
    w0 = _prior_mean(net.module, prior_mean, init_seed)
    d_pb, d_mc = split_delta(delta, mc_delta_fraction)
    d_each_pb, d_each_mc = d_pb / len(sig), d_mc / len(sig)
    n = len(data)
    best = None
    for si, s in enumerate(sig):
        sp = s if sigma_prior is None else float(sigma_prior)
        kl = kl_gaussians(w.numpy(), s, w0.numpy(), sp)

        def perturb(nt: Network, g: torch.Generator, s=s) -> None:
            with torch.no_grad():
                for ly in nt.layers:
                    for p in (ly.module.weight, ly.module.bias):
                        if p is not None:
                            p.add_((s * torch.randn(p.shape, generator=g, dtype=torch.float64)).to(p.dtype))

        errs = monte_carlo_error(
            net.module, data, perturb, m=mc_samples, seed=None if seed is None else int(seed) * 1000 + si
        )
        emp_hat = float(errs.mean())
        emp_up = sample_convergence_bound(emp_hat, mc_samples, delta=d_each_mc).value
        t = kl_bound(emp_up, kl, n, delta=d_each_pb)
        if best is None or t.value < best.value:
            best = BoundTerms(
                value=t.value,
                empirical=emp_hat,
                complexity=t.value - emp_hat,
                parts={
                    "kl": kl,
                    "sigma": s,
                    "sigma_prior": sp,
                    "emp_mc": emp_hat,
                    "emp_upper": emp_up,
                    "mc_samples": mc_samples,
                    "delta_pb": d_pb,
                    "delta_mc": d_mc,
                    "grid_size": len(sig),
                    "n": n,
                },
            )
    return best


def pac_bayes_gaussian_certificate(
    module: nn.Module,
    data: Dataset,
    *,
    delta: float = DEFAULT_DELTA,
    seed: int | None = 0,
    sigmas: Sequence[float] = _DEFAULT_GAUSS_SIGMAS,
    sigma_prior: float | None = None,
    prior_mean: str = "zero",
    init_seed: int = 0,
    mc_samples: int = 500,
    mc_delta_fraction: float = 0.2,
) -> Certificate:
    """Certificate (kind ``"pac_bayes_gaussian"``) for :func:`pac_bayes_gaussian_bound`."""
    terms = pac_bayes_gaussian_bound(
        module,
        data,
        delta=delta,
        seed=seed,
        sigmas=sigmas,
        sigma_prior=sigma_prior,
        prior_mean=prior_mean,
        init_seed=init_seed,
        mc_samples=mc_samples,
        mc_delta_fraction=mc_delta_fraction,
    )
    params = {
        "sigmas": [float(s) for s in sigmas],
        "sigma_prior": None if sigma_prior is None else float(sigma_prior),
        "prior_mean": prior_mean,
        "init_seed": int(init_seed),
        "mc_samples": int(mc_samples),
        "mc_delta_fraction": float(mc_delta_fraction),
    }
    return make_certificate(
        "pac_bayes_gaussian",
        terms,
        module,
        data,
        delta=delta,
        seed=seed,
        params=params,
        note="kl PAC-Bayes bound for an isotropic Gaussian posterior around the weights",
    )


# ---------------------------------------------------------------------------------------------- validators
_MAX_GRID = 1000
_MAX_MC = 1_000_000


def _fail(kind: str, key: str, value: Any, allowed: str) -> None:
    r = repr(value)
    r = r if len(r) < 80 else r[:77] + "..."
    raise InvalidParameterError(f"{kind}: parameter {key} must be {allowed}; got {r}")


def _present(kind: str, p: Mapping, key: str, *, none_ok: bool, required: bool) -> bool:
    """Whether ``p[key]`` is there to be checked (absent: fine unless ``required``; ``None``: fine if ``none_ok``)."""
    if key not in p:
        if required:
            raise InvalidParameterError(f"{kind}: parameter {key} is required")
        return False
    return not (p[key] is None and none_ok)


def _num(kind: str, p: Mapping, key: str, *, lo: float = 0.0, hi: float = math.inf, open_lo: bool = True,
         open_hi: bool = False, none_ok: bool = False, required: bool = False) -> None:
    if not _present(kind, p, key, none_ok=none_ok, required=required):
        return
    v = p[key]
    lo_s = f"{'>' if open_lo else '>='} {lo:g}"
    allowed = f"a finite number {lo_s}" + (f" and {'<' if open_hi else '<='} {hi:g}" if hi < math.inf else "")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(kind, key, v, allowed + (" or null" if none_ok else ""))
    if v < lo or (open_lo and v == lo) or v > hi or (open_hi and v == hi):
        _fail(kind, key, v, allowed)


def _int(kind: str, p: Mapping, key: str, *, lo: int, hi: int, none_ok: bool = False, required: bool = False
         ) -> None:
    if not _present(kind, p, key, none_ok=none_ok, required=required):
        return
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        _fail(kind, key, v, f"an integer in [{lo}, {hi}]")


def _choice(kind: str, p: Mapping, key: str, choices: Sequence[str]) -> None:
    if key in p and (not isinstance(p[key], str) or p[key] not in choices):
        _fail(kind, key, p[key], f"one of {list(choices)}")


def _grid(kind: str, p: Mapping, key: str, *, ints: bool = False, lo: float = 0.0, hi: float = math.inf) -> None:
    if key not in p:
        return
    g = p[key]
    if isinstance(g, (str, bytes, Mapping)) or not isinstance(g, Sequence) or not 1 <= len(g) <= _MAX_GRID:
        _fail(kind, key, g, f"a non-empty list of at most {_MAX_GRID} numbers")
    for i, v in enumerate(g):
        if ints:
            _int(kind, {f"{key}[{i}]": v}, f"{key}[{i}]", lo=int(lo), hi=int(hi))
        else:
            _num(kind, {f"{key}[{i}]": v}, f"{key}[{i}]", lo=lo, hi=hi)


def _v_occam(p: Mapping, module: nn.Module, data: Any) -> None:
    _choice("occam", p, "form", ("kl", "hoeffding"))
    if "bits" in p:
        raise InvalidParameterError(
            "occam: the code length is always computed by encoding the model; a certificate may not state "
            "bits (a declared code length is the unverifiable kind 'occam_declared_bits')")


def _v_occam_declared(p: Mapping, module: nn.Module, data: Any) -> None:
    _choice("occam_declared_bits", p, "form", ("kl", "hoeffding"))
    _num("occam_declared_bits", p, "bits", lo=0.0, open_lo=False, required=True)


def _v_mc(kind: str, p: Mapping) -> None:
    _int(kind, p, "mc_samples", lo=1, hi=_MAX_MC)
    _num(kind, p, "mc_delta_fraction", lo=0.0, hi=1.0, open_hi=True)


def _v_zhou(p: Mapping, module: nn.Module, data: Any, *, kind: str = "zhou2019") -> None:
    _grid(kind, p, "sigmas")
    _grid(kind, p, "taus")
    _v_mc(kind, p)
    _int(kind, p, "max_codebook", lo=1, hi=65536)
    if kind == "zhou2019":
        _choice(kind, p, "index_code", ("huffman", "none"))
        if "bits" in p:
            raise InvalidParameterError(
                "zhou2019: the code length is always computed by encoding the model; a certificate may not "
                "state bits (a declared code is the unverifiable kind 'zhou2019_declared_code')")
    else:
        _num(kind, p, "bits", lo=0.0, open_lo=False, none_ok=True)
        ic = p.get("index_code", "huffman")
        if isinstance(ic, str):
            _choice(kind, p, "index_code", ("huffman", "none", "equal"))
        elif not isinstance(ic, Sequence) or len(ic) > 10_000:
            _fail(kind, "index_code", ic, "'huffman', 'none', 'equal' or per-layer lists of codeword lengths")
        else:
            for i, lay in enumerate(ic):
                _grid(kind, {f"index_code[{i}]": lay}, f"index_code[{i}]", lo=0.0, hi=64.0)


def _v_pac_bayes_gaussian(p: Mapping, module: nn.Module, data: Any) -> None:
    kind = "pac_bayes_gaussian"
    _grid(kind, p, "sigmas")
    _num(kind, p, "sigma_prior", none_ok=True)
    _choice(kind, p, "prior_mean", ("zero", "init"))
    _int(kind, p, "init_seed", lo=0, hi=2**63 - 1)
    _v_mc(kind, p)


def _v_coreset(p: Mapping, module: nn.Module, data: Any) -> None:
    _int("coreset", p, "value_bits", lo=16, hi=64)
    c = p.get("compress")
    if c is not None and (not isinstance(c, Mapping) or not all(isinstance(k, str) for k in c)):
        _fail("coreset", "compress", c, "null or an object of coresets.prune arguments")


_SUBSPACE_KEYS = {"projection", "init_seed", "projection_seed", "grid", "pay_for_grid", "prior_fraction",
                  "split_seed", "prior_epochs", "prior_lr", "prior_batch_size", "d", "levels", "message",
                  "message_bits", "lr", "prior_schedule", "prior_threads", "prior_sha256", "init",
                  "architecture_sha256"}


def _v_subspace(p: Mapping, module: nn.Module, data: Any) -> None:
    kind = "subspace"
    unknown = sorted(set(p) - _SUBSPACE_KEYS)
    if unknown:
        raise InvalidParameterError(f"subspace: unknown parameters {unknown}; allowed: {sorted(_SUBSPACE_KEYS)}")
    if p.get("pay_for_grid", True) is not True:
        raise InvalidParameterError(
            "subspace: pay_for_grid is not true -- the bound does not pay for its hyperparameter grid and is "
            "invalid by construction (such certificates exist only to test the coverage harness)")
    n_params = sum(int(t.numel()) for t in module.parameters())
    _int(kind, p, "d", lo=1, hi=max(1, n_params), required=True)
    _int(kind, p, "levels", lo=1, hi=65536, required=True)
    for key in ("init_seed", "projection_seed", "split_seed"):
        _int(kind, p, key, lo=0, hi=2**63 - 1, required=key != "split_seed")
    _int(kind, p, "prior_epochs", lo=0, hi=10_000)
    _int(kind, p, "prior_batch_size", lo=1, hi=10**7)
    _num(kind, p, "prior_lr")
    _num(kind, p, "lr", none_ok=True)
    _choice(kind, p, "prior_schedule", ("constant", "cosine", "step"))
    _int(kind, p, "prior_threads", lo=1, hi=4096)
    for key in ("prior_sha256", "architecture_sha256"):
        if key in p and not (isinstance(p[key], str) and len(p[key]) == 64):
            _fail(kind, key, p[key], "a SHA-256 hex digest (64 characters)")
    _choice(kind, p, "init", ("spec", "reset_parameters"))
    _num(kind, p, "prior_fraction", lo=0.0, hi=1.0, open_lo=False, open_hi=True)
    g = p.get("grid")
    if isinstance(g, (str, Mapping)) or not isinstance(g, Sequence) or not 1 <= len(g) <= _MAX_GRID:
        _fail(kind, "grid", g, f"a non-empty list of at most {_MAX_GRID} [d, levels(, lr)] points")
    for i, pt in enumerate(g):
        if isinstance(pt, (str, Mapping)) or not isinstance(pt, Sequence) or len(pt) not in (2, 3):
            _fail(kind, f"grid[{i}]", pt, "a [d, levels] pair or a [d, levels, lr] triple")
        _int(kind, {"d": pt[0]}, "d", lo=1, hi=max(1, n_params))
        _int(kind, {"levels": pt[1]}, "levels", lo=1, hi=65536)
        if len(pt) == 3:
            _num(kind, {"lr": pt[2]}, "lr")
    msg = p.get("message")
    if not isinstance(msg, str) or len(msg) % 2 or len(msg) > 2**22:
        _fail(kind, "message", msg, "a hex string of whole bytes (at most 2 MiB)")
    try:
        bytes.fromhex(msg)
    except ValueError:
        _fail(kind, "message", msg, "a hex string")
    _int(kind, p, "message_bits", lo=1, hi=4 * len(msg), required=True)


def _v_arora(p: Mapping, module: nn.Module, data: Any) -> None:
    kind = "arora2018"
    _num(kind, p, "gamma", none_ok=True)
    _grid(kind, p, "bits_grid", ints=True, lo=2, hi=32)
    if "bits_grid" in p and len(p["bits_grid"]) > 31:
        _fail(kind, "bits_grid", p["bits_grid"], "at most 31 precisions")
    _num(kind, p, "k_scale", hi=1e6)
    _num(kind, p, "kappa", hi=1e6)
    _choice(kind, p, "method", ("binomial", "hoeffding"))


def _v_bartlett(p: Mapping, module: nn.Module, data: Any) -> None:
    _num("spectral_bartlett2017", p, "gamma", required=True)


def _v_neyshabur(p: Mapping, module: nn.Module, data: Any) -> None:
    kind = "spectral_neyshabur2018"
    _num(kind, p, "gamma", required=True)
    _num(kind, p, "B", none_ok=True)
    B = p.get("B")
    if B is not None and isinstance(data, Dataset):
        xmax = float(data.x.reshape(len(data), -1).double().norm(dim=1).max())
        if B < xmax * (1 - 1e-12):
            raise InvalidParameterError(
                f"{kind}: B={B!r} is smaller than the largest input norm {xmax:.6g} in the data; the bound "
                "assumes ||x|| <= B on the whole input distribution (omit B to use the data's maximum)")


register_certifier("occam", occam_encoded_certificate, validate=_v_occam)
register_certifier("occam_declared_bits", occam_declared_bits_certificate, verifiable=False,
                   validate=_v_occam_declared)
register_certifier("zhou2019", zhou2019_encoded_certificate, validate=_v_zhou)
register_certifier("zhou2019_declared_code", zhou2019_certificate, verifiable=False,
                   validate=lambda p, m, d: _v_zhou(p, m, d, kind="zhou2019_declared_code"))
register_certifier("pac_bayes_gaussian", pac_bayes_gaussian_certificate, validate=_v_pac_bayes_gaussian)
set_param_validator("coreset", _v_coreset)
set_param_validator("subspace", _v_subspace)
set_param_validator("arora2018", _v_arora)
set_param_validator("spectral_bartlett2017", _v_bartlett)
set_param_validator("spectral_neyshabur2018", _v_neyshabur)

def certify(
    module: nn.Module,
    data: Dataset,
    *,
    method: str = "occam",
    delta: float = DEFAULT_DELTA,
    seed: int | None = 0,
    **params,
) -> Certificate:
    """Compute a :class:`~prunebound.certificate.Certificate` with the certifier registered as ``method``.

    ``params`` are passed to the certifier (see each method's function) after its parameter validator has
    checked them.  Unknown methods raise :class:`InvalidParameterError` listing the known ones; so do
    parameters the method does not take.  ``method="occam"`` with ``bits=`` (or ``"zhou2019"`` with ``bits=``
    or declared ``index_code`` lengths) gives the unverifiable kind ``"occam_declared_bits"``
    (``"zhou2019_declared_code"``): the certificate and its summary say that the code length is a claim.
    """
    reg = certifiers()
    if method not in reg:
        raise InvalidParameterError(f"unknown certification method {method!r}; known methods: {sorted(reg)}")
    check_probability("delta", delta)
    if method == "occam" and params.get("bits") is not None:
        method = "occam_declared_bits"
    elif method == "zhou2019" and (params.get("bits") is not None or not (
            isinstance(params.get("index_code", "huffman"), str)
            and params.get("index_code", "huffman") in ("huffman", "none"))):
        method = "zhou2019_declared_code"
    params = {k: v for k, v in params.items() if not (k == "bits" and v is None)}
    fn = reg[method]
    sig = inspect.signature(fn)
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        allowed = {n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY} - {"delta", "seed"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise InvalidParameterError(
                f"method {method!r} has no parameter(s) {unknown}; its parameters are {sorted(allowed)}")
    if method != "subspace":  # the subspace prior θ0 holds every other parameter, checked equal on certify
        Network.from_module(module).require_parameters_in_layers(method=f"certify(method={method!r})")
    data = as_dataset(data)
    v = param_validator(method)
    if v is not None:
        v(params, module, data)
    return fn(module, data, delta=delta, seed=seed, **params)
