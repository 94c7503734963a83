"""The verification harness: does a bound hold at rate >= 1 - δ on a task where the true risk is measurable?

:func:`coverage` repeats, for ``reps`` independent seeds: draw a training set of size ``n`` from a
:class:`~prunebound.data.TeacherTask`, call the user's ``make_bound(train, seed)`` (which trains/compresses a model
and returns ``(model, bound_value)``), estimate the model's true risk on ``n_test >= 1e5`` fresh samples and
record whether ``bound < true risk`` (a violation).

A bound that holds with probability >= 1 - δ has violation count V ~ Binomial(reps, p) with p <= δ.  The one-sided
test of H0: p <= δ rejects for large V; its p-value is P(Binomial(reps, δ) >= V) (the upper tail at the
boundary δ, which maximises it over H0).  A small p-value means the bound fails more often than it claims.

Because the true risk is itself estimated, a violation is counted when ``bound < risk_hat - slack`` with
``slack = 0`` by default; pass ``slack`` (e.g. a Hoeffding radius ``sqrt(ln(1/α)/(2 n_test))``) to make the test
conservative in the bound's favour.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn

from prunebound.data import Dataset, TeacherTask
from prunebound.errors import InvalidParameterError, check_positive_int, check_probability

__all__ = ["CoverageResult", "coverage", "binomial_upper_pvalue", "randomize_batchnorm"]

log = logging.getLogger(__name__)

MakeBound = Callable[[Dataset, int], "tuple[nn.Module, float]"]
RiskFn = Callable[[nn.Module, TeacherTask, int, torch.Generator], float]


def binomial_upper_pvalue(violations: int, reps: int, delta: float) -> float:
    """P(Binomial(reps, δ) >= violations): the p-value of the one-sided test of "violation rate <= δ"."""
    if violations <= 0:
        return 1.0
    return float(stats.binom.sf(violations - 1, reps, delta))


@dataclass(frozen=True)
class CoverageResult:
    """Outcome of :func:`coverage`.

    ``violations`` of ``reps``; ``p_value`` of the one-sided binomial test (reject "rate <= δ" when small);
    ``bounds``/``risks`` per repetition; mean and median of bound / true risk (inf when the risk is 0).
    """

    violations: int
    reps: int
    delta: float
    p_value: float
    bounds: tuple[float, ...]
    risks: tuple[float, ...]
    mean_ratio: float
    median_ratio: float

    @property
    def rate(self) -> float:
        return self.violations / self.reps

    def holds(self, alpha: float = 0.01) -> bool:
        """True unless the binomial test rejects "violation rate <= δ" at level ``alpha``."""
        return self.p_value >= alpha

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rate"] = self.rate
        return d


def _one(make_bound: MakeBound, task: TeacherTask, n: int, seed: int, n_test: int,
         risk_fn: RiskFn | None = None) -> tuple[float, float]:
    torch.set_num_threads(1)
    train = task.sample(n, torch.Generator().manual_seed(10_000_019 * (seed + 1)))
    model, bound = make_bound(train, seed)
    g = torch.Generator().manual_seed(7_777_777 + seed)
    if risk_fn is None:
        risk = task.true_risk(model, n=n_test, seed=g)
    else:
        risk = risk_fn(model, task, n_test, g)
    return float(bound), float(risk)


def coverage(
    make_bound: MakeBound,
    task: TeacherTask,
    *,
    n: int,
    reps: int,
    delta: float,
    seed: int = 0,
    n_jobs: int = 1,
    n_test: int = 100_000,
    slack: float = 0.0,
    backend: str = "joblib",
    client=None,
    progress: bool = False,
    risk_fn: RiskFn | None = None,
) -> CoverageResult:
    """Run ``reps`` seeded repetitions of ``make_bound`` on ``task`` and test the violation rate against ``delta``.

    ``make_bound(train: Dataset, seed: int) -> (model, bound)`` must be picklable for ``n_jobs > 1`` or Dask.
    ``backend="dask"`` submits the repetitions to a ``distributed.Client`` (``client`` or the default one).
    ``risk_fn(model, task, n_test, generator) -> float`` replaces the deterministic 0-1 risk, e.g. for a
    stochastic (Gibbs) predictor whose risk is an expectation over posterior draws.
    """
    check_positive_int("n", n)
    check_positive_int("reps", reps)
    check_probability("delta", delta)
    check_positive_int("n_test", n_test)
    seeds = [seed + i for i in range(reps)]
    if backend == "joblib":
        if n_jobs == 1:
            from tqdm.auto import tqdm

            out = [_one(make_bound, task, n, s, n_test, risk_fn)
                   for s in tqdm(seeds, disable=not progress, desc="coverage")]
        else:
            from joblib import Parallel, delayed

            out = Parallel(n_jobs=n_jobs)(delayed(_one)(make_bound, task, n, s, n_test, risk_fn) for s in seeds)
    elif backend == "dask":
        try:
            from distributed import default_client
        except ImportError as e:  # pragma: no cover
            raise InvalidParameterError("backend='dask' needs the 'dist' extra: pip install prunebound[dist]") from e
        c = client or default_client()
        futs = [c.submit(_one, make_bound, task, n, s, n_test, risk_fn, pure=False) for s in seeds]
        out = c.gather(futs)
    else:
        raise InvalidParameterError(f"backend must be 'joblib' or 'dask', got {backend!r}")
    bounds = tuple(b for b, _ in out)
    risks = tuple(r for _, r in out)
    if any(not math.isfinite(b) for b in bounds):
        raise InvalidParameterError("make_bound returned a non-finite bound")
    v = sum(b < r - slack for b, r in out)
    ratios = np.array([b / r if r > 0 else np.inf for b, r in out])
    res = CoverageResult(int(v), reps, float(delta), binomial_upper_pvalue(int(v), reps, delta), bounds, risks,
                         float(np.mean(ratios)), float(np.median(ratios)))
    log.info("coverage of %s: %d/%d violations at delta=%g, one-sided binomial p=%.3g, median bound/risk %.3g",
             getattr(make_bound, "__name__", type(make_bound).__name__), res.violations, reps, delta, res.p_value,
             res.median_ratio)
    return res


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm of ``module`` non-trivial statistics and affine parameters, as after training
    (``running_mean ~ U(-0.5, 0.5)``, ``running_var ~ U(0.5, 2)``, ``weight ~ U(0.5, 1.5)``, ``bias ~ U(-0.1,
    0.1)``, seeded), so that folding BatchNorm into the layer before it and un-folding it are exercised; returns
    ``module`` in eval mode (modified in place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                n = bn.num_features
                bn.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                bn.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                bn.weight.copy_(0.5 + torch.rand(n, generator=g))
                bn.bias.copy_(0.2 * torch.rand(n, generator=g) - 0.1)
    return module.eval()
