import pytest
import torch

from prunebound import data as D
from prunebound import network as N
from prunebound import train as T
from prunebound.errors import DataError, InvalidParameterError


def test_fit_deterministic_and_learns():
    t = D.teacher_task(d_in=5, width=16, seed=0)
    d = t.sample(400, 1)
    m1, m2 = N.mlp(5, [32], 2, seed=0), N.mlp(5, [32], 2, seed=0)
    r1 = T.fit(m1, d, epochs=15, lr=0.05, seed=3)
    r2 = T.fit(m2, d, epochs=15, lr=0.05, seed=3)
    assert torch.equal(N.to_vector(m1), N.to_vector(m2))
    assert r1.losses == r2.losses
    assert r1.losses[-1] < r1.losses[0]
    assert t.true_risk(m1, n=20_000) < 0.2


def test_evaluate_against_manual():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g)
    y = torch.randint(0, 3, (50,), generator=g)
    d = D.Dataset(x, y)
    m = N.mlp(3, [4], 3, seed=1)
    ev = T.evaluate(m, d, gamma=0.3)
    z = m(x).detach().double()
    err = float((z.argmax(1) != y).double().mean())
    ce = float(torch.nn.functional.cross_entropy(z, y))
    marg = []
    for i in range(50):
        others = [z[i, j] for j in range(3) if j != int(y[i])]
        marg.append(float(z[i, y[i]] - max(others)))
    ml = sum(mm <= 0.3 for mm in marg) / 50
    assert ev.error == pytest.approx(err)
    assert ev.cross_entropy == pytest.approx(ce, rel=1e-9)
    assert ev.margin_loss == pytest.approx(ml)
    assert ev.margin_loss >= ev.error


def test_fit_on_pruned_keeps_mask():
    m = N.mlp(5, [8], 2, seed=0)
    mk = (torch.rand(8, 5, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    N.apply_masks(m, {"0": mk})
    d = D.teacher_task(d_in=5, seed=0).sample(100, 0)
    T.fit(m, d, epochs=2)
    assert torch.all(m[0].weight[mk == 0] == 0)


def test_fit_errors():
    m = N.mlp(5, [8], 2, seed=0)
    d = D.teacher_task(d_in=6, seed=0).sample(10, 0)
    with pytest.raises(DataError, match="shape"):
        T.fit(m, d, epochs=1)
    d5 = D.teacher_task(d_in=5, seed=0).sample(10, 0)
    with pytest.raises(InvalidParameterError):
        T.fit(m, d5, optimizer="lbfgs")
    with pytest.raises(InvalidParameterError):
        T.evaluate(m, d5, gamma=-1)


def test_cosine_and_step_schedules_follow_their_formulas():
    import math

    assert T._lr_factor("cosine", 0, 10, 0, None, 0.1) == 1.0
    assert T._lr_factor("cosine", 5, 10, 0, None, 0.1) == pytest.approx(0.5)
    assert T._lr_factor("cosine", 10, 10, 0, None, 0.1) == pytest.approx(0.0, abs=1e-15)
    assert T._lr_factor("cosine", 3, 10, 0, None, 0.1) == pytest.approx(0.5 * (1 + math.cos(0.3 * math.pi)))
    assert [T._lr_factor("step", 0, 0, e, 2, 0.5) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    # end to end: the learning rate the optimiser used at the last step is the schedule's
    t = D.teacher_task(d_in=5, width=16, seed=0)
    d = t.sample(256, 1)
    seen = []
    m = N.mlp(5, [8], 2, seed=0)
    orig = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.Adam.step = spy
    try:
        r = T.fit(m, d, epochs=4, lr=0.01, batch_size=64, optimizer="adam", schedule="cosine")
    finally:
        torch.optim.Adam.step = orig
    assert len(seen) == 16 and seen[0] == pytest.approx(0.01)
    assert seen[8] == pytest.approx(0.005) and seen[-1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert r.schedule == "cosine" and r.device == "cpu"


def test_fit_rejects_bad_schedule_and_device_and_restores_threads():
    t = D.teacher_task(d_in=5, width=16, seed=0)
    d = t.sample(64, 1)
    m = N.mlp(5, [8], 2, seed=0)
    with pytest.raises(InvalidParameterError, match="schedule"):
        T.fit(m, d, epochs=1, schedule="linear")
    with pytest.raises(InvalidParameterError, match="device"):
        T.fit(m, d, epochs=1, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            T.fit(m, d, epochs=1, device="cuda")
        assert T.resolve_device("auto").type == "cpu"
    before = torch.get_num_threads()
    T.fit(m, d, epochs=1, threads=1)
    assert torch.get_num_threads() == before
    with T.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
