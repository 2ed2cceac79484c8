"""Every `larimar` command and flag that README.md and docs/*.md name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from larimar_memory.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
# `larimar` as a command word: at the start, after a space, or a path like .venv/bin/larimar
_COMMAND = re.compile(r"(?:^|(?<=[\s(]))(?:[\w./-]*/)?larimar\s+(?P<rest>[^|;&#)\n]*)")


def commands_in(text: str) -> list[list[str]]:
    """The argument lists of the `larimar ...` commands in a Markdown text's code."""
    spans = [*_FENCE.findall(text), *_INLINE.findall(_FENCE.sub("", text))]
    found = []
    for span in spans:
        for line in span.replace("\\\n", " ").splitlines():
            for match in _COMMAND.finditer(line):
                try:
                    found.append(shlex.split(match["rest"], comments=True))
                except ValueError:  # an unbalanced quote in prose: split on spaces
                    found.append(match["rest"].split())
    return found


def problems(args: list[str], root: Any) -> list[str]:
    """What in ``args`` the command tree does not have (unknown sub-commands and options)."""
    command, out = root, []
    for token in args:
        if token.startswith("-") and len(token) > 1:
            name = token.split("=", 1)[0]
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            if name not in options | {"--help"}:
                out.append(f"{' '.join(args)}: {command.name} has no option {name}")
        elif hasattr(command, "commands"):  # a group (typer vendors its own click)
            sub = command.commands.get(token)
            if sub is None:
                if re.fullmatch(r"[a-z][a-z-]*", token):
                    out.append(f"{' '.join(args)}: no command {token!r} under {command.name}")
                break
            command = sub
    return out


@pytest.fixture(scope="module")
def tree() -> Any:
    return typer.main.get_command(app)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_and_flag_exists(doc: Path, tree: Any) -> None:
    bad = [p for args in commands_in(doc.read_text()) for p in problems(args, tree)]
    assert bad == []


def test_the_check_can_fail(tree: Any) -> None:
    text = ("Run `larimar serve --no-such-flag` or:\n```bash\nlarimar nosuch --x\n"
            "larimar bench memory --quick\n.venv/bin/larimar eval locomo --bogus 1\n```\n")
    found = commands_in(text)
    assert ["bench", "memory", "--quick"] in found
    bad = [p for args in found for p in problems(args, tree)]
    assert len(bad) == 3, bad
