"""Executable documentation: every shell command and Python block of README.md and docs/*.md runs.

Fenced blocks tagged ``bash``/``sh``/``shell``/``console`` are run line by line in a temporary folder (lines
starting with ``prunebound`` in-process through :func:`prunebound.cli.main`, which is what the console script
calls, the others with ``bash -c``; ``$REPO`` is the repository root), ``python`` blocks are executed in a
fresh namespace there. A block may carry a documented smaller equivalent in an HTML comment right before it,
``<!-- test: COMMAND -->``, which is run instead. Inline ``prunebound ...`` commands (the tables) are parsed by
the CLI's own parser, and ``repro run NAME`` names must be registered experiments. The runner is checked
against a deliberately broken copy of the README (a renamed experiment): it must fail there.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_TEST_COMMENT = re.compile(r"<!--\s*test:\s*(.*?)\s*-->\s*$", re.S)


class DocFailure(AssertionError):
    """A documented command or block failed."""


@dataclass(frozen=True)
class Block:
    source: str
    line: int
    lang: str  # "shell" or "python"
    code: str
    replaced: bool  # run the documented smaller equivalent instead of the block


def extract_blocks(text: str, source: str) -> list[Block]:
    """The executable fenced blocks of a Markdown text, in order (with ``<!-- test: ... -->`` replacements)."""
    out = []
    for m in _FENCE.finditer(text):
        lang = m.group(1).lower()
        if lang not in SHELL and lang != "python":
            continue
        before = text[: m.start()].rstrip()
        line = text.count("\n", 0, m.start()) + 1
        rep = _TEST_COMMENT.search(before[-2000:])
        if rep and before.endswith("-->"):
            out.append(Block(source, line, "shell", rep.group(1), True))
        else:
            out.append(Block(source, line, "python" if lang == "python" else "shell", m.group(2), False))
    return out


def inline_commands(text: str) -> list[str]:
    """Inline code spans that are ``prunebound`` commands, outside fenced blocks."""
    bare = _FENCE.sub("", text)
    return [c.strip() for c in re.findall(r"`(prunebound [^`]+)`", bare)]


def shell_lines(code: str) -> list[str]:
    """Command lines of a shell block: continuations joined, comment-only and empty lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [ln.strip() for ln in joined.splitlines() if shlex.split(ln, comments=True)]


def _run_line(line: str, env: dict) -> tuple[int, str]:
    argv = shlex.split(line, comments=True)
    if argv[0] == "prunebound":
        from prunebound.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                rc = main(argv[1:])
            except SystemExit as e:  # argparse errors
                rc = e.code if isinstance(e.code, int) else 2
        return int(rc or 0), out.getvalue()
    p = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def run_blocks(blocks: list[Block], workdir: Path) -> dict[str, dict]:
    """Run ``blocks`` in ``workdir`` (the caller chdirs there); raise :class:`DocFailure` naming the first
    failing command. Returns the namespace of each Python block, keyed ``source:line``."""
    env = dict(os.environ, REPO=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    spaces = {}
    for b in blocks:
        where = f"{b.source}:{b.line}"
        if b.lang == "python":
            ns: dict = {"__name__": "__doc_block__"}
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(b.code, where, "exec"), ns)
            except Exception as e:  # noqa: BLE001 -- reported with its location
                raise DocFailure(f"{where}: Python block failed: {type(e).__name__}: {e}") from e
            ns["__stdout__"] = out.getvalue()
            spaces[where] = ns
            continue
        for line in shell_lines(b.code):
            rc, out = _run_line(line, env)
            if rc != 0:
                raise DocFailure(f"{where}: `{line}` exited {rc}:\n{out[-2000:]}")
    return spaces


def check_inline(cmd: str) -> None:
    """Parse an inline ``prunebound`` command with the CLI's parser; ``repro run NAME`` must be registered."""
    from prunebound.cli import _UsageError, build_parser
    from prunebound.paper_repro import list_experiments

    argv = shlex.split(cmd)[1:]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            a = build_parser().parse_args(argv)
    except (SystemExit, _UsageError) as e:
        raise DocFailure(f"`{cmd}` does not parse: {err.getvalue().strip() or e}") from e
    if getattr(a, "action", None) == "run" and a.name not in list_experiments():
        raise DocFailure(f"`{cmd}`: no experiment named {a.name!r}")


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory):
    """Every document's blocks, run once in one temporary folder (README first)."""
    import torch

    work = tmp_path_factory.mktemp("docs")
    old, threads = Path.cwd(), torch.get_num_threads()
    os.chdir(work)
    try:
        torch.set_num_threads(1)
        blocks = [b for d in DOCS for b in extract_blocks(d.read_text(), d.relative_to(ROOT).as_posix())]
        spaces = run_blocks(blocks, work)
    finally:
        os.chdir(old)
        torch.set_num_threads(threads)
    return {"work": work, "blocks": blocks, "spaces": spaces}


@pytest.mark.slow
def test_every_documented_block_runs(doc_run):
    blocks = doc_run["blocks"]
    assert {b.source for b in blocks} >= {"README.md"}
    assert sum(b.lang == "python" for b in blocks) >= 1 and sum(b.lang == "shell" for b in blocks) >= 3


@pytest.mark.slow
def test_quick_start_prints_a_bound_above_the_true_risk(doc_run):
    ns = doc_run["spaces"][next(k for k in doc_run["spaces"] if k.startswith("README.md"))]
    code = next(b.code for b in doc_run["blocks"] if b.source == "README.md" and b.lang == "python")
    assert len(code.strip().splitlines()) <= 12
    cert, task, pruned = ns["cert"], ns["task"], ns["pruned"]
    assert (doc_run["work"] / "cert.json").exists()
    risk = task.true_risk(pruned)
    assert risk < cert.value < 1.0
    assert "true risk" in ns["__stdout__"]


@pytest.mark.slow
def test_documented_output_files_exist(doc_run):
    """The README says where results go; the run it shows put them there."""
    text = README.read_text()
    assert "OUT/results.jsonl" in text and "OUT/NAME.jsonl" not in text
    out = doc_run["work"] / "out" / "lueker"
    for f in ("results.jsonl", "config.json", *(f"lueker_subset_sum.{e}" for e in ("png", "pdf", "csv", "json"))):
        assert (out / f).is_file(), f
    for f in ("certificate.json", "model.pt", "grid.csv", "bound_vs_error.png", "bound_vs_error.pdf"):
        assert (doc_run["work"] / "demo_out" / f).is_file(), f


def test_inline_commands_parse_and_name_registered_experiments():
    cmds = [c for d in DOCS for c in inline_commands(d.read_text())]
    assert any("repro run" in c for c in cmds)
    for c in cmds:
        check_inline(c)


@pytest.mark.slow
def test_a_renamed_command_is_caught(tmp_path, monkeypatch):
    """The runner on a deliberately broken copy of the README (the experiment renamed back to the name the
    README once used) fails, naming the command; only the blocks that differ from the README are run."""
    text = README.read_text()
    broken = text.replace("repro run lueker_subset_sum --preset quick", "repro run lueker --preset quick")
    assert broken != text
    good = extract_blocks(text, "README.md")
    changed = [b for b in extract_blocks(broken, "README.md (broken copy)")
               if b.code not in {g.code for g in good}]
    assert len(changed) == 1
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DocFailure, match="repro run lueker"):
        run_blocks(changed, tmp_path)
    with pytest.raises(DocFailure, match="no experiment named 'lueker'"):
        check_inline("prunebound repro run lueker --preset full")
    with pytest.raises(DocFailure, match="does not parse"):
        check_inline("prunebound certfy model.pt --data x")


def test_extraction_rules():
    text = ("x\n<!-- test: echo small -->\n```bash\nmake huge\n```\n\n```python\nprint(1)\n```\n"
            "```text\nnot run\n```\n```bash\n# only a comment\nprunebound info \\\n  m.pt  # trailing\n```\n")
    b = extract_blocks(text, "t.md")
    assert [(x.lang, x.code.strip(), x.replaced) for x in b] == [
        ("shell", "echo small", True), ("python", "print(1)", False),
        ("shell", "# only a comment\nprunebound info \\\n  m.pt  # trailing", False)]
    assert shell_lines(b[2].code) == ["prunebound info  m.pt  # trailing"]
    assert inline_commands("see `prunebound repro list` and\n```bash\nprunebound x\n```") == ["prunebound repro list"]


def test_every_registered_certifier_is_documented():
    """The README's certifier table names every method of the registry (with a paper and its assumptions)."""
    import prunebound.bounds  # noqa: F401 -- registers the certifiers
    from prunebound.certificate import certifiers

    text = README.read_text()
    table = text[text.index("### Certifiers"):]
    table = table[: table.index("\n## ")]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z0-9_]+)` \|(.+)$", table, re.M)}
    shipped = {k for k, fn in certifiers().items() if getattr(fn, "__module__", "").startswith("prunebound")}
    assert {"occam", "zhou2019", "subspace"} <= shipped  # (tests may register their own; those are skipped)
    missing = sorted(shipped - set(rows))
    assert not missing, f"certifiers missing from the README table: {missing}"
    for name, rest in rows.items():
        paper, what = [c.strip() for c in rest.split("|")[:2]]
        assert re.search(r"(19|20)\d\d", paper), name  # a paper with its year
        assert len(what) > 40, name


def test_readme_points_only_inside_the_repository_and_license_matches():
    text = README.read_text()
    assert "DESIGN.md" not in text and "shared/" not in text and "/work/" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        assert not target.startswith(("/", "..")), target
        assert (ROOT / target).exists(), f"README links to {target}, which is not in the repository"
    for d in DOCS[1:]:
        assert "shared/papers" not in d.read_text() and "DESIGN.md" not in d.read_text(), d
    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"]["text"] == "MIT"
