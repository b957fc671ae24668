"""The ``Examples:`` block that ends every command's help, in one table.

One place, so a test can check that every command has examples and that each of them parses
(tests/test_cli_examples.py), and so a renamed option is renamed here once. Each entry is the
words after ``railguard`` and what the example does.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "": [("backup", "back up the app's database now"),
         ("status", "is everything all right?"),
         ("backups list --config /etc/railguard.toml --app tasks", "global options go anywhere")],
    "backup": [("backup", "a verified backup of the app's database"),
               ("backup --quiet", "for cron: nothing on stdout unless it fails"),
               ("backup --no-prune --json", "keep every older backup; one JSON document"),
               ("backup --keep 'before the v2 migration'", "a backup that prune never removes")],
    "backups": [("backups list", "every backup, newest last"),
                ("backups verify --all", "re-check every backup")],
    "backups list": [("backups list", "every local backup: time, size, verified, age"),
                     ("backups list --dest offsite --json", "the copies at the destination offsite")],
    "backups keep": [("backups keep tasks-20261201-0330 --reason 'before the v2 migration'",
                      "never prune this backup until it is unkept"),
                     ("backups keep latest --for 30d", "protect the newest backup for 30 days")],
    "backups unkeep": [("backups unkeep tasks-20261201-0330", "let prune decide about it again")],
    "backups verify": [("backups verify --all", "re-read and check every local backup"),
                       ("backups verify latest --check quick", "a quick check of the newest one"),
                       ("backups verify --all --dest offsite", "every copy at the destination offsite")],
    "prune": [("prune --dry-run", "what the retention policy would delete, and why each backup is kept"),
              ("prune --keep-daily 7 --keep-weekly 4", "keep 7 daily and 4 weekly backups")],
    "restore": [("restore latest --to /tmp/check.db", "the newest backup into a new file"),
                ("restore latest --dest offsite --to /tmp/check.db", "from the destination offsite")],
    "replicate": [("replicate", "copy new backups to every destination"),
                  ("replicate --dest offsite --all", "copy every backup to offsite")],
    "drill": [("drill", "restore the newest backup in a scratch container and run the checks"),
              ("drill random --dest offsite", "a random backup, fetched from offsite")],
    "deploy": [("deploy", "deploy the current commit, smoke-test it, roll back on failure"),
               ("deploy v1.4.2 --repo /srv/tasks", "deploy a tag of another checkout")],
    "rollback": [("rollback", "back to the previous good deploy"),
                 ("rollback --to v1.4.1", "back to a given version")],
    "deploys": [("deploys list", "the deploy history")],
    "deploys list": [("deploys list", "the deploy history, newest first"),
                     ("deploys list --caprover --json", "with what CapRover runs now")],
    "release": [("release patch --dry-run", "what the next patch release would tag"),
                ("release minor", "tag and push the next minor release")],
    "hook": [("hook install /srv/git/tasks.git", "install the pre-receive hook"),
             ("hook uninstall /srv/git/tasks.git", "remove it")],
    "hook install": [("hook install /srv/git/tasks.git", "run the tests before a push to main lands"),
                     ("hook install /srv/git/tasks.git --remote http://127.0.0.1:8473",
                      "ask the gate instead (Forgejo's image has no Python)")],
    "hook uninstall": [("hook uninstall /srv/git/tasks.git", "remove railguard's hook")],
    "hook run": [("hook run < ref-lines.txt", "check '<old> <new> <ref>' lines by hand"),
                 ("hook run --json < ref-lines.txt", "the verdict of each ref as JSON")],
    "gate": [("gate serve", "serve the webhook gate"),
             ("gate list", "the gate's recent test runs")],
    "gate serve": [("gate serve --host 127.0.0.1 --port 8473", "serve the webhook gate")],
    "gate list": [("gate list --limit 5", "the five most recent test runs"),
                  ("gate list --json", "as JSON")],
    "probe": [("probe http://127.0.0.1:3000/health", "exit 0 only for HTTP 200 (a Docker HEALTHCHECK)"),
              ("probe http://127.0.0.1:3000/ready --expect-status 204 --timeout 3", "another status")],
    "doctor": [("doctor", "check the configuration, the host and the repository here"),
               ("doctor /srv/tasks --fix", "and fix what it safely can")],
    "init": [("init --runtime bun", "write the deploy files for a Bun app"),
             ("init --scheduler systemd-timers --print", "print the timers for the enabled jobs")],
    "smoke": [("smoke", "smoke-test the app's url now"),
              ("smoke --url https://tasks.example.org --wait 2m --notify", "wait for it, then notify")],
    "notify": [("notify test", "send a test notification to every channel")],
    "notify test": [("notify test", "send a test notification to every channel"),
                    ("notify test --event backup_failed", "only to the channels of backup_failed")],
    "monitor": [("monitor", "check every target every interval, alert on DOWN and RECOVERED"),
                ("monitor --once --json", "one round, as a JSON document"),
                ("monitor list", "uptime and the last failure of each target")],
    "monitor list": [("monitor list", "UP/DOWN and uptime over 24h / 7d / 30d"),
                       ("monitor list --json", "as JSON")],
    "monitor pause": [("monitor pause tasks --for 1h --reason 'moving the disk'", "no alert for an hour"),
                      ("monitor pause tasks", "no alert until resumed")],
    "monitor resume": [("monitor resume tasks", "alerts go out again from the next round")],
    "status": [("status", "backups, drills, deploys and the monitor at a glance"),
               ("status --json --quiet", "for a script")],
    "daemon": [("daemon", "run every enabled job on its schedule"),
               ("daemon --json", "its log as one JSON document per line")],
    "schedule": [("schedule", "every job, its next run and its last success"),
                 ("schedule --json", "as JSON")],
    "web": [("web", "the status page on http://127.0.0.1:9181/"),
            ("web --listen 0.0.0.0:9181", "on the network (needs $RAILGUARD_WEB_TOKEN)")],
}


def epilog_for(command_path: str) -> str | None:
    """The ``Examples:`` block for ``railguard backups list`` (its ``command_path``), or None."""
    words = command_path.split(" ", 1)
    examples = EXAMPLES.get(words[1] if len(words) > 1 else "")
    if not examples:
        return None
    commands = [f"railguard {line}" for line, _ in examples]
    width = max(len(command) for command in commands) + 2
    lines = [f"  {command.ljust(width)}# {what}" for command, (_, what) in zip(commands, examples)]
    return "\b\nExamples:\n" + "\n".join(lines)
