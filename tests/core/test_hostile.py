"""Hostile inputs: certificates, parameters, data specs, files, sweeps and the CLI (issue 14).

Every case asserts the exact error class (or, on the CLI, exit code 2 and a single ``prunebound: error:``
line without a traceback), and that nothing was written outside the output path and no result was lost.
Checkpoint files are covered by ``tests/core/test_io.py``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from prunebound import data as D
from prunebound import network as N
from prunebound.bounds import certify
from prunebound.certificate import Certificate, verify
from prunebound.cli import main
from prunebound.coding import quantize_module
from prunebound.errors import (
    CertificateError,
    ConcurrentRunError,
    DataError,
    DataSpecError,
    InvalidParameterError,
    UnsafeOutputError,
)
from prunebound.files import RunLock, atomic_write_text, check_writable
from prunebound.io import save_model
from prunebound.sweep import read_results, run_sweep, trial_key

SPEC = "teacher:d=4,width=8,n=60,seed=0"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else b"<link/dir>")
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    root = tmp_path_factory.mktemp("honest")
    data = D.resolve(SPEC)
    m = N.mlp(4, [6], 2, seed=0)
    quantize_module(m, bits=2)
    cert = certify(m, data, method="occam", seed=0)
    model_path = save_model(m, root / "m.pt")
    cert_path = cert.save(root / "c.json")
    return cert, m, data, model_path, cert_path


# ------------------------------------------------------------------------------------------ certificates

def _base(honest) -> dict:
    return honest[0].to_dict()


CERT_CASES = {
    "a number": lambda d: 3,
    "a list": lambda d: [d],
    "a string": lambda d: "certificate",
    "null": lambda d: None,
    "n negative": lambda d: {**d, "n": -5},
    "n zero": lambda d: {**d, "n": 0},
    "n float": lambda d: {**d, "n": 60.0},
    "n string": lambda d: {**d, "n": "60"},
    "n bool": lambda d: {**d, "n": True},
    "n huge": lambda d: {**d, "n": 10**15},
    "value string": lambda d: {**d, "value": "0.3"},
    "value negative": lambda d: {**d, "value": -0.1},
    "value null": lambda d: {**d, "value": None},
    "delta zero": lambda d: {**d, "delta": 0},
    "delta one": lambda d: {**d, "delta": 1.0},
    "delta > 1": lambda d: {**d, "delta": 2.0},
    "empirical > 1": lambda d: {**d, "empirical": 1.5},
    "missing value": lambda d: {k: v for k, v in d.items() if k != "value"},
    "unknown field": lambda d: {**d, "trust_me": True},
    "bad model hash": lambda d: {**d, "model_sha256": "xyz"},
    "upper-case hash": lambda d: {**d, "data_sha256": d["data_sha256"].upper()},
    "seed string": lambda d: {**d, "seed": "0"},
    "seed huge": lambda d: {**d, "seed": 2**70},
    "params a list": lambda d: {**d, "params": [1, 2]},
    "params too deep": lambda d: {**d, "params": {"a": [[[[[[[[[[1]]]]]]]]]]}},
    "parts a list": lambda d: {**d, "parts": [1]},
    "part an object": lambda d: {**d, "parts": {"bits": {"x": 1}}},
    "kind with slash": lambda d: {**d, "kind": "../../etc/passwd"},
    "kind empty": lambda d: {**d, "kind": ""},
    "schema from the future": lambda d: {**d, "schema_version": 99},
    "schema version string": lambda d: {**d, "schema_version": "2"},
    "verifiable string": lambda d: {**d, "verifiable": "yes"},
    "note huge": lambda d: {**d, "note": "x" * 20_000},
    "data_spec a number": lambda d: {**d, "data_spec": 123},
    "versions a list": lambda d: {**d, "versions": ["1.0"]},
}


@pytest.mark.parametrize("case", sorted(CERT_CASES))
def test_hostile_certificate_dict(honest, case):
    with pytest.raises(CertificateError):
        Certificate.from_dict(CERT_CASES[case](_base(honest)))


FILE_CASES = {
    "empty file": b"",
    "binary garbage": bytes(range(256)) * 4,
    "not utf-8": b"\xff\xfe{\x00",
    "NaN token": b'{"kind": "occam", "value": NaN}',
    "Infinity token": b'{"value": Infinity}',
    "truncated JSON": b'{"kind": "occam", "value": 0.',
    "a JSON number": b"0.049",
    "a JSON list": b"[]",
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_hostile_certificate_file(tmp_path, case):
    p = tmp_path / "c.json"
    p.write_bytes(FILE_CASES[case])
    with pytest.raises(CertificateError):
        Certificate.load(p)


def test_certificate_duplicate_keys_directory_missing_and_huge(honest, tmp_path):
    text = honest[4].read_text()
    (tmp_path / "dup.json").write_text(text.replace('"kind":', '"value": 0.0,\n  "kind":', 1))
    with pytest.raises(CertificateError, match="twice"):
        Certificate.load(tmp_path / "dup.json")
    with pytest.raises(CertificateError, match="folder"):
        Certificate.load(tmp_path)
    with pytest.raises(CertificateError, match="not found"):
        Certificate.load(tmp_path / "none.json")
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(17 * 2**20)  # sparse: refused by size before reading
    with pytest.raises(CertificateError, match="bytes"):
        Certificate.load(big)


# ------------------------------------------------------------------------------------------ parameters

PARAM_CASES = {
    # (method, params): recorded parameters that verify must refuse, by the text of the difference
    "occam bits=0": ("occam", {"bits": 0.0}, "bits"),
    "occam bits string": ("occam", {"bits": "0"}, "bits"),
    "occam unknown form": ("occam", {"form": "optimistic"}, "form"),
    "occam unknown param": ("occam", {"gamma": 1.0}, "gamma"),
    "zhou mc_samples huge": ("zhou2019", {"mc_samples": 10**9}, "mc_samples"),
    "zhou empty grid": ("zhou2019", {"sigmas": []}, "sigmas"),
    "zhou grid too long": ("zhou2019", {"sigmas": [0.1] * 1001}, "sigmas"),
    "zhou grid of strings": ("zhou2019", {"sigmas": ["a"]}, "sigmas[0]"),
    "zhou explicit lengths": ("zhou2019", {"index_code": [[0, 0, 0, 0]]}, "index_code"),
    "pac-bayes prior mean": ("pac_bayes_gaussian", {"prior_mean": "posterior"}, "prior_mean"),
    "pac-bayes negative sigma": ("pac_bayes_gaussian", {"sigmas": [-0.1]}, "sigmas[0]"),
    "pac-bayes mc fraction 1": ("pac_bayes_gaussian", {"mc_delta_fraction": 1.0}, "mc_delta_fraction"),
    "arora bits_grid": ("arora2018", {"bits_grid": [100]}, "bits_grid[0]"),
    "coreset value_bits": ("coreset", {"value_bits": 8}, "value_bits"),
    "bartlett gamma": ("spectral_bartlett2017", {"gamma": -1.0}, "gamma"),
    "neyshabur B below the data": ("spectral_neyshabur2018", {"gamma": 0.1, "B": 1e-3}, "largest input norm"),
    "subspace unpaid grid": ("subspace", {"pay_for_grid": False}, "pay_for_grid"),
}


@pytest.mark.parametrize("case", sorted(PARAM_CASES))
def test_hostile_recorded_parameters_fail_verify(honest, case):
    method, params, needle = PARAM_CASES[case]
    cert, m, data = honest[:3]
    forged = Certificate.from_dict({**cert.to_dict(), "kind": method, "params": params})
    rep = verify(forged, m, data)
    assert not rep.ok and rep.recomputed is None
    assert any(needle in s for s in rep.differences), rep.differences


@pytest.mark.parametrize("case", ["occam unknown form", "zhou mc_samples huge", "pac-bayes prior mean",
                                  "neyshabur B below the data", "zhou grid too long"])
def test_hostile_parameters_refused_by_certify(honest, case):
    method, params, _ = PARAM_CASES[case]
    with pytest.raises(InvalidParameterError):
        certify(honest[1], honest[2], method=method, **params)


def test_certify_refuses_unknown_parameter(honest):
    with pytest.raises(InvalidParameterError, match="no parameter"):
        certify(honest[1], honest[2], method="occam", sigmas=[0.1])


# ------------------------------------------------------------------------------------------ data specs

SPEC_CASES = {
    "n not a number": "teacher:n=abc",
    "n huge": "teacher:n=1000000000",
    "n zero": "teacher:n=0",
    "d zero": "teacher:d=0",
    "width huge": "teacher:width=99999999",
    "n times d": "teacher:n=1000000,d=9000",
    "noise 2": "teacher:noise=2",
    "noise nan": "teacher:noise=nan",
    "unknown key": "teacher:foo=1",
    "no equals": "teacher:n",
    "duplicate key": "teacher:n=10,n=20",
    "unknown data set": "imagenet:n=10",
    "mnist without dir": "mnist",
    "bad part": "teacher:part=valid",
    "mnist1d n huge": "mnist1d:n=100000000",
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_hostile_data_spec(case):
    with pytest.raises(DataSpecError):
        D.resolve(SPEC_CASES[case])


def test_untrusted_certificate_data_spec_is_bounded(honest):
    cert, m, _ = honest[:3]
    evil = Certificate.from_dict({**cert.to_dict(), "data_spec": "teacher:d=4,width=8,n=5000000,seed=0"})
    with pytest.raises(DataSpecError, match="max_n"):
        verify(evil, m)  # resolved from the certificate: refused before anything is allocated
    small = Certificate.from_dict({**cert.to_dict(), "data_spec": "teacher:d=4,width=8,n=300,seed=0"})
    with pytest.raises(DataSpecError, match="max_n"):
        verify(small, m, max_n=100)
    rep = verify(small, m, max_n=300)  # the caller raised the limit: resolved, then found to differ
    assert not rep.ok and any("data sha256" in s for s in rep.differences)
    assert verify(cert, m).ok  # the honest certificate's own spec


# ------------------------------------------------------------------------------------------ files

def test_certificate_save_refuses_symlink_and_keeps_target(honest, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "c.json"
    link.symlink_to(target)
    with pytest.raises(UnsafeOutputError, match="symbolic link"):
        honest[0].save(link)
    assert target.read_text() == "keep me"


def test_outputs_refused_folder_and_parent_file(honest, tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UnsafeOutputError, match="folder"):
        honest[0].save(tmp_path / "d")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UnsafeOutputError):
        check_writable(tmp_path / "f" / "sub" / "c.json")
    with pytest.raises(UnsafeOutputError):
        check_writable(tmp_path / "f", is_dir=True)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    for i in range(3):
        atomic_write_text(tmp_path / "out.txt", f"v{i}")
    assert (tmp_path / "out.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_run_lock_refuses_a_second_holder(tmp_path):
    with RunLock(tmp_path), pytest.raises(ConcurrentRunError, match="another prunebound run"):
        with RunLock(tmp_path, wait=False):
            pass
    with RunLock(tmp_path, wait=False):  # released: free again
        pass


# ------------------------------------------------------------------------------------------ sweeps

def sq(t):
    return {"y": t["x"] ** 2}


TRIALS = [{"x": i} for i in range(6)]


def test_sweep_refuses_symlinked_results_and_keeps_target(tmp_path):
    target = tmp_path / "other.txt"
    target.write_text("precious\n")
    link = tmp_path / "results.jsonl"
    link.symlink_to(target)
    with pytest.raises(UnsafeOutputError, match="symbolic link"):
        run_sweep(sq, TRIALS, link, progress=False)
    assert target.read_text() == "precious\n"


def test_sweep_results_path_is_a_folder(tmp_path):
    (tmp_path / "results.jsonl").mkdir()
    with pytest.raises(UnsafeOutputError):
        run_sweep(sq, TRIALS, tmp_path / "results.jsonl", progress=False)


def test_sweep_keeps_last_record_without_newline(tmp_path):
    path = tmp_path / "results.jsonl"
    run_sweep(sq, TRIALS[:3], path, progress=False)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert len(read_results(path)) == 3  # a missing final newline is not corruption
    calls = []
    run_sweep(lambda t: calls.append(t) or sq(t), TRIALS, path, progress=False)
    assert len(calls) == 3  # the complete last record was not recomputed
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(recs) == 6 and len({r["key"] for r in recs}) == 6
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_sweep_quarantines_truncated_tail(tmp_path):
    path = tmp_path / "results.jsonl"
    run_sweep(sq, TRIALS[:3], path, progress=False)
    good = path.read_bytes()
    tail = b'{"key": "abc", "res'
    path.write_bytes(good + tail)
    with pytest.warns(UserWarning, match="moved to"):
        run_sweep(sq, TRIALS, path, progress=False)
    (q,) = tmp_path.glob("results.jsonl.corrupt-*")
    assert q.read_bytes() == tail  # quarantined, never deleted
    assert path.read_bytes().startswith(good)  # every earlier record kept, byte for byte
    assert {r["key"] for r in read_results(path)} == {trial_key(t) for t in TRIALS}


def test_sweep_corrupt_middle_line_changes_nothing(tmp_path):
    path = tmp_path / "results.jsonl"
    run_sweep(sq, TRIALS[:3], path, progress=False)
    lines = path.read_text().splitlines()
    lines[1] = "{broken"
    path.write_text("\n".join(lines) + "\n")
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="line 2"):
        run_sweep(sq, TRIALS, path, progress=False)
    assert snapshot(tmp_path) == before


def test_sweep_concurrent_run_refused_without_wait(tmp_path):
    path = tmp_path / "results.jsonl"
    with RunLock(tmp_path, name=".results.jsonl.lock"), pytest.raises(ConcurrentRunError):
        run_sweep(sq, TRIALS, path, progress=False, wait=False)
    assert read_results(path) == []


def test_sweep_concurrent_runs_are_serialised(tmp_path):
    path = tmp_path / "results.jsonl"
    calls = []
    lock = threading.Lock()

    def counted(t):
        with lock:
            calls.append(t["x"])
        return sq(t)

    threads = [threading.Thread(target=run_sweep, args=(counted, TRIALS, path), kwargs={"progress": False})
               for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(calls) == [t["x"] for t in TRIALS]  # the second run waited and skipped everything
    assert len(path.read_text().splitlines()) == len(TRIALS)


def test_sweep_keyboard_interrupt_keeps_finished_records(tmp_path):
    path = tmp_path / "results.jsonl"

    def interrupted(t):
        if t["x"] == 3:
            raise KeyboardInterrupt
        return sq(t)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(interrupted, TRIALS, path, progress=False)
    assert {r["key"] for r in read_results(path)} == {trial_key(t) for t in TRIALS[:3]}
    run_sweep(sq, TRIALS, path, progress=False)  # resumes; the lock was released
    assert len(read_results(path)) == 6


# ------------------------------------------------------------------------------------------ CLI

def _cli(argv, capsys, cwd: Path, *, code: int = 2, needle: str | None = None):
    before = snapshot(cwd)
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == code, (rc, out.err)
    if code == 2:
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("prunebound: error: "), out.err
        assert "Traceback" not in out.err
        if needle:
            assert needle in lines[0], lines[0]
    return before, out


CLI_CASES = {
    "malformed --data": (["certify", "{m}", "--data", "teacher:n=abc"], "n must be an integer"),
    "huge n": (["certify", "{m}", "--data", "teacher:d=4,width=8,n=999999999"], "max_n"),
    "unknown --data key": (["certify", "{m}", "--data", "teacher:d=4,wdth=8"], "unknown keys"),
    "unknown --param": (["certify", "{m}", "--data", SPEC, "--param", "nope=1"], "no parameter"),
    "--param not k=v": (["certify", "{m}", "--data", SPEC, "--param", "nope"], "key=value"),
    "bad --param value": (["certify", "{m}", "--data", SPEC, "--param", "form=\"optimistic\""], "form"),
    "--delta 1.5": (["certify", "{m}", "--data", SPEC, "--delta", "1.5"], "delta"),
    "--delta not a number": (["certify", "{m}", "--data", SPEC, "--delta", "abc"], "invalid float"),
    "unknown method": (["certify", "{m}", "--data", SPEC, "--method", "magic"], "unknown certification"),
    "missing model": (["certify", "{d}/none.pt", "--data", SPEC], "not found"),
    "model is a folder": (["info", "{d}"], None),
    "--arch letters": (["train", "--arch", "mlp:a,b", "--data", SPEC, "--out", "{d}/o.pt"], "must be an integer"),
    "--arch too short": (["train", "--arch", "mlp:4", "--data", SPEC, "--out", "{d}/o.pt"], "at least"),
    "--arch unknown": (["train", "--arch", "resnet9000", "--data", SPEC, "--out", "{d}/o.pt"], "unknown architecture"),
    "--arch huge": (["train", "--arch", "mlp:4,10000000,2", "--data", SPEC, "--out", "{d}/o.pt"], "must be an integer"),
    "--max-n negative": (["certify", "{m}", "--data", SPEC, "--max-n", "-1"], "max_n"),
    "certificate is a number": (["verify", "{d}/num.json", "--model", "{m}"], "JSON number"),
    "certificate is a folder": (["verify", "{d}", "--model", "{m}"], "folder"),
    "certificate n=-5": (["verify", "{d}/neg.json", "--model", "{m}"], "'n'"),
    "certificate evil spec": (["verify", "{d}/evil.json", "--model", "{m}"], "max_n"),
    "unknown subcommand": (["explode"], "invalid choice"),
    "missing --data": (["certify", "{m}"], "--data"),
    "prune unknown --param": (["prune", "{m}", "--method", "magnitude", "--sparsity", "0.5", "--param", "zz=1",
                               "--out", "{d}/p.pt"], "no parameter"),
    "prune unknown method": (["prune", "{m}", "--method", "nope", "--sparsity", "0.5", "--out", "{d}/p.pt"],
                             "unknown pruning method"),
    "--out under a file": (["certify", "{m}", "--data", SPEC, "--out", "{m}/c.json"], "not a folder"),
    "--out is a folder": (["certify", "{m}", "--data", SPEC, "--out", "{d}"], "folder"),
    "repro unknown experiment": (["repro", "run", "nope"], "unknown experiment"),
}


@pytest.fixture
def cli_dir(honest, tmp_path, monkeypatch):
    cert = honest[0]
    (tmp_path / "num.json").write_text("3")
    (tmp_path / "neg.json").write_text(json.dumps({**cert.to_dict(), "n": -5}))
    (tmp_path / "evil.json").write_text(json.dumps({**cert.to_dict(), "data_spec": "teacher:n=123456789"}))
    m = save_model(honest[1], tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    return tmp_path, m


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_hostile_cli(cli_dir, capsys, case):
    d, m = cli_dir
    argv, needle = CLI_CASES[case]
    argv = [a.format(m=m, d=d) for a in argv]
    before, _ = _cli(argv, capsys, d, needle=needle)
    assert snapshot(d) == before  # nothing written anywhere (all these fail before writing)


def test_cli_symlinked_out_refused_before_work(cli_dir, capsys):
    d, m = cli_dir
    target = d / "precious.txt"
    target.write_text("keep")
    (d / "c.json").symlink_to(target)
    _cli(["certify", str(m), "--data", SPEC, "--out", str(d / "c.json")], capsys, d, needle="symbolic link")
    assert target.read_text() == "keep"


def test_cli_writes_only_out(cli_dir, capsys):
    d, m = cli_dir
    before = snapshot(d)
    assert main(["certify", str(m), "--data", SPEC, "--out", str(d / "out" / "c.json")]) == 0
    capsys.readouterr()
    after = snapshot(d)
    assert set(after) - set(before) == {"out", "out/c.json"}
    assert all(after[k] == before[k] for k in before)


def test_cli_verify_forged_and_declared(cli_dir, capsys, honest):
    d, m = cli_dir
    cert = honest[0]
    (d / "forged.json").write_text(json.dumps({**cert.to_dict(), "parts": {**cert.parts, "bits": "0"}}))
    assert main(["verify", str(d / "forged.json"), "--model", str(m)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert main(["certify", str(m), "--data", SPEC, "--param", "bits=0", "--out", str(d / "decl.json")]) == 0
    assert "occam_declared_bits" in capsys.readouterr().out
    assert main(["verify", str(d / "decl.json"), "--model", str(m)]) == 1
    assert "NOT CHECKABLE" in capsys.readouterr().out


def test_cli_internal_error_exit_1_and_debug(cli_dir, capsys, monkeypatch):
    import prunebound.cli as cli

    def boom(a):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_info", boom)
    d, m = cli_dir
    assert main(["info", str(m)]) == 1
    err = capsys.readouterr().err
    assert err.strip().startswith("prunebound: internal error: RuntimeError: a bug") and "Traceback" not in err
    assert main(["--debug", "info", str(m)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_batchnorm_after_linear_trains():
    from torch import nn

    from prunebound.train import fit

    data = D.resolve("teacher:d=4,width=8,n=65,seed=0")
    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    r = fit(m, data, epochs=2, batch_size=64, seed=0)  # 65 = 64 + 1: no batch of one reaches BatchNorm
    assert 0 <= r.train_error <= 1 and not m.training
    assert torch.isfinite(m[1].running_mean).all()


def test_device_files_are_refused(tmp_path):
    with pytest.raises(CertificateError, match="regular file"):
        Certificate.load("/dev/zero")
    (tmp_path / "train-images-idx3-ubyte").symlink_to("/dev/zero")  # an endless "data file"
    with pytest.raises(DataError, match="regular file"):
        D.resolve(f"mnist:dir={tmp_path}")


def test_legacy_certificate_without_schema_version_still_verifies(honest):
    cert, m, data = honest[:3]
    legacy = {k: v for k, v in cert.to_dict().items() if k not in ("schema_version", "verifiable")}
    back = Certificate.from_dict(legacy)
    assert back.schema_version == 2 and back.verifiable
    assert verify(back, m, data).ok


def test_check_writable_creates_nothing(tmp_path):
    before = snapshot(tmp_path)
    check_writable(tmp_path / "a" / "b" / "c.json")
    check_writable(tmp_path / "x" / "y", is_dir=True)
    assert snapshot(tmp_path) == before


def test_cli_checkpoint_with_bad_architecture_json(cli_dir, capsys):
    from prunebound.io import FORMAT

    d, m = cli_dir
    torch.save({"format": FORMAT, "architecture": "{not json", "state_dict": {"w": torch.zeros(2)}}, d / "bad.pt")
    _cli(["info", str(d / "bad.pt")], capsys, d)
