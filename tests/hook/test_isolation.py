"""A pushed commit that hunts for secrets through the pre-receive hook finds none (issue 14, item 2).

The hook runs with the server's environment (here: the pusher's, over git's local transport),
which holds deploy secrets and the path of a secret file. The pushed suite (tests/secret_hunt.py)
reads the environ of every ancestor (the hook, git receive-pack, ...), the secret file, its own
environment and the state directory, and publishes its loot base64-encoded in its output (which
reaches the pusher as ``remote:`` lines) and in a file outside its tree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from secret_hunt import decoded_loot, hunting_suite, leaks

PASSWORD = "hook-caprover-pa55word-never-shown"
APP_TOKEN = "hook-caprover-app-t0ken-never-shown"
SECRETS = [PASSWORD, APP_TOKEN]



@pytest.mark.parametrize("isolation", [None, "none"], ids=["default", "none-the-attack-works"])
def test_a_pushed_suite_hunting_for_the_servers_secrets_finds_none(
        isolation, hooked, write_hook_config, exfil, tmp_path: Path) -> None:
    if isolation is not None:
        write_hook_config(test_isolation=isolation)
    secret_file = tmp_path / "secrets" / "app-token"
    secret_file.parent.mkdir(mode=0o700)
    secret_file.write_text(APP_TOKEN)
    secret_file.chmod(0o600)
    hooked.commit("innocent refactor", {"run-tests.sh": hunting_suite(
        secret_files=[secret_file], state_dir=tmp_path / "state", exfil=exfil)})
    push = hooked.push("main", env={"CAPROVER_PASSWORD": PASSWORD, "CAPROVER_APP_TOKEN_FILE": str(secret_file)})
    assert push.returncode != 0, push.output  # the suite exits 1: the push is rejected, its tail shown
    loot = exfil.read_text() if exfil.exists() else ""
    if isolation == "none":
        assert set(leaks(loot, SECRETS)) == set(SECRETS), decoded_loot(f"attack: loot {loot}")
        assert "railguard: WARNING: NOT ISOLATED" in push.output
        return
    found = decoded_loot(push.output)
    assert "own environment:" in found, found
    assert {"push output": leaks(push.output, SECRETS), "exfiltration file": leaks(loot, SECRETS),
            "decoded loot": leaks(found, SECRETS)} == {"push output": [], "exfiltration file": [],
                                                       "decoded loot": []}
    assert "NOT ISOLATED" not in push.output


def test_the_suite_runs_in_a_fresh_copy_of_the_commit_inside_the_sandbox(hooked) -> None:
    hooked.commit("reports its environment", {"run-tests.sh": (
        'echo "pwd: $(pwd)"; echo "files: $(ls | tr "\\n" " ")"; env | grep "^GIT_" | sed "s/^/git-env: /"\n'
        'echo "home: $HOME"; touch "$HOME/ok" && echo "home writable"\nexit 1\n')})
    push = hooked.push("main", env={"CAPROVER_PASSWORD": PASSWORD})
    lines = [line.split("| ", 1)[-1].strip() for line in push.output.splitlines() if "|" in line]
    assert [line for line in lines if line.startswith("files:")] == ["files: index.ts run-tests.sh"]
    assert not [line for line in lines if line.startswith("git-env:")], lines
    assert "home writable" in lines, lines
    assert PASSWORD not in push.output
