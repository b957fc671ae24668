"""Real stores on 127.0.0.1 for the destination tests: an S3 server (moto in server mode, spoken
to over HTTP by boto3 exactly as MinIO would be) and an SFTP server (``rclone serve sftp``)
that the rclone backend reaches through Debian's rclone binary.

Each test gets its own bucket / remote folder, so the two servers are started once per session.
``Backend`` gives a contract test what it needs to look behind the destination's back: the raw
object names, and a way to damage a stored object.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from destinations.servers import (
    MOTO_KEY_ID, MOTO_SECRET, SFTP_PASSWORD, SFTP_USER, free_port, obscure, wait_for_port,
)
from railguard.config import DestinationSettings


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Credentials the standard way (environment), and no ~/.aws to fall back on."""
    values = {"AWS_ACCESS_KEY_ID": MOTO_KEY_ID, "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
              "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
              "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return values


@pytest.fixture
def s3_client(moto_endpoint: str, aws_env: dict[str, str]):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client) -> str:  # type: ignore[no-untyped-def]
    name = f"railguard-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@dataclass
class SftpServer:
    root: Path
    port: int


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    root = tmp_path_factory.mktemp("sftp-root")
    cache = tmp_path_factory.mktemp("rclone-cache")
    port = free_port()
    process = subprocess.Popen(
        ["rclone", "serve", "sftp", str(root), "--addr", f"127.0.0.1:{port}", "--user", SFTP_USER,
         "--pass", SFTP_PASSWORD, "--cache-dir", str(cache), "--dir-cache-time", "0s",
         "--config", str(cache / "rclone.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield SftpServer(root, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def obscured_password() -> str:
    return obscure(SFTP_PASSWORD)


@pytest.fixture
def rclone_env(monkeypatch: pytest.MonkeyPatch, sftp_server: SftpServer, obscured_password: str,
               tmp_path: Path) -> dict[str, str]:
    """Remote ``nas`` configured only through environment variables (no config file)."""
    values = {"RCLONE_CONFIG": str(tmp_path / "rclone.conf"), "RCLONE_CONFIG_NAS_TYPE": "sftp",
              "RCLONE_CONFIG_NAS_HOST": "127.0.0.1", "RCLONE_CONFIG_NAS_PORT": str(sftp_server.port),
              "RCLONE_CONFIG_NAS_USER": SFTP_USER, "RCLONE_CONFIG_NAS_PASS": obscured_password,
              # rclone serve sftp answers no shell commands; tell the client not to probe for them.
              "RCLONE_CONFIG_NAS_SHELL_TYPE": "none", "RCLONE_CONFIG_NAS_MD5SUM_COMMAND": "none",
              "RCLONE_CONFIG_NAS_SHA1SUM_COMMAND": "none"}
    (tmp_path / "rclone.conf").touch()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@dataclass
class Backend:
    """One kind of destination, with a view of its raw storage for the tests."""

    kind: str
    settings: DestinationSettings
    raw_keys: Callable[[], list[str]]
    corrupt: Callable[[str], None]
    write_raw: Callable[[str, bytes], None]


def _flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def file_backend(directory: Path) -> Backend:
    directory.mkdir(parents=True, exist_ok=True)

    def corrupt(key: str) -> None:
        path = directory / key
        path.write_bytes(_flip_byte(path.read_bytes()))

    return Backend("file", DestinationSettings(url=f"file://{directory}", attempts=1),
                   lambda: sorted(entry.name for entry in directory.iterdir()), corrupt,
                   lambda key, data: (directory / key).write_bytes(data))


@pytest.fixture(params=["file", "s3", "rclone"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same contract, once per backend."""
    if request.param == "file":
        return file_backend(tmp_path / "second-disk" / "tasks")
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        client = request.getfixturevalue("s3_client")
        name = request.getfixturevalue("bucket")
        prefix = "offsite/tasks"

        def keys() -> list[str]:
            listing = client.list_objects_v2(Bucket=name, Prefix=prefix + "/")
            return sorted(item["Key"].removeprefix(prefix + "/") for item in listing.get("Contents", []))

        def corrupt(key: str) -> None:
            data = client.get_object(Bucket=name, Key=f"{prefix}/{key}")["Body"].read()
            client.put_object(Bucket=name, Key=f"{prefix}/{key}", Body=_flip_byte(data))

        return Backend("s3", DestinationSettings(url=f"s3://{name}/{prefix}", endpoint_url=endpoint,
                                                 region="us-east-1", addressing_style="path", attempts=1),
                       keys, corrupt, lambda key, data: client.put_object(Bucket=name, Key=f"{prefix}/{key}",
                                                                          Body=data))
    server: SftpServer = request.getfixturevalue("sftp_server")
    request.getfixturevalue("rclone_env")
    folder = f"t-{uuid.uuid4().hex[:10]}"
    directory = server.root / folder / "tasks"
    directory.mkdir(parents=True)
    raw = file_backend(directory)
    return Backend("rclone", DestinationSettings(url=f"rclone:nas:{folder}/tasks", attempts=1, timeout="20s"),
                   raw.raw_keys, raw.corrupt, raw.write_raw)


@pytest.fixture
def without_rclone(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds no rclone (a host where it was never installed)."""
    empty = tmp_path / "bin-without-rclone"
    empty.mkdir()
    return {**os.environ, "PATH": str(empty)}


@dataclass
class LocalBackups:
    database: Path
    directory: Path

    def create_database(self, rows: int = 200) -> Path:
        """Add ``rows`` tasks (creating the database the first time)."""
        from conftest import create_tasks_database

        return create_tasks_database(self.database, rows)

    def take(self, when: str = "2026-11-20T03:30:00+00:00", rows: int = 200):  # type: ignore[no-untyped-def]
        from datetime import datetime

        from railguard.backup import take_backup
        from railguard.config import BackupSettings

        self.create_database(rows)
        return take_backup(self.database, BackupSettings(directory=self.directory),
                           now=datetime.fromisoformat(when))


@pytest.fixture
def backups(tmp_path: Path) -> LocalBackups:
    """Real verified backups of a real SQLite database, taken at chosen times."""
    data = tmp_path / "data"
    data.mkdir()
    return LocalBackups(data / "tasks.db", tmp_path / "backups")


@dataclass
class AgeKey:
    identity_file: Path
    recipient: str


@pytest.fixture
def age_key(tmp_path: Path) -> AgeKey:
    from railguard.destinations.encryption import generate_identity

    secret, public = generate_identity()
    path = tmp_path / "age-identity.txt"
    path.write_text(f"# created by the test\n# public key: {public}\n{secret}\n")
    path.chmod(0o600)
    return AgeKey(path, public)
