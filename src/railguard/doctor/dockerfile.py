"""The Dockerfile as instructions: what the rules read.

Parsing uses ``dockerfile-parse`` (containerbuildsystem, the parser behind OSBS/atomic-reactor):
it already handles line continuations, comments inside continued instructions and the
``# escape=`` directive, and it keeps each instruction's first and last line, which the
findings and ``--fix`` need. A regex per line would get continued HEALTHCHECK and RUN lines
wrong. On top of it this module adds what the library leaves to its caller: exec form vs
shell form, and HEALTHCHECK's options.
"""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser


@dataclass(frozen=True)
class Instruction:
    keyword: str  #: upper case: FROM, RUN, CMD, HEALTHCHECK, ...
    value: str  #: arguments with continuations joined
    line: int  #: 1-based first line
    end_line: int  #: 1-based last line
    content: str  #: the raw text, continuations included
    stage: int  #: index of the build stage (FROM) it belongs to

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of ``CMD ["a", "b"]`` (exec form), or None for shell form."""
        return parse_exec_form(self.value)


def parse_exec_form(value: str) -> list[str] | None:
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        # Docker itself falls back to shell form when the JSON is invalid.
        return None
    if isinstance(document, list) and all(isinstance(item, str) for item in document):
        return document
    return None


@dataclass(frozen=True)
class Healthcheck:
    instruction: Instruction
    options: dict[str, str]
    #: ``None`` for ``HEALTHCHECK NONE``.
    kind: str | None  #: "exec" (CMD [..]), "shell" (CMD ... or CMD-SHELL), or None
    #: exec form: the argv; shell form: the command string for /bin/sh -c.
    argv: list[str] | None = None
    shell: str | None = None


@dataclass
class Dockerfile:
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def final_stage(self) -> list[Instruction]:
        """Instructions of the last stage: the image that runs."""
        if not self.instructions:
            return []
        last = self.instructions[-1].stage
        return [i for i in self.instructions if i.stage == last]

    def last(self, keyword: str) -> Instruction | None:
        """The effective instruction of the final stage (Docker keeps only the last CMD, ...)."""
        found = [i for i in self.final_stage if i.keyword == keyword]
        return found[-1] if found else None

    def all(self, keyword: str, *, final_stage: bool = True) -> list[Instruction]:
        source = self.final_stage if final_stage else self.instructions
        return [i for i in source if i.keyword == keyword]

    def healthcheck(self) -> Healthcheck | None:
        instruction = self.last("HEALTHCHECK")
        return parse_healthcheck(instruction) if instruction else None

    def env(self) -> dict[str, str]:
        """ENV and ARG defaults of the final stage, as written (no substitution)."""
        values: dict[str, str] = {}
        for instruction in self.final_stage:
            if instruction.keyword in ("ENV", "ARG"):
                values.update(_assignments(instruction.value, legacy=instruction.keyword == "ENV"))
        return values


def parse(text: str) -> Dockerfile:
    parser = DockerfileParser(fileobj=io.StringIO(text), env_replace=False)
    result = Dockerfile()
    stage = -1
    for item in parser.structure:
        keyword = item["instruction"].upper()
        if keyword in ("COMMENT",):
            continue
        if keyword == "FROM":
            stage += 1
        result.instructions.append(Instruction(keyword=keyword, value=item["value"], line=item["startline"] + 1,
                                               end_line=item["endline"] + 1, content=item["content"],
                                               stage=max(stage, 0)))
    return result


def parse_healthcheck(instruction: Instruction) -> Healthcheck:
    """``HEALTHCHECK [--opt=v ...] CMD ...`` or ``HEALTHCHECK NONE``."""
    rest = instruction.value.strip()
    options: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    word, _, command = rest.partition(" ")
    if word.upper() == "NONE":
        return Healthcheck(instruction, options, None)
    if word.upper() != "CMD":
        return Healthcheck(instruction, options, "shell", shell="")  # no command: reported as missing
    command = command.strip()
    argv = parse_exec_form(command)
    if argv is not None:
        # ["CMD-SHELL", "..."] is the JSON spelling of the shell form.
        if argv and argv[0] == "CMD-SHELL":
            return Healthcheck(instruction, options, "shell", shell=" ".join(argv[1:]))
        if argv and argv[0] == "CMD":
            argv = argv[1:]
        return Healthcheck(instruction, options, "exec", argv=argv)
    return Healthcheck(instruction, options, "shell", shell=command)


def _assignments(value: str, *, legacy: bool) -> dict[str, str]:
    """``ENV A=1 B="2 3"`` / ``ARG A=1`` / the legacy ``ENV A 1``."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    if legacy and words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    pairs = {}
    for word in words:
        name, sep, item = word.partition("=")
        pairs[name] = item if sep else ""
    return pairs
