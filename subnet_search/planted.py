"""Planted-ticket benchmark (idea of Fischer & Burkholz 2022, "Plant 'n' seek: can you find the winning
ticket?"): hide a known sparse target network inside a wider random network, label data with the target, then
ask a search method to find a subnetwork with the target's number of weights per layer, and measure

* the loss of the found subnetwork (test cross-entropy and 0-1 error) -- a ticket with the planted mask has
the
  target's exact outputs, hence the target's own (Bayes-optimal for these labels) loss;
* the mask overlap ``|found ∩ planted| / |planted|`` per layer and in total.

Construction (:func:`plant_ticket`): target ``d_0 - d_1 - ... - d_l`` bias-free ReLU MLP, optionally sparse
(``target_density``); the random network has widths ``d_0, m d_1, ..., m d_{l-1}, d_l`` with i.i.d.
``Uniform[-1, 1] / sqrt(fan_in)`` weights; for each hidden layer ``d_i`` of its units are chosen at random to
host the target's units, and the weights between hosts are overwritten by the target's weights. Labels are the
target's argmax on Gaussian inputs. Deviation from the paper: no biases, uniform (not Kaiming-normal) weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from prunebound.data import Dataset, Split
from prunebound.errors import InvalidParameterError, check_positive_int, check_probability
from prunebound.network import Network, apply_masks, masks_of, mlp
from prunebound.subnet_search.search import edge_popup, mask_loss, random_mask

__all__ = ["PlantedTask", "plant_ticket", "PlantedResult", "mask_overlap", "planted_benchmark"]


@dataclass(frozen=True)
class PlantedTask:
    """``random_net``: the unpruned random network hosting the target; ``planted_masks``: 0/1 mask per layer
    (the ticket); ``target``: the (masked) target; ``data``: train/test split labelled by the target."""

    random_net: nn.Module
    planted_masks: tuple[torch.Tensor, ...]
    target: nn.Module
    data: Split
    hosts: tuple[tuple[int, ...], ...]
    width_factor: int
    seed: int | None

    @property
    def keep(self) -> tuple[int, ...]:
        return tuple(int(m.sum()) for m in self.planted_masks)

    def ticket(self) -> nn.Module:
        """A copy of the random network pruned by the planted mask (equals the target on every input)."""
        import copy

        return apply_masks(copy.deepcopy(self.random_net), list(self.planted_masks))

    def to_dict(self) -> dict:
        return {"keep": list(self.keep), "hosts": [list(h) for h in self.hosts],
                "width_factor": self.width_factor, "seed": self.seed, "n_train": len(self.data.train),
                "n_test": len(self.data.test)}


def plant_ticket(d_in: int, widths: Sequence[int], n_classes: int, *, width_factor: int = 4,
                 target_density: float = 0.5, n_train: int = 2000, n_test: int = 2000,
                 seed: int | None = 0) -> PlantedTask:
    """Build a planted-ticket task (module docstring)."""
    width_factor = check_positive_int("width_factor", width_factor)
    target_density = check_probability("target_density", target_density, open_right=False)
    n_train = check_positive_int("n_train", n_train)
    n_test = check_positive_int("n_test", n_test)
    s = 0 if seed is None else int(seed)
    g = torch.Generator().manual_seed(s)
    target = mlp(d_in, list(widths), n_classes, bias=False, seed=s)
    tnet = Network.from_module(target)
    tmasks = [(torch.rand(ly.weight.shape, generator=g) < target_density).float() for ly in tnet.layers]
    apply_masks(target, tmasks)
    big_w = [w * width_factor for w in widths]
    big = mlp(d_in, big_w, n_classes, bias=False, seed=s + 1)
    bnet = Network.from_module(big)
    sizes_t = [d_in, *widths, n_classes]
    sizes_b = [d_in, *big_w, n_classes]
    hosts = [torch.arange(d_in)]
    for t, b in zip(sizes_t[1:-1], sizes_b[1:-1]):
        hosts.append(torch.sort(torch.randperm(b, generator=g)[:t]).values)
    hosts.append(torch.arange(n_classes))
    planted = []
    with torch.no_grad():
        for i, (lb, lt) in enumerate(zip(bnet.layers, tnet.layers)):
            w = (torch.rand(lb.weight.shape, generator=g) * 2 - 1) / lb.fan_in ** 0.5
            rows, cols = hosts[i + 1], hosts[i]
            sub = w[rows[:, None], cols[None, :]]
            # host edges kept by the target's mask carry its weights; the others stay random (never exactly 0)
            w[rows[:, None], cols[None, :]] = torch.where(tmasks[i] > 0, lt.weight.detach(), sub)
            lb.module.weight.copy_(w)
            mk = torch.zeros_like(w)
            mk[rows[:, None], cols[None, :]] = tmasks[i]
            planted.append(mk)
    x = torch.randn(n_train + n_test, d_in, generator=g)
    with torch.no_grad():
        y = target(x).argmax(1)
    data = Split(Dataset(x[:n_train], y[:n_train], "planted_train", n_classes),
                 Dataset(x[n_train:], y[n_train:], "planted_test", n_classes))
    return PlantedTask(big, tuple(planted), target, data, tuple(tuple(h.tolist()) for h in hosts[1:-1]),
                       width_factor, seed)


def mask_overlap(found: Sequence[torch.Tensor], planted: Sequence[torch.Tensor]) -> tuple[float, ...]:
    """Per layer ``|found ∩ planted| / |planted|`` and, last, the total over layers."""
    if len(found) != len(planted):
        raise InvalidParameterError(f"found has {len(found)} masks, planted has {len(planted)}")
    per, inter, tot = [], 0.0, 0.0
    for f, p in zip(found, planted):
        i = float(((f != 0) & (p != 0)).sum())
        n = float((p != 0).sum())
        per.append(i / n if n else 1.0)
        inter += i
        tot += n
    return (*per, inter / tot if tot else 1.0)


@dataclass(frozen=True)
class PlantedResult:
    """Test loss / error / overlap of each method (``"planted"``, ``"edge_popup"``, ``"random"``)."""

    test_loss: dict
    test_error: dict
    overlap: dict
    keep: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"test_loss": dict(self.test_loss), "test_error": dict(self.test_error),
                "overlap": {k: list(v) for k, v in self.overlap.items()}, "keep": list(self.keep)}


def planted_benchmark(task: PlantedTask, *, epochs: int = 20, lr: float = 0.1, seed: int | None = 0
                      ) -> PlantedResult:
    """Run edge-popup (same per-layer weight budget as the planted ticket) and a random mask; compare with the
    planted ticket itself."""
    from prunebound.train import evaluate

    keep = task.keep
    found = {
        "planted": task.ticket(),
        "edge_popup": edge_popup(task.random_net, task.data.train, keep=keep, epochs=epochs, lr=lr,
                                 seed=seed).module,
        "random": random_mask(task.random_net, keep=keep, seed=seed),
    }
    loss, err, ov = {}, {}, {}
    for name, m in found.items():
        loss[name] = mask_loss(m, task.data.test)
        err[name] = evaluate(m, task.data.test).error
        ov[name] = mask_overlap(list(masks_of(m).values()), task.planted_masks)
    return PlantedResult(loss, err, ov, keep)
