"""Safe model IO: checkpoints hold tensors plus a JSON header; nothing is ever unpickled, nothing is trusted.

A checkpoint written by :func:`save_model` is either a ``torch.save`` zip archive of plain containers (loadable
with ``torch.load(weights_only=True)``)::

    {"format": "prunebound-model-v2", "header": <JSON string>, "state_dict": {name: tensor}}

or a ``.safetensors`` file (header in the metadata).  The header records

* ``reference`` -- how to rebuild the module: an architecture ``spec`` (plain ``nn.Sequential`` trees only, see
  :mod:`prunebound.archspec`), a ``zoo`` reference ``{"name", "kwargs"}`` (:mod:`prunebound.zoo`), an ``import``
  path ``package.module:factory`` with keyword arguments, or ``none`` (then ``load_model(path, module=...)``);
* ``dtypes`` of the tensors (a float64 model stays float64), ``tied`` parameter groups (stored once, re-tied on
  load), the names of pruned parameters (restored as ``torch.nn.utils.prune`` masks);
* a ``fingerprint``: the model's outputs (eval mode) on a few seeded inputs of a recorded shape.  On load the
  rebuilt model must reproduce them, or :class:`~prunebound.errors.DataError` is raised -- a reloaded model
  never silently computes something else.

Loading an untrusted file (issue 14):

1. (:mod:`prunebound.checkpoint_file`) the file is sniffed before any parser sees it: zip archives must have
   the members ``torch.save`` writes, stored uncompressed, with sizes inside the file (so nothing larger than
   the file is ever allocated); safetensors headers are checked against the file size; random bytes, text,
   gzip, legacy pickles are named as what they are and refused;
2. ``torch.load(weights_only=True)``: a pickle that needs anything but tensors and containers is refused with
   :class:`~prunebound.errors.UnsafeCheckpointError` (PyTorch's advice to pass ``weights_only=False`` is never
   passed on);
3. the header is validated (types, sizes) and the reference checked against the stored tensor shapes and a
   parameter budget *before* any layer is built: specs by computing their shapes
   (:func:`prunebound.archspec.spec_state_shapes`), zoo models by building them on the ``meta`` device;
4. the module is built on ``meta`` and the file's tensors assigned to it (no second copy), masks re-applied,
   tied parameters re-tied, non-finite values refused, the fingerprint checked.

Import paths run code when imported, so they are followed only with ``allow_import=True`` (CLI
``--allow-import``).  Output files are written atomically (temporary file + rename in the same folder) and a
symlinked target is refused.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.utils.prune as tprune
from torch import nn

from prunebound.archspec import architecture as _architecture
from prunebound.archspec import build_architecture, spec_state_shapes
from prunebound.checkpoint_file import FINGERPRINT_N, FINGERPRINT_SEED, FORMAT, IMPORT_PATH, read_checkpoint
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    PruneboundError,
    UnsafeCheckpointError,
    UnsupportedLayerError,
    check_finite_module,
)

__all__ = ["save_model", "load_model", "load_state_dict_safe", "read_header", "FORMAT", "MAX_PARAMS"]

MAX_PARAMS = 2_000_000_000  # default budget: elements in all tensors a reference may describe
_TOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}


# =============================================================================================== saving
def _check_output_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_symlink():
        raise InvalidParameterError(f"output path {p} is a symbolic link; refusing to write through it "
                                    "(remove the link or choose another path)")
    if p.exists() and not p.is_file():
        raise InvalidParameterError(f"output path {p} exists and is not a regular file")
    if p.parent.exists() and not p.parent.is_dir():
        raise InvalidParameterError(f"output folder {p.parent} is not a directory")
    return p


def _atomic_write(p: Path, write) -> None:
    """Write via ``write(fileobj)`` to a temporary file in ``p``'s folder, fsync, then rename over ``p``."""
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        from prunebound.files import new_file_mode

        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if p.is_symlink():  # appeared meanwhile: still refuse
            raise InvalidParameterError(f"output path {p} is a symbolic link; refusing to write through it")
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _tie_groups(module: nn.Module) -> list[list[str]]:
    """Names of parameters that are the same ``nn.Parameter`` object (first name = where it is stored)."""
    by_id: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    return [names for names in by_id.values() if len(names) > 1]


def _pruned_params(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """``path.name`` of every parameter with ``name_orig`` and ``name_mask`` entries (``torch.nn.utils.prune``)."""
    return sorted(k[: -len("_orig")] for k in sd if k.endswith("_orig") and k[: -len("_orig")] + "_mask" in sd)


def _reference(module: nn.Module, factory: str | None, kwargs: Mapping | None) -> dict:
    if factory is not None:
        if not isinstance(factory, str) or not IMPORT_PATH.match(factory):
            raise InvalidParameterError(f"factory must be an import path 'package.module:function'; got {factory!r}")
        kw = dict(kwargs or {})
        try:
            json.dumps(kw, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidParameterError(f"factory kwargs must be JSON-serialisable; {e}") from None
        return {"kind": "import", "target": factory, "kwargs": kw}
    if kwargs:
        raise InvalidParameterError("kwargs= is only meaningful together with factory=")
    from prunebound.zoo import REGISTRY, ZooModel

    if isinstance(module, ZooModel) and module.zoo_name in REGISTRY and type(module) in _zoo_classes():
        from prunebound.zoo import build

        shell = build(module.zoo_name, device="meta", **module.zoo_kwargs)
        own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        if own == _expected_names({k: tuple(v.shape) for k, v in shell.state_dict().items()}, _pruned_params(own)):
            return {"kind": "zoo", "name": module.zoo_name, "kwargs": dict(module.zoo_kwargs)}
        folded = _folded(shell)  # the BatchNorm-folded copy that Network-based methods (pruning) return
        if folded is not None and own == _expected_names(
                {k: tuple(v.shape) for k, v in folded.state_dict().items()}, _pruned_params(own)):
            return {"kind": "zoo", "name": module.zoo_name, "kwargs": dict(module.zoo_kwargs), "folded": True}
        return {"kind": "none"}  # edited after construction: the zoo reference would rebuild something else
    try:
        return {"kind": "spec", "spec": _architecture(module)}
    except UnsupportedLayerError:
        return {"kind": "none"}


def _folded(shell: nn.Module) -> nn.Module | None:
    """``shell`` (a zoo model on the meta device) with every BatchNorm folded into the layer before it
    (:func:`prunebound.network.fold_batchnorm`: BN becomes Identity, the layer gains a bias), or ``None`` if it
    has no BatchNorm.  The loaded tensors then overwrite the folded (meta) values; the fingerprint checks the
    result."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in shell.modules()):
        return None
    from prunebound.network import fold_batchnorm

    try:
        return fold_batchnorm(shell)
    except PruneboundError:
        return None


def _zoo_classes() -> tuple[type, ...]:
    from prunebound import zoo

    return (zoo.CifarResNet, zoo.VGG, zoo.MobileNet, zoo.DenseNet)


def _first_weighted(module: nn.Module) -> nn.Module | None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Unflatten)):
            return m
    return None


def _infer_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """The zoo's recorded input shape, else the first shape among common candidates on which ``module`` runs."""
    shp = getattr(module, "input_shape", None)
    if isinstance(shp, tuple) and all(isinstance(s, int) for s in shp):
        return shp
    first = _first_weighted(module)
    if isinstance(first, nn.Linear):
        cands = [(first.in_features,)]
    elif isinstance(first, nn.Unflatten) and first.dim == 1:
        cands = [(math.prod(first.unflattened_size),)]
    elif isinstance(first, nn.Conv1d):
        cands = [(first.in_channels, L) for L in (40, 32, 28, 64, 16, 100, 128, 256)]
    elif isinstance(first, nn.Conv2d):
        cands = [(first.in_channels, s, s) for s in (28, 32, 8, 16, 64, 96, 224)]
    else:
        return None
    for c in cands:
        if _outputs(module, c) is not None:
            return c
    return None


def _fingerprint_inputs(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(FINGERPRINT_SEED)
    return torch.randn((FINGERPRINT_N, *shape), generator=g, dtype=torch.float64).to(dtype)


def _param_dtype(module: nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in module.parameters():
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float32, torch.device("cpu")


def _outputs(module: nn.Module, shape: tuple[int, ...]) -> torch.Tensor | None:
    """``module`` (eval mode, no grad) on the seeded fingerprint inputs, or None if it does not run on them."""
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            dtype, device = _param_dtype(module)
            out = module(_fingerprint_inputs(shape, dtype).to(device))
    except Exception:  # any failure means "this shape does not fit"; the caller decides what to do
        return None
    finally:
        module.train(was)
    return out.detach().cpu() if isinstance(out, torch.Tensor) else None


def save_model(module: nn.Module, path: str | os.PathLike, *, factory: str | None = None,
               kwargs: Mapping | None = None, input_shape: tuple[int, ...] | None = None) -> Path:
    """Save ``module`` (tensors, masks, dtype, tied weights, a reference to rebuild it, a fingerprint) to ``path``.

    ``path`` ending in ``.safetensors`` gives a safetensors file, anything else a ``torch.save`` zip archive; the
    file is written atomically and a symlinked ``path`` is refused.  The reference is ``factory``
    (``"package.module:function"``, called with ``kwargs`` on load when the loader allows imports) if given, a
    zoo reference for :mod:`prunebound.zoo` models, an architecture spec for plain ``nn.Sequential`` trees, and
    ``none`` otherwise (load it with ``load_model(path, module=...)``).  ``input_shape`` (without the batch
    dimension) sets the fingerprint inputs; by default it is the zoo model's input shape or inferred from the
    first layer.  Saving runs the model (eval mode, no gradients, training mode restored) on those inputs.
    """
    if not isinstance(module, nn.Module):
        raise InvalidParameterError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    p = _check_output_path(path)
    ref = _reference(module, factory, kwargs)
    ties = _tie_groups(module)
    full = module.state_dict()
    pruned = _pruned_params(full)
    for group in ties:
        for name in group:
            if name.endswith("_orig") and name[: -len("_orig")] in pruned:
                raise UnsupportedLayerError(f"parameter {name!r} is both pruned and tied to {group}; "
                                            "remove the pruning or the tie before saving")
    aliases = {a for group in ties for a in group[1:]}
    sd = {k: v.detach().cpu().contiguous() for k, v in full.items() if k not in aliases}
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else _infer_input_shape(module)
    fingerprint = None
    if shape is not None:
        out = _outputs(module, shape)
        if out is None and input_shape is not None:
            raise InvalidParameterError(f"module does not run on inputs of shape (N, {', '.join(map(str, shape))}) "
                                        "given as input_shape")
        if out is not None and bool(torch.isfinite(out).all()):  # non-finite models: refused on load anyway
            fingerprint = {"input_shape": list(shape), "n": FINGERPRINT_N, "seed": FINGERPRINT_SEED,
                           "output_shape": list(out.shape), "outputs": out.to(torch.float64).reshape(-1).tolist()}
    header = {
        "format": FORMAT,
        "reference": ref,
        "dtypes": {k: str(v.dtype) for k, v in sd.items()},
        "tied": ties,
        "pruned": pruned,
        "fingerprint": fingerprint,
        "torch": torch.__version__,
    }
    htext = json.dumps(header, sort_keys=True, allow_nan=False)
    if p.suffix == ".safetensors":
        from safetensors.torch import save as st_save

        blob = st_save({k: v.clone() for k, v in sd.items()}, metadata={"format": FORMAT, "header": htext})
        _atomic_write(p, lambda f: f.write(blob))
    else:
        _atomic_write(p, lambda f: torch.save({"format": FORMAT, "header": htext, "state_dict": sd}, f))
    return p


def load_state_dict_safe(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Read tensors (and the architecture spec, if the file records one) from ``path`` without executing code.

    Tied parameters stored once are expanded to every name, so the result loads into the module directly.
    """
    p = Path(path)
    sd, header, _ = read_checkpoint(p)
    if header is None:
        return sd, None
    sd = _expand_ties(p, sd, header["tied"])
    ref = header["reference"]
    return sd, (ref.get("spec") if ref.get("kind") == "spec" else None)


def read_header(path: str | os.PathLike) -> dict | None:
    """The validated JSON header of a prunebound checkpoint (None for a bare state_dict)."""
    return read_checkpoint(Path(path))[1]


# =============================================================================================== loading
def _expand_ties(p: Path, sd: dict[str, torch.Tensor], tied: list) -> dict[str, torch.Tensor]:
    out = dict(sd)
    for group in tied:
        if (not isinstance(group, list) or len(group) < 2 or not all(isinstance(n, str) for n in group)
                or len(set(group)) != len(group)):
            raise DataError(f"{p}: header field 'tied' must be a list of lists of distinct names; got {group!r:.80}")
        canon = group[0]
        if canon not in sd:
            raise DataError(f"{p}: tied group {group} names {canon!r}, which the file does not store")
        for alias in group[1:]:
            if alias in out:
                raise DataError(f"{p}: tied group {group}: {alias!r} is stored separately, so the tie is a lie")
            out[alias] = sd[canon]
    return out


def _expected_names(shapes: Mapping[str, tuple[int, ...]], pruned: list[str]) -> dict[str, tuple[int, ...]]:
    """State-dict names/shapes of a module after ``torch.nn.utils.prune`` reparametrises ``pruned``."""
    out = dict(shapes)
    for name in pruned:
        if name in out:
            shp = out.pop(name)
            out[name + "_orig"] = shp
            out[name + "_mask"] = shp
    return out


def _compare_shapes(p: Path, expected: Mapping[str, tuple[int, ...]], sd: Mapping[str, torch.Tensor],
                    what: str) -> None:
    missing = sorted(set(expected) - set(sd))
    extra = sorted(set(sd) - set(expected))
    if missing or extra:
        raise DataError(f"{p}: the stored tensors do not match the {what}: missing {missing[:5]}, unexpected "
                        f"{extra[:5]}")
    for k, shp in expected.items():
        if tuple(sd[k].shape) != tuple(shp):
            raise DataError(f"{p}: tensor {k!r} has shape {tuple(sd[k].shape)}; the {what} needs {tuple(shp)}")


def _check_masks(p: Path, sd: Mapping[str, torch.Tensor], pruned: list[str]) -> None:
    for name in pruned:
        orig, mask = sd.get(name + "_orig"), sd.get(name + "_mask")
        if orig is None or mask is None:
            raise DataError(f"{p}: pruned parameter {name!r} lacks {name}_orig / {name}_mask")
        if mask.shape != orig.shape:
            raise DataError(f"{p}: mask of {name!r} has shape {tuple(mask.shape)}; the weight has "
                            f"{tuple(orig.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise DataError(f"{p}: mask of {name!r} holds values other than 0 and 1")


def _budget(p: Path, n: int, max_params: int) -> None:
    if n > max_params:
        raise UnsafeCheckpointError(f"{p}: the model would hold {n:,} parameters and buffers, over the budget "
                                    f"max_params={max_params:,} (raise it if you trust the file)")


def _build_meta(p: Path, ref: Mapping, sd: Mapping[str, torch.Tensor], pruned: list[str], max_params: int,
                allow_import: bool) -> tuple[nn.Module, bool]:
    """The module named by ``ref``; on the meta device (True) when it can be checked before allocation."""
    kind = ref.get("kind")
    if kind == "spec":
        try:
            shapes = spec_state_shapes(ref.get("spec"), max_params=None)
        except (DataError, UnsupportedLayerError) as e:
            raise type(e)(f"{p}: {e}") from None
        _compare_shapes(p, _expected_names(shapes, pruned), sd, "architecture spec")
        _budget(p, sum(math.prod(s) for s in shapes.values()), max_params)
        return build_architecture(ref["spec"], device="meta"), True
    if kind == "zoo":
        from prunebound.zoo import REGISTRY, build

        name, kw = ref.get("name"), ref.get("kwargs")
        if not isinstance(name, str) or not isinstance(kw, dict):
            raise DataError(f"{p}: zoo reference needs a name and a kwargs object; got {ref!r:.120}")
        try:
            if name not in REGISTRY:
                raise InvalidParameterError(f"unknown architecture {name!r:.60}")
            kw = REGISTRY[name].validate(name, kw)  # before build(): keys like 'device' must not reach it
            shell = build(name, device="meta", max_params=max_params, **kw)
        except InvalidParameterError as e:
            raise DataError(f"{p}: zoo reference rejected: {e}") from None
        if ref.get("folded", False) is not False:
            if ref["folded"] is not True:
                raise DataError(f"{p}: zoo reference field 'folded' must be true or absent")
            shell = _folded(shell)
            if shell is None:
                raise DataError(f"{p}: zoo model {name!r} has no BatchNorm to fold, but the reference says folded")
        shapes = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
        _compare_shapes(p, _expected_names(shapes, pruned), sd, f"zoo model {name!r}")
        return shell, True
    if kind == "import":
        target, kw = ref.get("target"), ref.get("kwargs", {})
        if not isinstance(target, str) or not IMPORT_PATH.match(target) or not isinstance(kw, dict):
            raise DataError(f"{p}: import reference must be 'package.module:function' with a kwargs object")
        if not allow_import:
            raise UnsafeCheckpointError(
                f"{p}: the checkpoint names the factory {target!r}; importing it runs code. Pass allow_import=True "
                "(CLI: --allow-import) if you trust the file, or load into your own instance with module=")
        mod_name, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(mod_name)
            for a in attr.split("."):
                obj = getattr(obj, a)
        except (ImportError, AttributeError) as e:
            raise DataError(f"{p}: cannot import factory {target!r} ({e})") from None
        try:
            module = obj(**kw)
        except (TypeError, ValueError) as e:  # wrong keyword arguments recorded in the file
            raise DataError(f"{p}: factory {target!r} refused the recorded kwargs {kw!r:.120} ({e})") from None
        if not isinstance(module, nn.Module):
            raise DataError(f"{p}: factory {target!r} returned a {type(module).__name__}, not an nn.Module")
        return module, False
    if kind == "none":
        raise DataError(f"{p}: the checkpoint records no architecture (the model was neither a zoo model, a plain "
                        "nn.Sequential nor saved with factory=); pass module=YourModel() to load into it")
    raise DataError(f"{p}: unknown reference kind {kind!r:.40}")


def _set_dtypes(module: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Give every parameter/buffer of ``module`` the dtype of the stored tensor (never downcast on load)."""
    for name, t in sd.items():
        path, _, attr = name.rpartition(".")
        try:
            owner = module.get_submodule(path) if path else module
        except AttributeError:
            continue
        cur = owner._parameters.get(attr) if attr in owner._parameters else owner._buffers.get(attr)
        if cur is None or cur.dtype == t.dtype:
            continue
        if attr in owner._parameters:
            cur.data = cur.data.to(t.dtype)
        else:
            owner._buffers[attr] = cur.to(t.dtype)


def _retie(p: Path, module: nn.Module, tied: list[list[str]]) -> None:
    for group in tied:
        try:
            canon = module.get_parameter(group[0])
            for alias in group[1:]:
                path, _, attr = alias.rpartition(".")
                owner = module.get_submodule(path) if path else module
                if not isinstance(owner._parameters.get(attr), torch.Tensor):
                    raise AttributeError(alias)
                if owner._parameters[attr] is not canon:
                    owner._parameters[attr] = canon
        except AttributeError:
            raise DataError(f"{p}: tied group {group} names something that is not a parameter of the model") from None


def _refresh_pruned(module: nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            for hook in list(m._forward_pre_hooks.values()):
                if isinstance(hook, tprune.BasePruningMethod):
                    names = [h._tensor_name for h in hook._pruning_methods] if isinstance(
                        hook, tprune.PruningContainer) else [hook._tensor_name]
                    for n in names:
                        setattr(m, n, (getattr(m, n + "_orig") * getattr(m, n + "_mask")).detach())


def load_model(path: str | os.PathLike, *, architecture: Mapping | None = None, module: nn.Module | None = None,
               allow_import: bool = False, max_params: int = MAX_PARAMS, check_finite: bool = True,
               check_fingerprint: bool = True) -> nn.Module:
    """Load a checkpoint written by :func:`save_model` (or a bare state_dict with ``architecture``/``module``).

    The module is rebuilt from the file's reference (spec, zoo, or -- only with ``allow_import=True`` -- import
    path), or the tensors are loaded into ``module`` (converted to the file's dtypes).  Pruned parameters come
    back as ``torch.nn.utils.prune`` masks, tied parameters re-tied, and the file's fingerprint is checked.
    Returns the module in eval mode.

    Raises :class:`DataError` for files that are not checkpoints, malformed or inconsistent ones (shapes,
    masks, ties, NaN, fingerprint), :class:`UnsafeCheckpointError` for files that would run code (pickled
    objects, an import path without ``allow_import``) or exceed ``max_params``.
    """
    p = Path(path)
    sd, header, _ = read_checkpoint(p)
    if header is None:
        header = {"reference": {"kind": "none"}, "tied": [], "pruned": None, "fingerprint": None}
    pruned = _pruned_params(sd) if header.get("pruned") is None else header["pruned"]
    if not all(isinstance(n, str) for n in pruned) or sorted(pruned) != _pruned_params(sd):
        raise DataError(f"{p}: header lists pruned parameters {pruned[:5]} but the tensors hold masks for "
                        f"{_pruned_params(sd)[:5]}")
    if header.get("dtypes") is not None and header["dtypes"] != {k: str(v.dtype) for k, v in sd.items()}:
        raise DataError(f"{p}: header dtypes disagree with the stored tensors (dtype trick?)")
    _check_masks(p, sd, pruned)
    sd = _expand_ties(p, sd, header["tied"])
    _budget(p, sum(t.numel() for t in sd.values()), max_params)
    if module is not None:
        if not isinstance(module, nn.Module):
            raise InvalidParameterError(f"module must be a torch.nn.Module; got {type(module).__name__}")
        on_meta = False
    else:
        ref = {"kind": "spec", "spec": architecture} if architecture is not None else header["reference"]
        module, on_meta = _build_meta(p, ref, sd, pruned, max_params, allow_import)
    own_ties = sorted(sorted(g) for g in _tie_groups(module))
    if own_ties and own_ties != sorted(sorted(g) for g in header["tied"]):
        raise DataError(f"{p}: the module ties parameters {own_ties} but the file records ties {header['tied']}; "
                        "loading would overwrite one tied copy with the other")
    for name in pruned:  # reparametrise as torch.nn.utils.prune does
        mpath, _, attr = name.rpartition(".")
        try:
            owner = module.get_submodule(mpath) if mpath else module
        except AttributeError:
            raise DataError(f"{p}: pruned parameter {name!r} has no module in the model") from None
        if isinstance(getattr(owner, attr + "_mask", None), torch.Tensor):
            continue  # already pruned (a user's instance): load_state_dict sets orig and mask
        if not isinstance(owner._parameters.get(attr), torch.Tensor):
            raise DataError(f"{p}: the model has no parameter {name!r} to restore its pruning mask on")
        tprune.custom_from_mask(owner, attr, sd[name + "_mask"].to(owner._parameters[attr].device))
    if on_meta:  # spec / zoo models are built in one floating dtype: a file that mixes or swaps dtypes lies
        kinds = {str(sd[n].dtype) for n, _ in module.named_parameters() if n in sd}
        if len(kinds) > 1 or any(not sd[n].is_floating_point() for n, _ in module.named_parameters() if n in sd):
            raise DataError(f"{p}: parameters stored with dtypes {sorted(kinds)}; a {ref['kind']} model has one "
                            "floating-point dtype (dtype trick?)")
    try:
        if on_meta:
            module.load_state_dict(sd, strict=True, assign=True)
        else:
            _set_dtypes(module, sd)
            module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise DataError(f"{p}: state_dict does not match the model: {str(e).splitlines()[-1][:300]}") from None
    _retie(p, module, header["tied"])
    _refresh_pruned(module)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise DataError(f"{p}: the file does not provide {left[:5]}")
    if check_finite:
        check_finite_module(module)
    module.eval()
    fp = header.get("fingerprint")
    if check_fingerprint and fp is not None:
        _check_fingerprint(p, module, fp)
    return module


def _check_fingerprint(p: Path, module: nn.Module, fp: Mapping) -> None:
    out = _outputs(module, tuple(fp["input_shape"]))
    ref = torch.tensor(fp["outputs"], dtype=torch.float64)
    if out is None or list(out.shape) != list(fp["output_shape"]) or out.numel() != ref.numel():
        raise DataError(f"{p}: the reloaded model does not run on its recorded fingerprint inputs "
                        f"(N, {fp['input_shape']}) or gives outputs of another shape")
    got = out.to(torch.float64).reshape(-1)
    tol = _TOL.get(out.dtype, 1e-4) * max(1.0, float(ref.abs().max()) if ref.numel() else 1.0)
    diff = float((got - ref).abs().max()) if ref.numel() else 0.0
    if not diff <= tol:
        raise DataError(f"{p}: fingerprint mismatch -- the reloaded model computes different outputs than the "
                        f"saved one (max |difference| {diff:.3g} > tolerance {tol:.3g}): the file is inconsistent, or "
                        "the module= given computes differently (check_fingerprint=False only if intended)")
