"""Tests of prunebound.sweep: stable keys, JSONL records, resume after a kill, joblib and Dask backends."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cloudpickle
import pytest

from prunebound.errors import DataError, InvalidParameterError
from prunebound.sweep import SweepError, canonical_json, read_results, run_sweep, trial_key

# functions of this test module travel to loky/dask workers by value (it is not importable there)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def square(t: dict) -> dict:
    """Deterministic trial: a value that depends on every parameter."""
    return {"y": t["x"] ** 2 + 0.5 * t.get("b", 0), "tag": f"{t['x']}-{t.get('b', 0)}"}


def fails_on_3(t: dict) -> dict:
    if t["x"] == 3:
        raise ValueError("boom at three")
    return square(t)


TRIALS = [{"x": i, "b": i % 3} for i in range(8)]
EXPECTED = {trial_key(t): square(t) for t in TRIALS}


def results_by_key(records):
    return {r["key"]: r["result"] for r in records}


# ------------------------------------------------------------------------------------------------ keys


def test_trial_key_is_sha256_of_canonical_json_and_order_free():
    t = {"b": [1, 2.5], "a": "s", "c": {"z": 1, "y": None}}
    ref = hashlib.sha256(json.dumps(t, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert trial_key(t) == ref
    assert trial_key({"c": {"y": None, "z": 1}, "a": "s", "b": [1, 2.5]}) == ref
    assert trial_key({**t, "a": "t"}) != ref
    assert trial_key({"x": 1}) != trial_key({"x": 1.0})
    # tuples and numpy scalars serialise like lists and Python numbers
    np = pytest.importorskip("numpy")
    assert trial_key({"b": (1, 2.5)}) == trial_key({"b": [1, 2.5]})
    assert trial_key({"x": np.int64(3)}) == trial_key({"x": 3})
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_trial_key_rejects_non_dict_and_unserialisable():
    with pytest.raises(InvalidParameterError, match="dict"):
        trial_key([1, 2])
    with pytest.raises(InvalidParameterError, match="serialise"):
        trial_key({"f": object()})


# ------------------------------------------------------------------------------------------------ serial


def test_serial_sweep_writes_one_line_per_trial_and_returns_in_trial_order(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = run_sweep(square, TRIALS, path, progress=False)
    assert [r["trial"] for r in recs] == TRIALS
    assert results_by_key(recs) == EXPECTED
    lines = path.read_text().splitlines()
    assert len(lines) == len(TRIALS)
    assert {json.loads(line)["key"] for line in lines} == set(EXPECTED)
    assert read_results(path) == [json.loads(line) for line in lines]


def test_rerun_skips_finished_trials_and_extends(tmp_path):
    path = tmp_path / "r.jsonl"
    calls = []

    def counted(t):
        calls.append(t["x"])
        return square(t)

    run_sweep(counted, TRIALS[:5], path, progress=False)
    assert sorted(calls) == list(range(5))
    recs = run_sweep(counted, TRIALS, path, progress=False)
    assert sorted(calls) == list(range(8))  # only the 3 new trials ran
    assert results_by_key(recs) == EXPECTED
    assert len(path.read_text().splitlines()) == 8
    run_sweep(counted, TRIALS, path, progress=False)
    assert len(calls) == 8


def test_truncated_last_line_is_ignored_then_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    run_sweep(square, TRIALS[:4], path, progress=False)
    full = path.read_bytes()
    last = full.rstrip(b"\n").rsplit(b"\n", 1)[1]
    # simulate a kill in the middle of writing trial 4's record
    path.write_bytes(full + last[: len(last) // 2])
    assert len(read_results(path)) == 4
    with pytest.warns(UserWarning, match="truncated last record"):
        recs = run_sweep(square, TRIALS, path, progress=False)
    assert results_by_key(recs) == EXPECTED
    lines = path.read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(x) for x in lines)
    (q,) = tmp_path.glob("r.jsonl.corrupt-*")  # the cut record is quarantined, not deleted
    assert q.read_bytes() == last[: len(last) // 2]


def test_corrupt_middle_line_raises(tmp_path):
    path = tmp_path / "r.jsonl"
    run_sweep(square, TRIALS[:3], path, progress=False)
    lines = path.read_text().splitlines()
    lines[1] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 2"):
        read_results(path)


def test_failing_trial_raises_and_keeps_finished(tmp_path):
    path = tmp_path / "r.jsonl"
    with pytest.raises(SweepError, match="boom at three"):
        run_sweep(fails_on_3, TRIALS, path, progress=False)
    kept = results_by_key(read_results(path))
    assert set(kept) == {trial_key(t) for t in TRIALS[:3]}
    recs = run_sweep(square, TRIALS, path, progress=False)  # resume with a fixed function
    assert results_by_key(recs) == EXPECTED


def test_bad_arguments(tmp_path):
    with pytest.raises(InvalidParameterError, match="more than once"):
        run_sweep(square, [{"x": 1}, {"x": 1}], tmp_path / "a.jsonl", progress=False)
    with pytest.raises(InvalidParameterError, match="backend"):
        run_sweep(square, TRIALS, tmp_path / "a.jsonl", backend="ray", progress=False)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        run_sweep(square, TRIALS, tmp_path / "a.jsonl", n_jobs=0, progress=False)


def test_missing_file_reads_empty(tmp_path):
    assert read_results(tmp_path / "nope.jsonl") == []


# ------------------------------------------------------------------------------------------------ parallel


def test_dask_local_cluster_equals_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        path = tmp_path / "d.jsonl"
        recs = run_sweep(square, TRIALS[:5], path, backend="dask", scheduler=client, progress=False)
        assert results_by_key(recs) == {trial_key(t): square(t) for t in TRIALS[:5]}
        # resume on the cluster object itself (a second client is made and closed by run_sweep)
        recs = run_sweep(square, TRIALS, path, backend="dask", scheduler=cluster, progress=False)
        assert results_by_key(recs) == EXPECTED
        assert len(path.read_text().splitlines()) == len(TRIALS)
        assert client.status == "running"  # a caller's client is not closed


# ------------------------------------------------------------------------------------------- kill + resume

_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from prunebound.sweep import run_sweep

    def slow(t):
        time.sleep(0.15)
        return {"y": t["x"] ** 2 + 0.5 * t["b"], "tag": f"{t['x']}-{t['b']}"}

    trials = [{"x": i, "b": i % 3} for i in range(int(sys.argv[2]))]
    run_sweep(slow, trials, sys.argv[1], n_jobs=int(sys.argv[3]), progress=False)
    """
)


@pytest.mark.slow
def test_killed_parallel_run_resumes_without_loss_or_duplication(tmp_path):
    """Kill a 2-worker joblib sweep (driver and workers) mid-way, restart it: every trial exactly once, with
    the results of an uninterrupted serial run (so this also checks joblib against the serial path)."""
    n, n_jobs = 20, 2
    script = tmp_path / "job.py"
    script.write_text(_SCRIPT)
    path = tmp_path / "r.jsonl"
    cmd = [sys.executable, str(script), str(path), str(n), str(n_jobs)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if path.exists() and len(path.read_bytes().splitlines()) >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"sweep exited early: {proc.stderr.read().decode()}")
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its loky workers
    finally:
        proc.wait(timeout=30)
    before = read_results(path)
    assert 3 <= len(before) < n, "the kill must land mid-way"
    # restart with the same command: completes, skipping the finished trials
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    keys = [r["key"] for r in lines]
    assert len(keys) == len(set(keys)) == n  # nothing duplicated, nothing lost
    # records finished before the kill are untouched
    assert lines[: len(before)] == before
    # and the results equal an uninterrupted run
    ref = run_sweep(square, [{"x": i, "b": i % 3} for i in range(n)], tmp_path / "ref.jsonl", progress=False)
    assert {r["key"]: r["result"] for r in lines} == results_by_key(ref)


def test_progress_bar_counts_trials(tmp_path, capsys):
    run_sweep(square, TRIALS[:3], tmp_path / "r.jsonl", progress=True, desc="demo")
    err = capsys.readouterr().err
    assert "demo" in err and "3/3" in err
    Path(tmp_path / "r.jsonl").unlink()


# ------------------------------------------------------------------------------------------- JSONL reader


def _jsonl_case():
    from hypothesis import strategies as st

    value = st.one_of(st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6))
    record = st.builds(lambda k, r: {"key": k, "trial": {"x": k}, "result": {"y": r}, "seconds": 0.0},
                       st.text(alphabet="0123456789abcdef", min_size=16, max_size=16), value)
    return st.tuples(st.lists(record, max_size=6, unique_by=lambda r: r["key"]), st.booleans(),
                     st.integers(0, 40))


def test_jsonl_reader_keeps_complete_records_and_quarantines_truncated_tails():
    """Property: whatever the file's end looks like (final newline or not, a record cut at any byte), every
    complete record is read, and the writer keeps all of them byte for byte and quarantines exactly the cut
    bytes."""
    import tempfile
    import warnings

    from hypothesis import given, settings

    @settings(max_examples=120, deadline=None)
    @given(_jsonl_case())
    def check(case):
        records, final_newline, cut = case
        body = b"".join((json.dumps(r, sort_keys=True) + "\n").encode() for r in records)
        extra = (json.dumps({"key": "f" * 16, "trial": {}, "result": {"y": 1}, "seconds": 0.0}) + "\n").encode()
        cut = min(cut, len(extra) - 2)  # a strict prefix of a record, without its closing brace
        if not final_newline and body:
            body = body[:-1]
            tail = b""
        else:
            tail = extra[:cut]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "results.jsonl"
            path.write_bytes(body + tail)
            assert read_results(path) == records
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run_sweep(square, [], path, progress=False)  # opens the writer: repairs, computes nothing
            fixed = path.read_bytes()
            assert read_results(path) == records
            assert fixed == (body + b"\n" if body and not body.endswith(b"\n") else body)
            quarantined = sorted(Path(tmp).glob("results.jsonl.corrupt-*"))
            if tail.strip():
                assert len(quarantined) == 1 and quarantined[0].read_bytes() == tail
            else:
                assert not quarantined

    check()


_INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from prunebound.sweep import run_sweep

    def slow(t):
        time.sleep(0.3)
        return {"pid": os.getpid()}

    run_sweep(slow, [{"x": i} for i in range(200)], sys.argv[1], n_jobs=2, progress=False)
    """
)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_or_terminate_shuts_down_joblib_workers(tmp_path, sig):
    """SIGINT or SIGTERM to the driver of a 2-worker sweep: the records written so far stay, and no worker
    is left computing abandoned trials (before the fix, SIGTERM orphaned both loky workers)."""
    script = tmp_path / "job.py"
    script.write_text(_INTERRUPT_SCRIPT)
    path = tmp_path / "r.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (path.exists() and len(path.read_bytes().splitlines()) >= 4):
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(getattr(signal, sig))
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    recs = read_results(path)
    assert 4 <= len(recs) < 200
    alive = {r["result"]["pid"] for r in recs}
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.1)
    assert not alive, f"joblib workers {sorted(alive)} outlived the stopped sweep"
    assert len(read_results(path)) == len(recs)  # and nothing was appended after the stop
