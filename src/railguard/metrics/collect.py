"""Metric families built from what is on disk; each function reads, none writes.

Page generations (docs/pages.md) are backups: the ``railguard_backup_*`` families count the
whole-file backups and the generations of an app together, the newest of either kind is "the
newest backup", and a generation's stored size is what it added to the store (its new pages,
packed). ``railguard_recovery_point_seconds`` is the age of the newest verified one at ``now``,
which the caller passes (the scrape's time, or the textfile's writing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from railguard.config import Settings
from railguard.monitor.state import DOWN, UP, TargetState

if TYPE_CHECKING:
    from railguard.backup.catalog import BackupRecord
    from railguard.pages.catalog import GenerationRecord


def backup_families(settings: Settings, now: datetime) -> list[Metric]:
    from railguard.backup.log import last_backup_attempt
    from railguard.destinations.history import last_copy_success, read_copy_log
    from railguard.drill.log import last_drill_success
    from railguard.backup.catalog import Owner, list_backups
    from railguard.pages import stored_generations

    success = GaugeMetricFamily("railguard_backup_last_success_timestamp_seconds",
                                "When the newest verified backup was taken.", labels=["app"])
    size = GaugeMetricFamily("railguard_backup_last_size_bytes",
                             "Stored (compressed) size of the newest verified backup.", labels=["app"])
    raw = GaugeMetricFamily("railguard_backup_last_raw_size_bytes",
                            "Size of the database in the newest verified backup.", labels=["app"])
    duration = GaugeMetricFamily("railguard_backup_last_duration_seconds",
                                 "How long the newest verified backup took, end to end.", labels=["app"])
    verify = GaugeMetricFamily("railguard_backup_last_verify_success",
                               "1 when the newest backup passed its integrity check and hashes, else 0.",
                               labels=["app"])
    attempt = GaugeMetricFamily("railguard_backup_last_run_success",
                                "1 when the last backup attempt (backup.log) succeeded, else 0.", labels=["app"])
    count = GaugeMetricFamily("railguard_backup_verified_count",
                              "Verified backups on disk (whole-file backups and page generations).", labels=["app"])
    recovery = GaugeMetricFamily("railguard_recovery_point_seconds",
                                 "Age of the newest verified backup of either kind (whole-file or page generation).",
                                 labels=["app"])
    drill = GaugeMetricFamily("railguard_drill_last_success_timestamp_seconds",
                              "When the last restore drill passed (drill.log).", labels=["app"])
    destination_success = GaugeMetricFamily("railguard_destination_last_success_timestamp_seconds",
                                            "When a backup was last copied (and verified) to the destination.",
                                            labels=["app", "destination"])
    for name, app in settings.apps.items():
        directory = app.backup.directory
        if not directory.is_dir():
            continue
        # Oldest first, by time, as backups list shows them: a generation is a backup like any other.
        owner = Owner.of(settings, name, app)
        records: list[BackupRecord | GenerationRecord] = sorted(
            [*list_backups(directory, owner), *stored_generations(directory, owner)],
            key=lambda record: (record.created_at, record.id))
        good = [record for record in records if record.is_good]
        count.add_metric([name], len(good))
        if good:
            newest = good[-1]
            manifest = newest.manifest
            assert manifest is not None
            success.add_metric([name], newest.created_at.timestamp())
            recovery.add_metric([name], max(0.0, (now - newest.created_at).total_seconds()))
            size.add_metric([name], manifest.size_stored)
            raw.add_metric([name], manifest.size_raw)
            duration.add_metric([name], float(manifest.durations.get("total", 0.0)))
        if records:
            verify.add_metric([name], 1 if records[-1].is_good else 0)
        line = last_backup_attempt(directory)
        if line is not None:
            attempt.add_metric([name], 1 if line.get("result") == "ok" else 0)
        drilled = last_drill_success(directory)
        if drilled is not None:
            drill.add_metric([name], drilled.timestamp())
        copies = read_copy_log(directory)
        for destination in sorted(getattr(app, "destinations", None) or {}):
            copied = last_copy_success([line for line in copies if line.get("destination") == destination])
            if copied is not None:
                destination_success.add_metric([name, destination], copied.timestamp())
    return [success, size, raw, duration, verify, attempt, count, recovery, drill, destination_success]


def monitor_families(states: Iterable[tuple[str, TargetState]]) -> list[Metric]:
    """``probe_success``-style gauges (blackbox_exporter's names, prefixed) per target."""
    success = GaugeMetricFamily("railguard_monitor_probe_success", "1 when the last check passed.",
                                labels=["target"])
    duration = GaugeMetricFamily("railguard_monitor_probe_duration_seconds", "Response time of the last check.",
                                 labels=["target"])
    up = GaugeMetricFamily("railguard_monitor_target_up",
                           "1 when the target is UP, 0 when DOWN (after the failure threshold).", labels=["target"])
    last = GaugeMetricFamily("railguard_monitor_last_check_timestamp_seconds", "When the target was last checked.",
                             labels=["target"])
    for name, state in states:
        if state.last_ok is not None:
            success.add_metric([name], 1 if state.last_ok else 0)
        if state.last_response_time is not None:
            duration.add_metric([name], state.last_response_time)
        if state.status in (UP, DOWN):
            up.add_metric([name], 1 if state.status == UP else 0)
        if state.last_check_at is not None:
            last.add_metric([name], state.last_check_at.timestamp())
    return [success, duration, up, last]


def state_families(settings: Settings) -> list[Metric]:
    """Counters of notifications and heartbeat pings that failed (each never fails its job)."""
    from railguard.notify.heartbeat import STATE_FILE, read_ping_state
    from railguard.notify.sent import SentLog

    notifications = CounterMetricFamily("railguard_notifications", "Notifications by outcome.", labels=["outcome"])
    counts = SentLog(settings.state_dir).read().counts
    for outcome in ("sent", "failed", "duplicate"):
        notifications.add_metric([outcome], counts.get(outcome, 0))
    pings = CounterMetricFamily("railguard_heartbeat_pings", "Heartbeat pings sent.", labels=["app", "job"])
    failures = CounterMetricFamily("railguard_heartbeat_ping_failures", "Heartbeat pings that failed.",
                                   labels=["app", "job"])
    for key, entry in sorted(read_ping_state(settings.state_dir / STATE_FILE).items()):
        app, _, job = key.partition("/")
        pings.add_metric([app, job], entry.get("pings", 0))
        failures.add_metric([app, job], entry.get("failures", 0))
    return [notifications, pings, failures]


def stored_monitor_states(settings: Settings) -> list[tuple[str, TargetState]]:
    from railguard.monitor.store import FILE_NAME, MonitorStore

    path = settings.state_dir / FILE_NAME
    if not path.exists():
        return []
    store = MonitorStore(path)
    try:
        return [(name, state) for name, (_, state) in sorted(store.states().items())]
    finally:
        store.close()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class RailguardCollector(Collector):
    """Everything, read fresh at each scrape: for a ``/metrics`` endpoint. ``clock``: the
    scrape's "now", for the recovery point's age."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from backup_families(self.settings, self.clock())
        yield from state_families(self.settings)
        yield from monitor_families(stored_monitor_states(self.settings))
