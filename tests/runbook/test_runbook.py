"""The runbooks are docs that cannot drift: their commands are read from the Markdown and run,
top to bottom, on a real sandbox, each with the exit code the runbook says it has."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from runbook.markdown import Block, inline_railguard_commands, parse_runbook, prose
from runbook.sandbox import REPO_ROOT, Sandbox
from runbook.situations import GIVEN, SANDBOX_ACTIONS

RUNBOOKS = [REPO_ROOT / "docs" / "runbook.md", REPO_ROOT / "docs" / "runbook.es.md"]


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_block_of_the_runbook_is_either_run_or_marked_not_runnable_with_a_reason(path: Path) -> None:
    blocks = parse_runbook(path)
    problems = [f"{path.name}:{block.line}: {problem}" for block in blocks for problem in block.problems]
    assert not problems, "\n".join(problems)
    assert sum(block.kind == "run" for block in blocks) >= 20
    unknown = [f"{path.name}:{b.line}: given={b.given}" for b in blocks if b.given and b.given not in GIVEN]
    unknown += [f"{path.name}:{b.line}: sandbox={a}" for b in blocks for a in b.sandbox if a not in SANDBOX_ACTIONS]
    assert not unknown, "situations the test cannot make: " + ", ".join(unknown)


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_railguard_command_in_the_prose_is_one_the_blocks_run_or_list(path: Path) -> None:
    commands = [command.text.split() for block in parse_runbook(path) for command in block.commands]
    missing = [f"{path.name}:{line}: `{text}`" for line, text in inline_railguard_commands(path)
               if not any(words[:len(text.split())] == text.split() for words in commands)]
    assert not missing, "mentioned but neither run nor listed as not runnable:\n" + "\n".join(missing)


def test_both_runbooks_hold_the_same_commands_in_the_same_order_with_the_same_exit_codes() -> None:
    english, spanish = ([block.shape() for block in parse_runbook(path)] for path in RUNBOOKS)
    assert english == spanish


def test_the_runbooks_cover_each_deploy_option_restore_drill_and_every_alert() -> None:
    blocks = parse_runbook(RUNBOOKS[0])
    run = {command.text for block in blocks if block.kind == "run" for command in block.commands}
    for command in ("railguard release", "railguard hook install /srv/git/tasks.git", "git push origin main",
                    "railguard gate list", "railguard status", "railguard smoke", "railguard rollback",
                    "railguard backup", "railguard backups verify --all", "railguard restore", "railguard drill",
                    "railguard replicate", "railguard monitor list", "railguard schedule"):
        assert command in run, command
    assert set(GIVEN) == {block.given for block in blocks if block.given}, "every situation is used by a block"
    assert set(SANDBOX_ACTIONS) == {a for block in blocks for a in block.sandbox}


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_each_alert_the_runbook_explains_is_shown_to_the_reader_by_its_title(path: Path) -> None:
    alerts = [block.alert for block in parse_runbook(path) if block.alert]
    assert len(alerts) >= 6
    text = prose(path)
    missing = [alert for alert in alerts if f"**{alert}" not in text]
    assert not missing, f"alert titles the reader cannot see in {path.name}: {missing}"


def test_the_readme_lists_both_runbooks() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/runbook.md)" in readme and "(docs/runbook.es.md)" in readme


# Every command of the runbook is its own railguard process (about a hundred of them, each paying
# the interpreter's and railguard's start-up): on CI's busy 2-core machine that alone has taken
# close to the suite-wide 300 s per test, so this test gets its own, larger limit.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_the_runbook_runs_top_to_bottom_on_a_real_sandbox(path: Path, sandbox: Sandbox) -> None:
    for block in parse_runbook(path):
        sent_before = len(sandbox.alert_titles())
        if block.kind == "not-run":
            for action in block.sandbox:
                SANDBOX_ACTIONS[action](sandbox)
            _check_alert(sandbox, path, block, sent_before)
            continue
        situation = GIVEN[block.given](sandbox) if block.given else contextlib.nullcontext()
        with situation:
            _check_alert(sandbox, path, block, sent_before)
            for command in block.commands:
                _run(sandbox, path, block, command)


def _check_alert(sandbox: Sandbox, path: Path, block: Block, sent_before: int) -> None:
    if block.alert:
        sent = sandbox.alert_titles()[sent_before:]
        assert any(title.startswith(block.alert) for title in sent), (
            f"{path.name}:{block.line}: the runbook says this sends the alert {block.alert!r}; sent: {sent}")


def _run(sandbox: Sandbox, path: Path, block: Block, command) -> None:
    result = sandbox.run(command.text)
    assert result.returncode == command.expected_exit, (
        f"{path.name}:{command.line}: `{command.text}` exited {result.returncode}, the runbook says "
        f"{command.expected_exit}{f' (given {block.given})' if block.given else ''}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
