"""The one typed configuration model, read from ``railguard.toml``.

Where the file comes from: ``--config PATH``, else ``$RAILGUARD_CONFIG``, else
``./railguard.toml``, else the built-in defaults (the team's plan: one app ``tasks`` with its
database at ``/app/data/tasks.db``). Every setting can be overridden by a command-line flag;
flag values go through the same validation as the file, so a bad flag value gets the same
kind of message as a bad key.

Secrets never live here: settings name an environment variable (``token_env = "..."``) and
:mod:`railguard.secrets` reads it, or the file named by ``<VAR>_FILE``.

Layout of the file::

    timezone = "UTC"                 # names of backup files, retention periods
    state_dir = "/var/lib/railguard" # railguard's own small state (deploys, monitor, ...)

    [apps.tasks]                     # one table per app; a single app needs no --app
    database = "/app/data/tasks.db"

    [apps.tasks.backup]
    directory = "/app/data/backups"
    compression = "zstd"

    [apps.tasks.retention]
    keep_daily = 7
    keep_weekly = 4

Later capabilities add their own section model here (destinations, drill, deploy, smoke,
monitor, notifications, gate), each a small class with defaults, so an old file stays valid.
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from railguard.errors import ConfigError, NotFound, UsageError
from railguard.values import (
    Listen, ScheduleError, Within, parse_duration, parse_expectation, parse_schedule, stem_for,
)

DEFAULT_CONFIG_NAME = "railguard.toml"
CONFIG_ENV = "RAILGUARD_CONFIG"

#: SQLite keeps its busy timeout as an int of milliseconds (sqlite3_busy_timeout).
MAX_BUSY_TIMEOUT = timedelta(milliseconds=2**31 - 1)

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _check_timezone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA time zone such as 'UTC' or 'Europe/Madrid', got {value!r}") from exc
    return str(value)


TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]


def _check_restic_duration(value: Any) -> Any:
    if value is None:
        return None
    Within.parse(value)  # raises ValueError with the expected form
    return str(value).strip()


#: restic's calendar duration for ``keep_within``: ``"2d"``, ``"36h"``, ``"1y6m"`` (m = months).
ResticDuration = Annotated[str, BeforeValidator(_check_restic_duration)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class BackupSettings(Section):
    directory: Path = Path("/app/data/backups")
    #: ``file``: each backup is a whole compressed copy; ``pages``: each backup is a generation
    #: that stores only the pages not stored before (docs/pages.md).
    kind: Literal["file", "pages"] = "file"
    #: ``backup-api``: SQLite's online backup API in a single step; ``vacuum-into``: a compacted copy.
    method: Literal["backup-api", "vacuum-into"] = "backup-api"
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    #: Compression level; None picks the algorithm's default (zstd 3, gzip 6).
    level: int | None = Field(default=None, ge=1, le=22)
    #: ``integrity``: PRAGMA integrity_check (thorough); ``quick``: PRAGMA quick_check (~10x faster).
    check: Literal["integrity", "quick"] = "integrity"
    #: How long to keep retrying while the source database is locked.
    busy_timeout: Duration = timedelta(seconds=30)
    #: Apply the retention policy after each successful backup.
    prune: bool = True
    #: A backup run by hand (``railguard backup``, not the daemon's schedule) is protected from
    #: prune this long (docs/backup.md); ``"0s"`` turns that off.
    keep_manual: Duration = timedelta(days=7)

    @pydantic.field_validator("busy_timeout")
    @classmethod
    def _fits_sqlite(cls, value: timedelta) -> timedelta:
        if value > MAX_BUSY_TIMEOUT:
            raise ValueError(f"at most {MAX_BUSY_TIMEOUT.days} days (SQLite counts it in a 32-bit number of "
                             f"milliseconds), got {value}")
        return value

    @pydantic.model_validator(mode="after")
    def _level_fits_the_algorithm(self) -> "BackupSettings":
        if self.compression == "gzip" and self.level is not None and self.level > 9:
            raise ValueError(f"level: gzip takes a level from 1 to 9, got {self.level}")
        if self.kind == "pages" and self.compression != "zstd":
            raise ValueError(f"compression: kind = \"pages\" stores its packs with zstd, got {self.compression!r} "
                             f"(leave compression out)")
        return self


class SnapshotSettings(Section):
    """The pre-deploy snapshot: a verified backup taken before every deploy, release and
    rollback, kept from prune for ``keep`` (docs/deploy.md "Data rollback")."""

    #: Take it; ``false`` deploys without one (and ``railguard rollback`` then cannot offer the data).
    enabled: bool = True
    #: How long prune keeps it (a protection, as ``railguard backups keep --for``).
    keep: Duration = timedelta(days=14)

    @pydantic.field_validator("keep")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be longer than 0s, got {value} (set enabled = false to take no snapshot)")
        return value


class RetentionSettings(Section):
    """Which backups to keep: restic's ``forget`` rules. A rule left out (or 0) is off; a table
    that sets no rule at all means the plan's 7 daily + 4 weekly (``Policy.from_settings``); a
    policy with every rule set to 0 is refused. docs/retention.md"""

    keep_last: int | None = Field(default=None, ge=0)
    keep_hourly: int | None = Field(default=None, ge=0)
    keep_daily: int | None = Field(default=None, ge=0)
    keep_weekly: int | None = Field(default=None, ge=0)
    keep_monthly: int | None = Field(default=None, ge=0)
    keep_yearly: int | None = Field(default=None, ge=0)
    #: restic's duration form (``"2d"``, ``"1y6m"``): keep everything that recent, counted from the newest backup.
    keep_within: ResticDuration | None = None


class SmokeSettings(Section):
    """``railguard smoke``: proof that a new, healthy process serves after a deploy."""

    #: How long to keep polling ``/health`` for a 200 before giving up.
    wait: Duration = timedelta(seconds=120)
    #: Timeout of each single request.
    timeout: Duration = timedelta(seconds=5)
    #: Pause between two polls of ``/health``.
    poll_interval: Duration = timedelta(seconds=2)
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    version_path: str = "/version"
    #: Epoch milliseconds when the serving process started (the plan's metric).
    started_metric: str = "app_started_at"
    #: 1 when the migrations applied (the plan's metric).
    migrations_metric: str = "migrations_ok"
    #: ``*_build_info`` gauge whose ``commit_label`` names the deployed commit (a fallback when
    #: ``/version`` has none); unset: any family ending in ``_build_info`` that has that label.
    build_info_metric: str | None = None
    commit_label: str = "commit"
    #: Send "deploy OK <commit>" once per commit after a passing smoke check.
    notify_ok: bool = True


class HeartbeatSettings(Section):
    """healthchecks.io-compatible pings around each job. Ping URLs are secrets: each setting
    names the environment variable (or ``<VAR>_FILE``) that holds the URL."""

    backup_url_env: str | None = None
    drill_url_env: str | None = None
    replicate_url_env: str | None = None
    timeout: Duration = timedelta(seconds=10)
    #: Extra attempts after a failed ping (then it is logged and counted, never fatal).
    retries: int = Field(default=2, ge=0, le=10)


class DrillAssertion(Section):
    """One SQL check on the drilled copy: a query returning one value, and what that value must be."""

    sql: str
    #: A comparison with a number: ``"> 0"``, ``">= 100"``, ``"== 1"`` (operators > >= < <= == !=).
    expect: str | None = None
    #: The value is a timestamp (ISO 8601 text, or epoch seconds/milliseconds) no older than this.
    max_age: Duration | None = None

    @pydantic.model_validator(mode="after")
    def _one_expectation(self) -> "DrillAssertion":
        if (self.expect is None) == (self.max_age is None):
            raise ValueError("give exactly one of expect (such as '> 0') or max_age (such as '36h')")
        if self.expect is not None:
            parse_expectation(self.expect)  # raises ValueError with the expected form
        return self


class DrillSettings(Section):
    """``railguard drill``: start the app on a verified copy of a backup and prove it serves
    (docs/drill.md). Give ``command`` (a process) or ``image`` (a Docker container), not both."""

    #: argv list, no shell; ``{db}``, ``{dir}`` (the copy's directory) and ``{port}`` are replaced.
    command: list[str] = Field(default_factory=list)
    #: Working directory of the command (placeholders allowed); None: the temporary drill directory.
    workdir: str | None = None
    #: Extra environment (placeholders allowed). PORT={port} is always set unless given here.
    env: dict[str, str] = Field(default_factory=dict)
    #: Variables passed through from railguard's own environment; nothing else is (no secrets,
    #: no production DB_PATH reaches the drilled app).
    inherit_env: list[str] = Field(default_factory=lambda: ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"])
    #: Docker mode: ``docker run --network host`` this image with the copy's directory mounted.
    image: str | None = None
    #: Where the copy's directory is mounted in the container (the app's data directory).
    data_dir: str = "/app/data"
    #: ``docker run --user``: ``"current"`` (railguard's uid:gid, so the copy can be removed
    #: afterwards), ``""`` for the image's own user, or an explicit ``uid:gid``.
    docker_user: str = "current"
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    migrations_metric: str = "migrations_ok"
    #: Epoch milliseconds when the app started: proves the process answering is the one started.
    started_metric: str = "app_started_at"
    start_timeout: Duration = timedelta(seconds=60)
    #: SIGTERM, then SIGKILL of the whole process group after this long.
    stop_grace: Duration = timedelta(seconds=10)
    assertions: list[DrillAssertion] = Field(default_factory=list)
    #: Which backup a plain ``railguard drill`` uses: ``latest`` or ``random`` (any good one).
    backup: Literal["latest", "random"] = "latest"
    #: Parent of the temporary drill directory; None: the system's temporary directory.
    scratch_dir: Path | None = None
    #: Lines of the app's output kept in drill.log and the report when a drill fails.
    output_tail_lines: int = Field(default=30, ge=1, le=1000)

    @pydantic.model_validator(mode="after")
    def _command_or_image(self) -> "DrillSettings":
        if self.command and self.image:
            raise ValueError("give command or image, not both")
        return self


class RehearsalSettings(Section):
    """The deploy rehearsal (docs/deploy.md, "Rehearsed deploys"): before a deploy goes to
    CapRover, the candidate commit boots on a private copy of the pre-deploy snapshot with the
    drill's machinery (``[apps.NAME.drill]``: its checks, assertions, env, stop_grace)."""

    #: None: on when the drill says how to start the app (``drill.command`` or ``drill.image``).
    enabled: bool | None = None
    #: Longest wait for ``/health`` 200 from the candidate; None: the drill's ``start_timeout``.
    timeout: Duration | None = None
    #: argv list, run from the candidate's extracted tree (``{tree}``, plus the drill's ``{db}``,
    #: ``{dir}``, ``{port}``); empty: the drill's command. Command mode only: in Docker mode the
    #: image is built from the commit's tar and runs its own CMD.
    command: list[str] = Field(default_factory=list)
    #: Globs (fnmatch, on the paths ``git diff --name-only`` lists): a commit that changes none of
    #: them is not rehearsed. Empty: every commit is.
    only_when_paths_change: list[str] = Field(default_factory=list)

    def is_enabled(self, drill: "DrillSettings") -> bool:
        if self.enabled is not None:
            return self.enabled
        return bool(drill.command or drill.image)


#: ``auto``, ``bwrap``, ``user:NAME`` or ``none`` (railguard.deploy.isolation).
IsolationSpec = Annotated[str, Field(pattern=r"^(auto|bwrap|none|user:[A-Za-z_][A-Za-z0-9_.-]*)$")]


class DeploySettings(Section):
    """Deploys to CapRover (``railguard deploy|rollback|release``) and the pre-receive hook. docs/deploy.md"""

    #: CapRover's base URL, e.g. ``https://captain.example.com``.
    caprover_url: str | None = None
    #: The app's name in CapRover; None means the same name as in this file.
    caprover_app: str | None = None
    #: ``app-token``: deploy with the app token (no build status, no version list);
    #: ``login``: log in with the dashboard password, wait for the build and read the versions.
    mode: Literal["app-token", "login"] = "app-token"
    #: Names of the environment variables holding the secrets (or ``<NAME>_FILE``), never the values.
    token_env: str = "CAPROVER_APP_TOKEN"
    password_env: str = "CAPROVER_PASSWORD"
    webhook_token_env: str = "CAPROVER_WEBHOOK_TOKEN"
    #: The git work tree that ``deploy`` and ``release`` read commits from.
    repository: Path = Path(".")
    remote: str = "origin"
    release_branch: str = "main"
    tag_prefix: str = "v"
    #: The test suite as an argv list (no shell), e.g. ``["bun", "test"]``. Trusted config only.
    test_command: list[str] = Field(default_factory=list)
    test_timeout: Duration = timedelta(minutes=10)
    #: Branches (fnmatch patterns) the pre-receive hook tests; other branches pass untested.
    protected_branches: list[str] = Field(default_factory=lambda: ["main"])
    #: Let a push delete a protected branch (rejected by default).
    allow_delete_protected: bool = False
    #: Lines of test output shown to the pusher (or the release user) when tests fail.
    output_tail_lines: int = Field(default=40, ge=1)
    #: How the pre-receive hook keeps the pushed suite from railguard's secrets (docs/hook.md).
    test_isolation: IsolationSpec = "auto"
    #: Read-only paths the isolated suite may use besides /usr (a toolchain such as ~/.bun).
    test_isolation_paths: list[Path] = Field(default_factory=list)
    #: Variables the pre-receive hook's suite inherits besides PATH, LANG, CI, RAILGUARD_COMMIT
    #: and a private HOME/TMPDIR (railguard.deploy.pipeline); never a secret, never GIT_*.
    test_pass_env: list[str] = Field(default_factory=list)
    #: Login mode: how long to wait for CapRover's build, and how often to ask.
    build_timeout: Duration = timedelta(minutes=15)
    poll_interval: Duration = timedelta(seconds=3)
    #: HTTP 429 ("another operation in progress") is retried this many times with backoff.
    busy_retries: int = Field(default=5, ge=0, le=20)
    request_timeout: Duration = timedelta(seconds=60)
    #: The deploy history (app, commit, image, version, time, result); None means state_dir/deploys.sqlite3.
    state_file: Path | None = None


class DestinationSettings(Section):
    """One place off the host that receives a copy of every backup (docs/destinations.md).

    Credentials never live here: S3 reads the standard AWS environment/profile chain, rclone its
    own config file or ``RCLONE_CONFIG_*`` environment variables.
    """

    #: ``file:///mnt/nas/tasks``, ``s3://bucket/prefix`` or ``rclone:REMOTE:path``.
    url: str
    #: S3-compatible stores (MinIO, Garage, R2, B2): the endpoint, e.g. ``https://s3.example.com``.
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    #: age public keys (``age1...``): the copy is encrypted on this host before it leaves.
    age_recipients: list[str] = Field(default_factory=list)
    #: The age identity (secret key) file that restore and verify use to decrypt.
    age_identity_file: Path | None = None
    #: Tries per operation; only transient failures (timeouts, 5xx, throttling) are retried.
    attempts: int = Field(default=3, ge=1, le=10)
    timeout: Duration = timedelta(seconds=60)
    #: This destination's own policy (e.g. keep monthly longer off-site); None: the app's.
    retention: RetentionSettings | None = None

    @pydantic.field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://", "rclone:")):
            raise ValueError("expected file:///path, s3://bucket/prefix or rclone:REMOTE:path")
        return value


def _check_schedule(value: Any) -> str:
    if value in (None, ""):
        return ""
    try:
        return parse_schedule(str(value)).text
    except ScheduleError as exc:
        raise ValueError(str(exc)) from None


#: A cron expression (``"30 3 * * *"``), an interval (``"every 60s"``), or ``""`` for never.
ScheduleText = Annotated[str, BeforeValidator(_check_schedule)]


class ScheduleSettings(Section):
    """When ``railguard daemon`` runs this app's jobs, in the configured time zone."""

    #: The daily backup, followed by prune and the copies to destinations (the backup job does all three).
    backup: ScheduleText = "30 3 * * *"
    #: The monthly restore drill; it runs only when ``[apps.NAME.drill]`` says how to start the app.
    drill: ScheduleText = "0 4 1 * *"


class AppSettings(Section):
    database: Path = Path("/app/data/tasks.db")
    #: Base URL of the running app (``/health``, ``/metrics``, ``/version`` live under it).
    url: str | None = None
    backup: BackupSettings = Field(default_factory=BackupSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    #: The verified backup taken before each deploy: ``[apps.NAME.snapshot]``.
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)
    #: Off-host copies, by name: ``[apps.NAME.destinations.offsite]``.
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    smoke: SmokeSettings = Field(default_factory=SmokeSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    rehearsal: RehearsalSettings = Field(default_factory=RehearsalSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)


#: Events railguard can notify about (``[notifications] events`` and ``routes`` use these names).
NotificationEvent = Literal[
    "backup_failed", "destination_failed", "drill_failed", "drill_passed", "deploy_ok", "deploy_failed",
    "rollback", "monitor_down", "monitor_recovered", "monitor_reminder", "test",
]
#: The events sent when ``events`` is not set (drill_passed is quiet by default).
_DEFAULT_EVENTS: tuple[NotificationEvent, ...] = (
    "backup_failed", "destination_failed", "drill_failed", "deploy_ok", "deploy_failed", "rollback",
    "monitor_down", "monitor_recovered", "monitor_reminder", "test")


class NotificationSettings(Section):
    """apprise URLs hold tokens, so they come from the environment: ``urls_env`` names the
    variable (or ``<VAR>_FILE``) holding one or more URLs separated by spaces, commas or newlines."""

    urls_env: str = "RAILGUARD_NOTIFY_URLS"
    #: Events sent to the ``urls_env`` URLs (drill_passed is quiet by default).
    events: list[NotificationEvent] = Field(default_factory=lambda: list(_DEFAULT_EVENTS))
    #: Per-event routing: event -> environment variable holding the URLs for that event instead.
    routes: dict[NotificationEvent, str] = Field(default_factory=dict)
    #: How many idempotency keys ("deploy OK" per commit) are remembered.
    remember: int = Field(default=500, ge=10)


class MaintenanceWindow(Section):
    #: Start times, five-field cron (``"0 3 * * sun"``), in the configured time zone.
    cron: str
    duration: Duration

    @pydantic.field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"not a valid cron expression {value!r}: {exc}") from None
        return value


class MonitorTarget(Section):
    name: str
    url: str
    #: The app this target watches, by its name under ``[apps]``: a deploy of it holds the
    #: target's alerts. Unset: the app of the same name as the target, if there is one.
    app: str | None = None
    #: Unset values fall back to the [monitor] defaults.
    timeout: Duration | None = None
    expected_status: int | None = None
    body_contains: str | None = None
    max_response_time: Duration | None = None


class MonitorSettings(Section):
    """``railguard monitor``: targets default to each app's ``url`` + ``/health``."""

    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=2, ge=1)
    #: Repeat the DOWN alert this often while a target stays down (unset: never).
    reminder: Duration | None = None
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    targets: list[MonitorTarget] = Field(default_factory=list)
    health_path: str = "/health"
    expected_status: int = 200
    body_contains: str | None = None
    max_response_time: Duration | None = None
    #: Checks running at once; a round takes at most ceil(targets / concurrency) x timeout.
    concurrency: int = Field(default=32, ge=1, le=512)
    #: Raw checks are kept this long, then folded into hourly aggregates.
    raw_history: Duration = timedelta(hours=48)
    #: Hourly aggregates are kept this long (30-day uptime needs at least 30d).
    hourly_history: Duration = timedelta(days=35)
    #: A deploy holds its app's DOWN alerts from its last pre-deploy step to the end of its smoke
    #: check, and never longer than this (a deploy that crashed never mutes the monitor for ever).
    deploy_window: Duration = timedelta(minutes=30)
    #: A DOWN alert this soon after a deploy's window ended names the deploy and the rollback command.
    deploy_grace: Duration = timedelta(minutes=30)


class MetricsSettings(Section):
    #: node_exporter textfile collector directory; railguard writes railguard.prom there.
    textfile_directory: Path | None = None


class StatusSettings(Section):
    """What ``railguard status`` flags."""

    #: A daily backup plus grace: the plan's rule of ~26 h.
    backup_max_age: Duration = timedelta(hours=26)
    drill_max_age: Duration = timedelta(days=35)
    #: No drill ever recorded is a warning; None: when ``[apps.NAME.drill]`` says how to start the app.
    require_drill: bool | None = None
    #: No deploy ever recorded is a warning; None: when ``[apps.NAME.deploy] caprover_url`` is set.
    require_deploy: bool | None = None


class GateAppSettings(Section):
    """One app behind ``railguard gate serve``: which repository and branch it deploys from."""

    #: The Forgejo repository as ``owner/name`` (commit statuses are posted there).
    repository: str
    #: The repository's clone URL; a webhook payload whose ``repository.clone_url`` differs is ignored,
    #: and the gate fetches from this URL only (never from a URL a payload names).
    clone_url: str
    branch: str = "main"
    #: Deploy tag pushes (``refs/tags/<deploy.tag_prefix>*``) instead of pushes to ``branch``.
    deploy_tags: bool = False
    #: The test suite as an argv list (no shell); None means ``[apps.NAME.deploy] test_command``.
    test_command: list[str] | None = None
    #: None means ``[apps.NAME.deploy] test_timeout``.
    test_timeout: Duration | None = None
    #: Names of variables the test run inherits; everything else (the gate's secrets) is withheld.
    pass_env: list[str] = Field(default_factory=list)
    #: ``upload``: deploy the tested tree with its SHA; ``legacy-webhook``: call CapRover's build
    #: webhook, which builds the branch head at build time (a race, see docs/gate.md).
    deploy_mode: Literal["upload", "legacy-webhook"] = "upload"
    #: After a failed smoke check, deploy the previous good image again.
    rollback_on_smoke_failure: bool = True
    #: The variable holding a token for fetching over HTTPS (sent as an HTTP header, never in argv).
    clone_token_env: str | None = None


class GateSettings(Section):
    """``railguard gate serve``: Forgejo webhooks in, tested commits out to CapRover. docs/gate.md"""

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    #: Webhook bodies above this many bytes get 413 (Forgejo caps a push payload at 15 commits).
    body_limit: int = Field(default=1024 * 1024, ge=1024)
    #: ``POST /api/v1/check`` bodies (a ``git archive`` tar) above this many bytes get 413.
    check_body_limit: int = Field(default=200 * 1024 * 1024, ge=1024)
    #: Test suites that ``/api/v1/check`` runs at once; more wait their turn.
    check_concurrency: int = Field(default=2, ge=1, le=32)
    #: A connection that has not sent its whole request line and headers this long after its first
    #: byte (or its opening) is closed; trickling bytes do not extend it.
    header_timeout: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    #: An idle connection is closed this long after its last response.
    keep_alive_timeout: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    #: Open connections at most (held to half the open-file limit); one more closes the connection
    #: waiting longest for its request headers, or gets 503 when every one is busy with a request.
    max_connections: int = Field(default=512, ge=1)
    #: The gate's address as Forgejo users reach it (links in commit statuses, and from the status
    #: page's deploys to their runs); None: http://host:port (the status page then shows run ids only).
    public_url: str | None = None
    forgejo_url: str | None = None
    #: Names of the variables (or ``<NAME>_FILE``) holding the secrets, never the values.
    secret_env: str = "RAILGUARD_GATE_SECRET"
    forgejo_token_env: str = "FORGEJO_TOKEN"
    check_secret_env: str = "RAILGUARD_GATE_CHECK_SECRET"
    #: The run queue, mirrors and run logs; None means state_dir/gate.
    directory: Path | None = None
    #: How pushed test suites, and the rehearsal of a pushed commit's app, are kept from the
    #: gate's secrets (docs/gate.md, "Isolation").
    isolation: IsolationSpec = "auto"
    #: Read-only paths the isolated suite (and the rehearsed app) may use besides /usr (a
    #: toolchain such as /opt/bun).
    isolation_paths: list[Path] = Field(default_factory=list)
    #: The variable (or ``<NAME>_FILE``) holding the token that /runs and the run logs require;
    #: required when ``host`` is not a loopback address.
    read_token_env: str = "RAILGUARD_GATE_TOKEN"
    #: Apps the gate deploys, by their name under ``[apps]``: ``[gate.apps.tasks]``.
    apps: dict[str, GateAppSettings] = Field(default_factory=dict)

    @pydantic.field_validator("host")
    @classmethod
    def _listenable(cls, value: str) -> str:
        Listen(value, 0)  # raises ValueError on an empty host, or one in brackets; port has its Field
        return value

    @property
    def listen(self) -> Listen:
        return Listen(self.host, self.port)


class DaemonSettings(Section):
    """``railguard daemon``: one process that runs every enabled job on its schedule."""

    #: Where the daemon answers ``/healthz`` and ``/metrics`` (HOST:PORT or [IPV6]:PORT; "" turns it off).
    listen: str = "127.0.0.1:9180"
    #: Run ``railguard monitor`` inside the daemon (when there is anything to monitor).
    monitor: bool = True
    #: Run the webhook gate (deploy option C) inside the daemon.
    gate: bool = False
    #: On SIGTERM, how long a running job may take to finish or abort cleanly before it is killed.
    stop_grace: Duration = timedelta(minutes=2)
    #: A job still running after this long is stopped (SIGTERM, then SIGKILL after stop_grace).
    job_timeout: Duration = timedelta(hours=6)

    @pydantic.field_validator("listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value:
            Listen.from_text(value)  # raises ValueError naming the expected form
        return value


class WebSettings(Section):
    """The status page: ``railguard web``, and the pages the daemon serves on ``[daemon] listen``."""

    #: Where ``railguard web`` listens (host:port); ``--listen`` overrides it.
    listen: str = "127.0.0.1:9181"
    #: Serve ``/public`` (and ``/api/public``) without the token: uptime only, like Uptime Kuma's status pages.
    public: bool = False
    #: How often a page reloads itself (``<meta http-equiv=refresh>``).
    refresh: Duration = timedelta(seconds=60)

    @pydantic.field_validator("listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        Listen.from_text(value)  # raises ValueError naming the expected form
        return value


class Settings(Section):
    timezone: TimeZoneName = "UTC"
    state_dir: Path = Path("/var/lib/railguard")
    apps: dict[str, AppSettings] = Field(default_factory=lambda: {"tasks": AppSettings()})
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    #: Where these settings came from (a path, or None for the built-in defaults).
    source: Path | None = Field(default=None, exclude=True)

    def app(self, name: str | None = None) -> tuple[str, AppSettings]:
        """The named app, or the only one when ``name`` is None."""
        if name is None:
            if len(self.apps) == 1:
                return next(iter(self.apps.items()))
            raise UsageError(
                f"{self.source or 'the configuration'} defines {len(self.apps)} apps; say which one",
                hint=f"Add --app NAME (one of: {', '.join(sorted(self.apps))})",
            )
        if name not in self.apps:
            raise NotFound(
                f"no app named {name!r} in {self.source or 'the configuration'}",
                hint=f"Known apps: {', '.join(sorted(self.apps)) or 'none'}",
            )
        return name, self.apps[name]


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The configuration file to read, or None for the defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} {_why_not_a_file(path)}",
                              hint="Check --config, or write one with: railguard init")
        return path
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"configuration file {path} (from ${CONFIG_ENV}) {_why_not_a_file(path)}",
                              hint=f"Fix or unset ${CONFIG_ENV}")
        return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def _why_not_a_file(path: Path) -> str:
    if path.is_dir():
        return f"is a directory; name the file in it (such as {path / DEFAULT_CONFIG_NAME})"
    return "is not a regular file" if path.exists() else "does not exist"


def load_settings(
    path: Path | None,
    overrides: Mapping[str, tuple[str, Any]] | None = None,
) -> Settings:
    """Read and validate the configuration.

    ``overrides`` maps a dotted key (``"apps.tasks.backup.compression"``) to ``(flag, value)``;
    a value that fails validation is reported against the flag that supplied it.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", hint="Fix the syntax at the line shown") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the configuration: {exc}") from exc
    origins: dict[tuple[str, ...], str] = {}
    for dotted, (flag, value) in (overrides or {}).items():
        keys = tuple(dotted.split("."))
        _set_nested(raw, keys, value)
        origins[keys] = flag
    try:
        settings = Settings.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise _config_error(exc, path, origins) from None
    settings.source = path
    _refuse_shared_backup_names(settings, path)
    return settings


def _refuse_shared_backup_names(settings: Settings, path: Path | None) -> None:
    """Two apps whose databases are different files with the same stem must not share a backup
    directory: their backups would share names (``tasks-20261127-0330``), and with them the
    lock and the name space that prune and ``latest`` read (the catalog tells them apart by
    manifest, but a name can only belong to one backup)."""
    seen: dict[tuple[str, str], str] = {}
    for name, app in settings.apps.items():
        key = (os.path.normpath(app.backup.directory.absolute()), stem_for(app.database))
        # Two apps over the very same database (a config that only monitors their URLs leaves
        # both at the default) back up the same data: their backups do not need telling apart.
        if key in seen and os.path.normpath(settings.apps[seen[key]].database.absolute()) != \
                os.path.normpath(app.database.absolute()):
            raise ConfigError(
                f"{path or 'configuration'}: apps.{seen[key]} and apps.{name} would share the backup names "
                f"{key[1]}-* in {app.backup.directory} (databases {settings.apps[seen[key]].database} and "
                f"{app.database})",
                hint=f"Set apps.{name}.backup.directory to a directory of its own")
        seen[key] = name


def _set_nested(target: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    if keys[0] == "apps" and "apps" not in target:
        # Overriding an app's setting without an [apps] table means "the default app".
        target["apps"] = {keys[1]: {}}
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _config_error(exc: pydantic.ValidationError, path: Path | None, origins: dict[tuple[str, ...], str]) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        detail = "unknown key"
        hint = "Remove it or check its spelling against docs/configuration.md"
    else:
        detail = first["msg"].removeprefix("Value error, ")
        hint = "See docs/configuration.md for the expected form"
    flag = origins.get(loc)
    where = flag if flag else f"{path or 'configuration'}: {key}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(f"{where}: {detail}{more}", hint=hint)
