"""IMP: survivors reset to the *same* init (or the rewound theta_k), nested masks, ticket vs random
re-init."""

import os

import pytest
import torch

from prunebound.network import masks_of, mlp
from prunebound.pruning import lottery
from prunebound.train import fit


def test_survivors_reset_to_init(train_data):
    m = mlp(10, [32, 16], 3, seed=7)
    rep = lottery(m, train_data, sparsity=0.8, rounds=2, epochs=2, train_ticket=False)
    mk = masks_of(rep.module)
    for i in (0, 2, 4):
        p = str(i)
        assert torch.equal(rep.module[i].weight, m[i].weight.detach() * mk[p])
        assert torch.equal(rep.module[i].bias, m[i].bias)
        assert abs(int((mk[p] == 0).sum()) - 0.8 * mk[p].numel()) <= 1
    assert rep.retrained is None


def test_mask_is_magnitude_of_trained_weights(train_data):
    m = mlp(10, [32, 16], 3, seed=7)
    rep = lottery(m, train_data, sparsity=0.5, rounds=1, epochs=2, train_ticket=False)
    trained = mlp(10, [32, 16], 3, seed=7)
    fit(trained, train_data, epochs=2, lr=0.01, batch_size=64, seed=1)  # round 1 uses seed + 1
    mk = masks_of(rep.module)
    for i in (0, 2, 4):
        w = trained[i].weight.detach().abs()
        k = mk[str(i)]
        assert w[k == 0].max() <= w[k == 1].min()


def test_late_rewinding_equals_theta_k(train_data):
    k = 5
    m = mlp(10, [32, 16], 3, seed=7)
    rep = lottery(m, train_data, sparsity=0.5, rounds=1, epochs=1, rewind_steps=k, train_ticket=False)
    # independent route: stop an identical training run after k steps
    ref = mlp(10, [32, 16], 3, seed=7)

    class Stop(Exception):
        pass

    steps = [0]

    def after(_):
        steps[0] += 1
        if steps[0] == k:
            raise Stop

    with pytest.raises(Stop):
        fit(ref, train_data, epochs=1, lr=0.01, batch_size=64, seed=1, after_step=after)
    mk = masks_of(rep.module)
    for i in (0, 2, 4):
        assert torch.equal(rep.module[i].weight, ref[i].weight.detach() * mk[str(i)])
        assert not torch.equal(ref[i].weight, m[i].weight)


def test_curve_reported(train_data, test_data):
    m = mlp(10, [32, 16], 3, seed=7)
    rep = lottery(m, train_data, sparsity=0.75, rounds=2, epochs=1, test_data=test_data.subset(slice(0, 300)))
    curve = rep.info["curve"]
    assert [c["round"] for c in curve] == [1, 2]
    assert curve[-1]["sparsity"] == 0.75
    assert all(0 <= c["ticket_test_error"] <= 1 and 0 <= c["random_reinit_test_error"] <= 1 for c in curve)


@pytest.mark.slow
@pytest.mark.statistical
def test_ticket_beats_random_reinit():
    """Frankle & Carbin's control on digits: at 90% sparsity the winning ticket trains better than the same
    mask with a random re-initialisation (mean over seeds, difference larger than the seed spread)."""
    from prunebound.data import digits

    s = digits(seed=0)
    seeds = range(5) if os.environ.get("PRUNEBOUND_FULL") else range(3)
    t_err, r_err = [], []
    for seed in seeds:
        m = mlp(64, [100, 50], 10, seed=seed)
        rep = lottery(m, s.train, sparsity=0.95, rounds=3, epochs=3, lr=0.05, seed=seed, test_data=s.test)
        t_err.append(rep.info["curve"][-1]["ticket_test_error"])
        r_err.append(rep.info["curve"][-1]["random_reinit_test_error"])
    t, r = torch.tensor(t_err), torch.tensor(r_err)
    spread = float(torch.maximum(t.std(), r.std()))
    assert float(r.mean() - t.mean()) > spread, (t_err, r_err)


def test_rewind_beyond_training_rejected(train_data):
    from prunebound.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="rewind_steps"):
        lottery(mlp(10, [8], 3, seed=0), train_data, sparsity=0.5, rounds=1, epochs=1, rewind_steps=10_000)
