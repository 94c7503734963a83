"""Noise-stability compression bounds of Arora, Ge, Neyshabur, Zhang (ICML 2018, arXiv:1802.05296).

Notation (fully-connected ReLU network, ``d`` layers, 1-indexed as in the paper; code is 0-indexed): ``x^0 =
x``, ``x^i = A^i φ(x^{i-1})`` the pre-activation of layer ``i`` (``φ(x^0) = x``), ``M^{i,j}`` the map ``x^i ->
x^j`` and ``J^{i,j}_{x^i}`` its Jacobian at ``x^i`` (``J^{i,i} = I``).  ``S`` is the training set.

Noise-stability quantities (Section 4, Definitions 4-7; measured by :func:`measure_noise_stability`):

* layer cushion ``μ_i``: the largest number with ``μ_i ||A^i||_F ||φ(x^{i-1})|| <= ||A^i φ(x^{i-1})||`` for
  all ``x ∈ S``, i.e. ``μ_i = min_S ||A^i φ(x^{i-1})|| / (||A^i||_F ||φ(x^{i-1})||)``;
* interlayer cushion ``μ_{i,j}`` (``i <= j``): the largest number with ``μ_{i,j} ||J^{i,j}_{x^i}||_F ||x^i||
  <= ||J^{i,j}_{x^i} x^i||`` for all ``x ∈ S``; ``μ_{i,i} = 1/sqrt(h^i)``; ``μ_{i→} = min_{i <= j <= d}
  μ_{i,j}``;
* activation contraction ``c``: the smallest number with ``||x^i|| <= c ||φ(x^i)||`` for every hidden layer
  and ``x ∈ S``;
* interlayer smoothness ``ρ_δ``: the largest ``ρ`` (the condition gets stronger as ``ρ`` grows) such that
  with probability ``1 - δ`` over the noise ``η``, for all ``i < j`` and ``x ∈ S``:
  ``||M^{i,j}(x^i + η) - J^{i,j}_{x^i}(x^i + η)|| <= ||η|| ||x^j|| / (ρ ||x^i||)``.

These are *minima over S* in the definitions (``percentile=None``, the default, needed by the theorem).  A
``percentile`` (e.g. 10) replaces the minimum by that lower percentile (and the maximum in ``c`` by the upper
one) -- a robust summary for plots, **not** valid in the theorem.  **Deviations:** (1) for networks with
biases ``J x^i != x^j``; we use the weight part ``A^i φ(x^{i-1})`` in the layer cushion and, in ``ρ``, the
first-order remainder ``M(x^i + η) - x^j - J η`` (equal to the paper's expression for bias-free networks); (2)
the noise in ``ρ`` is Gaussian with ``||η|| = noise_scale ||x^i||`` rather than the noise of Algorithm 1 (the
paper's experiments inject Gaussian noise too).

Compression (Algorithm 1, ``Matrix-Project(A, ε, η)``): draw ``k = ceil(ln(1/η)/ε^2)`` helper matrices ``M_t``
with i.i.d. ±1 entries (the *helper string*, fixed by ``seed`` before seeing data) and return ``Â = (1/k)
sum_t <A, M_t> M_t``; only the ``k`` numbers ``<A, M_t>`` are stored.  The paper's promise: for fixed ``u,
v``, ``P(|u^T Â v - u^T A v| >= ε ||A||_F ||u|| ||v||) <= η`` (the constant in ``k`` is the paper's; it is
optimistic per pair -- failure rate about ``2 Φ̄(sqrt(ln(1/η))) > η`` -- see :func:`matrix_project`; pass
``k_scale=4`` to :func:`compress` for a per-pair guarantee). Algorithm
2 applies it to every layer with ``ε_i = ε μ_i μ_{i→} / (κ c d)`` (``κ = 4`` as in the paper) and promises
``||f_Â(x) - f_A(x)|| <= ε ||f_A(x)||`` for all ``x ∈ S``; with ``ε = γ / (sqrt(2) max_S ||f_A(x)||)`` this
keeps every γ-margin point correctly classified (a margin moves by at most ``sqrt(2)`` times the ℓ2 output
error).  We take ``η_i = δ / (d m sum_{j >= i} h^j)`` (union bound over layers, points and rows of the
Jacobians).

Generalization (Theorem 2.1 with all constants, our rigorous route): the helper string is fixed before the
data, so the compressed network ``g`` is determined by a prefix-free code: 5 bits for the precision ``b``,
then per layer 1 mode bit and either (projected) an Elias-gamma code of ``k``, a 7-bit power-of-two scale and
``k`` ``b``-bit integers, or (stored) a 7-bit scale and the ``n_i`` weights as ``b``-bit integers; biases are
kept as float32 (32 bits each).  Occam / Kraft: with probability ``>= 1 - δ``, simultaneously for every code
word, ``L_0(g) <= Bin^{-1}(L̂_0(g), m, δ 2^{-len(g)})`` (exact binomial tail inversion, tighter than the
Hoeffding form ``L̂_0(g) + sqrt((len(g) ln 2 + ln(1/δ)) / (2m))`` which is also reported).  This is Theorem
2.1's ``L_0 <= L̂_γ + O(sqrt(q log r / m))`` with ``q log r = len(g) ln 2``.  When the compression keeps the
output within ``γ / sqrt(2)`` on ``S`` (checked exactly) ``L̂_0(g) <= L̂_γ(f)`` and the paper's form holds;
the certificate uses the directly measured ``L̂_0(g)``, so it is valid whether or not the noise-stability
promise was met.

Main theorem (Theorem 4.1) quantity reported for the comparison figure (effective number of parameters):
``q_paper = c^2 d^2 max_S ||f(x)||^2 sum_i 1/(μ_i^2 μ_{i→}^2) / γ^2``.

Convolutional networks (``Conv1d``/``Conv2d`` with ReLU, max/avg pooling, Flatten/Unflatten).  Every layer
is treated as the linear operator ``A^i`` it applies to one example (a structured ``(C_out L_out) x (C_in
L_in)`` matrix, :class:`~prunebound.bounds.norm_bounds.LayerOperator`), so Definitions 4-7 apply verbatim
with ``h^i = C_out x #positions``:

* ``||A^i||_F`` is exact: ``||A||_F^2 = sum_t N_t sum_{o,c} W[o, c, t]^2`` where ``N_t`` counts the output
  positions at which tap ``t`` falls inside the input (taps in the zero padding are not matrix entries; no
  padding: ``||A||_F = sqrt(#positions) ||W||_F``), tested against the explicit dense matrix;
* ``φ`` (between layers ``i`` and ``i+1``) is the whole activation block: ReLU together with any pooling and
  reshapes.  It is positively homogeneous and piecewise linear; its Jacobian is the ReLU mask followed by the
  arg-max selection of max pooling (average pooling and reshapes are linear).  **Deviation:** the paper's
  ``φ`` is the ReLU alone; with pooling the contraction ``c`` is ``max ||x^i|| / ||pool(ReLU(x^i))||`` and the
  Jacobians ``J^{i,j}`` go through the pools (what the paper's error-propagation argument needs);
* ``||J^{i,j}||_F = ||J^T||_F`` is exact: the ``h^j`` unit vectors are pulled back by reverse-mode autodiff
  pinned at the traced pre-activations (``sum_j h^j`` backward passes per example; about 0.2 s per example for
  LeNet-5 on 28x28 inputs on one CPU core); ``||J^{i,j} x^i||`` by a forward push of ``x^i``;
* compression: Algorithm 1 applied to the **kernel** ``W`` (``Â = (1/k) sum_t <W, M_t> M_t`` with ±1 helper
  tensors of the kernel's shape), i.e. one helper per kernel *shared across all positions*, as in the
  paper's convolutional extension (whose analysis uses p-wise independent helpers to control the correlation
  between positions; ours are fully independent Rademacher, in particular p-wise independent).  The
  per-layer accuracies ``ε_i`` and ``k_i`` are those of Algorithm 2 with the operator cushions; the stored
  code is the same (``k`` coefficients, or the kernel itself when ``k_i >= #kernel weights``).
  **Deviation:** the paper's conv-specific sample count is **not** implemented, and Algorithm 1's promise is
  not proven here for a kernel shared across positions (the errors at different positions are correlated);
  it is *measured* (``max_rel_error``, ``promise_holds``).  The certificate does not rely on it: as for
  fully-connected nets it is the Occam bound on the exact prefix code of the compressed network ``g`` with
  ``g``'s own training error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from prunebound.bounds.norm_bounds import (
    bartlett2017_quantity,
    fc_weights,
    network_operators,
    neyshabur2018_quantity,
    parameter_count,
)
from prunebound.bounds.pac_bayes import occam_bound as pac_bayes_occam
from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.data import Dataset, as_dataset
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    check_positive,
    check_positive_int,
    check_probability,
)
from prunebound.network import Network, clone, refresh_masked_weights
from prunebound.train import margins

__all__ = [
    "NoiseStability",
    "PerExample",
    "per_example_ratios",
    "per_example_ratios_loop",
    "measure_noise_stability",
    "interlayer_smoothness",
    "matrix_project",
    "CompressionPlan",
    "compression_plan",
    "CompressedNetwork",
    "compress",
    "occam_bound",
    "arora2018_bound",
    "certify_arora2018",
    "arora2018_quantity",
    "comparison_log10",
]

_EXP_BITS = 7  # scale exponent e in [-64, 63]
_BITS_FIELD = 5  # precision b in [1, 32]
_BIAS_BITS = 32


# ----------------------------------------------------------------------------------------------- measurements
def _as_x(data: Dataset | torch.Tensor) -> torch.Tensor:
    x = data if isinstance(data, torch.Tensor) else as_dataset(data).x
    if x.shape[0] == 0:
        raise DataError("data is empty (0 examples)")
    return x


@dataclass(frozen=True)
class PerExample:
    """Per-example ratios behind the definitions (float64, NaN where a ratio is 0/0).

    ``layer[i]``: ``||A^i φ(x^{i-1})|| / (||A^i||_F ||φ(x^{i-1})||)`` shape ``(d, N)``;
    ``interlayer[i][j]`` (``j >= i``): ``||J^{i,j} x^i|| / (||J^{i,j}||_F ||x^i||)`` shape ``(d, d, N)`` (NaN
    for ``j < i``); ``contraction[i]``: ``||x^i|| / ||φ(x^i)||`` for hidden layers, shape ``(d-1, N)``;
    ``output_norm``: ``||f(x)||``.
    """

    layer: torch.Tensor
    interlayer: torch.Tensor
    contraction: torch.Tensor
    output_norm: torch.Tensor


def _trace64(module: nn.Module | Network, x: torch.Tensor):
    net, ws, bs = fc_weights(module)
    tr = net.trace(x)
    ins = [t.reshape(t.shape[0], -1).to(torch.float64) for t in tr.inputs]
    zs = [t.reshape(t.shape[0], -1).to(torch.float64) for t in tr.preacts]
    return net, ws, bs, ins, zs


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    out = num / den
    return torch.where((num == 0) & (den == 0), torch.full_like(out, float("nan")), out)


def per_example_ratios(module: nn.Module | Network, data: Dataset | torch.Tensor, *,
                       chunk_elements: int = 4_000_000) -> PerExample:
    """Vectorised per-example ratios for the cushions and the contraction (one trace, batched Jacobians).

    ``||J^{i,j}||_F`` is computed exactly by pushing the identity through ``J^{i,j} = A^j D^{j-1} ... A^{i+1}
    D^i`` (``D^l = diag(1[x^l > 0])``) in chunks of examples so that a chunk holds at most ``chunk_elements``
    numbers.
    """
    x = _as_x(data)
    check_positive_int("chunk_elements", chunk_elements)
    if not _fc(Network.from_module(module)):
        return _per_example_ratios_ops(module, x, chunk_elements=chunk_elements)
    _, ws, _, ins, zs = _trace64(module, x)
    d, n = len(ws), x.shape[0]
    layer = torch.stack([_ratio((u @ w.T).norm(dim=1), torch.linalg.matrix_norm(w) * u.norm(dim=1))
                         for w, u in zip(ws, ins)])
    masks = [(z > 0).to(torch.float64) for z in zs[:-1]]
    inter = torch.full((d, d, n), float("nan"), dtype=torch.float64)
    hmax = max(w.shape[0] for w in ws)
    for i in range(d):
        hi = zs[i].shape[1]
        inter[i, i] = _ratio(zs[i].norm(dim=1), math.sqrt(hi) * zs[i].norm(dim=1))
        if i == d - 1:
            continue
        step = max(1, chunk_elements // (hi * max(hi, hmax)))
        for s in range(0, n, step):
            sl = slice(s, min(n, s + step))
            jac = torch.eye(hi, dtype=torch.float64).expand(sl.stop - sl.start, hi, hi)
            v = zs[i][sl]
            zn = v.norm(dim=1)
            for j in range(i + 1, d):
                dm = masks[j - 1][sl]
                jac = torch.matmul(ws[j], dm[:, :, None] * jac)
                v = (dm * v) @ ws[j].T
                inter[i, j, sl] = _ratio(v.norm(dim=1), jac.pow(2).sum((1, 2)).sqrt() * zn)
    contr = torch.stack([_ratio(z.norm(dim=1), z.clamp_min(0).norm(dim=1)) for z in zs[:-1]]) if d > 1 \
        else torch.zeros(0, n, dtype=torch.float64)
    return PerExample(layer, inter, contr, zs[-1].norm(dim=1))


def per_example_ratios_loop(module: nn.Module | Network, data: Dataset | torch.Tensor) -> PerExample:
    """Reference implementation: one example at a time, Jacobians by ``torch.autograd.functional.jacobian``.

    Independent route used by the tests and the benchmark (slow; for small inputs only).  Convolutional
    networks: same, through the float64 layer operators and activation blocks.
    """
    x = _as_x(data)
    if not _fc(Network.from_module(module)):
        return _per_example_ratios_ops_loop(module, x)
    _, ws, bs, ins, zs = _trace64(module, x)
    d, n = len(ws), x.shape[0]
    layer = torch.full((d, n), float("nan"), dtype=torch.float64)
    inter = torch.full((d, d, n), float("nan"), dtype=torch.float64)
    contr = torch.full((max(d - 1, 0), n), float("nan"), dtype=torch.float64)

    def segment(i: int, j: int):
        def f(z):
            for t in range(i + 1, j + 1):
                z = ws[t] @ torch.relu(z) + (bs[t] if bs[t] is not None else 0.0)
            return z
        return f

    for e in range(n):
        for i in range(d):
            u = ins[i][e]
            a = float((ws[i] @ u).norm())
            b = float(torch.linalg.matrix_norm(ws[i]) * u.norm())
            layer[i, e] = float("nan") if a == b == 0 else a / b
            z = zs[i][e]
            if i < d - 1:
                p = float(z.norm())
                q = float(torch.relu(z).norm())
                contr[i, e] = float("nan") if p == q == 0 else p / q
            for j in range(i, d):
                jac = torch.autograd.functional.jacobian(segment(i, j), z) if j > i else torch.eye(z.numel(),
                                                                                                    dtype=z.dtype)
                a = float((jac @ z).norm())
                b = float(jac.norm() * z.norm())
                inter[i, j, e] = float("nan") if a == b == 0 else a / b
    return PerExample(layer, inter, contr, zs[-1].norm(dim=1))


def _low(t: torch.Tensor, percentile: float | None) -> float:
    t = t[~torch.isnan(t)]
    if t.numel() == 0:
        return float("nan")
    return float(t.min()) if percentile is None else float(torch.quantile(t, percentile / 100.0))


def _high(t: torch.Tensor, percentile: float | None) -> float:
    t = t[~torch.isnan(t)]
    if t.numel() == 0:
        return 1.0
    return float(t.max()) if percentile is None else float(torch.quantile(t, 1.0 - percentile / 100.0))


@dataclass(frozen=True)
class NoiseStability:
    """Measured noise-stability quantities of Arora et al. (2018), Definitions 4-7 (1-indexed in the paper).

    ``layer_cushion[i] = μ_{i+1}``; ``interlayer_cushion[i][j] = μ_{i+1,j+1}`` (NaN for ``j < i``);
    ``cushion_to_top[i] = μ_{i+1→}``; ``activation_contraction = c`` (1.0 for a one-layer net);
    ``interlayer_smoothness = ρ_δ`` (None unless measured); ``output_norm_max = max_S ||f(x)||``.
    """

    layer_cushion: tuple[float, ...]
    interlayer_cushion: tuple[tuple[float, ...], ...]
    cushion_to_top: tuple[float, ...]
    activation_contraction: float
    output_norm_max: float
    widths: tuple[int, ...]
    n: int
    percentile: float | None = None
    interlayer_smoothness: float | None = None

    @property
    def depth(self) -> int:
        return len(self.layer_cushion)

    def to_dict(self) -> dict:
        return {"layer_cushion": list(self.layer_cushion),
                "interlayer_cushion": [list(r) for r in self.interlayer_cushion],
                "cushion_to_top": list(self.cushion_to_top),
                "activation_contraction": self.activation_contraction,
                "output_norm_max": self.output_norm_max, "widths": list(self.widths), "n": self.n,
                "percentile": self.percentile, "interlayer_smoothness": self.interlayer_smoothness}


def measure_noise_stability(module: nn.Module | Network, data: Dataset | torch.Tensor, *,
                            percentile: float | None = None, smoothness: bool = False,
                            noise_scale: float = 0.01, n_draws: int = 20, delta: float = 0.1,
                            seed: int | None = 0) -> NoiseStability:
    """Measure ``μ_i``, ``μ_{i,j}``, ``μ_{i→}``, ``c`` (and ``ρ_δ`` if ``smoothness``) on ``data`` (Defs.
    4-7).

    ``percentile=None`` uses the exact minimum/maximum over the data, as the definitions require.
    """
    if percentile is not None and not 0 < percentile < 100:
        raise InvalidParameterError(f"percentile must be in (0, 100) or None, got {percentile}")
    Network.from_module(module).require_relu_chain(method="noise stability (Arora et al. 2018, Defs. 4-7)")
    x = _as_x(data)
    net, ws, _ = _weights(module, x)
    r = per_example_ratios(net, x)
    d = len(ws)
    mu = tuple(_low(r.layer[i], percentile) for i in range(d))
    inter = tuple(tuple(_low(r.interlayer[i, j], percentile) if j >= i else float("nan") for j in range(d))
                  for i in range(d))
    to_top = tuple(min(inter[i][j] for j in range(i, d)) for i in range(d))
    c = max([_high(r.contraction[i], percentile) for i in range(d - 1)], default=1.0)
    rho = interlayer_smoothness(net, x, noise_scale=noise_scale, n_draws=n_draws, delta=delta,
                                seed=seed) if smoothness else None
    if _fc(net):
        widths = (int(ws[0].shape[1]), *[int(w.shape[0]) for w in ws])
    else:
        _, ops, _ = network_operators(net, x[:1])
        widths = (ops[0].n_in, *[op.n_out for op in ops])
    return NoiseStability(mu, inter, to_top, c, float(r.output_norm.max()), widths, int(x.shape[0]),
                          percentile, rho)


def interlayer_smoothness(module: nn.Module | Network, data: Dataset | torch.Tensor, *,
                          noise_scale: float = 0.01,
                          n_draws: int = 20, delta: float = 0.1, seed: int | None = 0) -> float:
    """Interlayer smoothness ``ρ_δ`` (Definition 7) estimated with ``n_draws`` Gaussian perturbations.

    For each draw, every layer ``i`` gets ``η`` with ``||η|| = noise_scale ||x^i||`` (per example) and
    ``ρ(draw) = min_{i<j, x} ||η|| ||x^j|| / (||x^i|| ||M^{i,j}(x^i + η) - x^j - J^{i,j} η||)``; the result is
    the ``δ``-quantile of ``ρ(draw)`` over draws (the condition then holds for a ``1 - δ`` fraction of the
    draws). ``inf`` for a one-layer network.
    """
    check_positive("noise_scale", noise_scale)
    check_positive_int("n_draws", n_draws)
    check_probability("delta", delta)
    x = _as_x(data)
    if not _fc(Network.from_module(module)):
        return _interlayer_smoothness_ops(module, x, noise_scale=noise_scale, n_draws=n_draws, delta=delta,
                                          seed=seed)
    _, ws, bs, _, zs = _trace64(module, x)
    d = len(ws)
    if d < 2:
        return float("inf")
    masks = [(z > 0).to(torch.float64) for z in zs[:-1]]
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    per_draw = []
    for _ in range(n_draws):
        best = float("inf")
        for i in range(d - 1):
            eta = torch.randn(zs[i].shape, generator=g, dtype=torch.float64)
            eta = eta / eta.norm(dim=1, keepdim=True) * (noise_scale * zs[i].norm(dim=1, keepdim=True))
            pert, lin = zs[i] + eta, eta
            for j in range(i + 1, d):
                pert = torch.relu(pert) @ ws[j].T + (bs[j] if bs[j] is not None else 0.0)
                lin = (masks[j - 1] * lin) @ ws[j].T
                rem = (pert - zs[j] - lin).norm(dim=1)
                val = eta.norm(dim=1) * zs[j].norm(dim=1) / (zs[i].norm(dim=1) * rem)
                val = val[~torch.isnan(val)]
                if val.numel():
                    best = min(best, float(val.min()))
        per_draw.append(best)
    return float(torch.quantile(torch.tensor(per_draw, dtype=torch.float64), delta))


# ------------------------------------------------------------------------- convolutional / general networks
def _fc(net: Network) -> bool:
    return all(ly.kind == "linear" and set(ly.ops_after) <= {"relu", "dropout", "identity"} for ly in net.layers)


def _skip(m: nn.Module) -> bool:
    return isinstance(m, (nn.Dropout, nn.Identity))


def _post_forward(mods: Sequence[nn.Module], z: torch.Tensor) -> torch.Tensor:
    """The activation block ``φ`` (ReLU, pooling, reshapes) applied to a batch, in float64."""
    for m in mods:
        if _skip(m):
            continue
        z = torch.relu(z) if isinstance(m, nn.ReLU) else m(z)
    return z


def _post_linear(mods: Sequence[nn.Module], base: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Jacobian of ``φ`` at ``base`` (shape ``(E, *s)``) applied to tangents ``v`` (shape ``(E, T, *s)``).

    ReLU: multiply by ``1[base > 0]``; max pooling: pick the arg-max entry of each window (the indices of
    ``max_pool(..., return_indices=True)`` at ``base``); average pooling and reshapes are linear.
    """
    e, t = v.shape[:2]
    for m in mods:
        if _skip(m):
            continue
        if isinstance(m, nn.ReLU):
            v = v * (base > 0).unsqueeze(1).to(v.dtype)
            base = torch.relu(base)
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            pool = F.max_pool1d if isinstance(m, nn.MaxPool1d) else F.max_pool2d
            out, idx = pool(base, m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode,
                            return_indices=True)
            c = base.shape[1]
            idx = idx.reshape(e, 1, c, -1).expand(e, t, c, -1)
            v = v.reshape(e, t, c, -1).gather(3, idx).reshape(e, t, *out.shape[1:])
            base = out
        else:
            v = m(v.reshape(e * t, *v.shape[2:]))
            v = v.reshape(e, t, *v.shape[1:])
            base = m(base)
    return v


def _op_apply(op, v: torch.Tensor) -> torch.Tensor:
    e, t = v.shape[:2]
    return op.apply(v.reshape(e * t, *op.in_shape)).reshape(e, t, *op.out_shape)


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _trace_ops(module: nn.Module | Network, x: torch.Tensor):
    net, ops, posts = network_operators(module, x)
    tr = net.trace(x)
    ins = [t.to(torch.float64) for t in tr.inputs]
    zs = [t.to(torch.float64) for t in tr.preacts]
    return net, ops, posts, ins, zs


def _per_example_ratios_ops(module: nn.Module | Network, x: torch.Tensor, *,
                            chunk_elements: int = 4_000_000) -> PerExample:
    """:func:`per_example_ratios` for any supported network (convolutions, pooling): every layer is its
    linear operator (:class:`~prunebound.bounds.norm_bounds.LayerOperator`, exact ``||A||_F``) and ``φ`` the
    whole activation block (ReLU with any pooling / reshapes); ``J^{i,j}`` is pushed over the identity of
    ``R^{h^i}`` through the linearised blocks."""
    _, ops, posts, ins, zs = _trace_ops(module, x)
    d, n = len(ops), x.shape[0]
    layer = torch.stack([_ratio(_flat(op.apply(u)).norm(dim=1), op.frobenius() * _flat(u).norm(dim=1))
                         for op, u in zip(ops, ins)])
    inter = torch.full((d, d, n), float("nan"), dtype=torch.float64)
    fro = _jacobian_fro_sq(ops, posts, zs, chunk_elements).sqrt()
    for i in range(d):
        zi = _flat(zs[i])
        inter[i, i] = _ratio(zi.norm(dim=1), math.sqrt(ops[i].n_out) * zi.norm(dim=1))
        v = zs[i].unsqueeze(1)
        for j in range(i + 1, d):
            v = _op_apply(ops[j], _post_linear(posts[j - 1], zs[j - 1], v))
            inter[i, j] = _ratio(_flat(v[:, 0]).norm(dim=1), fro[i, j] * zi.norm(dim=1))
    contr = torch.stack([_ratio(_flat(z).norm(dim=1), _flat(_post_forward(p, z)).norm(dim=1))
                         for z, p in zip(zs[:-1], posts[:-1])]) if d > 1 \
        else torch.zeros(0, n, dtype=torch.float64)
    return PerExample(layer, inter, contr, _flat(zs[-1]).norm(dim=1))


def _jacobian_fro_sq(ops, posts, zs: Sequence[torch.Tensor], chunk_elements: int) -> torch.Tensor:
    """``||J^{i,j}_{x^i}||_F^2`` for all ``i < j`` and examples, shape ``(d, d, N)`` (0 elsewhere).

    Uses ``||J||_F = ||J^T||_F``: for each ``j`` the ``h^j`` unit vectors are pulled back by reverse-mode
    autodiff to every ``x^i`` (``i < j``) at once, so the cost is ``sum_j h^j`` backward passes per example
    (cheap for conv nets, whose widths shrink with depth).  The graph is pinned to the traced pre-activations
    (``z_j = f(z_{j-1}) - f(z_{j-1}).detach() + x^j``), so every ReLU mask and max-pool arg-max is the one at
    the data point.
    """
    d, n = len(ops), zs[0].shape[0]
    out = torch.zeros(d, d, n, dtype=torch.float64)
    hsum = sum(op.n_out for op in ops)
    for j in range(1, d):
        hj = ops[j].n_out
        step = max(1, chunk_elements // (hj * hsum))
        for s in range(0, n, step):
            sl = slice(s, min(n, s + step))
            e = sl.stop - sl.start
            with torch.enable_grad():
                nodes = [zs[0][sl].clone().requires_grad_(True)]
                for t in range(1, j + 1):
                    f = ops[t].apply(_post_forward(posts[t - 1], nodes[-1]))
                    nodes.append(f - f.detach() + zs[t][sl])
                blk = max(1, min(hj, chunk_elements // max(1, e * hsum)))
                for b0 in range(0, hj, blk):
                    rows = torch.arange(b0, min(hj, b0 + blk))
                    g = torch.zeros(rows.numel(), e, hj, dtype=torch.float64)
                    g[torch.arange(rows.numel()), :, rows] = 1.0
                    g = g.reshape(rows.numel(), e, *ops[j].out_shape)
                    grads = torch.autograd.grad(nodes[j], nodes[:j], g, retain_graph=True, is_grads_batched=True)
                    for i, gr in enumerate(grads):
                        out[i, j, sl] += gr.reshape(rows.numel(), e, -1).pow(2).sum((0, 2))
    return out


def _per_example_ratios_ops_loop(module: nn.Module | Network, x: torch.Tensor) -> PerExample:
    """Reference for :func:`_per_example_ratios_ops`: one example at a time, ``J^{i,j}`` by autograd through
    the float64 layers and activation blocks (no hand-written linearisation)."""
    _, ops, posts, ins, zs = _trace_ops(module, x)
    d, n = len(ops), x.shape[0]
    layer = torch.full((d, n), float("nan"), dtype=torch.float64)
    inter = torch.full((d, d, n), float("nan"), dtype=torch.float64)
    contr = torch.full((max(d - 1, 0), n), float("nan"), dtype=torch.float64)

    def segment(i: int, j: int):
        def f(z):
            z = z.reshape(1, *ops[i].out_shape)
            for t in range(i + 1, j + 1):
                z = ops[t].forward(_post_forward(posts[t - 1], z))
            return z.reshape(-1)
        return f

    for e in range(n):
        for i in range(d):
            dense = ops[i].dense()
            u = ins[i][e].reshape(-1)
            a, b = float((dense @ u).norm()), float(dense.norm() * u.norm())
            layer[i, e] = float("nan") if a == b == 0 else a / b
            z = zs[i][e].reshape(-1)
            if i < d - 1:
                contr[i, e] = _ratio(z.norm(), _post_forward(posts[i], zs[i][e:e + 1]).norm())
            for j in range(i, d):
                jac = torch.autograd.functional.jacobian(segment(i, j), z) if j > i else torch.eye(z.numel(),
                                                                                                    dtype=z.dtype)
                a, b = float((jac @ z).norm()), float(jac.norm() * z.norm())
                inter[i, j, e] = float("nan") if a == b == 0 else a / b
    return PerExample(layer, inter, contr, _flat(zs[-1]).norm(dim=1))


def _interlayer_smoothness_ops(module: nn.Module | Network, x: torch.Tensor, *, noise_scale: float,
                               n_draws: int, delta: float, seed: int | None) -> float:
    """:func:`interlayer_smoothness` for any supported network (same definition, activation blocks ``φ``)."""
    _, ops, posts, _, zs = _trace_ops(module, x)
    d = len(ops)
    if d < 2:
        return float("inf")
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    per_draw = []
    for _ in range(n_draws):
        best = float("inf")
        for i in range(d - 1):
            zi = zs[i]
            eta = torch.randn(zi.shape, generator=g, dtype=torch.float64)
            en = _flat(eta).norm(dim=1)
            eta = eta * (noise_scale * _flat(zi).norm(dim=1) / en).reshape(-1, *([1] * (zi.dim() - 1)))
            pert, lin = zi + eta, eta.unsqueeze(1)
            for j in range(i + 1, d):
                lin = _op_apply(ops[j], _post_linear(posts[j - 1], zs[j - 1], lin))
                pert = ops[j].forward(_post_forward(posts[j - 1], pert))
                rem = _flat(pert - zs[j] - lin[:, 0]).norm(dim=1)
                val = _flat(eta).norm(dim=1) * _flat(zs[j]).norm(dim=1) / (_flat(zi).norm(dim=1) * rem)
                val = val[~torch.isnan(val)]
                if val.numel():
                    best = min(best, float(val.min()))
        per_draw.append(best)
    return float(torch.quantile(torch.tensor(per_draw, dtype=torch.float64), delta))


def _weights(module: nn.Module | Network, x: torch.Tensor):
    """``(net, kernels, biases)`` in float64 for any supported network (validated)."""
    net = Network.from_module(module)
    if _fc(net):
        return fc_weights(net)
    net, ops, _ = network_operators(net, x)
    return net, [op.weight for op in ops], [op.bias for op in ops]


# ----------------------------------------------------------------------------------------------- Algorithm 1
def _helper_gen(seed: int | None, layer: int) -> torch.Generator:
    s = 0 if seed is None else int(seed)
    return torch.Generator().manual_seed((s * 1_000_003 + 7_919 * (layer + 1)) % (2**63 - 1))


def _helper_rows(g: torch.Generator, rows: int, n: int) -> torch.Tensor:
    return torch.randint(0, 2, (rows, n), generator=g, dtype=torch.int8).to(torch.float64).mul_(2).sub_(1)


def _project_coeffs(a: torch.Tensor, k: int, seed: int | None, layer: int, chunk: int) -> torch.Tensor:
    g = _helper_gen(seed, layer)
    n = a.numel()
    step = max(1, chunk // n)
    out = []
    for s in range(0, k, step):
        out.append(_helper_rows(g, min(step, k - s), n) @ a)
    return torch.cat(out)


def _reconstruct(z: torch.Tensor, n: int, seed: int | None, layer: int, chunk: int) -> torch.Tensor:
    g = _helper_gen(seed, layer)
    k = z.numel()
    step = max(1, chunk // n)
    acc = torch.zeros(n, dtype=torch.float64)
    for s in range(0, k, step):
        rows = _helper_rows(g, min(step, k - s), n)
        acc += z[s: s + rows.shape[0]] @ rows
    return acc / k


def matrix_project(A: torch.Tensor, *, eps: float | None = None, eta: float | None = None,
                   k: int | None = None, seed: int | None = 0, layer: int = 0,
                   chunk: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 (Matrix-Project): ``Â = (1/k) sum_t <A, M_t> M_t`` with ±1 helper matrices from ``seed``.

    ``k = ceil(ln(1/η)/ε^2)`` unless given.  Returns ``(Â, coefficients <A, M_t>)`` in float64.  The helper
    matrices are generated in chunks of ``chunk`` entries (never all in memory) from a generator seeded by
    ``(seed, layer)``, so the same call reproduces them.  ``E[Â] = A`` and for Rademacher helpers
    ``Var(u^T Â v) = (||A||_F^2 ||uv^T||_F^2 + <A, uv^T>^2 - 2 sum A_ab^2 u_a^2 v_b^2) / k``, so with the
    paper's ``k`` the threshold ``ε ||A||_F ||u|| ||v||`` is only about ``sqrt(ln(1/η))`` standard deviations
    and the per-pair failure rate is close to ``2 Φ̄(sqrt(ln(1/η)))`` (measured 0.03 at ``η = 0.01``), above
    ``η``; ``4 k`` helpers bring it below ``η`` (tested).  The matrix form used by the theorem,
    ``||U(Â - A)x|| <= ε ||A||_F ||U||_F ||x||``, concentrates over the rows of ``U`` and holds far more
    often.
    """
    if not isinstance(A, torch.Tensor) or A.dim() != 2:
        raise InvalidParameterError(f"A must be a 2-D tensor, got {type(A).__name__}")
    if not bool(torch.isfinite(A).all()):
        raise DataError("A contains NaN or inf")
    if k is None:
        if eps is None or eta is None:
            raise InvalidParameterError("give either k or both eps and eta")
        check_positive("eps", eps)
        check_probability("eta", eta)
        k = math.ceil(math.log(1.0 / eta) / eps**2)
    k = check_positive_int("k", k)
    a = A.detach().to(torch.float64).reshape(-1)
    z = _project_coeffs(a, k, seed, layer, chunk)
    return _reconstruct(z, a.numel(), seed, layer, chunk).reshape(A.shape), z


# ----------------------------------------------------------------------------------------------- Algorithm 2
@dataclass(frozen=True)
class CompressionPlan:
    """Per-layer accuracies of Algorithm 2: ``eps`` (relative output error promised), ``eps_layers[i] = ε_i``,
    ``eta_layers[i] = η_i``, ``k_theory[i] = ceil(ln(1/η_i)/ε_i^2)``; ``q_paper`` is Theorem 4.1's
    quantity."""

    eps: float
    gamma: float | None
    kappa: float
    eps_layers: tuple[float, ...]
    eta_layers: tuple[float, ...]
    k_theory: tuple[int, ...]
    q_paper: float

    def to_dict(self) -> dict:
        return {"eps": self.eps, "gamma": self.gamma, "kappa": self.kappa,
                "eps_layers": list(self.eps_layers),
                "eta_layers": list(self.eta_layers), "k_theory": list(self.k_theory), "q_paper": self.q_paper}


def compression_plan(stab: NoiseStability, *, m: int, delta: float, gamma: float | None = None,
                     eps: float | None = None, kappa: float = 4.0) -> CompressionPlan:
    """``ε_i = ε μ_i μ_{i→} / (κ c d)``, ``η_i = δ / (d m sum_{j>=i} h^j)``, ``k_i = ceil(ln(1/η_i)/ε_i^2)``.

    Give ``gamma`` (then ``ε = γ / (sqrt(2) max_S ||f(x)||)``) or the relative error ``eps`` directly.
    """
    check_probability("delta", delta)
    check_positive_int("m", m)
    check_positive("kappa", kappa)
    if (gamma is None) == (eps is None):
        raise InvalidParameterError("give exactly one of gamma (margin) and eps (relative output error)")
    if gamma is not None:
        check_positive("gamma", gamma)
        eps = gamma / (math.sqrt(2.0) * stab.output_norm_max)
    check_positive("eps", eps)
    d, c = stab.depth, stab.activation_contraction
    outs = stab.widths[1:]
    eps_l, eta_l, ks = [], [], []
    for i in range(d):
        e = eps * stab.layer_cushion[i] * stab.cushion_to_top[i] / (kappa * c * d)
        et = delta / (d * m * sum(outs[i:]))
        eps_l.append(e)
        eta_l.append(et)
        ks.append(math.ceil(math.log(1.0 / et) / e**2) if e > 0 else 2**62)
    q_paper = arora2018_quantity(stab, gamma=gamma) if gamma is not None else float("nan")
    return CompressionPlan(float(eps), gamma, kappa, tuple(eps_l), tuple(eta_l), tuple(ks), q_paper)


def arora2018_quantity(stab: NoiseStability, *, gamma: float) -> float:
    """Theorem 4.1 effective parameter count ``c^2 d^2 max||f(x)||^2 sum_i 1/(μ_i^2 μ_{i→}^2) / γ^2``."""
    check_positive("gamma", gamma)
    d = stab.depth
    s = sum(1.0 / (mu**2 * mt**2) for mu, mt in zip(stab.layer_cushion, stab.cushion_to_top))
    return stab.activation_contraction**2 * d**2 * stab.output_norm_max**2 * s / gamma**2


def _elias_gamma_bits(k: int) -> int:
    return 2 * int(math.floor(math.log2(k))) + 1


def _quantize(v: torch.Tensor, bits: int) -> tuple[torch.Tensor, int]:
    qmax = 2 ** (bits - 1) - 1
    amax = float(v.abs().max())
    if amax == 0:
        return torch.zeros_like(v), -64
    e = max(-64, min(63, math.ceil(math.log2(amax / qmax))))
    s = 2.0**e
    return torch.clamp(torch.round(v / s), -qmax, qmax) * s, e


@dataclass(frozen=True)
class CompressedNetwork:
    """Output of :func:`compress`: the compressed model ``g`` and what was stored.

    ``modes[i]`` is ``"project"`` (``k[i]`` helper coefficients) or ``"store"`` (the weights themselves, used
    when ``k_i >= n_i``); ``bits`` the precision (None: unquantised reals, not codable); ``code_bits`` the
    prefix-code length (None when ``bits`` is None); ``q`` the number of stored reals; ``max_rel_error`` /
    ``max_abs_error`` the largest ``||g(x) - f(x)|| / ||f(x)||`` and ``||g(x) - f(x)||`` over the data;
    ``promise_holds``: ``max_rel_error <= plan.eps``.
    """

    model: nn.Module = field(repr=False, compare=False)
    plan: CompressionPlan
    modes: tuple[str, ...]
    k: tuple[int, ...]
    bits: int | None
    code_bits: int | None
    q: int
    max_rel_error: float
    max_abs_error: float
    promise_holds: bool
    seed: int | None

    def to_dict(self) -> dict:
        return {"plan": self.plan.to_dict(), "modes": list(self.modes), "k": list(self.k), "bits": self.bits,
                "code_bits": self.code_bits, "q": self.q, "max_rel_error": self.max_rel_error,
                "max_abs_error": self.max_abs_error, "promise_holds": self.promise_holds, "seed": self.seed}


def _build(net: Network, mats: Sequence[torch.Tensor]) -> nn.Module:
    g = clone(net.module)
    gnet = Network.from_module(g)
    with torch.no_grad():
        for ly, a in zip(gnet.layers, mats):
            target = ly.module.weight_orig if hasattr(ly.module, "weight_orig") else ly.module.weight
            target.copy_(a.reshape(target.shape).to(target.dtype))
    return refresh_masked_weights(g)


def _errors(f_out: torch.Tensor, g: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    g_out = Network.from_module(g).forward(x).reshape(x.shape[0], -1).to(torch.float64)
    diff = (g_out - f_out).norm(dim=1)
    rel = diff / f_out.norm(dim=1)
    rel = torch.where(diff == 0, torch.zeros_like(rel), rel)
    return float(rel.max()), float(diff.max())


def _layer_code_bits(mode: str, k: int, n_weights: int, bits: int, n_bias: int) -> int:
    if mode == "project":
        body = _elias_gamma_bits(k) + _EXP_BITS + k * bits
    else:
        body = _EXP_BITS + n_weights * bits
    return 1 + body + _BIAS_BITS * n_bias


def compress(module: nn.Module | Network, data: Dataset | torch.Tensor, *, gamma: float | None = None,
             eps: float | None = None, delta: float = DEFAULT_DELTA, seed: int | None = 0, bits: int | None = None,
             k: Sequence[int] | None = None, k_scale: float = 1.0, kappa: float = 4.0,
             stability: NoiseStability | None = None, chunk: int = 1 << 22) -> CompressedNetwork:
    """Algorithm 2 of Arora et al.: Matrix-Project every layer with ``ε_i``, ``η_i`` from
    :func:`compression_plan`.

    ``k`` overrides the per-layer number of helper matrices (e.g. to test too few projections); otherwise
    ``k_i = ceil(k_scale * k_theory_i)``.  A layer with ``k_i >= n_i`` weights is stored instead (mode
    ``"store"``).  ``bits`` quantises the stored numbers to ``b``-bit integers times a power of two (needed
    for the generalization bound); ``None`` keeps them real (to test Algorithm 1's promise alone).
    """
    x = _as_x(data)
    net, ws, bs = _weights(module, x)
    check_positive("k_scale", k_scale)
    if bits is not None:
        check_positive_int("bits", bits, minimum=2)
        if bits > 32:
            raise InvalidParameterError(f"bits must be in [2, 32], got {bits}")
    stab = stability if stability is not None else measure_noise_stability(net, x)
    plan = compression_plan(stab, m=int(x.shape[0]), delta=delta, gamma=gamma, eps=eps, kappa=kappa)
    if k is not None:
        if len(k) != len(ws):
            raise InvalidParameterError(f"k has {len(k)} entries; the network has {len(ws)} layers")
        ks = [check_positive_int("k[i]", int(v)) for v in k]
    else:
        ks = [max(1, math.ceil(k_scale * kt)) for kt in plan.k_theory]
    modes, mats, code, q = [], [], _BITS_FIELD, 0
    for i, (w, b) in enumerate(zip(ws, bs)):
        n_w = w.numel()
        if ks[i] < n_w:
            z = _project_coeffs(w.reshape(-1), ks[i], seed, i, chunk)
            if bits is not None:
                z, _ = _quantize(z, bits)
            mats.append(_reconstruct(z, n_w, seed, i, chunk).reshape(w.shape))
            modes.append("project")
            q += ks[i]
        else:
            mats.append(_quantize(w, bits)[0] if bits is not None else w.clone())
            modes.append("store")
            ks[i] = n_w
            q += n_w
        code += _layer_code_bits(modes[-1], ks[i], n_w, bits or 0, 0 if b is None else b.numel())
    g = _build(net, mats)
    f_out = net.forward(x).reshape(x.shape[0], -1).to(torch.float64)
    rel, ab = _errors(f_out, g, x)
    return CompressedNetwork(g, plan, tuple(modes), tuple(ks), bits, code if bits is not None else None, q,
                             rel, ab, rel <= plan.eps, seed)


# ----------------------------------------------------------------------------------------------- bounds
def occam_bound(errors: int, m: int, *, code_bits: float, delta: float, method: str = "binomial") -> float:
    """Theorem 2.1 (Occam form): risk bound for a classifier described by a ``code_bits`` prefix code.

    ``"binomial"``: largest ``p`` with ``P(Bin(m, p) <= errors) >= δ 2^{-code_bits}`` (Clopper-Pearson
    inversion); ``"hoeffding"``: ``errors/m + sqrt((code_bits ln 2 + ln(1/δ)) / (2m))``.  Both capped at 1.
    """
    check_positive_int("m", m)
    check_probability("delta", delta)
    if not 0 <= errors <= m:
        raise InvalidParameterError(f"errors must be in [0, m={m}], got {errors}")
    if method == "hoeffding":
        return min(1.0, pac_bayes_occam(errors / m, code_bits, m, delta=delta, form="hoeffding").value)
    ln_d = math.log(delta) - code_bits * math.log(2.0)
    if method != "binomial":
        raise InvalidParameterError(f"method must be 'binomial' or 'hoeffding', got {method!r}")
    if errors >= m:
        return 1.0
    # log P(Bin(m, p) <= e) by log-sum-exp of log-pmfs (no underflow); decreasing in p: bisection.
    ks = torch.arange(errors + 1).numpy()

    def log_cdf(p: float) -> float:
        lp = stats.binom.logpmf(ks, m, p)
        top = float(lp.max())
        if not math.isfinite(top):
            return -math.inf
        return top + math.log(math.fsum(math.exp(v - top) for v in lp))

    lo, hi = errors / m, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if log_cdf(mid) >= ln_d:
            lo = mid
        else:
            hi = mid
    return min(1.0, hi)


def _n_errors(model: nn.Module, data: Dataset) -> int:
    return int((margins(model, data) <= 0).sum())


def arora2018_bound(module: nn.Module | Network, data: Dataset, *, delta: float = DEFAULT_DELTA, seed: int | None = 0,
                    gamma: float | None = None, bits_grid: Sequence[int] = (2, 3, 4, 5, 6, 8, 10, 12),
                    k_scale: float = 1.0, kappa: float = 4.0, method: str = "binomial"
                    ) -> tuple[BoundTerms, CompressedNetwork]:
    """Compression bound on the compressed network ``g`` (module docstring): returns ``(terms, compressed)``.

    ``gamma=None`` uses the 10th percentile of the positive training margins of ``f`` (any data-dependent
    choice is allowed: γ only sets the ``k_i``, which are part of the code).  The precision ``b`` is chosen
    from ``bits_grid`` to minimise the bound (``b`` is part of the code).  ``seed`` fixes the helper string
    and must not be chosen after looking at the data.
    """
    check_probability("delta", delta)
    Network.from_module(module).require_relu_chain(method="arora2018 (Arora et al. 2018 compression bound)")
    data = as_dataset(data)
    net, _, _ = _weights(module, data.x)
    m = len(data)
    mg = margins(net.module, data)
    if gamma is None:
        pos = mg[mg > 0]
        gamma = float(torch.quantile(pos, 0.1)) if pos.numel() else float(mg.abs().max()) or 1.0
    check_positive("gamma", gamma)
    stab = measure_noise_stability(net, data)
    best = None
    for b in bits_grid:
        cn = compress(net, data, gamma=gamma, delta=delta, seed=seed, bits=int(b), k_scale=k_scale,
                      kappa=kappa, stability=stab)
        errs = _n_errors(cn.model, data)
        val = occam_bound(errs, m, code_bits=cn.code_bits, delta=delta, method=method)
        if best is None or (val, errs) < best[:2]:  # ties (e.g. all vacuous): keep the more accurate g
            best = (val, errs, cn)
    val, errs, cn = best
    emp = errs / m
    hoeff = occam_bound(errs, m, code_bits=cn.code_bits, delta=delta, method="hoeffding")
    lg = float((mg <= gamma).double().mean())
    q_th = sum(cn.plan.k_theory)
    theorem = min(1.0, lg + math.sqrt((q_th * cn.bits * math.log(2) + math.log(1 / delta)) / (2 * m)))
    parts = {
        "code_bits": float(cn.code_bits), "q_stored": float(cn.q), "bits": float(cn.bits), "gamma": gamma,
        "m": float(m), "ln_1_over_delta": math.log(1 / delta), "hoeffding_value": hoeff,
        "margin_loss_f": lg, "max_abs_error": cn.max_abs_error, "max_rel_error": cn.max_rel_error,
        "eps_promised": cn.plan.eps, "guarantee_holds": float(cn.max_abs_error <= gamma / math.sqrt(2)),
        "q_theory": float(q_th), "q_paper": cn.plan.q_paper, "theorem_value": theorem,
        "activation_contraction": stab.activation_contraction, "output_norm_max": stab.output_norm_max,
        "n_projected_layers": float(sum(md == "project" for md in cn.modes)),
    }
    for i, (mu, mt) in enumerate(zip(stab.layer_cushion, stab.cushion_to_top)):
        parts[f"mu_{i + 1}"] = mu
        parts[f"mu_{i + 1}_to_top"] = mt
        parts[f"k_{i + 1}"] = float(cn.k[i])
    return BoundTerms(val, emp, val - emp, parts), cn


def certify_arora2018(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = 0,
                      gamma: float | None = None, bits_grid: Sequence[int] = (2, 3, 4, 5, 6, 8, 10, 12),
                      k_scale: float = 1.0, kappa: float = 4.0, method: str = "binomial") -> Certificate:
    """Certificate ``arora2018``: risk bound of the compressed network ``g`` rebuilt from ``module`` and
    ``seed``."""
    terms, _ = arora2018_bound(module, data, delta=delta, seed=seed, gamma=gamma, bits_grid=bits_grid,
                               k_scale=k_scale, kappa=kappa, method=method)
    params = {"gamma": gamma, "bits_grid": [int(b) for b in bits_grid], "k_scale": k_scale, "kappa": kappa,
              "method": method}
    return make_certificate("arora2018", terms, module, data, delta=delta, seed=seed, params=params,
                            note="bound on the compressed network g = Algorithm 2(module, helper seed), "
                                 "not on module itself (Arora et al. 2018, Thm 2.1)")


def comparison_log10(module: nn.Module | Network, data: Dataset | torch.Tensor, *, gamma: float,
                     stability: NoiseStability | None = None) -> dict[str, float]:
    """log10 of the effective-parameter quantities of the Arora et al. (2018) comparison figure.

    Keys: ``params`` (count), ``arora2018`` (:func:`arora2018_quantity`), ``spectral_bartlett2017``
    (``mean||x||^2 R_A^2/γ^2``), ``spectral_neyshabur2018`` (``B^2 d^2 h ln(dh) prod||A||_2^2 sum sr / γ^2``).
    """
    check_positive("gamma", gamma)
    stab = stability if stability is not None else measure_noise_stability(module, data)
    return {
        "params": math.log10(parameter_count(module)),
        "arora2018": math.log10(arora2018_quantity(stab, gamma=gamma)),
        "spectral_bartlett2017": math.log10(bartlett2017_quantity(module, data, gamma=gamma)),
        "spectral_neyshabur2018": math.log10(neyshabur2018_quantity(module, data, gamma=gamma)),
    }


register_certifier("arora2018", certify_arora2018)
