"""The common model interface: one view of a feed-forward network used by every prunebound method.

The flow is ``nn.Module`` → graph (:func:`prunebound.graph.capture`, a ``torch.fx`` symbolic trace) →
:class:`Network` → a method. Any module whose ``forward`` traces to the supported ops works: ``nn.Sequential``
chains, classes with their own ``forward``, residual ``x + y``, ``torch.cat``, reshapes, functional calls.
A :class:`Network` exposes

* ``layers``: the weighted layers (``Linear``, ``Conv1d``, ``Conv2d``) in topological order as :class:`Layer`
  records (path, kind, weight, bias, fan-in/out, the activation that follows, whether its input is
  non-negative); a module called twice (weight tying) is one layer;
* ``graph``: the captured dataflow (which node feeds which, residual adds, concatenations);
* ``forward(x)`` and ``trace(x)``: every weighted layer's input and pre-activation in one batched pass;
* the assumption checks methods call before they run (:meth:`Network.require_relu_chain`,
  :meth:`Network.require_bias_free_relu_mlp`, :meth:`Network.require_nonnegative_inputs`);
* flat parameter vectors (:func:`to_vector` / :func:`load_vector`), used by PAC-Bayes noise and subspaces;
* pruning masks that follow ``torch.nn.utils.prune`` conventions (``weight_orig`` * ``weight_mask``) on the
  user's own submodules, so a pruned model stays an ordinary PyTorch model (:func:`apply_masks`,
  :func:`masks_of`, :func:`remove_masks`);
* parameter counts (:func:`count_parameters`, :func:`count_nonzero`, :func:`sparsity`);
* :func:`clone` (a deep copy that works on pruned modules) and :func:`refresh_masked_weights` (recompute the cached
  ``weight_orig * weight_mask`` after editing ``weight_orig`` in place);
* re-exports of the small ``nn.Sequential`` zoo (:func:`mlp`, :func:`lenet300_100`, :func:`lenet5`,
  :func:`conv1d_small`), which live in :mod:`prunebound.zoo_models`.

Supported ops: see :data:`prunebound.graph.SUPPORTED_OPS`. ``BatchNorm1d/2d`` directly after a weighted layer
is folded into it (:func:`fold_batchnorm`, on a copy). Anything else raises
:class:`~prunebound.errors.UnsupportedLayerError` naming the graph node, its type and what feeds it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.utils.prune as tprune
from torch import nn

from prunebound import assumptions as _assume
from prunebound.errors import (
    AssumptionError,
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_finite_module,
    check_positive_int,
)
from prunebound.graph import (
    ACTIVATION_KINDS,
    NONNEG_PRESERVING,
    NONNEG_SOURCES,
    GraphNode,
    ModelGraph,
    capture_cached,
    rebind,
)

__all__ = [
    "Layer",
    "Network",
    "Trace",
    "SparsityReport",
    "fold_batchnorm",
    "clone",
    "refresh_masked_weights",
    "to_vector",
    "load_vector",
    "apply_masks",
    "masks_of",
    "remove_masks",
    "is_pruned",
    "count_parameters",
    "count_nonzero",
    "sparsity",
    "report",
    "compact",
    "architecture",
    "build_architecture",
    "mlp",
    "lenet300_100",
    "lenet5",
    "conv1d_small",
]

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
PASSTHROUGH = (
    nn.ReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Identity,
)
BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)
_KIND = {nn.Linear: "linear", nn.Conv1d: "conv1d", nn.Conv2d: "conv2d"}
_FOLDED_KINDS = {"batchnorm1d": ("identity", "Identity"), "batchnorm2d": ("identity", "Identity")}


def _get(module: nn.Module, path: str) -> nn.Module:
    return module.get_submodule(path) if path else module


def _equivalent_module(node: GraphNode) -> nn.Module | None:
    """A module computing what a functional node computes (for chain methods that apply ops one by one)."""
    if node.module is not None:
        return node.module
    if node.kind == "relu":
        return nn.ReLU()
    if node.kind == "flatten":
        return nn.Flatten(*node.args)
    if node.kind in ("dropout", "identity"):
        return nn.Identity()
    pools = {"maxpool1d": nn.MaxPool1d, "maxpool2d": nn.MaxPool2d, "avgpool1d": nn.AvgPool1d,
             "avgpool2d": nn.AvgPool2d}
    if node.kind in pools and len(node.args) <= 4 and node.target.startswith("torch.nn.functional"):
        kw = {k: v for k, v in node.kwargs if k != "inplace"}
        try:  # F.max_pool2d / F.avg_pool2d take (kernel_size, stride, padding, ...) in the module's order
            return pools[node.kind](*node.args, **kw)
        except TypeError:
            return None
    return None


@dataclass(frozen=True)
class Layer:
    """One weighted layer of a :class:`Network`.

    ``weight`` is the *effective* weight (``weight_orig * weight_mask`` when pruned), shaped as in PyTorch:
    ``(out, in)`` for ``Linear`` and ``(out, in / groups, *kernel)`` for convolutions. ``fan_in`` is
    ``in_features`` or ``in_channels / groups * prod(kernel)``; ``fan_out`` is ``out_features`` or
    ``out_channels``. ``activation`` is the first activation (``"relu"``, ``"gelu"``, ...) on the single-user path
    from this layer up to the next weighted layer or merge (``add``/``cat``), else ``None``; ``ops_after`` lists
    the op kinds on that path. ``node`` is the graph node of its first call, ``calls`` every call (more than one
    for a shared module). ``input_nonnegative`` is True when every call's input is provably ``>= 0``: a ReLU
    (or Sigmoid) output, possibly through pooling, reshapes, dropout, slicing, padding, ``add`` or ``cat`` of
    non-negative tensors.

    Where that path ends is recorded precisely: ``consumers`` names the graph nodes that read the output at its
    end (the next weighted layer, a merge ``add``/``cat``, several nodes for a branch, ``"<output>"`` for the model
    output), and ``after_merge`` has one ``(merge node, activation)`` pair per consumer that is an ``add`` or
    ``cat`` or reaches one through shape-only ops (an identity, subsampling or padding shortcut): the first
    activation on the single-user path after that merge (through further merges and pass-through ops), ``None``
    when a weighted layer, a branch or the output comes first. Example, a ResNet basic block
    ``conv2 → bn2 (folded) → add(shortcut) → relu``: ``activation`` is ``None``, ``ops_after == ("identity",)``,
    ``consumers == ("add",)`` and ``after_merge == (("add", "relu"),)`` (both for the first call of a shared
    module). ``activation`` keeps its meaning (the activation applied to this layer's own pre-activation); a ReLU
    after an ``add`` acts on a sum, not on it. Non-negativity of inputs is decided on the whole graph
    (``input_nonnegative``), so a layer reading ``relu(add(...))`` has a non-negative input.
    """

    index: int
    path: str
    kind: str
    module: nn.Module = field(repr=False, compare=False)
    activation: str | None
    ops_after: tuple[str, ...]
    node: str = ""
    calls: tuple[str, ...] = ()
    input_nonnegative: bool = False
    consumers: tuple[str, ...] = ()
    after_merge: tuple[tuple[str, str | None], ...] = ()

    @property
    def is_output(self) -> bool:
        """True when this layer's output (after ``ops_after``) is the model output itself, unmerged."""
        return self.consumers == ("<output>",)

    @property
    def feeds_merge(self) -> bool:
        """True when this layer's output (after ``ops_after``) enters an ``add`` or ``cat``."""
        return bool(self.after_merge)

    @property
    def weight(self) -> torch.Tensor:
        m = self.module
        if is_pruned(m):  # recompute: the cached ``m.weight`` is stale until the next forward pass
            return m.weight_orig * m.weight_mask
        return m.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.module.bias

    @property
    def mask(self) -> torch.Tensor | None:
        return getattr(self.module, "weight_mask", None)

    @property
    def groups(self) -> int:
        return int(getattr(self.module, "groups", 1))

    @property
    def shared(self) -> bool:
        """True when the module is called more than once in ``forward`` (weight tying)."""
        return len(self.calls) > 1

    @property
    def fan_in(self) -> int:
        w = self.module.weight
        return int(math.prod(w.shape[1:]))

    @property
    def fan_out(self) -> int:
        return int(self.module.weight.shape[0])

    @property
    def n_weights(self) -> int:
        return int(self.module.weight.numel())

    @property
    def n_params(self) -> int:
        b = self.module.bias
        return self.n_weights + (int(b.numel()) if b is not None else 0)

    def weight_matrix(self) -> torch.Tensor:
        """The effective weight as a ``(fan_out, fan_in)`` matrix (a view for contiguous unpruned weights)."""
        return self.weight.reshape(self.fan_out, self.fan_in)


@dataclass
class Trace:
    """Result of :meth:`Network.trace`: for weighted layer ``i``, ``inputs[i]`` is what it received
    and ``preacts[i]`` what it produced (before its activation); ``output`` is the network output.
    For a shared layer (called ``k`` times) the ``k`` calls are concatenated along the batch dimension."""

    inputs: list[torch.Tensor]
    preacts: list[torch.Tensor]
    output: torch.Tensor


def _ops_after(g: ModelGraph, name: str) -> tuple[list[str], str | None, str]:
    """Op kinds on the single-user path after node ``name``, up to a weighted layer, a merge or a branch; the
    first activation on it; and the path's last node (whose users are the layer's consumers)."""
    ops: list[str] = []
    cur = name
    while True:
        users = g.users(cur)
        if len(users) != 1 or users[0] == "<output>":
            break
        u = g.node(users[0])
        if u.weighted or len(u.inputs) != 1:
            break
        ops.append(u.kind)
        cur = u.name
    act = next((k for k in ops if k in ACTIVATION_KINDS), None)
    return ops, act, cur


def _merge_reached(g: ModelGraph, consumer: str) -> str | None:
    """The ``add``/``cat`` node that ``consumer`` is, or that it reaches through a branch of shape-only ops
    (an identity / pooling / padding shortcut: single input, single user, no activation), else ``None``."""
    cur = consumer
    while cur != "<output>":
        n = g.node(cur)
        if n.kind in ("add", "cat"):
            return cur
        users = g.users(cur)
        if n.weighted or n.kind in ACTIVATION_KINDS or len(n.inputs) != 1 or len(users) != 1:
            return None
        cur = users[0]
    return None


def _activation_after_merge(g: ModelGraph, merge: str) -> str | None:
    """The first activation on the single-user path after merge node ``merge`` (passing further merges and
    pass-through ops); ``None`` when a weighted layer, a branch or the model output comes first."""
    cur = merge
    while True:
        users = g.users(cur)
        if len(users) != 1 or users[0] == "<output>":
            return None
        u = g.node(users[0])
        if u.weighted:
            return None
        if u.kind in ACTIVATION_KINDS:
            return u.kind
        cur = u.name


def _nonnegative(g: ModelGraph) -> dict[str, bool]:
    """For every node: is its output provably non-negative? (one topological pass)"""
    out: dict[str, bool] = {}
    for n in g.nodes:
        if n.kind in NONNEG_SOURCES:
            out[n.name] = True
        elif n.kind in NONNEG_PRESERVING:
            out[n.name] = all(out[i] for i in n.inputs) and n.kind != "pad" or (
                n.kind == "pad" and out[n.inputs[0]] and float(_pad_value(n)) >= 0)
        else:
            out[n.name] = False
    return out


def _pad_value(n: GraphNode) -> float:
    v = dict(n.kwargs).get("value", n.args[2] if len(n.args) > 2 else None)
    return 0.0 if v is None else float(v)


class Network:
    """A validated, read-only view of a feed-forward ``nn.Module``, built on its captured graph.

    Build it with :meth:`from_module`. The wrapped module is ``self.module``; if the original contained
    BatchNorm layers, ``self.module`` is a folded *copy* (see :func:`fold_batchnorm`).
    """

    def __init__(self, module: nn.Module, *, _validated: bool = False, _graph: ModelGraph | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise UnsupportedLayerError(f"module must be a torch.nn.Module; got {type(module).__name__}")
        g = _graph if _graph is not None else capture_cached(module)
        bns = [n for n in g.nodes if n.kind.startswith("batchnorm")]
        if bns:
            raise UnsupportedLayerError(
                f"BatchNorm present ({g.describe(bns[0].name)}): use Network.from_module, which folds it")
        self.module = module
        self.graph: ModelGraph = g
        nonneg = _nonnegative(g)
        calls: dict[int, list[GraphNode]] = {}
        for n in g.nodes:
            if n.weighted:
                calls.setdefault(id(n.module), []).append(n)
        if not calls:
            raise UnsupportedLayerError("module has no Linear/Conv layer; nothing to analyse")
        layers: list[Layer] = []
        for j, ns in enumerate(calls.values()):
            first = ns[0]
            ops, act, end = _ops_after(g, first.name)
            nn_in = all(nonneg[c.inputs[0]] for c in ns)
            consumers = g.users(end)
            reached = (_merge_reached(g, c) for c in consumers)
            merges = tuple((m, _activation_after_merge(g, m)) for m in reached if m is not None)
            layers.append(Layer(j, first.path, first.kind, first.module, act, tuple(ops), first.name,
                                tuple(c.name for c in ns), nn_in, consumers, merges))
        self.layers: list[Layer] = layers
        self._op_modules = {n.name: _equivalent_module(n) for n in g.nodes if n.kind != "input"}
        self._leaves = [(n.path or n.name, self._op_modules[n.name]) for n in g.nodes if n.kind != "input"]

    @classmethod
    def from_module(cls, module: nn.Module | Network) -> Network:
        """Capture the graph of ``module`` and wrap it. BatchNorm layers are folded into a copy first."""
        if isinstance(module, Network):
            return module
        if not isinstance(module, nn.Module):
            raise UnsupportedLayerError(f"module must be a torch.nn.Module; got {type(module).__name__}")
        g = capture_cached(module)  # memoised per module, re-validated against its structure on every call
        if any(n.kind.startswith("batchnorm") for n in g.nodes):
            module = fold_batchnorm(module, _graph=g)
            # the folded copy's graph is g with each BatchNorm now an nn.Identity: re-bound, not re-traced
            g = rebind(g, module, replace_kinds=_FOLDED_KINDS)
        return cls(module, _validated=True, _graph=g)

    # ------------------------------------------------------------------ basic facts
    @property
    def leaves(self) -> list[tuple[str, nn.Module | None]]:
        """Every op ``(path or node name, module)`` in topological order (weighted layers and the ops between
        them). Functional ops get an equivalent module where one exists (``F.relu`` → ``nn.ReLU``,
        ``torch.flatten`` / ``x.view(x.size(0), -1)`` → ``nn.Flatten``), else ``None``; adds and concatenations
        have ``None`` — only a chain (:meth:`require_relu_chain`) can be replayed op by op."""
        return list(self._leaves)

    @property
    def nodes(self) -> tuple[GraphNode, ...]:
        return self.graph.nodes

    def op_module(self, name: str) -> nn.Module | None:
        """The module that computes graph node ``name`` (the called submodule, or an equivalent module for a
        functional op such as ``F.relu`` / ``F.max_pool2d``; ``None`` where there is none, e.g. ``add``)."""
        return self._op_modules[name]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{ly.kind}{tuple(ly.weight.shape)}" for ly in self.layers)
        return f"Network({shapes})"

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def input_features(self) -> int:
        """Channels (conv) or features (linear) expected by the first weighted layer."""
        m = self.layers[0].module
        return m.in_features if isinstance(m, nn.Linear) else m.in_channels

    @property
    def output_features(self) -> int:
        return self.layers[-1].fan_out

    @property
    def is_chain(self) -> bool:
        """True when the dataflow is one path (no branch, add or cat) and no layer is shared."""
        return _assume.chain_violation(self) is None

    @property
    def extra_parameters(self) -> list[str]:
        """Names of the module's parameters that belong to no weighted layer (e.g. a ``LayerNorm``'s affine
        weights). Counts, flat vectors and codes cover the weighted layers only, so methods whose result must
        describe the whole function check this (:meth:`require_parameters_in_layers`)."""
        own = {id(p) for ly in self.layers for p in ly.module.parameters(recurse=False)}
        return [n for n, p in self.module.named_parameters() if id(p) not in own]

    def require_parameters_in_layers(self, *, method: str) -> Network:
        """Refuse when a parameter lives outside the weighted layers (it would be missing from the code /
        vector the method's theorem is about). Returns ``self``."""
        extra = self.extra_parameters
        if extra:
            raise AssumptionError(method, "every trainable parameter lives in a Linear/Conv layer (the code or "
                                  "parameter vector must describe the whole function)", f"parameter {extra[0]!r}",
                                  f"{len(extra)} parameter(s) outside weighted layers; use non-affine LayerNorm "
                                  "(elementwise_affine=False) or a method that refuses nothing here")
        return self

    def check_finite(self) -> None:
        """Raise :class:`DataError` if any weight or bias is NaN/inf."""
        check_finite_module(self.module)

    # ------------------------------------------------------------------ assumptions (see prunebound.assumptions)
    def require_chain(self, *, method: str) -> Network:
        """Refuse unless the graph is one path of ungrouped weighted layers (no branch, add, cat or shared
        layer): structured unit removal and layer-to-layer propagation need it. Returns ``self``."""
        _assume.require_chain(self, method=method)
        return self

    def require_relu_chain(self, *, method: str, linear_only: bool = False, allow_grouped: bool = False) -> Network:
        """Refuse unless the model is a chain of weighted layers with exactly one ReLU between consecutive ones
        and none after the last (Arora et al. 2018; spectral / norm bounds). Returns ``self``."""
        _assume.require_relu_chain(self, method=method, linear_only=linear_only, allow_grouped=allow_grouped)
        return self

    def require_bias_free_relu_mlp(self, *, method: str) -> Network:
        """Refuse unless the model is a bias-free ReLU MLP chain (strong-LTH targets). Returns ``self``."""
        _assume.require_bias_free_relu_mlp(self, method=method)
        return self

    def require_nonnegative_inputs(self, *, method: str, skip_first: bool = True) -> Network:
        """Refuse unless every weighted layer (except the first, with ``skip_first``) has a provably
        non-negative input (:attr:`Layer.input_nonnegative`; coresets). Returns ``self``."""
        _assume.require_nonnegative_inputs(self, method=method, skip_first=skip_first)
        return self

    # ------------------------------------------------------------------ evaluation
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.module(x)
        except RuntimeError as e:  # shape errors from torch become a DataError naming both shapes
            msg = str(e)
            if any(s in msg for s in ("shape", "size", "dimension", "Expected", "expected")):
                raise DataError(
                    f"input of shape {tuple(x.shape)} does not fit the model: first layer "
                    f"{self.layers[0].kind}{tuple(self.layers[0].weight.shape)} ({msg.splitlines()[0]})"
                ) from e
            raise

    def forward(self, x: torch.Tensor, *, batch_size: int = 8192) -> torch.Tensor:
        """Output of the network on ``x`` in eval mode, without gradients, in batches."""
        return self.trace(x, batch_size=batch_size, keep=False).output

    __call__ = forward

    def trace(self, x: torch.Tensor, *, batch_size: int = 4096, keep: bool = True) -> Trace:
        """One no-grad pass (eval mode) of ``self.module`` recording each weighted layer's input and
        pre-activation.

        Uses forward hooks on the weighted modules while the module itself runs, so ``trace(x).output`` is
        ``module(x)`` (BatchNorm folded) and pruning masks, residual adds and reshapes act exactly as in the
        user's ``forward``. ``batch_size`` bounds peak memory.
        """
        if not isinstance(x, torch.Tensor):
            raise DataError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() == 0 or x.shape[0] == 0:
            raise DataError("x is empty (0 samples)")
        batch_size = check_positive_int("batch_size", batch_size)
        n = len(self.layers)
        ins: list[list[list[torch.Tensor]]] = [[] for _ in range(n)]
        outs: list[list[list[torch.Tensor]]] = [[] for _ in range(n)]
        handles = []
        if keep:
            for ly in self.layers:

                def hook(mod, inp, out, i=ly.index):
                    ins[i][-1].append(inp[0].detach())
                    outs[i][-1].append(out.detach())

                handles.append(ly.module.register_forward_hook(hook))
        was_training = self.module.training
        self.module.eval()
        dtype = self.layers[0].weight.dtype
        xs = x.to(dtype)
        results = []
        try:
            with torch.no_grad():
                for start in range(0, xs.shape[0], batch_size):
                    for i in range(n if keep else 0):
                        ins[i].append([])
                        outs[i].append([])
                    results.append(self._run(xs[start : start + batch_size]))
        finally:
            for h in handles:
                h.remove()
            self.module.train(was_training)
        out = torch.cat(results)
        if not keep:
            return Trace([], [], out)

        def join(per_batch: list[list[torch.Tensor]]) -> torch.Tensor:
            k = len(per_batch[0])  # calls per batch: >1 for a shared module
            return torch.cat([torch.cat([b[c] for b in per_batch]) for c in range(k)])

        return Trace([join(a) for a in ins], [join(a) for a in outs], out)


# ---------------------------------------------------------------------- copying
def refresh_masked_weights(module: nn.Module) -> nn.Module:
    """Recompute the cached ``weight = weight_orig * weight_mask`` (detached) of every pruned submodule.

    ``torch.nn.utils.prune`` refreshes this cache only at the next forward pass, so call this after editing
    ``weight_orig`` in place; the detached cache also keeps the module deep-copyable. Returns the module.
    """
    with torch.no_grad():
        for m in module.modules():
            if is_pruned(m):
                m.weight = (m.weight_orig * m.weight_mask).detach()
    return module


def clone(module: nn.Module) -> nn.Module:
    """A deep copy that also works for ``torch.nn.utils.prune``-pruned modules.

    ``copy.deepcopy`` fails on a pruned module after a forward pass with autograd on, because the cached
    ``weight = weight_orig * weight_mask`` is a non-leaf tensor. The cached weight is recomputed detached first
    (same values; the prune hook recomputes it at every forward anyway).
    """
    return copy.deepcopy(refresh_masked_weights(module))


# ---------------------------------------------------------------------- batch-norm folding
def fold_batchnorm(module: nn.Module, *, _graph: ModelGraph | None = None) -> nn.Module:
    """Return a copy of ``module`` with every BatchNorm folded into the weighted layer that feeds it.

    With running statistics (eval mode) BN computes ``y = g * (z - mu) / sqrt(var + eps) + b``; for the
    preceding layer ``z = W x + c`` this equals ``W' x + c'`` with ``W' = s * W`` (per output unit),
    ``c' = s * (c - mu) + b`` and ``s = g / sqrt(var + eps)``. The BN submodule is replaced by ``nn.Identity``
    so that module paths (and the user's ``forward``) are unchanged. A pruned layer is folded through
    ``weight_orig`` (the mask commutes with the per-row scale). Works on any captured graph: the BN must be fed
    by a weighted layer whose only user it is, and neither may be called twice. Exact up to rounding.
    """
    g = _graph if _graph is not None else capture_cached(module)
    bn_nodes = [n for n in g.nodes if n.kind.startswith("batchnorm")]
    uses: dict[int, int] = {}
    for n in g.nodes:
        if n.module is not None:
            uses[id(n.module)] = uses.get(id(n.module), 0) + 1
    for n in bn_nodes:
        prev = g.node(n.inputs[0])
        if not prev.weighted or len(g.users(prev.name)) != 1:
            raise UnsupportedLayerError(
                f"BatchNorm {g.describe(n.name)} must directly follow a Linear/Conv layer (its only user) to be "
                f"folded; found it after {prev.target} node {prev.name!r}. Methods on parameters only need a "
                "foldable BatchNorm too: put BatchNorm right after a Linear/Conv layer")
        if uses[id(n.module)] > 1 or uses[id(prev.module)] > 1:
            raise UnsupportedLayerError(f"BatchNorm {g.describe(n.name)}: a shared layer or BatchNorm cannot be "
                                        "folded (its other call would change)")
        if n.path == "":
            raise UnsupportedLayerError("module is a bare BatchNorm layer; nothing to fold it into")
    if not bn_nodes:
        return clone(module)
    out = clone(module)
    for n in bn_nodes:
        prev = g.node(n.inputs[0])
        bn = _get(out, n.path)
        lin = _get(out, prev.path)
        if hasattr(lin, "bias_orig"):
            raise UnsupportedLayerError(f"cannot fold BatchNorm {n.path!r} into layer {prev.path!r} whose bias "
                                        "is pruned")
        with torch.no_grad():
            if bn.running_mean is None or bn.running_var is None:
                raise UnsupportedLayerError(f"BatchNorm {n.path!r} has no running statistics to fold")
            s = 1.0 / torch.sqrt(bn.running_var + bn.eps)
            if bn.affine:
                s = s * bn.weight
            shift = -bn.running_mean * s + (bn.bias if bn.affine else 0.0)
            pruned = is_pruned(lin)
            w = lin.weight_orig if pruned else lin.weight
            shape = (-1,) + (1,) * (w.dim() - 1)
            new_w = (w * s.reshape(shape)).to(w.dtype)
            old_b = lin.bias if lin.bias is not None else torch.zeros_like(s)
            new_b = (old_b * s + shift).to(w.dtype)
            if pruned:
                lin.weight_orig.copy_(new_w)
            else:
                lin.weight = nn.Parameter(new_w)
            lin.bias = nn.Parameter(new_b)
        parent_path, _, name = n.path.rpartition(".")
        setattr(_get(out, parent_path), name, nn.Identity())
    return refresh_masked_weights(out)
# ---------------------------------------------------------------------- flat vectors
def _as_network(module: nn.Module | Network) -> Network:
    return module if isinstance(module, Network) else Network.from_module(module)


def to_vector(module: nn.Module | Network) -> torch.Tensor:
    """All weights and biases of the weighted layers as one flat vector (effective, i.e. masked, values).

    Order: for each layer in forward order, ``weight.flatten()`` then ``bias``. Inverse: :func:`load_vector`.
    """
    net = _as_network(module)
    parts = []
    for ly in net.layers:
        parts.append(ly.weight.detach().reshape(-1))
        if ly.bias is not None:
            parts.append(ly.bias.detach().reshape(-1))
    return torch.cat(parts)


def load_vector(module: nn.Module | Network, vector: torch.Tensor) -> nn.Module:
    """Write a flat vector (layout of :func:`to_vector`) into the module's weights and biases, in place.

    For a pruned layer the vector is written into ``weight_orig``; the mask still applies, so pruned
    coordinates stay zero. Returns the module.
    """
    net = _as_network(module)
    vector = torch.as_tensor(vector)
    total = sum(ly.n_params for ly in net.layers)
    if vector.dim() != 1 or vector.numel() != total:
        raise DataError(f"vector has shape {tuple(vector.shape)}; the model needs a flat vector of {total}")
    if not bool(torch.isfinite(vector).all()):
        raise DataError("vector contains NaN or inf")
    pos = 0
    with torch.no_grad():
        for ly in net.layers:
            m = ly.module
            target = m.weight_orig if is_pruned(m) else m.weight
            k = target.numel()
            target.copy_(vector[pos : pos + k].reshape(target.shape).to(target.dtype))
            pos += k
            if m.bias is not None:
                k = m.bias.numel()
                m.bias.copy_(vector[pos : pos + k].reshape(m.bias.shape).to(m.bias.dtype))
                pos += k
            if is_pruned(m):  # refresh the cached masked weight
                m.weight = m.weight_orig * m.weight_mask
    return net.module


# ---------------------------------------------------------------------- masks
def is_pruned(m: nn.Module) -> bool:
    """True if ``m.weight`` is governed by a ``torch.nn.utils.prune`` mask."""
    return hasattr(m, "weight_mask") and hasattr(m, "weight_orig")


def apply_masks(
    module: nn.Module | Network, masks: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]
) -> nn.Module:
    """Prune ``module`` in place with ``torch.nn.utils.prune.custom_from_mask``.

    ``masks`` maps layer paths (:attr:`Layer.path`) to 0/1 tensors of the weight's shape, or is a sequence
    aligned with :attr:`Network.layers`. Layers already pruned get the product of old and new masks (the
    ``torch.nn.utils.prune`` behaviour). Returns the module.
    """
    net = _as_network(module)
    by_path = {ly.path: ly for ly in net.layers}
    if isinstance(masks, Mapping):
        items = list(masks.items())
    else:
        if len(masks) != len(net.layers):
            raise InvalidParameterError(
                f"masks has {len(masks)} entries; the model has {len(net.layers)} weighted layers"
            )
        items = [(ly.path, mk) for ly, mk in zip(net.layers, masks)]
    for path, mk in items:
        if path not in by_path:
            raise InvalidParameterError(
                f"mask for unknown layer {path!r}; weighted layers are {sorted(by_path)}"
            )
        ly = by_path[path]
        mk = torch.as_tensor(mk)
        if tuple(mk.shape) != tuple(ly.weight.shape):
            raise InvalidParameterError(
                f"mask for layer {path!r} has shape {tuple(mk.shape)}; weight shape is {tuple(ly.weight.shape)}"
            )
        if not bool(((mk == 0) | (mk == 1)).all()):
            raise InvalidParameterError(f"mask for layer {path!r} must contain only 0 and 1")
        tprune.custom_from_mask(ly.module, "weight", mk.to(ly.weight.dtype).to(ly.weight.device))
    return net.module


def masks_of(module: nn.Module | Network) -> dict[str, torch.Tensor]:
    """Current mask of every weighted layer (all ones for an unpruned layer), keyed by layer path."""
    net = _as_network(module)
    return {
        ly.path: (ly.mask.detach().clone() if ly.mask is not None else torch.ones_like(ly.weight))
        for ly in net.layers
    }


def remove_masks(module: nn.Module | Network) -> nn.Module:
    """Make pruning permanent (``torch.nn.utils.prune.remove``) on every pruned layer; returns the module."""
    net = _as_network(module)
    for ly in net.layers:
        if is_pruned(ly.module):
            tprune.remove(ly.module, "weight")
    return net.module


# ---------------------------------------------------------------------- counting
@dataclass(frozen=True)
class SparsityReport:
    """Fraction of zero *weights* (biases excluded) per layer path and in total."""

    per_layer: dict[str, float]
    total: float
    nonzero: int
    weights: int

    def to_dict(self) -> dict:
        return {"per_layer": dict(self.per_layer), "total": self.total, "nonzero": self.nonzero,
                "weights": self.weights}


def count_parameters(module: nn.Module | Network, *, include_bias: bool = True) -> int:
    """Number of weights (and biases) in the weighted layers, pruned or not."""
    net = _as_network(module)
    return sum(ly.n_params if include_bias else ly.n_weights for ly in net.layers)


def count_nonzero(module: nn.Module | Network, *, include_bias: bool = True) -> int:
    """Number of non-zero effective weights (and biases) in the weighted layers."""
    net = _as_network(module)
    total = 0
    for ly in net.layers:
        total += int((ly.weight != 0).sum())
        if include_bias and ly.bias is not None:
            total += int((ly.bias != 0).sum())
    return total


def sparsity(module: nn.Module | Network) -> SparsityReport:
    """Per-layer and total fraction of weights equal to zero (biases excluded)."""
    net = _as_network(module)
    per, nz, tot = {}, 0, 0
    for ly in net.layers:
        k = int((ly.weight != 0).sum())
        per[ly.path] = 1.0 - k / ly.n_weights
        nz += k
        tot += ly.n_weights
    return SparsityReport(per, 1.0 - nz / tot, nz, tot)


def report(model: nn.Module | Network, example_input: torch.Tensor, *, repeats: int = 20, compact: bool = False):
    """Parameters, non-zeros, bytes stored, FLOPs and CPU latency: :func:`prunebound.footprint.report`."""
    from prunebound.footprint import report as _report

    return _report(model, example_input, repeats=repeats, compact=compact)


def compact(model: nn.Module | Network, example_input: torch.Tensor | None = None):
    """A smaller dense copy without dead neurons/channels/filters and its report: :func:`prunebound.compact.compact`."""
    from prunebound.compact import compact as _compact

    return _compact(model, example_input)


# ---------------------------------------------------------------------- architecture spec (for safe IO)
# Moved to prunebound.archspec (strict: only exact nn.Sequential trees; validated before building); re-exported.
# The small nn.Sequential zoo factories live in prunebound.zoo_models (one concept per module); re-exported here
# so that ``from prunebound.network import mlp`` keeps working.
from prunebound.archspec import architecture, build_architecture  # noqa: E402
from prunebound.zoo_models import conv1d_small, lenet5, lenet300_100, mlp  # noqa: E402
