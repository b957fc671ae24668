"""``railguard drill --from DESTINATION``: the copy off the host is the one that must restore."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture
def age_key(tmp_path):  # type: ignore[no-untyped-def]
    from railguard.destinations.encryption import generate_identity

    secret, public = generate_identity()
    path = tmp_path / "age-identity.txt"
    path.write_text(f"# public key: {public}\n{secret}\n")
    path.chmod(0o600)
    return path, public


def replicate_then_lose_the_local_backups(run_cli, site) -> None:  # type: ignore[no-untyped-def]
    (site.root / "nas").mkdir(exist_ok=True)  # a file:// destination is a mounted disk: it must exist
    replicated = run_cli("--config", site.config, "replicate", "--json")
    assert replicated.exit_code == 0, replicated.stdout + replicated.stderr
    for path in site.backups.iterdir():
        if path.name != "drill.log":
            path.unlink() if path.is_file() else shutil.rmtree(path)


def test_a_backup_fetched_from_a_file_destination_boots_the_app(run_cli, site, clean_env, tmp_path):
    site.backup()
    nas = tmp_path / "nas"
    site.configure(destinations={"nas": {"url": nas.as_uri()}})
    replicate_then_lose_the_local_backups(run_cli, site)
    result = run_cli("--config", site.config, "drill", "--dest", "nas", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["source"] == "destination nas"
    assert [step["name"] for step in report["steps"]] == ["fetch", "verify", "start", "health", "metrics", "stop"]
    [line] = site.drill_log()
    assert line["result"] == "ok" and line["source"] == "destination nas"
    assert site.scratch_entries() == []


def test_an_encrypted_copy_is_decrypted_with_the_configured_identity(run_cli, site, clean_env, tmp_path, age_key):
    identity, recipient = age_key
    site.backup()
    site.configure(destinations={"nas": {"url": (tmp_path / "nas").as_uri(), "age_recipients": [recipient],
                                         "age_identity_file": str(identity)}})
    replicate_then_lose_the_local_backups(run_cli, site)
    assert any(path.name.endswith(".age") for path in (tmp_path / "nas").iterdir())
    result = run_cli("--config", site.config, "drill", "random", "--dest", "nas")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "drill PASSED" in result.stdout


def test_a_damaged_copy_at_the_destination_fails_verification(run_cli, site, clean_env, tmp_path):
    site.backup()
    nas = tmp_path / "nas"
    site.configure(destinations={"nas": {"url": nas.as_uri()}})
    replicate_then_lose_the_local_backups(run_cli, site)
    [stored] = [path for path in nas.iterdir() if path.name.endswith(".zst")]
    data = bytearray(stored.read_bytes())
    data[-10] ^= 0xFF
    stored.write_bytes(bytes(data))
    result = run_cli("--config", site.config, "drill", "--dest", "nas", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 4
    assert report["failed_step"] == "fetch"
    assert "does not match its manifest" in report["reason"]


def test_an_unknown_destination_is_not_found(run_cli, site, clean_env, tmp_path):
    site.backup()
    site.configure(destinations={"nas": {"url": (tmp_path / "nas").as_uri()}})
    result = run_cli("--config", site.config, "drill", "--dest", "offsite")
    assert result.exit_code == 6
    assert "offsite" in result.stderr


def test_a_damaged_encrypted_copy_fails_the_fetch_as_damaged_and_is_never_chosen_again(run_cli, site, clean_env,
                                                                                       tmp_path, age_key):
    """pyrage raises a bare OSError("decryption error") for a payload chunk that fails its check:
    the drill reports a damaged copy (exit 4), not a crash (exit 1) or a wrong identity."""
    identity, recipient = age_key
    site.backup()
    nas = tmp_path / "nas"
    site.configure(destinations={"nas": {"url": nas.as_uri(), "age_recipients": [recipient],
                                         "age_identity_file": str(identity)}})
    replicate_then_lose_the_local_backups(run_cli, site)
    [stored] = [path for path in nas.iterdir() if path.name.endswith(".age")]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2 + 200] ^= 0x01  # inside the payload, past the header
    stored.write_bytes(bytes(data))

    result = run_cli("--config", site.config, "drill", "--dest", "nas", "--json")
    again = run_cli("--config", site.config, "drill", "--dest", "nas", "--json")

    report = json.loads(result.stdout)
    assert result.exit_code == 4, report
    assert report["failed_step"] == "fetch"
    assert report["reason"].startswith(f"destination nas: copy of {report['backup']} does not match its manifest "
                                       "(age: decryption error)")
    assert "restore another" in report["hint"] and "identity" not in report["hint"]
    assert site.scratch_entries() == []
    # Marked damaged at the destination: the only copy there is no longer a candidate.
    assert again.exit_code == 6
    assert "holds no good copy" in again.stderr
