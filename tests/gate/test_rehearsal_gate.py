"""The gate with the pre-deploy rehearsal (issue 17): a pushed commit whose migration fails on the
production rows passes its tests, is rehearsed on a copy of the real data, and is never deployed;
the gate follows the tests' ``success`` with a ``failure`` and keeps the app's output in the run
log. A good migration is rehearsed and deployed."""

from __future__ import annotations

import contextlib
import pwd
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from drill.sites import files_of, toml_value
from gate.conftest import (FORGEJO_TOKEN, PASSWORD, SECRETS, Gate, GateConfig, Remote, RunningCapRover,
                           bwrap_skip_reason, secrets_in_files, serve_gate, user_skip_reason)
from rehearsal.candidates import (
    END_OF_MIGRATIONS,
    EXAMPLE,
    FAILS_ON_EXISTING_ROWS,
    GOOD_MIGRATION,
    make_production_database,
    take_verified_backup,
)

from secret_hunt import decoded_loot, leaks

from railguard.drill.boot import OUTPUT_NAME
from railguard.rehearsal import rehearse as rehearse_module
from railguard.rehearsal.rehearse import SANDBOXED
from railguard.rehearsal.shape import read_shape
from railguard.rehearsal.step import UNSANDBOXED
from railguard.rehearsal.steps import deploy_steps


#: What ``user:NAME`` runs the app with: an interpreter every account may run.
SYSTEM_PYTHON = "/usr/bin/python3"




@pytest.fixture
def passable_scratch() -> Iterator[Path]:
    """A scratch directory another account may pass through (0711; pytest's own temporary
    directories are root's, 0700), for the ``user:NAME`` rehearsal."""
    directory = Path(tempfile.mkdtemp(prefix="railguard-rehearsal-scratch-"))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def with_migration(source: str, migration: tuple[int, str, str]) -> str:
    version, name, sql = migration
    entry = f"    ({version}, {name!r}, \"\"\"\n        {sql}\n    \"\"\"),\n"
    return source.replace(END_OF_MIGRATIONS, entry + END_OF_MIGRATIONS, 1)


@pytest.fixture
def production(tmp_path: Path) -> Path:
    return make_production_database(tmp_path / "prod" / "data" / "tasks.db", rows=25)


#: What the gate's sandbox must show for the drill's command (this interpreter and its venv):
#: gate.isolation_paths, as an operator names a toolchain outside /usr.
INTERPRETER_PATHS = sorted({sys.prefix, sys.base_prefix})


@pytest.fixture
def start_rehearsed_gate(tmp_path: Path, write_config: Callable[..., GateConfig], gate_env: dict[str, str],
                         remote: Remote, production: Path,
                         monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gate]]:
    """Start the gate as ``railguard gate serve`` does (steps_for=deploy_steps), for an app whose
    drill starts the example app from the pushed tree, with a verified backup of production;
    ``env``: the gate's environment (default ``gate_env``), ``gate``: more [gate] settings,
    ``python``: the drill's interpreter, ``scratch``: the drill's scratch_dir."""
    with contextlib.ExitStack() as stack:
        def start(env: dict[str, str] | None = None, gate: dict[str, object] | None = None,
                  python: str = sys.executable, scratch: Path | None = None) -> Gate:
            env = gate_env if env is None else env
            for name in gate_env:
                monkeypatch.delenv(name, raising=False)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            # The app's live database, its backups (the pre-deploy snapshots) in tmp_path/backups.
            config = write_config(smoke=True, gate={"isolation_paths": INTERPRETER_PATHS, **(gate or {})},
                                  database=production)
            _add_rehearsal(config, tmp_path, production, remote, python=python, scratch=scratch)
            return stack.enter_context(serve_gate(config, env, remote, steps_for=deploy_steps))

        yield start


@pytest.fixture
def rehearsed_gate(start_rehearsed_gate: Callable[..., Gate]) -> Gate:
    return start_rehearsed_gate()


def _add_rehearsal(config: GateConfig, tmp_path: Path, production: Path, remote: Remote, *, python: str,
                   scratch: Path | None) -> None:
    text = config.path.read_text()
    if scratch is None:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
    text += "\n".join([
        "", "[apps.tasks.drill]", f"command = {toml_value([python, 'app.py'])}",
        'env = { DB_PATH = "{db}" }', 'start_timeout = "30s"', 'stop_grace = "5s"',
        f"scratch_dir = {toml_value(str(scratch))}",
        "", "[[apps.tasks.drill.assertions]]", 'sql = "SELECT count(*) FROM tasks"', 'expect = "> 0"',
        "", "[apps.tasks.rehearsal]", 'timeout = "6s"', ""])
    config.path.write_text(text)
    take_verified_backup(production, tmp_path / "backups")
    remote.commit("the example app", {"app.py": (EXAMPLE / "app.py").read_text()})


def test_a_migration_that_fails_on_production_rows_is_blocked_and_the_gate_posts_failure(
        rehearsed_gate: Gate, remote: Remote, captain: RunningCapRover, forgejo, inbox, production: Path) -> None:
    gate = rehearsed_gate
    before = files_of(production.parent)  # the snapshot step reads it (files_of)
    sha = remote.commit("priority", {"app.py": with_migration((EXAMPLE / "app.py").read_text(),
                                                              FAILS_ON_EXISTING_ROWS)})
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"], timeout=120)

    assert run["status"] == "blocked", run
    assert forgejo.states_for(sha) == ["pending", "success", "failure"]
    failure = forgejo.statuses_for(sha)[-1]
    assert failure.context == "railguard/tests"
    assert failure.description.startswith("tests passed, not deployed: rehearsal failed")
    assert "migration 3 (add task priority) failed" in failure.description
    assert "migration 3 (add task priority) failed" in run["summary"]
    assert "pre-deploy rehearsal: FAILED: " in run["log"]
    assert "  FAILED health " in run["log"]
    assert "  | tasks-app: migrations failed: migration 3 (add task priority) failed" in run["log"]
    assert "rows tasks: 25 -> 25" in run["log"]
    # The gate's default isolation (auto: bwrap where it runs) confined the pushed app too.
    isolation = gate.service.isolation
    assert isolation.isolated, isolation.describe()
    confined = (SANDBOXED if isolation.mode == "bwrap" else f"as user {isolation.user} (uid {isolation.uid})")
    assert "ok     start " in run["log"] and f"({confined})" in run["log"], run["log"]
    assert UNSANDBOXED not in run["log"]
    assert [d for d in captain.deployments if d.app == "tasks"] == [], "a blocked deploy reached CapRover"
    assert files_of(production.parent) == before, "production changed"
    assert any("migration 3 (add task priority) failed" in m["title"] + m["message"] for m in inbox.messages), \
        inbox.messages


def test_a_good_migration_is_rehearsed_then_deployed(rehearsed_gate: Gate, remote: Remote,
                                                      captain: RunningCapRover, forgejo) -> None:
    gate = rehearsed_gate
    sha = remote.commit("priority, with a default", {"app.py": with_migration((EXAMPLE / "app.py").read_text(),
                                                                              GOOD_MIGRATION)})
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"], timeout=120)

    assert run["status"] == "deployed", run
    assert forgejo.states_for(sha) == ["pending", "success"]
    assert "column tasks.priority INTEGER NOT NULL DEFAULT 0 added" in run["log"]
    assert [d.git_hash for d in captain.deployments if d.app == "tasks"] == [sha]


#: Put into the example app's code (after its imports): at start, before it migrates, the
#: pushed app hunts for the gate's secrets as the pushed test suite of tests/gate/test_isolation.py
#: does (the environ of the gate, its parent; the secret files; the state directory; its own
#: environment) and publishes the loot base64-encoded (past any scrubbing of literal strings)
#: in its output and in a table of the copy.
HUNT = '''
import base64 as _base64


def _hunt(secret_files, state_dir):
    found = []
    try:  # the process that started it: the gate (in the sandbox: the sandbox's own first process)
        with open(f"/proc/{os.getppid()}/environ", "rb") as environ:
            variables = environ.read().replace(b"\\0", b" ").decode("utf-8", "replace")
        found.append(f"environ of the parent: {variables}")
    except OSError as exc:
        found.append(f"environ of the parent: {exc}")
    for path in secret_files:
        try:
            with open(path) as secret:
                found.append(f"file {path}: {secret.read()}")
        except OSError as exc:
            found.append(f"file {path}: {exc}")
    try:
        found.append(f"state directory: {sorted(os.listdir(state_dir))}")
    except OSError as exc:
        found.append(f"state directory: {exc}")
    found.append("own environment: " + " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())))
    loot = _base64.b64encode("\\n".join(found).encode()).decode()
    print(f"attack: loot {loot}", file=sys.stderr, flush=True)
    database = sqlite3.connect(os.environ["DB_PATH"])
    database.execute("CREATE TABLE IF NOT EXISTS loot (value TEXT)")
    database.execute("INSERT INTO loot VALUES (?)", (loot,))
    database.commit()
    database.close()


_hunt(SECRET_FILES, STATE_DIR)
'''


@pytest.mark.parametrize("isolation", ["bwrap", "user:nobody", "none"],
                         ids=["bwrap", "user-nobody", "none-the-attack-works"])
def test_a_pushed_app_hunting_for_the_gates_secrets_in_its_rehearsal_finds_none(
        isolation: str, start_rehearsed_gate: Callable[..., Gate], gate_env: dict[str, str], remote: Remote,
        captain: RunningCapRover, tmp_path: Path, passable_scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = {"bwrap": bwrap_skip_reason, "user:nobody": lambda: user_skip_reason(SYSTEM_PYTHON)}.get(
        isolation, lambda: None)()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    # Another account must reach the interpreter and the scratch directory.
    options: dict[str, Any] = {"python": SYSTEM_PYTHON, "scratch": passable_scratch} \
        if isolation.startswith("user:") else {}
    env, secret_files = secrets_in_files(gate_env, tmp_path / "secrets")
    # What the rehearsal leaves of the copy and of the app's output, read as railguard reads the
    # copy's shape after the app stopped (a spy: the shape is still read, unchanged).
    seen: list[tuple[str, str]] = []

    def read_shape_and_keep(path: Path) -> Any:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as copy:
            dump = "\n".join(copy.iterdump())
        outputs = [directory / OUTPUT_NAME for directory in path.parents if (directory / OUTPUT_NAME).exists()]
        seen.append((dump, outputs[0].read_text(errors="replace") if outputs else ""))  # none before the start
        return read_shape(path)

    monkeypatch.setattr(rehearse_module, "read_shape", read_shape_and_keep)
    gate = start_rehearsed_gate(env=env, gate={"isolation": isolation}, **options)
    hunt = HUNT.replace("_hunt(SECRET_FILES, STATE_DIR)", f"_hunt({[str(path) for path in secret_files]!r}, "
                                                          f"{str(tmp_path / 'state')!r})")
    source = (EXAMPLE / "app.py").read_text().replace("\nimport time\n", "\nimport time\n" + hunt, 1)
    sha = remote.commit("innocent refactor", {"app.py": source})
    _, _, answer = gate.push_and_deliver()

    run = gate.wait_for_run(answer["run"], timeout=120)

    # The app served /health from inside the sandbox: the host's network is shared.
    assert "ok     health " in run["log"], run["log"]
    assert run["status"] == "deployed", run
    assert [d.git_hash for d in captain.deployments if d.app == "tasks"] == [sha]
    assert "  table loot added" in run["log"], run["log"]
    (copy_before, _), (copy_after, output) = seen
    found = decoded_loot(output)
    assert "own environment:" in found, found  # the hunt ran
    assert "INSERT INTO \"loot\"" in copy_after, copy_after  # and wrote its loot into the copy
    surfaces = {"run log": run["log"], "app output": output, "copy": copy_after, "decoded loot": found}
    if isolation == "none":
        # As railguard's own user the pushed app reads the secret files: the attack is real,
        # and the run says the app was not confined.
        assert leaks(found, SECRETS) == [FORGEJO_TOKEN, PASSWORD]
        assert f"warning: {UNSANDBOXED}" in run["log"], run["log"]
        return
    assert {where: leaks(text, SECRETS) for where, text in surfaces.items()} == {where: [] for where in surfaces}
    assert "queue.sqlite3" not in found, found  # the state directory was out of reach
    confined = SANDBOXED if isolation == "bwrap" else f"as user nobody (uid {pwd.getpwnam('nobody').pw_uid})"
    assert f"({confined})" in run["log"], run["log"]
    assert UNSANDBOXED not in run["log"]
