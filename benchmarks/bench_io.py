"""Benchmarks for prunebound.io: rejecting a hostile 2 KB checkpoint vs loading an honest one of the same kind.

Run: .venv/bin/python -m pytest benchmarks/bench_io.py --benchmark-only -o addopts="" -p no:xdist -s

* time (pytest-benchmark groups ``load-spec``, ``load-zoo``, ``load-safetensors``): ``load_model`` on an honest
  checkpoint (LeNet-300-100 spec, ResNet-20 zoo reference, LeNet-300-100 safetensors) and on a forged ~2 KB
  file of the same kind that declares a huge model: ``Linear(10**6, 10**6)``; ResNet-20 at width 1000
  (1.05e9 parameters) with one stored tensor; a safetensors header declaring a ``10**6 x 10**6`` tensor.
  The issue-14 baseline built the declared layers first (1.5 KB -> 6.5 GB, 31 s); the check now runs before
  any layer is built, so hostile files are rejected faster than honest ones load.
* peak memory (``test_peak_rss_ratio``): growth of the peak RSS of a fresh process while loading each file,
  printed as a table with hostile / honest ratios.  Only the memory bound of issue 14 (< 100 MB) is asserted,
  never a time.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from prunebound import io as pio
from prunebound import zoo
from prunebound.errors import PruneboundError
from prunebound.network import lenet300_100

torch.set_num_threads(1)


def _forge(path: Path, header: dict, sd: dict) -> Path:
    torch.save({"format": pio.FORMAT, "header": json.dumps(header), "state_dict": sd}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bench_io")
    out: dict[str, Path] = {}
    out["honest-spec"] = pio.save_model(lenet300_100(seed=0), d / "lenet.pt")
    out["honest-zoo"] = pio.save_model(zoo.build("resnet20", seed=0), d / "resnet20.pt")
    out["honest-safetensors"] = pio.save_model(lenet300_100(seed=0), d / "lenet.safetensors")

    small = pio.save_model(torch.nn.Sequential(torch.nn.Linear(4, 3)), d / "small.pt")
    obj = torch.load(small, weights_only=True)
    h = json.loads(obj["header"])
    h["reference"]["spec"]["children"][0][1].update(in_features=10**6, out_features=10**6)
    out["hostile-spec"] = _forge(d / "spec_bomb.pt", h, dict(obj["state_dict"]))

    tiny = pio.save_model(zoo.build("resnet20", width=1, seed=0), d / "tiny.pt")
    obj = torch.load(tiny, weights_only=True)
    h = json.loads(obj["header"])
    h["reference"]["kwargs"]["width"] = 1000  # ~1.05e9 parameters (4 GB) if it were built, under the budget
    h["dtypes"] = {"fc.bias": "torch.float32"}
    out["hostile-zoo"] = _forge(d / "zoo_bomb.pt", h, {"fc.bias": torch.zeros(10)})

    st = pio.save_model(torch.nn.Sequential(torch.nn.Linear(4, 3)), d / "small.safetensors")
    raw = st.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(raw[8: 8 + n])
    meta["0.weight"]["shape"] = [10**6, 10**6]
    new = json.dumps(meta).encode()
    p = d / "st_bomb.safetensors"
    p.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])
    out["hostile-safetensors"] = p
    return out


def _load_or_reject(path: Path) -> bool:
    try:
        pio.load_model(path)
        return True
    except PruneboundError:
        return False


@pytest.mark.parametrize("kind", ["spec", "zoo", "safetensors"])
def test_hostile_is_small(files, kind):
    assert files[f"hostile-{kind}"].stat().st_size < 4096


@pytest.mark.benchmark(group="load-spec")
def test_load_honest_spec(benchmark, files):
    assert benchmark(_load_or_reject, files["honest-spec"])


@pytest.mark.benchmark(group="load-spec")
def test_reject_hostile_spec(benchmark, files):
    assert not benchmark(_load_or_reject, files["hostile-spec"])


@pytest.mark.benchmark(group="load-zoo")
def test_load_honest_zoo(benchmark, files):
    assert benchmark(_load_or_reject, files["honest-zoo"])


@pytest.mark.benchmark(group="load-zoo")
def test_reject_hostile_zoo(benchmark, files):
    assert not benchmark(_load_or_reject, files["hostile-zoo"])


@pytest.mark.benchmark(group="load-safetensors")
def test_load_honest_safetensors(benchmark, files):
    assert benchmark(_load_or_reject, files["honest-safetensors"])


@pytest.mark.benchmark(group="load-safetensors")
def test_reject_hostile_safetensors(benchmark, files):
    assert not benchmark(_load_or_reject, files["hostile-safetensors"])


_PROBE = textwrap.dedent("""
    import resource, sys, time
    import torch
    torch.set_num_threads(1)
    from prunebound import io as pio
    from prunebound.errors import PruneboundError
    def vm(key):  # kB from /proc/self/status; VmHWM is the peak RSS, reset by writing 5 to clear_refs
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        open("/proc/self/clear_refs", "w").write("5")
    except OSError:
        pass
    base = vm("VmRSS")
    t = time.perf_counter()
    try:
        pio.load_model(sys.argv[1]); ok = 1
    except PruneboundError:
        ok = 0
    dt = time.perf_counter() - t
    print(ok, dt, (vm("VmHWM") - base) / 1024)
""")


def _probe(path: Path) -> tuple[bool, float, float]:
    r = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ok, dt, mb = r.stdout.split()
    return ok == "1", float(dt), float(mb)


def test_peak_rss_ratio(files):
    """Peak-RSS growth and time of one load in a fresh process; ratios hostile / honest (memory bound asserted)."""
    rows = []
    for kind in ("spec", "zoo", "safetensors"):
        ok_h, t_h, m_h = _probe(files[f"honest-{kind}"])
        ok_x, t_x, m_x = _probe(files[f"hostile-{kind}"])
        assert ok_h and not ok_x
        assert m_x < 100.0, f"rejecting the hostile {kind} checkpoint grew peak RSS by {m_x:.1f} MB"
        rows.append((kind, files[f"honest-{kind}"].stat().st_size, t_h, m_h,
                     files[f"hostile-{kind}"].stat().st_size, t_x, m_x))
    print("\nkind          honest: bytes     time   peak+MB | hostile: bytes   time   peak+MB | time ratio  mem ratio")
    for kind, bh, th, mh, bx, tx, mx in rows:
        print(f"{kind:<12} {bh:>14,} {th:>8.4f}s {mh:>8.1f} | {bx:>14,} {tx:>6.4f}s {mx:>8.1f} | "
              f"{tx / th:>9.3f}  {mx / max(mh, 0.1):>9.3f}")


def test_wall_clock_is_reported_not_asserted(files):
    # a plain timing print for readers without pytest-benchmark output; nothing is asserted on it
    t = time.perf_counter()
    _load_or_reject(files["hostile-spec"])
    print(f"\nhostile spec rejected in {time.perf_counter() - t:.4f}s")
