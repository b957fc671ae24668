"""age encryption: copies readable only with the identity, by railguard and by the stock tools."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest

from railguard.config import DestinationSettings
from railguard.destinations import Destination
from railguard.errors import ConfigError

pytestmark = pytest.mark.timeout(120)


def test_decrypting_with_the_wrong_identity_fails_verification(tmp_path, backups, age_key):
    from railguard.destinations.encryption import DecryptFailed, generate_identity

    taken = backups.take()
    (tmp_path / "nas").mkdir()
    destination = Destination("nas", DestinationSettings(url=f"file://{tmp_path}/nas",
                                                         age_recipients=[age_key.recipient]))
    copy = destination.put_backup(taken.path, taken.manifest)
    other = tmp_path / "other-identity.txt"
    other.write_text(generate_identity()[0] + "\n")
    (tmp_path / "into").mkdir()

    with pytest.raises(DecryptFailed, match="cannot decrypt"):
        destination.fetch(copy, tmp_path / "into", identity_file=other)


def test_an_identity_file_with_a_public_key_only_is_refused_without_echoing_it(tmp_path, age_key):
    from railguard.destinations.encryption import read_identities

    wrong = tmp_path / "public.txt"
    wrong.write_text("AGE-SECRET-KEY-1NOTAREALKEY\n")

    with pytest.raises(ConfigError, match="line 1 is not an age secret key") as caught:
        read_identities(wrong)

    assert "NOTAREALKEY" not in caught.value.message


def test_an_encrypted_copy_opens_with_the_stock_age_and_zstd_tools(tmp_path, backups, age_key):
    taken = backups.take(rows=50)
    (tmp_path / "nas").mkdir()
    destination = Destination("nas", DestinationSettings(url=f"file://{tmp_path}/nas",
                                                         age_recipients=[age_key.recipient]))
    copy = destination.put_backup(taken.path, taken.manifest)
    assert shutil.which("age") and shutil.which("zstd"), "apt-get install age zstd (see .ci/run)"

    decrypted = subprocess.run(["age", "-d", "-i", str(age_key.identity_file), str(tmp_path / "nas" / copy.data_key)],
                               capture_output=True, check=True).stdout
    raw = subprocess.run(["zstd", "-d", "-c"], input=decrypted, capture_output=True, check=True).stdout
    (tmp_path / "by-hand.db").write_bytes(raw)

    with sqlite3.connect(tmp_path / "by-hand.db") as connection:
        assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (50,)


def test_an_encrypted_copy_reports_its_encryption_before_the_upload(tmp_path, backups, age_key):
    from progress_log import ProgressLog

    taken = backups.take()
    (tmp_path / "nas").mkdir()
    destination = Destination("nas", DestinationSettings(url=f"file://{tmp_path}/nas",
                                                         age_recipients=[age_key.recipient]))
    log = ProgressLog()

    copy = destination.put_backup(taken.path, taken.manifest, progress=log)

    assert copy.encryption is not None
    assert log.checked() == {"encrypt": [taken.manifest.size_stored], "upload": [copy.encryption.size],
                             "read-back": [copy.encryption.size]}
