"""Rendering: human tables on a terminal, JSON for scripts, one-line errors with a hint.

``--json`` writes exactly one JSON document to stdout, also on failure
(``{"ok": false, "error": ..., "hint": ..., "exit_code": ...}``), so a script never has to
parse the human form; the long-running commands (``daemon``, ``monitor``) write one JSON
document per line instead. Progress bars appear only when stderr is a terminal: under cron or
in a pipe railguard is silent except for its result. ``--quiet`` drops even the result (stdout
stays empty; errors and warnings still go to stderr) unless ``--json`` asked for the document,
and ``-v`` logs railguard's events on stderr (``-vv``: debug).

The three modes are context variables, not globals: a caller running several commands in one
process (the tests) starts each command from the defaults (:func:`start_command`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar, Token
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from railguard.secrets import redact, redact_document

if TYPE_CHECKING:
    from rich.console import Console

# rich (~100 ms to import) is imported where something is drawn, not when the command line
# starts: `railguard --help`, `status --json` and a cron `backup --quiet` draw nothing with it.

_json_mode: ContextVar[bool] = ContextVar("json_mode", default=False)
_quiet_mode: ContextVar[bool] = ContextVar("quiet_mode", default=False)
_verbosity: ContextVar[int] = ContextVar("verbosity", default=0)

JSON_HELP = "Print one JSON document for scripts instead of a table."


def remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``--json`` given before the subcommand (the root's) or after it: either turns it on."""
    wanted = bool(value) or _json_mode.get()
    _json_mode.set(wanted)
    return wanted


def remember_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    wanted = bool(value) or _quiet_mode.get()
    _quiet_mode.set(wanted)
    return wanted


def remember_verbosity(ctx: click.Context, param: click.Parameter, value: int) -> int:
    # -v before and after the subcommand add up, as borg's and restic's do.
    level = (value or 0) + _verbosity.get()
    _verbosity.set(level)
    return level


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` for a command that reports, passed to it as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, callback=remember_json, expose_value=True,
                        is_eager=True, help=JSON_HELP)(function)


def json_mode() -> bool:
    return _json_mode.get()


def quiet_mode() -> bool:
    return _quiet_mode.get()


def verbosity() -> int:
    return _verbosity.get()


def start_command() -> tuple[Token[bool], Token[bool], Token[int]]:
    """One command's modes start off, until its ``--json``, ``--quiet`` or ``-v`` says otherwise;
    give the token to :func:`end_command` (a caller running several commands in one process,
    such as the tests, must not inherit the last one's modes)."""
    return _json_mode.set(False), _quiet_mode.set(False), _verbosity.set(0)


def end_command(tokens: tuple[Token[bool], Token[bool], Token[int]]) -> None:
    json_token, quiet_token, verbosity_token = tokens
    _verbosity.reset(verbosity_token)
    _quiet_mode.reset(quiet_token)
    _json_mode.reset(json_token)


@contextlib.contextmanager
def command_modes() -> Iterator[None]:
    """Around a command's callback, once every option is parsed: ``--quiet`` sends stdout to
    nowhere (unless ``--json`` asked for the document: a script that asked gets it) and ``-v``
    logs on stderr."""
    with contextlib.ExitStack() as stack:
        if verbosity():
            stack.enter_context(log_to_stderr(logging.DEBUG if verbosity() > 1 else logging.INFO))
        if quiet_mode() and not json_mode():
            sink = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(sink))
        yield


@contextlib.contextmanager
def log_to_stderr(level: int = logging.INFO) -> Iterator[None]:
    """railguard's log records as one logfmt line each on stderr (journald, docker logs), at
    ``level`` or below. Nested use (``monitor -v``) keeps one handler and the lowest level."""
    from railguard.logfmt import LogfmtFormatter

    logger = logging.getLogger("railguard")
    previous = logger.level
    ours = [h for h in logger.handlers if isinstance(h.formatter, LogfmtFormatter)]
    handler = None
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LogfmtFormatter())
        logger.addHandler(handler)
    logger.setLevel(min(level, previous) if previous else level)
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(previous)


@contextlib.contextmanager
def json_mode_if(wanted: bool) -> Iterator[None]:
    """JSON mode while rendering an error that came before ``--json``'s own callback ran."""
    token = _json_mode.set(True) if wanted else None
    try:
        yield
    finally:
        if token is not None:
            _json_mode.reset(token)


def stdout() -> Console:
    from rich.console import Console

    # In a pipe or a log there is no terminal width to respect: never wrap a table row there.
    width = None if sys.stdout.isatty() else 240
    return Console(soft_wrap=True, highlight=False, width=width)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def emit_json(document: Any) -> None:
    # Round-trip through JSON first, so dates and paths are strings that redaction sees too.
    plain = json.loads(json.dumps(document, default=_jsonable, ensure_ascii=False))
    click.echo(json.dumps(redact_document(plain), indent=2, ensure_ascii=False))


def emit_json_line(document: Any) -> None:
    """One document on one line, flushed: the form of ``--json`` for a long-running command."""
    plain = json.loads(json.dumps(document, default=_jsonable, ensure_ascii=False))
    click.echo(json.dumps(redact_document(plain), ensure_ascii=False))
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error(message: str, hint: str | None, *, code: int | None = None, more: dict[str, Any] | None = None) -> None:
    """The one-line error (and hint) on stderr; in JSON mode also the one document, with ``more``
    (what the command found before it failed: a blocked deploy's pre-deploy steps)."""
    # An error may echo what a server sent back, which may echo a secret it was sent.
    message, hint = redact(message), None if hint is None else redact(hint)
    if json_mode() and code is not None:
        emit_json({"ok": False, "error": message, "hint": hint, "exit_code": int(code), **(more or {})})
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)


def warning(message: str) -> None:
    click.echo(f"warning: {redact(message)}", err=True)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    # Every cell as Text, never as a string, which rich would read as markup: a reason from the
    # world ("[apps.x]", "[Errno 28]", ":warning:") is shown as it is, not as a style or an emoji
    # (and rich's emoji table, ~10 ms to import, stays out).
    heading = None if title is None else Text(title, style="table.title")  # the style rich gives a str title
    grid = Table(title=heading, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(Text(column), justify="right" if column in {"size", "ratio", "age", "raw"} else "left")
    for row in rows:
        grid.add_row(*(Text(redact(str(cell))) for cell in row))
    stdout().print(grid)


def human_size(size: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """A :data:`railguard.progress.Progress` callback drawing one bar on stderr, or None when silent.

    Silent (None: the library then reports nothing) unless stderr is a terminal and neither
    ``--json`` nor ``--quiet`` is on: under cron, in a pipe or in a script there is no bar. One
    unit, as in the summaries (:func:`human_size`: MiB, binary); a waiting stage shows seconds;
    a stage with no measure (the integrity check) shows a pulsing bar and what it has done so far.
    The bar is removed when the block ends, so the result printed next stands alone.
    """
    if not enabled or json_mode() or quiet_mode() or not sys.stderr.isatty():
        yield None
        return
    # rich's progress module only where a bar is drawn: every other command starts without it.
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from railguard.progress import STAGES, WAITING_STAGES

    class Amount(ProgressColumn):
        def render(self, task: Any) -> Text:
            done, total = int(task.completed), int(task.total or 0)
            if task.fields.get("waiting"):
                return Text(f"{done / 1000:.0f}s / {total / 1000:.0f}s")
            if not total:  # nothing measures it while it runs: the pulsing bar says so
                return Text(human_size(done) if done else "")
            return Text(f"{human_size(done)} / {human_size(total)}")

    with Progress(TextColumn("{task.description:<16}"), BarColumn(), Amount(), TimeElapsedColumn(),
                  console=stderr(), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=STAGES.get(stage, stage), completed=done, total=total or None,
                       waiting=stage in WAITING_STAGES)

        yield update
