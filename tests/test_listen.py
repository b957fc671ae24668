"""Listen addresses: one parser (railguard.values.Listen) for [daemon] listen, the gate's host and
port and the monitor's --metrics-listen; IPv6 in brackets, as a URL writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from railguard.config import load_settings
from railguard.errors import ConfigError, ExitCode
from railguard.values import Listen


@pytest.mark.parametrize(("text", "host", "port", "loopback", "written"), [
    ("127.0.0.1:9180", "127.0.0.1", 9180, True, "127.0.0.1:9180"),
    ("127.8.9.1:80", "127.8.9.1", 80, True, "127.8.9.1:80"),
    ("0.0.0.0:9180", "0.0.0.0", 9180, False, "0.0.0.0:9180"),
    ("localhost:0", "localhost", 0, True, "localhost:0"),
    ("LocalHost:1", "LocalHost", 1, True, "LocalHost:1"),
    ("backup.example:65535", "backup.example", 65535, False, "backup.example:65535"),
    ("[::1]:9180", "::1", 9180, True, "[::1]:9180"),
    ("[::]:9180", "::", 9180, False, "[::]:9180"),
    ("[fe80::1%eth0]:9180", "fe80::1%eth0", 9180, False, "[fe80::1%eth0]:9180"),
    ("[::ffff:127.0.0.1]:9180", "::ffff:127.0.0.1", 9180, False, "[::ffff:127.0.0.1]:9180"),
])
def test_a_listen_address_parses_into_host_port_and_whether_only_this_machine_reaches_it(
        text: str, host: str, port: int, loopback: bool, written: str) -> None:
    listen = Listen.parse(text, key="daemon.listen")
    assert (listen.host, listen.port, listen.is_loopback) == (host, port, loopback)
    # Written back the way it was read, and a URL has the brackets too.
    assert str(listen) == written and Listen.parse(str(listen), key="k") == listen
    assert listen.url == f"http://{written}"


@pytest.mark.parametrize(("text", "message"), [
    ("::1:9180", "an IPv6 address goes in brackets before the port, such as [::1]:9180, got '::1:9180'"),
    ("::1", "an IPv6 address goes in brackets before the port, such as [::1]:9180, got '::1'"),
    ("fe80::1%eth0:80", "an IPv6 address goes in brackets before the port, such as [::1]:9180, got "
                        "'fe80::1%eth0:80'"),
    ("[::1]", "expected [IPV6]:PORT, such as [::1]:9180, got '[::1]'"),
    ("[::1]9180", "expected [IPV6]:PORT, such as [::1]:9180, got '[::1]9180'"),
    ("[::1:9180", "expected [IPV6]:PORT, such as [::1]:9180, got '[::1:9180'"),
    ("[127.0.0.1]:9180", "'127.0.0.1' in brackets is not an IPv6 address, in '[127.0.0.1]:9180'"),
    ("[]:9180", "'' in brackets is not an IPv6 address, in '[]:9180'"),
    (":9180", "expected HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9180 or [::1]:9180, got ':9180' (no host; "
              "127.0.0.1 is this machine only, 0.0.0.0 every interface)"),
    ("127.0.0.1", "expected HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9180 or [::1]:9180, got '127.0.0.1' "
                  "(no port)"),
    ("127.0.0.1:", "expected HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9180 or [::1]:9180, got '127.0.0.1:' "
                   "(the port is not a number)"),
    ("127.0.0.1:http", "got '127.0.0.1:http' (the port is not a number)"),
    ("127.0.0.1:-1", "got '127.0.0.1:-1' (the port is not a number)"),
    ("127.0.0.1:65536", "the port must be from 0 to 65535, got '127.0.0.1:65536'"),
    ("[::1]:99999", "the port must be from 0 to 65535, got '[::1]:99999'"),
    ("my host:80", "the host has a space in it, got 'my host'"),
])
def test_a_bad_listen_address_is_a_configuration_error_naming_the_key_and_the_form(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Listen.parse(text, key="--listen")
    assert raised.value.message.startswith("--listen: ") and message in raised.value.message
    assert raised.value.exit_code == ExitCode.USAGE
    assert raised.value.hint == "Write it as HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9180 or [::1]:9180"


def test_a_listen_value_built_from_a_host_and_a_port_is_checked_as_well() -> None:
    assert Listen("::1", 8787).url == "http://[::1]:8787"
    for host, port in [("", 80), ("[::1]", 80), ("127.0.0.1", 70000)]:
        with pytest.raises(ValueError):
            Listen(host, port)


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "railguard.toml"
    path.write_text(f'[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n{body}', encoding="utf-8")
    return path


def test_a_bad_daemon_listen_fails_at_configuration_load_naming_the_key(tmp_path: Path, run_cli) -> None:
    config = _config(tmp_path, '[daemon]\nlisten = "::1:9180"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert raised.value.message == (f"{config}: daemon.listen: an IPv6 address goes in brackets before the port, "
                                    "such as [::1]:9180, got '::1:9180'")
    # Every command reads the configuration, so even `schedule` says so, before anything runs.
    result = run_cli("--config", config, "schedule")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == f"error: {raised.value.message}"


def test_daemon_listen_takes_ipv6_in_brackets_and_empty_for_off(tmp_path: Path) -> None:
    assert load_settings(_config(tmp_path, '[daemon]\nlisten = "[::1]:9180"\n')).daemon.listen == "[::1]:9180"
    assert load_settings(_config(tmp_path, '[daemon]\nlisten = ""\n')).daemon.listen == ""


@pytest.mark.parametrize(("host", "message"), [
    ("", "the host is empty"),
    ("[::1]", "write the address without brackets here, got '[::1]'"),
    ("127.0.0.1:8787", "'127.0.0.1:8787' is neither a name nor an IPv6 address (the port goes in a setting of "
                       "its own)"),
])
def test_a_bad_gate_host_fails_at_configuration_load_naming_the_key(tmp_path: Path, host: str, message: str) -> None:
    config = _config(tmp_path, f'[gate]\nhost = "{host}"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert raised.value.message.startswith(f"{config}: gate.host: ") and message in raised.value.message


def test_the_gate_on_ipv6_is_written_with_brackets_in_its_url(tmp_path: Path) -> None:
    gate = load_settings(_config(tmp_path, '[gate]\nhost = "::1"\nport = 8787\n')).gate
    assert gate.listen == Listen("::1", 8787) and gate.listen.is_loopback
    assert gate.listen.url == "http://[::1]:8787"


def test_a_bad_metrics_listen_flag_is_a_usage_error_naming_the_flag(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "railguard.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[apps.tasks]\ndatabase = "{tmp_path / "tasks.db"}"\n'
                      'url = "http://127.0.0.1:9"\n')
    result = run_cli("--config", config, "monitor", "--once", "--metrics-listen", "::1:9321")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == ("error: --metrics-listen: an IPv6 address goes in brackets before the "
                                             "port, such as [::1]:9180, got '::1:9321'")
    assert not (tmp_path / "state").exists(), "nothing runs before the flag is checked"
