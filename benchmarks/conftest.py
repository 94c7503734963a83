"""Collect every ratio the benchmarks measure and print them as one table at the end of ``make bench``.

Three sources, all from one run:

* explicit rows: ``benchmark.extra_info["ratios"]`` -- a list of dicts ``{"what": ..., "ours": ...,
  "alternative": ..., "ratio": alternative / ours}`` (``ratio > 1``: ours is better by that factor);
* legacy keys of ``extra_info`` whose name says what they compare (``a_over_b``, ``speedup_vs_x``,
  ``*ratio*``); the alternative is read from the key;
* benchmark groups (``@pytest.mark.benchmark(group=...)``): the first benchmark of a group (in file order) is
  ours, every other member an alternative, ratio = alternative mean time / ours.  A benchmark that sets
  ``extra_info["role"] = "measure"`` is a plain measurement and takes no part in group ratios.

The table goes to the terminal summary and, atomically, to ``.benchmarks/ratios.json`` and
``.benchmarks/ratios.txt``.  Nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest

_ROWS: list[dict] = []
_GROUPS: dict[str, list[tuple[str, float, str]]] = {}


def _short(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1] if "::" in nodeid else nodeid


def _legacy_rows(name: str, info: dict) -> list[dict]:
    rows = []
    for key, val in info.items():
        if key in ("ratios", "role") or not isinstance(val, (int, float)) or isinstance(val, bool):
            continue
        m = re.fullmatch(r"(?P<alt>.+)_over_(?P<ours>.+)", key)
        s = re.fullmatch(r"speedup_vs_(?P<alt>.+)", key)
        if m:
            rows.append({"bench": name, "what": key, "ours": m["ours"], "alternative": m["alt"], "ratio": val})
        elif s:
            rows.append({"bench": name, "what": "time", "ours": "ours", "alternative": s["alt"], "ratio": val})
        elif "ratio" in key:
            alt = key.split("_vs_", 1)[1] if "_vs_" in key else "see key"
            rows.append({"bench": name, "what": key, "ours": "ours", "alternative": alt, "ratio": val})
    return rows


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """After each benchmark test's call phase, read its fixture's ``extra_info`` and timing."""
    yield
    if call.when == "call":
        _collect(item)


def _collect(item) -> None:
    bm = getattr(item, "funcargs", {}).get("benchmark")
    if bm is None:
        return
    name = _short(item.nodeid)
    info = dict(getattr(bm, "extra_info", {}) or {})
    for r in info.get("ratios", []) or []:
        _ROWS.append({"bench": name, **r})
    _ROWS.extend(_legacy_rows(name, info))
    stats = getattr(bm, "stats", None)
    group = getattr(bm, "group", None)
    if group and stats is not None and info.get("role") != "measure":
        try:
            mean = float(stats.stats.mean)
        except AttributeError:
            return
        _GROUPS.setdefault(group, []).append((name, mean, info.get("role", "")))


def _group_rows() -> list[dict]:
    rows = []
    for group, members in _GROUPS.items():
        if len(members) < 2:
            continue
        ours = next((m for m in members if m[2] == "ours"), members[0])
        for other in members:
            if other is ours or ours[1] <= 0:
                continue
            rows.append({"bench": f"[{group}]", "what": "time", "ours": ours[0], "alternative": other[0],
                         "ratio": other[1] / ours[1]})
    return rows


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _format(rows: list[dict]) -> str:
    head = ("benchmark", "what", "ours", "alternative", "ratio")
    body = [(r["bench"], str(r["what"]), str(r["ours"]), str(r["alternative"]), f"{float(r['ratio']):.3g}")
            for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    out.append("ratio = alternative / ours (time, memory or error as named); > 1 means ours is better.")
    return "\n".join(out)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables: the run ends with this one
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = _ROWS + _group_rows()
    if not rows:
        return
    text = _format(rows)
    terminalreporter.write_sep("=", "ratios measured in this run (ours vs alternative)")
    terminalreporter.write_line(text)
    out = Path(str(config.rootpath)) / ".benchmarks"
    _atomic_write(out / "ratios.json", json.dumps(rows, indent=1, default=float))
    _atomic_write(out / "ratios.txt", text + "\n")
    terminalreporter.write_line(f"(written to {out / 'ratios.txt'} and ratios.json)")
