"""Parsing a logfmt line: the same fields as the character-at-a-time parser it replaced, for
every line, well formed or not, and the inverse of ``format_line``."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

from railguard.logfmt import format_line, parse_line


def parse_one_character_at_a_time(line: str) -> dict[str, str]:
    """The parser before quoted values were cut with ``str.find`` (railguard 079cb63), kept as
    the reference for what every line means."""
    fields: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        eq = line.find("=", i)
        if eq < 0:
            break
        key = line[i:eq]
        i = eq + 1
        if i < n and line[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                    chars.append({"n": "\n", "r": "\r"}.get(line[i], line[i]))
                else:
                    chars.append(line[i])
                i += 1
            i += 1
            fields[key] = "".join(chars)
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            fields[key] = line[i:end]
            i = end
    return fields


def test_every_short_line_parses_as_the_reference_parser_reads_it() -> None:
    # Every string of up to 7 of the characters that mean something to the parser (and one
    # that does not), so each escape, quote and cut at the end of a line is met somewhere.
    alphabet = 'k="\\ n'
    lines = 0
    for length in range(8):
        for letters in itertools.product(alphabet, repeat=length):
            line = "".join(letters)
            assert parse_line(line) == parse_one_character_at_a_time(line), repr(line)
            lines += 1
    assert lines == sum(len(alphabet) ** length for length in range(8))


def test_a_line_railguard_writes_reads_back_as_its_fields() -> None:
    fields = {"time": datetime(2026, 11, 30, 12, tzinfo=timezone.utc), "event": "prune", "backup": "tasks-20261130",
              "reason": 'not kept by any rule: "daily" \\ said\nno\r', "policy": "keep 7 daily, 4 weekly",
              "empty": "", "unicode": "disco lleno: é"}
    line = format_line(fields)
    assert parse_line(line) == parse_one_character_at_a_time(line) == {
        key: "2026-11-30T12:00:00+00:00" if key == "time" else value for key, value in fields.items()}
