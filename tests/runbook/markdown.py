"""Reads the runbooks' commands out of their Markdown, so the test runs what the reader sees.

Every fenced block of a runbook is preceded by a marker comment (invisible when rendered):

* ``<!-- runbook: run -->``: the test runs every line of the block, in order, in the sandbox;
  ``given=NAME`` first puts the sandbox in a named situation (a failed backup, the app down...);
* ``<!-- runbook: not-run reason="..." -->``: commands for the production host that cannot run
  here; ``sandbox=ACTION[,ACTION]`` names what the test does in their place (stop the app...);
* ``alert="TITLE"`` on either: the situation or the actions send a notification whose title
  starts with TITLE, and the prose shows that title to the reader.

A command's expected exit code is 0 unless its trailing comment starts with ``exit N`` (English)
or ``sale con N`` (Spanish)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"^<!--\s*runbook:\s*(?P<kind>[a-z-]+)(?P<attrs>.*?)\s*-->$")
ATTRIBUTE = re.compile(r'(\w+)=(?:"([^"]*)"|(\S+))')
EXPECTED_EXIT = re.compile(r"^(?:exit|sale con)\s+(\d+)\b")
INLINE_RAILGUARD = re.compile(r"`(railguard [^`]+)`")
FENCE = re.compile(r"^```(.*)$")


@dataclass(frozen=True)
class Command:
    text: str
    expected_exit: int
    line: int


@dataclass
class Block:
    kind: str                     # "run", "not-run", or "" when the block has no marker
    line: int
    language: str
    given: str | None = None
    sandbox: tuple[str, ...] = ()
    reason: str = ""
    #: The title of the notification this situation sends (the start of it), shown in the prose.
    alert: str | None = None
    commands: list[Command] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def shape(self) -> tuple:
        """What must be the same in both languages: everything but the prose of the reason."""
        commands = tuple((c.text, c.expected_exit) for c in self.commands)
        return (self.kind, self.given, self.sandbox, self.alert, commands)


def split_comment(line: str) -> tuple[str, str]:
    """``cmd args  # comment`` → (``cmd args``, ``comment``); a ``#`` inside quotes is not one."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1:].strip()
    return line.rstrip(), ""


def parse_runbook(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        marker = _marker_before(lines, index)
        block = Block(kind="", line=index + 1, language=fence.group(1).strip())
        if marker is None:
            block.problems.append("no <!-- runbook: ... --> marker before this block")
        else:
            kind, attrs = marker
            block.kind = kind
            block.given = attrs.pop("given", None)
            block.sandbox = tuple(a for a in attrs.pop("sandbox", "").split(",") if a)
            block.reason = attrs.pop("reason", "")
            block.alert = attrs.pop("alert", None)
            if kind not in {"run", "not-run"}:
                block.problems.append(f"unknown marker kind {kind!r}")
            if kind == "not-run" and not block.reason.strip():
                block.problems.append("a not-run block needs reason=\"...\"")
            if kind == "run" and block.sandbox:
                block.problems.append("sandbox= belongs to not-run blocks")
            if attrs:
                block.problems.append(f"unknown marker attributes {sorted(attrs)}")
        index += 1
        while index < len(lines) and not lines[index].startswith("```"):
            text, comment = split_comment(lines[index])
            if text.strip():
                expected = EXPECTED_EXIT.match(comment)
                block.commands.append(Command(text.strip(), int(expected.group(1)) if expected else 0, index + 1))
            index += 1
        if block.language != "sh":
            block.problems.append(f"commands go in ```sh blocks, not ```{block.language}")
        if not block.commands:
            block.problems.append("a block without commands")
        blocks.append(block)
        index += 1
    return blocks


def inline_railguard_commands(path: Path) -> list[tuple[int, str]]:
    """Every `railguard ...` written in the prose (outside fenced blocks), with its line."""
    found, inside = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            found += [(number, match) for match in INLINE_RAILGUARD.findall(line)]
    return found


def _marker_before(lines: list[str], fence_index: int) -> tuple[str, dict[str, str]] | None:
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    match = MARKER.match(lines[previous].strip()) if previous >= 0 else None
    if match is None:
        return None
    attrs = {name: quoted if quoted else bare for name, quoted, bare in ATTRIBUTE.findall(match.group("attrs"))}
    return match.group("kind"), attrs


def prose(path: Path) -> str:
    """The text a reader sees: without the marker comments and the fenced blocks."""
    kept, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside and not MARKER.match(line.strip()):
            kept.append(line)
    return "\n".join(kept)
