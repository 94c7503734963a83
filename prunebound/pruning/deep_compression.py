"""Deep Compression (Han, Mao & Dally 2016, "Deep compression: compressing deep neural networks with pruning,
trained quantization and Huffman coding", ICLR).

Three stages (their Fig. 1):

1. **pruning** -- magnitude pruning with retraining (Han et al. 2015; :func:`prunebound.pruning.magnitude`);
2. **trained quantization** -- per-layer weight sharing by k-means with linear centroid initialisation
   (Sec. 3.1-3.2), ``k = 2^bits`` clusters (the paper: 8 bits for convolutions, 5 for fully connected layers),
   then fine-tuning of the shared centroids, whose gradient is the sum of the gradients of their weights
   (eq. 3) -- :func:`prunebound.coding.quantize_module` and :func:`prunebound.coding.finetune_centroids`;
3. **Huffman coding** of the centroid indices and of the relative position gaps (Sec. 4) --
   :func:`prunebound.coding.code_length_bits` (an exact encoder; see :mod:`prunebound.coding` for the format).

Reported (``info``): exact code length in bits (total and per part), the dense float32 size
``32 * (#weights + #biases)`` and the compression factor ``dense_bits / code_bits``, plus the accuracy after
each stage when ``test_data`` is given. The encoder's bit count includes biases (raw) and all side
information, so the factor is honest (the paper's tables count index + codebook bits).
"""

from __future__ import annotations

from torch import nn

from prunebound.data import Dataset
from prunebound.errors import check_positive_int
from prunebound.network import Network, count_parameters
from prunebound.pruning._common import check_sparsity, make_report, require_data
from prunebound.pruning.magnitude import magnitude
from prunebound.pruning.report import PruneResult

__all__ = ["deep_compression"]


def deep_compression(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    scope: str = "std",
    prune_epochs: int = 3,
    lr: float = 0.01,
    batch_size: int = 64,
    bits_linear: int = 5,
    bits_conv: int = 8,
    centroid_epochs: int = 1,
    centroid_lr: float = 1e-3,
    kmeans_iters: int = 20,
    coder: str = "huffman",
    test_data: Dataset | None = None,
) -> PruneResult:
    """Prune (``magnitude``) -> quantize (k-means, ``bits_linear``/``bits_conv``) -> fine-tune centroids ->
    Huffman-code; returns the pruned, quantized module and the code lengths."""
    from prunebound.coding import code_length_bits, finetune_centroids, quantize_module
    from prunebound.train import evaluate

    data = require_data(data, "deep_compression (Han et al. 2016)")
    sparsity = check_sparsity(sparsity)
    check_positive_int("centroid_epochs", centroid_epochs, minimum=0)
    stage1 = magnitude(
        module,
        data,
        sparsity=sparsity,
        seed=seed,
        scope=scope,
        epochs=prune_epochs,
        lr=lr,
        batch_size=batch_size,
    )
    net = Network.from_module(stage1.module)
    acc: dict[str, float] = {}
    if test_data is not None:
        acc["after_pruning"] = evaluate(net.module, test_data).error
    bits = {ly.path: (bits_linear if ly.kind == "linear" else bits_conv) for ly in net.layers}
    q = quantize_module(net, bits=bits, iters=kmeans_iters)
    if test_data is not None:
        acc["after_quantization"] = evaluate(net.module, test_data).error
    if centroid_epochs:
        finetune_centroids(
            net, data, epochs=centroid_epochs, lr=centroid_lr, seed=seed, batch_size=batch_size
        )
        if test_data is not None:
            acc["after_centroid_finetune"] = evaluate(net.module, test_data).error
    cl = code_length_bits(net, coder=coder)
    dense = 32 * count_parameters(net)
    info = {
        "code_bits": cl.total_bits,
        "code_parts": dict(cl.parts),
        "code_per_layer": dict(cl.per_layer),
        "dense_bits": dense,
        "compression_factor": dense / cl.total_bits,
        "bits": bits,
        "quantization": q.to_dict(),
        "test_error": acc,
        "quality_per_round": stage1.info["quality_per_round"],
    }
    retrained = "; ".join(
        s
        for s in (
            stage1.retrained,
            (f"centroids fine-tuned {centroid_epochs} epochs (lr={centroid_lr})")
            if centroid_epochs
            else None,
        )
        if s
    )
    return make_report(
        net,
        "deep_compression",
        sparsity,
        retrained=retrained or None,
        params=dict(
            sparsity=sparsity,
            seed=seed,
            scope=scope,
            prune_epochs=prune_epochs,
            lr=lr,
            batch_size=batch_size,
            bits_linear=bits_linear,
            bits_conv=bits_conv,
            centroid_epochs=centroid_epochs,
            centroid_lr=centroid_lr,
            kmeans_iters=kmeans_iters,
            coder=coder,
        ),
        info=info,
    )
