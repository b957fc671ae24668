"""Bad input and faults: each fails with one line naming the destination and what to do, and a
failing destination never counts a copy as good."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from destinations.servers import MOTO_SECRET, SFTP_PASSWORD, free_port, obscure
from railguard.config import DestinationSettings
from railguard.destinations import Destination, DestinationError
from railguard.destinations.base import is_transient_os_error, retrying
from railguard.errors import ConfigError

pytestmark = pytest.mark.timeout(120)


def s3_settings(endpoint: str, bucket: str = "railguard-faults", **extra) -> DestinationSettings:  # type: ignore[no-untyped-def]
    return DestinationSettings(url=f"s3://{bucket}/tasks", endpoint_url=endpoint, region="us-east-1",
                               addressing_style="path", attempts=1, **extra)


def test_s3_connection_refused_names_the_destination_and_the_reason(aws_env):
    destination = Destination("offsite", s3_settings(f"http://127.0.0.1:{free_port()}"))

    with pytest.raises(DestinationError) as caught:
        destination.list_backups()

    assert "destination offsite" in caught.value.message
    assert "connection refused" in caught.value.message
    assert caught.value.hint == "Check endpoint_url and that the store is up"


def test_s3_endpoint_that_never_answers_times_out(aws_env):
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        destination = Destination("offsite", s3_settings(f"http://127.0.0.1:{port}", timeout="1s"))

        with pytest.raises(DestinationError, match="timed out"):
            destination.list_backups()


def test_s3_wrong_credentials_are_reported_as_rejected(moto_endpoint, bucket, monkeypatch):
    import moto.settings

    # moto checks signatures once its "no auth" allowance is used up; no IAM key exists, so
    # every key is unknown, as a wrong key is to AWS.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    destination = Destination("offsite", s3_settings(moto_endpoint, bucket))

    with pytest.raises(DestinationError, match="rejected the credentials") as caught:
        destination.list_backups()

    assert "AWS_ACCESS_KEY_ID" in (caught.value.hint or "")


def test_s3_missing_bucket_says_which_bucket(moto_endpoint, aws_env):
    destination = Destination("offsite", s3_settings(moto_endpoint, "railguard-no-such-bucket"))

    with pytest.raises(DestinationError, match="bucket railguard-no-such-bucket does not exist"):
        destination.list_backups()


def test_s3_without_any_credentials_says_how_to_provide_them(moto_endpoint, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # No instance metadata service here; keep botocore from waiting for one.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    destination = Destination("offsite", s3_settings(moto_endpoint))

    with pytest.raises(DestinationError, match="no AWS credentials found"):
        destination.list_backups()


def test_credentials_in_an_s3_url_are_refused_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        Destination("offsite", DestinationSettings(url=f"s3://AKIAEXAMPLE:{MOTO_SECRET}@bucket/tasks"))

    assert MOTO_SECRET not in caught.value.message
    assert "credentials do not belong in the URL" in caught.value.message


def test_without_the_rclone_binary_the_destination_says_how_to_install_it(without_rclone):
    with pytest.raises(DestinationError, match="rclone is not installed") as caught:
        Destination("nas", DestinationSettings(url="rclone:nas:tasks"), env=without_rclone)

    assert caught.value.hint == "Install it: apt-get install rclone"


def test_rclone_connection_refused(rclone_env, monkeypatch):
    monkeypatch.setenv("RCLONE_CONFIG_NAS_PORT", str(free_port()))
    destination = Destination("nas", DestinationSettings(url="rclone:nas:tasks", attempts=1, timeout="5s"))

    with pytest.raises(DestinationError, match="connection refused"):
        destination.list_backups()


def test_rclone_wrong_password_is_reported_as_rejected(rclone_env, monkeypatch):
    monkeypatch.setenv("RCLONE_CONFIG_NAS_PASS", obscure("not-the-password"))
    destination = Destination("nas", DestinationSettings(url="rclone:nas:tasks", attempts=1, timeout="5s"))

    with pytest.raises(DestinationError, match="rejected the credentials"):
        destination.list_backups()


def test_rclone_unknown_remote_says_how_to_configure_it(rclone_env):
    destination = Destination("nas", DestinationSettings(url="rclone:nowhere:tasks", attempts=1))

    with pytest.raises(DestinationError, match="rclone has no remote by that name"):
        destination.list_backups()


def test_a_file_destination_that_is_not_mounted_is_not_created_on_the_local_disk(tmp_path, backups):
    taken = backups.take()
    mount_point = tmp_path / "mnt" / "nas"
    destination = Destination("nas", DestinationSettings(url=f"file://{mount_point}/tasks"))

    with pytest.raises(DestinationError, match="is the disk mounted"):
        destination.put_backup(taken.path, taken.manifest)

    assert not mount_point.exists()


# --- file://: what the listing saw is swapped, or fails, before it is read ------------------


def _listed_then(tmp_path, backups, swap):  # type: ignore[no-untyped-def]
    """A copy at a file:// destination, listed (its size checked), then its data file swapped
    by ``swap`` before it is read: what another user of a shared directory, or a failing disk
    under a copy that listed fine, does."""
    taken = backups.take()
    nas = tmp_path / "nas"
    nas.mkdir()
    destination = Destination("nas", DestinationSettings(url=f"file://{nas}", attempts=1))
    destination.put_backup(taken.path, taken.manifest)
    backup = destination.stat_backup("latest", "tasks")
    assert backup.is_good and backup.data_key is not None
    stored = nas / backup.data_key
    swap(stored)
    return destination, backup, stored


def _verify(destination, backup):  # type: ignore[no-untyped-def]
    """``backups verify --dest``: fetch, hash, integrity_check; a verdict on the copy marks it."""
    from datetime import datetime, timezone

    from railguard.destinations import verify_remote

    return verify_remote(destination, backup, now=datetime(2026, 11, 22, 3, 30, tzinfo=timezone.utc))


def test_a_copy_swapped_for_a_symlink_after_listing_is_not_followed(tmp_path, backups):
    """Followed, the link reads whatever it names as the copy: here /proc/self/mem, whose
    first read fails with EIO (a traceback before this was a destination error)."""

    def symlink(stored):  # type: ignore[no-untyped-def]
        stored.unlink()
        stored.symlink_to("/proc/self/mem")

    destination, backup, stored = _listed_then(tmp_path, backups, symlink)

    with pytest.raises(DestinationError) as caught:
        _verify(destination, backup)

    assert caught.value.message == f"destination nas: {stored} is not a regular file (a symbolic link)"
    assert caught.value.hint == f"Something replaced the stored copy; inspect {stored.parent}"
    assert not list(stored.parent.glob("*.damaged.json"))  # the store failed; the copy was not judged


def _fifo(stored: Path) -> None:
    stored.unlink()
    os.mkfifo(stored)


def _directory(stored: Path) -> None:
    stored.unlink()
    stored.mkdir()


@pytest.mark.timeout(30)  # a FIFO opened to read waits for a writer: without the fix, for ever
@pytest.mark.parametrize(("swap", "kind"), [(_fifo, "a FIFO"), (_directory, "a directory")], ids=["fifo", "directory"])
def test_a_copy_swapped_for_something_else_after_listing_is_refused_at_once(tmp_path, backups, swap, kind):
    destination, backup, stored = _listed_then(tmp_path, backups, swap)

    with pytest.raises(DestinationError) as caught:
        _verify(destination, backup)

    assert caught.value.message == f"destination nas: {stored} is not a regular file ({kind})"
    assert not list(stored.parent.glob("*.damaged.json"))


def test_an_io_error_in_the_middle_of_reading_a_copy_is_the_destinations_error(tmp_path, backups):
    """A disk that fails under a copy that listed fine: /proc/PID/mem bound over the data file
    is a regular file whose read fails with EIO, as a dying disk's or a soft NFS mount's does."""
    mounted: list[Path] = []

    def failing_disk(stored):  # type: ignore[no-untyped-def]
        bound = subprocess.run(["mount", "--bind", f"/proc/{os.getpid()}/mem", str(stored)], capture_output=True,
                               text=True, check=False)
        if bound.returncode != 0:
            pytest.skip(f"cannot bind-mount here (needs root): {bound.stderr.strip()}")
        mounted.append(stored)

    try:
        destination, backup, stored = _listed_then(tmp_path, backups, failing_disk)
        with pytest.raises(DestinationError) as caught:
            _verify(destination, backup)
    finally:
        for path in mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)

    assert caught.value.message == f"destination nas: cannot read {stored}: Input/output error"
    assert caught.value.hint == f"Check the disk or share mounted at {stored.parent}"
    assert not list(stored.parent.glob("*.damaged.json"))


def test_a_relative_file_url_is_refused():
    with pytest.raises(ConfigError, match="not an absolute file URL") as caught:
        Destination("nas", DestinationSettings(url="file://mnt/nas"))

    assert caught.value.hint == "Write it with three slashes: file:///mnt/nas/tasks"


def test_an_unknown_scheme_is_refused_by_the_configuration():
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="expected file:///path"):
        DestinationSettings(url="ftp://example/tasks")


def test_an_invalid_age_recipient_is_refused_before_anything_is_uploaded(tmp_path, backups):
    taken = backups.take()
    (tmp_path / "nas").mkdir()
    destination = Destination("nas", DestinationSettings(url=f"file://{tmp_path}/nas", age_recipients=["age1nope"]))

    with pytest.raises(ConfigError, match="not a valid age public key"):
        destination.put_backup(taken.path, taken.manifest)

    assert list((tmp_path / "nas").iterdir()) == []


def test_transient_errors_are_retried_with_backoff_and_permanent_ones_are_not():
    import errno

    delays: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise OSError(errno.ETIMEDOUT, "timed out")
        return "done"

    assert retrying(flaky, attempts=3, transient=is_transient_os_error, sleep=delays.append) == "done"
    assert delays == [0.5, 1.0]

    def full() -> None:
        calls["n"] += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    calls["n"] = 0
    with pytest.raises(OSError):
        retrying(full, attempts=3, transient=is_transient_os_error, sleep=delays.append)
    assert calls["n"] == 1


def test_a_secret_in_an_rclone_connection_string_is_redacted_in_errors(rclone_env):
    url = f"rclone::sftp,host=127.0.0.1,port={free_port()},user=railguard,pass={SFTP_PASSWORD}:tasks"
    destination = Destination("nas", DestinationSettings(url=url, attempts=1, timeout="3s"))

    with pytest.raises(DestinationError) as caught:
        destination.list_backups()

    assert SFTP_PASSWORD not in caught.value.message
    assert SFTP_PASSWORD not in repr(destination) and "pass=***" in destination.url


def test_an_rclone_remote_folder_that_does_not_exist_yet_is_empty_then_created_by_the_first_copy(
        rclone_env, sftp_server, backups):
    taken = backups.take()
    destination = Destination("nas", DestinationSettings(url="rclone:nas:brand-new/folder/tasks", attempts=1))

    assert destination.list_backups() == []
    destination.put_backup(taken.path, taken.manifest)

    assert sorted(p.name for p in (sftp_server.root / "brand-new" / "folder" / "tasks").iterdir()) == [
        f"{taken.manifest.name}.manifest.json", taken.path.name]


def test_rclone_remote_that_never_answers_times_out(rclone_env, monkeypatch):
    with socket.socket() as silent:  # accepts the TCP connection, never says a word of SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("RCLONE_CONFIG_NAS_PORT", str(silent.getsockname()[1]))
        destination = Destination("nas", DestinationSettings(url="rclone:nas:tasks", attempts=1, timeout="2s"))

        with pytest.raises(DestinationError, match="timed out"):
            destination.list_backups()
