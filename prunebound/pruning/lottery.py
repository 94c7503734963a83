"""Lottery tickets by iterative magnitude pruning (Frankle & Carbin 2019, "The lottery ticket hypothesis:
finding sparse, trainable neural networks", ICLR; late rewinding: Frankle, Dziugaite, Roy & Carbin 2019/2020,
"Stabilizing the lottery ticket hypothesis" / "Linear mode connectivity and the lottery ticket hypothesis").

Algorithm (F&C Sec. 1, "Identifying winning tickets", iterative pruning):

1. randomly initialise ``f(x; theta_0)`` (the given module *is* ``theta_0``);
2. train for ``epochs`` epochs, reaching ``theta_j``;
3. prune ``p``% of the surviving weights with the smallest ``|theta_j|`` (per layer, or globally), giving
  mask ``m``;
4. reset the survivors to their values in ``theta_0`` -- the *same* initialisation, biases included -- i.e.
   ``f(x; m * theta_0)`` -- or, with late rewinding (``rewind_steps = k > 0``), to ``theta_k``, the weights
   after ``k`` optimiser steps of the first training run; repeat from 2 for ``rounds`` rounds.

``p`` is chosen so that ``rounds`` rounds end exactly at ``sparsity``: round ``r`` prunes to
``1 - (1 - sparsity)^(r / rounds)``, i.e. ``p = 1 - (1 - sparsity)^(1 / rounds)`` of the survivors per round
(F&C use a fixed ``p`` and report the sparsity reached; F&C prune the output layer at half the rate -- not
modelled).

The winning-ticket curve: after every round, the ticket ``m * theta_0`` (or ``theta_k``) is trained for
``epochs`` epochs, and so is the random re-initialisation control (same mask, fresh weights from ``seed + 1000
+ r``, F&C Sec. 2); both test errors are reported (``info["curve"]``) when ``test_data`` is given. The
returned module is the final ticket, trained for ``epochs`` epochs if ``train_ticket`` (else the reset,
untrained ticket).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, check_positive_int
from prunebound.network import Network, count_parameters, load_vector, to_vector
from prunebound.pruning._common import (
    check_scope,
    check_sparsity,
    current_masks,
    make_report,
    masked_scores,
    prepare,
    require_data,
    set_masks,
    smallest_k_masks,
)
from prunebound.pruning.report import PruneResult

__all__ = ["lottery"]


def _train(
    net: Network,
    data: Dataset,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int | None,
    optimizer: str,
    snapshot_step: int = 0,
) -> torch.Tensor | None:
    """Train in place; return the flat weights after ``snapshot_step`` optimiser steps (if > 0)."""
    from prunebound.train import fit

    snap: list[torch.Tensor] = []
    steps = [0]

    def after(m: nn.Module) -> None:
        steps[0] += 1
        if steps[0] == snapshot_step:
            snap.append(to_vector(net).clone())

    fit(
        net.module,
        data,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        optimizer=optimizer,
        after_step=after if snapshot_step > 0 else None,
    )
    return snap[0] if snap else None


def _reset(net: Network, vector: torch.Tensor) -> None:
    """Write ``vector`` into ``weight_orig`` / bias: survivors get those values, masked ones stay zero."""
    load_vector(net, vector)


def lottery(
    module: nn.Module,
    data: Dataset | None = None,
    *,
    sparsity: float = 0.9,
    seed: int | None = 0,
    rounds: int = 3,
    epochs: int = 5,
    lr: float = 0.01,
    batch_size: int = 64,
    optimizer: str = "sgd",
    scope: str = "layer",
    rewind_steps: int = 0,
    train_ticket: bool = True,
    test_data: Dataset | None = None,
    compare_random: bool = True,
) -> PruneResult:
    """Iterative magnitude pruning with resetting to ``theta_0`` (or late rewinding to ``theta_k``)."""
    data = require_data(data, "lottery (Frankle & Carbin 2019)")
    net = prepare(module)
    sparsity = check_sparsity(sparsity)
    check_scope(scope)
    check_positive_int("rounds", rounds)
    check_positive_int("epochs", epochs, minimum=0)
    check_positive_int("rewind_steps", rewind_steps, minimum=0)
    theta0 = to_vector(net).clone()
    rewind_to = theta0
    curve: list[dict] = []
    from prunebound.train import evaluate

    for r in range(1, rounds + 1):
        snap = _train(
            net,
            data,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=None if seed is None else seed + r,
            optimizer=optimizer,
            snapshot_step=rewind_steps if r == 1 else 0,
        )
        if r == 1 and rewind_steps > 0:
            if snap is None:
                raise InvalidParameterError(
                    f"rewind_steps={rewind_steps} exceeds the {epochs} epoch(s) x "
                    f"{-(-len(data) // batch_size)} steps of the first training run"
                )
            rewind_to = snap
        target = sparsity if r == rounds else 1.0 - (1.0 - sparsity) ** (r / rounds)
        set_masks(
            net,
            smallest_k_masks(
                masked_scores(net, [ly.weight.detach().abs() for ly in net.layers]), target, scope
            ),
        )
        _reset(net, rewind_to)
        if test_data is not None and (r < rounds or train_ticket):
            row = {"round": r, "sparsity": target}
            ticket = Network.from_module(copy.deepcopy(net.module))
            _train(ticket, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, optimizer=optimizer)
            row["ticket_test_error"] = evaluate(ticket.module, test_data).error
            if compare_random:
                ctrl = Network.from_module(copy.deepcopy(net.module))
                g = torch.Generator().manual_seed((0 if seed is None else int(seed)) + 1000 + r)
                fresh = torch.cat([_fresh_like(ly, g) for ly in ctrl.layers])
                _reset(ctrl, fresh)
                _train(
                    ctrl, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, optimizer=optimizer
                )
                row["random_reinit_test_error"] = evaluate(ctrl.module, test_data).error
            curve.append(row)
    retrained = None
    if train_ticket and epochs > 0:
        _train(net, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, optimizer=optimizer)
        retrained = (
            f"final ticket (survivors reset to "
            f"{'theta_0' if rewind_steps == 0 else f'theta_{rewind_steps}'}) trained {epochs} epochs"
        )
    info = {
        "curve": curve,
        "rounds": rounds,
        "per_round_rate": 1.0 - (1.0 - sparsity) ** (1.0 / rounds),
        "n_params": count_parameters(net),
        "final_masks_nonzero": int(sum(m.sum() for m in current_masks(net))),
    }
    return make_report(
        net,
        "lottery",
        sparsity,
        retrained=retrained,
        params=dict(
            sparsity=sparsity,
            seed=seed,
            rounds=rounds,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,
            scope=scope,
            rewind_steps=rewind_steps,
            train_ticket=train_ticket,
            compare_random=compare_random,
        ),
        info=info,
    )


def _fresh_like(ly, g: torch.Generator) -> torch.Tensor:
    """PyTorch's default init for a layer (Kaiming-uniform weight, uniform bias), drawn from ``g``,
    flattened."""
    import math

    bound = 1.0 / math.sqrt(ly.fan_in)  # kaiming_uniform(a=sqrt(5)) bound == 1/sqrt(fan_in)
    w = (torch.rand(ly.weight.shape, generator=g) * 2 - 1) * bound
    parts = [w.reshape(-1)]
    if ly.bias is not None:
        parts.append(((torch.rand(ly.bias.shape, generator=g) * 2 - 1) * bound).reshape(-1))
    return torch.cat(parts).to(ly.weight.dtype)
