"""Benchmarks of prunebound.sweep, each against the obvious alternative in the same run.

* resume scan: ``read_results`` on a 10k-record JSONL file vs a bare ``json.loads`` per line (the floor);
* durability overhead: ``run_sweep`` on 200 trivial trials (one fsync-ed line each) vs a plain loop;
* parallelism: 8 trials of 0.2 s sleep on joblib ``n_jobs=2`` (warm workers) vs serial.

Run: .venv/bin/python -m pytest benchmarks/bench_sweep.py --benchmark-only -o addopts="" -p no:xdist
"""

from __future__ import annotations

import json
import time

import pytest

from prunebound.sweep import read_results, run_sweep, trial_key


def trivial(t: dict) -> dict:
    return {"y": t["x"] * 2}


def sleepy(t: dict) -> dict:
    time.sleep(0.2)
    return {"y": t["x"]}


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory):
    p = tmp_path_factory.mktemp("bench") / "r.jsonl"
    with open(p, "w") as f:
        for i in range(10_000):
            t = {"x": i, "method": "magnitude", "seed": i % 5}
            rec = {"key": trial_key(t), "trial": t, "result": {"err": [0.1] * 10}, "seconds": 0.1}
            f.write(json.dumps(rec) + "\n")
    return p


@pytest.mark.benchmark(group="resume-scan")
def test_read_results_10k(benchmark, big_jsonl):
    recs = benchmark(read_results, big_jsonl)
    assert len(recs) == 10_000


@pytest.mark.benchmark(group="resume-scan")
def test_bare_json_lines_10k(benchmark, big_jsonl):
    def bare():
        with open(big_jsonl) as f:
            return [json.loads(line) for line in f]

    assert len(benchmark(bare)) == 10_000


TRIALS = [{"x": i} for i in range(200)]


@pytest.mark.benchmark(group="durability")
def test_run_sweep_200_trivial(benchmark, tmp_path):
    counter = iter(range(10**6))

    def go():
        return run_sweep(trivial, TRIALS, tmp_path / f"s{next(counter)}.jsonl", progress=False)

    assert len(benchmark.pedantic(go, rounds=2, iterations=1)) == 200


@pytest.mark.benchmark(group="durability")
def test_plain_loop_200_trivial(benchmark):
    assert len(benchmark(lambda: [trivial(t) for t in TRIALS])) == 200


SLEEPS = [{"x": i} for i in range(8)]


@pytest.mark.benchmark(group="parallel")
def test_joblib_2_workers_8x200ms(benchmark, tmp_path):
    counter = iter(range(10**6))

    def go():
        return run_sweep(sleepy, SLEEPS, tmp_path / f"p{next(counter)}.jsonl", n_jobs=2, progress=False)

    # the warm-up round pays the loky worker start-up (each worker imports torch); the timed rounds reuse them
    assert len(benchmark.pedantic(go, rounds=2, iterations=1, warmup_rounds=1)) == 8


@pytest.mark.benchmark(group="parallel")
def test_serial_8x200ms(benchmark, tmp_path):
    counter = iter(range(10**6))

    def go():
        return run_sweep(sleepy, SLEEPS, tmp_path / f"q{next(counter)}.jsonl", n_jobs=1, progress=False)

    assert len(benchmark.pedantic(go, rounds=1, iterations=1)) == 8
