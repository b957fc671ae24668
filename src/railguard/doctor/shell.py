"""Just enough of POSIX shell to reason about a health command or a start script.

``shlex`` (standard library) tokenises, with ``punctuation_chars`` so that ``||``, ``&&``,
``;``, ``|`` and ``&`` come out as operators. On top of that: a command line becomes an
and-or list of pipelines of simple commands, which is what decides an exit status. No
expansion, no subshells: the rules only need to know which command's status is returned and
whether something swallows a failure.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

OPERATORS = {"||", "&&", ";", "|", "&", "\n"}


@dataclass
class Pipeline:
    commands: list[list[str]] = field(default_factory=list)  #: each a list of words
    #: the operator that joins this pipeline to the previous one: None, "&&", "||", ";", "&"
    joined_by: str | None = None

    @property
    def deciding(self) -> list[str]:
        """Without ``pipefail`` a pipeline's status is its last command's."""
        return self.commands[-1] if self.commands else []


class ShellSyntaxError(ValueError):
    pass


def tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ShellSyntaxError(str(exc)) from None


def and_or_list(text: str) -> list[Pipeline]:
    """``a | b && c || d; e`` → pipelines [a|b], [c] (&&), [d] (||), [e] (;)."""
    pipelines = [Pipeline()]
    current: list[str] = []
    for token in tokens(text):
        if token in ("|", "||", "&&", ";", "&", ";;", "|&"):
            if current:
                pipelines[-1].commands.append(current)
                current = []
            if token in ("|", "|&"):
                continue
            pipelines.append(Pipeline(joined_by=token))
        else:
            current.append(token)
    if current:
        pipelines[-1].commands.append(current)
    return [p for p in pipelines if p.commands]


def program(command: list[str]) -> tuple[str, list[str]]:
    """The program a simple command runs, past ``VAR=x`` assignments and wrappers
    (``exec``, ``env``, ``nice``, ``timeout N``): ``("curl", [args...])``."""
    words = list(command)
    while words:
        word = words[0]
        if "=" in word and not word.startswith("-") and word.split("=", 1)[0].isidentifier():
            words.pop(0)
        elif word in ("exec", "nice", "nohup", "command"):
            words.pop(0)
        elif word == "env":
            words.pop(0)
            while words and (words[0].startswith("-") or "=" in words[0]):
                words.pop(0)
        elif word == "timeout":
            words.pop(0)
            while words and words[0].startswith("-"):
                words.pop(0)
            if words:
                words.pop(0)  # the duration
        else:
            break
    if not words:
        return "", []
    return words[0].rsplit("/", 1)[-1], words[1:]


def swallows_failure(pipelines: list[Pipeline]) -> str | None:
    """The text of a tail that makes the whole list succeed whatever came before
    (``|| exit 0``, ``|| true``, ``; exit 0``), or None."""
    if len(pipelines) < 2:
        return None
    last = pipelines[-1]
    words = last.deciding
    always_succeeds = words in (["true"], [":"], ["exit", "0"], ["exit"]) and len(last.commands) == 1
    if not always_succeeds:
        return None
    if words == ["exit"] and last.joined_by == "||":
        return None  # `|| exit` returns the failing status: harmless
    if last.joined_by in ("||", ";", "&", "\n"):
        return f"{last.joined_by} {' '.join(words)}".replace("\n ", "newline ")
    return None


@dataclass
class ScriptCommand:
    line: int  #: 1-based line where the command starts
    end_line: int
    text: str
    pipelines: list[Pipeline]


def script_commands(text: str) -> list[ScriptCommand]:
    """Top-level commands of a shell script with their lines (continuations joined).

    Lines inside ``if``/``while``/functions are kept as they come: the rules only look at
    the top-level start sequence (sleep, the final exec), which is flat in start scripts.
    """
    commands: list[ScriptCommand] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        start = index
        joined = lines[index]
        while joined.endswith("\\") and index + 1 < len(lines):
            index += 1
            joined = joined[:-1] + " " + lines[index]
        index += 1
        stripped = joined.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            pipelines = and_or_list(stripped)
        except ShellSyntaxError:
            pipelines = []
        commands.append(ScriptCommand(start + 1, index, stripped, pipelines))
    return commands
