"""One entry point for every coreset method, and the plumbing the methods share.

``prune(module, data, method=..., eps=...)`` returns a :class:`~prunebound.pruning.PruneResult` (the pruned copy
in ``.module``, the method's :class:`Guarantee` in ``.guarantee``); with ``sparsity`` (or its complement
``keep_ratio``) instead of ``eps`` the sample-size formula is inverted without re-pruning for CoreNet, SiPP and
PFP: their sensitivities are computed once, ``eps`` is solved on the expected kept fraction
(:mod:`prunebound.coresets.keep_ratio`), and one pruning pass runs at that ``eps`` -- its result is exactly
``method(eps=that eps, seed=seed)``. Data-independent coresets (cheap, no data) keep a bisection on ``log eps``
with one pass per step. CoreNet with ``keep_ratio`` allocates the error uniformly across layers
(``propagate=False`` unless given; its certified end-to-end ``eps`` is in ``extra["eps_end_to_end"]``).

Plumbing: :func:`prepare` validates arguments and deep-copies the module (the input is never modified);
:func:`set_layer` writes a reweighted weight into ``weight_orig`` and the mask through
:func:`prunebound.network.apply_masks`, so that the effective weight is ``weight_orig * weight_mask``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import torch
from torch import nn

from prunebound.coresets.guarantee import Guarantee
from prunebound.data import Dataset, as_dataset
from prunebound.defaults import DEFAULT_DELTA, resolve_keep_ratio
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_finite_module,
    check_positive_int,
    check_probability,
)
from prunebound.network import Network, apply_masks, clone, is_pruned, refresh_masked_weights
from prunebound.network import sparsity as sparsity_of
from prunebound.pruning.report import PruneResult

__all__ = ["prune", "METHODS", "prepare", "set_layer", "sensitivity_batch", "finish", "require_linear"]


def _inputs_of(data) -> torch.Tensor:
    if isinstance(data, Dataset):
        return data.x
    if isinstance(data, torch.Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise DataError(f"data is empty (shape {tuple(data.shape)}); need >= 1 input point")
        if not bool(torch.isfinite(data).all()):
            raise DataError("data contains NaN or inf")
        return data
    return as_dataset(data).x  # (x, y) tensors or a DataLoader; anything else: DataError


def prepare(module: nn.Module, data, *, eps: float | None, delta: float
            ) -> tuple[Network, torch.Tensor | None, int]:
    """Validate and copy. Returns ``(net_of_copy, inputs_or_None, nonzero_weights_before)``."""
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    if eps is not None:
        check_probability("eps", eps)
    check_probability("delta", delta)
    check_finite_module(module)
    x = _inputs_of(data) if data is not None else None
    net = Network.from_module(clone(module))
    for ly in net.layers:
        if ly.groups != 1:
            raise UnsupportedLayerError(f"coresets: layer {ly.path!r} is a grouped convolution (groups={ly.groups}); "
                                        "the sensitivity sampling here assumes groups=1")
    before = sum(int((ly.weight != 0).sum()) for ly in net.layers)
    if before == 0:
        raise InvalidParameterError("module has no non-zero weights; nothing to prune")
    return net, x, before


def require_linear(net: Network, method: str) -> None:
    """Raise :class:`UnsupportedLayerError` unless every weighted layer is ``nn.Linear``."""
    for ly in net.layers:
        if ly.kind != "linear":
            raise UnsupportedLayerError(
                f"{method} supports fully connected (nn.Linear) layers only; layer {ly.path!r} is {ly.kind}. "
                "Use method='pfp' for convolutional filters"
            )


def sensitivity_batch(x: torch.Tensor, n_points: int, seed: int | torch.Generator | None) -> torch.Tensor:
    """``n_points`` inputs drawn uniformly without replacement (all of them if there are fewer)."""
    n_points = check_positive_int("n_points", n_points)
    if n_points >= x.shape[0]:
        return x
    return x[torch.randperm(x.shape[0], generator=_make_generator(seed))[:n_points]]


def set_layer(net: Network, index: int, weight: torch.Tensor, mask: torch.Tensor) -> None:
    """Make layer ``index`` compute with ``weight * mask`` (mask composed with any old one)."""
    ly = net.layers[index]
    m = ly.module
    # masks may come as (fan_out, fan_in) matrices (Layer.weight_matrix); apply them in the weight's shape
    apply_masks(net, {ly.path: mask.to(ly.weight.dtype).reshape(ly.weight.shape)})
    with torch.no_grad():
        m.weight_orig.copy_(weight.reshape(m.weight_orig.shape).to(m.weight_orig.dtype))
    refresh_masked_weights(m)


def finish(net: Network, before: int, *, method: str, eps: float | None, delta: float,
           eps_l, delta_l, m_l, s_l, guaranteed: bool = True, extra: dict | None = None,
           relative: bool = True, eps_certified: float | None = None,
           requested: float | None = None, original: nn.Module | None = None) -> PruneResult:
    """Make sure every layer carries a mask, count kept weights, build the :class:`Guarantee` and return the
    :class:`~prunebound.pruning.PruneResult` (achieved sparsity read from the module; ``requested`` = the
    requested sparsity when the method was driven by a size, ``None`` when driven by ``eps``).

    For a relative-error statement (``relative``) an end-to-end ``eps`` (``eps_certified`` when the method's
    certified error differs from its ``eps`` parameter) ``>= 1`` is vacuous: ``guaranteed=False``.

    ``original`` (the user's module, not modified): the returned module is a copy of it -- same classes,
    BatchNorm kept -- with the pruned network's masks and reweighted weights mapped back through the folded
    BatchNorm scales (:func:`prunebound.coresets.restore.to_user_module`); without it, ``net.module``."""
    for ly in net.layers:
        if not is_pruned(ly.module):
            apply_masks(net, {ly.path: torch.ones_like(ly.weight)})
    refresh_masked_weights(net.module)  # detached cached weights: the result can be deep-copied
    kept = sum(int((ly.weight != 0).sum()) for ly in net.layers)
    e_cert = eps if eps_certified is None else eps_certified
    vacuous = bool(relative and e_cert is not None and e_cert >= 1.0)
    g = Guarantee(method=method, eps=None if eps is None else float(eps), delta=float(delta),
                  layers=tuple(ly.path for ly in net.layers), eps_per_layer=tuple(float(e) for e in eps_l),
                  delta_per_layer=tuple(float(d) for d in delta_l), sample_sizes=tuple(int(v) for v in m_l),
                  total_sensitivity=tuple(float(v) for v in s_l), keep_ratio=kept / before, kept=kept,
                  total=before, guaranteed=guaranteed and not vacuous, extra=dict(extra or {}), vacuous=vacuous)
    sp = sparsity_of(net)
    module = net.module
    if original is not None:
        from prunebound.coresets.restore import to_user_module

        module = to_user_module(net, original)
    return PruneResult(module, method, requested, dict(sp.per_layer), sp.total,
                       params={"eps": g.eps, "delta": g.delta}, extra=dict(g.extra), guarantee=g)


def _make_generator(seed):
    from prunebound.coresets.sampling import make_generator

    return make_generator(seed)


def _methods() -> dict[str, Callable]:
    from prunebound.coresets.baselines import magnitude_global, magnitude_layerwise, uniform
    from prunebound.coresets.corenet import corenet
    from prunebound.coresets.data_independent import data_independent
    from prunebound.coresets.pfp import pfp
    from prunebound.coresets.sipp import sipp

    def sipp_abs(*a, **k):
        return sipp(*a, sensitivity="abs", **k)

    from prunebound.coresets.hybrid import corenet_hybrid, pfp_det, pfp_top, sipp_hybrid

    return {"corenet": corenet, "data_independent": data_independent, "sipp": sipp, "sipp_abs": sipp_abs, "pfp": pfp,
            "uniform": uniform, "magnitude": magnitude_layerwise, "magnitude_global": magnitude_global,
            "corenet_hybrid": corenet_hybrid, "sipp_hybrid": sipp_hybrid, "pfp_top": pfp_top, "pfp_det": pfp_det}


METHODS = ("corenet", "data_independent", "sipp", "sipp_abs", "pfp", "uniform", "magnitude", "magnitude_global",
           "corenet_hybrid", "sipp_hybrid", "pfp_top", "pfp_det")
_BASELINES = ("uniform", "magnitude", "magnitude_global")


def _check_options(method: str, fn: Callable, kw: dict) -> None:
    """Extra keywords must be options of the method: an unknown one is a user error naming what it accepts."""
    import inspect

    target = _methods()["sipp"] if method == "sipp_abs" else fn  # sipp_abs: sipp with sensitivity="abs"
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    own = {"module", "data", "eps", "delta", "seed", "keep_ratio", "sparsity"}
    accepted = sorted(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
                      and not n.startswith("_") and n not in own)
    unknown = sorted(k for k in kw if k not in params and k not in ("filter_keep", "eps_per_layer"))  # PFP's: below
    if unknown:
        raise InvalidParameterError(f"coresets.prune(method={method!r}): unknown option(s) {unknown}; "
                                    f"{method} accepts {accepted or 'no extra options'}")


def prune(module: nn.Module, data, *, method: str = "corenet", eps: float | None = None,
          sparsity: float | None = None, keep_ratio: float | None = None, delta: float = DEFAULT_DELTA,
          seed: int | None = 0, eps_range: tuple[float, float] = (1e-4, 1e9), iters: int = 30,
          **kw) -> PruneResult:
    """Prune a copy of ``module`` with ``method`` at tolerance ``eps`` or to a target ``sparsity``.

    ``sparsity`` is the fraction of (non-zero) weights to remove; ``keep_ratio = 1 - sparsity`` is accepted as its
    complement (both given and inconsistent: :class:`InvalidParameterError`). Methods: ``corenet``,
    ``data_independent``, ``sipp``, ``sipp_abs``, ``pfp``, the hybrids ``corenet_hybrid``, ``sipp_hybrid``,
    ``pfp_top``, ``pfp_det`` (:mod:`prunebound.coresets.hybrid`; all take ``eps`` or a size) and the baselines
    ``uniform``, ``magnitude`` (layer-wise), ``magnitude_global`` (a size only). Extra keywords go to the method
    (an option it does not take: :class:`InvalidParameterError` naming the ones it does); for ``pfp``,
    ``filter_keep=f`` (each layer whose filters PFP removes keeps about the fraction ``f`` of them) or
    ``eps_per_layer`` replace ``eps`` / ``sparsity`` (see :mod:`prunebound.coresets.pfp`). When a size is given the
    internal ``eps`` may exceed 1 (the theorem's statement is then weak but still true); it is recorded in the
    Guarantee. Returns a :class:`~prunebound.pruning.PruneResult` whose ``guarantee`` is the method's
    :class:`Guarantee`.
    """
    table = _methods()
    if method not in table:
        raise InvalidParameterError(f"method must be one of {list(METHODS)}; got {method!r}")
    fn = table[method]
    _check_options(method, fn, kw)
    keep_ratio = resolve_keep_ratio(sparsity, keep_ratio, required=False)
    if method in _BASELINES:
        if keep_ratio is None:
            raise InvalidParameterError(f"baseline method {method!r} needs sparsity or keep_ratio (it has no eps)")
        check_probability("keep_ratio", keep_ratio, open_right=False)
        return fn(module, data, keep_ratio=keep_ratio, delta=delta, seed=seed, **kw)
    if kw.get("filter_keep") is not None or kw.get("eps_per_layer") is not None:  # PFP's per-layer allocations
        if method != "pfp":
            raise InvalidParameterError(f"filter_keep / eps_per_layer are PFP allocations (method='pfp'); "
                                        f"got method={method!r}")
        if eps is not None or keep_ratio is not None:
            raise InvalidParameterError("filter_keep / eps_per_layer replace eps and sparsity (keep_ratio); "
                                        "give only one of them")
        return fn(module, data, delta=delta, seed=seed, **kw)
    if (eps is None) == (keep_ratio is None):
        raise InvalidParameterError(
            f"give exactly one of eps or sparsity (keep_ratio = 1 - sparsity); got eps={eps!r}, "
            f"sparsity={sparsity!r}, keep_ratio={keep_ratio!r}")
    if eps is not None:
        return fn(module, data, eps=eps, delta=delta, seed=seed, **kw)
    check_probability("keep_ratio", keep_ratio, open_right=False)
    if method in ("corenet", "corenet_hybrid"):
        kw.setdefault("propagate", False)  # uniform eps_l at a size budget (see corenet's docstring)
    planner = _planners().get(method)
    if method == "sipp" and kw.get("sensitivity", "signed") == "signed":
        from prunebound.coresets.sipp import sipp_budget_search

        best = sipp_budget_search(module, data, keep_ratio=keep_ratio, delta=delta, seed=seed, **kw)
    elif planner is not None:
        best = _search_with_plan(fn, planner, module, data, keep_ratio=keep_ratio, delta=delta, seed=seed,
                                 eps_range=eps_range, iters=iters, **kw)
    else:
        best = _bisect(fn, module, data, keep_ratio=keep_ratio, delta=delta, seed=seed, eps_range=eps_range,
                       iters=iters, **kw)
    if abs(best.guarantee.keep_ratio - keep_ratio) > 0.05:
        warnings.warn(
            f"coresets.prune({method!r}): sparsity={1 - keep_ratio:g} (keep_ratio={keep_ratio:g}) is not reachable; "
            f"the closest achieved keep ratio is {best.guarantee.keep_ratio:.3f} (sampling with replacement "
            f"saturates: a layer cannot keep fewer entries than its distinct draws, and PFP removes whole "
            f"channels only where their sole reader allows it). Check PruneResult.sparsity before using the result.",
            stacklevel=2,
        )
    return dataclasses.replace(best, requested=1.0 - keep_ratio)


def _planners() -> dict[str, Callable]:
    from prunebound.coresets.corenet import corenet_plan
    from prunebound.coresets.pfp import pfp_plan
    from prunebound.coresets.sipp import sipp_plan

    def sipp_abs_plan(*a, **k):
        return sipp_plan(*a, sensitivity="abs", **k)

    from prunebound.coresets.hybrid import hybrid_plan

    return {"corenet": corenet_plan, "sipp": sipp_plan, "sipp_abs": sipp_abs_plan, "pfp": pfp_plan,
            "corenet_hybrid": hybrid_plan("corenet"), "sipp_hybrid": hybrid_plan("sipp"), "pfp_top": hybrid_plan("pfp"),
            "pfp_det": hybrid_plan("pfp_det")}


def _search_with_plan(fn, planner, module, data, *, keep_ratio, delta, seed, eps_range, iters, tol=0.01, **kw):
    """Sensitivities once (``planner``), ``eps`` from the expected kept fraction (:func:`solve_eps`), then one
    pruning pass at that ``eps``; if the realised keep ratio misses by more than ``tol``, the target of the
    expected-count search is shifted by the miss (at most twice) and the closest pass is kept."""
    from prunebound.coresets.keep_ratio import solve_eps

    plan = planner(module, data, delta=delta, seed=seed, **kw)
    best, target, tried = None, keep_ratio, set()
    for _ in range(3):
        eps = solve_eps(plan.kept_fraction, target, eps_range=eps_range, maxiter=2 * iters)
        if eps in tried:
            break
        tried.add(eps)
        out = fn(module, data, eps=eps, delta=delta, seed=seed, _allow_large_eps=True, _plan=plan, **kw)
        r = out.guarantee.keep_ratio
        if best is None or abs(r - keep_ratio) < abs(best.guarantee.keep_ratio - keep_ratio):
            best = out
        if abs(r - keep_ratio) <= tol:
            break
        target = min(1.0, max(1e-9, target + (keep_ratio - r)))
    return best


def _bisect(fn, module, data, *, keep_ratio, delta, seed, eps_range, iters, **kw):
    """Bisection on ``log eps`` with one full pruning pass per step (methods without a plan)."""
    lo, hi = math.log(eps_range[0]), math.log(eps_range[1])
    best = None
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        out = fn(module, data, eps=math.exp(mid), delta=delta, seed=seed, _allow_large_eps=True, **kw)
        r = out.guarantee.keep_ratio
        if best is None or abs(r - keep_ratio) < abs(best.guarantee.keep_ratio - keep_ratio):
            best = out
        if r > keep_ratio:
            lo = mid  # keeps too much: loosen eps
        else:
            hi = mid
    return best
