"""One entry point for certified bounds: ``certify(module, data, method=..., delta=..., seed=..., **params)``.

Methods registered here (``prunebound.certificate.register_certifier``; other bound modules add theirs):

* ``"occam"`` -- Occam kl bound on the deterministic (pruned, quantized) model with prior ``2^{-bits}``,
  ``bits`` from ``prunebound.coding.code_length_bits`` unless given
  (:func:`~prunebound.bounds.compression_bound.occam_certificate`).
* ``"zhou2019"`` -- Zhou et al. 2019 PAC-Bayes compression bound on the noisy compressed model
  (:func:`~prunebound.bounds.compression_bound.zhou2019_certificate`).  With the default
  ``index_code="huffman"`` the mixture weights use the Huffman codeword lengths of
  ``prunebound.coding`` (default ``coder="huffman"``), whose bitstream is a header plus per-weight index
  codewords, as the bound assumes; do not use it with bits from the range coder (use ``"none"`` there).
* ``"pac_bayes_gaussian"`` -- the kl bound (Langford-Seeger/Maurer) for the isotropic Gaussian posterior
  ``N(w, sigma^2 I)`` around the trained weights ``w`` (all weights and biases of the weighted layers, pruned
  coordinates included, i.e. the noisy network is dense) with prior ``N(w0, sigma_p^2 I)``, ``w0 = 0``
  (``prior_mean="zero"``) or the architecture's default initialisation from ``init_seed``
  (``prior_mean="init"``, data-independent).  ``KL = sum_i [ln(sigma_p/sigma) + (sigma^2 + (w_i - w0_i)^2) /
  (2 sigma_p^2) - 1/2]``; ``sigma_p = sigma`` when ``sigma_prior`` is None.  The stochastic training error is
  estimated from ``mc_samples`` noisy networks and certified by the sample-convergence bound; the bound is
  minimised over the ``sigmas`` grid with ``delta`` split evenly across it (and between the Monte-Carlo and
  PAC-Bayes parts by ``mc_delta_fraction``).  Dziugaite & Roy (2017) style, without optimising the posterior.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunebound.bounds.compression_bound import monte_carlo_error, occam_certificate, zhou2019_certificate
from prunebound.bounds.pac_bayes import kl_bound, kl_gaussians, sample_convergence_bound, split_delta
from prunebound.certificate import BoundTerms, Certificate, certifiers, make_certificate, register_certifier
from prunebound.data import Dataset, as_dataset
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
    delta: float = 0.05,
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


register_certifier("occam", occam_certificate)
register_certifier("zhou2019", zhou2019_certificate)
register_certifier("pac_bayes_gaussian", pac_bayes_gaussian_certificate)


def certify(
    module: nn.Module,
    data: Dataset,
    *,
    method: str = "occam",
    delta: float = 0.05,
    seed: int | None = 0,
    **params,
) -> Certificate:
    """Compute a :class:`~prunebound.certificate.Certificate` with the certifier registered as ``method``.

    ``params`` are passed to the certifier (see each method's function).  Unknown methods raise
    :class:`InvalidParameterError` listing the known ones.
    """
    reg = certifiers()
    if method not in reg:
        raise InvalidParameterError(f"unknown certification method {method!r}; known methods: {sorted(reg)}")
    check_probability("delta", delta)
    Network.from_module(module).require_parameters_in_layers(method=f"certify(method={method!r})")
    return reg[method](module, as_dataset(data), delta=delta, seed=seed, **params)
