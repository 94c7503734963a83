"""From data (or a trained checkpoint) to one tight certificate: a grid of compressions, run in parallel and
resumably, the whole grid paid for in the bound.

Methods (``compress(..., method=...)``, ``prunebound compress --method ...``):

* ``"subspace"`` -- Lotfi et al. (2022), :mod:`prunebound.bounds.subspace`: for every grid point ``(d, L, lr)``
  train ``w`` in a ``d``-dimensional random subspace around the seeded initialisation ``θ0`` (or around a prior
  trained on a seeded ``prior_fraction`` split: a data-dependent prior), learn an ``L``-level codebook,
  arithmetic-code ``w``.  The bound (certifier ``"subspace"``) pays ``log2 |grid|`` bits for the grid.
* ``"occam"`` / ``"zhou2019"`` -- on a user's trained model, for every ``(sparsity, bits)``: global magnitude
  pruning with masked fine-tuning (Han et al. 2015) -> k-means weight sharing with ``bits`` bits per layer and
  fp16 biases (Han et al. 2016) -> centroid fine-tuning (their Eq. 3) -> exact code.  Each point is certified
  at ``δ / |grid|`` and the best is reported as a ``"grid_best"`` certificate at the overall ``δ``
  (:mod:`prunebound.bounds.grid`).

Either way the printed confidence is the overall one: ``|grid|`` points tried, the minimum reported, the
union bound paid (the certificate stores the grid and the per-point δ).

Execution: every grid point is a trial of :func:`prunebound.sweep.run_sweep` (joblib with ``n_jobs`` workers,
one torch thread each by default; or Dask with ``backend="dask"``/``scheduler``), appended to
``OUT/results.jsonl`` as it finishes.  A killed run restarted with the same arguments skips the finished points
(their keys hash every input that changes the result: data hash, architecture, prior hash, hyperparameters)
and gives the same certificate, because the chosen point's model is rebuilt from the recorded message
(subspace) or reloaded from ``OUT/points/KEY.pt`` (pruning methods) and re-certified.

Outputs in ``OUT``: ``model.pt`` (the certified model), ``certificate.json``, ``grid.csv`` (one row per point),
``bound_vs_error.{png,pdf}``, ``summary.json``, ``results.jsonl`` (the resumable log) and, for pruning
methods, ``points/``.  ``prunebound verify OUT/certificate.json --model OUT/model.pt`` recomputes the
certificate (for a data-dependent prior by retraining the prior: see :mod:`prunebound.bounds.subspace`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebound.certificate import Certificate, make_certificate
from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_positive_int, check_probability
from prunebound.train import torch_threads

__all__ = ["CompressResult", "compress", "METHODS", "write_atomic"]

METHODS = ("subspace", "occam", "zhou2019")


@dataclass(frozen=True)
class CompressResult:
    """Outcome of :func:`compress`: the certified ``model``, its ``certificate`` (overall δ), the chosen
    grid point's record ``best`` and all ``records`` (one per grid point, in grid order), and the files
    written."""

    model: nn.Module = field(repr=False, compare=False)
    certificate: Certificate
    best: Mapping[str, Any]
    records: tuple[Mapping[str, Any], ...]
    files: Mapping[str, str]

    @property
    def value(self) -> float:
        return self.certificate.value

    def to_dict(self) -> dict:
        return {"certificate": self.certificate.to_dict(), "best": dict(self.best),
                "records": [dict(r) for r in self.records], "files": dict(self.files)}


# ---------------------------------------------------------------------------------------------- files
def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (:mod:`prunebound.files`: temp file + rename; symlinks refused)."""
    from prunebound.files import atomic_write_bytes

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)


def _save_model_atomic(module: nn.Module, path: Path) -> Path:
    from prunebound.io import save_model  # atomic (temp file + rename), refuses a symlinked target

    save_model(module, path)
    return Path(path)


def _check_out(out: str | os.PathLike) -> Path:
    from prunebound.files import check_writable

    p = check_writable(out, what="--out", is_dir=True)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


# ---------------------------------------------------------------------------------------------- subspace
@dataclass(frozen=True)
class _SubspaceCtx:
    arch: Mapping[str, Any] | nn.Module  # a spec, or (class models) the prior module itself
    theta0: torch.Tensor
    data: Dataset
    bound_data: Dataset
    test: Dataset | None
    base_params: Mapping[str, Any]
    delta: float
    grid_size: int
    device: str | None
    threads: int | None
    progress: bool
    quiet: bool


def _init_module(arch: Mapping[str, Any] | nn.Module, theta0: torch.Tensor) -> nn.Module:
    """The prior module: rebuilt from a spec (plain ``nn.Sequential``) or a copy of the prior itself (any other
    traceable model), holding ``theta0``."""
    from prunebound.network import build_architecture, clone, load_vector

    if isinstance(arch, nn.Module):
        return load_vector(clone(arch), theta0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = build_architecture(arch)
    return load_vector(m, theta0)


def _subspace_trial(trial: dict, *, ctx: _SubspaceCtx) -> dict:
    from prunebound.bounds.subspace import train_point
    from prunebound.train import evaluate

    t0 = time.perf_counter()
    with torch_threads(ctx.threads):
        init = _init_module(ctx.arch, ctx.theta0)
        model, terms, code, params = train_point(
            init, ctx.data, ctx.bound_data, d=trial["d"], levels=trial["levels"], lr=trial["lr"],
            base_params=ctx.base_params, delta=ctx.delta, grid_size=ctx.grid_size, epochs=trial["epochs"],
            qat_epochs=trial["qat_epochs"], qat_lr=trial["qat_lr"], batch_size=trial["batch_size"],
            schedule=trial["schedule"], seed=trial["seed"], device=ctx.device, progress=ctx.progress)
        train_err = evaluate(model, ctx.data).error
        test_err = evaluate(model, ctx.test).error if ctx.test is not None else None
    res = {"bound": terms.value, "empirical": terms.empirical, "train_error": train_err, "test_error": test_err,
           "bits": terms.parts["total_bits"], "params": params}
    _say(_line(trial, res, time.perf_counter() - t0), ctx.quiet)
    return res


def _point_label(trial: Mapping[str, Any]) -> str:
    if trial["method"] == "subspace":
        return f"d={trial['d']} L={trial['levels']} lr={trial['lr']:g}"
    return f"sparsity={trial['sparsity']:g} bits={trial['bits']}"


def _line(trial: Mapping[str, Any], res: Mapping[str, Any], secs: float | None) -> str:
    te = res.get("test_error")
    tail = f", test err {te:.4f}" if te is not None else ""
    when = f" in {secs:.1f} s" if secs is not None else " (finished earlier)"
    return (f"[compress] {_point_label(trial)}: bound {res['bound']:.4f}, bound-set err {res['empirical']:.4f}, "
            f"{res['bits']:.0f} bits{tail}{when}")


def _run_subspace(module, data, test, *, out, grid, delta, seed, n_jobs, backend, scheduler, prior_fraction,
                  epochs, qat_epochs, qat_lr, batch_size, schedule, projection, prior_epochs, prior_lr,
                  prior_batch_size, device, threads, progress, quiet, pay_for_grid):
    from prunebound.bounds.subspace import (
        _rebuild,
        _terms,
        architecture_sha256,
        base_subspace_params,
        default_grid,
        init_route,
        prior_init,
        prior_sha256,
    )
    from prunebound.network import Network, architecture, clone, count_parameters, to_vector
    from prunebound.sweep import run_sweep

    spec_route = init_route(module) == "spec"
    arch = architecture(Network.from_module(module).module) if spec_route else None
    t0 = time.perf_counter()
    prior_threads = 1 if prior_fraction > 0 else None
    init, bound_data = prior_init(module, data, init_seed=seed, prior_fraction=prior_fraction, split_seed=seed,
                                  prior_epochs=prior_epochs, prior_lr=prior_lr, prior_batch_size=prior_batch_size,
                                  prior_schedule="cosine" if prior_fraction > 0 else None,
                                  prior_threads=prior_threads)
    assert bound_data is not None
    if prior_fraction > 0:
        from prunebound.train import evaluate

        msg = f"[compress] prior trained on {len(data) - len(bound_data)} examples in {time.perf_counter() - t0:.1f} s"
        if test is not None:
            msg += f" (prior's own test error {evaluate(init, test).error:.4f})"
        _say(msg + f"; bounding on the other {len(bound_data)}", quiet)
    if grid is None:
        grid = default_grid(len(bound_data), count_parameters(init), data_dependent=prior_fraction > 0)
    pts = [(int(g[0]), int(g[1]), float(g[2])) for g in grid]
    base = base_subspace_params(projection=projection, seed=seed, grid=pts, pay_for_grid=pay_for_grid,
                                prior_fraction=prior_fraction, prior_epochs=prior_epochs, prior_lr=prior_lr,
                                prior_batch_size=prior_batch_size,
                                prior_schedule="cosine" if prior_fraction > 0 else None,
                                prior_threads=prior_threads, prior=init)
    grid_size = len(pts) if pay_for_grid else 1
    n = len(bound_data)
    if epochs is None:
        epochs = int(min(60, max(10, round(2_000_000 / len(data)))))
    if qat_epochs is None:
        qat_epochs = max(2, epochs // 6)
    common = {"method": "subspace", "data": data.sha256[:16],
              "arch": _short_hash(arch) if spec_route else architecture_sha256(init)[:16],
              "prior": prior_sha256(init), "delta": float(delta), "grid_size": grid_size, "seed": int(seed),
              "projection": projection, "epochs": int(epochs), "qat_epochs": int(qat_epochs),
              "qat_lr": float(qat_lr), "batch_size": int(batch_size), "schedule": schedule}
    trials = [dict(common, d=d, levels=L, lr=lr) for d, L, lr in pts]
    prior_arch = arch if spec_route else clone(init)
    ctx = _SubspaceCtx(prior_arch, to_vector(init).detach().clone(), data, bound_data, test, base, float(delta),
                       grid_size, device, threads, progress, quiet)
    _say(f"[compress] subspace grid: {len(pts)} points (d x L x lr), n_bound={n}, {epochs}+{qat_epochs} epochs "
         f"each, {n_jobs} job(s); the union over the grid is paid ({math.log2(grid_size):.2f} bits)", quiet)
    records = _sweep(run_sweep, functools.partial(_subspace_trial, ctx=ctx), trials, out, n_jobs=n_jobs,
                     backend=backend, scheduler=scheduler, progress=progress, quiet=quiet)
    best = min(records, key=lambda r: r["result"]["bound"])
    params = best["result"]["params"]
    model, bdata, code = _rebuild(init, data, params, prior=(init, bound_data))
    terms = _terms(model, bdata, code, delta=delta, grid_size=grid_size)
    if not math.isclose(terms.value, best["result"]["bound"], rel_tol=1e-9, abs_tol=1e-12):
        raise InvalidParameterError(
            f"{out / 'results.jsonl'}: the recorded bound {best['result']['bound']} of the chosen point does not "
            f"match its rebuilt model ({terms.value}); the results file belongs to another run -- use a new --out")
    note = "Lotfi et al. 2022 subspace compression bound (deterministic quantised model)"
    note += f"; best of {len(pts)} grid points, union paid as log2|grid| bits"
    if prior_fraction > 0:
        note += f"; data-dependent prior trained on a seeded {prior_fraction:g} split (seed {seed}), bound on the rest"
    if not pay_for_grid:
        note += "; INVALID: union over the grid not paid"
    cert = make_certificate("subspace", terms, model, data, delta=delta, seed=seed, params=params, note=note)
    return model, cert, best, records


# ---------------------------------------------------------------------------------------------- pruning
@dataclass(frozen=True)
class _PruneCtx:
    module: nn.Module
    data: Dataset
    test: Dataset | None
    out: Path
    inner: str
    inner_params: Mapping[str, Any]
    delta_each: float
    threads: int | None
    quiet: bool


def _prune_pipeline(module: nn.Module, data: Dataset, *, sparsity: float, bits: int, finetune_epochs: int,
                    finetune_lr: float, centroid_epochs: int, centroid_lr: float, batch_size: int, seed: int
                    ) -> nn.Module:
    """Prune (global magnitude + masked fine-tuning) -> quantize (``bits``, fp16 biases) -> fine-tune centroids."""
    from prunebound.coding import finetune_centroids, quantize_module
    from prunebound.network import clone
    from prunebound.pruning import magnitude

    m = clone(module)
    if sparsity > 0:
        m = magnitude(m, data, sparsity=sparsity, scope="global", epochs=finetune_epochs, lr=finetune_lr,
                      batch_size=batch_size, optimizer="adam", weight_decay=0.0, seed=seed).module
    quantize_module(m, bits=bits, half_bias=True)
    if centroid_epochs:
        finetune_centroids(m, data, epochs=centroid_epochs, lr=centroid_lr, seed=seed, batch_size=batch_size)
    return m


def _prune_trial(trial: dict, *, ctx: _PruneCtx) -> dict:
    from prunebound.bounds import certify
    from prunebound.sweep import trial_key
    from prunebound.train import evaluate

    t0 = time.perf_counter()
    with torch_threads(ctx.threads):
        m = _prune_pipeline(ctx.module, ctx.data, sparsity=trial["sparsity"], bits=trial["bits"],
                            finetune_epochs=trial["finetune_epochs"], finetune_lr=trial["finetune_lr"],
                            centroid_epochs=trial["centroid_epochs"], centroid_lr=trial["centroid_lr"],
                            batch_size=trial["batch_size"], seed=trial["seed"])
        cert = certify(m, ctx.data, method=ctx.inner, delta=ctx.delta_each, seed=trial["seed"], **ctx.inner_params)
        test_err = evaluate(m, ctx.test).error if ctx.test is not None else None
    path = _save_model_atomic(m, ctx.out / "points" / f"{trial_key(trial)}.pt")
    res = {"bound": cert.value, "empirical": cert.empirical, "train_error": evaluate(m, ctx.data).error,
           "test_error": test_err, "bits": float(cert.parts.get("bits", cert.parts.get("code_bits", float("nan")))),
           "model_file": str(path.relative_to(ctx.out)), "model_sha256": cert.model_sha256}
    _say(_line(trial, res, time.perf_counter() - t0), ctx.quiet)
    return res


def _run_pruning(module, data, test, *, method, out, grid, delta, seed, n_jobs, backend, scheduler,
                 finetune_epochs, finetune_lr, centroid_epochs, centroid_lr, batch_size, threads, progress, quiet,
                 pay_for_grid, inner_params):
    from prunebound.bounds.grid import grid_certificate
    from prunebound.certificate import model_sha256
    from prunebound.io import load_model
    from prunebound.network import Network, architecture
    from prunebound.sweep import run_sweep

    if grid is None:
        grid = [(s, b) for s in (0.5, 0.8, 0.9, 0.95) for b in (3, 4, 5)]
    pts = [(float(s), int(b)) for s, b in grid]
    for s, _b in pts:
        if not 0 <= s < 1:
            raise InvalidParameterError(f"sparsity must lie in [0, 1), got {s}")
    k = len(pts) if pay_for_grid else 1
    arch = architecture(Network.from_module(module).module)
    common = {"method": method, "data": data.sha256[:16], "model": model_sha256(module)[:16], "arch": _short_hash(arch),
              "delta_each": delta / k, "seed": int(seed), "finetune_epochs": int(finetune_epochs),
              "finetune_lr": float(finetune_lr), "centroid_epochs": int(centroid_epochs),
              "centroid_lr": float(centroid_lr), "batch_size": int(batch_size),
              "inner": _short_hash(dict(inner_params))}
    trials = [dict(common, sparsity=s, bits=b) for s, b in pts]
    ctx = _PruneCtx(module, data, test, out, method, dict(inner_params), delta / k, threads, quiet)
    _say(f"[compress] {method}: {len(pts)} points (sparsity x bits), each certified at delta/{k} = {delta / k:.3g}; "
         f"{n_jobs} job(s)", quiet)
    records = _sweep(run_sweep, functools.partial(_prune_trial, ctx=ctx), trials, out, n_jobs=n_jobs,
                     backend=backend, scheduler=scheduler, progress=progress, quiet=quiet)
    best = min(records, key=lambda r: r["result"]["bound"])
    model = load_model(out / best["result"]["model_file"])
    if model_sha256(model) != best["result"]["model_sha256"]:
        raise InvalidParameterError(f"{out / best['result']['model_file']} does not hold the model its record "
                                    "certified (hash differs); delete it and rerun to recompute that point")
    point = {"sparsity": best["trial"]["sparsity"], "bits": best["trial"]["bits"]}
    cert = grid_certificate(model, data, delta=delta, seed=seed, method=method,
                            grid=[{"sparsity": s, "bits": b} for s, b in pts], point=point, inner=inner_params,
                            pay_for_grid=pay_for_grid)
    return model, cert, best, records


# ---------------------------------------------------------------------------------------------- driver
def _sweep(run_sweep, fn, trials, out: Path, *, n_jobs, backend, scheduler, progress, quiet):
    from prunebound.sweep import read_results, trial_key

    done = {r["key"]: r for r in read_results(out / "results.jsonl")}
    for t in trials:
        rec = done.get(trial_key(t))
        if rec is not None:
            _say(_line(t, rec["result"], None), quiet)
    return run_sweep(fn, trials, out / "results.jsonl", backend=backend, n_jobs=n_jobs, scheduler=scheduler,
                     progress=progress and not quiet, desc="grid")


def _plot(records: Sequence[Mapping[str, Any]], best_key: str, out: Path, title: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prunebound.plotting import paper_style, savefig

    has_test = all(r["result"].get("test_error") is not None for r in records)
    xk, xl = ("test_error", "test error") if has_test else ("train_error", "training error")
    with paper_style():
        fig, ax = plt.subplots()
        xs = [r["result"][xk] for r in records]
        ys = [r["result"]["bound"] for r in records]
        ax.scatter(xs, ys, s=18, label="grid points")
        b = next(r for r in records if r["key"] == best_key)
        ax.scatter([b["result"][xk]], [b["result"]["bound"]], s=60, marker="*", color="C3", label="certified")
        hi = max(max(ys), max(xs)) * 1.05 + 1e-3
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8, ls="--", label="bound = error")
        ax.set_xlabel(xl)
        ax.set_ylabel("certified error bound")
        ax.set_title(title)
        ax.legend()
        paths = savefig(fig, out, "bound_vs_error")
        plt.close(fig)
    return [str(p) for p in paths]


def compress(
    module: nn.Module,
    data: Dataset,
    *,
    out: str | os.PathLike,
    method: str = "subspace",
    test: Dataset | None = None,
    grid: Sequence[Sequence[float]] | None = None,
    delta: float = 0.05,
    seed: int = 0,
    n_jobs: int = 1,
    backend: str = "local",
    scheduler: Any = None,
    prior_fraction: float = 0.0,
    epochs: int | None = None,
    qat_epochs: int | None = None,
    qat_lr: float = 0.01,
    batch_size: int = 128,
    schedule: str | None = "cosine",
    projection: str = "fastfood",
    prior_epochs: int = 30,
    prior_lr: float = 3e-3,
    prior_batch_size: int = 128,
    finetune_epochs: int = 5,
    finetune_lr: float = 1e-3,
    centroid_epochs: int = 1,
    centroid_lr: float = 1e-3,
    inner_params: Mapping[str, Any] | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    pay_for_grid: bool = True,
) -> CompressResult:
    """Run the grid of ``method`` (module docstring) and write the certified model and its certificate to ``out``.

    ``module``: for ``"subspace"`` only its architecture is used (``θ0`` is its seeded re-initialisation or
    the prior trained on ``prior_fraction`` of ``data``); for ``"occam"``/``"zhou2019"`` the trained model to
    compress.  ``grid``: subspace points ``(d, L, lr)`` (default :func:`~prunebound.bounds.subspace.default_grid`,
    scaled with the bound's ``n`` and the model), pruning points ``(sparsity, bits)`` (default
    ``{0.5, 0.8, 0.9, 0.95} x {3, 4, 5}``).  ``test``: held-out data for the test error of every point (context
    only; never used by the bound).  ``threads``: torch threads per grid point (default 1 when ``n_jobs != 1``).
    ``pay_for_grid=False`` is an *invalid* bound kept for the coverage tests.
    """
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}")
    delta = check_probability("delta", delta)
    check_probability("prior_fraction", prior_fraction, open_left=False)
    if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise InvalidParameterError(f"n_jobs must be a positive int or -1, got {n_jobs!r}")
    if scheduler is not None:
        backend = "dask"
    if threads is None and n_jobs != 1:
        threads = 1
    if threads is not None:
        check_positive_int("threads", threads)
    if grid is not None and len(grid) == 0:
        raise InvalidParameterError("grid is empty; give at least one point or None for the default grid")
    outp = _check_out(out)
    t0 = time.perf_counter()
    if method == "subspace":
        if grid is not None:
            for g in grid:
                if len(g) != 3:
                    raise InvalidParameterError(f"subspace grid points are (d, levels, lr) triples, got {tuple(g)}")
        model, cert, best, records = _run_subspace(
            module, data, test, out=outp, grid=grid, delta=delta, seed=int(seed), n_jobs=n_jobs, backend=backend,
            scheduler=scheduler, prior_fraction=prior_fraction, epochs=epochs, qat_epochs=qat_epochs,
            qat_lr=qat_lr, batch_size=batch_size, schedule=schedule, projection=projection,
            prior_epochs=prior_epochs, prior_lr=prior_lr, prior_batch_size=prior_batch_size, device=device,
            threads=threads, progress=progress, quiet=quiet, pay_for_grid=pay_for_grid)
    else:
        if prior_fraction > 0:
            raise InvalidParameterError(
                f"--prior-fraction applies to method 'subspace'; {method!r} bounds a given checkpoint whose code "
                "prior is data-independent already")
        if grid is not None:
            for g in grid:
                if len(g) != 2:
                    raise InvalidParameterError(f"{method} grid points are (sparsity, bits) pairs, got {tuple(g)}")
        model, cert, best, records = _run_pruning(
            module, data, test, method=method, out=outp, grid=grid, delta=delta, seed=int(seed), n_jobs=n_jobs,
            backend=backend, scheduler=scheduler, finetune_epochs=finetune_epochs, finetune_lr=finetune_lr,
            centroid_epochs=centroid_epochs, centroid_lr=centroid_lr, batch_size=batch_size, threads=threads,
            progress=progress, quiet=quiet, pay_for_grid=pay_for_grid, inner_params=dict(inner_params or {}))
    files = {"model": str(_save_model_atomic(model, outp / "model.pt")),
             "certificate": str(write_atomic(outp / "certificate.json", cert.to_json() + "\n")),
             "results": str(outp / "results.jsonl")}
    buf = io.StringIO()
    cols = ["key", *best["trial"].keys(), "bound", "empirical", "train_error", "test_error", "bits"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({"key": r["key"], **r["trial"], **{k: r["result"].get(k) for k in cols[-5:]}})
    files["grid"] = str(write_atomic(outp / "grid.csv", buf.getvalue()))
    figs = _plot(records, best["key"], outp, f"{method}: {len(records)} grid points, δ={delta:g} overall")
    files["figures"] = ", ".join(figs)
    summary = {"method": method, "bound": cert.value, "delta": delta, "grid_size": len(records),
               "point": {k: best["trial"][k] for k in best["trial"] if k in ("d", "levels", "lr", "sparsity", "bits")},
               "empirical": cert.empirical, "train_error": best["result"]["train_error"],
               "test_error": best["result"]["test_error"], "n": cert.n,
               "n_bound": cert.parts.get("n_bound", cert.n), "prior_fraction": prior_fraction,
               "seconds": round(time.perf_counter() - t0, 1), "summary": cert.summary(), "files": files}
    files["summary"] = str(write_atomic(outp / "summary.json", json.dumps(summary, indent=2, default=str) + "\n"))
    _say(f"[compress] certificate: {cert.summary()}", quiet)
    if best["result"]["test_error"] is not None:
        _say(f"[compress] chosen point {_point_label(best['trial'])}: test error {best['result']['test_error']:.4f} "
             f"(bound / test error = {cert.value / max(best['result']['test_error'], 1e-12):.2f})", quiet)
    _say(f"[compress] recompute it: prunebound verify {files['certificate']} --model {files['model']}", quiet)
    return CompressResult(model, cert, best["result"], tuple(r["result"] for r in records), files)


# ---------------------------------------------------------------------------------------------- command line
def _floats(s: str | None, name: str, conv=float) -> list | None:
    if s is None:
        return None
    try:
        out = [conv(x) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise InvalidParameterError(f"{name} expects comma-separated numbers, got {s!r}") from e
    if not out:
        raise InvalidParameterError(f"{name} is empty")
    return out


def test_spec_for(spec: str) -> str | None:
    """The held-out part of a data spec that has one (``mnist1d``, ``digits``, ``mnist``, ``cifar10``)."""
    from prunebound.data import _parse_spec

    name, kw = _parse_spec(spec)
    if name in ("mnist1d", "digits", "mnist", "cifar10") and kw.get("part", "train") == "train":
        kw["part"] = "test"
        return name + ":" + ",".join(f"{k}={v}" for k, v in kw.items())
    return None


def add_compress_arguments(s) -> None:
    """Arguments of ``prunebound compress`` (added to the subparser ``s``)."""
    s.add_argument("--method", default="subspace", choices=list(METHODS))
    s.add_argument("--arch", default=None, help="zoo architecture (subspace), e.g. conv1d_small or mlp:40,128,10")
    s.add_argument("--model", default=None, help="trained checkpoint (occam/zhou2019; or the architecture)")
    s.add_argument("--data", required=True, help="data spec, e.g. mnist1d:n=100000")
    s.add_argument("--test", default=None, help="held-out data spec for test errors (default: the spec's test part)")
    s.add_argument("--out", required=True, help="output directory (resumable: rerun with the same arguments)")
    s.add_argument("--delta", type=float, default=0.05, help="overall confidence parameter (whole grid)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prior-fraction", type=float, default=0.0,
                   help="subspace: train the prior on this seeded fraction of the data, bound on the rest")
    s.add_argument("--grid-d", default=None, help="subspace dimensions, e.g. 250,500,1000 (default scales with n)")
    s.add_argument("--grid-levels", default="8,16", help="codebook sizes (subspace)")
    s.add_argument("--grid-lr", default="0.05,0.1", help="learning rates (subspace)")
    s.add_argument("--sparsities", default="0.5,0.8,0.9,0.95", help="occam/zhou2019 grid")
    s.add_argument("--bits", default="3,4,5", help="occam/zhou2019 grid: bits per weight (k-means codebook)")
    s.add_argument("--epochs", type=int, default=None, help="subspace epochs (default scales with n)")
    s.add_argument("--prior-epochs", type=int, default=30)
    s.add_argument("--finetune-epochs", type=int, default=5, help="occam/zhou2019: masked fine-tuning epochs")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--jobs", type=int, default=1, help="grid points in parallel (joblib; -1 = all cores)")
    s.add_argument("--backend", default="local", choices=["local", "dask"])
    s.add_argument("--scheduler", default=None, help="dask scheduler address (implies --backend dask)")
    s.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    s.add_argument("--param", action="append", help="extra parameter of the occam/zhou2019 certifier, key=value")
    s.add_argument("--no-progress", action="store_true")


def cli_compress(a) -> int:
    """``prunebound compress``: see :func:`compress`."""
    from prunebound import data as D
    from prunebound.cli import _arch, _kv
    from prunebound.io import load_model

    if a.method == "subspace":
        if not (a.arch or a.model):
            raise InvalidParameterError("compress --method subspace needs --arch (or --model for its architecture)")
        module = load_model(a.model) if a.model else _arch(a.arch)
    else:
        if not a.model:
            raise InvalidParameterError(f"compress --method {a.method} needs --model, the trained checkpoint")
        module = load_model(a.model)
    data = D.resolve(a.data)
    tspec = a.test or test_spec_for(a.data)
    test = D.resolve(tspec) if tspec else None
    if a.method == "subspace":
        ds = _floats(a.grid_d, "--grid-d", int)
        levels = _floats(a.grid_levels, "--grid-levels", int)
        lrs = _floats(a.grid_lr, "--grid-lr")
        grid = None if ds is None else [(d, L, lr) for d in ds for L in levels for lr in lrs]
        if ds is None:
            from prunebound.bounds.subspace import default_grid
            from prunebound.network import count_parameters

            n_bound = len(data) - int(round(a.prior_fraction * len(data)))
            grid = default_grid(n_bound, count_parameters(module), data_dependent=a.prior_fraction > 0,
                                levels=levels, lrs=lrs)
    else:
        grid = [(s, b) for s in _floats(a.sparsities, "--sparsities") for b in _floats(a.bits, "--bits", int)]
    compress(module, data, out=a.out, method=a.method, test=test, grid=grid, delta=a.delta, seed=a.seed,
             n_jobs=a.jobs, backend=a.backend, scheduler=a.scheduler, prior_fraction=a.prior_fraction,
             epochs=a.epochs, prior_epochs=a.prior_epochs, finetune_epochs=a.finetune_epochs,
             batch_size=a.batch_size, device=a.device, threads=getattr(a, "threads", None),
             progress=not a.no_progress, inner_params=_kv(a.param))
    return 0


def add_quantize_arguments(s) -> None:
    """Arguments of ``prunebound quantize``."""
    s.add_argument("model")
    s.add_argument("--bits", type=int, default=4, help="bits per weight: k-means codebook of 2^bits values per layer")
    s.add_argument("--data", default=None, help="data spec: fine-tune the shared centroids on it (Han et al. Eq. 3)")
    s.add_argument("--centroid-epochs", type=int, default=1)
    s.add_argument("--centroid-lr", type=float, default=1e-3)
    s.add_argument("--full-bias", action="store_true", help="keep float32 biases (default: round to float16)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)


def cli_quantize(a) -> int:
    """``prunebound quantize``: k-means weight sharing (fp16 biases), optional centroid fine-tuning, save."""
    from prunebound import data as D
    from prunebound.coding import code_length_bits, finetune_centroids, quantize_module
    from prunebound.io import load_model

    m = load_model(a.model)
    check_positive_int("--bits", a.bits)
    rep = quantize_module(m, bits=a.bits, half_bias=not a.full_bias)
    if a.data and a.centroid_epochs:
        finetune_centroids(m, D.resolve(a.data), epochs=a.centroid_epochs, lr=a.centroid_lr, seed=a.seed)
    out = Path(a.out)
    if out.exists() and out.resolve() == Path(a.model).resolve():
        raise InvalidParameterError("--out must differ from the input model")
    _save_model_atomic(m, out)
    cl = code_length_bits(m)
    ks = ", ".join(f"{p}:{q.k}" for p, q in rep.per_layer.items())
    print(f"quantize: {a.bits} bits/weight (codebook sizes {ks}); exact code {cl.total_bits} bits; written to {out}")
    return 0
