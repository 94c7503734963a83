"""paper_repro._base: the protocol and caption records, the published-number columns, the JSON/CSV outputs."""

from __future__ import annotations

import json
import math

import pytest

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro._base import (
    Caption,
    PaperNumber,
    Protocol,
    finish_figure,
    se_bands,
    with_paper,
    write_outputs,
)
from prunebound.plotting import CAPTION_GID, legend_overlaps, new_figure, read_csv


def test_protocol_text_and_validation():
    assert Protocol().text() == "no retraining"
    p = Protocol(3, 0.01)
    assert p.text() == "retrained 3 epochs at lr 0.01 (mask fixed)"
    assert Protocol(1, 0.1, note="same for all").text() == "retrained 1 epoch at lr 0.1 (mask fixed); same for all"
    assert p.to_dict() == {"retrain_epochs": 3, "retrain_lr": 0.01, "note": "", "text": p.text()}
    with pytest.raises(InvalidParameterError, match="retrain_lr"):
        Protocol(2)
    with pytest.raises(InvalidParameterError, match="retrain_epochs"):
        Protocol(-1)


def test_caption_states_every_field():
    c = Caption(model="MLP 64-64-10", data="digits", n=1348, n_test=449, seeds=5, bands=se_bands(5), delta=0.05,
                protocols=(Protocol(), Protocol(2, 0.01)), extra="One more thing.")
    t = c.text()
    for part in ("Model: MLP 64-64-10", "digits (n = 1348 train, 449 test)", "δ = 0.05", "5 seeds",
                 "mean ± standard error over 5 seeds", "no retraining | retrained 2 epochs at lr 0.01",
                 "One more thing."):
        assert part in t, part
    d = c.to_dict()
    assert d["n"] == 1348 and d["delta"] == 0.05 and d["seeds"] == 5 and d["text"] == t
    assert [p["retrain_epochs"] for p in d["protocols"]] == [0, 2]
    one = Caption(model="m", data="d", n="3 points", n_label="grid", seeds=1).text()
    assert "1 seed." in one and "grid = 3 points" in one and "δ" not in one and "bands" not in one


def test_with_paper_fills_three_columns_or_leaves_them_empty():
    rows = [{"method": "a", "x": 1.0}, {"method": "b", "x": 2.0}]
    pn = PaperNumber(21.0, "x", "Some et al. 2020, Table 1", "other data")
    out = with_paper(rows, lambda r: pn if r["method"] == "b" else None)
    assert out[0] == {"method": "a", "x": 1.0, "paper": None, "paper_quantity": None, "paper_source": None}
    assert out[1]["paper"] == 21.0 and out[1]["paper_quantity"] == "x"
    assert out[1]["paper_source"] == "Some et al. 2020, Table 1 (other data)"
    assert rows[0] == {"method": "a", "x": 1.0}  # inputs untouched


def test_write_outputs_json_holds_caption_protocol_and_rows(tmp_path):
    fig, ax = new_figure()
    ax.plot([0, 1, 2], [0.0, 0.5, 1.0], marker="o", label="ours")
    ax.legend(loc="upper left")  # covers the first point: finish_figure must move it
    cap = Caption(model="m", data="d", n=10, seeds=5, bands=se_bands(5), protocols=(Protocol(),))
    finish_figure(fig, cap)
    assert legend_overlaps(fig) == []
    assert [t.get_text().replace("\n", " ") for t in fig.texts if t.get_gid() == CAPTION_GID] == [cap.text()]
    rows = [{"k": 1, "v": 0.5}, {"k": 2, "v": math.nan}]
    paths = write_outputs(fig, rows, tmp_path, "exp", caption=cap)
    assert sorted(p.name for p in paths) == ["exp.csv", "exp.json", "exp.pdf", "exp.png"]
    js = json.loads((tmp_path / "exp.json").read_text())
    assert js["experiment"] == "exp" and js["caption"] == json.loads(json.dumps(cap.to_dict()))
    assert js["protocol"] == [Protocol().to_dict()]
    assert js["columns"] == ["k", "v", "paper", "paper_quantity", "paper_source"]
    assert js["rows"][1]["v"] is None and js["rows"][0]["paper"] is None  # strict JSON; empty paper cells
    csv = read_csv(tmp_path / "exp.csv")
    assert list(csv[0]) == js["columns"] and math.isnan(csv[1]["v"])
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
