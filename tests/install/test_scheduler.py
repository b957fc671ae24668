"""railguard init --scheduler: systemd units and crontab lines that systemd accepts, that run
when the daemon would, and whose commands are real railguard commands."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from railguard.config import ScheduleSettings
from railguard.errors import ExitCode
from railguard.init import cron_to_calendar
from railguard.init.scheduler import ScheduleNotTranslatable

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                           reason="systemd-analyze is missing: apt-get install systemd")

CONFIG = """\
timezone = "{tz}"
state_dir = "{tmp}/state"

[apps.tasks]
database = "{tmp}/data/tasks.db"
url = "http://127.0.0.1:3000"

[apps.tasks.backup]
directory = "{tmp}/data/backups"

[apps.tasks.drill]
command = ["python3", "app.py"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(CONFIG.format(tz="Europe/Madrid", tmp=tmp_path))
    return path


def units(directory: Path) -> dict[str, configparser.ConfigParser]:
    parsed = {}
    for path in sorted(directory.iterdir()):
        # strict: a section or key given twice is an error; interpolation off: systemd's % is not Python's.
        parser = configparser.ConfigParser(strict=True, interpolation=None)
        parser.optionxform = str
        parser.read_string(path.read_text())
        parsed[path.name] = parser
    return parsed


def crontab_jobs(text: str) -> list[str]:
    """The job lines: not comments, blank lines or VARIABLE=value settings."""
    return [line for line in text.splitlines()
            if line.strip() and not line.startswith("#") and not re.match(r"[A-Z_]+=", line)]


def exec_argv(line: str, app: str) -> list[str]:
    return [arg.replace("%i", app).replace("%%", "%") for arg in shlex.split(line)]


def test_systemd_timers_are_a_template_service_per_job_and_a_timer_per_app(run_cli, config, tmp_path):
    out = tmp_path / "units"
    out.mkdir()
    result = run_cli("--config", config, "init", "--scheduler", "systemd-timers", out)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["railguard-backup@.service", "railguard-backup@tasks.timer",
                                                       "railguard-drill@.service", "railguard-drill@tasks.timer",
                                                       "railguard-monitor.service"]
    parsed = units(out)
    assert parsed["railguard-backup@tasks.timer"]["Timer"]["OnCalendar"] == "*-*-* 03:30:00 Europe/Madrid"
    assert parsed["railguard-drill@tasks.timer"]["Timer"]["OnCalendar"] == "*-*-01 04:00:00 Europe/Madrid"
    for name in ["railguard-backup@tasks.timer", "railguard-drill@tasks.timer"]:
        assert parsed[name]["Timer"]["Persistent"] == "true"
        assert parsed[name]["Install"]["WantedBy"] == "timers.target"
    backup = parsed["railguard-backup@.service"]["Service"]
    assert backup["Type"] == "oneshot"
    # --scheduled: a timer's backup is not one taken by hand (no [backup.keep_manual] protection).
    assert exec_argv(backup["ExecStart"], "tasks")[-6:] == ["--config", str(config), "--app", "tasks", "backup",
                                                            "--scheduled"]
    # The backup directory is writable under the hardening: nothing under /usr, /boot or /etc.
    assert backup["ProtectSystem"] == "full"
    assert "PrivateTmp" not in parsed["railguard-drill@.service"]["Service"], "dockerd must see the drill's temp dir"
    assert exec_argv(parsed["railguard-monitor.service"]["Service"]["ExecStart"], "")[-1] == "monitor"
    assert f"next: cp {out}/railguard-backup@.service" in result.stdout
    assert ("next: systemctl enable --now railguard-backup@tasks.timer railguard-drill@tasks.timer "
            "railguard-monitor.service\n") in result.stdout


def test_the_daemon_service_waits_for_the_daemons_stop_grace(run_cli, config, tmp_path):
    (tmp_path / "units").mkdir()
    result = run_cli("--config", config, "init", "--scheduler", "systemd", tmp_path / "units", "--user", "railguard")
    assert result.exit_code == 0, result.stderr
    service = units(tmp_path / "units")["railguard.service"]["Service"]
    assert exec_argv(service["ExecStart"], "")[-3:] == ["--config", str(config), "daemon"]
    assert service["KillMode"] == "mixed", "SIGTERM must reach the daemon alone, which passes it to the job"
    assert service["TimeoutStopSec"] == "150s"  # stop_grace 2 min + 30 s
    assert service["User"] == "railguard"


@needs_systemd_analyze
@pytest.mark.parametrize("scheduler", ["systemd", "systemd-timers"])
def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(run_cli, config, tmp_path, scheduler):
    out = tmp_path / "units"
    out.mkdir()
    assert run_cli("--config", config, "init", "--scheduler", scheduler, out).exit_code == 0
    # A template is verified through an instance; a timer needs its service next to it (same directory).
    names = [p.name.replace("@.service", "@tasks.service") for p in out.iterdir()]
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *(f"{out}/{n}" for n in names)],
                            capture_output=True, text=True, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "systemd ignores unknown keys with only a warning: there must be none"


def systemd_elapses(expression: str, base: datetime, count: int) -> list[datetime]:
    result = subprocess.run([SYSTEMD_ANALYZE, "calendar", f"--iterations={count}",
                             f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", expression],
                            capture_output=True, text=True, env={**os.environ, "TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", result.stdout)
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc) for s in stamps]


def cronsim_runs(cron: str, tz: str, base: datetime, count: int) -> list[datetime]:
    runs = CronSim(cron, base.astimezone(ZoneInfo(tz)))
    return [next(runs).astimezone(timezone.utc) for _ in range(count)]


@needs_systemd_analyze
@pytest.mark.parametrize("cron", [ScheduleSettings().backup, ScheduleSettings().drill, "*/15 9-17 * * 1-5",
                                  "*/20 8 * * MON-FRI", "0 6 * JAN,JUL SUN", "5 4 * * 5-7", "0 12 15 */3 *",
                                  "0 4 */2 * *"])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Madrid"])
def test_oncalendar_fires_at_the_same_moments_as_the_daemons_cron(cron, tz):
    # Across the night Madrid moves its clocks forward (2026-03-29): the daemon (cronsim) and
    # systemd must agree there too.
    base = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)
    expression = cron_to_calendar(cron, tz)
    assert subprocess.run([SYSTEMD_ANALYZE, "calendar", expression], capture_output=True).returncode == 0
    assert systemd_elapses(expression, base, 40) == cronsim_runs(cron, tz, base, 40)


@pytest.mark.parametrize(("cron", "reason"), [
    ("0 4 1 * MON", "restricts both the day of the month and the day of the week"),
    ("0 4 L * *", "has no systemd equivalent"),
])
def test_schedules_systemd_would_run_differently_are_refused(cron, reason):
    with pytest.raises(ScheduleNotTranslatable, match=reason) as raised:
        cron_to_calendar(cron, "UTC")
    assert raised.value.exit_code == ExitCode.USAGE and raised.value.hint


def test_crontab_lines_run_at_the_daemons_default_times(run_cli, config, tmp_path):
    out = tmp_path / "cron"
    out.mkdir()
    result = run_cli("--config", config, "init", "--scheduler", "cron", out)
    assert result.exit_code == 0, result.stderr
    text = (out / "railguard.cron").read_text()
    jobs = crontab_jobs(text)
    # The verb follows --app NAME (a backup then has --scheduled: not one taken by hand).
    schedules = {_verb(line.split(">>")[0].split()): " ".join(line.split()[:5]) for line in jobs}
    assert schedules == {"backup": ScheduleSettings().backup, "drill": ScheduleSettings().drill}
    assert all(line.split()[5] == "root" for line in jobs)
    assert all(line.endswith(f">> {tmp_path}/state/cron.log 2>&1") for line in jobs)
    assert "flock" not in " ".join(jobs)
    assert "cron has NO catch-up" in text
    assert "CRON_TZ=Europe/Madrid" in text.splitlines()
    assert "# Not here: monitor" in text
    assert "next: install -m 0644" in result.stdout


def test_the_commands_the_units_and_crontab_run_exist(run_cli, config, tmp_path):
    for scheduler in ["cron", "systemd", "systemd-timers"]:
        (tmp_path / scheduler).mkdir()
        assert run_cli("--config", config, "init", "--scheduler", scheduler, tmp_path / scheduler).exit_code == 0
    # minute hour day month weekday user command...
    commands = [shlex.split(line.split(">>")[0])[6:] for line in crontab_jobs((tmp_path / "cron" /
                                                                               "railguard.cron").read_text())]
    for directory in [tmp_path / "systemd", tmp_path / "systemd-timers"]:
        for parsed in units(directory).values():
            if parsed.has_section("Service"):
                commands.append(exec_argv(parsed["Service"]["ExecStart"], "tasks"))
    verbs = sorted(_verb(argv) for argv in commands)
    assert verbs == ["backup", "backup", "daemon", "drill", "drill", "monitor"]
    assert all(argv[-1] == "--scheduled" for argv in commands if "backup" in argv)
    for argv in commands:
        assert Path(argv[0]).is_absolute(), "cron and systemd have a minimal PATH"
        result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"Usage: railguard {_verb(argv)}" in result.stdout


def _verb(argv: list[str]) -> str:
    """The command a unit or crontab line runs: its last word, but for a backup's --scheduled."""
    return argv[-2] if argv[-1] == "--scheduled" else argv[-1]


def test_init_scheduler_never_overwrites_and_print_writes_nothing(run_cli, config, tmp_path):
    out = tmp_path / "units"
    out.mkdir()
    (out / "railguard.service").write_text("[Service]\nExecStart=/bin/mine\n")
    result = run_cli("--config", config, "init", "--scheduler", "systemd", out)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: railguard.service already exists in {out}; nothing was written\n")
    assert (out / "railguard.service").read_text() == "[Service]\nExecStart=/bin/mine\n"
    printed = run_cli("--config", config, "init", "--scheduler", "systemd", out, "--print")
    assert printed.stdout.startswith("==> railguard.service <==\n")
    assert (out / "railguard.service").read_text() == "[Service]\nExecStart=/bin/mine\n"
    assert run_cli("--config", config, "init", "--scheduler", "systemd", out, "--force").exit_code == 0
    assert "daemon" in (out / "railguard.service").read_text()


def test_an_interval_schedule_cannot_go_to_cron(run_cli, tmp_path):
    path = tmp_path / "railguard.toml"
    path.write_text(CONFIG.format(tz="UTC", tmp=tmp_path) + '\n[apps.tasks.schedule]\nbackup = "every 6h"\n')
    result = run_cli("--config", path, "init", "--scheduler", "cron", "--print")
    assert result.exit_code == 3
    assert result.stderr == ("error: backup:tasks's schedule every 6h is an interval, which --scheduler cron cannot "
                             "express\nhint: Use a cron expression in [apps.NAME.schedule], or --scheduler systemd "
                             "(the daemon)\n")


def test_runtime_and_scheduler_together_are_a_usage_error(run_cli, config):
    result = run_cli("--config", config, "init", "--scheduler", "cron", "--runtime", "bun", "--print")
    assert result.exit_code == 3
    assert "give --runtime or --scheduler, not both" in result.stderr
