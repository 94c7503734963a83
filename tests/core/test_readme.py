"""The README's quick start runs as written, and its bound is above the measured true risk."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_quick_start_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README quick start", "exec"), ns)
    cert, task, pruned = ns["cert"], ns["task"], ns["pruned"]
    assert (tmp_path / "cert.json").exists()
    risk = task.true_risk(pruned)
    assert cert.value > risk and cert.value < 1.0
    assert "true risk" in out.getvalue()
