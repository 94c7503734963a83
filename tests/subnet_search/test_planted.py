import torch

from prunebound.network import Network
from prunebound.subnet_search.planted import mask_overlap, plant_ticket, planted_benchmark


def test_planted_ticket_reproduces_target():
    task = plant_ticket(6, [5, 4], 3, width_factor=3, target_density=0.7, n_train=200, n_test=300, seed=3)
    x = torch.randn(500, 6)
    with torch.no_grad():
        torch.testing.assert_close(task.ticket()(x), task.target(x), rtol=1e-5, atol=1e-6)
    net = Network.from_module(task.random_net)
    assert [ly.fan_out for ly in net.layers] == [15, 12, 3]
    tn = Network.from_module(task.target)
    assert task.keep == tuple(int((ly.weight != 0).sum()) for ly in tn.layers)
    # the labels are the target's argmax
    with torch.no_grad():
        assert torch.equal(task.target(task.data.test.x).argmax(1), task.data.test.y)


def test_mask_overlap():
    p = [torch.tensor([[1.0, 0.0], [1.0, 1.0]])]
    assert mask_overlap(p, p) == (1.0, 1.0)
    f = [torch.tensor([[1.0, 1.0], [0.0, 0.0]])]
    assert mask_overlap(f, p) == (1 / 3, 1 / 3)


def test_planted_benchmark_edge_popup_beats_random():
    task = plant_ticket(10, [16], 4, width_factor=4, target_density=0.5, n_train=2000, n_test=2000, seed=0)
    r = planted_benchmark(task, epochs=10, seed=0)
    assert r.overlap["planted"][-1] == 1.0
    assert r.test_error["planted"] == 0.0
    assert r.test_loss["edge_popup"] < r.test_loss["random"]
    assert r.test_error["edge_popup"] < r.test_error["random"]
    assert r.overlap["edge_popup"][-1] > r.overlap["random"][-1]
