"""Subspace compression bounds (Lotfi, Finzi, Kapoor, Potapczynski, Goldblum & Wilson, NeurIPS 2022).

Recipe (their Sec. 4):

1. **Subspace training.** ``θ = θ0 + P w`` with ``θ0`` the seeded random initialisation of the architecture
   and ``P: R^d -> R^D`` a seeded structured random projection
   (:mod:`prunebound.bounds.subspace_projection`); only ``w in R^d`` is trained (Adam, cross-entropy, via
   :func:`prunebound.train.fit` on :class:`SubspaceModel`).
2. **Learned quantization.** ``w`` is quantised to a codebook ``c in R^L`` initialised by 1-D k-means
   (:func:`prunebound.coding.kmeans_1d`) and trained jointly with ``w`` by quantization-aware training with
   the straight-through estimator: forward ``c[a(w)]`` with ``a(w)_i = argmin_j |w_i - c_j|``, backward
   ``∂/∂w = identity`` and ``∂/∂c`` through the gather (:func:`ste_quantize`).
3. **Arithmetic coding.** The message for grid point ``(d, L)`` is: the codebook as ``L`` IEEE half floats
   (``16 L`` bits; the final codebook is rounded to fp16), the first ``L-1`` symbol counts Elias-delta coded
   (``count + 1``), then the symbols range-coded with the static model given by the counts
   (:func:`prunebound.coding.range_encode`), whose length is within a few bits of the empirical entropy.
   ``ℓ`` = the message's exact length in bits.
4. **The bound** (their Sec. 3, Occam form with kl-inverse, Langford & Seeger): with probability
   ``>= 1 - δ``, simultaneously for all messages,

       kl( err_S(h) || err(h) ) <= ( K(h) ln 2 + ln(1/δ) ) / n,
       K(h) = ℓ + log2(ℓ (ℓ + 1)) + log2 |grid|,

   i.e. the prior over hypotheses is ``uniform(grid) x 2^-ℓ / (ℓ (ℓ + 1))`` over *all* finite bit strings of
   length ``ℓ >= 1`` (it sums to ``<= 1`` since there are ``2^ℓ`` strings of each length), so no
   prefix-freeness of the code is needed (Lotfi et al. pay ``K ln 2 + 2 ln K`` for the same purpose; ours is
   the exactly normalised variant).  The union over the hyperparameter grid tried (``d`` x codebook size
   ``L``) is paid by the ``log2 |grid|`` bits (equivalently ``δ / |grid|``).  ``θ0``, ``P``, the grid and
   the seeds are fixed before seeing the data and belong to the prior.  The bound is on the 0-1 risk of the
   *deterministic* quantised network ``θ0 + P c[a]`` (no posterior noise); the value is
   ``kl_inverse_upper(err_S, C / n)`` computed by :func:`prunebound.bounds.pac_bayes.occam_bound`.
5. **Optional data-dependent prior** (their Sec. 4.3 / App.): with ``prior_fraction = α > 0`` the data are
   split (seeded) into a prior part, on which ``θ0`` is trained from the seeded initialisation, and a bound
   part; the bound uses only the bound part (``n`` = its size).  ``w`` may be trained on all data (the Occam
   bound holds for any data-dependent choice of message once the prior is fixed given the prior part).

6. **Grid over learning rates, schedules.**  A grid point may also fix the learning rate: points are
   ``(d, L)`` or ``(d, L, lr)`` and ``|grid|`` counts every point tried.  Training uses a cosine learning-rate
   schedule by default (``schedule="cosine"``): with a constant ``lr = 0.1`` a CNN trained in a 2000-dimensional
   subspace stalled at 38.6 % error, with the cosine schedule it trains.  :func:`default_grid` chooses ``d`` from
   the bound's sample size (so that the message stays a few percent of ``n`` bits) and the model's size.

Any traceable model (issue 12): ``θ0`` is built from the model's *architecture* only.  A plain ``nn.Sequential``
tree is rebuilt from its :func:`~prunebound.network.architecture` spec under ``torch.manual_seed(init_seed)``
(``params["init"] = "spec"``, as before); any other model (a class with its own ``forward``, residual adds,
``torch.cat``, BatchNorm folded first) is deep-copied and every parameter-holding submodule calls its own
``reset_parameters()`` in ``named_modules`` order under the same seed (``"reset_parameters"``; a submodule holding
tensors without ``reset_parameters`` is refused, since its trained values would leak into the prior).  Training
substitutes ``θ`` with :func:`torch.func.functional_call` into a frozen copy, so the compressed model is an
instance of the user's class, in the user's dtype.  Parameters outside the weighted layers (a LayerNorm's affine
weights) are not in the subspace: they stay at their ``θ0`` value.  The certificate records ``init`` and
``architecture_sha256`` (:func:`architecture_sha256`: module classes and settings, tensor names/shapes/dtypes,
the traced graph); :func:`verify` receives the model, re-derives both from it and refuses a mismatch, then
rebuilds ``θ0`` from the model's architecture and checks that *every* parameter and buffer of the model equals
the decoded network's.

Reproducing a data-dependent prior: the prior is trained with ``prior_threads`` torch threads (1 by default)
and deterministic seeds; the certificate stores ``prior_sha256`` (SHA-256 of the float32 bytes of ``θ0``) and
:func:`certify_subspace` retrains the prior and refuses (naming the thread count and versions) when the
retrained prior's hash differs, instead of reporting an opaque bound mismatch.  Same torch version, same
thread count and CPU reproduce it bit for bit in our runs; other set-ups may not.

Deviations: the codebook is stored in fp16 (Lotfi et al. do not specify the float width);
:class:`~prunebound.certificate.Certificate` ``n`` is ``len(data)`` (the certificate's convention) while the
bound's sample size is ``parts["n_bound"]`` when a data-dependent prior is used; certificates with a
data-dependent prior recompute ``θ0`` by deterministic retraining, which is reproducible on the same
machine/thread count only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from prunebound.bounds.subspace_code import SubspaceCode, decode_quantized, encode_quantized
from prunebound.bounds.subspace_prior import (
    _reinitialized,  # noqa: F401 - re-exported for callers of the former single module
    _seeded_init,  # noqa: F401
    architecture_sha256,
    init_route,
    prior_init,
    prior_sha256,
)
from prunebound.bounds.subspace_projection import PROJECTIONS, make_projection
from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.coding import kmeans_1d
from prunebound.data import Dataset
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_finite_module,
    check_positive,
    check_positive_int,
    check_probability,
)
from prunebound.network import (
    Network,
    is_pruned,
    load_vector,
    to_vector,
)
from prunebound.train import evaluate, fit

__all__ = [
    "SubspaceModel",
    "SubspaceCode",
    "SubspaceResult",
    "ste_quantize",
    "prior_init",
    "encode_quantized",
    "decode_quantized",
    "universal_bits",
    "subspace_bound",
    "subspace_compress",
    "certify_subspace",
    "train_point",
    "default_grid",
    "prior_sha256",
    "init_route",
    "architecture_sha256",
]


# ---------------------------------------------------------------------------------------------- the model
def _layout(net: Network) -> list[tuple[str, torch.Size]]:
    """``(parameter name, shape)`` in the order of :func:`prunebound.network.to_vector`."""
    out = []
    for ly in net.layers:
        if is_pruned(ly.module):
            raise UnsupportedLayerError(
                f"layer {ly.path!r} is pruned; subspace training needs an unpruned architecture")
        pre = f"{ly.path}." if ly.path else ""
        out.append((pre + "weight", ly.weight.shape))
        if ly.bias is not None:
            out.append((pre + "bias", ly.bias.shape))
    return out


def ste_quantize(w: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-centroid quantisation with the straight-through estimator.

    Returns ``(w_q, a)`` with ``a_i = argmin_j |w_i - c_j|`` (ties to the lower index) and
    ``w_q = c[a] + (w - stop_grad(w))``: its value is ``c[a]``, its gradient w.r.t. ``w`` is the identity and
    w.r.t. ``c`` the scatter-sum of the incoming gradient over each cluster.
    """
    a = torch.argmin((w.detach()[:, None] - codebook.detach()[None, :]).abs(), dim=1)
    return codebook[a] + (w - w.detach()), a


class SubspaceModel(nn.Module):
    """``x -> f(x; θ0 + P w_eff)`` with ``w_eff = w`` or its STE-quantised version when ``codebook`` is set.

    ``base`` gives the architecture (its own parameters are frozen and replaced by
    ``torch.func.functional_call``); ``theta0`` is the flat prior point (layout of
    :func:`prunebound.network.to_vector`); only ``w`` (and the codebook, during quantization-aware training)
    are trainable.
    """

    def __init__(self, base: nn.Module, theta0: torch.Tensor, projection: nn.Module) -> None:
        super().__init__()
        net = Network.from_module(base)
        self._names = _layout(net)
        self._sizes = [math.prod(s) for _, s in self._names]
        self._dtype = net.layers[0].weight.dtype  # θ is float32; the layers get the model's own dtype
        D = sum(self._sizes)
        if theta0.ndim != 1 or theta0.numel() != D:
            raise DataError(f"theta0 has shape {tuple(theta0.shape)}; the architecture needs ({D},)")
        if getattr(projection, "D", D) != D:
            raise InvalidParameterError(
                f"projection maps to R^{projection.D} but the model has D={D} parameters")
        self.base = copy.deepcopy(net.module).requires_grad_(False)
        self.register_buffer("theta0", theta0.detach().to(torch.float32).clone())
        self.projection = projection
        self.w = nn.Parameter(torch.zeros(projection.d))
        self.codebook: nn.Parameter | None = None

    @property
    def D(self) -> int:
        return int(self.theta0.numel())

    def w_eff(self) -> torch.Tensor:
        return self.w if self.codebook is None else ste_quantize(self.w, self.codebook)[0]

    def theta(self) -> torch.Tensor:
        return self.theta0 + self.projection(self.w_eff())

    def _params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self._sizes)
        return {name: p.reshape(shape).to(self._dtype) for (name, shape), p in zip(self._names, parts)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, self._params(self.theta()), (x,))

    def materialize(self) -> nn.Module:
        """An ordinary ``nn.Module`` (copy of the architecture) holding ``θ0 + P w_eff``."""
        with torch.no_grad():
            theta = self.theta()
        return load_vector(copy.deepcopy(self.base).requires_grad_(True), theta)


# ---------------------------------------------------------------------------------------------- the bound
def universal_bits(n_bits: int) -> float:
    """``log2(ℓ (ℓ + 1))``: extra bits of the prior ``2^-ℓ / (ℓ (ℓ + 1))`` over bit strings of length ℓ."""
    n_bits = check_positive_int("n_bits", n_bits)
    return math.log2(n_bits) + math.log2(n_bits + 1)


def _occam(emp_error: float, bits: float, n: int, delta: float) -> BoundTerms:
    from prunebound.bounds.pac_bayes import occam_bound

    return occam_bound(emp_error, bits, n, delta=delta)


def subspace_bound(emp_error: float, n: int, message_bits: int, *, delta: float, grid_size: int = 1
                   ) -> BoundTerms:
    """Occam/kl-inverse bound for a hypothesis described by a ``message_bits``-bit message, chosen from a grid
    of ``grid_size`` hyperparameter points: ``K = ℓ + log2(ℓ(ℓ+1)) + log2|grid|`` bits (see module docstring).

    ``parts``: those of :func:`~prunebound.bounds.pac_bayes.occam_bound` plus ``message_bits``,
    ``universal_bits``, ``grid_bits``, ``grid_size``, ``total_bits``.
    """
    check_probability("delta", delta)
    n = check_positive_int("n", n)
    grid_size = check_positive_int("grid_size", grid_size)
    ub = universal_bits(message_bits)
    gb = math.log2(grid_size)
    total = float(message_bits) + ub + gb
    t = _occam(float(emp_error), total, n, delta)
    parts = dict(t.parts)
    parts.update(message_bits=float(message_bits), universal_bits=ub, grid_bits=gb,
                 grid_size=float(grid_size), total_bits=total, n_bound=float(n))
    return BoundTerms(t.value, t.empirical, t.complexity, parts)


# ---------------------------------------------------------------------------------------------- compress
@dataclass(frozen=True)
class SubspaceResult:
    """Outcome of :func:`subspace_compress`: the quantised subspace ``model`` (an ordinary module), the best
    grid point's ``terms``, ``code`` and certificate ``params``, and per grid point
    ``(d, L, bound, empirical, bits)``."""

    model: nn.Module = field(repr=False, compare=False)
    terms: BoundTerms
    d: int
    levels: int
    code: SubspaceCode
    params: Mapping[str, Any]
    grid_results: tuple[tuple[int, int, float, float, float], ...]
    train_error: float

    @property
    def value(self) -> float:
        return self.terms.value

    def to_dict(self) -> dict:
        return {"terms": self.terms.to_dict(), "d": self.d, "levels": self.levels,
                "code": self.code.to_dict(),
                "params": dict(self.params), "grid_results": [list(g) for g in self.grid_results],
                "train_error": self.train_error}


def _check_grid(grid: Sequence) -> list[tuple]:
    out: list[tuple] = []
    for g in grid:
        if len(g) not in (2, 3):
            raise InvalidParameterError(f"grid points must be (d, levels) or (d, levels, lr), got {g!r}")
        pt: tuple = (check_positive_int("grid d", g[0]), check_positive_int("grid levels", g[1]))
        if len(g) == 3:
            pt = pt + (check_positive("grid lr", float(g[2])),)
        out.append(pt)
    if not out:
        raise InvalidParameterError("the hyperparameter grid is empty")
    if len(set(out)) != len(out):
        raise InvalidParameterError(f"the hyperparameter grid has duplicate points: {out}")
    return out


def _rebuild(module: nn.Module, data: Dataset, params: Mapping[str, Any], *,
             prior: tuple[nn.Module, Dataset] | None = None) -> tuple[nn.Module, Dataset, SubspaceCode]:
    """Decode ``params`` into the quantised subspace model and the data part the bound uses."""
    if params.get("projection") not in PROJECTIONS:
        raise InvalidParameterError(f"params['projection'] must be one of {sorted(PROJECTIONS)}")
    d, L = int(params["d"]), int(params["levels"])
    if prior is None:
        prior = prior_init(module, data, init_seed=int(params["init_seed"]),
                           prior_fraction=float(params.get("prior_fraction", 0.0)),
                           split_seed=int(params.get("split_seed", 0)),
                           prior_epochs=int(params.get("prior_epochs", 20)),
                           prior_lr=float(params.get("prior_lr", 1e-2)),
                           prior_batch_size=int(params.get("prior_batch_size", 128)),
                           prior_schedule=params.get("prior_schedule"),
                           prior_threads=params.get("prior_threads"))
        want = params.get("prior_sha256")
        if want is not None and prior_sha256(prior[0]) != want:
            raise DataError(
                "retraining the data-dependent prior did not reproduce it (prior_sha256 differs); it is "
                f"reproducible only with the same torch version ({torch.__version__} here), "
                f"prior_threads={params.get('prior_threads')} and CPU kind as when the certificate was made")
    init, bound_data = prior
    theta0 = to_vector(init).to(torch.float32)
    P = make_projection(params["projection"], theta0.numel(), d, seed=int(params["projection_seed"]))
    msg = bytes.fromhex(params["message"])
    w_q, sym, c16 = decode_quantized(msg, int(params["message_bits"]), d=d, levels=L)
    sub = SubspaceModel(init, theta0, P)
    with torch.no_grad():
        sub.w.copy_(w_q)
    model = sub.materialize()
    code = encode_quantized(sym, c16)
    if code.message != msg or code.n_bits != int(params["message_bits"]):
        raise DataError("params['message'] is not the canonical encoding of the quantised w it decodes to")
    return model, bound_data, code


def _terms(model: nn.Module, bound_data: Dataset, code: SubspaceCode, *, delta: float, grid_size: int
           ) -> BoundTerms:
    emp = evaluate(model, bound_data).error
    t = subspace_bound(emp, len(bound_data), code.n_bits, delta=delta, grid_size=grid_size)
    parts = dict(t.parts)
    parts.update(codebook_bits=float(code.codebook_bits), count_bits=float(code.count_bits),
                 body_bits=float(code.body_bits), entropy_bits=float(code.entropy_bits), d=float(code.d),
                 levels=float(code.levels))
    return BoundTerms(t.value, t.empirical, t.complexity, parts)


def default_grid(n_bound: int, n_params: int, *, data_dependent: bool = False,
                 levels: Sequence[int] = (8, 16), lrs: Sequence[float] = (0.05, 0.1)) -> list[tuple]:
    """A default ``(d, L, lr)`` grid that scales with the bound's sample size and the model.

    The bound's complexity is about ``bits * ln 2 / n``; a learned ``L``-level code costs about ``log2 L - 1``
    bits per subspace coordinate, so ``d* = n / 100`` (``n / 200`` with a data-dependent prior, which needs
    fewer directions) keeps the message to a few percent of ``n`` bits.  The grid is ``d* x {1/2, 1, 2}``
    clipped to ``[10, D]`` (``D`` = number of parameters), times ``levels`` times ``lrs``.
    """
    n_bound = check_positive_int("n_bound", n_bound)
    n_params = check_positive_int("n_params", n_params)
    d_star = n_bound / (200.0 if data_dependent else 100.0)
    ds = sorted({int(min(n_params, max(10, round(d_star * f)))) for f in (0.5, 1.0, 2.0)})
    return [(d, int(L), float(lr)) for d in ds for L in levels for lr in lrs]


def train_point(
    init: nn.Module,
    data: Dataset,
    bound_data: Dataset,
    *,
    d: int,
    levels: int,
    lr: float = 0.1,
    base_params: Mapping[str, Any],
    delta: float,
    grid_size: int,
    epochs: int = 30,
    qat_epochs: int = 5,
    qat_lr: float = 0.01,
    batch_size: int = 128,
    schedule: str | None = "cosine",
    seed: int = 0,
    device: str | None = None,
    progress: bool | None = None,
) -> tuple[nn.Module, BoundTerms, SubspaceCode, dict]:
    """One grid point: train ``w`` in the ``d``-dimensional subspace around ``init`` on ``data``, learn an
    ``L``-level codebook (k-means init + QAT), encode, decode and bound on ``bound_data``.

    Returns ``(model, terms, code, params)``; ``params`` are the certificate's (``base_params`` plus the point).
    """
    theta0 = to_vector(init).to(torch.float32)
    P = make_projection(base_params["projection"], theta0.numel(), d, seed=int(base_params["projection_seed"]))
    sub = SubspaceModel(init, theta0, P)
    tag = f"d={d} L={levels} lr={lr:g}"
    if epochs:
        fit(sub, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, optimizer="adam",
            schedule=schedule, device=device, progress=progress, desc=tag)
    c0, _ = kmeans_1d(sub.w.detach(), levels)
    sub.codebook = nn.Parameter(c0.to(torch.float32))
    if qat_epochs:
        fit(sub, data, epochs=qat_epochs, lr=qat_lr, batch_size=batch_size, seed=seed + 2, optimizer="adam",
            schedule=schedule, device=device, progress=progress, desc=tag + " qat")
    c16 = sub.codebook.detach().to(torch.float16)
    _, sym = ste_quantize(sub.w.detach(), c16.float())
    code = encode_quantized(sym, c16)
    params = dict(base_params, d=int(d), levels=int(levels), message=code.message.hex(), message_bits=code.n_bits)
    if len(base_params["grid"][0]) == 3:
        params["lr"] = float(lr)
    model, bdata, code = _rebuild(init, data, params, prior=(init, bound_data))
    terms = _terms(model, bdata, code, delta=delta, grid_size=grid_size)
    return model, terms, code, params


def subspace_compress(
    module: nn.Module,
    data: Dataset,
    *,
    grid: Sequence[tuple] = ((50, 8), (100, 8), (200, 8)),
    delta: float = DEFAULT_DELTA,
    seed: int = 0,
    projection: str = "fastfood",
    epochs: int = 30,
    qat_epochs: int = 5,
    lr: float = 0.1,
    qat_lr: float = 0.01,
    batch_size: int = 128,
    schedule: str | None = None,
    prior_fraction: float = 0.0,
    prior_epochs: int = 20,
    prior_lr: float = 1e-2,
    prior_batch_size: int = 128,
    prior_schedule: str | None = None,
    prior_threads: int | None = None,
    pay_for_grid: bool = True,
) -> SubspaceResult:
    """Lotfi et al. (2022): train in random subspaces of each grid point ``(d, L)`` (or ``(d, L, lr)``),
    quantise with a learned ``L``-level codebook, arithmetic-code, and return the grid point with the smallest
    bound.

    ``module`` supplies only the architecture: ``θ0`` is its seeded re-initialisation (``init_seed = seed``),
    trained on a ``prior_fraction`` of ``data`` for a data-dependent prior; the projection is seeded with
    ``seed + 1``.  Every grid point's bound pays ``log2 len(grid)`` bits, so taking the minimum is valid.
    ``pay_for_grid=False`` drops that payment -- an *invalid* bound, only for demonstrating that the coverage
    harness catches it.  Training: Adam on ``w`` for ``epochs`` (``lr``, or the point's own lr; ``schedule``
    e.g. ``"cosine"``), k-means init of the codebook, then ``qat_epochs`` of quantization-aware training
    (``qat_lr``).  ``projection="fastfood"`` (memory ``O(D + d)``) trained better than ``"kronecker_sum"``
    (Lotfi et al.'s, memory ``O(sqrt(D) d)``) in our runs.  For large grids, run the points in parallel and
    resumably with :func:`prunebound.compress.compress`.
    """
    check_probability("delta", delta)
    pts = _check_grid(grid)
    if projection not in PROJECTIONS:
        raise InvalidParameterError(f"projection must be one of {sorted(PROJECTIONS)}, got {projection!r}")
    check_probability("prior_fraction", prior_fraction, open_left=False)
    check_positive_int("epochs", epochs, minimum=0)
    check_positive_int("qat_epochs", qat_epochs, minimum=0)
    check_positive("lr", lr)
    check_positive("qat_lr", qat_lr)
    check_finite_module(module)
    seed = int(seed)
    init, bound_data = prior_init(module, data, init_seed=seed, prior_fraction=prior_fraction,
                                  split_seed=seed, prior_epochs=prior_epochs, prior_lr=prior_lr,
                                  prior_batch_size=prior_batch_size, prior_schedule=prior_schedule,
                                  prior_threads=prior_threads)
    base_params = base_subspace_params(
        projection=projection, seed=seed, grid=pts, pay_for_grid=pay_for_grid, prior_fraction=prior_fraction,
        prior_epochs=prior_epochs, prior_lr=prior_lr, prior_batch_size=prior_batch_size,
        prior_schedule=prior_schedule, prior_threads=prior_threads, prior=init)
    grid_size = len(pts) if pay_for_grid else 1
    best: SubspaceResult | None = None
    rows = []
    for pt in pts:
        d, L = pt[0], pt[1]
        model, terms, code, params = train_point(
            init, data, bound_data, d=d, levels=L, lr=pt[2] if len(pt) == 3 else lr, base_params=base_params,
            delta=delta, grid_size=grid_size, epochs=epochs, qat_epochs=qat_epochs, qat_lr=qat_lr,
            batch_size=batch_size, schedule=schedule, seed=seed)
        rows.append((d, L, terms.value, terms.empirical, terms.parts["total_bits"]))
        if best is None or terms.value < best.terms.value:
            best = SubspaceResult(model, terms, d, L, code, params, (), evaluate(model, data).error)
    assert best is not None
    return SubspaceResult(best.model, best.terms, best.d, best.levels, best.code, best.params, tuple(rows),
                          best.train_error)


def base_subspace_params(*, projection: str, seed: int, grid: Sequence[tuple], pay_for_grid: bool = True,
                         prior_fraction: float = 0.0, prior_epochs: int = 20, prior_lr: float = 1e-2,
                         prior_batch_size: int = 128, prior_schedule: str | None = None,
                         prior_threads: int | None = None, prior: nn.Module | None = None) -> dict[str, Any]:
    """The certificate parameters shared by every grid point (seeds, grid, prior recipe and hash)."""
    out: dict[str, Any] = {
        "projection": projection, "init_seed": int(seed), "projection_seed": int(seed) + 1,
        "grid": [list(p) for p in grid], "pay_for_grid": bool(pay_for_grid),
        "prior_fraction": float(prior_fraction), "split_seed": int(seed), "prior_epochs": int(prior_epochs),
        "prior_lr": float(prior_lr), "prior_batch_size": int(prior_batch_size),
    }
    if prior_schedule is not None:
        out["prior_schedule"] = prior_schedule
    if prior_threads is not None:
        out["prior_threads"] = int(prior_threads)
    if prior is not None:  # how θ0 is built, and which architecture: verify re-derives both from the model
        out["init"] = init_route(prior)
        out["architecture_sha256"] = architecture_sha256(prior)
    if prior_fraction > 0 and prior is not None:
        out["prior_sha256"] = prior_sha256(prior)
    return out


# ---------------------------------------------------------------------------------------------- certifier
def _same_function_values(module: nn.Module, model: nn.Module, tol: float = 1e-6) -> bool:
    """Every parameter and buffer of ``module`` equals the rebuilt ``model``'s (same names, shapes, values within
    ``tol``): the weighted layers' flat vector *and* everything outside it (a LayerNorm's affine weights, ...),
    which belong to ``θ0`` and must not have been edited after compression."""
    a, b = to_vector(module), to_vector(model)
    if a.shape != b.shape or float((a.double() - b.double()).abs().max()) > tol:
        return False
    sa, sb = module.state_dict(), model.state_dict()
    if set(sa) != set(sb):
        return False
    for k, t in sa.items():
        u = sb[k]
        if t.shape != u.shape:
            return False
        if t.is_floating_point() or u.is_floating_point():
            if t.numel() and float((t.double() - u.double()).abs().max()) > tol:
                return False
        elif not torch.equal(t, u):
            return False
    return True


def certify_subspace(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = None,
                     **params: Any) -> Certificate:
    """Certificate for a model produced by :func:`subspace_compress` (``params`` = its ``result.params``).

    Decodes the message, rebuilds ``θ0 + P w_q`` (retraining ``θ0`` deterministically for a data-dependent
    prior), checks that ``module`` is that network (max abs difference <= 1e-6, else
    :class:`InvalidParameterError`), and recomputes the bound on ``data`` (its bound part).
    """
    check_probability("delta", delta)
    missing = {"projection", "init_seed", "projection_seed", "d", "levels", "message", "message_bits",
               "grid"} - set(params)
    if missing:
        raise InvalidParameterError(f"subspace certificate params are missing {sorted(missing)}")
    grid = _check_grid(params["grid"])
    point = [int(params["d"]), int(params["levels"])]
    if len(grid[0]) == 3:
        if "lr" not in params:
            raise InvalidParameterError("subspace certificate params: the grid has learning rates but 'lr' is missing")
        point.append(float(params["lr"]))
    if point not in [list(g) for g in grid]:
        raise InvalidParameterError(f"grid point {tuple(point)} is not in the grid {grid}")
    for key, derive in (("init", init_route), ("architecture_sha256", architecture_sha256)):
        if key in params and params[key] != derive(module):
            raise InvalidParameterError(
                f"params[{key!r}] = {str(params[key])[:24]!r} but the given module's is {derive(module)[:24]!r}: "
                "the certificate was made for another architecture")
    model, bound_data, code = _rebuild(module, data, params)
    if not _same_function_values(module, model):
        raise InvalidParameterError("module is not the network decoded from params['message'] "
                                    "(theta0 + P w_q); certify the model returned by subspace_compress")
    grid_size = len(grid) if params.get("pay_for_grid", True) else 1
    terms = _terms(model, bound_data, code, delta=delta, grid_size=grid_size)
    note = "Lotfi et al. 2022 subspace compression bound (deterministic quantised model)"
    if not params.get("pay_for_grid", True):
        note += "; INVALID: union over the grid not paid"
    return make_certificate("subspace", terms, module, data, delta=delta, seed=seed, params=dict(params),
                            note=note)


register_certifier("subspace", certify_subspace)
