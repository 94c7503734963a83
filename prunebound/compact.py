"""Compaction: physically remove pruned neurons, channels and filters, following the model's graph (issue 15).

A structured mask (APoZ, neuron merging, LASSO channel pruning, PFP, data-independent coresets) zeroes whole
rows of a weight, but the zero rows still cost memory and time. :func:`compact` returns a smaller *dense* copy
of the model (same classes, masks made permanent) that computes the same function, and a
:class:`CompactReport` of what was removed per layer.

How it works (a channel-dependency analysis in the spirit of Fang et al. 2023, *DepGraph*, CVPR, Sec. 3,
restricted to what is provably exact):

1. **Slots.** Every channel (dim 1: neurons of a ``Linear``, filters of a conv) created by a node gets a slot id;
   ops that only move channels pass slots through (activations, BatchNorm, pooling, dropout, slicing of spatial
   dims, the non-channel part of ``F.pad``); ``torch.cat`` on dim 1 concatenates its inputs' slots (so the
   offsets shift by themselves); a ``Flatten`` after a conv repeats each channel's slot once per spatial
   position (the block of features of the following ``Linear``). ``x + y`` *unites* the slots of its two inputs
   position by position, as does a depthwise conv (``groups = in = out``: filter ``o`` reads only channel
   ``o``) for its input and output, and a module called twice for its calls: united slots form one class,
   removed together or kept together, so residual streams stay consistent on every branch.
2. **Values.** Each channel of each node is tracked as *dead* (exactly 0 for every input), *constant* ``c``
   (the same value at every input and position) or *live*, propagated exactly in float64: a layer row whose
   weights on non-dead inputs are all zero outputs its bias (dead if the bias is 0, constant otherwise); an
   activation maps a constant to a constant (``relu(c)``; ``sigmoid(0) = 0.5`` is constant, not dead);
   BatchNorm (running statistics, i.e. eval mode) maps ``c`` to ``s c + t``; zero padding of spatial dims or a
   padded conv makes a non-zero constant live (the border differs).
3. **Removal.** A class is removed when every weighted layer that reads one of its positions either has an
   all-zero weight slice there, or reads a dead value there, or reads a constant it can *fold*; classes that
   reach the model output, the model input, a reshape/``Unflatten``, ``LayerNorm``, a channel slice, a grouped
   (non-depthwise) conv or an ``F.pad`` of new channels are kept. Folding a constant ``c_j`` read by layer
   ``W``: ``W x = W_{-j} x_{-j} + c_j W_{:,j}``, so the second term moves into the bias. This is exact for a
   ``Linear`` consumer and a conv without padding (every output position sees the full kernel over ``c_j``);
   a padded conv sees zeros at the border, so there the channel is kept. Activations of a constant are
   constant, which is why a dead row with a non-zero bias can still be removed by folding downstream.
4. **Check.** The compacted model is run next to the masked model on the example input; a difference above
   ``1e-5 (1 + max |y|)`` raises (a bug, never a silently wrong model). Both run in eval mode (BatchNorm with
   running statistics, dropout off): the function being preserved is the inference function.

Deviations from DepGraph: only exact removals (no importance criterion: the mask decides); unsupported places
keep their channels instead of failing, and the report lists them. At least one channel of every layer is kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.fx
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from prunebound.errors import (
    DataError,
    InvalidParameterError,
    PruneboundError,
    UnsupportedLayerError,
    check_finite_module,
)
from prunebound.graph import _MODULE_KINDS, ACTIVATION_KINDS, GraphNode, ModelGraph, _Tracer, capture
from prunebound.network import clone

__all__ = ["compact", "CompactReport", "LayerCompaction", "make_permanent"]

DEAD, CONST, LIVE = 0, 1, 2
_TOL = 1e-5
_POOLS = ("maxpool1d", "maxpool2d", "adaptiveavgpool1d", "adaptiveavgpool2d", "adaptivemaxpool1d",
          "adaptivemaxpool2d", "avgpool1d", "avgpool2d")


@dataclass(frozen=True)
class LayerCompaction:
    """What compaction did to one layer (``Linear``/conv/BatchNorm): shapes of its weight before and after,
    output units and input channels/features removed, and how many removed inputs were constants folded into
    its bias."""

    path: str
    kind: str
    shape_before: tuple[int, ...]
    shape_after: tuple[int, ...]
    removed_out: int
    removed_in: int
    folded_in: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CompactReport:
    """Result record of :func:`compact`: per-layer changes, parameter counts (every parameter of the module,
    BatchNorm included) before/after, the largest output difference measured against the masked model, and
    the graph nodes whose channels had to be kept whole (and why)."""

    layers: tuple[LayerCompaction, ...]
    parameters_before: int
    parameters_after: int
    max_abs_diff: float | None
    kept_whole: tuple[str, ...] = ()

    @property
    def removed_parameters(self) -> int:
        return self.parameters_before - self.parameters_after

    def to_dict(self) -> dict:
        d = asdict(self)
        d["removed_parameters"] = self.removed_parameters
        return d


def make_permanent(module: nn.Module) -> nn.Module:
    """Make every ``torch.nn.utils.prune`` reparametrisation (weight, bias, any name) permanent, in place."""
    for m in module.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, tprune.BasePruningMethod):
                tprune.remove(m, hook._tensor_name)
    return module


# ----------------------------------------------------------------------------------------------- analysis
class _Slots:
    """Union-find over channel slots; ``pinned`` slots can never be removed."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.pinned: list[bool] = []

    def new(self, n: int, pinned: bool = False) -> torch.Tensor:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.pinned.extend([pinned] * n)
        return torch.arange(start, start + n)

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: torch.Tensor, b: torch.Tensor) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[ry] = rx
                self.pinned[rx] = self.pinned[rx] or self.pinned[ry]

    def pin(self, s: torch.Tensor) -> None:
        for x in s.tolist():
            self.pinned[self.find(x)] = True

    def roots(self, s: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.find(x) for x in s.tolist()], dtype=torch.long)


@dataclass
class _Consumer:
    node: GraphNode
    slots: torch.Tensor  # input positions (dim 1)
    kind: torch.Tensor  # DEAD / CONST / LIVE of each input position
    value: torch.Tensor  # float64 constant of each position (0 where not constant)
    colzero: torch.Tensor  # True where the weight slice of that input position is all zero
    foldable: bool


def _example(model: nn.Module, example_input, g: ModelGraph) -> torch.Tensor:
    if example_input is not None:
        if not isinstance(example_input, torch.Tensor) or example_input.dim() == 0 or example_input.shape[0] == 0:
            raise DataError("example_input must be a non-empty batch tensor (N, ...)")
        return example_input
    shape = getattr(model, "input_shape", None)
    p = next((q for q in model.parameters()), None)
    dtype = p.dtype if p is not None else torch.float32
    if shape is not None:
        return torch.randn((2, *shape), generator=torch.Generator().manual_seed(0), dtype=dtype)
    first = [n for n in g.nodes if n.inputs == (g.input,)]
    if len(first) == 1 and first[0].kind == "linear":
        d = first[0].module.in_features
        return torch.randn((2, d), generator=torch.Generator().manual_seed(0), dtype=dtype)
    raise InvalidParameterError(
        f"compact needs example_input (a batch shaped like the model's input) for {type(model).__name__}: "
        "channel counts through Flatten depend on the spatial size")


def _shapes(module: nn.Module, x: torch.Tensor, bare: bool) -> dict[str, tuple[int, ...]]:
    root = module
    if bare:
        root = nn.Sequential()
        root.add_module("_", module)
    gm = torch.fx.GraphModule(root, _Tracer().trace(root))
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
    out = {}
    for n in gm.graph.nodes:
        tm = n.meta.get("tensor_meta")
        if tm is not None and hasattr(tm, "shape"):
            out[n.name] = tuple(int(s) for s in tm.shape)
    return out


def _act(node: GraphNode, v: torch.Tensor) -> torch.Tensor:
    kw = dict(node.kwargs)
    m = node.module
    if m is not None:
        return _act_module(m, v)
    k = node.kind
    if k == "relu":
        return torch.relu(v)
    if k == "leakyrelu":
        slope = node.args[0] if node.args else kw.get("negative_slope", 0.01)
        return F.leaky_relu(v, float(slope))
    if k == "gelu":
        return F.gelu(v, approximate=kw.get("approximate", "none"))
    if k == "silu":
        return F.silu(v)
    if k == "tanh":
        return torch.tanh(v)
    return torch.sigmoid(v)


def _act_module(m: nn.Module, v: torch.Tensor) -> torch.Tensor:
    if isinstance(m, nn.LeakyReLU):
        return F.leaky_relu(v, m.negative_slope)
    if isinstance(m, nn.GELU):
        return F.gelu(v, approximate=m.approximate)
    return m(v)  # ReLU, SiLU, Tanh, Sigmoid: parameter-free and dtype-agnostic


def _padding_nonzero(m: nn.Module) -> bool:
    p = m.padding
    if isinstance(p, str):
        return p != "valid"
    return any(int(q) != 0 for q in (p if isinstance(p, tuple) else (p,)))


def _status_from_consts(val: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kind = torch.where(live, torch.full_like(val, LIVE, dtype=torch.long),
                       torch.where(val == 0, torch.full_like(val, DEAD, dtype=torch.long),
                                   torch.full_like(val, CONST, dtype=torch.long)))
    return kind, torch.where(live, torch.zeros_like(val), val)


class _Analysis:
    def __init__(self, g: ModelGraph, shapes: dict[str, tuple[int, ...]]) -> None:
        self.g, self.shapes = g, shapes
        self.slots = _Slots()
        self.space: dict[str, torch.Tensor] = {}
        self.kind: dict[str, torch.Tensor] = {}
        self.val: dict[str, torch.Tensor] = {}
        self.consumers: list[_Consumer] = []
        self.kept: list[str] = []
        self.first_call: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.calls: dict[int, int] = {}
        for n in g.nodes:
            if n.module is not None:
                self.calls[id(n.module)] = self.calls.get(id(n.module), 0) + 1
        for n in g.nodes:
            self._visit(n)
        self.slots.pin(self.space[g.output])

    # helpers
    def _c(self, name: str) -> int:
        s = self.shapes.get(name)
        return s[1] if s is not None and len(s) >= 2 else 0

    def _fresh(self, n: GraphNode, reason: str | None, pin_inputs: bool = True) -> None:
        if pin_inputs:
            for i in n.inputs:
                self.slots.pin(self.space[i])
        c = self._c(n.name)
        self.space[n.name] = self.slots.new(c, pinned=True)
        self.kind[n.name] = torch.full((c,), LIVE, dtype=torch.long)
        self.val[n.name] = torch.zeros(c, dtype=torch.float64)
        if reason:
            self.kept.append(f"{n.name} ({reason})")

    def _same(self, n: GraphNode, src: str, kind=None, val=None) -> None:
        self.space[n.name] = self.space[src]
        self.kind[n.name] = self.kind[src] if kind is None else kind
        self.val[n.name] = self.val[src] if val is None else val

    def _visit(self, n: GraphNode) -> None:  # noqa: C901 - one branch per op kind
        k = n.kind
        shp = self.shapes.get(n.name)
        if k == "input":
            self._fresh(n, None)
            return
        if shp is None or len(shp) < 2:
            self._fresh(n, f"{n.target} output has no channel dimension")
            return
        a = n.inputs[0]
        ain = self.shapes.get(a, ())
        if n.weighted:
            self._weighted(n)
        elif k.startswith("batchnorm"):
            m = n.module
            if m.running_mean is None or m.running_var is None or self.calls[id(m)] > 1:
                self._fresh(n, "BatchNorm without running statistics or called twice")
                return
            s = 1.0 / torch.sqrt(m.running_var.double() + m.eps)
            if m.affine:
                s = s * m.weight.detach().double()
            t = -m.running_mean.double() * s + (m.bias.detach().double() if m.affine else 0.0)
            ki, vi = self.kind[a], self.val[a]
            val = torch.where(ki == LIVE, torch.zeros_like(vi), vi * s + t)
            kind, val = _status_from_consts(val, ki == LIVE)
            self._same(n, a, kind, val)
        elif k in ACTIVATION_KINDS:
            ki, vi = self.kind[a], self.val[a]
            kind, val = _status_from_consts(_act(n, vi), ki == LIVE)
            self._same(n, a, kind, val)
        elif k in ("dropout", "identity"):
            self._same(n, a)
        elif k in _POOLS:
            if shp[1] != ain[1] or len(ain) < 3:
                self._fresh(n, "pooling over the channel dimension")
                return
            ki, vi = self.kind[a], self.val[a]
            if k.startswith("avgpool"):
                m = n.module
                if m is not None:
                    pad, incl = m.padding, m.count_include_pad
                else:
                    kw = dict(n.kwargs)
                    pad = n.args[2] if len(n.args) > 2 else kw.get("padding", 0)
                    incl = n.args[4] if len(n.args) > 4 else kw.get("count_include_pad", True)
                pads = pad if isinstance(pad, (tuple, list)) else (pad,)
                if incl and any(int(p) for p in pads):  # border averages include zeros: constants are not kept
                    ki = torch.where(ki == CONST, torch.full_like(ki, LIVE), ki)
                    vi = torch.where(ki == LIVE, torch.zeros_like(vi), vi)
            self._same(n, a, ki, vi)
        elif k == "flatten":
            start, end = n.args if len(n.args) == 2 else (1, -1)
            nd = len(ain)
            start = start + nd if start < 0 else start
            end = end + nd if end < 0 else end
            if start >= 2:
                self._same(n, a)
            elif start == 1:
                rep = math.prod(ain[2:end + 1]) if end >= 2 else 1
                self.space[n.name] = self.space[a].repeat_interleave(rep)
                self.kind[n.name] = self.kind[a].repeat_interleave(rep)
                self.val[n.name] = self.val[a].repeat_interleave(rep)
            else:
                self._fresh(n, "flatten over the batch dimension")
        elif k == "getitem":
            idx = n.args[0] if n.args else None
            full = slice(None, None, None)
            if isinstance(idx, tuple) and len(idx) >= 2 and idx[0] == full and idx[1] == full and shp[1] == ain[1]:
                self._same(n, a)
            else:
                self._fresh(n, "indexing on the channel dimension")
        elif k == "pad":
            self._pad(n, ain)
        elif k == "mean":
            kw = dict(n.kwargs)
            dims = n.args[0] if n.args else kw.get("dim")
            dims = (dims,) if isinstance(dims, int) else dims
            nd = len(ain)
            if dims is None or any(d % nd in (0, 1) for d in dims) or shp[1] != ain[1]:
                self._fresh(n, "mean over the channel dimension")
            else:
                self._same(n, a)
        elif k == "add":
            b = n.inputs[1]
            if self.shapes.get(b, ())[1:2] != ain[1:2] or shp[1] != ain[1]:
                self._fresh(n, "add with broadcasting over channels")
                return
            self.slots.union(self.space[a], self.space[b])
            ka, kb = self.kind[a], self.kind[b]
            live = (ka == LIVE) | (kb == LIVE)
            kind, val = _status_from_consts(self.val[a] + self.val[b], live)
            self._same(n, a, kind, val)
        elif k == "cat":
            self._cat(n)
        else:  # reshape, unflatten, layernorm, anything that mixes channels
            self._fresh(n, f"{n.target} mixes or reshapes channels")

    def _cat(self, n: GraphNode) -> None:
        kw = dict(n.kwargs)
        dim = n.args[0] if n.args else kw.get("dim", 0)
        nd = len(self.shapes[n.name])
        dim = dim + nd if dim < 0 else dim
        ins = list(n.inputs)
        if dim == 1:
            self.space[n.name] = torch.cat([self.space[i] for i in ins])
            self.kind[n.name] = torch.cat([self.kind[i] for i in ins])
            self.val[n.name] = torch.cat([self.val[i] for i in ins])
        elif dim >= 2:
            for i in ins[1:]:
                self.slots.union(self.space[ins[0]], self.space[i])
            dead = torch.stack([self.kind[i] == DEAD for i in ins]).all(0)
            kind = torch.where(dead, torch.full_like(dead, DEAD, dtype=torch.long),
                               torch.full_like(dead, LIVE, dtype=torch.long))
            self._same(n, ins[0], kind, torch.zeros(kind.shape, dtype=torch.float64))
        else:
            self._fresh(n, "concatenation along the batch dimension")

    def _pad(self, n: GraphNode, ain: tuple[int, ...]) -> None:
        a = n.inputs[0]
        kw = dict(n.kwargs)
        pad = tuple(n.args[0]) if n.args else tuple(kw.get("pad", ()))
        mode = n.args[1] if len(n.args) > 1 else kw.get("mode", "constant")
        value = n.args[2] if len(n.args) > 2 else kw.get("value", None)
        value = 0.0 if value is None else float(value)
        nd = len(ain)
        pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]  # pair i pads dim nd - 1 - i
        chan = pairs[nd - 2] if len(pairs) >= nd - 1 else (0, 0)
        spatial = any(lo or hi for i, (lo, hi) in enumerate(pairs) if nd - 1 - i >= 2)
        if mode != "constant" or chan[0] < 0 or chan[1] < 0 or len(pairs) > nd - 1:
            self._fresh(n, "padding that is not constant on channels and spatial dims")
            return
        ki, vi = self.kind[a], self.val[a]
        if spatial:  # the border holds ``value``: a channel stays constant only if its constant equals it
            same = (ki != LIVE) & (vi == value)
            ki = torch.where(same | (ki == LIVE), ki, torch.full_like(ki, LIVE))
            vi = torch.where(ki == LIVE, torch.zeros_like(vi), vi)
        lo, hi = int(chan[0]), int(chan[1])
        new_kind = DEAD if value == 0 else CONST
        self.space[n.name] = torch.cat([self.slots.new(lo, True), self.space[a], self.slots.new(hi, True)])
        self.kind[n.name] = torch.cat([torch.full((lo,), new_kind), ki, torch.full((hi,), new_kind)])
        self.val[n.name] = torch.cat([torch.full((lo,), value, dtype=torch.float64), vi,
                                      torch.full((hi,), value, dtype=torch.float64)])

    def _weighted(self, n: GraphNode) -> None:
        m, a = n.module, n.inputs[0]
        ain = self.shapes[a]
        W = m.weight.detach().double()
        b = m.bias.detach().double() if m.bias is not None else torch.zeros(W.shape[0], dtype=torch.float64)
        ki, vi = self.kind[a], self.val[a]
        groups = int(getattr(m, "groups", 1))
        linear = isinstance(m, nn.Linear)
        if (linear and len(ain) != 2) or (not linear and ain[1] != m.in_channels) or (linear and ain[1] != W.shape[1]):
            self._fresh(n, "Linear applied to a tensor of more than 2 dimensions")
            return
        padded = (not linear) and _padding_nonzero(m)
        shared = self.calls[id(m)] > 1
        if groups == 1:
            Wc = W.reshape(W.shape[0], W.shape[1], -1)
            nzc = (Wc != 0).any(-1)  # (out, in)
            live = (nzc & (ki == LIVE)[None]).any(1) | (padded & (nzc & (ki == CONST)[None]).any(1))
            val = Wc.sum(-1) @ vi + b
            kind, val = _status_from_consts(val, live)
            self.consumers.append(_Consumer(n, self.space[a], ki, vi, ~nzc.any(0),
                                            foldable=not padded and not shared))
            out = self.slots.new(W.shape[0])
        elif groups == m.in_channels == m.out_channels:  # depthwise: filter o reads channel o only
            Wo = W.reshape(W.shape[0], -1)
            nz = (Wo != 0).any(1)
            live = nz & ((ki == LIVE) | (padded & (ki == CONST)))
            kind, val = _status_from_consts(Wo.sum(1) * vi + b, live)
            out = self.slots.new(W.shape[0])
            self.slots.union(self.space[a], out)
        else:
            self._fresh(n, f"grouped convolution (groups={groups})")
            return
        if shared:  # every call slices the module the same way
            first = self.first_call.get(id(m))
            if first is None:
                self.first_call[id(m)] = (self.space[a], out)
            else:
                self.slots.union(first[0], self.space[a])
                self.slots.union(first[1], out)
        self.space[n.name], self.kind[n.name], self.val[n.name] = out, kind, val

    # decision
    def removed(self) -> torch.Tensor:
        """Per slot: True when its class is removed (every reader tolerates it, nothing pins it)."""
        s = self.slots
        n_slots = len(s.parent)
        roots_all = s.roots(torch.arange(n_slots))
        ok = ~torch.tensor(s.pinned, dtype=torch.bool)[roots_all]  # per slot: its class is not pinned
        removable = torch.ones(n_slots, dtype=torch.bool)
        removable[roots_all[~ok]] = False
        for c in self.consumers:
            good = c.colzero | (c.kind == DEAD) | ((c.kind == CONST) & c.foldable)
            removable[roots_all[c.slots[~good]]] = False
        self.roots_all = roots_all
        self.removable = removable
        # keep at least one channel in every weighted layer and BatchNorm
        for n in self.g.nodes:
            if n.weighted or n.kind.startswith("batchnorm"):
                for sp in (self.space[n.inputs[0]], self.space.get(n.name)):
                    if sp is not None and len(sp) and bool(removable[roots_all[sp]].all()):
                        removable[roots_all[sp[0]]] = False
        return removable

    def keep(self, space: torch.Tensor) -> torch.Tensor:
        return ~self.removable[self.roots_all[space]]


# ----------------------------------------------------------------------------------------------- surgery
def _set_param(m: nn.Module, name: str, value: torch.Tensor | None) -> None:
    old = getattr(m, name)
    if value is None:
        return
    rg = old.requires_grad if isinstance(old, torch.Tensor) else True
    setattr(m, name, nn.Parameter(value.detach().clone().contiguous(), requires_grad=rg))


def _apply(an: _Analysis) -> list[LayerCompaction]:
    done: set[int] = set()
    records: list[LayerCompaction] = []
    fold: dict[int, torch.Tensor] = {}
    folded_count: dict[int, int] = {}
    with torch.no_grad():
        for c in an.consumers:  # constants read by removed input positions move into the bias
            keep_in = an.keep(c.slots)
            f = (~keep_in) & (c.kind == CONST) & ~c.colzero
            if not bool(f.any()):
                continue
            m = c.node.module
            W = m.weight.detach().double()
            Wc = W.reshape(W.shape[0], W.shape[1], -1).sum(-1)
            add = Wc[:, f] @ c.value[f]
            fold[id(m)] = fold.get(id(m), 0) + add
            folded_count[id(m)] = folded_count.get(id(m), 0) + int(f.sum())
        for n in an.g.nodes:
            m = n.module
            if m is None or id(m) in done or not (n.weighted or n.kind.startswith("batchnorm")):
                continue
            done.add(id(m))
            if n.kind.startswith("batchnorm"):
                keep = an.keep(an.space[n.name])
                if bool(keep.all()):
                    continue
                before = (int(m.num_features),)
                for name in ("weight", "bias"):
                    if getattr(m, name, None) is not None:
                        _set_param(m, name, getattr(m, name)[keep])
                m.running_mean = m.running_mean[keep].clone()
                m.running_var = m.running_var[keep].clone()
                m.num_features = int(keep.sum())
                records.append(LayerCompaction(n.path, n.kind, before, (m.num_features,), int((~keep).sum()), 0))
                continue
            keep_out = an.keep(an.space[n.name])
            keep_in = an.keep(an.space[n.inputs[0]])
            W = m.weight.detach()
            before = tuple(W.shape)
            bias = m.bias.detach() if m.bias is not None else None
            if id(m) in fold:
                extra = fold[id(m)].to(W.dtype)
                bias = extra if bias is None else bias + extra
            if bool(keep_out.all()) and bool(keep_in.all()) and id(m) not in fold:
                continue
            groups = int(getattr(m, "groups", 1))
            if groups == 1:
                newW = W[keep_out][:, keep_in]
            else:  # depthwise (united input/output classes: keep_in == keep_out)
                newW = W[keep_out]
            _set_param(m, "weight", newW)
            if bias is not None:
                if m.bias is None:
                    m.bias = nn.Parameter(bias[keep_out].clone(), requires_grad=m.weight.requires_grad)
                else:
                    _set_param(m, "bias", bias[keep_out])
            if isinstance(m, nn.Linear):
                m.out_features, m.in_features = int(newW.shape[0]), int(newW.shape[1])
            else:
                m.out_channels = int(newW.shape[0])
                m.in_channels = int(keep_in.sum())
                if groups != 1:
                    m.groups = m.in_channels
            records.append(LayerCompaction(n.path, n.kind, before, tuple(newW.shape), int((~keep_out).sum()),
                                           int((~keep_in).sum()), folded_count.get(id(m), 0)))
    return records


def compact(model: nn.Module, example_input: torch.Tensor | None = None, *, check: bool = True
            ) -> tuple[nn.Module, CompactReport]:
    """A smaller dense copy of ``model`` without its dead neurons/channels/filters, and a :class:`CompactReport`.

    ``model``: any traceable model, possibly pruned with ``torch.nn.utils.prune`` masks (also a
    :class:`~prunebound.network.Network`: its module is used). ``example_input``: a batch shaped like the
    model's input (needed for convolutional models unless the model records ``input_shape``, as zoo models
    do); it is also where the compacted model is checked against the masked one (``check``). The copy keeps
    the classes of every submodule (``Linear``, ``Conv``, ``BatchNorm`` with fewer features) and its masks are
    made permanent; the caller's model is not modified. See the module docstring for what is removed.
    Raises :class:`~prunebound.errors.UnsupportedLayerError` naming the node for graphs that cannot be traced.
    """
    from prunebound.network import Network

    if isinstance(model, Network):
        model = model.module
    if not isinstance(model, nn.Module):
        raise UnsupportedLayerError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    work = make_permanent(clone(model))
    check_finite_module(work)  # 0 * inf is not 0: "dead" inputs need finite weights
    was_training = model.training
    work.eval()
    g = capture(work)
    x = _example(work, example_input, g)
    p = next(iter(work.parameters()), None)
    if p is not None and x.is_floating_point():
        x = x.to(p.dtype)
    bare = type(work) in _MODULE_KINDS  # capture traced it as a one-layer Sequential
    try:
        shapes = _shapes(work, x, bare)
    except Exception as e:  # noqa: BLE001 - a shape error means the example does not fit the model
        raise DataError(f"example_input of shape {tuple(x.shape)} does not fit {type(model).__name__}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    before = sum(p.numel() for p in work.parameters())
    an = _Analysis(g, shapes)
    an.removed()
    records = _apply(an)
    after = sum(p.numel() for p in work.parameters())
    diff = None
    if check:
        ref = make_permanent(clone(model)).eval()
        with torch.no_grad():
            y0 = ref(x)
            try:
                y1 = work(x)
            except RuntimeError as e:  # inconsistent channel counts: an analysis bug, never the user's
                raise PruneboundError(f"the compacted model does not run ({str(e).splitlines()[0][:200]}); a "
                                      "prunebound bug: please report it with the model") from e
        if y0.shape != y1.shape:
            raise PruneboundError(f"compaction changed the output shape {tuple(y0.shape)} -> {tuple(y1.shape)} "
                                  "(a prunebound bug; please report it with the model)")
        diff = float((y0 - y1).abs().max()) if y0.numel() else 0.0
        scale = 1.0 + float(y0.abs().max()) if y0.numel() else 1.0
        if not diff <= _TOL * scale:
            raise PruneboundError(f"compaction changed the output by {diff:.3g} (> {_TOL:g} x {scale:.3g}); "
                                  "a prunebound bug: please report it with the model")
    work.train(was_training)
    return work, CompactReport(tuple(records), int(before), int(after), diff, tuple(an.kept))
