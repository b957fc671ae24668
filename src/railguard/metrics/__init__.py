"""railguard's own Prometheus metrics: a textfile for node_exporter and a /metrics renderer.

Names follow the Prometheus conventions (shared/reference/monitoring.md): base units as
suffixes (``_seconds``, ``_bytes``), event times as ``*_timestamp_seconds`` (alert on
``time() - x > period + grace``), counters ending in ``_total``, no sample timestamps.
"""

from railguard.metrics.collect import RailguardCollector, backup_families, monitor_families, state_families
from railguard.metrics.exposition import CONTENT_TYPE, metrics_endpoint, render, write_textfile
from railguard.metrics.textfile import TEXTFILE_NAME, refresh_textfile

__all__ = ["CONTENT_TYPE", "TEXTFILE_NAME", "RailguardCollector", "backup_families", "metrics_endpoint",
           "monitor_families", "refresh_textfile", "render", "state_families", "write_textfile"]
