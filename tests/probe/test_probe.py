"""railguard.probe: exit 0 only for exactly the expected status, 1 for everything else."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from railguard import probe

from .conftest import Handler

ROOT = Path(__file__).resolve().parents[2]
PROBE_FILE = ROOT / "src" / "railguard" / "probe.py"


def run_probe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = probe.main(list(args))
    out = capsys.readouterr().out
    return code, out


def assert_one_short_line(out: str) -> str:
    assert out.endswith("\n") and out.count("\n") == 1, out
    assert len(out.encode()) < 4096
    return out.strip()


def test_probe_is_healthy_when_the_status_is_exactly_200(http_server, capsys):
    code, out = run_probe(capsys, f"{http_server}/health")
    assert code == 0
    assert assert_one_short_line(out).startswith(f"ok 200 {http_server}/health ")


def test_probe_reports_a_503_with_the_first_line_of_the_body(http_server, capsys):
    code, out = run_probe(capsys, f"{http_server}/status/503")
    assert code == 1
    assert assert_one_short_line(out) == (f"unhealthy: status 503 (expected 200): {http_server}/status/503 "
                                          "migrations failed: migration 2 (x) failed")


@pytest.mark.parametrize("status", [201, 204, 299, 404, 500])
def test_any_status_other_than_the_expected_one_is_unhealthy(http_server, capsys, status):
    code, out = run_probe(capsys, f"{http_server}/status/{status}")
    assert code == 1
    assert f"status {status} (expected 200)" in assert_one_short_line(out)


def test_expect_status_makes_another_status_the_healthy_one(http_server, capsys):
    assert run_probe(capsys, f"{http_server}/status/204", "--expect-status", "204")[0] == 0
    assert run_probe(capsys, f"{http_server}/health", "--expect-status=204")[0] == 1


def test_a_redirect_is_not_followed(http_server, capsys):
    code, out = run_probe(capsys, f"{http_server}/redirect")
    assert code == 1
    assert assert_one_short_line(out) == (f"unhealthy: status 302 (expected 200): {http_server}/redirect "
                                          "redirect to /health (not followed)")


def test_a_refused_connection_is_unhealthy(closed_port, capsys):
    code, out = run_probe(capsys, f"http://127.0.0.1:{closed_port}/health")
    assert code == 1
    assert assert_one_short_line(out) == f"unhealthy: connection refused: http://127.0.0.1:{closed_port}/health"


def test_a_name_that_does_not_resolve_is_unhealthy(capsys):
    # .invalid is reserved (RFC 2606): it never resolves.
    code, out = run_probe(capsys, "http://railguard-probe-test.invalid/health")
    assert code == 1
    assert assert_one_short_line(out).startswith("unhealthy: cannot resolve railguard-probe-test.invalid: ")


def test_the_timeout_covers_a_name_lookup_that_hangs(capsys, monkeypatch):
    # A dead resolver cannot be set up per process; getaddrinfo blocking for 3 s stands in for it.
    real = probe.net.getaddrinfo

    def hanging(host, *args, **kwargs):
        if host == b"slow-resolver.invalid":
            time.sleep(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(probe.net, "getaddrinfo", hanging)
    code, out = run_probe(capsys, "http://slow-resolver.invalid/health", "--timeout", "0.5")
    assert code == 1
    assert assert_one_short_line(out) == "unhealthy: timed out after 0.5s resolving slow-resolver.invalid"


def test_a_server_slower_than_the_timeout_is_unhealthy(http_server, capsys):
    code, out = run_probe(capsys, f"{http_server}/slow", "--timeout", "0.5")
    assert code == 1
    assert assert_one_short_line(out) == f"unhealthy: timed out after 0.5s: {http_server}/slow"


def test_the_timeout_covers_the_whole_response_not_each_read(http_server, capsys):
    # The server sends a byte every 0.2 s for 20 s: every single read beats the timeout.
    code, out = run_probe(capsys, f"{http_server}/trickle", "--timeout", "1")
    assert code == 1
    assert assert_one_short_line(out) == f"unhealthy: timed out after 1s: {http_server}/trickle"


@pytest.mark.parametrize("path", ["/huge", "/huge-unannounced"])
def test_a_huge_body_is_unhealthy_and_not_read_to_the_end(http_server, capsys, path):
    code, out = run_probe(capsys, f"{http_server}{path}")
    assert code == 1
    line = assert_one_short_line(out)
    assert "larger than 65536 bytes" in line and path in line


@pytest.mark.parametrize(("reply", "reason"), [
    (None, "empty reply (connection closed without a response)"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP response (incomplete headers)"),
    (b"HELLO there\r\n\r\n", "not an HTTP response"),
])
def test_something_that_is_not_an_http_server_is_unhealthy(raw_server, capsys, reply, reason):
    url = raw_server(reply) + "/health"
    code, out = run_probe(capsys, url)
    assert code == 1
    assert assert_one_short_line(out).startswith(f"unhealthy: {reason}: {url}")


@pytest.mark.parametrize("url", [
    "127.0.0.1:3000/health",
    "ftp://127.0.0.1/health",
    "http://",
    "http://:3000/health",
    "http://127.0.0.1:99999/health",
    "http://127.0.0.1:port/health",
    "http://user:secret@127.0.0.1/health",
    "http://[::1/health",
])
def test_a_bad_url_is_unhealthy_with_a_clear_line(capsys, url):
    code, out = run_probe(capsys, url)
    assert code == 1
    assert assert_one_short_line(out).startswith(f"unhealthy: bad URL {url!r}: ")


@pytest.mark.parametrize(("args", "message"), [
    ([], "missing URL"),
    (["--timeout"], "--timeout needs a value"),
    (["http://127.0.0.1/", "--timeout", "soon"], "--timeout must be seconds between 0 and 3600, got 'soon'"),
    (["http://127.0.0.1/", "--timeout=0"], "--timeout must be seconds between 0 and 3600, got '0'"),
    (["http://127.0.0.1/", "--expect-status", "ok"], "--expect-status must be an HTTP status (100-599), got 'ok'"),
    (["--verbose", "http://127.0.0.1/"], "unknown option --verbose"),
    (["http://127.0.0.1/a", "http://127.0.0.1/b"], "unexpected argument 'http://127.0.0.1/b'"),
])
def test_a_usage_error_exits_1_never_2(capsys, args, message):
    code, out = run_probe(capsys, *args)
    assert code == 1
    assert assert_one_short_line(out).startswith(f"unhealthy: {message}")


def test_a_very_long_url_still_gives_one_line_under_4096_bytes(http_server, capsys):
    code, out = run_probe(capsys, f"{http_server}/status/503?" + "x" * 20000)
    assert code == 1
    assert assert_one_short_line(out).endswith("...")


def test_the_request_is_a_plain_get_of_the_path_and_query(http_server):
    response = probe.fetch(f"{http_server}/echo-request-line?full=1#fragment", 5)
    assert response.status == 200
    assert response.body == b"GET /echo-request-line?full=1 HTTP/1.0"


def test_help_exits_0_and_makes_no_request(capsys):
    code, out = run_probe(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: probe URL")


# Whole processes: what Docker actually runs.

def _env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "railguard.probe"],
    [sys.executable, "-I", "-S", str(PROBE_FILE)],
], ids=["python -m railguard.probe", "copied file"])
def test_the_process_exits_0_1_and_never_2(http_server, command):
    healthy = subprocess.run([*command, f"{http_server}/health"], capture_output=True, text=True, env=_env())
    assert (healthy.returncode, healthy.stderr) == (0, "")
    unhealthy = subprocess.run([*command, f"{http_server}/status/503"], capture_output=True, text=True, env=_env())
    assert unhealthy.returncode == 1 and unhealthy.stdout.startswith("unhealthy: status 503")
    misuse = subprocess.run([*command, "--no-such-option"], capture_output=True, text=True, env=_env())
    assert misuse.returncode == 1 and misuse.stderr == ""


def test_railguard_probe_is_the_same_probe(run_cli, http_server):
    assert run_cli("probe", f"{http_server}/health").exit_code == 0
    result = run_cli("probe", f"{http_server}/status/503")
    assert result.exit_code == 1
    assert result.stdout.startswith("unhealthy: status 503 (expected 200)")
    # click would exit 2 (or railguard 3) for an unknown option; the probe keeps its 0/1 rule.
    assert run_cli("probe", "--nope").exit_code == 1
    assert run_cli("probe", "--help").stdout.startswith("usage: probe URL")


def test_importing_the_probe_loads_only_the_standard_library():
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import railguard.probe\n"
        "loaded = set(sys.modules) - before\n"
        "print('\\n'.join(sorted(m for m in loaded if m.split('.')[0] not in sys.stdlib_module_names)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=_env())
    assert set(result.stdout.split()) == {"railguard", "railguard.probe"}



def test_https_with_an_untrusted_certificate_is_unhealthy(tmp_path, capsys):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate for the HTTPS test")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        code, out = run_probe(capsys, f"https://127.0.0.1:{server.server_address[1]}/health")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in assert_one_short_line(out)
