"""Classic pruning methods from the literature behind one API (issue 7).

Every method is ``name(module, data=None, *, sparsity=..., seed=0, **paper_params) -> PruneResult``: it
deep-copies ``module`` (the caller's model is never modified) and returns an ordinary ``nn.Module`` pruned
with ``torch.nn.utils.prune`` masks in :attr:`PruneResult.module`, the per-layer and total sparsity read from
the masks, and what was retrained. Unstructured methods meet ``sparsity`` (fraction of weights) exactly, up to
rounding of one weight per layer; structured ones (``apoz``, ``neuron_merging``, ``lasso_channel``;
``unit="neuron"``) remove exactly ``round(sparsity * n)`` neurons/channels of every hidden ReLU layer.

=================  ======================================================  =============================
name               paper                                                   module
=================  ======================================================  =============================
random             baseline                                                :mod:`.random_pruning`
magnitude          Han et al. 2015, Learning both weights and connections  :mod:`.magnitude`
weight_decay       Hanson & Pratt 1989, biases for minimal networks        :mod:`.weight_decay`
lottery            Frankle & Carbin 2019, IMP (+ late rewinding)           :mod:`.lottery`
deep_compression   Han et al. 2016, prune/quantize/Huffman                 :mod:`.deep_compression`
obd                LeCun et al. 1990, Optimal Brain Damage                 :mod:`.obd`
apoz               Hu et al. 2016, Network Trimming                        :mod:`.apoz`
neuron_merging     Srinivas & Babu 2015, data-free                         :mod:`.neuron_merging`
lasso_channel      He et al. 2017, LASSO channel pruning                   :mod:`.lasso_channel`
snip               Lee et al. 2019, SNIP                                   :mod:`.snip`
rigl               Evci et al. 2020, RigL                                  :mod:`.rigl`
transformed_l1     Ma et al. 2019, transformed l1 (+ group l1)             :mod:`.transformed_l1`
=================  ======================================================  =============================
"""

from __future__ import annotations

from collections.abc import Callable

from prunebound.errors import InvalidParameterError
from prunebound.pruning.apoz import apoz, apoz_scores
from prunebound.pruning.deep_compression import deep_compression
from prunebound.pruning.lasso_channel import lasso_cd, lasso_channel
from prunebound.pruning.lottery import lottery
from prunebound.pruning.magnitude import magnitude
from prunebound.pruning.neuron_merging import neuron_merging
from prunebound.pruning.obd import hessian_diagonal, obd, obd_saliency
from prunebound.pruning.random_pruning import random_pruning
from prunebound.pruning.report import PruneReport, PruneResult
from prunebound.pruning.rigl import cosine_update_fraction, erk_densities, rigl
from prunebound.pruning.snip import snip, snip_scores
from prunebound.pruning.transformed_l1 import group_l1_penalty, tl1_penalty, transformed_l1
from prunebound.pruning.weight_decay import hanson_pratt_penalty, weight_decay

REGISTRY: dict[str, Callable[..., PruneResult]] = {
    "random": random_pruning,
    "magnitude": magnitude,
    "weight_decay": weight_decay,
    "lottery": lottery,
    "deep_compression": deep_compression,
    "obd": obd,
    "apoz": apoz,
    "neuron_merging": neuron_merging,
    "lasso_channel": lasso_channel,
    "snip": snip,
    "rigl": rigl,
    "transformed_l1": transformed_l1,
}

#: methods that need ``data`` (the others run data-free)
NEEDS_DATA = frozenset(REGISTRY) - {"random", "magnitude", "neuron_merging"}
#: structured methods (``sparsity`` = fraction of neurons/channels removed per hidden layer)
STRUCTURED = frozenset({"apoz", "neuron_merging", "lasso_channel"})


def get(name: str) -> Callable[..., PruneResult]:
    """The method registered under ``name`` (raises :class:`InvalidParameterError` listing the known
    names)."""
    if name not in REGISTRY:
        raise InvalidParameterError(f"unknown pruning method {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def prune(module, data=None, *, method: str, **kw) -> PruneResult:
    """Dispatch: ``prune(module, data, method="snip", sparsity=0.9)`` == ``REGISTRY["snip"](module, data,
    ...)``."""
    return get(method)(module, data, **kw)


__all__ = [
    "REGISTRY",
    "NEEDS_DATA",
    "STRUCTURED",
    "PruneResult",
    "PruneReport",
    "get",
    "prune",
    "random_pruning",
    "magnitude",
    "weight_decay",
    "hanson_pratt_penalty",
    "lottery",
    "deep_compression",
    "obd",
    "hessian_diagonal",
    "obd_saliency",
    "apoz",
    "apoz_scores",
    "neuron_merging",
    "lasso_channel",
    "lasso_cd",
    "snip",
    "snip_scores",
    "rigl",
    "erk_densities",
    "cosine_update_fraction",
    "transformed_l1",
    "tl1_penalty",
    "group_l1_penalty",
]
