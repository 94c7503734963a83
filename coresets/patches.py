"""A convolution as a linear map on input patches: the input points of edge-level coresets on conv layers.

A ``Conv2d`` with ``groups = 1``, weight ``W`` of shape ``(C_out, C_in, k_h, k_w)`` and bias ``b`` computes at
output position ``p``

    z_{i,p}(x) = sum_{c, u, v} W_{i,c,u,v} x_{c, p + (u, v)} + b_i = < W_i , P_p(x) > + b_i,

where ``P_p(x)`` (length ``fan_in = C_in k_h k_w``, channel-major as ``W.reshape(C_out, fan_in)``) is the
(padded, strided, dilated) input patch read at ``p``: ``torch.nn.functional.unfold``. So the layer is the
``nn.Linear`` map ``W.reshape(C_out, fan_in)`` applied to every patch, and each (sample, output position)
pair is one input point ``a = P_p(x)`` of that linear map (Baykal et al., ICLR 2019, and Liebenwein et al.,
ICLR 2020, treat a conv filter the same way: an output channel at one position is a neuron whose inputs are
one patch). A ``Conv1d`` is the same on ``(C, 1, L)`` maps. Edge-level coresets (CoreNet, SiPP) need nothing
else: their sensitivities ``max_{points} w_ij a_j / sum_k w_ik a_k`` run over ``|S| * P`` patch points
instead of ``|S|`` vectors, and one sampled weight matrix serves every position (the weights are shared).

Patches keep the input's sign: a patch of a ReLU output (also ``relu(add(...))`` inside a residual block) is
non-negative, and padding adds zeros (``padding_mode="zeros"``) or copies of input values (reflect, replicate,
circular), so it stays non-negative. A conv on signed inputs (the first conv on raw images) gets signed
patches and is handled like a signed-input ``Linear`` layer (the ``a = a+ - a-`` split of
:func:`~prunebound.coresets.sensitivity.signed_split`).

Grouped convolutions are not a single linear map on one patch (each group sees its own channels): refused
in :func:`~prunebound.coresets.prune.prepare`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunebound.errors import UnsupportedLayerError
from prunebound.network import Layer, Network

__all__ = ["layer_points", "layer_input", "require_patch_layers", "neurons_per_layer"]

PATCH_KINDS = ("linear", "conv1d", "conv2d")


def require_patch_layers(net: Network, method: str) -> None:
    """Refuse layers that are not ``Linear`` or ungrouped ``Conv1d``/``Conv2d`` (the maps that are linear on one
    input vector or patch)."""
    for ly in net.layers:
        if ly.kind not in PATCH_KINDS:
            raise UnsupportedLayerError(
                f"{method} supports Linear and Conv1d/Conv2d layers; layer {ly.path!r} is {ly.kind}")
        if ly.groups != 1:
            raise UnsupportedLayerError(
                f"{method}: layer {ly.path!r} is a grouped convolution (groups={ly.groups}); edge sensitivities "
                "need a convolution that is one linear map on each input patch (groups=1)")


def _pads(m: nn.Module) -> tuple[int, ...]:
    """``F.pad`` amounts (last dimension first) that the conv applies before a padding-free convolution."""
    pads = getattr(m, "_reversed_padding_repeated_twice", None)
    if pads is not None:
        return tuple(int(p) for p in pads)
    pad = m.padding if isinstance(m.padding, tuple) else (m.padding,) * (m.weight.dim() - 2)
    out: list[int] = []
    for p in reversed(pad):
        out += [int(p), int(p)]
    return tuple(out)


def _as_2d(ly: Layer, inputs: torch.Tensor) -> tuple[torch.Tensor, tuple, tuple, tuple]:
    """Padded input as ``(N, C, H, W)`` plus kernel, dilation and stride (a Conv1d map gets ``H = 1``)."""
    m = ly.module
    pads = _pads(m)
    x = inputs
    if any(pads):
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        x = F.pad(x, pads, mode=mode)
    k, d, s = tuple(m.kernel_size), tuple(m.dilation), tuple(m.stride)
    if ly.kind == "conv1d":
        return x[:, :, None, :], (1, k[0]), (1, d[0]), (1, s[0])
    return x, k, d, s


def layer_points(ly: Layer, inputs: torch.Tensor) -> torch.Tensor:
    """The layer's input points as a ``(n_points, fan_in)`` matrix, so that the layer's pre-activations are
    ``points @ ly.weight_matrix().T + bias``.

    ``Linear``: the inputs themselves (flattened to 2-D). ``Conv1d``/``Conv2d``: every (sample, output position)
    patch, sample-major (``n_points = N * P``), channel-major within a patch, padding as the layer pads.
    """
    if ly.kind == "linear":
        return inputs.reshape(-1, inputs.shape[-1]) if inputs.dim() != 2 else inputs
    if ly.kind not in PATCH_KINDS or ly.groups != 1:
        raise UnsupportedLayerError(f"layer {ly.path!r} ({ly.kind}, groups={ly.groups}) is not a linear map on "
                                    "input patches")
    x, k, d, s = _as_2d(ly, inputs)
    cols = F.unfold(x, k, dilation=d, stride=s)  # (N, fan_in, P)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


class _Stop(Exception):
    """Raised by the hook of :func:`layer_input` once the layer's input is recorded."""


def layer_input(net: Network, index: int, x: torch.Tensor) -> torch.Tensor:
    """Input of layer ``index`` on ``x`` (no grad, eval mode), running ``net.module`` only up to that layer.

    The same tensor as ``net.trace(x).inputs[index]`` without storing every layer's input; a shared layer
    (called more than once) gets all its calls concatenated, as :meth:`Network.trace` does."""
    ly = net.layers[index]
    if ly.shared:
        return net.trace(x).inputs[index]
    got: list[torch.Tensor] = []

    def hook(mod, inp):
        got.append(inp[0].detach())
        raise _Stop

    h = ly.module.register_forward_pre_hook(hook)
    was_training = net.module.training
    net.module.eval()
    try:
        with torch.no_grad():
            net.module(x.to(ly.weight.dtype))
    except _Stop:
        pass
    finally:
        h.remove()
        net.module.train(was_training)
    return got[0]


def neurons_per_layer(net: Network, x: torch.Tensor) -> list[int]:
    """Neurons of every layer: ``out_features`` for ``Linear``, ``C_out * P`` (channels times output positions
    per sample) for a convolution, read from the layer outputs on one sample of ``x``. A conv output channel
    at one position is one neuron of the per-neuron guarantee, so these are the counts in ``delta / eta``."""
    tr = net.trace(x[:1])
    return [int(p[0].numel()) if ly.kind != "linear" else ly.fan_out for ly, p in zip(net.layers, tr.preacts)]
