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
