"""prunebound.coresets: provable sampling-based pruning with sensitivity estimates.

``prune(module, data, method=..., eps=... | sparsity=... (or keep_ratio = 1 - sparsity), delta=DEFAULT_DELTA)
-> PruneResult`` (the pruned copy in ``.module``, the :class:`Guarantee` in ``.guarantee``) with
methods CoreNet (Baykal et al. 2019), data-independent coresets (Mussay et al. 2020), SiPP (Baykal et al.
2022; ``sipp`` as published with its budget program, ``sipp_abs`` the earlier |w||a| variant), PFP
(Liebenwein et al. 2020) and the baselines uniform / magnitude (layer-wise, global); ``corenet_hybrid``,
``sipp_hybrid``, ``pfp_top`` keep heavy entries exactly and sample the rest (same guarantee), ``pfp_det`` is
deterministic PFP (no guarantee) -- :mod:`.hybrid`. One sampling core
(:mod:`.sampling`), one sensitivity module (:mod:`.sensitivity`) and one keep-ratio solver
(:mod:`.keep_ratio`: sensitivities once, ``eps`` solved on the expected kept fraction) serve all of them.

CoreNet, SiPP and PFP accept ``Linear`` and ungrouped ``Conv1d``/``Conv2d`` layers, also inside residual blocks
(a convolution is a linear map on its input patches, :mod:`.patches`). They compute on the BatchNorm-folded
network and return a copy of the user's module -- same classes, BatchNorm kept -- with
``torch.nn.utils.prune`` masks and the reweighted weights mapped back through the BatchNorm scales
(:mod:`.restore`).
"""

from prunebound.coresets.baselines import magnitude_global, magnitude_layerwise, uniform
from prunebound.coresets.corenet import corenet, corenet_constants, sparsify_layer
from prunebound.coresets.data_independent import data_independent
from prunebound.coresets.guarantee import Guarantee
from prunebound.coresets.held_out import HeldOutCheck, held_out_violations
from prunebound.coresets.hybrid import corenet_hybrid, heavy_split, hybrid_sparsify_rows, pfp_det, pfp_top, sipp_hybrid
from prunebound.coresets.keep_ratio import RowKeep, solve_eps
from prunebound.coresets.patches import layer_points
from prunebound.coresets.pfp import pfp
from prunebound.coresets.prune import METHODS, prune
from prunebound.coresets.restore import to_user_module
from prunebound.coresets.sampling import (
    bernstein_sample_size,
    corenet_sample_size,
    epsilon_sample_size,
    importance_sample,
    make_generator,
    sparsify_rows,
)
from prunebound.coresets.sensitivity import (
    abs_edge_sensitivity,
    channel_sensitivity,
    edge_sensitivity,
    edge_sensitivity_naive,
    neuron_sensitivity_data_independent,
    signed_split,
)
from prunebound.coresets.sipp import sipp
from prunebound.coresets.sipp_budget import allocate_budget, sipp_alpha, sipp_error, sipp_sample_size
from prunebound.pruning.report import PruneResult

__all__ = [
    "prune", "METHODS", "Guarantee", "PruneResult",
    "corenet", "corenet_constants", "sparsify_layer", "data_independent", "sipp", "pfp",
    "uniform", "magnitude_layerwise", "magnitude_global",
    "corenet_sample_size", "bernstein_sample_size", "epsilon_sample_size", "importance_sample",
    "sparsify_rows", "make_generator",
    "edge_sensitivity", "abs_edge_sensitivity", "edge_sensitivity_naive", "channel_sensitivity",
    "neuron_sensitivity_data_independent", "signed_split", "RowKeep", "solve_eps",
    "allocate_budget", "sipp_alpha", "sipp_error", "sipp_sample_size", "layer_points", "to_user_module",
    "HeldOutCheck", "held_out_violations",
    "corenet_hybrid", "sipp_hybrid", "pfp_top", "pfp_det", "heavy_split", "hybrid_sparsify_rows",
]
