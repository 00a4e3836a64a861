"""The commands README.md and docs/*.md show are the ones there are: every ``creditstream`` (or the
operator guide's ``cs`` alias) command line of a code block parses with the CLI's own parser, and
every ``make`` target named is in the Makefile. A renamed option or command fails here, not in an
operator's shell."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from creditstream.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_block_commands(text: str) -> list[str]:
    """The arguments of each ``creditstream ...`` / ``cs ...`` line of the fenced code blocks (a
    comment, pipe, redirection or ``&&`` after it cut off)."""
    found = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            m = re.match(r"^\s*(?:\$ )?(?:creditstream|cs) (.*)$", line)
            if m:
                found.append(re.split(r"\s(?:#|\||>|<|&&)\s", m.group(1))[0].strip())
    return found


def test_code_block_commands_are_found():
    text = "```sh\ncs subject 1 --json   # x\n$ creditstream report | head\nmake test\n```\n"
    assert code_block_commands(text) == ["subject 1 --json", "report"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_shown_parses(doc):
    parser = build_parser()
    for command in code_block_commands(doc.read_text(encoding="utf-8")):
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(shlex.split(command))
        except SystemExit as exc:
            assert exc.code == 0, f"{doc.name}: creditstream {command}: {said.getvalue().strip()}"


def test_the_docs_show_commands():
    assert sum(len(code_block_commands(doc.read_text(encoding="utf-8"))) for doc in DOCS) >= 10


def test_every_make_target_named_is_in_the_makefile():
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))
    for doc in DOCS:
        named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", doc.read_text(encoding="utf-8")))
        assert named <= targets, f"{doc.name}: no such make target: {sorted(named - targets)}"
