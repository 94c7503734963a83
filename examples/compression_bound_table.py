"""Occam vs Zhou et al. 2019 bounds for pruned + quantized MLPs (teacher task and MNIST-1D, two sparsities each).

Run: ``.venv/bin/python examples/compression_bound_table.py`` (under a minute on 2 cores). Prints a Markdown table:
model, data, n, sparsity, test error (true risk on 1e5 fresh samples for the teacher task), Occam bound, Zhou 2019
bound, compressed size in KiB (exact Huffman code, ``prunebound.coding.code_length_bits``). δ = 0.05 per bound.
"""

import torch

from prunebound import data as D
from prunebound import network as N
from prunebound.bounds import certify
from prunebound.coding import code_length_bits, quantize_module
from prunebound.pruning import magnitude
from prunebound.train import evaluate, fit

torch.set_num_threads(1)


def rows(name, model, train, risk, sparsities, bits):
    for s in sparsities:
        p = magnitude(model, train, sparsity=s, epochs=5, lr=1e-3, optimizer="adam",
                      weight_decay=0.0, seed=0).module
        quantize_module(p, bits=bits, half_bias=True)
        occ = certify(p, train, method="occam", delta=0.05)
        zh = certify(p, train, method="zhou2019", delta=0.05, seed=0)
        kib = code_length_bits(p).total_bits / 8 / 1024
        yield f"| {name} | {len(train)} | {s} | {risk(p):.3f} | {occ.value:.3f} | {zh.value:.3f} | {kib:.2f} |"


def main() -> None:
    print("| model, data | n | sparsity | test error | Occam | Zhou 2019 | size KiB |")
    print("|---|---|---|---|---|---|---|")
    task = D.teacher_task(d_in=20, width=64, seed=0)
    train = task.sample(10_000, 1)
    m = N.mlp(20, [64], 2, bias=False, seed=0)
    fit(m, train, epochs=20, lr=1e-2, optimizer="adam", seed=0)
    for r in rows("MLP 20-64-2, teacher", m, train, task.true_risk, (0.8, 0.9), bits=4):
        print(r, flush=True)
    split = D.mnist1d(10_000, 0)
    m = N.mlp(40, [128], 10, seed=0)
    fit(m, split.train, epochs=30, lr=3e-3, batch_size=128, optimizer="adam", seed=0)
    for r in rows("MLP 40-128-10, MNIST-1D", m, split.train, lambda p: evaluate(p, split.test).error, (0.8, 0.95),
                  bits=3):
        print(r, flush=True)


if __name__ == "__main__":
    main()
