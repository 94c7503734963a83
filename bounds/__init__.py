"""Generalization bounds with certificates: PAC-Bayes core, Occam and compression bounds, one ``certify``.

Importing this package registers the certifiers ``"occam"``, ``"zhou2019"`` and ``"pac_bayes_gaussian"`` with
:func:`prunebound.certificate.register_certifier` (via :mod:`prunebound.bounds.certify`).
"""

from prunebound.bounds.certify import certify, pac_bayes_gaussian_bound, pac_bayes_gaussian_certificate
from prunebound.bounds.compression_bound import (
    QuantizedLayer,
    code_bits,
    huffman_lengths,
    mixture_kl,
    monte_carlo_error,
    occam_certificate,
    occam_compression_bound,
    quantized_layers,
    zhou2019_bound,
    zhou2019_certificate,
    zhou2019_kl,
)
from prunebound.bounds.kl import kl_bernoulli, kl_inverse_lower, kl_inverse_upper
from prunebound.bounds.pac_bayes import (
    catoni_bound,
    combine_deltas,
    kl_bound,
    kl_gaussians,
    mcallester_bound,
    occam_bound,
    sample_convergence_bound,
    split_delta,
)

__all__ = [
    "certify",
    "pac_bayes_gaussian_bound",
    "pac_bayes_gaussian_certificate",
    "QuantizedLayer",
    "code_bits",
    "huffman_lengths",
    "mixture_kl",
    "monte_carlo_error",
    "occam_certificate",
    "occam_compression_bound",
    "quantized_layers",
    "zhou2019_bound",
    "zhou2019_certificate",
    "zhou2019_kl",
    "kl_bernoulli",
    "kl_inverse_lower",
    "kl_inverse_upper",
    "catoni_bound",
    "combine_deltas",
    "kl_bound",
    "kl_gaussians",
    "mcallester_bound",
    "occam_bound",
    "sample_convergence_bound",
    "split_delta",
]
