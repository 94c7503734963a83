"""The theory folders are installed only under the ``prunebound`` namespace (package-dir mapping)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_namespace_mapping_editable(tmp_path):
    code = (
        "import importlib.util, prunebound.bounds, prunebound.coresets, prunebound.subnet_search, "
        "prunebound.paper_repro, prunebound.pruning\n"
        "print(prunebound.bounds.__file__)\n"
        "assert importlib.util.find_spec('bounds') is None or 'site-packages' in "
        "importlib.util.find_spec('bounds').origin, 'a top-level bounds package is importable'\n"
        "assert importlib.util.find_spec('coresets') is None\n"
        "assert importlib.util.find_spec('subnet_search') is None\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).parent == ROOT / "bounds"


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (whl,) = tmp_path.glob("prunebound-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"prunebound", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for sub in ("bounds", "coresets", "subnet_search", "paper_repro", "pruning"):
        assert f"prunebound/{sub}/__init__.py" in names
