"""The deploy rehearsal: boot the candidate commit on a private copy of the pre-deploy snapshot
before the commit goes to CapRover, with the drill's own machinery (:mod:`railguard.drill.boot`).

The order of work, and why:

1. A private workspace (``mkdtemp`` in the drill's ``scratch_dir``, never inside the production
   data directory) watched by the drill's watchdog from the start: a railguard killed by
   SIGKILL leaves no app, container or copy behind. What the app may see and write is in its
   ``sandbox/`` (``tree``, ``data``); the app's output file stays beside it, out of its reach,
   since railguard reads that file back (an app that could swap it for a link would have
   railguard copy any file into the report).
2. The candidate: the exact tar CapRover will get, extracted into ``sandbox/tree`` with the pushed-tree
   rules of :func:`railguard.deploy.suite.extract_tree` (no member outside it), or, in Docker
   mode (``drill.image``), built with the local Docker engine from that same tar
   (``docker build -`` with captain-definition's ``dockerfilePath``) into a throw-away tag.
3. The copy: the snapshot verified again on the way out (sha256, decompression, raw sha256,
   ``quick_check``: the snapshot passed ``integrity_check`` moments ago) into ``sandbox/data/``. The
   production database is never opened: the copy comes from the backup file.
4. The shape of the copy before the app touches it (:func:`railguard.rehearsal.shape.read_shape`).
5. The boot: start, ``/health`` 200 within ``timeout``, ``migrations_ok 1``, ``app_started_at``
   after the rehearsal started the app, the drill's SQL assertions, stop. Pushed code (the
   gate's rehearsal in command mode) starts under the gate's isolation
   (:mod:`railguard.deploy.isolation`) with one difference from the test suite's sandbox: the
   host's network, for the health check on 127.0.0.1 (docs/deploy.md, "Rehearsed deploys").
6. The shape after the app migrated the copy, compared with the one before: what the
   migrations changed (schema, rows per table), reported whether the boot passed or not.
7. A failed boot names the migration that failed when the app printed the documented line
   (:data:`MIGRATION_FAILED`), and keeps the last lines of the app's output.
8. The workspace (and the image) go on every path.

A failed rehearsal is a result, not an exception (as a failed drill is): :func:`rehearse`
returns a :class:`RehearsalReport`; the pre-deploy step (:mod:`railguard.rehearsal.step`)
turns it into a failed step, which blocks the deploy.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from railguard.pages.copies import AnyRecord, checked_copy
from railguard.config import AppSettings, DrillSettings, Settings
from railguard.deploy.isolation import NO_ISOLATION, Isolation
from railguard.deploy.suite import UnsafeTree, extract_tree
from railguard.drill import process
from railguard.drill.boot import AppBoot, BootReport, Confined, DrillStepFailed, Step, make_workspace, tail, timed_step
from railguard.drill.launch import LaunchPlan, expand
from railguard.errors import ExitCode, RailguardError
from railguard.rehearsal.shape import Shape, ShapeChange, compare, read_shape

#: The line an app prints (stdout or stderr) when a migration fails, anywhere in the line:
#: ``migration 3 (add priority) failed: NOT NULL constraint failed: tasks.priority`` or
#: ``migration 0003_priority failed: ...``. docs/deploy.md, "Rehearsed deploys".
MIGRATION_FAILED = re.compile(r"\bmigration\s+(?P<id>[\w.:-]+)(?:\s+\((?P<name>[^)]*)\))?\s+failed:\s*(?P<error>.*)")
#: Longest wait for ``docker build`` of the candidate (a cold build of a small app's image).
DOCKER_BUILD_TIMEOUT = 15 * 60
CAPTAIN_DEFINITION = "captain-definition"
#: How a bwrap-confined candidate ran, in the ``start`` step (docs/deploy.md, "Rehearsed deploys").
SANDBOXED = "bwrap sandbox, host network, only the tree and the copy mounted"


class RehearsalFailed(DrillStepFailed):
    """The candidate could not be laid out or built (the boot's own failures are DrillStepFailed)."""


@dataclass(frozen=True)
class FailedMigration:
    """What the app said about the migration that failed (:data:`MIGRATION_FAILED`)."""

    id: str
    name: str | None
    error: str

    def describe(self) -> str:
        return f"migration {self.id}" + (f" ({self.name})" if self.name else "") + f" failed: {self.error}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "error": self.error}


def find_failed_migration(lines: list[str]) -> FailedMigration | None:
    """Pure: the last documented "migration ... failed:" line in the app's output, if any."""
    for line in reversed(lines):
        match = MIGRATION_FAILED.search(line)
        if match:
            return FailedMigration(match["id"], match["name"], match["error"].strip())
    return None


@dataclass
class RehearsalReport(BootReport):
    app: str
    commit: str
    backup: str  # the snapshot (or backup) the copy came from
    mode: str  # command | docker
    started_at: datetime
    failed_migration: FailedMigration | None = None
    #: What the candidate's migrations changed on the copy; None when the copy was never made.
    change: ShapeChange | None = None
    #: How the candidate's app was confined ("bwrap sandbox, ..."); None: as railguard's own user.
    sandbox: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.passed, "app": self.app, "commit": self.commit, "backup": self.backup,
                "mode": self.mode, "started_at": self.started_at.isoformat(), "result": self.result,
                "failed_step": self.failed_step, "reason": self.reason, "hint": self.hint,
                "exit_code": int(self.exit_code), "seconds": round(self.seconds, 3), "port": self.port,
                "app_pid": self.app_pid, "steps": [step.as_dict() for step in self.steps],
                "failed_migration": self.failed_migration.as_dict() if self.failed_migration else None,
                "shape": self.change.as_dict() if self.change is not None else None,
                "sandbox": self.sandbox, "warnings": self.warnings, "output_tail": self.output_tail}

    def summary(self) -> str:
        """One line: the verdict, with the failed migration when the app named it."""
        head = f"rehearsal of {self.commit[:12]} on {self.backup}"
        if self.passed:
            changed = "schema changed" if self.change is not None and self.change.schema_changed \
                else "schema unchanged"
            return f"{head} passed ({changed}, {self.seconds:.1f}s)"
        why = self.failed_migration.describe() if self.failed_migration else (self.reason or self.result)
        return f"{head} {self.result}" + (f" at {self.failed_step}" if self.failed_step else "") + f": {why}"

    def lines(self) -> list[str]:
        """The report as the CLI and the gate's run log show it."""
        out = [f"{'ok    ' if s.ok else 'FAILED'} {s.name:<11} {s.seconds:5.1f}s  {s.detail}" for s in self.steps]
        if self.change is not None:
            out += self.change.lines()
        if not self.passed:
            if self.reason and self.failed_migration:
                out.append(f"reason: {self.reason}")
            if self.hint:
                out.append(f"hint: {self.hint}")
            if self.output_tail:
                out.append("app output (last lines):")
                out += [f"  | {line}" for line in self.output_tail]
        out += [f"warning: {warning}" for warning in self.warnings]
        return out


def effective_drill(app: AppSettings) -> DrillSettings:
    """The drill settings the rehearsal boots with: the rehearsal's command and timeout instead
    of the drill's when given (the rest, env, checks, assertions, stop_grace, is the drill's)."""
    rehearsal = app.rehearsal
    update: dict[str, Any] = {}
    if rehearsal.command and not app.drill.image:
        update["command"] = list(rehearsal.command)
    if rehearsal.timeout is not None:
        update["start_timeout"] = rehearsal.timeout
    return app.drill.model_copy(update=update)


def rehearse(settings: Settings, app_name: str, app: AppSettings, *, tar: bytes, commit: str,
             backup: AnyRecord, now: datetime, env: Mapping[str, str] = os.environ, docker: str = "docker",
             on_line: Callable[[str], None] | None = None, isolation: Isolation = NO_ISOLATION) -> RehearsalReport:
    """Boot ``commit`` (its ``git archive`` tar, the bytes CapRover gets) on a copy of ``backup``.

    ``on_line`` is told each step as it ends (the gate's run log). ``isolation``: how a command
    (not Docker) mode app is kept from railguard's secrets, for pushed code (the gate's); the
    default runs it as railguard's own user. Raises only for problems before the rehearsal
    starts (nothing to start, a command naming production)."""
    del settings  # the same signature as run_drill; the rehearsal needs nothing global yet
    drill = effective_drill(app)
    report = RehearsalReport(app_name, commit, backup.name, "docker" if drill.image else "command",
                             now.astimezone(timezone.utc))
    started = time.monotonic()
    workspace = make_workspace(drill, app.database, f"rehearsal-{app_name}")
    watchdog = process.Watchdog(docker=docker)
    watchdog.watch_workspace(workspace)
    rehearsal = _Rehearsal(app_name, app, drill, report, workspace, watchdog, env, docker, on_line, isolation)
    try:
        rehearsal.run(tar, backup)
        report.result, report.exit_code = "passed", ExitCode.OK
    except RailguardError as exc:
        report.result, report.exit_code = "failed", exc.exit_code
        report.reason, report.hint = exc.message, exc.hint
    except KeyboardInterrupt:
        report.result, report.exit_code, report.reason = "interrupted", ExitCode.INTERRUPTED, "interrupted"
        raise
    except Exception as exc:  # a bug or an unexpected OSError: still a failed rehearsal, then an error
        report.result, report.exit_code = "failed", ExitCode.ERROR
        report.reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.failed_step = next((step.name for step in report.steps if not step.ok), None)
        if not report.passed:
            with contextlib.suppress(OSError):
                everything = tail(rehearsal.boot.output, 1000)
                report.failed_migration = find_failed_migration(everything)
                report.output_tail = everything[-drill.output_tail_lines:]
        if rehearsal.boot.app_running:
            watchdog.trigger()  # the stop was cut short (a second Ctrl-C): the watchdog finishes it
        else:
            shutil.rmtree(workspace, onerror=lambda *args: report.warnings.append(
                f"cannot remove {args[1]}: {args[2][1]}"))
            watchdog.release()
        rehearsal.remove_image()
        report.seconds = time.monotonic() - started
    return report


class _Rehearsal:
    def __init__(self, app_name: str, app: AppSettings, drill: DrillSettings, report: RehearsalReport,
                 workspace: Path, watchdog: process.Watchdog, env: Mapping[str, str], docker: str,
                 on_line: Callable[[str], None] | None, isolation: Isolation = NO_ISOLATION) -> None:
        self.app_name = app_name
        self.app = app
        self.drill = drill
        self.report = report
        self.workspace = workspace
        self.env = env
        self.docker = docker
        self.on_line = on_line
        self.image: str | None = None
        self.isolation = isolation
        #: All the app may see and write (the module's docstring, step 1).
        self.sandbox = workspace / "sandbox"
        self.tree = self.sandbox / "tree"
        self.boot = AppBoot(app_name, drill, production_db=app.database, record=report, workspace=workspace,
                            watchdog=watchdog, env=env, docker=docker, placeholders={"tree": str(self.tree)},
                            cwd=str(self.tree), what="the candidate commit", on_step=self._told,
                            timeout_key=f"[apps.{app_name}.rehearsal] timeout",
                            confine=self._confine if isolation.isolated else None)

    def step(self, name: str) -> contextlib.AbstractContextManager[Step]:
        return timed_step(self.report, name, self._told)

    def _told(self, step: Step) -> None:
        if self.on_line is not None:
            self.on_line(f"rehearsal {'ok    ' if step.ok else 'FAILED'} {step.name}: {step.detail}")

    def run(self, tar: bytes, backup: AnyRecord) -> None:
        self.sandbox.mkdir()
        if self.drill.image:
            self._build(tar)
        else:
            self._extract(tar)
            self._warn_about_installed_code()
        with contextlib.ExitStack() as stack:
            copy, before = self._copy(stack, backup)
            try:
                self.boot.serve(copy, assertion_hint="The candidate's migrations left the copy failing the "
                                                     "drill's assertions: fix the migration before deploying")
            finally:
                with contextlib.suppress(Exception):  # a copy the app left unreadable: the boot's verdict stands
                    if self._still_a_file(copy):
                        self.report.change = compare(before, read_shape(copy))
            if self.on_line is not None and self.report.change is not None:
                for line in self.report.change.lines():
                    self.on_line(f"rehearsal {line}")

    def _extract(self, tar: bytes) -> None:
        with self.step("tree") as step:
            try:
                self.tree.mkdir()
                with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
                    extract_tree(archive, self.tree)
            except (tarfile.TarError, UnsafeTree, OSError) as exc:
                raise RehearsalFailed(f"cannot unpack the commit {self.report.commit[:12]}: {exc}",
                                      hint="The tree CapRover would get is not a usable tar") from exc
            step.detail = f"{self.report.commit[:12]} extracted ({len(tar)} bytes of tar)"

    def _warn_about_installed_code(self) -> None:
        """A command naming a file outside the candidate's tree (the installed app's path, as a
        drill command often does) would rehearse that code, not the commit's."""
        for part in self.drill.command[1:]:
            path = Path(expand(part, {"tree": str(self.tree)}))
            if path.is_absolute() and path.is_file() and self.tree not in path.parents:
                self.report.warnings.append(
                    f"the command runs {path}, outside the candidate's tree: this rehearsed that file, not the "
                    f"commit's code (name it with {{tree}} in [apps.{self.app_name}.rehearsal] command)")

    def _build(self, tar: bytes) -> None:
        """``docker build -`` of the tar CapRover gets, with its captain-definition's Dockerfile and
        the commit as CapRover passes it (the build arg CAPROVER_GIT_COMMIT_SHA)."""
        tag = f"railguard-rehearsal-{self.app_name.lower()}:{self.report.commit[:12]}"
        with self.step("build") as step:
            # --network host: as the drill's container runs (an engine may have no bridge network).
            argv = [self.docker, "build", "--quiet", "--network", "host", "--tag", tag, "--file", _dockerfile_path(tar),
                    "--label", f"railguard.rehearsal={self.app_name}",
                    "--build-arg", f"CAPROVER_GIT_COMMIT_SHA={self.report.commit}", "-"]
            try:
                built = subprocess.run(argv, input=tar, capture_output=True, timeout=DOCKER_BUILD_TIMEOUT,
                                       env=dict(self.env), check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RehearsalFailed(f"cannot build the candidate's image: {exc}",
                                      hint="Check that docker is installed and the engine runs") from exc
            if built.returncode != 0:
                with self.boot.output.open("ab") as output:
                    output.write(built.stdout + built.stderr)
                raise RehearsalFailed(f"docker build of {self.report.commit[:12]} failed (exit {built.returncode})",
                                      hint="The image CapRover would build does not build: see the output")
            self.image = tag
            self.boot.drill = self.drill.model_copy(update={"image": tag})
            step.detail = f"image {tag} {built.stdout.decode('utf-8', 'replace').strip()[:80]}"

    def _copy(self, stack: contextlib.ExitStack, backup: AnyRecord) -> tuple[Path, Shape]:
        """The verified copy in ``sandbox/data/``, and its shape before the candidate touches it."""
        with self.step("copy") as step:
            verified = stack.enter_context(checked_copy(backup, self.workspace, mode="quick"))
            data_dir = self.sandbox / "data"
            data_dir.mkdir()
            copy = data_dir / self.app.database.name
            os.rename(verified.path, copy)
            before = read_shape(copy)
            step.detail = f"{backup.name}: {verified.proven}, quick_check ok, {len(before.tables)} table(s)"
        return copy, before

    def _confine(self, plan: LaunchPlan) -> Confined:
        """The candidate's command under the gate's isolation, the host's network shared (the
        health check comes from railguard's side, on 127.0.0.1): bwrap shows it /usr, the
        isolation's read-only paths and ``sandbox/`` alone; ``user:NAME`` gets ``sandbox/``
        handed over (through descriptors, no link followed) and may only pass through the
        workspace (0711), so its output file stays railguard's."""
        isolation = self.isolation
        executable = shutil.which(plan.argv[0], path=plan.env.get("PATH", os.defpath))
        if executable is not None and not isolation.can_see(Path(executable), self.sandbox):
            named = plan.argv[0] if executable == plan.argv[0] else f"{plan.argv[0]} ({executable})"
            raise RehearsalFailed(f"the rehearsal's command {named} is outside what the sandbox sees",
                                  hint="Add its directory to gate.isolation_paths (the sandbox shows /usr, those "
                                       "paths and the candidate's tree), or install it under /usr")
        isolation.prepare(self.sandbox)
        if isolation.mode == "user":
            descriptor = os.open(self.workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.fchmod(descriptor, 0o711)
            finally:
                os.close(descriptor)
            how = f"as user {isolation.user} (uid {isolation.uid})"
        else:
            how = SANDBOXED
        self.report.sandbox = how
        assert plan.cwd is not None  # command mode: the tree
        # The reaper (user:NAME) must be done before the drill's stop kills it: a second less.
        grace = self.drill.stop_grace.total_seconds() - 1
        argv = isolation.command(plan.argv, cwd=Path(plan.cwd), root=self.sandbox, share_net=True, grace=grace)
        return Confined(argv, how=how)

    def _still_a_file(self, copy: Path) -> bool:
        """The copy after the app: a confined app could have left a link in its place, or in its
        directory's (lstat follows a link in any component but the last), which railguard (with
        its own rights) must not follow into the report. The sandbox's own name is in railguard's
        workspace, out of the app's reach."""
        parts = copy.relative_to(self.sandbox).parts
        directories = [self.sandbox.joinpath(*parts[:depth]) for depth in range(1, len(parts))]
        if all(stat.S_ISDIR(os.lstat(directory).st_mode) for directory in directories) \
                and stat.S_ISREG(os.lstat(copy).st_mode):
            return True
        self.report.warnings.append(f"the app replaced the copy {copy.name} with something that is not a "
                                    "file: no shape after the rehearsal")
        return False

    def remove_image(self) -> None:
        if self.image is None:
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([self.docker, "image", "rm", "--force", self.image], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120, check=False, env=dict(self.env))


def _dockerfile_path(tar: bytes) -> str:
    """captain-definition's ``dockerfilePath`` (CapRover's default: ``./Dockerfile``)."""
    with contextlib.suppress(tarfile.TarError, KeyError, OSError, ValueError, AttributeError), \
            tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        member = archive.extractfile(CAPTAIN_DEFINITION)
        if member is not None:
            path = json.loads(member.read()).get("dockerfilePath")
            if isinstance(path, str) and path:
                return str(PurePosixPath(path))
    return "Dockerfile"
