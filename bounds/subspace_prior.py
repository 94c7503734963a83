"""The prior point ``θ0`` of the subspace bound (Lotfi et al. 2022, Sec. 4; see :mod:`prunebound.bounds.subspace`).

``θ0`` depends only on the model's *architecture* and seeds, never on its weights: a plain ``nn.Sequential`` tree
is rebuilt from its architecture spec under ``torch.manual_seed(init_seed)`` (:func:`init_route` ``"spec"``); any
other traceable model (a class with its own ``forward``, residual adds, ``torch.cat``; BatchNorm folded first) is
deep-copied and every parameter-holding submodule calls its own ``reset_parameters()`` in ``named_modules`` order
under the same seed (``"reset_parameters"``).  :func:`architecture_sha256` fingerprints the architecture (values
excluded) so that ``verify`` can tell a certificate made for another architecture; with ``prior_fraction > 0``
the seeded init is trained on a seeded split of the data (:func:`prior_init`) and :func:`prior_sha256` hashes it.
Re-exported by :mod:`prunebound.bounds.subspace`.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import DataError, UnsupportedLayerError, check_probability
from prunebound.network import Network, architecture, build_architecture, clone, is_pruned, to_vector
from prunebound.train import fit

__all__ = ["init_route", "architecture_sha256", "prior_sha256", "prior_init"]


# ---------------------------------------------------------------------------------------------- the prior
def init_route(module: nn.Module) -> str:
    """How ``θ0`` is built for ``module``'s architecture: ``"spec"`` for a plain ``nn.Sequential`` tree (rebuilt
    from its :func:`~prunebound.network.architecture` spec, as in the first version of this module, so old
    certificates still verify) or ``"reset_parameters"`` for any other traceable model (a deep copy whose every
    parameter-holding submodule calls its own ``reset_parameters()``, in ``named_modules`` order)."""
    try:
        architecture(Network.from_module(module).module)
    except UnsupportedLayerError:
        return "reset_parameters"
    return "spec"


def _reinitialized(base: nn.Module) -> nn.Module:
    """A deep copy of ``base`` in which every submodule that holds parameters or buffers re-initialises them with
    its own ``reset_parameters()`` (the caller seeds the RNG).  Nothing of ``base``'s values survives: a submodule
    holding tensors but lacking ``reset_parameters`` is refused (its trained values would leak into the prior)."""
    out = clone(base)
    for name, m in out.named_modules():
        own = list(m.parameters(recurse=False)) + [b for b in m.buffers(recurse=False) if b is not None]
        if not own:
            continue
        if is_pruned(m):
            raise UnsupportedLayerError(
                f"layer {name!r} is pruned; subspace training needs an unpruned architecture")
        reset = getattr(m, "reset_parameters", None)
        if not callable(reset):
            raise UnsupportedLayerError(
                f"the subspace bound's prior θ0 is a seeded re-initialisation of the architecture, but submodule "
                f"{name or '<root>'!r} ({type(m).__name__}) holds parameters/buffers and has no reset_parameters(); "
                "give it one (or build the model from torch.nn layers)")
        reset()
    return out


def architecture_sha256(module: nn.Module) -> str:
    """SHA-256 of the architecture as the subspace prior sees it (values excluded): every submodule's path, class
    and ``extra_repr`` (strides, padding, groups, ...), every parameter/buffer's name, shape and dtype, and the
    captured graph's nodes (op kinds, targets, inputs, constant arguments) of the BatchNorm-folded model."""
    import hashlib

    net = Network.from_module(module)
    base = net.module
    rows: list[str] = []
    for name, m in base.named_modules():
        rows.append(f"M {name} {type(m).__module__}.{type(m).__qualname__} {m.extra_repr()}")
    for name, t in list(base.named_parameters()) + list(base.named_buffers()):
        rows.append(f"T {name} {tuple(t.shape)} {t.dtype}")
    for n in net.graph.nodes:
        rows.append(f"N {n.name} {n.kind} {n.target} {n.inputs} {n.path} {n.args!r} {n.kwargs!r}")
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _seeded_init(module: nn.Module, init_seed: int) -> nn.Module:
    base = Network.from_module(module).module  # BatchNorm folded into a copy
    route = init_route(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(init_seed))
        if route == "spec":
            return build_architecture(architecture(base))
        return _reinitialized(base)


def prior_sha256(theta0: torch.Tensor | nn.Module) -> str:
    """SHA-256 of the float32 little-endian bytes of the flat prior point ``θ0``."""
    import hashlib

    v = to_vector(theta0) if isinstance(theta0, nn.Module) else theta0
    return hashlib.sha256(v.detach().to(torch.float32).cpu().contiguous().numpy().tobytes()).hexdigest()


def prior_init(module: nn.Module, data: Dataset | None = None, *, init_seed: int, prior_fraction: float = 0.0,
               split_seed: int = 0, prior_epochs: int = 20, prior_lr: float = 1e-2,
               prior_batch_size: int = 128, prior_schedule: str | None = None,
               prior_threads: int | None = None) -> tuple[nn.Module, Dataset | None]:
    """The prior point ``θ0`` as a module, and the part of ``data`` the bound may use.

    ``prior_fraction == 0``: the architecture of ``module`` freshly initialised under ``torch.manual_seed(
    init_seed)`` (data-independent); returns ``(init, data)``.  ``prior_fraction = α in (0, 1)``: ``data`` is
    split with :meth:`Dataset.split` (``seed=split_seed``) into a prior part (``round(α N)`` examples) and a
    bound part; the seeded init is trained on the prior part with Adam (:func:`prunebound.train.fit`,
    deterministic given the seeds, ``prior_schedule`` and ``prior_threads`` torch threads); returns
    ``(trained init, bound part)``.
    """
    init = _seeded_init(module, init_seed)
    if prior_fraction == 0:
        return init, data
    check_probability("prior_fraction", prior_fraction)
    if data is None:
        raise DataError("a data-dependent prior (prior_fraction > 0) needs data")
    prior_part, bound_part = data.split(prior_fraction, seed=split_seed)
    fit(init, prior_part, epochs=prior_epochs, lr=prior_lr, batch_size=prior_batch_size, seed=int(init_seed),
        optimizer="adam", schedule=prior_schedule, threads=prior_threads, desc="prior")
    return init, bound_part
