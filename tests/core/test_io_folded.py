"""A pruned zoo model with BatchNorm (the folded copy that Network-based pruning returns) saves and reloads."""

from __future__ import annotations

import torch
from torch import nn

from prunebound import zoo
from prunebound.io import load_model, read_header, save_model
from prunebound.network import fold_batchnorm, masks_of
from prunebound.pruning import magnitude


def test_pruned_folded_zoo_model_round_trips(tmp_path):
    m = zoo.build("resnet20_1d", num_classes=3, width=2, seed=0).eval()
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    pruned = magnitude(m, (x, y), sparsity=0.5).module
    assert not any(isinstance(k, nn.BatchNorm1d) for k in pruned.modules())  # the folded copy
    p = save_model(pruned, tmp_path / "p.pt")
    ref = read_header(p)["reference"]
    assert ref["kind"] == "zoo" and ref["folded"] is True
    back = load_model(p)
    torch.testing.assert_close(back.eval()(x), pruned.eval()(x), rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(masks_of(back).values(), masks_of(pruned).values()))
    # an unpruned, unfolded zoo model keeps the plain reference
    assert "folded" not in read_header(save_model(m, tmp_path / "m.pt"))["reference"]
    # and a folded copy without pruning also round-trips
    f = fold_batchnorm(m)
    torch.testing.assert_close(load_model(save_model(f, tmp_path / "f.pt")).eval()(x), f.eval()(x), rtol=0, atol=0)
