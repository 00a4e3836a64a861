"""The commands README.md and docs/*.md show are the ones there are: every ``creditstream`` (or
``.venv/bin/creditstream``, or the operator guide's ``cs`` alias) command line of a code block
parses with the CLI's own parser, each form of a synopsis (``[--web]``, ``list|show|redrive``,
``--jobs N``) too, and every ``make`` target named is in the Makefile. A renamed option or command
fails here, not in an operator's shell."""

from __future__ import annotations

import contextlib
import io
import itertools
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
            m = re.match(r"^\s*(?:\$ )?(?:\S*/)?(?:creditstream|cs) (.*)$", line)
            if m:
                found.append(re.split(r"\s(?:#|\||>|<|&&)\s", m.group(1))[0].strip())
    return found


def forms(synopsis: str) -> list[list[str]]:
    """Every command a synopsis stands for: each ``[optional part]`` left out and put in, each
    ``a|b`` alternative, a placeholder ``N`` as a number."""
    parts = re.split(r"(\[[^\]]*\])", synopsis)
    choices = [["", part[1:-1]] if part.startswith("[") else [part] for part in parts]
    out = []
    for chosen in itertools.product(*choices):
        words = [["2"] if w == "N" else w.split("|") for w in shlex.split(" ".join(chosen))]
        out.extend(list(form) for form in itertools.product(*words))
    return out


def test_code_block_commands_are_found():
    text = "```sh\ncs subject 1 --json   # x\n$ creditstream report | head\n.venv/bin/creditstream api\nmake test\n```\n"
    assert code_block_commands(text) == ["subject 1 --json", "report", "api"]


def test_a_synopsis_stands_for_each_of_its_forms():
    assert forms("replay [--verify] [--jobs N]") == [
        ["replay"], ["replay", "--jobs", "2"], ["replay", "--verify"], ["replay", "--verify", "--jobs", "2"]]
    assert forms("dlq list|show") == [["dlq", "list"], ["dlq", "show"]]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_shown_parses(doc):
    parser = build_parser()
    for command in code_block_commands(doc.read_text(encoding="utf-8")):
        for argv in forms(command):
            said = io.StringIO()
            try:
                with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
                    parser.parse_args(argv)
            except SystemExit as exc:
                # a synopsis may leave out what a form requires (``dlq list|show|redrive``: show's REF);
                # an unknown command, option or choice, or a value of the wrong kind, is an error
                error = said.getvalue().strip().splitlines()[-1] if said.getvalue().strip() else ""
                assert exc.code == 0 or "the following arguments are required" in error, \
                    f"{doc.name}: creditstream {' '.join(argv)}: {error}"


def test_the_docs_show_commands():
    assert sum(len(code_block_commands(doc.read_text(encoding="utf-8"))) for doc in DOCS) >= 10


def test_every_make_target_named_is_in_the_makefile():
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))
    for doc in DOCS:
        named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", doc.read_text(encoding="utf-8")))
        assert named <= targets, f"{doc.name}: no such make target: {sorted(named - targets)}"
