"""Safe model IO: checkpoints hold an architecture spec (JSON) plus tensors; nothing is ever unpickled.

Format written by :func:`save_model` (``torch.save`` of plain containers, loadable with ``weights_only=True``)::

    {"format": "prunebound-model-v1", "architecture": <JSON string>, "state_dict": {name: tensor}}

Pruned models keep their ``weight_orig`` / ``weight_mask`` entries; :func:`load_model` rebuilds the module from
the architecture, re-applies the masks, then loads the state_dict, so the result is an ordinary pruned PyTorch
model.  ``.safetensors`` files are also supported (architecture in the metadata).

:func:`load_model` uses ``torch.load(..., weights_only=True)``: a pickle that would run code is refused with
:class:`~prunebound.errors.UnsafeCheckpointError`.  A bare ``state_dict`` is accepted only together with an
``architecture=`` (or a ``module=`` to load into).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from prunebound.errors import DataError, UnsafeCheckpointError, check_finite_module
from prunebound.network import apply_masks, architecture, build_architecture

__all__ = ["save_model", "load_model", "load_state_dict_safe", "FORMAT"]

FORMAT = "prunebound-model-v1"


def save_model(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``module`` (architecture + state_dict, masks included) to ``path`` (``.pt`` or ``.safetensors``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arch = json.dumps(architecture(module), sort_keys=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if p.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(p), metadata={"format": FORMAT, "architecture": arch})
    else:
        torch.save({"format": FORMAT, "architecture": arch, "state_dict": sd}, p)
    return p


def load_state_dict_safe(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Read tensors (and the architecture, if recorded) from ``path`` without executing any code."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise DataError(f"{p}: not a valid safetensors file ({e})") from e
        arch = json.loads(meta["architecture"]) if "architecture" in meta else None
        return sd, arch
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"{p}: refused to load -- the file contains pickled objects that are not plain tensors/containers "
            f"(loading it could execute code). Re-save the model's state_dict, or use prunebound.io.save_model. "
            f"Details: {str(e).splitlines()[0]}"
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise DataError(f"{p}: not a readable PyTorch checkpoint ({e})") from e
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        return dict(obj["state_dict"]), json.loads(obj["architecture"])
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in obj.items()):
        return dict(obj), None
    raise DataError(
        f"{p}: checkpoint is not a state_dict (expected a mapping of names to tensors or a prunebound model file, "
        f"got {type(obj).__name__})"
    )


def load_model(path: str | os.PathLike, *, architecture: Mapping | None = None,
               module: nn.Module | None = None, check_finite: bool = True) -> nn.Module:
    """Load a model saved by :func:`save_model` (or a bare state_dict with ``architecture``/``module`` given).

    Masks present in the state_dict (``*.weight_mask``) are re-applied with ``torch.nn.utils.prune`` first.
    """
    sd, arch = load_state_dict_safe(path)
    if module is None:
        spec = architecture if architecture is not None else arch
        if spec is None:
            raise DataError(f"{path}: a bare state_dict has no architecture; pass architecture= or module=")
        module = build_architecture(spec)
    masks = {k[: -len(".weight_mask")]: v for k, v in sd.items() if k.endswith(".weight_mask")}
    if masks:
        apply_masks(module, masks)
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise DataError(f"{path}: state_dict does not match the architecture: {e}") from e
    if check_finite:
        check_finite_module(module)
    module.eval()
    return module
