"""He et al. 2017: coordinate-descent LASSO == scikit-learn; LS reconstruction beats naive channel removal."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from prunebound.network import Network, mlp
from prunebound.pruning import lasso_cd, lasso_channel
from prunebound.pruning.lasso_channel import layer_patches


def test_coordinate_descent_matches_sklearn():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 12))
    y = z[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=200)
    for lam in (0.01, 0.1, 0.5):
        ours = lasso_cd(z.T @ z, z.T @ y, lam, 200, tol=1e-14, max_sweeps=5000)
        ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=100000).fit(z, y).coef_
        assert np.allclose(ours, ref, atol=1e-6)


def test_conv_patches_reproduce_layer(mnist1d_small):
    from prunebound.network import conv1d_small

    m = conv1d_small(channels=4, seed=0)
    net = Network.from_module(m)
    tr = net.trace(mnist1d_small.x[:20])
    ly = net.layers[1]
    p = layer_patches(ly, tr.inputs[1])
    out = (p @ ly.weight_matrix().detach().double().T).reshape(20, -1, 4).transpose(1, 2)
    assert torch.allclose(out + ly.bias.double()[None, :, None], tr.preacts[1].double(), atol=1e-5)


def _next_layer_error(module, ref, x):
    with torch.no_grad():
        h_ref = ref[2](torch.relu(ref[0](x)))
        h = module[2](torch.relu(module[0](x)))
    return float(((h - h_ref) ** 2).mean())


@pytest.mark.parametrize("sparsity", [0.25, 0.5])
def test_reconstruction_beats_naive_removal(train_data, sparsity):
    one = mlp(10, [32], 3, seed=0)
    from prunebound.train import fit

    fit(one, train_data, epochs=5, seed=0)
    x = train_data.x
    rep = lasso_channel(one, train_data, sparsity=sparsity, n_samples=400)
    naive = lasso_channel(one, train_data, sparsity=sparsity, n_samples=400, reconstruct=False)
    assert rep.info["removed_units"]["0"] == naive.info["removed_units"]["0"]
    # naive alternative 2: drop the channels with the smallest filter norms, no reconstruction
    k = round(sparsity * 32)
    norms = one[0].weight.detach().norm(dim=1)
    drop = torch.topk(norms, k, largest=False).indices
    import copy

    nm = copy.deepcopy(one)
    with torch.no_grad():
        nm[0].weight[drop] = 0
        nm[2].weight[:, drop] = 0
    e_rep, e_sel, e_norm = (
        _next_layer_error(rep.module, one, x),
        _next_layer_error(naive.module, one, x),
        _next_layer_error(nm, one, x),
    )
    assert e_rep < e_sel and e_rep < e_norm


def test_least_squares_is_optimal(train_data):
    one = mlp(10, [16], 3, seed=1)
    rep = lasso_channel(one, train_data, sparsity=0.5, n_samples=400, seed=0)
    kept = [u for u in range(16) if u not in rep.info["removed_units"]["0"]]
    g = torch.Generator().manual_seed(0)
    x = train_data.x[torch.randperm(len(train_data), generator=g)[:400]]
    with torch.no_grad():
        h = torch.relu(one[0](x)).double()[:, kept].numpy()
        y = (one[2](torch.relu(one[0](x))) - one[2].bias).double().numpy()
    w_ls = np.linalg.lstsq(h, y, rcond=None)[0].T
    got = rep.module[2].weight.detach().double().numpy()[:, kept]
    assert np.allclose(got, w_ls, atol=1e-4)
