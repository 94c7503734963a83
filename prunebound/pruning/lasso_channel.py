"""Channel pruning by LASSO selection and least-squares reconstruction (He, Zhang & Sun 2017, "Channel pruning
for accelerating very deep neural networks", ICCV).

For a layer ``i`` whose ``n`` output channels (neurons) feed the next layer ``W`` (``(n_out, fan_in)``
matrix), let ``X_c`` be the next layer's input patches belonging to channel ``c`` and ``Y`` the *original*
network's next-layer response (bias removed), on ``M`` sampled rows (examples x spatial positions). He et al.
(eq. 1-3)
solve::

    min_{beta, W'}  1/(2M) || Y - sum_c beta_c X_c W_c'^T ||_F^2     s.t.  ||beta||_0 <= c',

alternating two steps: (i) channel selection, the LASSO in ``beta`` with ``W`` fixed (eq. 3)::

    beta = argmin 1/(2M) || Y - sum_c beta_c Z_c ||_F^2 + lam ||beta||_1,   Z_c = X_c W_c^T,

with ``lam`` increased until at most ``c'`` coefficients are non-zero; (ii) reconstruction: ``W'`` by linear
least squares ``min ||Y - X_S W'^T||_F^2`` over the kept channels ``S``. Layers are processed first to last;
``X`` comes from the already-pruned network and ``Y`` from the original one (their "sequential" strategy,
Sec. 3.3), so earlier errors are compensated.

Implementation: the LASSO is solved by cyclic coordinate descent on the Gram matrix
``G_cc' = <Z_c, Z_c'>`` (assembled without forming the ``Z_c``), ``lam`` by bisection so that exactly
``c' = n - round(sparsity * n)`` channels survive (if the path jumps over ``c'``, the remaining places go to
the largest ``|beta|`` just below). Structured sparsity: ``sparsity`` is the fraction of channels/neurons
removed per hidden ReLU layer. Deviation: He et al. also normalise ``||W_c||_F = 1`` and alternate (i)/(ii)
several times; we run (i) once then (ii), and keep the next layer's bias fixed.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_positive_int
from prunebound.network import Network, refresh_masked_weights
from prunebound.pruning._common import (
    check_sparsity,
    current_masks,
    hidden_layers,
    make_report,
    n_prune,
    prepare,
    removed_units,
    require_data,
    set_masks,
    unit_columns,
    unit_fraction,
    unit_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["lasso_channel", "lasso_cd", "layer_patches"]


def layer_patches(layer, x_in: torch.Tensor) -> torch.Tensor:
    """Rows of inputs such that ``layer``'s pre-activation (without bias) is ``patches @ W.T`` (float64).

    Linear: ``x_in`` flattened; Conv1d/Conv2d: im2col patches (channel-major columns, like
    ``weight.reshape``).
    """
    m = layer.module
    x = x_in.double()
    if layer.kind == "linear":
        return x.reshape(x.shape[0], -1)
    if layer.kind == "conv1d":
        x = x.unsqueeze(2)
        k, s, p, d = (1, m.kernel_size[0]), (1, m.stride[0]), (0, m.padding[0]), (1, m.dilation[0])
    elif layer.kind == "conv2d":
        k, s, p, d = m.kernel_size, m.stride, m.padding, m.dilation
    else:  # pragma: no cover
        raise InvalidParameterError(f"unsupported layer kind {layer.kind!r}")
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (N, fan_in, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _targets(layer, preact: torch.Tensor) -> torch.Tensor:
    """Pre-activation rows matching :func:`layer_patches`, bias removed: ``(rows, n_out)``."""
    y = preact.double()
    if layer.bias is not None:
        shape = (1, -1) + (1,) * (y.dim() - 2)
        y = y - layer.bias.detach().double().reshape(shape)
    if layer.kind == "linear":
        return y.reshape(y.shape[0], -1)
    return y.reshape(y.shape[0], y.shape[1], -1).transpose(1, 2).reshape(-1, y.shape[1])


def lasso_cd(
    gram: np.ndarray,
    q: np.ndarray,
    lam: float,
    m: int,
    *,
    beta0: np.ndarray | None = None,
    max_sweeps: int = 500,
    tol: float = 1e-10,
) -> np.ndarray:
    """Cyclic coordinate descent for ``min_b 1/(2m) (b^T G b - 2 q^T b + const) + lam ||b||_1``.

    Coordinate update: ``b_c = S(q_c - sum_{c' != c} G_cc' b_c', m lam) / G_cc`` with the soft-threshold
    ``S(z, t) = sign(z) max(|z| - t, 0)``; coordinates with ``G_cc = 0`` stay zero.
    """
    n = len(q)
    b = np.zeros(n) if beta0 is None else beta0.astype(float).copy()
    diag = np.diag(gram).copy()
    r = q - gram @ b  # q - G b
    for _ in range(max_sweeps):
        delta = 0.0
        for c in range(n):
            if diag[c] <= 0:
                continue
            z = r[c] + diag[c] * b[c]
            new = np.sign(z) * max(abs(z) - m * lam, 0.0) / diag[c]
            if new != b[c]:
                r -= gram[:, c] * (new - b[c])
                delta = max(delta, abs(new - b[c]))
                b[c] = new
        if delta <= tol * (1 + np.abs(b).max()):
            break
    return b


def _select(
    gram: np.ndarray, q: np.ndarray, m: int, keep: int, alive: np.ndarray
) -> tuple[np.ndarray, float]:
    """Bisection on ``lam`` so that ``keep`` channels have non-zero ``beta``; returns (kept indices, lam)."""
    idx = np.nonzero(alive)[0]
    g, qq = gram[np.ix_(idx, idx)], q[idx]
    if keep >= len(idx):
        return idx, 0.0
    if keep == 0:
        return idx[:0], float("inf")
    lo, hi = 0.0, float(np.abs(qq).max()) / m * 1.0001  # at hi every beta is 0
    b_lo = lasso_cd(g, qq, lo, m)
    b_hi = np.zeros(len(idx))
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        b = lasso_cd(g, qq, mid, m, beta0=b_lo)
        nnz = int((b != 0).sum())
        if nnz == keep:
            return idx[np.nonzero(b)[0]], mid
        if nnz > keep:
            lo, b_lo = mid, b
        else:
            hi, b_hi = mid, b
    chosen = list(np.nonzero(b_hi)[0])
    order = [c for c in np.argsort(-np.abs(b_lo), kind="stable") if c not in chosen]
    chosen += order[: keep - len(chosen)]
    return idx[np.sort(np.array(chosen, dtype=int))], hi


def lasso_channel(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.5,
    unit: str = "neuron",
    seed: int | None = 0,
    n_samples: int = 1000,
    reconstruct: bool = True,
) -> PruneResult:
    """He et al. (2017) channel pruning on every hidden ReLU layer; ``n_samples`` random training inputs."""
    data = require_data(data, "lasso_channel (He et al. 2017)")
    net = prepare(module)
    requested = check_sparsity(sparsity)
    sparsity = unit_fraction(net, requested, unit)  # fraction of units removed per hidden layer
    check_positive_int("n_samples", n_samples)
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    x = data.x[torch.randperm(len(data), generator=g)[: min(n_samples, len(data))]]
    original = Network.from_module(copy.deepcopy(net.module))
    orig_trace = original.trace(x)
    details = {}
    for li in hidden_layers(net):
        ly, nxt = net.layers[li], net.layers[li + 1]
        if ly.activation != "relu":
            continue
        n = ly.fan_out
        alive = (current_masks(net)[li].reshape(n, -1).sum(1) > 0).numpy()
        keep = n - n_prune(n, sparsity)
        keep = min(keep, int(alive.sum()))
        tr = net.trace(x)
        p = layer_patches(nxt, tr.inputs[li + 1])  # (M, fan_in) from the pruned network
        y = _targets(nxt, orig_trace.preacts[li + 1])  # (M, n_out) from the original network
        w = nxt.weight_matrix().detach().double()  # (n_out, fan_in)
        cols = unit_columns(net, li)
        grp = cols.shape[1]
        ptp = p.T @ p
        wtw = w.T @ w
        gram = (ptp * wtw).reshape(n, grp, n, grp).sum((1, 3)).numpy()
        q = ((p.T @ y) * w.T).sum(1).reshape(n, grp).sum(1).numpy()
        m_rows = p.shape[0] * y.shape[1]
        kept, lam = _select(gram, q, m_rows, keep, alive)
        removed = torch.tensor(sorted(set(range(n)) - set(int(c) for c in kept)), dtype=torch.long)
        if reconstruct and len(kept):
            kcols = cols[torch.as_tensor(kept, dtype=torch.long)].reshape(-1)
            sol = torch.linalg.lstsq(p[:, kcols], y, driver="gelsd").solution  # (|K|, n_out)
            target = nxt.module.weight_orig if hasattr(nxt.module, "weight_orig") else nxt.module.weight
            with torch.no_grad():
                t2 = target.data.reshape(target.shape[0], -1)
                t2[:, kcols] = sol.T.to(t2.dtype)
            refresh_masked_weights(nxt.module)
        set_masks(net, unit_masks(net, {li: removed}))
        details[ly.path] = {"lam": lam, "kept": int(len(kept)), "removed": removed.tolist()}
    return make_report(
        net,
        "lasso_channel",
        requested,
        retrained=("next-layer weights refit by least squares after each selection" if reconstruct else None),
        unit=unit,
        params=dict(sparsity=requested, unit=unit, seed=seed, n_samples=n_samples, reconstruct=reconstruct),
        info={"layers": details, "removed_units": removed_units(net)},
    )
