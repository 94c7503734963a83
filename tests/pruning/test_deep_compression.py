"""Deep Compression: shared weights per layer <= 2^bits, exact code length, compression factor."""

import pytest
import torch

coding = pytest.importorskip("prunebound.coding")

from prunebound.network import masks_of  # noqa: E402
from prunebound.pruning import deep_compression  # noqa: E402


def test_pipeline(trained_mlp, train_data, test_data):
    rep = deep_compression(
        trained_mlp,
        train_data,
        sparsity=0.8,
        prune_epochs=1,
        centroid_epochs=1,
        bits_linear=3,
        test_data=test_data.subset(slice(0, 500)),
    )
    mk = masks_of(rep.module)
    for i in (0, 2, 4):
        w = rep.module[i].weight.detach()
        vals = torch.unique(w[mk[str(i)] == 1])
        assert vals.numel() <= 2**3
    assert (
        abs(rep.total * sum(m.numel() for m in mk.values()) - 0.8 * sum(m.numel() for m in mk.values())) <= 3
    )
    blob = coding.encode(rep.module)
    assert 8 * len(blob) - 7 <= rep.info["code_bits"] <= 8 * len(blob)
    assert rep.info["compression_factor"] == pytest.approx(rep.info["dense_bits"] / rep.info["code_bits"])
    assert rep.info["compression_factor"] > 3
    assert set(rep.info["test_error"]) == {"after_pruning", "after_quantization", "after_centroid_finetune"}
    # decode round trip gives the same function
    from prunebound.network import architecture

    dec = coding.decode(blob, architecture(trained_mlp))
    with torch.no_grad():
        assert torch.equal(dec(test_data.x[:50]), rep.module(test_data.x[:50]))
