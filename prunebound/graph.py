"""Graph capture: a ``torch.fx`` symbolic trace of any ``nn.Module``, reduced to the ops prunebound knows.

:func:`capture` traces ``module.forward`` (a class with its own ``forward``, an ``nn.Sequential`` or a subclass of
it with a custom ``forward``, residual ``x + y``, ``torch.cat``, reshapes and functional calls such as
``F.relu``) and returns a :class:`ModelGraph`: one :class:`GraphNode` per tensor-valued operation in topological
order, with the names of the nodes that feed it. Weighted layers (``Linear``, ``Conv1d``, ``Conv2d``), BatchNorm
and the supported pass-through modules are kept as leaves (``torch.fx`` does not descend into them), so a
submodule pruned with ``torch.nn.utils.prune`` (``weight_orig`` / ``weight_mask`` plus a forward pre-hook) is
recorded as one call of that very submodule.

Shape arithmetic (``x.size(0)``, ``x.shape[1]``) is kept apart as *meta* nodes: it never carries data.
Anything else raises :class:`~prunebound.errors.UnsupportedLayerError` naming the node, its type, the node that
feeds it, and what to do. :class:`~prunebound.network.Network` builds its view on this graph.
"""

from __future__ import annotations

import dataclasses
import operator
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from prunebound.errors import UnsupportedLayerError

__all__ = ["GraphNode", "ModelGraph", "capture", "capture_cached", "clear_capture_cache", "structure_stamp",
           "rebind", "WEIGHTED_KINDS", "ACTIVATION_KINDS", "SUPPORTED_OPS"]

WEIGHTED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
WEIGHTED_KINDS = ("linear", "conv1d", "conv2d")
ACTIVATION_KINDS = ("relu", "leakyrelu", "gelu", "silu", "tanh", "sigmoid")
#: kinds whose output is non-negative whatever their input
NONNEG_SOURCES = ("relu", "sigmoid")
#: kinds that map a non-negative input to a non-negative output (element selection, averaging, reshapes)
NONNEG_PRESERVING = ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "adaptiveavgpool1d",
                     "adaptiveavgpool2d", "adaptivemaxpool1d", "adaptivemaxpool2d", "flatten", "unflatten",
                     "reshape", "dropout", "identity", "getitem", "pad", "mean", "add", "cat")

_MODULE_KINDS: dict[type, str] = {
    nn.Linear: "linear", nn.Conv1d: "conv1d", nn.Conv2d: "conv2d",
    nn.BatchNorm1d: "batchnorm1d", nn.BatchNorm2d: "batchnorm2d",
    nn.ReLU: "relu", nn.LeakyReLU: "leakyrelu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.MaxPool1d: "maxpool1d", nn.MaxPool2d: "maxpool2d", nn.AvgPool1d: "avgpool1d", nn.AvgPool2d: "avgpool2d",
    nn.AdaptiveAvgPool1d: "adaptiveavgpool1d", nn.AdaptiveAvgPool2d: "adaptiveavgpool2d",
    nn.AdaptiveMaxPool1d: "adaptivemaxpool1d", nn.AdaptiveMaxPool2d: "adaptivemaxpool2d",
    nn.Flatten: "flatten", nn.Unflatten: "unflatten",
    nn.Dropout: "dropout", nn.Dropout1d: "dropout", nn.Dropout2d: "dropout",
    nn.Identity: "identity", nn.LayerNorm: "layernorm",
}
_FUNCTION_KINDS: dict[object, str] = {
    F.relu: "relu", torch.relu: "relu", F.leaky_relu: "leakyrelu", F.gelu: "gelu", F.silu: "silu",
    torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.max_pool1d: "maxpool1d", F.max_pool2d: "maxpool2d", F.avg_pool1d: "avgpool1d", F.avg_pool2d: "avgpool2d",
    F.adaptive_avg_pool1d: "adaptiveavgpool1d", F.adaptive_avg_pool2d: "adaptiveavgpool2d",
    F.adaptive_max_pool1d: "adaptivemaxpool1d", F.adaptive_max_pool2d: "adaptivemaxpool2d",
    F.dropout: "dropout", F.layer_norm: "layernorm", F.pad: "pad",
    torch.flatten: "flatten", torch.reshape: "reshape", torch.mean: "mean",
    operator.add: "add", operator.iadd: "add", torch.add: "add",
    torch.cat: "cat", torch.concat: "cat", operator.getitem: "getitem",
}
_METHOD_KINDS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "view": "reshape", "reshape": "reshape",
                 "flatten": "flatten", "contiguous": "identity", "mean": "mean", "add": "add"}
_META_METHODS = ("size", "dim")
_META_FUNCS = (operator.mul, operator.floordiv, operator.sub, operator.add, operator.getitem, getattr)

SUPPORTED_OPS = ("Linear, Conv1d, Conv2d (any groups), BatchNorm1d/2d directly after a weighted layer, ReLU, "
                 "LeakyReLU, GELU, SiLU, Tanh, Sigmoid, max/avg/adaptive pooling, Flatten, Unflatten, "
                 "reshape/view, Dropout, Identity, LayerNorm, F.relu & co., torch.flatten, x + y, torch.cat, "
                 "slicing, F.pad")
_ADVICE = ("methods that need only the parameters (Occam/Zhou/subspace bounds, quantization, magnitude-type "
           "pruning) still need a traceable graph of these ops; rewrite the op with supported layers, or wrap "
           "the unsupported part in a submodule that contains no Linear/Conv and compute it outside the model")


@dataclass(frozen=True)
class GraphNode:
    """One tensor-valued operation of a captured model.

    ``name`` is the ``torch.fx`` node name (unique), ``kind`` the normalised op name (``"linear"``,
    ``"relu"``, ``"add"``, ...; ``"input"`` for the model input), ``path`` the submodule path for module
    calls (``""`` otherwise), ``inputs`` the names of the tensor nodes that feed it (in argument order) and
    ``module`` the called submodule (``None`` for functional ops). ``target`` names the callable for messages.
    """

    name: str
    kind: str
    target: str
    inputs: tuple[str, ...]
    path: str = ""
    module: nn.Module | None = field(default=None, repr=False, compare=False)
    args: tuple = field(default=(), repr=False, compare=False)
    kwargs: tuple = field(default=(), repr=False, compare=False)  # sorted (name, value) pairs of constants

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED_KINDS


@dataclass(frozen=True)
class ModelGraph:
    """The tensor dataflow of a module: nodes in topological order, ``output`` the node the model returns."""

    nodes: tuple[GraphNode, ...]
    output: str
    input: str

    def __post_init__(self) -> None:
        users: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                users[i].append(n.name)
        object.__setattr__(self, "_by_name", {n.name: n for n in self.nodes})
        object.__setattr__(self, "_users", {k: tuple(v) for k, v in users.items()})

    def __iter__(self) -> Iterator[GraphNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> GraphNode:
        return self._by_name[name]  # type: ignore[attr-defined]

    def users(self, name: str) -> tuple[str, ...]:
        """Names of the nodes that consume ``name``'s output (the model output counts as one user)."""
        u = self._users[name]  # type: ignore[attr-defined]
        return u + (("<output>",) if name == self.output else ())

    def feeders(self, name: str) -> tuple[GraphNode, ...]:
        return tuple(self.node(i) for i in self.node(name).inputs)

    def describe(self, name: str) -> str:
        """``node 'fc2' (Linear, fed by 'relu')``: a node's place in the graph, for messages."""
        n = self.node(name)
        src = ", ".join(repr(i) for i in n.inputs) or "nothing"
        return f"node {n.name!r} ({n.target}{', module ' + repr(n.path) if n.path else ''}; fed by {src})"

    def edges(self) -> list[tuple[str, str]]:
        """Every ``(source, target)`` edge of the dataflow."""
        return [(i, n.name) for n in self.nodes for i in n.inputs]


class _Tracer(torch.fx.Tracer):
    """Keeps every ``torch.nn`` layer (and any pruned submodule) a leaf; user classes are traced through."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if type(m) in _MODULE_KINDS or hasattr(m, "weight_orig"):
            return True
        return super().is_leaf_module(m, qualname)


def _fn_name(t) -> str:
    if isinstance(t, str):
        return t
    mod = getattr(t, "__module__", "") or ""
    name = getattr(t, "__name__", repr(t))
    return f"{mod}.{name}" if mod and mod != "_operator" else f"operator.{name}"


def _flat_nodes(a) -> list[torch.fx.Node]:
    out: list[torch.fx.Node] = []
    torch.fx.node.map_arg(a, out.append)
    return out


def capture(module: nn.Module) -> ModelGraph:
    """Trace ``module`` with ``torch.fx`` and reduce the trace to a :class:`ModelGraph` (see module docstring)."""
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    bare = type(module) in _MODULE_KINDS or hasattr(module, "weight_orig")
    if bare:
        wrapped = nn.Sequential()
        wrapped.add_module("_", module)
        module = wrapped  # a bare layer: trace it as a one-layer model whose layer path is ""
    if "forward" in vars(module):
        raise UnsupportedLayerError(
            f"{type(module).__name__} has an instance attribute 'forward' that replaces its class's forward; "
            "torch.fx traces the class's forward, so the graph would describe another function: define forward "
            "in the class (or wrap the function in a new nn.Module class)")
    try:
        fx_graph = _Tracer().trace(module)
    except Exception as e:  # noqa: BLE001 - any trace failure becomes one clear error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedLayerError(
            f"torch.fx cannot trace {type(module).__name__}.forward ({type(e).__name__}: {first}); prunebound "
            "needs a static graph: remove data-dependent Python control flow (if/for on tensor values) from "
            "forward, or move it outside the model") from e
    modules = dict(module.named_modules())
    meta: set[str] = set()
    nodes: list[GraphNode] = []
    inp = out = None
    placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
    for n in fx_graph.nodes:
        if n.op == "placeholder":
            if n is not placeholders[0]:
                if n.args:  # has a default value: unused optional argument
                    meta.add(n.name)
                    continue
                raise UnsupportedLayerError(
                    f"{type(module).__name__}.forward takes more than one input ({[p.name for p in placeholders]});"
                    " prunebound models map one tensor to one tensor")
            nodes.append(GraphNode(n.name, "input", "input", ()))
            inp = n.name
            continue
        if n.op == "output":
            res = n.args[0]
            if not isinstance(res, torch.fx.Node) or res.name in meta:
                raise UnsupportedLayerError(
                    f"{type(module).__name__}.forward returns {type(res).__name__}, not one tensor; prunebound "
                    "models must return a single tensor of logits")
            out = res.name
            continue
        srcs = _flat_nodes((n.args, n.kwargs))
        tensor_in = tuple(s.name for s in srcs if s.name not in meta)
        feed = f"fed by {', '.join(repr(s) for s in tensor_in) or 'constants only'}"
        if n.op == "get_attr":
            raise UnsupportedLayerError(
                f"node {n.name!r} reads parameter/buffer {n.target!r} directly inside forward ({feed}); prunebound "
                "only sees parameters inside supported layers: use nn.Linear/nn.Conv modules (weight tying: call "
                "the same module twice)")
        if n.op == "call_module":
            m = modules[n.target]
            kind = _MODULE_KINDS.get(type(m))
            if kind is None:
                for t, k in _MODULE_KINDS.items():
                    if isinstance(m, t) and type(m).forward is t.forward:
                        kind = k
                        break
            if kind is None:
                raise UnsupportedLayerError(
                    f"layer {n.target!r} of type {type(m).__name__} (graph node {n.name!r}, {feed}) is not "
                    f"supported; supported: {SUPPORTED_OPS}. {_ADVICE}")
            if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.padding_mode != "zeros":
                raise UnsupportedLayerError(
                    f"layer {n.target!r} ({type(m).__name__}, node {n.name!r}) uses padding_mode="
                    f"{m.padding_mode!r}; only zero padding is supported")
            path = "" if bare else n.target
            nodes.append(GraphNode(n.name, kind, type(m).__name__, tensor_in, path, m, tuple(n.args[1:])))
            continue
        target = n.target
        if n.op == "call_method" and target in _META_METHODS or (
                n.op == "call_function" and target is getattr and n.args[1] in ("shape", "dtype", "device")):
            meta.add(n.name)
            continue
        if n.op == "call_function" and target in _META_FUNCS and not tensor_in:
            meta.add(n.name)  # arithmetic on sizes
            continue
        kind = (_FUNCTION_KINDS.get(target) if n.op == "call_function" else _METHOD_KINDS.get(target))
        if kind is None or not tensor_in:
            raise UnsupportedLayerError(
                f"operation {_fn_name(target)} (graph node {n.name!r}, {feed}) is not supported; supported: "
                f"{SUPPORTED_OPS}. {_ADVICE}")
        if kind in ("add",) and len(tensor_in) != 2 or kind not in ("add", "cat") and len(tensor_in) != 1:
            raise UnsupportedLayerError(
                f"operation {_fn_name(target)} (graph node {n.name!r}, {feed}) combines tensors in an unsupported "
                "way; supported merges: x + y of two tensors and torch.cat")
        if kind == "reshape":
            shape = n.args[1:] if n.op == "call_method" else n.args[1:2]
            if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
                shape = tuple(shape[0])
            if len(shape) == 2 and shape[1] == -1 and (
                    isinstance(shape[0], torch.fx.Node) and shape[0].name in meta or shape[0] == -1):
                kind = "flatten"  # x.view(x.size(0), -1)
        if kind == "flatten":
            start = n.kwargs.get("start_dim", n.args[1] if len(n.args) > 1 else 0)
            end = n.kwargs.get("end_dim", n.args[2] if len(n.args) > 2 else -1)
            if target in ("view", "reshape"):
                start, end = 1, -1
            args = (start, end)
        else:
            args = tuple(a for a in n.args[1:] if not isinstance(a, torch.fx.Node))
        kwargs = tuple(sorted((k, v) for k, v in n.kwargs.items() if not isinstance(v, torch.fx.Node)))
        nodes.append(GraphNode(n.name, kind, _fn_name(target), tensor_in, "", None, args, kwargs))
    if inp is None or out is None:
        raise UnsupportedLayerError(f"{type(module).__name__}.forward has no tensor input or no output")
    g = ModelGraph(tuple(nodes), out, inp)
    for node in g.nodes:  # drop dead branches? refuse them: they are never part of the function
        if node.name != out and not g.users(node.name) and node.kind != "input":
            raise UnsupportedLayerError(f"{g.describe(node.name)} computes a value the model never uses")
    return g


# ---------------------------------------------------------------------------------------------- capture cache
#: module -> (structure stamp, graph with ``module=None`` in every node); weak keys: the cache never keeps a
#: model alive, and holds no reference to any of its submodules (they are re-bound by path on every hit).
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PRIMITIVE = (bool, int, float, str, bytes, type(None))
_SKIP_ATTRS = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
                         "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                         "_load_state_dict_post_hooks"})


def _attr_stamp(v, depth: int = 0):
    if isinstance(v, _PRIMITIVE):
        return v
    if isinstance(v, (tuple, list)) and depth < 2 and len(v) <= 64:
        return (type(v).__name__, tuple(_attr_stamp(x, depth + 1) for x in v))
    if isinstance(v, dict) and depth < 2 and len(v) <= 64:
        return ("dict", tuple((repr(k), _attr_stamp(x, depth + 1)) for k, x in v.items()))
    if isinstance(v, torch.Tensor):
        return ("tensor", id(v), tuple(v.shape), v.dtype)
    return (type(v).__module__, type(v).__qualname__, id(v))


def structure_stamp(module: nn.Module) -> tuple:
    """Everything :func:`capture` reads from ``module``, as a hashable value (values of weights excluded): the
    module tree (paths, identities, classes, each class's and instance's ``forward``), every parameter's and
    buffer's name, identity, shape and dtype (``torch.nn.utils.prune`` renames ``weight`` to ``weight_orig``),
    the hooks registered on each submodule, and each submodule's plain attributes (flags such as
    ``self.use_skip`` or ``padding_mode`` that ``forward`` may branch on; containers of primitives by value,
    other objects by identity).  Two calls give equal stamps iff none of these changed.  Not covered: globals or
    closures that ``forward`` reads outside the module (documented in :func:`capture_cached`)."""
    rows: list = []
    for name, m in module.named_modules(remove_duplicate=False):
        d = m.__dict__
        rows.append((name, id(m), type(m), id(getattr(type(m), "forward", None)), id(d.get("forward")),
                     tuple(d.get("_forward_hooks", {}).keys()), tuple(d.get("_forward_pre_hooks", {}).keys())))
        for pname, p in d.get("_parameters", {}).items():
            rows.append(("p", pname, id(p), None if p is None else (tuple(p.shape), p.dtype)))
        for bname, b in d.get("_buffers", {}).items():
            rows.append(("b", bname, id(b), None if b is None else (tuple(b.shape), b.dtype)))
        rows.append(tuple((k, _attr_stamp(v)) for k, v in d.items() if k not in _SKIP_ATTRS and not
                          k.endswith("_hooks") and not k.endswith("_hooks_with_kwargs")
                          and not k.endswith("_hooks_always_called")))
    return tuple(rows)


def _strip(g: ModelGraph) -> ModelGraph:
    return ModelGraph(tuple(dataclasses.replace(n, module=None) for n in g.nodes), g.output, g.input)


def rebind(g: ModelGraph, module: nn.Module, *, replace_kinds: dict[str, tuple[str, str]] | None = None
           ) -> ModelGraph:
    """``g`` with every module node pointing at the submodule of ``module`` at the same path (a stripped cached
    graph, or a graph captured on a model of which ``module`` is a structural copy).  ``replace_kinds`` maps a
    node kind to a new ``(kind, target)`` (BatchNorm folded into ``nn.Identity``)."""
    modules = dict(module.named_modules())
    nodes = []
    for n in g.nodes:
        if not n.path:  # functional ops and the input (a module call always has its path: bare layers aside)
            nodes.append(n)
            continue
        m = modules[n.path]
        kind, target = (replace_kinds or {}).get(n.kind, (n.kind, n.target))
        nodes.append(dataclasses.replace(n, module=m, kind=kind, target=target))
    return ModelGraph(tuple(nodes), g.output, g.input)


def capture_cached(module: nn.Module) -> ModelGraph:
    """:func:`capture`, memoised per module (weakly keyed) and validated on every call against
    :func:`structure_stamp`: replacing a submodule or a parameter, pruning a layer, registering a hook or changing
    a plain attribute (a flag ``forward`` branches on) invalidates the entry.  A ``forward`` that reads globals or
    closures outside the module is not covered: call :func:`clear_capture_cache` after changing those, or use
    :func:`capture`.  Bare layers are not cached (their capture is cheap)."""
    if not isinstance(module, nn.Module) or type(module) in _MODULE_KINDS or hasattr(module, "weight_orig"):
        return capture(module)
    stamp = structure_stamp(module)
    hit = _CACHE.get(module)
    if hit is not None and hit[0] == stamp:
        return rebind(hit[1], module)
    g = capture(module)
    try:
        _CACHE[module] = (stamp, _strip(g))
    except TypeError:  # pragma: no cover - a module that cannot be weakly referenced: just don't cache
        pass
    return g


def clear_capture_cache() -> None:
    """Forget every cached capture."""
    _CACHE.clear()
