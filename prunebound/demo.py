"""``prunebound demo``: the main job on built-in data, end to end, in under three minutes on 2 CPU cores.

1. Generate MNIST-1D offline (``mnist1d.data.make_dataset``) and train a one-hidden-layer MLP.
2. For a grid of sparsities: global magnitude pruning (Han et al. 2015) with masked fine-tuning, then k-means
   weight sharing (Deep Compression, 4-bit) and float16 biases, so the model has a short exact code.
3. Certify each compressed model with the Occam bound (kl-inverse form) on its exact code length in bits
   (``prunebound.bounds.certify(..., method="occam")``), the grid of sparsities paid for in δ (δ / |grid|), and
   keep the best certificate.
4. Write ``certificate.json``, ``model.pt``, ``results.csv`` and ``bound_vs_sparsity.{png,pdf}``; print the
   ``prunebound verify`` command that recomputes the certificate.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch

from prunebound.defaults import DEFAULT_DELTA

__all__ = ["run_demo"]


def run_demo(out: Path, *, quick: bool = False, seed: int = 0, delta: float = DEFAULT_DELTA) -> dict:
    from prunebound import data as D
    from prunebound import network as N
    from prunebound.bounds import certify
    from prunebound.coding import code_length_bits, quantize_module
    from prunebound.io import save_model
    from prunebound.plotting import savefig
    from prunebound.pruning import magnitude
    from prunebound.train import evaluate, fit

    t0 = time.time()
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 3000 if quick else 40000
    spec = f"mnist1d:n={n},seed={seed}"
    split = D.mnist1d(n, seed)
    train = D.resolve(spec + ",part=train")
    test = split.test
    print(f"[demo] MNIST-1D generated offline: {len(train)} train / {len(test)} test examples")

    model = N.mlp(40, [128], 10, seed=seed)
    fit(model, train, epochs=8 if quick else 20, lr=3e-3, batch_size=128, seed=seed, optimizer="adam",
        quiet=quick)
    dense = evaluate(model, test)
    print(f"[demo] dense MLP 40-128-10 ({N.count_parameters(model)} parameters): test error {dense.error:.3f}")

    grid = [0.8, 0.9, 0.95, 0.97, 0.985] if not quick else [0.9, 0.97]
    d_each = delta / len(grid)
    rows, best = [], None
    for s in grid:
        rep = magnitude(model, train, sparsity=s, scope="global", epochs=3 if quick else 10, lr=1e-3,
                        batch_size=128, optimizer="adam", weight_decay=0.0, seed=seed)
        pruned = rep.module
        quantize_module(pruned, bits=4, half_bias=True)
        bits = code_length_bits(pruned).total_bits
        cert = certify(pruned, train, method="occam", delta=d_each, seed=seed)
        te = evaluate(pruned, test).error
        row = {"sparsity": s, "nonzero_weights": N.count_nonzero(pruned, include_bias=False),
               "code_bits": bits, "train_error": cert.empirical, "test_error": te, "bound": cert.value,
               "delta_each": d_each}
        rows.append(row)
        print(f"[demo] sparsity {s:.3f}: {bits} bits, train err {cert.empirical:.3f}, test err {te:.3f}, "
              f"Occam bound {cert.value:.3f}")
        if best is None or cert.value < best[1].value:
            best = (N.clone(pruned), cert, row)

    pruned, cert, row = best
    save_model(pruned, out / "model.pt")
    cert.save(out / "certificate.json")
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prunebound.plotting import paper_style

    with paper_style():
        fig, ax = plt.subplots()
        xs = [r["sparsity"] for r in rows]
        ax.plot(xs, [r["bound"] for r in rows], "o-", label=f"Occam bound (δ = {d_each:g} each, {delta:g} in all)")
        ax.plot(xs, [r["test_error"] for r in rows], "s--", label="test error")
        ax.plot(xs, [r["train_error"] for r in rows], "^:", label="train error")
        ax.axhline(dense.error, color="grey", lw=0.8, label="dense test error")
        ax.set_xlabel("weight sparsity")
        ax.set_ylabel("error")
        ax.set_title("MNIST-1D MLP: pruned, 4-bit weights, fp16 biases")
        ax.legend()
        figs = savefig(fig, out, "bound_vs_sparsity")
        plt.close(fig)
    summary = {"certificate": str(out / "certificate.json"), "model": str(out / "model.pt"),
               "results": str(out / "results.csv"), "figures": [str(p) for p in figs],
               "bound": cert.value, "test_error": row["test_error"], "sparsity": row["sparsity"],
               "dense_test_error": dense.error, "seconds": round(time.time() - t0, 1),
               "note": "Occam bound (kl-inverse) on the exact Huffman code length of the pruned, 4-bit quantized model "
                       "(float16 biases); "
                       f"union over {len(grid)} sparsities paid in delta"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[demo] certificate: {cert.summary()}")
    print(f"[demo] wrote {out}/certificate.json, model.pt, results.csv, bound_vs_sparsity.png/.pdf "
          f"in {summary['seconds']} s")
    print(f"[demo] recompute it: prunebound verify {out}/certificate.json --model {out}/model.pt")
    return summary
