"""The gate's docs cannot drift: every setting, endpoint, run status and command is in them."""

from __future__ import annotations

import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "gate.md").read_text()


def test_every_gate_setting_is_in_the_configuration_reference() -> None:
    from railguard.config import GateAppSettings, GateSettings

    reference = (ROOT / "docs" / "configuration.md").read_text()
    section = reference[reference.index("## `[gate]` and `[gate.apps.NAME]`"):]
    section = section[:section.index("\n## ", 1)]
    for key in [*GateSettings.model_fields, *GateAppSettings.model_fields]:
        if key != "apps":
            assert f"| `{key}` |" in section, key


def test_every_endpoint_and_run_status_is_in_the_guide() -> None:
    from railguard.gate.queue import Status
    from railguard.gate.service import GateService

    routes = [route.path for route in _app_routes(GateService)]
    assert routes == ["/hooks/forgejo", "/api/v1/check", "/runs", "/runs/{run_id}", "/healthz", "/metrics"]
    for path in ["POST /hooks/forgejo", "POST /api/v1/check", "GET /runs", "GET /runs/{id}", "GET /healthz",
                 "GET /metrics"]:
        assert f"`{path}`" in GUIDE, path
    for status in typing.get_args(Status):
        assert f"`{status}`" in GUIDE, status


def test_the_guide_shows_each_command_and_the_readme_links_it(run_cli) -> None:
    for command in ("railguard gate serve", "railguard gate list", "railguard --app tasks hook install"):
        assert command in GUIDE, command
    assert "[docs/gate.md](docs/gate.md)" in (ROOT / "README.md").read_text()
    assert "bench/gate.py" in GUIDE and "BENCHMARK_RESULTS" not in GUIDE


def test_the_guide_s_example_configuration_is_valid(tmp_path: Path) -> None:
    from railguard.config import load_settings
    from railguard.gate.service import GateService

    example = GUIDE.split("```toml\n", 1)[1].split("```", 1)[0].replace("/var/lib/railguard", str(tmp_path))
    path = tmp_path / "railguard.toml"
    path.write_text(example)
    service = GateService(load_settings(path), env={"RAILGUARD_GATE_SECRET": "an-example-secret"})
    assert service.targets["tasks"].test_command == ["bun", "test"]
    assert service.context.run_url(7) == "https://gate.example.com/runs/7"


def _app_routes(service_class):  # type: ignore[no-untyped-def]
    from railguard.gate.app import create_app

    class Stub:
        settings = type("S", (), {"gate": None})()
        started = True

    return create_app(Stub()).routes  # type: ignore[arg-type]
