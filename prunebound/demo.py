"""``prunebound demo``: a CNN on MNIST-1D with a tight certificate, in a few minutes on 2 CPU cores.

1. Generate MNIST-1D offline (``mnist1d.data.make_dataset``, cached on disk): 40 000 training and 10 000 test
   examples (``--quick``: 4 000 / 1 000).
2. :func:`prunebound.compress.compress` with ``method="subspace"`` and a data-dependent prior
   (``prior_fraction=0.5``): the ``conv1d_small`` CNN (9 610 parameters) is trained on a seeded half of the
   training set (the prior ``θ0``); then, for a grid of subspace dimensions ``d``, ``w`` is trained in a random
   ``d``-dimensional subspace around ``θ0``, quantised to a learned 16-level codebook and arithmetic-coded
   (Lotfi et al. 2022).  The Occam/kl bound is computed on the other half only, paying ``log2 |grid|`` bits for
   the grid, so the printed confidence is the overall one.
3. Print the bound, the test error with a 95 % Clopper-Pearson interval for the true risk (context: the
   bound must lie above the true risk, which the test set only estimates), and the ``prunebound verify``
   command (it retrains the prior on the recorded split -- same torch version and thread count -- and
   recomputes everything).

Files in ``--out``: those of :func:`~prunebound.compress.compress` (``certificate.json``, ``model.pt``,
``grid.csv``, ``bound_vs_error.{png,pdf}``, ``summary.json``, ``results.jsonl``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prunebound.defaults import DEFAULT_DELTA

__all__ = ["run_demo"]


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided ``1 - alpha`` Clopper-Pearson interval for a binomial proportion ``k / n``."""
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def run_demo(out: Path, *, quick: bool = False, seed: int = 0, delta: float = DEFAULT_DELTA, n_jobs: int = 2
             ) -> dict:
    from prunebound import data as D
    from prunebound import network as N
    from prunebound.compress import compress

    t0 = time.time()
    out = Path(out)
    n = 5000 if quick else 50000
    split = D.mnist1d(n, seed)
    train, test = split.train, split.test
    print(f"[demo] MNIST-1D generated offline: {len(train)} train / {len(test)} test examples "
          f"({time.time() - t0:.1f} s)")
    model = N.conv1d_small()
    print(f"[demo] conv1d_small CNN, {N.count_parameters(model)} parameters; prior trained on half of the training "
          "set, subspace compression bounded on the other half")
    grid = [(50, 16, 0.05), (100, 16, 0.05), (200, 16, 0.05)] if not quick else [(20, 8, 0.05), (40, 8, 0.05)]
    r = compress(model, train, out=out, test=test, grid=grid, delta=delta, seed=seed, n_jobs=1 if quick else n_jobs,
                 prior_fraction=0.5, epochs=4 if quick else 8, qat_epochs=1 if quick else 2,
                 prior_epochs=8 if quick else 30, progress=False)
    cert = r.certificate
    te = r.best["test_error"]
    k = round(te * len(test))
    lo, hi = clopper_pearson(k, len(test))
    summary = {"bound": cert.value, "test_error": te, "true_risk_95ci": [lo, hi], "delta": delta,
               "grid_size": len(grid), "n_bound": cert.parts["n_bound"], "seconds": round(time.time() - t0, 1),
               "certificate": str(out / "certificate.json"), "model": str(out / "model.pt")}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[demo] certified: true error <= {cert.value:.4f} with probability >= {1 - delta:g} "
          f"(over the {len(grid)} grid points tried)")
    print(f"[demo] test error {te:.4f} on {len(test)} held-out examples; 95% interval for the true risk "
          f"[{lo:.4f}, {hi:.4f}]; bound / test error = {cert.value / max(te, 1e-12):.2f}")
    print(f"[demo] done in {summary['seconds']} s; recompute it: "
          f"prunebound verify {out}/certificate.json --model {out}/model.pt")
    return summary
