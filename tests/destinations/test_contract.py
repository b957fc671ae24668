"""One contract, run against every backend (file, S3 over HTTP, rclone over SFTP)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from railguard.backup.compression import sha256_of_file
from railguard.destinations import CopyVerifyFailed, Destination
from railguard.destinations.base import GOOD, DestinationError

pytestmark = pytest.mark.timeout(120)


def test_a_backup_put_there_is_listed_as_good_and_reads_back_byte_for_byte(backend, backups, tmp_path):
    taken = backups.take()
    destination = Destination("offsite", backend.settings)

    copy = destination.put_backup(taken.path, taken.manifest)

    assert copy.is_good
    assert backend.raw_keys() == [f"{taken.manifest.name}.manifest.json", taken.path.name]
    [listed] = destination.list_backups("tasks")
    assert (listed.name, listed.status, listed.size) == (taken.manifest.name, GOOD, taken.manifest.size_stored)
    assert listed.manifest == taken.manifest
    with destination.open_backup(listed) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == taken.manifest.sha256


def test_a_fetched_copy_is_a_local_backup_that_verifies_end_to_end(backend, backups, tmp_path):
    from railguard.backup import list_backups, verify_backup

    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    destination.put_backup(taken.path, taken.manifest)
    into = tmp_path / "fetched"
    into.mkdir()

    path = destination.fetch(destination.stat_backup("latest", "tasks"), into)

    assert sha256_of_file(path) == taken.manifest.sha256
    [record] = list_backups(into, "tasks")
    assert verify_backup(record, into).ok


def test_an_empty_destination_lists_no_backups(backend):
    assert Destination("offsite", backend.settings).list_backups() == []


def test_deleting_removes_both_objects_and_deleting_a_missing_backup_succeeds(backend, backups):
    first = backups.take("2026-11-20T03:30:00+00:00")
    second = backups.take("2026-11-21T03:30:00+00:00")
    destination = Destination("offsite", backend.settings)
    destination.put_backup(first.path, first.manifest)
    destination.put_backup(second.path, second.manifest)
    old = destination.stat_backup(first.manifest.name)

    assert destination.delete_backups([old]) == [first.manifest.name]
    assert destination.delete_backups([old]) == [first.manifest.name]  # already gone: no error

    assert backend.raw_keys() == [f"{second.manifest.name}.manifest.json", second.path.name]
    destination.store.remove("never-existed.sqlite3.zst")


def test_a_copy_damaged_at_rest_fails_verification(backend, backups):
    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    copy = destination.put_backup(taken.path, taken.manifest)

    backend.corrupt(taken.path.name)

    with pytest.raises(CopyVerifyFailed, match="does not match"):
        destination.check_copy(copy)


def test_a_store_that_damages_the_upload_never_gets_a_good_copy(backend, backups, monkeypatch):
    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    upload = destination.store.upload

    def damaging_upload(key: str, source) -> None:  # type: ignore[no-untyped-def]
        upload(key, source)
        if not key.endswith(".manifest.json"):
            backend.corrupt(key)

    monkeypatch.setattr(destination.store, "upload", damaging_upload)

    with pytest.raises(CopyVerifyFailed, match="sha256 read back differs"):
        destination.put_backup(taken.path, taken.manifest)

    assert backend.raw_keys() == []
    assert [backup for backup in destination.list_backups() if backup.is_good] == []


class _FailsMidway(io.RawIOBase):
    """A source that dies after ``limit`` bytes, like a disk error or a killed reader."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.sent >= self.limit:
            raise OSError(5, "Input/output error (simulated)")
        n = min(n if n > 0 else 1 << 20, self.limit - self.sent)
        self.sent += n
        return bytes(n)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def test_an_interrupted_upload_leaves_nothing_under_the_final_name(backend, s3_client_if_s3):
    destination = Destination("offsite", backend.settings)
    # 20 MiB: past the S3 part size, so the S3 backend is mid-way through a multipart upload.
    source = _FailsMidway(20 * 1024 * 1024)

    # The source's own error, or the backend's explanation of it (S3 wraps what boto3 raised).
    with pytest.raises((OSError, DestinationError)) as raised:
        destination.store.upload("tasks-20261120-0330.sqlite3.zst", source)
    assert "Input/output error (simulated)" in str(raised.value)

    assert source.sent > 0
    assert backend.raw_keys() == []  # not the final name, and no temporary left behind either
    if s3_client_if_s3 is not None:
        client, bucket = s3_client_if_s3
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.fixture
def s3_client_if_s3(backend, request):  # type: ignore[no-untyped-def]
    if backend.kind != "s3":
        return None
    return request.getfixturevalue("s3_client"), request.getfixturevalue("bucket")


def test_a_half_copy_is_listed_as_incomplete_and_replaced_by_the_next_put(backend, backups):
    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    backend.write_raw(taken.path.name, b"half of a backup")

    [listed] = destination.list_backups()
    assert (listed.is_good, listed.status) == (False, "incomplete: no manifest")

    destination.put_backup(taken.path, taken.manifest)
    [listed] = destination.list_backups()
    assert listed.is_good
    destination.check_copy(listed)


def test_an_encrypted_copy_is_unreadable_there_and_restores_with_the_identity(backend, backups, age_key, tmp_path):
    from railguard.backup import list_backups, verify_backup

    taken = backups.take()
    backend.settings.age_recipients = [age_key.recipient]
    destination = Destination("offsite", backend.settings)

    destination.put_backup(taken.path, taken.manifest)

    assert backend.raw_keys() == [f"{taken.manifest.name}.manifest.json", f"{taken.path.name}.age"]
    [listed] = destination.list_backups()
    assert listed.is_good and listed.encryption is not None
    with destination.open_backup(listed) as stream:
        stored = stream.read()
    assert stored.startswith(b"age-encryption.org/v1")
    assert hashlib.sha256(stored).hexdigest() == listed.encryption.sha256 != taken.manifest.sha256
    destination.check_copy(listed)  # provable without the identity
    into = tmp_path / "restored"
    into.mkdir()
    destination.fetch(listed, into, identity_file=age_key.identity_file)
    [record] = list_backups(into)
    assert verify_backup(record, into).ok


def test_a_manifest_naming_another_backup_is_not_a_good_copy(backend, backups):
    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    destination.put_backup(taken.path, taken.manifest)
    document = taken.manifest.to_json().replace(f'"name": "{taken.manifest.name}"'.encode(), b'"name": "../../evil"')

    backend.write_raw(f"{taken.manifest.name}.manifest.json", document)

    [listed] = destination.list_backups()
    assert (listed.is_good, listed.status) == (False, "manifest is for '../../evil'")


def _same_name_other_bytes(tmp_path, backups):  # type: ignore[no-untyped-def]
    """Two different backups with one name: this host's, and one an earlier backup directory
    (before a rebuild, or before names were unique) left at the destination."""
    from destinations.conftest import LocalBackups

    (tmp_path / "before").mkdir()
    earlier = LocalBackups(tmp_path / "before" / "tasks.db", tmp_path / "before-backups").take(rows=120)
    current = backups.take(rows=340)
    assert earlier.manifest.name == current.manifest.name and earlier.manifest.sha256 != current.manifest.sha256
    return earlier, current


def test_a_copy_marked_damaged_is_not_good_and_the_put_that_replaces_it_clears_the_mark(backend, backups):
    from datetime import datetime, timezone

    from railguard.destinations import RemoteBackupNotFound

    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    destination.put_backup(taken.path, taken.manifest)
    [listed] = destination.list_backups("tasks")

    destination.mark_damaged(listed, "copy of it does not match its manifest",
                             datetime(2026, 11, 21, 3, 30, tzinfo=timezone.utc))

    [marked] = destination.list_backups("tasks")
    assert (marked.is_good, marked.status) == (False, "damaged: copy of it does not match its manifest")
    with pytest.raises(RemoteBackupNotFound, match="holds no good copy"):
        destination.stat_backup("latest", "tasks")
    assert f"{taken.manifest.name}.damaged.json" in backend.raw_keys()

    destination.put_backup(taken.path, taken.manifest, replacing=marked)

    [replaced] = destination.list_backups("tasks")
    assert replaced.is_good and replaced.damaged is None
    assert backend.raw_keys() == [f"{taken.manifest.name}.manifest.json", taken.path.name]


def test_a_mark_written_for_other_bytes_does_not_condemn_the_copy_there_now(backend, backups):
    taken = backups.take()
    destination = Destination("offsite", backend.settings)
    destination.put_backup(taken.path, taken.manifest)
    stale = {"name": taken.manifest.name, "found_at": "2026-11-01T00:00:00+00:00", "reason": "old news",
             "sha256": "0" * 64}

    backend.write_raw(f"{taken.manifest.name}.damaged.json", json.dumps(stale).encode())

    [listed] = destination.list_backups("tasks")
    assert listed.is_good
    assert destination.delete_backups([listed]) == [taken.manifest.name]
    assert backend.raw_keys() == []  # the stale mark goes with its copy


def test_damaged_backups_names_the_copies_marked_for_their_bytes_and_nothing_else(backend, backups):
    """What ``railguard status`` asks: a stale mark (other bytes) and a mark left without its
    copy condemn nothing; the copy marked for its bytes is named, with when it was found."""
    from datetime import datetime, timezone

    first = backups.take("2026-11-20T03:30:00+00:00")
    second = backups.take("2026-11-21T03:30:00+00:00")
    destination = Destination("offsite", backend.settings)
    destination.put_backup(first.path, first.manifest)
    destination.put_backup(second.path, second.manifest)
    assert destination.damaged_backups("tasks") == []
    found_at = datetime(2026, 11, 22, 3, 30, tzinfo=timezone.utc)
    destination.mark_damaged(destination.stat_backup(second.manifest.name), "flipped", found_at)
    stale = {"name": first.manifest.name, "found_at": "2026-11-01T00:00:00+00:00", "reason": "old news",
             "sha256": "0" * 64}
    backend.write_raw(f"{first.manifest.name}.damaged.json", json.dumps(stale).encode())
    orphan = {**stale, "name": "tasks-20261101-0330", "sha256": first.manifest.sha256}
    backend.write_raw("tasks-20261101-0330.damaged.json", json.dumps(orphan).encode())

    [damaged] = destination.damaged_backups("tasks")

    assert (damaged.name, damaged.damaged, damaged.damaged_at) == (second.manifest.name, "flipped", found_at)
    assert [backup.name for backup in destination.list_backups("tasks")] == [first.manifest.name,
                                                                             second.manifest.name]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_replacing_a_copy_keeps_the_old_one_until_the_new_one_has_read_back(backend, backups, tmp_path, monkeypatch,
                                                                            age_key, encrypted):
    earlier, current = _same_name_other_bytes(tmp_path, backups)
    if encrypted:
        backend.settings.age_recipients = [age_key.recipient]
    suffix = ".age" if encrypted else ""
    destination = Destination("offsite", backend.settings)
    destination.put_backup(earlier.path, earlier.manifest)
    [old] = destination.list_backups("tasks")
    upload = destination.store.upload

    def damaging_upload(key: str, source) -> None:  # type: ignore[no-untyped-def]
        upload(key, source)
        if not key.endswith(".manifest.json"):
            backend.corrupt(key)

    monkeypatch.setattr(destination.store, "upload", damaging_upload)
    with pytest.raises(CopyVerifyFailed, match="sha256 read back differs"):
        destination.put_backup(current.path, current.manifest, replacing=old)

    [still] = destination.list_backups("tasks")
    assert still.is_good and still.manifest is not None and still.manifest.sha256 == earlier.manifest.sha256
    destination.check_copy(still)
    assert backend.raw_keys() == [f"{earlier.manifest.name}.manifest.json", earlier.path.name + suffix]  # none staged

    monkeypatch.undo()
    destination.put_backup(current.path, current.manifest, replacing=old)

    [new] = destination.list_backups("tasks")
    assert new.is_good and new.manifest is not None and new.manifest.sha256 == current.manifest.sha256
    destination.check_copy(new)
    assert backend.raw_keys() == [f"{current.manifest.name}.manifest.json", current.path.name + suffix]


def test_a_copy_put_and_fetched_reports_its_upload_read_back_and_download_up_to_its_size(backend, backups, tmp_path):
    from conftest import grow_with_random_rows
    from progress_log import ProgressLog

    backups.create_database()
    # Past S3's multipart threshold (8 MiB parts, sent by several threads at once) on S3 only:
    # that path is where s3transfer's callbacks come from worker threads.
    grow_with_random_rows(backups.database, 10 if backend.kind == "s3" else 3)
    taken = backups.take(rows=1)
    size = taken.manifest.size_stored
    destination = Destination("offsite", backend.settings)
    sent = ProgressLog()

    destination.put_backup(taken.path, taken.manifest, progress=sent)

    assert sent.stages() == ["upload", "read-back"]
    assert sent.checked() == {"upload": [size], "read-back": [size]}
    assert len(sent.runs()[0].reports) > 3, "the upload moved in one jump"
    fetched = ProgressLog()
    into = tmp_path / "fetched"
    into.mkdir()
    destination.fetch(destination.stat_backup("latest", "tasks"), into, progress=fetched)
    assert fetched.checked() == {"download": [size]}
    assert len(fetched.runs()[0].reports) > 3, "the download moved in one jump"
