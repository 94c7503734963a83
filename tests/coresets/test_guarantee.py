import json

from prunebound.coresets import Guarantee, prune
from prunebound.network import mlp


def test_to_dict_is_json_and_complete():
    import torch

    g = prune(mlp(4, [20], 2, seed=0), torch.rand(50, 4), method="sipp", eps=0.5, delta=0.1).guarantee
    d = json.loads(json.dumps(g.to_dict()))
    assert d["eps"] == 0.5 and d["delta"] == 0.1 and len(d["eps_per_layer"]) == 2
    assert d["kept"] <= d["total"] and 0 < d["keep_ratio"] <= 1
    assert isinstance(g, Guarantee)
    nan = Guarantee("x", None, 0.1, ("a",), (float("nan"),), (0.1,), (1,), (1.0,), 1.0, 1, 1)
    assert json.loads(json.dumps(nan.to_dict()))["eps_per_layer"] == ["nan"]
