"""Shared checks for the paper_repro experiment tests: run a quick preset once per test module."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from prunebound.paper_repro import get_experiment, run_experiment
from prunebound.plotting import CAPTION_GID, legend_overlaps, read_csv
from prunebound.sweep import read_results, trial_key


def _same(a, b) -> bool:
    """A JSON cell equals a CSV cell; JSON writes non-finite floats as null, the CSV as nan/inf."""
    if a is None and isinstance(b, float):
        return not math.isfinite(b)
    return a == b


class QuickRun:
    """The quick preset of one experiment, run once into a temporary folder, with generic output checks."""

    def __init__(self, name: str, out_dir: Path) -> None:
        torch.set_num_threads(1)
        self.name = name
        self.mod = get_experiment(name)
        self.config = self.mod.Config.quick()
        self.out_dir = out_dir
        self.info = run_experiment(name, "quick", out_dir, progress=False)
        self.results = read_results(out_dir / "results.jsonl")
        self.rows = read_csv(out_dir / f"{name}.csv")
        self.json = json.loads((out_dir / f"{name}.json").read_text())

    def check_files(self) -> None:
        files = [Path(p) for p in self.info["files"]]
        want = sorted(f"{self.name}.{e}" for e in ("pdf", "png", "csv", "json"))
        assert sorted(p.name for p in files) == want
        d = {p.suffix: p for p in files}
        pdf = d[".pdf"].read_bytes()
        assert pdf.startswith(b"%PDF")
        assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType (Type 42) fonts embedded
        assert b"/Subtype /Image" not in pdf  # vector curves
        import matplotlib.image as mpimg

        img = mpimg.imread(d[".png"])
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05  # not a blank image
        js = self.json
        assert js["experiment"] == self.name
        assert len(js["rows"]) == len(self.rows) > 0
        for a, b in zip(js["rows"], self.rows):  # the JSON and CSV tables hold the same cells
            assert list(a) == list(b)
            for k in a:
                assert _same(a[k], b[k]), (k, a[k], b[k])
        cap = js["caption"]
        assert {"model", "data", "n", "seeds", "bands", "delta", "protocols", "text"} <= set(cap)
        assert js["protocol"] == cap["protocols"]
        assert {"paper", "paper_quantity", "paper_source"} <= set(js["columns"])  # published-number columns
        for r in js["rows"]:
            assert (r["paper"] is None) == (r["paper_source"] is None) == (r["paper_quantity"] is None)
            if r["paper"] is not None:
                assert r["paper_quantity"] in r  # the column of ours it compares with
        cfg = json.loads((self.out_dir / "config.json").read_text())
        assert cfg["experiment"] == self.name

    def check_results_complete(self) -> None:
        trials = self.mod.trials(self.config)
        assert self.info["n_trials"] == len(trials) == len(self.results)
        assert {r["key"] for r in self.results} == {trial_key(t) for t in trials}

    def check_resume_runs_nothing(self, monkeypatch) -> None:
        def boom(t):  # any recomputation would fail
            raise AssertionError("a finished trial was run again")

        monkeypatch.setattr(self.mod, "run_trial", boom)
        again = self.mod.run(self.config, self.out_dir, progress=False)
        assert [r["result"] for r in again] == [r["result"] for r in self.results]

    def figure(self):
        return self.mod.figure(self.results)

    def check_caption(self, *, n, seeds: int, delta: float | None = None, bands: bool = True) -> str:
        """The figure's caption (a text artist) and the JSON's state ``n``, the seeds, δ where a bound is
        drawn, and what the bands are."""
        fig = self.figure()
        caps = [t.get_text().replace("\n", " ") for t in fig.texts if t.get_gid() == CAPTION_GID]
        assert len(caps) == 1, "the figure has no caption"
        text = caps[0]
        cap = self.json["caption"]
        assert cap["text"].split() == text.split()
        assert f"{cap['n_label']} = {n}" in text and cap["n"] == n
        assert f"{seeds} seed" in text and cap["seeds"] == seeds
        if delta is not None:
            assert f"δ = {delta:g}" in text and cap["delta"] == delta
        else:
            assert "δ" not in text and cap["delta"] is None
        if bands:
            assert cap["bands"] and f"over {seeds}" in cap["bands"] and cap["bands"] in text
        assert cap["model"] in text
        return text

    def check_legends(self) -> None:
        """No legend box covers a plotted point (display coordinates, from the artists)."""
        fig = self.figure()
        assert any(ax.get_legend() for ax in fig.axes) or fig.legends
        assert legend_overlaps(fig) == []


@pytest.fixture(scope="module")
def quick_run(request, tmp_path_factory):
    name = request.module.EXPERIMENT
    return QuickRun(name, tmp_path_factory.mktemp(name))
