"""Structural assumptions of the methods' theorems, checked on a :class:`~prunebound.network.Network`'s graph.

Each method states what its theorem needs and calls one of these before it computes anything; a violation raises
:class:`~prunebound.errors.AssumptionError` naming the method, the assumption and the offending graph node.

* :func:`require_relu_chain` — a single chain ``x → W_1 → ReLU → W_2 → … → W_d`` (pooling / reshapes allowed
  inside the activation block): the layer-wise perturbation analysis of Arora et al. (2018, Sec. 4) and the
  spectral / norm bounds (Bartlett et al. 2017; Neyshabur et al. 2018) compose layer Lipschitz constants along
  one path, which residual adds, concatenations, shared layers or other activations break.
* :func:`require_bias_free_relu_mlp` — the target network of the strong lottery ticket constructions (Malach et
  al. 2020; Pensia et al. 2020; Orseau et al. 2020) is a bias-free fully-connected ReLU network.
* :func:`require_nonnegative_inputs` — the sensitivity-sampling coresets (Baykal et al. 2019, CoreNet; Liebenwein
  et al. 2020, PFP) bound each layer's output through importance sampling of non-negative input activations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebound.errors import AssumptionError

if TYPE_CHECKING:
    from prunebound.network import Network

__all__ = ["chain_violation", "require_chain", "require_relu_chain", "require_bias_free_relu_mlp",
           "require_nonnegative_inputs", "RELU_CHAIN", "BIAS_FREE_MLP", "NONNEG_INPUTS", "CHAIN"]

RELU_CHAIN = ("a single chain of weighted layers with exactly one ReLU between consecutive layers and none after "
              "the last (no branches, residual adds, concatenations, shared layers or other activations)")
BIAS_FREE_MLP = ("a bias-free fully-connected ReLU network (Linear layers without bias or with zero bias, ReLU "
                 "between them)")
NONNEG_INPUTS = ("non-negative layer inputs (each pruned layer's input is a ReLU output, possibly through "
                 "pooling, reshapes, dropout, add or cat of non-negative tensors)")

_PRE_OK = ("identity", "dropout", "flatten", "unflatten")
_BETWEEN_OK = ("relu", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "flatten", "unflatten", "dropout",
               "identity")
_FC_BETWEEN_OK = ("relu", "dropout", "identity")


def chain_violation(net: Network) -> tuple[str, str] | None:
    """``(where, why)`` for the first place the graph is not one path, else ``None``."""
    g = net.graph
    for n in g.nodes:
        if len(n.inputs) > 1:
            return g.describe(n.name), f"{n.kind} merges {len(n.inputs)} tensors"
        if len(g.users(n.name)) > 1:
            return g.describe(n.name), f"its output feeds {len(g.users(n.name))} nodes {list(g.users(n.name))}"
    for ly in net.layers:
        if ly.shared:
            return f"layer {ly.path!r}", f"the module is called {len(ly.calls)} times (weight tying)"
    return None


CHAIN = ("a single chain of weighted layers, each unit read only by the next weighted layer (no branches, "
         "residual adds, concatenations, shared layers or grouped convolutions)")


def require_chain(net: Network, *, method: str) -> None:
    """Raise :class:`AssumptionError` unless the graph is one path of ungrouped layers (structured unit removal:
    a unit's outgoing weights are the columns of the next weighted layer)."""
    bad = chain_violation(net)
    if bad is not None:
        raise AssumptionError(method, CHAIN, bad[0], bad[1])
    for ly in net.layers:
        if ly.groups != 1:
            raise AssumptionError(method, CHAIN, net.graph.describe(ly.node), f"groups={ly.groups}")


def require_relu_chain(net: Network, *, method: str, linear_only: bool = False, allow_grouped: bool = False
                       ) -> None:
    """Raise :class:`AssumptionError` unless ``net`` is a ReLU chain (see module docstring).

    ``linear_only``: every weighted layer must be ``Linear`` and only ReLU / Dropout / Identity may sit between
    layers. ``allow_grouped``: accept convolutions with ``groups > 1``.
    """
    assumption = "a fully-connected ReLU chain (" + RELU_CHAIN + ")" if linear_only else RELU_CHAIN
    bad = chain_violation(net)
    if bad is not None:
        raise AssumptionError(method, assumption, bad[0], bad[1])
    g = net.graph
    between = _FC_BETWEEN_OK if linear_only else _BETWEEN_OK
    weighted = [n for n in g.nodes if n.weighted]
    seen_first = False
    relus = 0
    for n in g.nodes:
        if n.kind == "input":
            continue
        if n.weighted:
            if seen_first and relus != 1:
                raise AssumptionError(method, assumption, g.describe(n.name),
                                      f"{relus} ReLU(s) between it and the previous weighted layer; need exactly 1")
            if linear_only and n.kind != "linear":
                raise AssumptionError(method, assumption, g.describe(n.name), f"a {n.kind} layer")
            if getattr(n.module, "groups", 1) != 1 and not allow_grouped:
                raise AssumptionError(method, assumption, g.describe(n.name),
                                      f"a grouped convolution (groups={n.module.groups}) is not supported here")
            seen_first, relus = True, 0
            continue
        allowed = between if seen_first else _PRE_OK
        if n is not None and n.kind not in allowed:
            where = "between weighted layers" if seen_first else "before the first weighted layer"
            raise AssumptionError(method, assumption, g.describe(n.name),
                                  f"{n.kind} {where}; allowed there: {', '.join(allowed)}")
        if net.op_module(n.name) is None:
            raise AssumptionError(method, assumption, g.describe(n.name),
                                  f"functional {n.kind} with these arguments cannot be replayed as a layer; use the "
                                  "torch.nn module instead")
        if n.kind == "relu":
            relus += 1
    if relus:
        raise AssumptionError(method, assumption, g.describe(weighted[-1].name),
                              "the last weighted layer must output logits (no ReLU after it)")


def require_bias_free_relu_mlp(net: Network, *, method: str) -> None:
    """Raise :class:`AssumptionError` unless ``net`` is a bias-free fully-connected ReLU chain."""
    require_relu_chain(net, method=method, linear_only=True)
    for ly in net.layers:
        if ly.bias is not None and bool((ly.bias != 0).any()):
            raise AssumptionError(method, BIAS_FREE_MLP, net.graph.describe(ly.node),
                                  "the layer has a non-zero bias (build it with bias=False)")


def require_nonnegative_inputs(net: Network, *, method: str, skip_first: bool = True) -> None:
    """Raise :class:`AssumptionError` unless every weighted layer (but the first, with ``skip_first``) has a
    provably non-negative input (:attr:`~prunebound.network.Layer.input_nonnegative`)."""
    for ly in net.layers[1 if skip_first else 0:]:
        if not ly.input_nonnegative:
            g = net.graph
            bad = next(c for c in ly.calls if not _nonneg_map(net)[g.node(c).inputs[0]])
            src = g.node(g.node(bad).inputs[0])
            why = f"its input comes from {src.kind} node {src.name!r}, which can be negative"
            origin = _signed_origin(net, src.name)
            if origin != src.name:
                o = g.node(origin)
                why += f" (through {src.kind}: {o.kind} node {o.name!r} is not a ReLU/Sigmoid output)"
            raise AssumptionError(method, NONNEG_INPUTS, g.describe(bad), why)


def _nonneg_map(net: Network) -> dict[str, bool]:
    from prunebound.network import _nonnegative

    return _nonnegative(net.graph)


def _signed_origin(net: Network, name: str) -> str:
    """The first node, walking back from ``name`` through sign-preserving ops (pooling, reshapes, ``add``,
    ``cat``, ...), whose output is not provably non-negative and that does not merely pass a sign on."""
    from prunebound.graph import NONNEG_PRESERVING

    g, nonneg = net.graph, _nonneg_map(net)
    cur = name
    while g.node(cur).kind in NONNEG_PRESERVING:
        signed = [i for i in g.node(cur).inputs if not nonneg[i]]
        if not signed:
            break
        cur = signed[0]
    return cur
