"""docs/install.md's examples are what railguard writes, and the repository's own deploy files
(Dockerfile, captain-definition) pass railguard's doctor."""

from __future__ import annotations

import json
import re
from pathlib import Path

from railguard.doctor import diagnose
from railguard.init import railguard_command

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "install.md").read_text()


def test_the_crontab_in_the_docs_is_what_init_writes(run_cli, tmp_path):
    config = tmp_path / "railguard.toml"
    config.write_text('[apps.tasks.drill]\ncommand = ["python3", "app.py"]\n')
    result = run_cli("--config", config, "init", "--scheduler", "cron", "--print")
    assert result.exit_code == 0, result.stderr
    written = (result.stdout.removeprefix("==> railguard.cron <==\n")
               .replace(" ".join(railguard_command()), "/home/ops/.local/bin/railguard")
               .replace(str(config), "/etc/railguard/railguard.toml"))
    [documented] = re.findall(r"```\n(CRON_TZ=.*?)```", DOCS, flags=re.S)
    # The docs show the file from its settings on (the header comments are explained in prose).
    assert written[written.index("CRON_TZ="):] == documented


def test_the_repositorys_dockerfile_and_captain_definition_pass_doctor():
    assert [(f.file, f.rule) for f in diagnose(ROOT).findings] == []
    definition = json.loads((ROOT / "captain-definition").read_text())
    assert definition == {"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}
    assert (ROOT / definition["dockerfilePath"]).is_file()


def test_the_images_healthcheck_is_railguards_probe_on_the_daemons_healthz():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RAILGUARD_HEALTHZ_URL=http://127.0.0.1:9180/healthz" in dockerfile
    assert 'CMD /opt/railguard/bin/python -I -m railguard.probe --timeout 5 "$RAILGUARD_HEALTHZ_URL"' in dockerfile
    assert re.search(r'^ENTRYPOINT \["railguard"\]\nCMD \["daemon"\]$', dockerfile, flags=re.M)
