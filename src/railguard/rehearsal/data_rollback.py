"""Rollback that knows the data: did the deploy being undone change the schema, and what would
restoring its pre-deploy snapshot lose.

``railguard rollback`` undoes the live deploy. Its image goes back as before; its migration does
not, so this module looks at the data first (:func:`check_data`):

1. The live commit is the deploy history's; its pre-deploy snapshot is the newest good backup
   whose manifest's ``deploy.commit`` is that commit (:func:`railguard.rehearsal.snapshot.find_snapshot`).
2. The snapshot is verified and decompressed into a private work directory beside the backups
   (:func:`railguard.backup.verify.materialize`, the restore's own check, ``quick``: the restore
   runs the full one before it replaces anything), and its shape compared with the live
   database's (:mod:`railguard.rehearsal.shape`, both read-only).
3. Only for ``--with-data``: the rows the restore would lose and bring back, per table
   (:mod:`railguard.rehearsal.rows`, on the same verified copy).

Nothing here changes a file. The restore itself is a pre-deploy step of the rollback
(:func:`restore_step`), the last one: it runs under the deploy lock, after the rollback's own
snapshot of the data as it is now (so even the rows the restore drops stay in a verified backup,
besides the restore's safety copy) and after every check that can block the rollback, and
before the platform is asked for the old image, whose start then opens the restored database.
A restore that fails blocks the rollback: the image and the data stay as they were.

After the deploy, :func:`schema_since_snapshot` (a post-deploy step) compares the schema the
snapshot step saw with the live one and leaves ``facts["data_rollback"]`` (plain text and names,
so the gate can read it without importing this package) when the deploy changed it: what a
rollback of the image alone would not undo, and the command that would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railguard.backup.catalog import BackupRecord, Owner
from railguard.backup.verify import materialize
from railguard.config import AppSettings, Settings
from railguard.deploy.state import DeployRecord
from railguard.deploy.steps import PostDeployContext, PreDeployContext, PreDeployStep, StepResult, pre_deploy_step
from railguard.errors import NotFound, RailguardError, UsageError
from railguard.rehearsal.rows import TableLoss, rows_written_since
from railguard.rehearsal.shape import Shape, ShapeChange, compare, read_shape
from railguard.rehearsal.snapshot import find_snapshot
from railguard.restore import restore_backup


#: The name of ``rollback --with-data``'s pre-deploy step (:func:`restore_step`).
RESTORE_NAME = "restore-data"


class NoSnapshot(NotFound):
    """``rollback --with-data`` without a pre-deploy snapshot of the live deploy."""


@dataclass
class DataCheck:
    """What a rollback knows about the data of the deploy it undoes."""

    app_name: str
    #: The commit live now, as the deploy history says; None when it says none.
    live_commit: str | None
    #: Its pre-deploy snapshot; None when none is kept (see :attr:`reason`).
    snapshot: BackupRecord | None = None
    #: The snapshot's shape against the live database's; None when not compared.
    change: ShapeChange | None = None
    #: The rows a restore would lose and bring back; None when not counted.
    losses: list[TableLoss] | None = None
    #: Why there is no comparison; None when there is one.
    reason: str | None = None

    @property
    def schema_changed(self) -> bool | None:
        return None if self.change is None else self.change.schema_changed

    @property
    def restore_command(self) -> str | None:
        """The data alone, once the image was rolled back: the snapshot by name."""
        if self.snapshot is None:
            return None
        return f"railguard restore {self.snapshot.name} --app {self.app_name}"

    def lines(self) -> list[str]:
        """What the CLI prints before the rollback."""
        if self.snapshot is None or self.change is None:
            return [f"data: {self.reason}"]
        commit = (self.live_commit or "?")[:12]
        if not self.change.schema_changed:
            lines = [f"schema unchanged since the snapshot {self.snapshot.name} (taken before {commit} went live)"]
        else:
            lines = [f"schema changed since the snapshot {self.snapshot.name} (taken before {commit} went live):"]
            lines += [f"  {line}" for line in self.change.schema_lines()]
        if self.losses is not None:
            lines.append(f"restoring {self.snapshot.name} loses the rows written since, per table "
                         "(live rows the snapshot lacks, over the columns both have):")
            lines += [f"  {loss.line()}" for loss in self.losses]
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"live_commit": self.live_commit, "snapshot": self.snapshot.name if self.snapshot else None,
                "schema_changed": self.schema_changed, "reason": self.reason,
                "changes": self.change.schema_lines() if self.change else None,
                "change": self.change.as_dict() if self.change else None,
                "rows_lost": [loss.as_dict() for loss in self.losses] if self.losses is not None else None,
                "restore_command": self.restore_command}


def live_commit(history: list[DeployRecord]) -> str | None:
    """The commit running now as far as the deploy history knows (the rollback's own rule)."""
    live = next((record for record in history if record.is_live_candidate), None)
    return live.git_hash if live else None


def check_data(settings: Settings, app_name: str, app: AppSettings, commit: str | None, *,
               count_rows: bool) -> DataCheck:
    """Compare the pre-deploy snapshot of ``commit`` with the live database (module docstring).

    A snapshot or database that cannot be read is a :class:`DataCheck` with its reason, not an
    error: a rollback of the image must never be stopped by it (``--with-data`` refuses it
    through :func:`require_snapshot`)."""
    check = DataCheck(app_name, commit)
    if commit is None:
        check.reason = "the deploy history names no live commit, so no pre-deploy snapshot can be matched"
        return check
    if not app.database.is_file():
        check.reason = f"no database at {app.database}"
        return check
    check.snapshot = find_snapshot(app.backup.directory, Owner.of(settings, app_name, app), commit)
    if check.snapshot is None:
        check.reason = (f"no pre-deploy snapshot of {commit[:12]} is kept in {app.backup.directory}: "
                        "the data cannot be rolled back with the image")
        return check
    try:
        with materialize(check.snapshot, app.backup.directory, mode="quick") as copy:
            check.change = compare(read_shape(copy.path), read_shape(app.database))
            if count_rows:
                check.losses = rows_written_since(copy.path, app.database)
    except RailguardError as exc:
        check.reason = f"the snapshot {check.snapshot.name} could not be compared: {exc.message}"
        check.change = check.losses = None
    except OSError as exc:
        check.reason = f"the snapshot {check.snapshot.name} could not be compared: {exc.strerror or exc}"
        check.change = check.losses = None
    except Exception as exc:  # sqlite3.Error from the row count: say it, never hide it
        check.reason = f"the snapshot {check.snapshot.name} could not be compared: {exc}"
        check.change = check.losses = None
    return check


def require_snapshot(check: DataCheck) -> BackupRecord:
    """The snapshot ``--with-data`` restores, or the error that stops it before anything changed."""
    if check.snapshot is None or check.change is None or check.losses is None:
        raise NoSnapshot(f"cannot roll back the data: {check.reason}",
                         hint="Roll back the image alone (without --with-data), or restore a backup by name: "
                              "railguard backups list, then railguard restore NAME")
    return check.snapshot


@dataclass
class DataRestore:
    """What :func:`restore_step` did; ``facts["data_restored"]`` of the rollback holds it."""

    snapshot: str
    target: Path
    safety_copy: Path | None
    warnings: list[str] = field(default_factory=list)
    forced_past: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "target": str(self.target),
                "safety_copy": str(self.safety_copy) if self.safety_copy else None,
                "warnings": self.warnings, "forced_past": self.forced_past}


def restore_step(check: DataCheck, *, force: bool) -> PreDeployStep:
    """The pre-deploy step of ``rollback --with-data`` that restores the snapshot ``check`` found.

    It refuses (and so blocks the rollback) when the rollback goes somewhere else than the
    commit the snapshot's deploy replaced: that snapshot holds the data of that commit only."""
    record = require_snapshot(check)
    origin = record.manifest.deploy if record.manifest else None

    @pre_deploy_step(RESTORE_NAME)
    def restore_data(context: PreDeployContext) -> StepResult:
        live = check.live_commit
        if live and context.replaces and not _same_commit(live, context.replaces):
            raise UsageError(f"{context.replaces[:12]} is live now, not {live[:12]} whose snapshot {record.name} was "
                             "shown: another deploy ran meanwhile", hint="Run the rollback again to see its data")
        before = origin.replaces if origin else None
        if before and context.commit and not _same_commit(before, context.commit):
            raise UsageError(
                f"the snapshot {record.name} holds the data from before {origin.commit[:12] if origin and origin.commit else '?'}"
                f" went live, when {before[:12]} ran; this rollback goes to {context.commit[:12]}",
                hint="Roll back to that commit (railguard rollback --to " + before[:12] + " --with-data), "
                     "or restore another backup by name with railguard restore")
        app = context.app
        result = restore_backup(record, app.database, now=context.clock(), tz=context.settings.timezone, force=force,
                                check=app.backup.check, busy_timeout=app.backup.busy_timeout.total_seconds(),
                                log_directory=app.backup.directory)
        restored = DataRestore(record.name, result.target, result.safety_copy, list(result.warnings),
                               list(result.forced_past))
        context.facts[RESTORED_FACT] = restored
        kept = f"; the database it replaced is kept as {result.safety_copy}" if result.safety_copy else ""
        return StepResult(RESTORE_NAME, True, f"restored the snapshot {record.name} over {result.target}{kept}",
                          details=restored.as_dict())

    return restore_data


def _same_commit(one: str, other: str) -> bool:
    one, other = one.lower(), other.lower()
    return one.startswith(other) or other.startswith(one)


# --- after a deploy: did it change the schema? --------------------------------------------------

#: ``facts`` keys: the schema the snapshot step read just before it took the snapshot.
SHAPE_FACT = "snapshot_shape"
#: What the restore step of ``rollback --with-data`` restored (a :class:`DataRestore`).
RESTORED_FACT = "data_restored"
#: What a rollback of the image alone would leave behind (read by the gate's worker).
ADVICE_FACT = "data_rollback"


def schema_since_snapshot(context: PostDeployContext) -> StepResult:
    """Post-deploy: compare the schema the snapshot step saw with the live one.

    Never fails the deploy: a changed schema is what a migration is for. When it changed,
    ``facts["data_rollback"]`` says so for whoever rolls this deploy back (the gate's automatic
    rollback, which never touches the data itself)."""
    restored = context.facts.get(RESTORED_FACT)
    if isinstance(restored, DataRestore):
        return StepResult.skip("schema", f"this rollback restored the data of {restored.snapshot}")
    snapshot = context.facts.get("snapshot")
    before = context.facts.get(SHAPE_FACT)
    if snapshot is None or not isinstance(before, Shape):
        return StepResult.skip("schema", "no pre-deploy snapshot was taken")
    try:
        after = read_shape(context.app.database, count_rows=False)
    except RailguardError as exc:
        return StepResult.skip("schema", f"the live database could not be read: {exc.message}")
    change = compare(before, after)
    if not change.schema_changed:
        return StepResult("schema", True, f"schema unchanged since the snapshot {snapshot.name}",
                          details={"snapshot": snapshot.name, "schema_changed": False})
    name = context.app_name
    advice = {"snapshot": snapshot.name, "changes": change.schema_lines(),
              "rollback_command": f"railguard rollback --app {name} --with-data",
              "restore_command": f"railguard restore {snapshot.name} --app {name}"}
    context.facts[ADVICE_FACT] = advice
    return StepResult("schema", True,
                      f"schema changed since the snapshot {snapshot.name} ({'; '.join(advice['changes'])}); "
                      f"rolling back the image alone keeps it: {advice['rollback_command']}",
                      details={"schema_changed": True, **advice})
