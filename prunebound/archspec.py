"""Architecture specs: a JSON description of a plain ``nn.Sequential`` tree, checked before anything is built.

A spec is ``{"type": "Sequential", "children": [[name, spec], ...]}`` or a leaf ``{"type": "Linear",
"in_features": 784, "out_features": 300, "bias": true}`` (constructor arguments of the layer).  It describes a
model exactly only when every container is *exactly* ``nn.Sequential`` and every leaf is exactly one of the
layer types below with no extra hooks: a ``Sequential`` subclass with its own ``forward`` (say, a residual
block) computes something else than the chain of its children, so :func:`architecture` refuses it rather than
describe it wrongly (issue 12).  Such models are saved with a zoo reference or a factory import path
(:mod:`prunebound.io`).

Untrusted specs (read from a checkpoint) go through :func:`spec_state_shapes` first: it validates the structure
(types, ranges, nesting depth, number of nodes) and computes the state_dict shapes the spec implies *without
building a layer*, so a checkpoint whose spec disagrees with its tensors, or exceeds a parameter budget, is
refused before any allocation (issue 14).  :func:`build_architecture` then builds the module, optionally on the
``meta`` device.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
from torch import nn

from prunebound.errors import DataError, UnsupportedLayerError

__all__ = ["architecture", "build_architecture", "spec_state_shapes", "is_plain_sequential", "SPEC_LAYERS"]

# constructor arguments recorded for each leaf type (optional extras are listed in _OPTIONAL)
_SPEC_ATTRS: dict[type, tuple[str, ...]] = {
    nn.Linear: ("in_features", "out_features"),
    nn.Conv1d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"),
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"),
    nn.ReLU: (),
    nn.LeakyReLU: ("negative_slope",),
    nn.GELU: ("approximate",),
    nn.SiLU: (),
    nn.Tanh: (),
    nn.Sigmoid: (),
    nn.MaxPool1d: ("kernel_size", "stride", "padding"),
    nn.MaxPool2d: ("kernel_size", "stride", "padding"),
    nn.AvgPool1d: ("kernel_size", "stride", "padding"),
    nn.AvgPool2d: ("kernel_size", "stride", "padding"),
    nn.AdaptiveAvgPool1d: ("output_size",),
    nn.AdaptiveAvgPool2d: ("output_size",),
    nn.Flatten: ("start_dim", "end_dim"),
    nn.Unflatten: ("dim", "unflattened_size"),
    nn.Dropout: ("p",),
    nn.Identity: (),
    nn.BatchNorm1d: ("num_features", "eps", "momentum", "affine"),
    nn.BatchNorm2d: ("num_features", "eps", "momentum", "affine"),
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine"),
}
# optional constructor arguments, written only when not at their default (keeps old specs valid and identical)
_OPTIONAL: dict[type, dict[str, object]] = {
    nn.Conv1d: {"groups": 1, "padding_mode": "zeros"},
    nn.Conv2d: {"groups": 1, "padding_mode": "zeros"},
    nn.BatchNorm1d: {"track_running_stats": True},
    nn.BatchNorm2d: {"track_running_stats": True},
}
SPEC_LAYERS = {t.__name__: t for t in _SPEC_ATTRS}
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_NODES = 10_000
MAX_DEPTH = 32
MAX_DIM = 2**31 - 1


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(a) for a in v]
    return v


def _own_hooks(m: nn.Module) -> list[str]:
    """Hooks other than ``torch.nn.utils.prune``'s (which a checkpoint restores as masks)."""
    from torch.nn.utils.prune import BasePruningMethod

    out = []
    for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks"):
        for h in getattr(m, kind, {}).values():
            if not isinstance(h, BasePruningMethod):
                out.append(kind.strip("_"))
    return out


def is_plain_sequential(module: nn.Module) -> bool:
    """True if :func:`architecture` can describe ``module`` exactly (no subclass, no custom forward, no hooks)."""
    try:
        architecture(module)
    except UnsupportedLayerError:
        return False
    return True


def architecture(module: nn.Module, _path: str = "") -> dict:
    """A JSON-serialisable description of a plain ``nn.Sequential`` tree (nesting and child names preserved).

    Together with a state_dict it rebuilds the model via :func:`build_architecture` without pickle.  Raises
    :class:`UnsupportedLayerError` naming the offending path for anything the spec cannot describe exactly:
    subclasses (of ``nn.Sequential`` or of a layer) with their own ``forward``, unknown layer types, extra hooks.
    """
    where = _path or "<root>"
    t = type(module)
    hooks = _own_hooks(module)
    if hooks:
        raise UnsupportedLayerError(
            f"module {where!r} ({t.__name__}) has {hooks[0]} registered; an architecture spec cannot record hooks. "
            "Save it with a factory import path (prunebound.io.save_model(..., factory=...)) or load with module=")
    if t is nn.Sequential:
        return {
            "type": "Sequential",
            "children": [[name, architecture(c, f"{_path}.{name}" if _path else name)]
                         for name, c in module.named_children()],
        }
    if t not in _SPEC_ATTRS:
        hint = (" (a subclass of nn.Sequential has its own forward and is not a plain chain)"
                if isinstance(module, nn.Sequential) else "")
        raise UnsupportedLayerError(
            f"cannot describe module {where!r} of type {t.__name__} as an architecture spec{hint}; specs cover "
            "plain nn.Sequential trees of " + ", ".join(sorted(SPEC_LAYERS)) + ". Use a zoo model, save with "
            "factory='package.module:function', or load with module=")
    spec: dict = {"type": t.__name__}
    for a in _SPEC_ATTRS[t]:
        spec[a] = _jsonable(getattr(module, a))
    for a, default in _OPTIONAL.get(t, {}).items():
        v = getattr(module, a)
        if v != default:
            spec[a] = _jsonable(v)
    if isinstance(module, _WEIGHTED):
        spec["bias"] = module.bias is not None
    if t is nn.LayerNorm:
        spec["bias"] = module.bias is not None
    return spec


# ---------------------------------------------------------------------- validation without building
def _int(where: str, key: str, v, lo: int = 0, hi: int = MAX_DIM) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise DataError(f"architecture spec at {where!r}: {key} must be an integer in [{lo}, {hi}]; got {v!r:.80}")
    return v


def _ints(where: str, key: str, v, n: int, lo: int = 0) -> tuple[int, ...]:
    """An int or a list of ``n`` ints (PyTorch's ``_single`` / ``_pair`` convention)."""
    if isinstance(v, list):
        if len(v) != n:
            raise DataError(f"architecture spec at {where!r}: {key} must have {n} entries; got {v!r:.80}")
        return tuple(_int(where, key, a, lo) for a in v)
    return (_int(where, key, v, lo),) * n


def _float(where: str, key: str, v, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
        raise DataError(f"architecture spec at {where!r}: {key} must be a number in [{lo}, {hi}]; got {v!r:.80}")
    return float(v)


def _bool(where: str, key: str, v) -> bool:
    if not isinstance(v, bool):
        raise DataError(f"architecture spec at {where!r}: {key} must be true or false; got {v!r:.80}")
    return v


def _leaf_shapes(where: str, spec: Mapping) -> dict[str, tuple[int, ...]]:
    """Validate one leaf spec; return the state_dict entries (relative names) it implies, with shapes."""
    t = SPEC_LAYERS[spec["type"]]
    allowed = set(_SPEC_ATTRS[t]) | set(_OPTIONAL.get(t, {})) | {"type"}
    if t in _WEIGHTED or t is nn.LayerNorm:
        allowed.add("bias")
    missing = [a for a in _SPEC_ATTRS[t] if a not in spec]
    extra = sorted(set(spec) - allowed)
    if missing or extra:
        raise DataError(f"architecture spec at {where!r} ({t.__name__}): missing keys {missing}, unknown keys "
                        f"{extra}; allowed: {sorted(allowed)}")
    bias = _bool(where, "bias", spec.get("bias", True)) if "bias" in allowed else False
    if t is nn.Linear:
        i, o = _int(where, "in_features", spec["in_features"], 1), _int(where, "out_features", spec["out_features"], 1)
        return {"weight": (o, i), **({"bias": (o,)} if bias else {})}
    if t in (nn.Conv1d, nn.Conv2d):
        d = 1 if t is nn.Conv1d else 2
        i, o = _int(where, "in_channels", spec["in_channels"], 1), _int(where, "out_channels", spec["out_channels"], 1)
        k = _ints(where, "kernel_size", spec["kernel_size"], d, 1)
        _ints(where, "stride", spec["stride"], d, 1)
        _ints(where, "dilation", spec["dilation"], d, 1)
        if isinstance(spec["padding"], str):
            if spec["padding"] not in ("same", "valid"):
                raise DataError(f"architecture spec at {where!r}: padding must be an int, a list, 'same' or 'valid'")
        else:
            _ints(where, "padding", spec["padding"], d)
        g = _int(where, "groups", spec.get("groups", 1), 1)
        if i % g or o % g:
            raise DataError(f"architecture spec at {where!r}: groups={g} must divide in_channels={i} and "
                            f"out_channels={o}")
        if spec.get("padding_mode", "zeros") not in ("zeros", "reflect", "replicate", "circular"):
            raise DataError(f"architecture spec at {where!r}: unknown padding_mode {spec.get('padding_mode')!r:.40}")
        return {"weight": (o, i // g, *k), **({"bias": (o,)} if bias else {})}
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        c = _int(where, "num_features", spec["num_features"], 1)
        _float(where, "eps", spec["eps"], 0.0, 1.0)
        if spec["momentum"] is not None:
            _float(where, "momentum", spec["momentum"], 0.0, 1.0)
        aff = _bool(where, "affine", spec["affine"])
        trs = _bool(where, "track_running_stats", spec.get("track_running_stats", True))
        out: dict[str, tuple[int, ...]] = {"weight": (c,), "bias": (c,)} if aff else {}
        if trs:
            out.update({"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()})
        return out
    if t is nn.LayerNorm:
        ns = spec["normalized_shape"]
        shape = tuple(_int(where, "normalized_shape", a, 1) for a in (ns if isinstance(ns, list) else [ns]))
        if not 1 <= len(shape) <= 8:
            raise DataError(f"architecture spec at {where!r}: normalized_shape must have 1..8 entries")
        _float(where, "eps", spec["eps"], 0.0, 1.0)
        aff = _bool(where, "elementwise_affine", spec["elementwise_affine"])
        return ({"weight": shape, **({"bias": shape} if bias else {})}) if aff else {}
    # parameter-free layers: validate their arguments' types so that building cannot fail or allocate
    for a in _SPEC_ATTRS[t]:
        v = spec[a]
        if a in ("p", "negative_slope"):
            _float(where, a, v, 0.0 if a == "p" else -1e6, 1.0 if a == "p" else 1e6)
        elif a == "approximate":
            if v not in ("none", "tanh"):
                raise DataError(f"architecture spec at {where!r}: approximate must be 'none' or 'tanh'")
        elif a in ("start_dim", "end_dim", "dim"):
            _int(where, a, v, -64, 64)
        elif a == "stride" and v is None:
            continue
        elif a == "output_size":
            for e in v if isinstance(v, list) else [v]:
                if e is not None:
                    _int(where, a, e, 1)
        elif a == "unflattened_size":
            if not isinstance(v, list) or not 1 <= len(v) <= 8:
                raise DataError(f"architecture spec at {where!r}: unflattened_size must be a list of 1..8 ints")
            for e in v:
                _int(where, a, e, -1)
        else:  # kernel_size / stride / padding of pools
            for e in v if isinstance(v, list) else [v]:
                _int(where, a, e, 0, 1 << 16)
    return {}


def spec_state_shapes(spec, *, max_params: int | None = None) -> dict[str, tuple[int, ...]]:
    """Validate an (untrusted) spec and return ``{state_dict key: shape}`` of the module it describes.

    Nothing is built or allocated. Raises :class:`DataError` for malformed specs (wrong types, out-of-range
    sizes, too deep or too many nodes, bad child names), :class:`UnsupportedLayerError` for unknown layer types,
    and :class:`DataError` if the parameter count exceeds ``max_params``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    count = [0]

    def walk(node, prefix: str, depth: int) -> None:
        where = prefix or "<root>"
        count[0] += 1
        if count[0] > MAX_NODES:
            raise DataError(f"architecture spec has more than {MAX_NODES} nodes; refusing to build it")
        if depth > MAX_DEPTH:
            raise DataError(f"architecture spec is nested deeper than {MAX_DEPTH} levels at {where!r}")
        if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
            raise DataError(f"architecture spec at {where!r} must be a mapping with a string 'type'; "
                            f"got {node!r:.120}")
        if node["type"] == "Sequential":
            children = node.get("children")
            if not isinstance(children, list) or set(node) != {"type", "children"}:
                raise DataError(f"architecture spec at {where!r}: a Sequential needs exactly a 'children' list")
            seen = set()
            for item in children:
                if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                        or not _NAME.match(item[0]) or item[0] in seen):
                    raise DataError(f"architecture spec at {where!r}: each child must be [unique name, spec] "
                                    f"with a name of letters, digits and '_'; got {item!r:.120}")
                seen.add(item[0])
                walk(item[1], f"{prefix}.{item[0]}" if prefix else item[0], depth + 1)
            return
        if node["type"] not in SPEC_LAYERS:
            raise UnsupportedLayerError(f"architecture spec at {where!r} names unsupported layer type "
                                        f"{node['type']!r:.60}; known: {sorted(SPEC_LAYERS)}")
        for k, shp in _leaf_shapes(where, node).items():
            shapes[f"{prefix}.{k}" if prefix else k] = shp

    walk(spec, "", 0)
    if max_params is not None:
        n = sum(math.prod(s) for s in shapes.values())
        if n > max_params:
            raise DataError(f"architecture spec describes {n:,} parameters and buffers, over the budget of "
                            f"{max_params:,} (raise max_params= if the file is trusted)")
    return shapes


def build_architecture(spec: Mapping, *, device: str | torch.device | None = None) -> nn.Module:
    """Inverse of :func:`architecture`: a freshly initialised module of the described shape.

    The spec is validated first (:func:`spec_state_shapes`); ``device="meta"`` builds it without allocating.
    """
    spec_state_shapes(spec)
    with torch.device(device) if device is not None else _nullctx():
        return _build(spec)


class _nullctx:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _build(spec: Mapping) -> nn.Module:
    if spec["type"] == "Sequential":
        seq = nn.Sequential()
        for name, child in spec["children"]:
            seq.add_module(str(name), _build(child))
        return seq
    t = SPEC_LAYERS[spec["type"]]
    kwargs = {}
    for a in (*_SPEC_ATTRS[t], *_OPTIONAL.get(t, {})):
        if a in spec:
            v = spec[a]
            kwargs[a] = tuple(v) if isinstance(v, list) else v
    if t in _WEIGHTED or t is nn.LayerNorm:
        kwargs["bias"] = bool(spec.get("bias", True))
    return t(**kwargs)
