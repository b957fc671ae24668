"""A damaged copy at a destination is found, named and skipped; a full disk here is not damage there.

Copies are damaged for real, the way storage fails: a byte flipped in the age payload, the file
cut short, a byte flipped in the age header. pyrage reports the first as a bare
``OSError("decryption error")`` (no errno), the same type as a full disk, so the disk-full case
runs on a real, small tmpfs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from destinations.test_cli import write_config
from railguard.config import DestinationSettings
from railguard.destinations import CopyVerifyFailed, Destination, fetch_backup
from railguard.destinations.base import FetchWriteFailed
from railguard.errors import ExitCode
from railguard.logfmt import read_lines

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 11, 22, 3, 30, tzinfo=timezone.utc)
IDENTITY_HINT = "Use the identity whose public key is in age_recipients"


def _header_end(data: bytes) -> int:
    """Offset of the first payload byte: after the ``--- MAC`` line closing an age header."""
    mac_line = data.index(b"\n---") + 1
    return data.index(b"\n", mac_line) + 1


def flip_in_payload(data: bytes) -> bytes:
    position = (_header_end(data) + len(data)) // 2
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


def cut_short(data: bytes) -> bytes:
    return data[: (_header_end(data) + len(data)) // 2]


def flip_in_header(data: bytes) -> bytes:
    # A byte of the recipient stanza's wrapped file key: still a well-formed line, wrong key.
    stanza = data.index(b"\n-> X25519 ") + 1
    position = data.index(b"\n", stanza) + 5
    swapped = b"B" if data[position:position + 1] != b"B" else b"C"
    return data[:position] + swapped + data[position + 1:]


DAMAGE = {"a flipped payload byte": flip_in_payload, "a copy cut short": cut_short,
          "a damaged header": flip_in_header}
#: A copy cut short is already not good by its size when listed; these keep their size.
SAME_SIZE = ["a damaged header", "a flipped payload byte"]


@pytest.fixture
def encrypted_nas(tmp_path, backups, age_key):  # type: ignore[no-untyped-def]
    """Two encrypted copies at a file:// destination, replicated through the CLI."""
    backups.take("2026-11-20T03:30:00+00:00")
    backups.take("2026-11-21T03:30:00+00:00")
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}", "age_recipients": [age_key.recipient]}})
    return nas


def damage(path: Path, how: str) -> None:
    path.write_bytes(DAMAGE[how](path.read_bytes()))


@pytest.mark.parametrize("how", SAME_SIZE)
def test_verify_with_the_identity_reports_a_damaged_encrypted_copy_as_damaged(run_cli, encrypted_nas, age_key, how):
    assert run_cli("replicate").exit_code == 0
    damage(encrypted_nas / "tasks-20261121-0330.sqlite3.zst.age", how)

    result = run_cli("backups", "verify", "--dest", "nas", "--identity", age_key.identity_file)

    assert result.exit_code == ExitCode.VERIFY_FAILED, result.stdout + result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("FAILED tasks-20261121-0330: destination nas: copy of tasks-20261121-0330 "
                           "does not match its manifest (age: ")
    assert "hint: The stored copy is damaged; restore another" in result.stderr
    assert IDENTITY_HINT not in result.stderr


def test_a_copy_cut_short_is_named_by_its_size_and_never_chosen_as_latest(run_cli, encrypted_nas, age_key,
                                                                           tmp_path):
    assert run_cli("replicate").exit_code == 0
    damage(encrypted_nas / "tasks-20261121-0330.sqlite3.zst.age", "a copy cut short")

    verified = run_cli("backups", "verify", "--dest", "nas", "tasks-20261121-0330", "--identity",
                       age_key.identity_file)
    restored = run_cli("restore", "--dest", "nas", "--to", tmp_path / "restored.db", "--identity",
                       age_key.identity_file, "--json")

    assert verified.exit_code == ExitCode.VERIFY_FAILED
    assert verified.stdout.startswith("FAILED tasks-20261121-0330: destination nas: backup tasks-20261121-0330 "
                                      "is size ")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["backup"] == "tasks-20261120-0330"


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_copy_damaged_after_it_was_listed_is_caught_while_decrypting_and_marked(tmp_path, backups, age_key, how):
    """Listed good, then damaged before the download (or damaged on the wire): age and the
    stored bytes' sha256 catch it during the fetch, whatever age's own error was."""
    taken = backups.take()
    (tmp_path / "nas").mkdir()
    destination = Destination("nas", DestinationSettings(url=f"file://{tmp_path}/nas",
                                                         age_recipients=[age_key.recipient]))
    destination.put_backup(taken.path, taken.manifest)
    [listed] = destination.list_backups("tasks")
    damage(tmp_path / "nas" / listed.data_key, how)
    into = tmp_path / "into"
    into.mkdir()

    with pytest.raises(CopyVerifyFailed) as caught:
        fetch_backup(destination, listed, into, now=NOW, identity_file=age_key.identity_file)

    assert caught.value.message.startswith(f"destination nas: copy of {taken.manifest.name} does not match its "
                                           "manifest (age: ")
    assert caught.value.exit_code == ExitCode.VERIFY_FAILED
    assert list(into.iterdir()) == []
    [after] = destination.list_backups("tasks")
    assert not after.is_good and after.damage_key == f"{taken.manifest.name}.damaged.json"
    if how in SAME_SIZE:  # (one cut short says so by its size first)
        assert after.status.startswith(f"damaged: copy of {taken.manifest.name} does not match its manifest")


def test_verify_all_goes_on_past_a_damaged_copy_and_names_it(run_cli, encrypted_nas, age_key):
    assert run_cli("replicate").exit_code == 0
    damage(encrypted_nas / "tasks-20261120-0330.sqlite3.zst.age", "a flipped payload byte")

    result = run_cli("backups", "verify", "--dest", "nas", "--all", "--identity", age_key.identity_file, "--json")

    assert result.exit_code == ExitCode.VERIFY_FAILED
    document = json.loads(result.stdout)
    assert [(r["name"], r["ok"]) for r in document["results"]] == [
        ("tasks-20261120-0330", False), ("tasks-20261121-0330", True)]
    assert "does not match its manifest" in document["results"][0]["result"]
    assert document["exit_code"] == 4


def test_a_wrong_identity_on_an_intact_copy_still_says_to_use_the_right_identity(run_cli, encrypted_nas, tmp_path):
    from railguard.destinations.encryption import generate_identity

    assert run_cli("replicate").exit_code == 0
    other = tmp_path / "other-identity.txt"
    other.write_text(generate_identity()[0] + "\n")

    result = run_cli("backups", "verify", "--dest", "nas", "--identity", other)

    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert f"cannot decrypt with {other}: No matching keys found" in result.stdout
    assert f"hint: {IDENTITY_HINT}" in result.stderr


@pytest.mark.parametrize("how", SAME_SIZE)
def test_restore_from_a_damaged_encrypted_copy_fails_verification_and_writes_nothing(run_cli, encrypted_nas,
                                                                                     age_key, tmp_path, how):
    assert run_cli("replicate").exit_code == 0
    damage(encrypted_nas / "tasks-20261121-0330.sqlite3.zst.age", how)
    target = tmp_path / "restored.db"

    result = run_cli("restore", "--dest", "nas", "--to", target, "--identity", age_key.identity_file)

    assert result.exit_code == ExitCode.VERIFY_FAILED, result.stderr
    assert result.stderr.splitlines()[0] == ("error: destination nas: copy of tasks-20261121-0330 does not match "
                                             f"its manifest (age: {result.stderr.split('(age: ')[1].split(')')[0]})")
    assert "Traceback" not in result.stderr
    assert not target.exists()
    assert not list((tmp_path / "backups").glob(".railguard-fetch-*"))


# --- a full disk on this host ------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(point: Path, size: str = "1m") -> Iterator[Path]:
    point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def leave_free(point: Path, room: int) -> None:
    """Fill the filesystem until only ``room`` bytes (rounded down to its blocks) are free."""
    stats = os.statvfs(point)
    free = stats.f_bavail * stats.f_frsize
    filler = free - room
    assert filler > 0
    with (point / "filler").open("wb") as handle:
        handle.write(b"\0" * filler)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_a_full_disk_while_fetching_is_a_write_error_and_never_marks_the_copy(tmp_path, backups, age_key,
                                                                               encrypted):
    taken = backups.take(rows=30000)
    assert taken.manifest.size_stored > 16 * 4096, "the copy must be larger than the room left"
    (tmp_path / "nas").mkdir()
    settings = DestinationSettings(url=f"file://{tmp_path}/nas",
                                   age_recipients=[age_key.recipient] if encrypted else [])
    destination = Destination("nas", settings)
    destination.put_backup(taken.path, taken.manifest)
    [copy] = destination.list_backups("tasks")

    with small_tmpfs(tmp_path / "small") as small:
        leave_free(small, 8 * 4096)
        into = small / "fetch"
        into.mkdir()
        with pytest.raises(FetchWriteFailed) as caught:
            fetch_backup(destination, copy, into, now=NOW, identity_file=age_key.identity_file)
        assert list(into.iterdir()) == []  # the partial plaintext is gone

    assert caught.value.exit_code == ExitCode.ERROR
    assert caught.value.message == (f"cannot write the copy of {taken.manifest.name} in {into}: "
                                    "No space left on device")
    assert "the copy at the destination was not judged" in (caught.value.hint or "")
    [after] = destination.list_backups("tasks")
    assert after.is_good and after.damaged is None
    assert sorted(p.name for p in (tmp_path / "nas").iterdir()) == sorted([copy.data_key, copy.manifest_key])


# --- a copy found damaged stays damaged until replaced -----------------------------------


@pytest.fixture
def nas(tmp_path, backups):  # type: ignore[no-untyped-def]
    """Two plain copies at a file:// destination."""
    backups.take("2026-11-20T03:30:00+00:00")
    backups.take("2026-11-21T03:30:00+00:00")
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})
    return nas


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def listed_at(run_cli) -> dict[str, tuple[bool, str]]:  # type: ignore[no-untyped-def]
    listed = run_cli("backups", "list", "--dest", "nas", "--json")
    assert listed.exit_code == 0, listed.stderr
    return {b["name"]: (b["good"], b["status"]) for b in json.loads(listed.stdout)["backups"]}


def test_a_copy_found_damaged_is_listed_so_skipped_by_restore_and_replaced_by_replicate(run_cli, nas, tmp_path):
    assert run_cli("replicate").exit_code == 0
    flip_a_byte(nas / "tasks-20261121-0330.sqlite3.zst")

    verified = run_cli("backups", "verify", "--dest", "nas")
    assert verified.exit_code == ExitCode.VERIFY_FAILED

    listed = listed_at(run_cli)
    assert listed["tasks-20261120-0330"] == (True, "ok")
    assert listed["tasks-20261121-0330"] == (False, "damaged: copy of tasks-20261121-0330 does not match its manifest")
    restored = run_cli("restore", "--dest", "nas", "--to", tmp_path / "restored.db", "--json")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["backup"] == "tasks-20261120-0330"  # latest: the newest *good* copy

    replicated = run_cli("replicate", "--json")

    assert replicated.exit_code == 0, replicated.stderr
    [run] = json.loads(replicated.stdout)["destinations"]
    assert (run["copied"], run["replaced"], run["present"]) == (["tasks-20261121-0330"], ["tasks-20261121-0330"], 1)
    assert listed_at(run_cli)["tasks-20261121-0330"] == (True, "ok")
    assert not list(nas.glob("*.damaged.json"))  # the mark went once the new copy read back
    assert run_cli("backups", "verify", "--dest", "nas", "--all").exit_code == 0
    [line] = [line for line in read_lines(tmp_path / "backups" / "destinations.log")
              if line["event"] == "copy" and line.get("reason")]
    assert line["reason"].startswith("replaced a copy marked damaged (copy of tasks-20261121-0330 does not match")


def test_an_old_copy_found_damaged_is_replaced_without_asking_for_gaps(run_cli, nas):
    assert run_cli("replicate").exit_code == 0
    flip_a_byte(nas / "tasks-20261120-0330.sqlite3.zst")
    assert run_cli("backups", "verify", "--dest", "nas", "--all").exit_code == ExitCode.VERIFY_FAILED

    [run] = json.loads(run_cli("replicate", "--json").stdout)["destinations"]

    assert run["replaced"] == ["tasks-20261120-0330"]
    assert listed_at(run_cli) == {"tasks-20261120-0330": (True, "ok"), "tasks-20261121-0330": (True, "ok")}


def test_a_damaged_copy_whose_local_backup_is_gone_stays_marked(run_cli, nas, tmp_path):
    assert run_cli("replicate").exit_code == 0
    flip_a_byte(nas / "tasks-20261120-0330.sqlite3.zst")
    assert run_cli("backups", "verify", "--dest", "nas", "--all").exit_code == ExitCode.VERIFY_FAILED
    for path in (tmp_path / "backups").glob("tasks-20261120-0330*"):
        path.unlink()

    [run] = json.loads(run_cli("replicate", "--json").stdout)["destinations"]

    assert (run["copied"], run["present"]) == ([], 1)
    assert listed_at(run_cli)["tasks-20261120-0330"][0] is False


def test_a_marked_copy_that_verifies_in_full_again_is_good_again(run_cli, nas):
    """A download damaged on the wire marks a copy that is whole at rest; a later full check clears it."""
    assert run_cli("replicate").exit_code == 0
    stored = nas / "tasks-20261121-0330.sqlite3.zst"
    whole = stored.read_bytes()
    flip_a_byte(stored)
    assert run_cli("backups", "verify", "--dest", "nas").exit_code == ExitCode.VERIFY_FAILED
    stored.write_bytes(whole)

    again = run_cli("backups", "verify", "--dest", "nas", "tasks-20261121-0330")

    assert again.exit_code == 0, again.stdout
    assert listed_at(run_cli)["tasks-20261121-0330"] == (True, "ok")


def test_a_verify_that_cannot_reach_the_store_marks_nothing(run_cli, nas, tmp_path):
    assert run_cli("replicate").exit_code == 0
    moved = tmp_path / "unmounted"
    nas.rename(moved)

    result = run_cli("backups", "verify", "--dest", "nas")

    assert result.exit_code == ExitCode.ERROR
    moved.rename(nas)
    assert not list(nas.glob("*.damaged.json"))


# --- a name reused for other bytes ---------------------------------------------------------


def test_replicate_replaces_an_older_backup_stored_under_the_same_name(run_cli, tmp_path, backups):
    """The destination holds a copy named like this host's newest backup, of other bytes (a
    backup directory started afresh, or a name reused after prune): it is not "already there"."""
    import sqlite3

    from destinations.conftest import LocalBackups

    (tmp_path / "before").mkdir()
    earlier = LocalBackups(tmp_path / "before" / "tasks.db", tmp_path / "before-backups").take(rows=120)
    nas = tmp_path / "nas"
    nas.mkdir()
    Destination("nas", DestinationSettings(url=f"file://{nas}")).put_backup(earlier.path, earlier.manifest)
    current = backups.take(rows=340)
    assert current.manifest.name == earlier.manifest.name
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})

    result = run_cli("replicate", "--json")

    assert result.exit_code == 0, result.stderr
    [run] = json.loads(result.stdout)["destinations"]
    assert (run["copied"], run["replaced"], run["present"]) == ([current.manifest.name], [current.manifest.name], 0)
    [line] = [line for line in read_lines(tmp_path / "backups" / "destinations.log") if line["event"] == "copy"]
    assert line["reason"].startswith("replaced another backup stored under the same name (sha256 "
                                     f"{earlier.manifest.sha256[:12]}...")
    target = tmp_path / "restored.db"
    assert run_cli("restore", "--dest", "nas", "--to", target).exit_code == 0
    with sqlite3.connect(target) as connection:
        assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (340,)
    [again] = json.loads(run_cli("replicate", "--json").stdout)["destinations"]
    assert (again["copied"], again["present"]) == ([], 1)


def test_a_half_copy_left_by_a_killed_run_is_copied_over_not_counted_as_there(run_cli, nas):
    assert run_cli("replicate").exit_code == 0
    (nas / "tasks-20261121-0330.manifest.json").unlink()  # killed between the data and the manifest

    [run] = json.loads(run_cli("replicate", "--json").stdout)["destinations"]

    assert (run["copied"], run["replaced"], run["present"]) == (["tasks-20261121-0330"], [], 1)
    assert listed_at(run_cli)["tasks-20261121-0330"] == (True, "ok")


def test_a_damaged_copy_on_a_read_only_destination_is_still_reported_and_says_it_is_unmarked(run_cli, nas):
    assert run_cli("replicate").exit_code == 0
    flip_a_byte(nas / "tasks-20261121-0330.sqlite3.zst")
    mounted = subprocess.run(["mount", "--bind", str(nas), str(nas)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {mounted.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(nas)], check=True, capture_output=True)

        result = run_cli("backups", "verify", "--dest", "nas")
    finally:
        subprocess.run(["umount", "-l", str(nas)], check=False)

    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert "FAILED tasks-20261121-0330: destination nas: copy of tasks-20261121-0330 does not match" in result.stdout
    assert "It could not be marked damaged there (destination nas: Read-only file system" in result.stderr
    assert not list(nas.glob("*.damaged.json"))
