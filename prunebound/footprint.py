"""What a model costs: parameters, non-zeros, bytes stored, FLOPs and measured CPU latency (issue 15).

:func:`report` reads everything through :class:`~prunebound.network.Network` and works on any traceable model:

* ``parameters`` / ``nonzero``: weights and biases of the weighted layers (a shared module counted once);
* ``bytes_dense`` = ``parameters`` × element size; ``bytes_sparse`` = ``nonzero`` × (element size + 4), a
  coordinate list with one 32-bit index per stored value; ``bytes_encoded`` = length of
  :func:`prunebound.coding.encode` (``None`` with ``encode_error`` when the model cannot be coded);
* ``flops_dense``: multiply-adds × 2 of every call of every weighted layer for one example, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the model itself; ``flops_effective`` scales each layer's
  count by the fraction of its weights that are non-zero (unstructured sparsity skips exactly those products);
* ``latency_ms``: median wall time of ``repeats`` forward passes on ``example_input`` (CPU, no grad) after one
  untimed warm-up pass. Measured, machine dependent, never asserted in tests;
* with ``compact=True`` also the numbers of the compacted model (:func:`prunebound.compact.compact`: dead
  neurons, channels and filters physically removed): ``compact_parameters``, ``compact_flops`` (its dense FLOPs,
  what a dense kernel really executes) and ``compact_latency_ms`` (measured alternately with the original, so both
  medians see the same machine load). ``None`` when not requested.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunebound.errors import DataError, PruneboundError, check_positive_int
from prunebound.network import Network, count_nonzero, count_parameters

__all__ = ["ModelReport", "report"]


@dataclass(frozen=True)
class ModelReport:
    parameters: int
    nonzero: int
    bytes_dense: int
    bytes_sparse: int
    bytes_encoded: int | None
    flops_dense: int
    flops_effective: float
    latency_ms: float
    per_layer_flops: dict
    encode_error: str | None = None
    compact_parameters: int | None = None
    compact_flops: int | None = None
    compact_latency_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _layer_flops(net: Network, x: torch.Tensor) -> dict[str, int]:
    """Dense FLOPs per weighted layer for one example: 2 × out-elements × fan-in, summed over calls."""
    tr = net.trace(x[:1])  # a shared layer's calls are stacked along the batch: z.numel() counts every call
    return {ly.path: int(2 * z.numel() * ly.fan_in) for ly, z in zip(net.layers, tr.preacts)}


def _flops(module: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(x[:1])
    return int(fc.get_total_flops())


def report(model: nn.Module | Network, example_input: torch.Tensor, *, repeats: int = 20,
           compact: bool = False, encode: bool = True) -> ModelReport:
    """The footprint of ``model`` on inputs shaped like ``example_input`` (see module docstring);
    ``encode=False`` skips the (slower) coding step: ``bytes_encoded`` is then ``None``."""
    net = Network.from_module(model)
    if not isinstance(example_input, torch.Tensor) or example_input.dim() == 0 or example_input.shape[0] == 0:
        raise DataError("example_input must be a non-empty batch tensor (N, ...)")
    repeats = check_positive_int("repeats", repeats)
    x = example_input.to(net.layers[0].weight.dtype)
    params, nz = count_parameters(net), count_nonzero(net)
    elem = net.layers[0].weight.element_size()
    per = _layer_flops(net, x)
    was = net.module.training
    net.module.eval()
    try:
        with torch.no_grad():
            with FlopCounterMode(display=False) as fc:
                net.module(x[:1])
            dense = int(fc.get_total_flops())
            small = None
            if compact:
                from prunebound.compact import compact as _compact

                small = _compact(net.module, x)[0].eval()
            net.module(x)  # warm-up (kernel selection, allocations), not timed
            if small is not None:
                small(x)
            times, ctimes = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                net.module(x)
                times.append((time.perf_counter() - t0) * 1e3)
                if small is not None:
                    t0 = time.perf_counter()
                    small(x)
                    ctimes.append((time.perf_counter() - t0) * 1e3)
    finally:
        net.module.train(was)
    eff = sum(per[ly.path] * float((ly.weight != 0).sum()) / ly.n_weights for ly in net.layers)
    enc, err = None, None
    try:
        if encode:
            from prunebound.coding import encode as _encode

            enc = len(_encode(net.module))
    except PruneboundError as e:
        err = str(e).splitlines()[0]
    extra = {}
    if small is not None:
        extra = {"compact_parameters": count_parameters(small), "compact_flops": _flops(small, x),
                 "compact_latency_ms": statistics.median(ctimes)}
    return ModelReport(params, nz, params * elem, nz * (elem + 4), enc, dense, eff, statistics.median(times), per,
                       err, **extra)
