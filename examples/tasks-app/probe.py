"""A strict HTTP probe for Docker ``HEALTHCHECK`` lines.

    python3 -m railguard.probe http://127.0.0.1:3000/health
    railguard probe http://127.0.0.1:3000/health --timeout 5 --expect-status 200

Exit 0 only when the response status is exactly the expected one (default 200); exit 1 for
everything else: another status, a redirect (never followed), a refused connection, a name
that does not resolve, a server slower than the timeout, a body larger than 64 KiB, a bad
URL or bad arguments. Never 2: Docker reserves it (argparse would use it for usage errors).
Prints one line, well under the 4096 bytes Docker keeps of a check's output.

Docker runs this every interval for the life of the container, so it imports only the
standard library (``railguard/__init__.py`` imports nothing) and this file also works when
copied alone into an image: ``python3 probe.py URL``. The default timeout (5 s) is shorter
than Docker's default ``--timeout`` (30 s), so the probe reports its own reason instead of
being killed silently.
"""

from __future__ import annotations

import sys
import time

try:
    # The C module under ``socket``. Importing ``socket`` itself builds its IntEnum classes and
    # imports enum, selectors and collections: about a third of the probe's start-up.
    import _socket as net
except ImportError:  # another Python implementation
    import socket as net  # type: ignore[no-redef]  # the same names, one module up

DEFAULT_TIMEOUT = 5.0
DEFAULT_STATUS = 200
#: A health endpoint answers a few bytes; a larger body means something else answered.
MAX_BODY = 64 * 1024
#: Status line plus headers; more is not a health endpoint either.
MAX_HEAD = 16 * 1024
#: Docker keeps 4096 bytes of output; one line never comes near it.
MAX_LINE = 512
HEALTHY, UNHEALTHY = 0, 1

USAGE = "usage: probe URL [--timeout SECONDS] [--expect-status CODE]"
HELP = f"""{USAGE}

Exit 0 only when GET URL answers exactly the expected status (default {DEFAULT_STATUS}),
without following redirects; exit 1 for anything else (other status, redirect, refused,
DNS failure, timeout, body over {MAX_BODY // 1024} KiB, bad URL, bad arguments). Never 2.

  URL                   http:// or https:// URL, e.g. http://127.0.0.1:3000/health
  --timeout SECONDS     whole-request deadline (default {DEFAULT_TIMEOUT:g}; keep it below the
                        HEALTHCHECK --timeout, 30 s by default)
  --expect-status CODE  the one status that counts as healthy (default {DEFAULT_STATUS})
  -h, --help            show this help and exit 0 (no check is made)
"""


class ProbeFailed(Exception):
    """The one-line reason the target is not healthy (or the probe was misused)."""


def parse_args(argv: list[str]) -> tuple[str, float, int]:
    """A tiny parser of our own: argparse exits 2 on a usage error and costs start-up time."""
    url: str | None = None
    timeout, status = DEFAULT_TIMEOUT, DEFAULT_STATUS
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, has_value, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("--timeout", "--expect-status"):
            if not has_value:
                if not args:
                    raise ProbeFailed(f"{name} needs a value; {USAGE}")
                inline = args.pop(0)
            try:
                if name == "--timeout":
                    timeout = float(inline)
                    if not 0 < timeout <= 3600:
                        raise ValueError
                else:
                    status = int(inline)
                    if not 100 <= status <= 599:
                        raise ValueError
            except ValueError:
                what = "seconds between 0 and 3600" if name == "--timeout" else "an HTTP status (100-599)"
                raise ProbeFailed(f"{name} must be {what}, got {inline!r}") from None
        elif arg.startswith("-") and arg != "-":
            raise ProbeFailed(f"unknown option {arg}; {USAGE}")
        elif url is None:
            url = arg
        else:
            raise ProbeFailed(f"unexpected argument {arg!r}; {USAGE}")
    if url is None:
        raise ProbeFailed(f"missing URL; {USAGE}")
    return url, timeout, status


def split_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, target)``. By hand rather than urllib.parse, whose imports (re,
    and the rest) cost more start-up time than the whole request."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ProbeFailed(f"bad URL {url!r}: expected http://HOST[:PORT]/PATH")
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, target = rest[:cut], rest[cut:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    if "@" in authority or any(c in url for c in " \t\r\n"):
        raise ProbeFailed(f"bad URL {url!r}: no credentials or spaces in a probe URL")
    if authority.startswith("["):
        host, bracket, port_text = authority[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ProbeFailed(f"bad URL {url!r}: unclosed IPv6 address")
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
    if not host:
        raise ProbeFailed(f"bad URL {url!r}: no host")
    default_port = 443 if scheme == "https" else 80
    if not port_text:
        return scheme, host, default_port, target
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ProbeFailed(f"bad URL {url!r}: the port is not a number from 1 to 65535")
    return scheme, host, int(port_text), target


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def fetch(url: str, timeout: float) -> Response:
    """One GET with a deadline for the whole exchange; the response is never followed.

    Plain HTTP is spoken by hand: an HTTP/1.0 request (so the server answers without chunked
    encoding and closes the connection), the status line and headers read into a bounded
    buffer. http.client would do the same job but imports the email package and ssl: with it a
    run measured 8x curl's time (bench/probe.py, docs/probe.md), and Docker pays that start-up
    every interval, all day. HTTPS, rare for a check inside the container, goes through
    http.client.
    """
    scheme, host, port, target = split_url(url)
    deadline = time.monotonic() + timeout
    if scheme == "https":
        return _fetch_https(host, port, target, timeout)
    connection = _connect(host, port, deadline, url, timeout)
    host_header = f"[{host}]" if ":" in host else host
    request = (f"GET {target} HTTP/1.0\r\nHost: {host_header}:{port}\r\nUser-Agent: railguard-probe\r\n"
               f"Accept: */*\r\nConnection: close\r\n\r\n")
    try:
        try:
            connection.sendall(request.encode("ascii", "strict"))
            data = b""
            while b"\r\n\r\n" not in data and b"\n\n" not in data:
                chunk = _receive(connection, deadline, url, timeout)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_HEAD + MAX_BODY:
                    break
            head, body = _split_head(data, url)
            status, headers = _parse_head(head, url)
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_BODY:
                raise ProbeFailed(f"body of {length} bytes is larger than {MAX_BODY} bytes: "
                                  f"a health endpoint answers a few bytes: {url}")
            while len(body) <= MAX_BODY:
                if length.isdigit() and len(body) >= int(length):
                    break
                chunk = _receive(connection, deadline, url, timeout)
                if not chunk:
                    break
                body += chunk
            if len(body) > MAX_BODY:
                raise ProbeFailed(f"body larger than {MAX_BODY} bytes: a health endpoint answers a few bytes: {url}")
        finally:
            connection.close()
    except UnicodeEncodeError:
        raise ProbeFailed(f"bad URL {url!r}: only ASCII in the path (percent-encode the rest)") from None
    except OSError as exc:  # reset, unreachable, ...
        raise ProbeFailed(f"connection lost: {url}: {exc.strerror or exc}") from None
    return Response(status, headers, body)


def _connect(host: str, port: int, deadline: float, url: str, timeout: float) -> net.socket:
    addresses = _resolve(host, port, deadline, timeout)
    error: OSError | None = None
    for family, kind, protocol, _, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        connection = net.socket(family, kind, protocol)
        connection.settimeout(remaining)
        try:
            connection.connect(address)
            return connection
        except OSError as exc:
            connection.close()
            error = exc
    if isinstance(error, ConnectionRefusedError):
        raise ProbeFailed(f"connection refused: {url}")
    if error is None or isinstance(error, TimeoutError):
        raise ProbeFailed(f"timed out after {timeout:g}s connecting: {url}")
    raise ProbeFailed(f"cannot connect: {url}: {error.strerror or error}")


# What getaddrinfo answers (family, type, protocol, canonical name, address), written out
# rather than imported: the probe imports nothing it can do without, typing included.
def _resolve(host: str, port: int, deadline: float, timeout: float) -> list[
        tuple[int, int, int, str, tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]]]:
    # An ASCII name as bytes skips the idna codec (and its imports) that a str would load.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        net.inet_pton(net.AF_INET6 if ":" in host else net.AF_INET, host)
    except OSError:
        pass
    else:  # an address: nothing to look up, nothing that can hang
        return net.getaddrinfo(name, port, 0, net.SOCK_STREAM)
    # getaddrinfo has no timeout of its own (a dead resolver can hold it for 10 s and more), so
    # the lookup runs on a thread the deadline can walk away from.
    import threading

    outcome: list[list[tuple[int, int, int, str, tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]]]
                  | OSError] = []

    def lookup() -> None:
        try:
            outcome.append(net.getaddrinfo(name, port, 0, net.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0))
    if not outcome:
        raise ProbeFailed(f"timed out after {timeout:g}s resolving {host}")
    answer = outcome[0]
    if isinstance(answer, OSError):
        raise ProbeFailed(f"cannot resolve {host}: {getattr(answer, 'strerror', None) or answer}")
    return answer


def _receive(connection: net.socket, deadline: float, url: str, timeout: float) -> bytes:
    # The timeout is what is left of the deadline, per read: a server trickling a byte at a
    # time must not reset the clock.
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ProbeFailed(f"timed out after {timeout:g}s: {url}")
    connection.settimeout(remaining)
    try:
        return connection.recv(16384)
    except TimeoutError:
        raise ProbeFailed(f"timed out after {timeout:g}s: {url}") from None


def _split_head(data: bytes, url: str) -> tuple[bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(separator)
        if found and len(head) <= MAX_HEAD:
            return head, body
    if len(data) > MAX_HEAD:
        raise ProbeFailed(f"response headers larger than {MAX_HEAD} bytes: {url}")
    if not data:
        raise ProbeFailed(f"empty reply (connection closed without a response): {url}")
    raise ProbeFailed(f"not an HTTP response (incomplete headers): {url}")


def _parse_head(head: bytes, url: str) -> tuple[int, dict[str, str]]:
    lines = head.decode("iso-8859-1").replace("\r\n", "\n").split("\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not code.isdigit() or rest[3:4] not in ("", " "):
        raise ProbeFailed(f"not an HTTP response: {url}: {_printable(lines[0])}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(code), headers


def _fetch_https(host: str, port: int, target: str, timeout: float) -> Response:
    import http.client  # imports ssl: paid only by https URLs

    url = f"https://{host}:{port}{target}"
    connection = http.client.HTTPSConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", target, headers={"User-Agent": "railguard-probe", "Connection": "close"})
        response = connection.getresponse()
        length = response.getheader("Content-Length") or ""
        if length.isdigit() and int(length) > MAX_BODY:
            raise ProbeFailed(f"body of {length} bytes is larger than {MAX_BODY} bytes: {url}")
        body = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ProbeFailed(f"body larger than {MAX_BODY} bytes: {url}")
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    except net.gaierror as exc:
        raise ProbeFailed(f"cannot resolve {host}: {exc.strerror or exc}") from None
    except ConnectionRefusedError:
        raise ProbeFailed(f"connection refused: {url}") from None
    except TimeoutError:
        raise ProbeFailed(f"timed out after {timeout:g}s: {url}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeFailed(f"request failed: {url}: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()


def probe(url: str, *, timeout: float = DEFAULT_TIMEOUT, expect_status: int = DEFAULT_STATUS) -> str:
    """GET ``url`` once; return the success line or raise ProbeFailed with the reason."""
    started = time.monotonic()
    response = fetch(url, timeout)
    elapsed_ms = (time.monotonic() - started) * 1000
    if response.status != expect_status:
        detail = ""
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location:
            detail = f" redirect to {_printable(location)} (not followed)"
        elif response.body:
            detail = " " + _first_line(response.body)
        raise ProbeFailed(f"status {response.status} (expected {expect_status}): {url}{detail}")
    return f"ok {response.status} {url} {elapsed_ms:.0f}ms"


def _first_line(body: bytes) -> str:
    lines = body.decode("utf-8", "replace").strip().splitlines()
    return _printable(lines[0][:200]) if lines else ""


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _clip(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """Run the probe; print one line; return 0 (healthy) or 1 (anything else)."""
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        sys.stdout.write(HELP)
        return HEALTHY
    try:
        url, timeout, status = parse_args(args)
        line = probe(url, timeout=timeout, expect_status=status)
    except ProbeFailed as exc:
        print(_clip(f"unhealthy: {exc}"), flush=True)
        return UNHEALTHY
    except KeyboardInterrupt:
        print("unhealthy: interrupted", flush=True)
        return UNHEALTHY
    except Exception as exc:  # noqa: BLE001 - a probe must answer 0 or 1, never a traceback and exit 1 by luck
        print(_clip(f"unhealthy: probe error: {type(exc).__name__}: {exc}"), flush=True)
        return UNHEALTHY
    print(_clip(line), flush=True)
    return HEALTHY


if __name__ == "__main__":
    sys.exit(main())
