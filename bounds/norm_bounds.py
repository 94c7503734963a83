"""Norm-based generalization bounds used as comparators for the compression bound of Arora et al. (2018).

All quantities are computed on ReLU networks of ``Linear``/``Conv1d``/``Conv2d`` layers (with max/avg pooling
and reshapes between them).  A convolution is the linear operator it applies (:class:`LayerOperator`, needs
the input shape: pass ``input_shape``, or data to the ``*_quantity``/``*_bound`` functions): exact Frobenius
and row norms (padding/stride/dilation accounted for), spectral norm by Lanczos/power iteration with ``conv``
and ``conv_transpose`` (tested against the dense matrix); ``W``/``h`` are the operator dimensions (channels x
positions) and an overlapping pool contributes its Lipschitz constant ``ρ_i`` (:func:`post_lipschitz`, 1 for
ReLU and non-overlapping pools) to the spectral product.  The explicit PAC-Bayes bound of Neyshabur et al.
stays fully-connected only (its random-matrix step is for dense layers).

Biases are ignored by the norm quantities (both papers analyse bias-free networks); the explicit PAC-Bayes
bound of Neyshabur et al. refuses networks with biases because its re-balancing argument needs bias-free
layers.

Quantities (``A_i``: weight matrix of layer ``i``, ``d`` layers, ``h`` the largest width, ``γ`` the margin):

* Bartlett, Foster, Telgarsky (NeurIPS 2017), spectral complexity with reference matrices ``M_i = 0`` and
  1-Lipschitz activations::

      R_A = (prod_i ||A_i||_2) * (sum_i (||A_i^T||_{2,1} / ||A_i||_2)^{2/3})^{3/2}

where ``||B||_{2,1}`` is the sum of the Euclidean norms of the columns of ``B``; the columns of ``A_i^T`` are
the rows of ``A_i`` (shape ``(out, in)``), so ``||A_i^T||_{2,1} = sum_r ||A_i[r, :]||_2``. The figure quantity
(effective number of parameters, ``gap ~ sqrt(N / m)``) is ``N = mean_x ||x||^2 R_A^2 / γ^2`` since their
margin term is ``||X||_2 R_A / (γ m)`` with ``||X||_2 = sqrt(sum_x ||x||^2)``.
* Neyshabur, Bhojanapalli, Srebro (ICLR 2018), Theorem 1, figure quantity::

      N = B^2 d^2 h ln(d h) prod_i ||A_i||_2^2 sum_i ||A_i||_F^2 / ||A_i||_2^2 / γ^2,   B = max_x ||x||.

Explicit bounds (constants written out):

* :func:`neyshabur2018_bound`: their Lemma 1 (margin PAC-Bayes, ``L_0 <= L̂_γ + 4 sqrt((KL +
  ln(6m/δ))/(m-1))``) with prior ``N(0, σ^2 I)``, posterior ``N(w̃, σ^2 I)`` at the re-balanced weights (every
  layer spectral norm ``β = (prod ||A_i||_2)^{1/d}``), ``σ = γ / (42 d B β̃^{d-1} sqrt(h ln(4 d h)))`` and
  ``β̃`` the first point ``β_min (1 + 1/d)^j >= β`` of a data-independent geometric grid between ``β_min =
  (γ/(2B))^{1/d}`` and ``β_max = (γ sqrt(m)/(2B))^{1/d}`` (outside that range the bound is trivial, see their
  proof), union bound over the grid.  This reproduces the constant 42 of their proof (``4 e^2 sqrt(2) < 42``).
  Assumption: ``||x|| <= B`` on the whole input distribution; when ``B`` is not given we use the training
  maximum (then the bound is only heuristic for unbounded inputs such as Gaussian teacher data).
* :func:`bartlett2017_bound`: the fixed-norm form of their margin bound as we recall it (Lemma A.8): ``R̂_γ +
  8/m + 72 ||X||_2 R ln(2W) ln(m) / (γ m) + 3 sqrt(ln(2/δ')/(2m))`` with ``W`` the largest width, made
  data-dependent by rounding every ``||A_i||_2`` and ``||A_i^T||_{2,1}`` up to a power of two and a union
  bound over the exponents (weight ``δ' = δ / prod_j (π²/3 - 1)(|e_j| + 1)^2``), and over ``γ`` rounded down
  to a power of two the same way.  **Deviation:** the full text of the paper was not available while writing
  this; the constants 8, 72, 3 are from memory and should be checked against Bartlett et al. (2017), Appendix
  A.  The figure quantity does not depend on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F
from torch import nn

from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.data import Dataset
from prunebound.errors import (
    DataError,
    InvalidParameterError,
    UnsupportedLayerError,
    check_positive,
    check_probability,
)
from prunebound.network import Network, count_parameters
from prunebound.train import margins

__all__ = [
    "NormSummary",
    "fc_weights",
    "LayerOperator",
    "network_operators",
    "post_lipschitz",
    "spectral_norms",
    "norm_summary",
    "spectral_complexity_bartlett2017",
    "bartlett2017_quantity",
    "bartlett2017_bound",
    "neyshabur2018_quantity",
    "neyshabur2018_bound",
    "parameter_count",
    "certify_bartlett2017",
    "certify_neyshabur2018",
]

_ZETA2_Z = math.pi**2 / 3 - 1  # sum over all integers e of 1 / (|e| + 1)^2


def fc_weights(module: nn.Module | Network) -> tuple[Network, list[torch.Tensor], list[torch.Tensor | None]]:
    """Validate a fully-connected ReLU network and return ``(net, weights, biases)`` in float64.

    Every layer must be ``Linear``; layers ``0..d-2`` must be followed by a ReLU and nothing but
    ``Dropout``/``Identity``; the last layer by nothing that changes values.  Raises
    :class:`UnsupportedLayerError` otherwise and :class:`DataError` for NaN/inf weights.
    """
    net = Network.from_module(module)
    net.require_relu_chain(method="the noise-stability (Arora et al. 2018) and norm bounds", linear_only=True)
    net.check_finite()
    ws, bs = [], []
    for ly in net.layers:
        if ly.kind != "linear":
            raise UnsupportedLayerError(
                f"layer {ly.path!r} is {ly.kind}; the noise-stability and norm bounds here support "
                "fully-connected "
                "(Linear + ReLU) networks only")
        extra = set(ly.ops_after) - {"relu", "dropout", "identity"}
        if extra:
            raise UnsupportedLayerError(
                f"layer {ly.path!r} is followed by {sorted(extra)}; only ReLU is supported")
        last = ly.index == len(net.layers) - 1
        if last and ly.activation is not None:
            raise UnsupportedLayerError(f"the last layer {ly.path!r} must output logits (no ReLU after it)")
        if not last and ly.ops_after.count("relu") != 1:
            raise UnsupportedLayerError(f"hidden layer {ly.path!r} must be followed by exactly one ReLU")
        ws.append(ly.weight.detach().to(torch.float64))
        bs.append(None if ly.bias is None else ly.bias.detach().to(torch.float64))
    return net, ws, bs


_POST_OPS = {"relu", "dropout", "identity", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "flatten",
             "unflatten"}
_PRE_OPS = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout)


def _tuple(v, nd: int) -> tuple[int, ...]:
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * nd


@dataclass(frozen=True)
class LayerOperator:
    """One weighted layer as the linear operator ``A`` it applies to one example (float64, bias kept apart).

    ``in_shape`` / ``out_shape`` are per-example shapes (no batch dimension); ``n_in`` / ``n_out`` their
    sizes, i.e. ``A`` is an ``(n_out, n_in)`` matrix.  For a convolution (zero padding ``p``, stride ``s``,
    dilation ``δ``, kernel ``k`` per spatial dimension) output position ``l`` applies tap ``t`` to input
    position ``l s - p + t δ``; taps that fall into the padding multiply zeros and are *not* entries of
    ``A``.  Hence, with ``N_t`` the number of output positions where tap ``t`` is in bounds (a product over
    spatial dimensions),

        ||A||_F^2 = sum_t N_t sum_{o,c} W[o, c, t]^2,
        ||row (o, l) of A||^2 = sum_{c, t in bounds at l} W[o, c, t]^2,

    and without padding ``N_t = #output positions`` for every tap, so ``||A||_F = sqrt(#positions)
    ||W||_F``.  The spectral norm of a convolution is the square root of the top eigenvalue of ``A^T A``,
    found by Lanczos/power iteration with ``conv`` and ``conv_transpose`` as matrix-vector products (exact
    up to the convergence tolerance).
    """

    kind: str
    weight: torch.Tensor = field(repr=False)
    bias: torch.Tensor | None = field(repr=False)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()

    @property
    def n_in(self) -> int:
        return int(math.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(math.prod(self.out_shape))

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """``A u`` for a batch ``u`` of shape ``(B, *in_shape)`` (no bias) -> ``(B, *out_shape)``."""
        b = u.shape[0]
        u = u.reshape(b, *self.in_shape).to(torch.float64)
        if self.kind == "linear":
            return u @ self.weight.T
        conv = F.conv1d if self.kind == "conv1d" else F.conv2d
        return conv(u, self.weight, None, self.stride, self.padding, self.dilation)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``A u + b`` (the layer itself, in float64)."""
        z = self.apply(u)
        if self.bias is None:
            return z
        return z + self.bias.reshape(-1, *([1] * (len(self.out_shape) - 1)))

    def apply_t(self, v: torch.Tensor) -> torch.Tensor:
        """``A^T v`` for ``v`` of shape ``(B, *out_shape)`` (``conv_transpose`` for convolutions)."""
        b = v.shape[0]
        v = v.reshape(b, *self.out_shape).to(torch.float64)
        if self.kind == "linear":
            return v @ self.weight
        ks = self.weight.shape[2:]
        outpad = tuple(li - ((lo - 1) * s - 2 * p + dl * (k - 1) + 1) for li, lo, s, p, dl, k in
                       zip(self.in_shape[1:], self.out_shape[1:], self.stride, self.padding, self.dilation, ks))
        convt = F.conv_transpose1d if self.kind == "conv1d" else F.conv_transpose2d
        return convt(v, self.weight, None, self.stride, self.padding, outpad, 1, self.dilation)

    def _inbounds(self) -> torch.Tensor:
        """0/1 matrix ``(#output positions, #taps)``: tap ``t`` is inside the input at output position ``l``."""
        mats = []
        for li, lo, k, s, p, dl in zip(self.in_shape[1:], self.out_shape[1:], self.weight.shape[2:],
                                        self.stride, self.padding, self.dilation):
            pos = torch.arange(lo)[:, None] * s - p + torch.arange(k)[None, :] * dl
            mats.append(((pos >= 0) & (pos < li)).to(torch.float64))
        m = mats[0]
        for nxt in mats[1:]:
            m = torch.einsum("ab,cd->acbd", m, nxt).reshape(m.shape[0] * nxt.shape[0], m.shape[1] * nxt.shape[1])
        return m

    def row_norms_sq(self) -> torch.Tensor:
        """Squared Euclidean norms of the ``n_out`` rows of ``A`` (order of ``out.reshape(-1)``)."""
        if self.kind == "linear":
            return self.weight.pow(2).sum(1)
        q = self.weight.pow(2).sum(1).reshape(self.weight.shape[0], -1)  # (out, taps)
        return (q @ self._inbounds().T).reshape(-1)

    def frobenius(self) -> float:
        """``||A||_F`` (exact, see the class docstring)."""
        if self.kind == "linear":
            return float(torch.linalg.matrix_norm(self.weight))
        return float(self.row_norms_sq().sum().sqrt())

    def l21(self) -> float:
        """``||A^T||_{2,1} = sum`` of the row norms of ``A``."""
        return float(self.row_norms_sq().sqrt().sum())

    def spectral(self, *, tol: float = 1e-12, seed: int = 0) -> float:
        """``||A||_2``: SVD for ``Linear``; for convolutions the largest eigenvalue of ``A^T A`` by Lanczos
        iteration (ARPACK ``eigsh``, a Krylov refinement of power iteration) whose matrix-vector product is
        ``conv_transpose(conv(v))``; ``A`` is never formed.  Converged to ``tol`` relative (tested against the
        dense SVD)."""
        if self.kind == "linear":
            return float(torch.linalg.matrix_norm(self.weight, ord=2))
        n = self.n_in

        def mv(v):
            t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).reshape(1, *self.in_shape)
            return self.apply_t(self.apply(t)).reshape(-1).numpy()

        if n <= 2:
            return float(torch.linalg.matrix_norm(self.dense(), ord=2))
        v0 = np.random.default_rng(seed).standard_normal(n)
        op = spla.LinearOperator((n, n), matvec=mv, dtype=np.float64)
        lam = spla.eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
        return float(math.sqrt(max(0.0, float(lam[0]))))

    def dense(self) -> torch.Tensor:
        """The explicit ``(n_out, n_in)`` matrix (small layers only; for tests)."""
        eye = torch.eye(self.n_in, dtype=torch.float64)
        return self.apply(eye).reshape(self.n_in, -1).T


def network_operators(module: nn.Module | Network, x: torch.Tensor | None = None, *,
                      input_shape: Sequence[int] | None = None
                      ) -> tuple[Network, list[LayerOperator], list[list[nn.Module]]]:
    """Validate a ReLU network of ``Linear``/``Conv1d``/``Conv2d`` layers and return ``(net, operators,
    posts)``.

    ``posts[i]`` lists the pass-through modules between layer ``i`` and layer ``i+1`` (ReLU, max/avg pooling,
    flatten, unflatten, dropout, identity): together they are the activation ``φ`` of the paper.  Every
    hidden layer must be followed by exactly one ReLU, the last by nothing that changes values; only
    reshapes may precede the first layer.  Convolutions need the input shape: give a batch ``x`` (only its
    first example is used) or the per-example ``input_shape``.
    """
    net = Network.from_module(module)
    net.require_relu_chain(method="the noise-stability (Arora et al. 2018) and norm bounds")
    net.check_finite()
    leaves = net.leaves
    wpos = [i for i, (_, m) in enumerate(leaves) if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    for path, m in leaves[: wpos[0]]:
        if not isinstance(m, _PRE_OPS):
            raise UnsupportedLayerError(
                f"layer {path!r} ({type(m).__name__}) precedes the first weighted layer; only Flatten, Unflatten, "
                "Identity and Dropout are supported there")
    for ly in net.layers:
        extra = set(ly.ops_after) - _POST_OPS
        last = ly.index == len(net.layers) - 1
        if last:
            extra |= set(ly.ops_after) - {"dropout", "identity", "flatten", "unflatten"}
        if extra:
            raise UnsupportedLayerError(
                f"layer {ly.path!r} is followed by {sorted(extra)}; allowed: ReLU, max/avg pooling, Flatten, "
                "Unflatten, Dropout, Identity (the last layer must output logits)")
        if not last and ly.ops_after.count("relu") != 1:
            raise UnsupportedLayerError(f"hidden layer {ly.path!r} must be followed by exactly one ReLU")
        if ly.kind != "linear":
            pad = ly.module.padding
            if isinstance(pad, str):
                k = ly.module.kernel_size
                dil = _tuple(ly.module.dilation, len(k))
                if pad == "same" and any(dl * (kk - 1) % 2 for dl, kk in zip(dil, k)):
                    raise UnsupportedLayerError(f"layer {ly.path!r}: asymmetric 'same' padding not supported")
    all_linear = all(ly.kind == "linear" for ly in net.layers)
    if x is None and input_shape is not None:
        x = torch.zeros((1, *[int(s) for s in input_shape]))
    if x is None and not all_linear:
        raise InvalidParameterError("convolutional networks need the input shape: pass x (a batch of inputs) "
                                    "or input_shape (one example's shape)")
    if x is not None:
        if not isinstance(x, torch.Tensor) or x.shape[0] == 0:
            raise DataError("x must be a non-empty tensor")
        tr = net.trace(x[:1])
        shapes = [(tuple(a.shape[1:]), tuple(z.shape[1:])) for a, z in zip(tr.inputs, tr.preacts)]
    else:
        shapes = [((ly.fan_in,), (ly.fan_out,)) for ly in net.layers]
    ops = []
    for ly, (ins, outs) in zip(net.layers, shapes):
        w = ly.weight.detach().to(torch.float64)
        b = None if ly.bias is None else ly.bias.detach().to(torch.float64)
        if ly.kind == "linear":
            ops.append(LayerOperator("linear", w, b, (int(w.shape[1]),), (int(w.shape[0]),)))
            continue
        m, nd = ly.module, w.dim() - 2
        pad = m.padding
        if isinstance(pad, str):
            pad = (0,) * nd if pad == "valid" else tuple(dl * (k - 1) // 2 for dl, k in
                                                         zip(_tuple(m.dilation, nd), w.shape[2:]))
        ops.append(LayerOperator(ly.kind, w, b, ins, outs, _tuple(m.stride, nd), _tuple(pad, nd),
                                 _tuple(m.dilation, nd)))
    posts = []
    for j in range(len(wpos)):
        end = wpos[j + 1] if j + 1 < len(wpos) else len(leaves)
        posts.append([m for _, m in leaves[wpos[j] + 1: end]])
    return net, ops, posts


def post_lipschitz(posts: Sequence[nn.Module]) -> float:
    """An upper bound on the ℓ2 Lipschitz constant of a pass-through block (ReLU, pooling, reshapes).

    ReLU and reshapes are 1-Lipschitz; a max or average pool whose windows overlap (each input entry in at
    most ``r = prod ceil(k_d / s_d)`` windows) is ``sqrt(r)``-Lipschitz (``|max a - max b| <= ||a - b||`` per
    window, summed over windows; the average is a convex combination).  Non-overlapping pools give 1.
    """
    rho = 1.0
    for m in posts:
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
            nd = 1 if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)) else 2
            k = _tuple(m.kernel_size, nd)
            s = _tuple(m.stride if m.stride is not None else m.kernel_size, nd)
            dil = _tuple(getattr(m, "dilation", 1), nd)
            r = math.prod(math.ceil(((kk - 1) * dl + 1) / ss) if dl > 1 else math.ceil(kk / ss)
                          for kk, ss, dl in zip(k, s, dil))
            rho *= math.sqrt(max(1, r))
    return rho


def _is_fc(module: nn.Module | Network) -> bool:
    net = Network.from_module(module)
    return all(ly.kind == "linear" and set(ly.ops_after) <= {"relu", "dropout", "identity"} for ly in net.layers)


def spectral_norms(module: nn.Module | Network, *, input_shape: Sequence[int] | None = None) -> list[float]:
    """Largest singular value ``||A_i||_2`` of every layer (float64 SVD; power iteration for convolutions,
    which need ``input_shape``, see :class:`LayerOperator`)."""
    if not _is_fc(module):
        _, ops, _ = network_operators(module, input_shape=input_shape)
        return [op.spectral() for op in ops]
    _, ws, _ = fc_weights(module)
    return [float(torch.linalg.matrix_norm(w, ord=2)) for w in ws]


@dataclass(frozen=True)
class NormSummary:
    """Per-layer norms of the layer operators: spectral, Frobenius, ``||A^T||_{2,1}``, widths (operator
    dimensions: ``channels x positions`` for convolutions) and ``lipschitz[i]``, an upper bound on the
    Lipschitz constant of the activation block after layer ``i`` (1 for ReLU; see :func:`post_lipschitz`)."""

    spectral: tuple[float, ...]
    frobenius: tuple[float, ...]
    l21: tuple[float, ...]
    widths: tuple[int, ...]
    lipschitz: tuple[float, ...] | None = None

    @property
    def depth(self) -> int:
        return len(self.spectral)

    @property
    def stable_ranks(self) -> tuple[float, ...]:
        return tuple((f / s) ** 2 for f, s in zip(self.frobenius, self.spectral))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stable_ranks"] = list(self.stable_ranks)
        return d


def norm_summary(module: nn.Module | Network, *, input_shape: Sequence[int] | None = None) -> NormSummary:
    """Spectral and Frobenius norms, ``||A^T||_{2,1} = sum_r ||A[r, :]||_2`` and widths ``(d_in, h_1, ...,
    d_out)``.

    Convolutional networks: every layer is the linear operator it applies (:class:`LayerOperator`: exact
    Frobenius and row norms accounting for padding/stride, spectral norm by power iteration); they need the
    per-example ``input_shape`` of the model input.
    """
    if not _is_fc(module):
        _, ops, posts = network_operators(module, input_shape=input_shape)
        return NormSummary(tuple(op.spectral() for op in ops), tuple(op.frobenius() for op in ops),
                           tuple(op.l21() for op in ops), (ops[0].n_in, *[op.n_out for op in ops]),
                           tuple(post_lipschitz(p) for p in posts[:-1]))
    _, ws, _ = fc_weights(module)
    spec = tuple(float(torch.linalg.matrix_norm(w, ord=2)) for w in ws)
    fro = tuple(float(torch.linalg.matrix_norm(w)) for w in ws)
    l21 = tuple(float(w.norm(dim=1).sum()) for w in ws)
    widths = (int(ws[0].shape[1]), *[int(w.shape[0]) for w in ws])
    return NormSummary(spec, fro, l21, widths)


def spectral_complexity_bartlett2017(module: nn.Module | Network, *,
                                     input_shape: Sequence[int] | None = None) -> float:
    """``R_A = prod ρ_i ||A_i||_2 * (sum (||A_i^T||_{2,1}/||A_i||_2)^{2/3})^{3/2}`` (Bartlett et al. 2017, eq.
    1.2, M_i=0; ``ρ_i`` the Lipschitz constants of the activation blocks, 1 without overlapping pools)."""
    s = norm_summary(module, input_shape=input_shape)
    prod = math.prod(s.spectral) * math.prod(s.lipschitz or ())
    corr = sum((b / a) ** (2.0 / 3.0) for a, b in zip(s.spectral, s.l21)) ** 1.5
    return prod * corr


def _input_shape(data: Dataset | torch.Tensor) -> tuple[int, ...]:
    x = data.x if isinstance(data, Dataset) else data
    return tuple(int(v) for v in x.shape[1:])


def _x_norms(data: Dataset | torch.Tensor) -> torch.Tensor:
    x = data.x if isinstance(data, Dataset) else data
    if not isinstance(x, torch.Tensor) or x.shape[0] == 0:
        raise DataError("data must be a non-empty Dataset or tensor")
    return x.reshape(x.shape[0], -1).to(torch.float64).norm(dim=1)


def bartlett2017_quantity(module: nn.Module | Network, data: Dataset | torch.Tensor, *,
                          gamma: float) -> float:
    """Figure quantity ``mean ||x||^2 R_A^2 / γ^2`` (the ``N`` of ``gap ~ sqrt(N/m)``, log factors
    dropped)."""
    check_positive("gamma", gamma)
    xn = _x_norms(data)
    return (float((xn**2).mean())
            * spectral_complexity_bartlett2017(module, input_shape=_input_shape(data)) ** 2 / gamma**2)


def neyshabur2018_quantity(module: nn.Module | Network, data: Dataset | torch.Tensor, *, gamma: float,
                           B: float | None = None) -> float:
    """Figure quantity ``B^2 d^2 h ln(dh) prod ||A_i||_2^2 sum ||A_i||_F^2/||A_i||_2^2 / γ^2`` (NBS 2018, Thm
    1); for convolutions ``h`` is the largest operator dimension (channels x positions) and overlapping pools
    multiply ``prod ||A_i||_2`` by ``prod ρ_i``."""
    check_positive("gamma", gamma)
    s = norm_summary(module, input_shape=_input_shape(data))
    B = float(_x_norms(data).max()) if B is None else check_positive("B", B)
    d, h = s.depth, max(s.widths)
    rho2 = math.prod(r**2 for r in (s.lipschitz or ()))
    return (B**2 * d**2 * h * math.log(d * h) * math.prod(a**2 for a in s.spectral) * rho2
            * sum(s.stable_ranks) / gamma**2)


def parameter_count(module: nn.Module | Network) -> int:
    """Number of weights and biases of the weighted layers."""
    return count_parameters(module)


def _empirical_margin_loss(module: nn.Module, data: Dataset, gamma: float) -> float:
    return float((margins(module, data) <= gamma).double().mean())


def neyshabur2018_bound(module: nn.Module | Network, data: Dataset, *, gamma: float, delta: float,
                        B: float | None = None) -> BoundTerms:
    """Explicit PAC-Bayes spectral bound of Neyshabur, Bhojanapalli, Srebro (ICLR 2018, Lemma 1 + Theorem 1
    proof).

    ``L_0(f_w) <= L̂_γ(f_w) + 4 sqrt((KL + ln(6 m (J+1) / δ)) / (m - 1))`` with ``KL = ||w̃||^2 / (2 σ^2)``;
    see the module docstring for ``σ``, ``β̃`` and the grid of ``J + 1`` points.  Requires a bias-free
    network (``mlp(..., bias=False)``).  If ``β^d`` is outside ``[γ/(2B), γ sqrt(m)/(2B)]`` the bound is
    trivial
    (value 1).
    """
    check_positive("gamma", gamma)
    check_probability("delta", delta)
    net, ws, bs = fc_weights(module)
    if any(b is not None for b in bs):
        raise UnsupportedLayerError(
            "neyshabur2018_bound needs a bias-free network (its re-balancing step rescales layers); "
            "build it with mlp(..., bias=False)")
    m = len(data)
    if m < 2:
        raise DataError(f"need at least 2 training examples, got {m}")
    s = norm_summary(net)
    d, h = s.depth, max(s.widths)
    B = float(_x_norms(data).max()) if B is None else check_positive("B", B)
    emp = _empirical_margin_loss(net.module, data, gamma)
    beta = math.prod(s.spectral) ** (1.0 / d)
    beta_min = (gamma / (2 * B)) ** (1.0 / d)
    beta_max = (gamma * math.sqrt(m) / (2 * B)) ** (1.0 / d)
    n_grid = max(1, math.ceil(math.log(beta_max / beta_min) / math.log1p(1.0 / d)) + 1)
    parts = {"beta": beta, "B": B, "depth": float(d), "width": float(h), "grid_points": float(n_grid),
             "gamma": gamma, "m": float(m), "ln_1_over_delta": math.log(1 / delta)}
    if beta < beta_min or beta > beta_max:
        # beta^d < γ/(2B): every margin is < γ so L̂_γ = 1; beta^d > γ sqrt(m)/(2B): the bound exceeds 1.
        parts.update({"kl": float("inf"), "sigma": 0.0, "trivial": 1.0})
        return BoundTerms(1.0, emp, 1.0, parts)
    j = math.ceil(math.log(beta / beta_min) / math.log1p(1.0 / d))
    beta_t = beta_min * (1.0 + 1.0 / d) ** j
    if beta_t < beta:  # rounding guard
        beta_t *= 1.0 + 1.0 / d
    sigma = gamma / (42.0 * d * B * beta_t ** (d - 1) * math.sqrt(h * math.log(4 * d * h)))
    w2 = beta**2 * sum(s.stable_ranks)  # ||w̃||^2 after re-balancing every layer to spectral norm beta
    kl = w2 / (2 * sigma**2)
    comp = 4 * math.sqrt((kl + math.log(6 * m * n_grid / delta)) / (m - 1))
    parts.update({"kl": kl, "sigma": sigma, "beta_tilde": beta_t, "w_norm_sq": w2, "trivial": 0.0})
    return BoundTerms(min(1.0, emp + comp), emp, comp, parts)


def _pow2_exponent_up(v: float) -> int:
    return math.ceil(math.log2(v)) if v > 0 else -1074


def bartlett2017_bound(module: nn.Module | Network, data: Dataset, *, gamma: float,
                       delta: float) -> BoundTerms:
    """Explicit spectrally-normalised margin bound (Bartlett, Foster, Telgarsky 2017), fixed-norm lemma +
    union.

    ``L_0 <= R̂_γ + 8/m + 72 ||X||_2 R ln(2W) ln(m) / (γ' m) + 3 sqrt(ln(2/δ')/(2m))`` where ``R`` is ``R_A``
    computed from the norms rounded up to powers of two, ``γ' = 2^floor(log2 γ)`` and ``δ'`` the union-bound
    share of ``δ`` (module docstring).  Constants as recalled from their Appendix A (see the deviation note).
    """
    check_positive("gamma", gamma)
    check_probability("delta", delta)
    net = Network.from_module(module)
    m = len(data)
    s = norm_summary(net, input_shape=_input_shape(data))
    exps = [_pow2_exponent_up(v) for v in (*s.spectral, *s.l21)]
    g_exp = math.floor(math.log2(gamma))
    gamma_r = 2.0**g_exp
    spec_r = [2.0**e for e in exps[: s.depth]]
    l21_r = [2.0**e for e in exps[s.depth:]]
    R = (math.prod(spec_r) * math.prod(s.lipschitz or ())
         * sum((b / a) ** (2.0 / 3.0) for a, b in zip(spec_r, l21_r)) ** 1.5)
    ln_prior = sum(math.log(_ZETA2_Z * (abs(e) + 1) ** 2) for e in (*exps, g_exp))
    ln_delta = math.log(2 / delta) + ln_prior
    X2 = float(_x_norms(data).pow(2).sum().sqrt())
    W = max(s.widths)
    emp = _empirical_margin_loss(net.module, data, gamma_r)
    comp = (8 / m + 72 * X2 * R * math.log(2 * W) * math.log(m) / (gamma_r * m)
            + 3 * math.sqrt(ln_delta / (2 * m)))
    parts = {"R_A": spectral_complexity_bartlett2017(net, input_shape=_input_shape(data)),
             "R_rounded": R, "X_norm": X2, "W": float(W),
             "gamma_rounded": gamma_r, "ln_prior": ln_prior, "m": float(m)}
    return BoundTerms(min(1.0, emp + comp), emp, comp, parts)



def certify_bartlett2017(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = None,
                         gamma: float) -> Certificate:
    """Certificate ``spectral_bartlett2017`` from :func:`bartlett2017_bound` (``seed`` unused, recorded)."""
    terms = bartlett2017_bound(module, data, gamma=gamma, delta=delta)
    return make_certificate("spectral_bartlett2017", terms, module, data, delta=delta, seed=seed,
                            params={"gamma": gamma}, note="constants of Bartlett et al. 2017 as recalled")


def certify_neyshabur2018(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = None,
                          gamma: float, B: float | None = None) -> Certificate:
    """Certificate ``spectral_neyshabur2018`` from :func:`neyshabur2018_bound` (``seed`` unused, recorded)."""
    terms = neyshabur2018_bound(module, data, gamma=gamma, delta=delta, B=B)
    return make_certificate("spectral_neyshabur2018", terms, module, data, delta=delta, seed=seed,
                            params={"gamma": gamma, "B": B},
                            note="assumes ||x|| <= B on the whole input distribution")


register_certifier("spectral_bartlett2017", certify_bartlett2017)
register_certifier("spectral_neyshabur2018", certify_neyshabur2018)
