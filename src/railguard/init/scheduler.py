"""Units and crontab lines for people who run railguard from the host's scheduler.

Three shapes, from the jobs the daemon would run (:func:`railguard.daemon.plan_jobs`, so the
configuration is the one source of truth):

- ``systemd``: ``railguard.service`` runs ``railguard daemon`` (catch-up, no overlap, the
  monitor, ``/healthz``); the recommended one.
- ``systemd-timers``: ``railguard-backup@.service`` / ``railguard-drill@.service`` templates
  (the instance is the app's name) with one timer per app, ``railguard-backup@tasks.timer``,
  whose ``OnCalendar=`` is the app's cron schedule translated; ``Persistent=true`` gives the
  catch-up after downtime. Long-running jobs (monitor, gate) get a plain service each.
- ``cron``: a file for ``/etc/cron.d``; cron has no catch-up.

:func:`cron_to_calendar` is pure and checked against ``systemd-analyze calendar`` in the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from railguard.config import Settings
from railguard.daemon import plan_jobs
from railguard.daemon.jobs import Job
from railguard.errors import UsageError
from railguard.init.files import PlannedFile

SCHEDULERS = ("systemd", "systemd-timers", "cron")
_UNIT_INSTANCE = re.compile(r"[A-Za-z0-9_-]+")

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_CRON_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_SYSTEMD_DAYS = {0: "Sun", 1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat"}


class ScheduleNotTranslatable(UsageError):
    """A schedule the host's scheduler cannot express the way the daemon runs it."""


@dataclass(frozen=True)
class SchedulerOptions:
    kind: str
    #: The command that starts railguard (absolute path, or python -m railguard).
    railguard: tuple[str, ...]
    #: Run as this user (systemd ``User=``, the cron.d user field); None: root.
    user: str | None = None


def railguard_command() -> tuple[str, ...]:
    """The console script next to the running interpreter (a venv's or pipx's ``bin/``), else
    ``python -m railguard`` with this interpreter: either way an absolute path that exists, as
    systemd and cron (with their minimal ``PATH``) need."""
    script = Path(sys.executable).parent / "railguard"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", "railguard")


# ---------------------------------------------------------------- cron -> OnCalendar (pure)

def _field_values(text: str, low: int, high: int, names: list[str] | None, what: str) -> set[int]:
    values: set[int] = set()
    for part in text.upper().split(","):
        body, _, step_text = part.partition("/")
        step = _number(step_text, None, low, what) if step_text else 1
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            first, last = body.split("-", 1)
            start, end = _number(first, names, low, what), _number(last, names, low, what)
        else:
            start = _number(body, names, low, what)
            end = high if step_text else start
        if step < 1 or not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleNotTranslatable(f"cron field {what} {text!r} is out of range for the host's scheduler",
                                          hint="Use --scheduler systemd (the daemon reads the schedule itself)")
        values.update(range(start, end + 1, step))
    return values


def _number(token: str, names: list[str] | None, low: int, what: str) -> int:
    if names and token in names:
        return names.index(token) + low
    if not token.isdigit():
        raise ScheduleNotTranslatable(f"cron field {what} {token!r} has no systemd equivalent",
                                      hint="Use plain numbers, ranges, lists and steps, or --scheduler systemd "
                                           "(the daemon reads the schedule itself)")
    return int(token)


def _calendar_list(values: set[int], low: int, high: int, width: int) -> str:
    if values == set(range(low, high + 1)):
        return "*"
    return ",".join(f"{value:0{width}d}" for value in sorted(values))


def cron_to_calendar(cron: str, tz: str) -> str:
    """``"30 3 * * *"`` in ``Europe/Madrid`` -> ``"*-*-* 03:30:00 Europe/Madrid"``.

    Raises :class:`ScheduleNotTranslatable` where systemd would run at other times than the
    daemon: day-of-month *and* day-of-week both restricted (cron runs when either matches,
    systemd only when both do), and cron extensions such as ``L`` or ``#``.
    """
    fields = cron.split()
    if len(fields) != 5:
        raise ScheduleNotTranslatable(f"{cron!r} is not a five-field cron expression",
                                      hint="Write it as 'minute hour day month weekday', e.g. '30 3 * * *'")
    minute, hour, day, month, weekday = fields
    if not day.startswith(("*", "?")) and not weekday.startswith(("*", "?")):
        raise ScheduleNotTranslatable(
            f"{cron!r} restricts both the day of the month and the day of the week: cron runs when either "
            "matches, systemd only when both do",
            hint="Use --scheduler systemd (the daemon) or --scheduler cron for this schedule")
    minutes = _field_values(minute, 0, 59, None, "minute")
    hours = _field_values(hour, 0, 23, None, "hour")
    days = _field_values(day, 1, 31, None, "day")
    months = _field_values(month, 1, 12, _MONTHS, "month")
    weekdays = {value % 7 for value in _field_values(weekday, 0, 7, _CRON_DAYS, "weekday")}  # 7 is Sunday too
    monday_first = sorted(weekdays, key=lambda d: (d - 1) % 7)
    prefix = "" if weekdays == set(range(7)) else ",".join(_SYSTEMD_DAYS[d] for d in monday_first) + " "
    date = f"*-{_calendar_list(months, 1, 12, 2)}-{_calendar_list(days, 1, 31, 2)}"
    time = f"{_calendar_list(hours, 0, 23, 2)}:{_calendar_list(minutes, 0, 59, 2)}:00"
    return f"{prefix}{date} {time} {tz}"


# ---------------------------------------------------------------- the files

def scheduler_files(settings: Settings, options: SchedulerOptions) -> list[PlannedFile]:
    jobs = plan_jobs(settings)
    if not jobs:
        raise UsageError("nothing to schedule: every job is switched off in the configuration",
                         hint="Set [apps.NAME.schedule] backup, or enable [daemon] monitor or gate")
    if options.kind == "systemd":
        return [PlannedFile("railguard.service", _daemon_service(settings, options))]
    if options.kind == "systemd-timers":
        return _timer_files(settings, options, jobs)
    return [PlannedFile("railguard.cron", _crontab(settings, options, jobs))]


def next_steps(kind: str, files: list[PlannedFile], directory: str) -> list[str]:
    """What to run after the files are written (printed by the command)."""
    if kind == "cron":
        return [f"install -m 0644 {Path(directory) / 'railguard.cron'} /etc/cron.d/railguard"]
    enable = [f.name for f in files if f.name.endswith(".timer") or
              (f.name.endswith(".service") and "@" not in f.name)]
    steps = []
    if Path(directory).resolve() != Path("/etc/systemd/system"):
        steps.append(f"cp {' '.join(str(Path(directory) / f.name) for f in files)} /etc/systemd/system/")
    steps += ["systemctl daemon-reload", f"systemctl enable --now {' '.join(enable)}"]
    return steps


def _base_command(settings: Settings, options: SchedulerOptions) -> list[str]:
    config = ["--config", str(settings.source.absolute())] if settings.source else []
    return [*options.railguard, *config]


def _exec(argv: list[str]) -> str:
    # systemd's ExecStart= splits on spaces and honours double quotes like a shell; %-specifiers
    # are expanded, so a literal % is doubled (the app name goes in through %i on purpose).
    return " ".join(f'"{arg}"' if " " in arg else arg for arg in (a.replace("%", "%%") for a in argv))


def _seconds(value: timedelta) -> str:
    return f"{int(value.total_seconds())}s"


def _user_line(options: SchedulerOptions, settings: Settings) -> str:
    lines = f"User={options.user}\n" if options.user else ""
    if settings.state_dir == Path("/var/lib/railguard"):
        # systemd creates it, owned by User=, before the first start.
        lines += "StateDirectory=railguard\n"
    if settings.source is None:
        lines += "# No --config: railguard's built-in defaults. Re-run init with --config to pin a file.\n"
    return lines


# Hardening that cannot stop a backup from being written: ProtectSystem=full makes only /usr,
# /boot, /efi and /etc read-only (strict would need every database, backup, state and file://
# destination directory listed, and a new one would fail silently until the next backup).
# No PrivateTmp for jobs that may start Docker (drill, daemon): a temporary directory bind-mounted
# into a container must be visible to dockerd, outside the unit's namespace.
_HARDENING = """\
NoNewPrivileges=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
"""


def _daemon_service(settings: Settings, options: SchedulerOptions) -> str:
    grace = settings.daemon.stop_grace + timedelta(seconds=30)
    return f"""\
# Written by `railguard init --scheduler systemd`: railguard's daemon runs every job the
# configuration enables on its own schedule (docs/daemon.md), with catch-up after downtime.
[Unit]
Description=railguard daemon: verified SQLite backups, drills and monitoring
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={_exec([*_base_command(settings, options), "daemon"])}
{_user_line(options, settings)}Restart=on-failure
RestartSec=5s
# SIGTERM to the daemon only: it passes it on to the running job and gives that job
# stop_grace ({_seconds(settings.daemon.stop_grace)}) to finish or abort cleanly; systemd's own 90 s
# default would kill a backup the daemon is still waiting for.
KillMode=mixed
TimeoutStopSec={_seconds(grace)}
{_HARDENING}
[Install]
WantedBy=multi-user.target
"""


def _job_service(settings: Settings, options: SchedulerOptions, verb: str, description: str,
                 private_tmp: bool) -> str:
    # _exec doubles every %: the specifier %i (the instance, i.e. the app) is added after it.
    line = _exec(_base_command(settings, options)) + f" --app %i {_scheduled(verb)}"
    return f"""\
# Written by `railguard init --scheduler systemd-timers`; started by railguard-{verb}@APP.timer.
[Unit]
Description=railguard: {description} of %i
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={line}
{_user_line(options, settings)}# The daemon's job_timeout and stop_grace, so both ways of running behave alike.
TimeoutStartSec={_seconds(settings.daemon.job_timeout)}
TimeoutStopSec={_seconds(settings.daemon.stop_grace)}
# Leave the CPU and the disk to the app first.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
{_HARDENING}{"PrivateTmp=yes" + chr(10) if private_tmp else ""}"""


def _timer(job: Job, verb: str, app: str, tz: str, what: str) -> str:
    assert job.schedule is not None and job.schedule.cron is not None
    return f"""\
# Written by `railguard init --scheduler systemd-timers`: {what} of {app}.
[Unit]
Description=railguard: {verb} of {app} ({job.schedule.cron}, {tz})

[Timer]
OnCalendar={cron_to_calendar(job.schedule.cron, tz)}
# Catch-up: a run missed while the machine was off starts at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"""


def _scheduled(verb: str) -> str:
    """A backup run by a timer or cron is a scheduled one: not protected for [backup.keep_manual]."""
    return "backup --scheduled" if verb == "backup" else verb


def _cron_only(job: Job, kind: str) -> str:
    if job.schedule is None or job.schedule.cron is None:
        raise ScheduleNotTranslatable(
            f"{job.name}'s schedule {job.schedule} is an interval, which --scheduler {kind} cannot express",
            hint="Use a cron expression in [apps.NAME.schedule], or --scheduler systemd (the daemon)")
    return job.schedule.cron


def _timer_files(settings: Settings, options: SchedulerOptions, jobs: list[Job]) -> list[PlannedFile]:
    files: list[PlannedFile] = []
    verbs = {"backup": ("verified backup, prune and off-host copies", True),
             "drill": ("restore drill", False)}
    templates_needed: list[str] = []
    for job in jobs:
        if job.is_service:
            continue
        verb, app = job.name.split(":", 1)
        _cron_only(job, options.kind)
        if not _UNIT_INSTANCE.fullmatch(app):
            raise UsageError(f"app name {app!r} cannot be a systemd unit instance",
                             hint="Rename it in the configuration to letters, digits, - and _ only, "
                                  "or use --scheduler systemd (the daemon)")
        if verb not in templates_needed:
            templates_needed.append(verb)
        files.append(PlannedFile(f"railguard-{verb}@{app}.timer",
                                 _timer(job, verb, app, settings.timezone, verbs[verb][0])))
    files[:0] = [PlannedFile(f"railguard-{verb}@.service",
                             _job_service(settings, options, verb, verbs[verb][0], verbs[verb][1]))
                 for verb in templates_needed]
    for job in jobs:
        if job.is_service:
            args = ["gate", "serve"] if job.name == "gate" else [job.name]
            files.append(PlannedFile(f"railguard-{job.name}.service", _long_running_service(settings, options, args)))
    return files


def _long_running_service(settings: Settings, options: SchedulerOptions, args: list[str]) -> str:
    return f"""\
# Written by `railguard init --scheduler systemd-timers`: `railguard {' '.join(args)}` runs all the time.
[Unit]
Description=railguard {' '.join(args)}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={_exec([*_base_command(settings, options), *args])}
{_user_line(options, settings)}Restart=always
RestartSec=5s
{_HARDENING}
[Install]
WantedBy=multi-user.target
"""


def _crontab(settings: Settings, options: SchedulerOptions, jobs: list[Job]) -> str:
    log = str(settings.state_dir / "cron.log")
    base = " ".join(shlex.quote(arg) for arg in _base_command(settings, options))
    lines = [
        "# Written by `railguard init --scheduler cron`. Install it as /etc/cron.d/railguard: Debian's",
        "# cron skips files in /etc/cron.d whose names contain a dot.",
        "#",
        "# cron has NO catch-up: a run missed while the machine was off is skipped until the next one.",
        "# Where that matters, use the daemon (--scheduler systemd) or the timers (Persistent=true).",
        "# No flock: railguard locks each backup itself (a second run at once exits 5, busy).",
        f"# Output goes to {log} (create {settings.state_dir} first, writable by the user below).",
        "#",
        f"# Times are railguard's configured time zone, {settings.timezone}: cronie honours CRON_TZ;",
        "# Debian's cron ignores it and reads the times in the system's time zone (timedatectl).",
        f"CRON_TZ={settings.timezone}",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    services = []
    for job in jobs:
        if job.is_service:
            services.append(job.name)
            continue
        verb, app = job.name.split(":", 1)
        cron = _cron_only(job, options.kind)
        # In a crontab an unescaped % ends the command; none is expected, but a path may have one.
        command = f"{base} --app {shlex.quote(app)} {_scheduled(verb)} >> {shlex.quote(log)} 2>&1".replace("%", "\\%")
        lines += ["", f"# {job.name}", f"{cron} {options.user or 'root'} {command}"]
    if services:
        lines += ["", f"# Not here: {', '.join(services)} run(s) all the time, which cron cannot do; run them",
                  "# with the daemon (--scheduler systemd) or --scheduler systemd-timers."]
    return "\n".join(lines) + "\n"
