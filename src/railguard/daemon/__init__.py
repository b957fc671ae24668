"""``railguard daemon``: one long-running process that runs every enabled job on its schedule.

Each job runs as its own ``railguard`` child process (``railguard backup --app tasks``), so a
job that crashes or leaks cannot take the daemon down, and SIGTERM reaches the job's own clean-up
path (a backup removes its temporary files and never leaves a half backup). Long-running parts
(the monitor, the webhook gate) are supervised children restarted with backoff.
"""

from railguard.daemon.jobs import Job, plan_jobs
from railguard.daemon.runlog import RunLog
from railguard.daemon.runner import Daemon

__all__ = ["Daemon", "Job", "RunLog", "plan_jobs"]
