"""``railguard drill`` of a page generation: rebuilt, checked, and served by the example app."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from railguard.config import BackupSettings
from railguard.pages.store import pack_path
from railguard.pages.writer import take_generation

from drill import conftest as drill_fixtures
from drill.sites import Site

site = drill_fixtures.site  # the drill tests' production site and clean environment
clean_env = drill_fixtures.clean_env


def _generation(site: Site) -> str:
    settings = BackupSettings(directory=site.backups, prune=False, kind="pages")
    return take_generation(site.database, settings, now=datetime.now(timezone.utc)).manifest.name


def test_a_drill_of_the_newest_generation_boots_the_app(run_cli, site: Site, clean_env) -> None:  # type: ignore[no-untyped-def]
    site.backup(minutes_later=-60)  # an older whole-file backup: latest is the generation
    name = _generation(site)
    site.configure(assertions=[{"sql": "SELECT count(*) FROM tasks", "expect": "> 0"}])
    result = run_cli("--config", site.config, "drill", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["backup"] == name and report["result"] == "passed"
    verify = next(step for step in report["steps"] if step["name"] == "verify")
    assert verify["detail"].startswith("page hashes ok, rebuilt ")
    assert site.scratch_entries() == []


def test_a_drill_of_a_generation_with_a_damaged_pack_fails_before_the_app_starts(run_cli, site: Site,  # type: ignore[no-untyped-def]
                                                                                 clean_env) -> None:
    name = _generation(site)
    manifest = json.loads((site.backups / "tasks.pages" / f"{name}.generation.json").read_text())
    pack = pack_path(site.backups / "tasks.pages", manifest["packs"][0])
    data = bytearray(pack.read_bytes())
    data[-5] ^= 0x10
    pack.write_bytes(bytes(data))
    site.configure()
    result = run_cli("--config", site.config, "drill", name, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 4, report
    assert [step["name"] for step in report["steps"]] == ["verify"]
    assert report["steps"][0]["detail"] == (f"generation {name}: pack {manifest['packs'][0][:12]} does not hash to "
                                            f"its name (changed since it was written)")


def test_a_drill_from_a_destination_boots_the_app_on_a_generation_fetched_from_there(  # type: ignore[no-untyped-def]
        run_cli, site: Site, clean_env, tmp_path) -> None:
    import shutil

    name = _generation(site)
    nas = tmp_path / "nas"
    nas.mkdir()
    site.configure(assertions=[{"sql": "SELECT count(*) FROM tasks", "expect": "> 0"}],
                   destinations={"nas": {"url": f"file://{nas}"}})
    copied = run_cli("--config", site.config, "replicate", "--json")
    assert copied.exit_code == 0, copied.stdout
    shutil.rmtree(site.backups / "tasks.pages")  # only the destination holds it now

    result = run_cli("--config", site.config, "drill", "--dest", "nas", "--json")

    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert (report["backup"], report["source"], report["result"]) == (name, "destination nas", "passed")
    assert [step["name"] for step in report["steps"]][:2] == ["fetch", "verify"]
    assert report["steps"][0]["detail"] == f"{name} from file://{nas}"
    assert site.scratch_entries() == []
