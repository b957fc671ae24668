"""Rendering families as exposition text, atomically into a textfile, or for a /metrics handler."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from railguard.config import Settings
from railguard.durable import write_bytes_atomic

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


def write_textfile(directory: Path, name: str, families: Iterable[Metric]) -> Path:
    """``directory/name`` (a ``*.prom`` file) replaced atomically: node_exporter never reads half."""
    if not name.endswith(".prom"):
        raise ValueError(f"a textfile collector only reads *.prom files, not {name!r}")
    final = directory / name
    # 0644: node_exporter usually runs as another user.
    write_bytes_atomic(final, render(families), mode=0o644)
    return final


def railguard_registry(settings: Settings, clock: Callable[[], datetime] | None = None) -> CollectorRegistry:
    """A registry of railguard's own metrics, collected from disk at each scrape; ``clock``
    gives the scrape's "now" (the wall clock's by default)."""
    from railguard.metrics.collect import RailguardCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RailguardCollector(settings, clock) if clock else RailguardCollector(settings))
    return registry


def metrics_endpoint(settings: Settings, clock: Callable[[], datetime] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain handler for ``GET /metrics`` wherever railguard serves HTTP: (status, headers, body)."""
    return 200, {"Content-Type": CONTENT_TYPE}, generate_latest(railguard_registry(settings, clock))


def serve_metrics(settings: Settings, host: str, port: int, clock: Callable[[], datetime] | None = None) -> WSGIServer:
    """``http://HOST:PORT/metrics`` in a thread (``railguard monitor --metrics-listen``); the
    caller shuts the server down."""
    server, _thread = start_http_server(port, addr=host, registry=railguard_registry(settings, clock))
    return server
