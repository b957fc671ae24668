"""Runs the official CapRover CLI against the fake CapRover, inside a private network namespace.

Started by tests/deploy/test_caprover_cli.py as
``unshare --net --mount sh -c 'ip link set lo up && mount --bind HOSTS /etc/hosts && python THIS ...'``:
the namespace has only its own loopback, so the fake can listen on 127.0.0.1:80 (the CLI drops
any port from the machine URL and prefixes ``captain.``: caprover-cli src/utils/Utils.ts
``cleanAdminDomainUrl``), and the private /etc/hosts maps ``captain.localhost`` to 127.0.0.1.
Nothing outside the namespace can see or disturb either.

Usage: ``python caprover_cli_session.py CLI WORKDIR`` — prints one JSON document: per scenario
the CLI's exit code and output, and what the fake recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes.caprover import FakeCapRover  # noqa: E402

PASSWORD = "captain-cli-password"
APP_TOKEN = "cli-app-token-value"
OTP = "314159"
MACHINE = "http://captain.localhost"


def run(cli: str, args: list[str], *, cwd: Path, home: Path, env: dict[str, str] | None = None) -> dict:
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "NO_COLOR": "1", **(env or {})}
    # stdin from /dev/null: a question the CLI would ask fails at once instead of waiting.
    result = subprocess.run([cli, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    return {"args": args, "exit": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def recorded(captain: FakeCapRover, since: int) -> list[dict]:
    return [{"method": c.method, "path": c.path, "query": c.query, "content_type": c.headers.get("content-type", ""),
             "headers": sorted(h for h in c.headers if h.startswith("x-")), "fields": c.fields,
             "files": sorted(c.files), "body": c.body.decode(errors="replace") if c.path == "/api/v2/login" else "",
             "http_status": c.http_status, "status": (c.envelope or {}).get("status")}
            for c in captain.calls[since:]]


def deployments(captain: FakeCapRover) -> list[dict]:
    return [{"app": d.app, "version": d.version, "git_hash": d.git_hash, "ok": d.ok, "image": d.image,
             "source": d.source, "environment": d.environment, "log": d.log} for d in captain.deployments]


def main(cli: str, workdir: Path) -> None:
    repo, home = workdir / "repo", workdir / "home"
    home.mkdir(exist_ok=True)
    tar = workdir / "source.tar"
    report: dict[str, dict] = {}

    with FakeCapRover(password=PASSWORD, build_polls=2, port=80) as captain:
        captain.add_app("tasks", app_token=APP_TOKEN)

        start = len(captain.calls)
        report["tar_with_app_token"] = run(cli, ["deploy", "--caproverUrl", MACHINE, "--appToken", APP_TOKEN,
                                                 "--caproverApp", "tasks", "--tarFile", str(tar)], cwd=repo, home=home)
        captain.finish_builds()  # an app token cannot poll: the build ends here
        report["tar_with_app_token"]["calls"] = recorded(captain, start)

        start = len(captain.calls)
        report["branch_with_password"] = run(cli, ["deploy", "--caproverUrl", MACHINE, "--caproverPassword",
                                                   PASSWORD, "--caproverApp", "tasks", "--branch", "main"],
                                             cwd=repo, home=home)
        report["branch_with_password"]["calls"] = recorded(captain, start)

        start = len(captain.calls)
        report["image_with_password"] = run(cli, ["deploy", "--caproverUrl", MACHINE, "--caproverPassword", PASSWORD,
                                                  "--caproverApp", "tasks", "--imageName", "nginx:1.27"],
                                            cwd=repo, home=home)
        report["image_with_password"]["calls"] = recorded(captain, start)
        report["deployments"] = {"tasks": deployments(captain)}
        report["versions"] = {"tasks": [v.as_json() for v in captain.apps["tasks"].versions]}

    with FakeCapRover(password=PASSWORD, build_polls=1, port=80, otp_token=OTP) as captain:
        captain.add_app("tasks")
        start = len(captain.calls)
        report["tar_with_password_and_otp"] = run(
            cli, ["deploy", "--caproverUrl", MACHINE, "--caproverPassword", PASSWORD, "--caproverApp", "tasks",
                  "--tarFile", str(tar)], cwd=repo, home=home, env={"CAPROVER_OTP_TOKEN": OTP})
        report["tar_with_password_and_otp"]["calls"] = recorded(captain, start)

    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
