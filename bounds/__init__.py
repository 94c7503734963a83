"""Generalization bounds with certificates: PAC-Bayes core, Occam and compression bounds, one ``certify``.

Importing this package registers the certifiers ``"occam"``, ``"zhou2019"``, ``"pac_bayes_gaussian"`` (via
:mod:`prunebound.bounds.certify`), ``"coreset"`` (:mod:`~prunebound.bounds.coreset_bound`), ``"arora2018"``
(:mod:`~prunebound.bounds.noise_stability`), ``"spectral_bartlett2017"`` / ``"spectral_neyshabur2018"``
(:mod:`~prunebound.bounds.norm_bounds`), ``"subspace"`` (:mod:`~prunebound.bounds.subspace`) and
``"grid_best"`` (:mod:`~prunebound.bounds.grid`, the best of a grid with the union bound paid) and ``"pbb"``
(:mod:`~prunebound.bounds.pbb`, PAC-Bayes with backprop) and ``"occam_permutation"``
(:mod:`~prunebound.bounds.permutation`) with
:func:`prunebound.certificate.register_certifier`; :func:`certify` dispatches to all of them.
"""

# modules whose import registers further certifiers ("coreset", "arora2018", "spectral_*", "subspace")
from prunebound.bounds import (  # noqa: F401
    coreset_bound,
    grid,
    noise_stability,
    norm_bounds,
    pbb,
    permutation,
    subspace,
)
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
    "coreset_bound",
    "noise_stability",
    "norm_bounds",
    "subspace",
    "grid",
    "pbb",
    "permutation",
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
