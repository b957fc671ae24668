"""The commands and the backup job, end to end: ``railguard backup`` copies to every destination,
``replicate`` catches up, ``backups list|verify --dest`` read remote copies, secrets stay hidden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from destinations.servers import MOTO_SECRET, SFTP_PASSWORD, free_port
from railguard.logfmt import read_lines

pytestmark = pytest.mark.timeout(120)


def write_config(tmp_path: Path, database: Path, destinations: dict[str, dict[str, object]], **app: str) -> Path:
    lines = ['timezone = "UTC"', f'state_dir = "{tmp_path / "state"}"', "[apps.tasks]", f'database = "{database}"']
    lines += [f"{key} = {value}" for key, value in app.items()]
    lines += ["[apps.tasks.backup]", f'directory = "{tmp_path / "backups"}"']
    for name, settings in destinations.items():
        lines.append(f"[apps.tasks.destinations.{name}]")
        for key, value in settings.items():
            if isinstance(value, dict):
                continue
            lines.append(f"{key} = {json.dumps(value)}")
        for key, value in settings.items():
            if isinstance(value, dict):
                lines.append(f"[apps.tasks.destinations.{name}.{key}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
    path = tmp_path / "railguard.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def s3_destination(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"url": f"s3://{bucket}/tasks", "endpoint_url": endpoint, "region": "us-east-1",
            "addressing_style": "path", "attempts": 1, **extra}


def test_backup_copies_to_every_destination_and_verifies_there(run_cli, tmp_path, backups, moto_endpoint, bucket,
                                                                s3_client):
    backups.create_database()
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"},
                                              "offsite": s3_destination(moto_endpoint, bucket)})

    result = run_cli("backup", "--json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    name = report["manifest"]["name"]
    assert [(d["name"], d["ok"], d["copied"]) for d in report["steps"]["destinations"]] == [
        ("nas", True, [name]), ("offsite", True, [name])]
    assert sorted(p.name for p in nas.iterdir()) == [f"{name}.manifest.json", f"{name}.sqlite3.zst"]
    keys = [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [f"tasks/{name}.manifest.json", f"tasks/{name}.sqlite3.zst"]
    logged = read_lines(tmp_path / "backups" / "destinations.log")
    assert {(line["destination"], line["result"]) for line in logged if line["event"] == "copy"} == {
        ("nas", "ok"), ("offsite", "ok")}


def test_a_failing_destination_warns_and_notifies_but_never_undoes_the_local_backup(run_cli, tmp_path, backups,
                                                                                       moto_endpoint, bucket):
    from local_http import JsonReceiver

    backups.create_database()
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"},
                                              "offsite": s3_destination(moto_endpoint, "railguard-missing-bucket")})
    receiver = JsonReceiver()
    try:
        result = run_cli("backup", env={"RAILGUARD_NOTIFY_URLS": receiver.url})
    finally:
        receiver.stop()

    assert result.exit_code == 1  # WARNING: the backup is done, a destination needs attention
    assert "warning: destination offsite" in result.stderr
    assert "bucket railguard-missing-bucket does not exist" in result.stderr
    assert len(list((tmp_path / "backups").glob("*.sqlite3.zst"))) == 1
    assert len(list(nas.glob("*.sqlite3.zst"))) == 1  # the healthy destination got its copy
    failed = [line for line in read_lines(tmp_path / "backups" / "destinations.log") if line["result"] == "failed"]
    assert [(line["destination"], "does not exist" in line["reason"]) for line in failed] == [("offsite", True)]
    assert receiver.titles() == ["railguard tasks: copy to offsite failed"]


def test_replicate_catches_up_after_an_outage(run_cli, tmp_path, backups):
    backups.take("2026-11-20T03:30:00+00:00")
    backups.take("2026-11-21T03:30:00+00:00")
    nas = tmp_path / "nas"
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})

    down = run_cli("replicate")
    assert down.exit_code == 2
    assert "is the disk mounted" in down.stderr

    nas.mkdir()
    back = run_cli("replicate", "--json")
    assert back.exit_code == 0, back.stderr
    [run] = json.loads(back.stdout)["destinations"]
    assert run["copied"] == ["tasks-20261120-0330", "tasks-20261121-0330"]

    again = run_cli("replicate", "--json")
    [run] = json.loads(again.stdout)["destinations"]
    assert (run["copied"], run["present"]) == ([], 2)


def test_replicate_copies_only_newer_backups_unless_told_to_fill_gaps(run_cli, tmp_path, backups):
    backups.take("2026-11-20T03:30:00+00:00")
    backups.take("2026-11-21T03:30:00+00:00")
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})
    assert run_cli("replicate").exit_code == 0
    for old in nas.glob("tasks-20261120-0330*"):
        old.unlink()  # e.g. pruned there by a shorter policy
    backups.take("2026-11-22T03:30:00+00:00")

    [run] = json.loads(run_cli("replicate", "--json").stdout)["destinations"]
    assert run["copied"] == ["tasks-20261122-0330"]

    [run] = json.loads(run_cli("replicate", "--all", "--json").stdout)["destinations"]
    assert run["copied"] == ["tasks-20261120-0330"]


def test_a_second_backup_in_the_same_second_is_copied_too(run_cli, tmp_path, backups):
    """created_at has a one-second resolution: two backups can share it (make demo hit this)."""
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})
    backups.take("2026-11-20T03:30:00+00:00")
    assert run_cli("replicate").exit_code == 0
    backups.take("2026-11-20T03:30:00+00:00")

    [run] = json.loads(run_cli("replicate", "--json").stdout)["destinations"]
    assert run["copied"] == ["tasks-20261120-0330-2"]


def test_backups_list_and_verify_read_the_copies_at_a_destination(run_cli, tmp_path, backups):
    backups.take("2026-11-20T03:30:00+00:00")
    backups.take("2026-11-21T03:30:00+00:00")
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})
    assert run_cli("replicate").exit_code == 0

    listed = run_cli("backups", "list", "--dest", "nas")
    assert listed.exit_code == 0
    assert "tasks-20261120-0330" in listed.stdout and "tasks-20261121-0330" in listed.stdout

    verified = run_cli("backups", "verify", "--dest", "nas", "--all", "--json")
    assert verified.exit_code == 0, verified.stdout
    assert [(r["name"], r["checked"]) for r in json.loads(verified.stdout)["results"]] == [
        ("tasks-20261120-0330", "database"), ("tasks-20261121-0330", "database")]

    damaged = nas / "tasks-20261121-0330.sqlite3.zst"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x00")
    result = run_cli("backups", "verify", "--dest", "nas")
    assert result.exit_code == 4
    assert "FAILED tasks-20261121-0330: destination nas: copy of tasks-20261121-0330 does not match" in result.stdout


def test_encrypted_copies_verify_by_checksum_without_the_identity_and_fully_with_it(run_cli, tmp_path, backups,
                                                                                      age_key):
    backups.take()
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}", "age_recipients": [age_key.recipient]}})
    assert run_cli("replicate").exit_code == 0

    without = run_cli("backups", "verify", "--dest", "nas", "--json")
    assert without.exit_code == 0
    [checked] = json.loads(without.stdout)["results"]
    assert checked["checked"] == "checksum"

    with_identity = run_cli("backups", "verify", "--dest", "nas", "--identity", age_key.identity_file, "--json")
    assert with_identity.exit_code == 0
    [checked] = json.loads(with_identity.stdout)["results"]
    assert checked["checked"] == "database"
    assert "encrypted" in run_cli("backups", "list", "--dest", "nas").stdout


def test_an_unknown_destination_name_lists_the_known_ones(run_cli, tmp_path, backups):
    backups.take()
    (tmp_path / "nas").mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{tmp_path / 'nas'}"}})

    result = run_cli("replicate", "--dest", "offsite")

    assert result.exit_code == 6
    assert "error: no destination named 'offsite'" in result.stderr
    assert "hint: Known destinations: nas" in result.stderr


def test_replicate_without_destinations_is_a_usage_error(run_cli, tmp_path, backups):
    backups.take()
    write_config(tmp_path, backups.database, {})

    result = run_cli("replicate")

    assert result.exit_code == 3
    assert "app tasks has no destinations" in result.stderr


def test_identity_without_dest_is_refused(run_cli, tmp_path, backups, age_key):
    backups.take()
    write_config(tmp_path, backups.database, {})

    result = run_cli("backups", "verify", "--identity", age_key.identity_file)

    assert result.exit_code == 3


def test_secrets_never_appear_in_output_logs_or_json(run_cli, tmp_path, backups, aws_env, rclone_env):
    backups.take()
    connection_string = (f"rclone::sftp,host=127.0.0.1,port={free_port()},user=railguard,"
                         f"pass={SFTP_PASSWORD}:tasks")
    write_config(tmp_path, backups.database, {
        "offsite": {"url": "s3://railguard-secrets/tasks", "endpoint_url": f"http://127.0.0.1:{free_port()}",
                    "region": "us-east-1", "attempts": 1},
        "nas": {"url": connection_string, "attempts": 1, "timeout": "3s"},
        "leaky": {"url": f"s3://AKIAEXAMPLE:{MOTO_SECRET}@railguard-secrets/tasks"}})

    seen = []
    for args in (["backup", "--json"], ["backup"], ["replicate", "--json"], ["replicate"],
                 ["backups", "list", "--dest", "nas", "--json"], ["backups", "verify", "--dest", "offsite"]):
        result = run_cli(*args)
        assert result.exit_code != 0
        seen += [result.stdout, result.stderr]
    seen += [path.read_text() for path in (tmp_path / "backups").glob("*.log")]

    everything = "\n".join(seen)
    assert "destination nas" in everything and "destination offsite" in everything and "leaky" in everything
    assert MOTO_SECRET not in everything
    assert SFTP_PASSWORD not in everything
    assert "pass=***" in everything


def test_restore_from_a_destination_decrypts_and_takes_the_same_verified_path(run_cli, tmp_path, backups,
                                                                                moto_endpoint, bucket, age_key):
    import sqlite3

    backups.take(rows=300)
    write_config(tmp_path, backups.database, {
        "offsite": s3_destination(moto_endpoint, bucket, age_recipients=[age_key.recipient])})
    assert run_cli("replicate").exit_code == 0
    target = tmp_path / "restored" / "tasks.db"
    target.parent.mkdir()

    refused = run_cli("restore", "--dest", "offsite", "--to", target)
    assert refused.exit_code == 3
    assert "is encrypted; an age identity is needed" in refused.stderr
    assert not target.exists()

    result = run_cli("restore", "--dest", "offsite", "--to", target, "--identity", age_key.identity_file, "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["backup"] == "tasks-20261120-0330"
    with sqlite3.connect(target) as connection:
        assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (300,)
    assert not list((tmp_path / "backups").glob(".railguard-fetch-*"))  # the fetched copy is gone
    # The restore is logged where the app's backups live, not in the temporary fetch directory.
    restores = [line for line in read_lines(tmp_path / "backups" / "backup.log") if line.get("event") == "restore"]
    assert [(line["backup"], line["result"]) for line in restores] == [("tasks-20261120-0330", "ok")]


def test_restore_from_a_damaged_remote_copy_changes_nothing(run_cli, tmp_path, backups):
    backups.take()
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})
    assert run_cli("replicate").exit_code == 0
    stored = nas / "tasks-20261120-0330.sqlite3.zst"
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    target = tmp_path / "restored.db"

    result = run_cli("restore", "--dest", "nas", "--to", target)

    assert result.exit_code == 4
    assert "does not match its manifest" in result.stderr
    assert not target.exists()


def test_replicate_pings_its_heartbeat_with_its_exit_code(run_cli, tmp_path, backups):
    from local_http import PingReceiver

    backups.take()
    config = write_config(tmp_path, backups.database, {"nas": {"url": f"file://{tmp_path / 'unmounted'}"}})
    config.write_text(config.read_text() + '[apps.tasks.heartbeat]\nreplicate_url_env = "REPLICATE_PING_URL"\n')
    pings = PingReceiver()
    try:
        result = run_cli("replicate", env={"REPLICATE_PING_URL": pings.url_for()})
    finally:
        pings.stop()

    assert result.exit_code == 2
    assert pings.signals() == ["start", "2"]


def test_one_replication_at_a_time_and_a_backup_meanwhile_only_warns(run_cli, tmp_path, backups):
    from railguard.locking import exclusive_lock

    backups.take()
    nas = tmp_path / "nas"
    nas.mkdir()
    write_config(tmp_path, backups.database, {"nas": {"url": f"file://{nas}"}})

    with exclusive_lock(tmp_path / "backups" / ".tasks.replicate.lock", "a replicate in another process"):
        busy = run_cli("replicate")
        backup = run_cli("backup")

    assert busy.exit_code == 5
    assert "another railguard run is already working on copies of tasks" in busy.stderr
    assert backup.exit_code == 1
    assert "warning: copies to destinations skipped" in backup.stderr
    assert run_cli("replicate").exit_code == 0
    assert len(list(nas.glob("*.sqlite3.zst"))) == 2
