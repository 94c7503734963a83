"""PAC-Bayes with backprop (Pérez-Ortiz, Rivasplata, Shawe-Taylor & Szepesvári, JMLR 22(227), 2021).

A Gaussian posterior ``Q = N(μ, diag σ²)`` over all weights and biases of a network is trained by minimising a
PAC-Bayes bound with a data-dependent Gaussian prior ``P = N(μ0, σ0² I)``, then certified.

**Prior.**  ``μ0`` = the architecture's seeded initialisation trained on a seeded ``prior_fraction`` split
(:func:`prunebound.bounds.subspace.prior_init`, the same recipe and hash check as the subspace bound); the bound
uses only the other ``n`` examples.  ``σ0 = prior_sigma`` (their Sec. 5: a scalar).

**Training objectives** (their Sec. 3, Eqs. 8-11, with ``L̂`` the empirical bounded cross-entropy of one
posterior sample per mini-batch, reparametrised as ``θ = μ + σ ⊙ ε``, ``σ = softplus(ρ)``, and
``B = (KL(Q||P) + ln(2 sqrt(n)/δ)) / n``):

* ``fclassic``:  ``L̂ + sqrt(B / 2)`` (McAllester/Maurer),
* ``fquad``:     ``(sqrt(L̂ + B/2) + sqrt(B/2))²`` (Rivasplata et al.'s quadratic bound),
* ``flamb``:     ``L̂ / (1 - λ/2) + n B / (n λ (1 - λ/2))`` with ``λ`` updated in closed form after every step,
  ``λ = 2 / (sqrt(1 + 2 L̂ / B) + 1)`` (Thiemann et al. 2017),
* ``kl``:        ``kl^{-1}(L̂, B)`` (the kl-inverse objective; gradient by implicit differentiation,
  :func:`prunebound.bounds.kl.kl_inverse_upper`).

The bounded cross-entropy is ``-ln(max(p_y, p_min)) / ln(1/p_min)`` in ``[0, 1]`` (their Sec. 4, ``p_min =
1e-4`` default); it is only the training surrogate.

**Certificate** (their Sec. 6, the kl route; every δ paid): with ``m`` posterior samples ``θ_j ~ Q`` drawn from
a seeded generator, ``ê = (1/m) Σ_j err_S(θ_j)`` (0-1 error on the bound set).  With prob. ``>= 1 - δ'`` over
the samples, ``err_S(Q) <= ê⁺ = kl^{-1}(ê, ln(1/δ')/m)`` (Langford & Caruana 2001,
:func:`~prunebound.bounds.pac_bayes.sample_convergence_bound`); with prob. ``>= 1 - δ_pb`` over the data,
``kl(err_S(Q) || err(Q)) <= B`` (Maurer 2004, :func:`~prunebound.bounds.pac_bayes.kl_bound`), and since
``kl^{-1}`` is increasing in its first argument ``err(Q) <= kl^{-1}(ê⁺, B)`` with prob. ``>= 1 - δ`` for
``δ = δ' + δ_pb`` (``mc_delta_fraction`` splits it).  The bounded risk is the *Gibbs* (stochastic) predictor's.
``mc_correction=False`` plugs ``ê`` in directly -- an *invalid* bound kept for the coverage tests.

Deviations: the paper trains the posterior on the whole training set; we train it on the bound set only
(``train_on="bound"``, default) or on all data (``"all"``, also valid: the posterior may depend on any data);
their prior is learnt with dropout, ours by plain Adam; their ``p_min`` and ``σ0`` are tuned per data set.
The certificate stores ``σ`` (float32, base64) and the prior's SHA-256; ``verify`` retrains the prior
(reproducible with the same torch version and ``prior_threads``) and redraws the ``m`` samples from the seed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from prunebound.bounds.kl import kl_inverse_upper
from prunebound.bounds.pac_bayes import kl_bound, kl_gaussians, sample_convergence_bound, split_delta
from prunebound.certificate import BoundTerms, Certificate, make_certificate, register_certifier
from prunebound.data import Dataset
from prunebound.errors import DataError, InvalidParameterError, check_positive, check_positive_int, check_probability
from prunebound.network import Network, load_vector, to_vector

__all__ = ["OBJECTIVES", "bounded_cross_entropy", "pbb_objective", "GaussianPosterior", "PBBResult", "pbb_train",
           "pbb_bound", "certify_pbb"]

OBJECTIVES = ("fquad", "flamb", "fclassic", "kl")


def bounded_cross_entropy(logits: torch.Tensor, y: torch.Tensor, *, pmin: float = 1e-4) -> torch.Tensor:
    """Mean of ``-ln(max(softmax(logits)_y, pmin)) / ln(1/pmin)`` (in [0, 1])."""
    logp = F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return (-logp.clamp(min=math.log(pmin))).mean() / math.log(1.0 / pmin)


def pbb_objective(name: str, emp: torch.Tensor, kl: torch.Tensor, n: int, *, delta: float,
                  lam: float = 0.5) -> torch.Tensor:
    """The training objective ``name`` (module docstring) at empirical surrogate ``emp`` and ``KL(Q||P) = kl``."""
    B = (kl + math.log(2.0 * math.sqrt(n) / delta)) / n
    if name == "fclassic":
        return emp + torch.sqrt(B / 2)
    if name == "fquad":
        return (torch.sqrt(emp + B / 2) + torch.sqrt(B / 2)) ** 2
    if name == "flamb":
        return emp / (1 - lam / 2) + B / (lam * (1 - lam / 2))
    if name == "kl":
        return kl_inverse_upper(emp.clamp(0.0, 1.0).double(), B.double()).to(emp.dtype)
    raise InvalidParameterError(f"objective must be one of {OBJECTIVES}, got {name!r}")


def _lambda_update(emp: float, B: float) -> float:
    """Closed-form minimiser over λ in (0, 1) of the flamb objective (Thiemann et al. 2017)."""
    return 2.0 / (math.sqrt(1.0 + 2.0 * emp / max(B, 1e-12)) + 1.0)


class GaussianPosterior(nn.Module):
    """``N(μ, diag softplus(ρ)²)`` over the flat parameter vector of ``base`` (layout of
    :func:`prunebound.network.to_vector`), with prior ``N(μ0, σ0² I)``."""

    def __init__(self, base: nn.Module, prior_mean: torch.Tensor, prior_sigma: float) -> None:
        super().__init__()
        net = Network.from_module(base)
        self._names, self._shapes = [], []
        for ly in net.layers:
            pre = f"{ly.path}." if ly.path else ""
            self._names.append(pre + "weight")
            self._shapes.append(ly.weight.shape)
            if ly.bias is not None:
                self._names.append(pre + "bias")
                self._shapes.append(ly.bias.shape)
        self._sizes = [math.prod(s) for s in self._shapes]
        self.base = copy.deepcopy(net.module).requires_grad_(False)
        self.register_buffer("prior_mean", prior_mean.detach().to(torch.float32).clone())
        self.prior_sigma = float(prior_sigma)
        self.mu = nn.Parameter(self.prior_mean.clone())
        rho0 = math.log(math.expm1(self.prior_sigma))  # softplus^{-1}(σ0)
        self.rho = nn.Parameter(torch.full_like(self.prior_mean, rho0))

    def sigma(self) -> torch.Tensor:
        return F.softplus(self.rho)

    def kl(self) -> torch.Tensor:
        s, sp = self.sigma(), self.prior_sigma
        r = (s / sp) ** 2
        return 0.5 * (r - 1.0 - torch.log(r)).sum() + 0.5 * (((self.mu - self.prior_mean) / sp) ** 2).sum()

    def _call(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, self._sizes)
        return functional_call(self.base, {k: p.reshape(s) for k, p, s in zip(self._names, parts, self._shapes)},
                               (x,))

    def forward(self, x: torch.Tensor, *, sample: bool = True, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        theta = self.mu
        if sample:
            eps = torch.randn(self.mu.shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
            theta = self.mu + self.sigma() * eps
        return self._call(theta, x)

    def mean_module(self) -> nn.Module:
        """An ordinary module holding ``μ``."""
        with torch.no_grad():
            return load_vector(copy.deepcopy(self.base).requires_grad_(True), self.mu.detach())


def _encode_sigma(sigma: torch.Tensor) -> tuple[str, str]:
    raw = sigma.detach().to(torch.float32).cpu().contiguous().numpy().astype("<f4").tobytes()
    return base64.b64encode(raw).decode(), hashlib.sha256(raw).hexdigest()


def _decode_sigma(b64: str, sha: str, D: int) -> torch.Tensor:
    try:
        raw = base64.b64decode(b64.encode(), validate=True)
    except (ValueError, TypeError) as e:
        raise DataError(f"pbb certificate: params['sigma'] is not base64 ({e})") from e
    if hashlib.sha256(raw).hexdigest() != sha:
        raise DataError("pbb certificate: params['sigma'] does not match params['sigma_sha256']")
    s = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
    if s.numel() != D or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise DataError(f"pbb certificate: sigma must hold {D} positive finite values")
    return s


@dataclass(frozen=True)
class PBBResult:
    """Outcome of :func:`pbb_train`: the mean network ``model``, its ``certificate`` and the training losses."""

    model: nn.Module = field(repr=False, compare=False)
    certificate: Certificate
    objective: str
    losses: tuple[float, ...]

    @property
    def value(self) -> float:
        return self.certificate.value

    def to_dict(self) -> dict:
        return {"certificate": self.certificate.to_dict(), "objective": self.objective, "losses": list(self.losses)}


def _prior(module: nn.Module, data: Dataset, p: Mapping[str, Any]) -> tuple[nn.Module, Dataset]:
    from prunebound.bounds.subspace import prior_init, prior_sha256

    init, bound_data = prior_init(module, data, init_seed=int(p["init_seed"]),
                                  prior_fraction=float(p["prior_fraction"]), split_seed=int(p["split_seed"]),
                                  prior_epochs=int(p["prior_epochs"]), prior_lr=float(p["prior_lr"]),
                                  prior_batch_size=int(p["prior_batch_size"]), prior_schedule=p.get("prior_schedule"),
                                  prior_threads=p.get("prior_threads"))
    want = p.get("prior_sha256")
    if want is not None and prior_sha256(init) != want:
        raise DataError("retraining the data-dependent prior did not reproduce it (prior_sha256 differs); same "
                        f"torch version ({torch.__version__} here) and prior_threads={p.get('prior_threads')} needed")
    assert bound_data is not None
    return init, bound_data


def pbb_bound(mean: nn.Module, sigma: torch.Tensor, prior_mean: torch.Tensor, prior_sigma: float,
              bound_data: Dataset, *, delta: float, mc_samples: int = 1000, mc_delta_fraction: float = 0.2,
              mc_seed: int = 0, mc_correction: bool = True) -> BoundTerms:
    """The certified bound on the Gibbs risk of ``N(mean, diag sigma²)`` (module docstring, kl route)."""
    delta = check_probability("delta", delta)
    m = check_positive_int("mc_samples", mc_samples)
    d_pb, d_mc = split_delta(delta, mc_delta_fraction)
    mu = to_vector(mean).detach().to(torch.float32)
    if mu.shape != sigma.shape or mu.shape != prior_mean.shape:
        raise DataError(f"posterior mean {tuple(mu.shape)}, sigma {tuple(sigma.shape)} and prior mean "
                        f"{tuple(prior_mean.shape)} must have the same shape")
    kl = kl_gaussians(mu.double(), sigma.double(), prior_mean.double(), float(prior_sigma))
    post = GaussianPosterior(mean, prior_mean, prior_sigma)
    g = torch.Generator().manual_seed(int(mc_seed))
    errs = np.empty(m)
    with torch.no_grad():
        s = sigma.to(torch.float32)
        for j in range(m):
            theta = mu + s * torch.randn(mu.shape, generator=g)
            wrong = 0
            for xb, yb in bound_data.batches(8192):
                wrong += int((post._call(theta, xb).argmax(1) != yb).sum())
            errs[j] = wrong / len(bound_data)
    est = float(errs.mean())
    n = len(bound_data)
    emp_up = sample_convergence_bound(est, m, delta=d_mc).value if mc_correction else est
    t = kl_bound(emp_up, kl, n, delta=d_pb)
    parts = dict(t.parts)
    parts.update(mc_estimate=est, mc_upper=float(emp_up), mc_samples=float(m), delta_mc=d_mc, delta_pb=d_pb,
                 n_bound=float(n), prior_sigma=float(prior_sigma), mean_sigma=float(sigma.double().mean()))
    return BoundTerms(t.value, est, t.value - est, parts)


def pbb_train(
    module: nn.Module,
    data: Dataset,
    *,
    objective: str = "fquad",
    delta: float = 0.05,
    seed: int = 0,
    prior_fraction: float = 0.5,
    prior_sigma: float = 0.03,
    prior_epochs: int = 20,
    prior_lr: float = 3e-3,
    prior_batch_size: int = 128,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 256,
    pmin: float = 1e-4,
    train_on: str = "bound",
    mc_samples: int = 1000,
    mc_delta_fraction: float = 0.2,
    mc_correction: bool = True,
    prior_threads: int | None = 1,
) -> PBBResult:
    """Train a Gaussian posterior by minimising ``objective`` (one of :data:`OBJECTIVES`) and certify it.

    ``module`` gives the architecture.  Adam on ``(μ, ρ)`` with ``lr`` for ``epochs`` over the bound set
    (``train_on="bound"``) or all of ``data`` (``"all"``), one posterior sample per mini-batch.
    """
    if objective not in OBJECTIVES:
        raise InvalidParameterError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if train_on not in ("bound", "all"):
        raise InvalidParameterError(f"train_on must be 'bound' or 'all', got {train_on!r}")
    delta = check_probability("delta", delta)
    check_probability("prior_fraction", prior_fraction, open_left=False)
    check_positive("prior_sigma", prior_sigma)
    check_probability("pmin", pmin)
    check_positive_int("epochs", epochs, minimum=0)
    from prunebound.bounds.subspace import prior_sha256

    params: dict[str, Any] = {
        "init_seed": int(seed), "prior_fraction": float(prior_fraction), "split_seed": int(seed),
        "prior_epochs": int(prior_epochs), "prior_lr": float(prior_lr), "prior_batch_size": int(prior_batch_size),
        "prior_schedule": "cosine", "prior_sigma": float(prior_sigma), "mc_samples": int(mc_samples),
        "mc_delta_fraction": float(mc_delta_fraction), "mc_seed": int(seed) + 7, "objective": objective,
        "pmin": float(pmin), "train_on": train_on,
    }
    if prior_threads is not None:
        params["prior_threads"] = int(prior_threads)
    init, bound_data = _prior(module, data, params)
    if prior_fraction > 0:
        params["prior_sha256"] = prior_sha256(init)
    post = GaussianPosterior(init, to_vector(init), prior_sigma)
    train = bound_data if train_on == "bound" else data
    n = len(bound_data)
    opt = torch.optim.Adam([post.mu, post.rho], lr=lr)
    g = torch.Generator().manual_seed(int(seed) + 3)
    lam, losses = 0.5, []
    for _ in range(epochs):
        perm = torch.randperm(len(train), generator=g)
        tot = 0.0
        for i in range(0, len(train), batch_size):
            idx = perm[i : i + batch_size]
            emp = bounded_cross_entropy(post(train.x[idx], generator=g), train.y[idx], pmin=pmin)
            kl = post.kl()
            loss = pbb_objective(objective, emp, kl, n, delta=delta, lam=lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if objective == "flamb":
                B = (float(kl.detach()) + math.log(2.0 * math.sqrt(n) / delta)) / n
                lam = _lambda_update(float(emp.detach()), B)
            tot += float(loss.detach()) * len(idx)
        losses.append(tot / len(train))
        if not math.isfinite(losses[-1]):
            raise InvalidParameterError(f"PAC-Bayes training diverged (objective {objective}); lower lr={lr}")
    sigma = post.sigma().detach()
    params["sigma"], params["sigma_sha256"] = _encode_sigma(sigma)
    params["mc_correction"] = bool(mc_correction)
    mean = post.mean_module()
    terms = pbb_bound(mean, sigma, to_vector(init).float(), prior_sigma, bound_data, delta=delta,
                      mc_samples=mc_samples, mc_delta_fraction=mc_delta_fraction, mc_seed=params["mc_seed"],
                      mc_correction=mc_correction)
    cert = make_certificate("pbb", terms, mean, data, delta=delta, seed=seed, params=params, note=_note(params))
    return PBBResult(mean, cert, objective, tuple(losses))


def _note(p: Mapping[str, Any]) -> str:
    note = (f"PAC-Bayes with backprop (Perez-Ortiz et al. 2021), objective {p['objective']}: kl bound on the Gibbs "
            f"risk of N(mu, diag sigma^2), {p['mc_samples']} MC samples, delta split MC/bound")
    if float(p["prior_fraction"]) > 0:
        note += f"; data-dependent prior on a seeded {p['prior_fraction']:g} split"
    if not p.get("mc_correction", True):
        note += "; INVALID: Monte-Carlo estimation error not paid"
    return note


def certify_pbb(module: nn.Module, data: Dataset, *, delta: float, seed: int | None = None,
                **params: Any) -> Certificate:
    """Certificate for the mean network of :func:`pbb_train` (``params`` = its certificate's): retrains the
    prior on the recorded split (hash-checked), decodes ``σ``, redraws the Monte-Carlo samples, recomputes."""
    check_probability("delta", delta)
    need = {"init_seed", "prior_fraction", "split_seed", "prior_epochs", "prior_lr", "prior_batch_size",
            "prior_sigma", "mc_samples", "mc_delta_fraction", "mc_seed", "sigma", "sigma_sha256", "objective"}
    missing = need - set(params)
    if missing:
        raise InvalidParameterError(f"pbb certificate params are missing {sorted(missing)}")
    init, bound_data = _prior(module, data, params)
    prior_mean = to_vector(init).float()
    sigma = _decode_sigma(params["sigma"], params["sigma_sha256"], prior_mean.numel())
    terms = pbb_bound(module, sigma, prior_mean, float(params["prior_sigma"]), bound_data, delta=delta,
                      mc_samples=int(params["mc_samples"]), mc_delta_fraction=float(params["mc_delta_fraction"]),
                      mc_seed=int(params["mc_seed"]), mc_correction=bool(params.get("mc_correction", True)))
    return make_certificate("pbb", terms, module, data, delta=delta, seed=seed, params=dict(params),
                            note=_note(params))


_PBB_KEYS = frozenset({"init_seed", "prior_fraction", "split_seed", "prior_epochs", "prior_lr", "prior_batch_size",
                       "prior_schedule", "prior_sigma", "mc_samples", "mc_delta_fraction", "mc_seed", "objective",
                       "pmin", "train_on", "prior_threads", "prior_sha256", "sigma", "sigma_sha256",
                       "mc_correction"})


def _validate_pbb(p: Mapping[str, Any], module: nn.Module, data: Any) -> None:
    """Recorded parameters of a ``pbb`` certificate: known keys only; the Monte-Carlo correction is paid."""
    unknown = sorted(set(p) - _PBB_KEYS)
    if unknown:
        raise InvalidParameterError(f"pbb: unknown parameters {unknown}; allowed: {sorted(_PBB_KEYS)}")
    if p.get("mc_correction", True) is not True:
        raise InvalidParameterError("pbb: mc_correction is not true -- the Monte-Carlo error is not bounded "
                                    "(such certificates exist only to test the coverage harness)")


register_certifier("pbb", certify_pbb, validate=_validate_pbb)
