"""Norm-based generalization bounds used as comparators for the compression bound of Arora et al. (2018).

All quantities are computed on fully-connected ReLU networks (``Linear`` layers separated by ``ReLU``); a
network with convolutions raises :class:`~prunebound.errors.UnsupportedLayerError` (their operator norms need
the input shape and are not implemented here).  Biases are ignored by the norm quantities (both papers analyse
bias-free networks); the explicit PAC-Bayes bound of Neyshabur et al. refuses networks with biases because its
re-balancing argument needs bias-free layers.

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
from dataclasses import asdict, dataclass

import torch
from torch import nn

from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.data import Dataset
from prunebound.errors import (
    DataError,
    UnsupportedLayerError,
    check_positive,
    check_probability,
)
from prunebound.network import Network, count_parameters
from prunebound.train import margins

__all__ = [
    "NormSummary",
    "fc_weights",
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


def spectral_norms(module: nn.Module | Network) -> list[float]:
    """Largest singular value ``||A_i||_2`` of every layer (float64 SVD)."""
    _, ws, _ = fc_weights(module)
    return [float(torch.linalg.matrix_norm(w, ord=2)) for w in ws]


@dataclass(frozen=True)
class NormSummary:
    """Per-layer norms of a fully-connected network: spectral, Frobenius, ``||A^T||_{2,1}``, widths."""

    spectral: tuple[float, ...]
    frobenius: tuple[float, ...]
    l21: tuple[float, ...]
    widths: tuple[int, ...]

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


def norm_summary(module: nn.Module | Network) -> NormSummary:
    """Spectral and Frobenius norms, ``||A^T||_{2,1} = sum_r ||A[r, :]||_2`` and widths ``(d_in, h_1, ...,
    d_out)``."""
    _, ws, _ = fc_weights(module)
    spec = tuple(float(torch.linalg.matrix_norm(w, ord=2)) for w in ws)
    fro = tuple(float(torch.linalg.matrix_norm(w)) for w in ws)
    l21 = tuple(float(w.norm(dim=1).sum()) for w in ws)
    widths = (int(ws[0].shape[1]), *[int(w.shape[0]) for w in ws])
    return NormSummary(spec, fro, l21, widths)


def spectral_complexity_bartlett2017(module: nn.Module | Network) -> float:
    """``R_A = prod ||A_i||_2 * (sum (||A_i^T||_{2,1}/||A_i||_2)^{2/3})^{3/2}`` (Bartlett et al. 2017, eq.
    1.2, M_i=0)."""
    s = norm_summary(module)
    prod = math.prod(s.spectral)
    corr = sum((b / a) ** (2.0 / 3.0) for a, b in zip(s.spectral, s.l21)) ** 1.5
    return prod * corr


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
    return float((xn**2).mean()) * spectral_complexity_bartlett2017(module) ** 2 / gamma**2


def neyshabur2018_quantity(module: nn.Module | Network, data: Dataset | torch.Tensor, *, gamma: float,
                           B: float | None = None) -> float:
    """Figure quantity ``B^2 d^2 h ln(dh) prod ||A_i||_2^2 sum ||A_i||_F^2/||A_i||_2^2 / γ^2`` (NBS 2018, Thm
    1)."""
    check_positive("gamma", gamma)
    s = norm_summary(module)
    B = float(_x_norms(data).max()) if B is None else check_positive("B", B)
    d, h = s.depth, max(s.widths)
    return (B**2 * d**2 * h * math.log(d * h) * math.prod(a**2 for a in s.spectral) * sum(s.stable_ranks)
            / gamma**2)


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
    net, ws, _ = fc_weights(module)
    m = len(data)
    s = norm_summary(net)
    exps = [_pow2_exponent_up(v) for v in (*s.spectral, *s.l21)]
    g_exp = math.floor(math.log2(gamma))
    gamma_r = 2.0**g_exp
    spec_r = [2.0**e for e in exps[: s.depth]]
    l21_r = [2.0**e for e in exps[s.depth:]]
    R = math.prod(spec_r) * sum((b / a) ** (2.0 / 3.0) for a, b in zip(spec_r, l21_r)) ** 1.5
    ln_prior = sum(math.log(_ZETA2_Z * (abs(e) + 1) ** 2) for e in (*exps, g_exp))
    ln_delta = math.log(2 / delta) + ln_prior
    X2 = float(_x_norms(data).pow(2).sum().sqrt())
    W = max(s.widths)
    emp = _empirical_margin_loss(net.module, data, gamma_r)
    comp = (8 / m + 72 * X2 * R * math.log(2 * W) * math.log(m) / (gamma_r * m)
            + 3 * math.sqrt(ln_delta / (2 * m)))
    parts = {"R_A": spectral_complexity_bartlett2017(net), "R_rounded": R, "X_norm": X2, "W": float(W),
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
