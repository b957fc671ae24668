"""Deploy files for a runtime (bun, node, python), following the plan:

- ``ARG CAPROVER_GIT_COMMIT_SHA`` re-exported with ``ENV`` in the (only) stage: CapRover hands
  the deployed commit to the build as that build arg and to nothing else, and the smoke check
  after a deploy needs the app to report it;
- a strict ``HEALTHCHECK`` that needs no extra tool in the image: a ``bun -e`` / ``node -e``
  fetch one-liner, or railguard's probe copied into the image for Python; each exits 0 only
  for a 200 from ``/health``, 1 for anything else (never 2), does not follow redirects and
  gives up after 5 s, before Docker's ``--timeout``;
- ``startup.sh`` that ``exec``s the app, with no sleep;
- ``.dockerignore`` keeping history, dependencies, data and backups out of the build;
- ``captain-definition`` (schemaVersion 2);
- a starter ``railguard.toml`` with the plan's defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from railguard.init.files import PlannedFile

PROBE_FILE = "probe.py"

#: One line of JavaScript, the same for bun and node (both have fetch and AbortSignal.timeout).
#: redirect:"manual" so a 3xx is reported, not followed; any error or non-200 exits 1.
JS_CHECK = ("fetch(\"http://127.0.0.1:\"+(process.env.PORT||{port})+\"{path}\",{{redirect:\"manual\","
            "signal:AbortSignal.timeout(5000)}}).then(r=>{{console.log(r.status);process.exit(r.status===200?0:1)}},"
            "e=>{{console.log(String(e));process.exit(1)}})")


@dataclass(frozen=True)
class RuntimeOptions:
    runtime: str
    #: The app's start command (exec'd by startup.sh); None picks the runtime's usual one.
    command: str | None = None
    port: int = 3000
    database: str = "/app/data/tasks.db"
    app_name: str = "tasks"
    health_path: str = "/health"
    #: None picks the runtime's official image.
    base_image: str | None = None


@dataclass(frozen=True)
class Runtime:
    name: str
    base_image: str
    default_command: str
    install: str  #: the Dockerfile lines that install dependencies

    def healthcheck(self, options: RuntimeOptions) -> str:
        if self.name == "python":
            return (f'python3 -I -S /app/{PROBE_FILE} --timeout 5 "http://127.0.0.1:${{PORT}}{options.health_path}"')
        script = JS_CHECK.format(port=options.port, path=options.health_path)
        # Shell form: single quotes keep the script literal for /bin/sh.
        return f"{self.name} -e '{script}'"


RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in [
    Runtime("bun", "oven/bun:1", "bun run index.ts",
            "COPY package.json bun.lock* bun.lockb* ./\nRUN bun install --frozen-lockfile --production\n"),
    Runtime("node", "node:20-bookworm-slim", "node index.js",
            "COPY package.json package-lock.json* ./\nRUN npm ci --omit=dev\n"),
    # No `COPY requirements.txt* ./`: a wildcard that matches nothing fails the build, and a
    # small Python app may have no requirements at all.
    Runtime("python", "python:3.11-slim-bookworm", "python3 app.py", ""),
]}


def runtime_files(options: RuntimeOptions) -> list[PlannedFile]:
    runtime = RUNTIMES[options.runtime]
    files = [
        PlannedFile("Dockerfile", dockerfile(runtime, options)),
        PlannedFile("startup.sh", startup_script(options.command or runtime.default_command), executable=True),
        PlannedFile(".dockerignore", DOCKERIGNORE),
        PlannedFile("captain-definition", json.dumps({"schemaVersion": 2, "dockerfilePath": "./Dockerfile"},
                                                     indent=2) + "\n"),
        PlannedFile("railguard.toml", railguard_toml(options)),
    ]
    if runtime.name == "python":
        # The probe is one standard-library file: copied in, the image needs no pip install for it.
        files.append(PlannedFile(PROBE_FILE, (Path(__file__).parent.parent / "probe.py").read_text()))
    return files


def dockerfile(runtime: Runtime, options: RuntimeOptions) -> str:
    data_dir = options.database.rsplit("/", 1)[0] or "/"
    return f"""\
# Written by `railguard init --runtime {runtime.name}`; `railguard doctor` checks it.
FROM {options.base_image or runtime.base_image}
WORKDIR /app
{runtime.install}COPY . .
RUN chmod 0755 startup.sh && mkdir -p {data_dir}{_PIP if runtime.name == "python" else ""}

# The app reads PORT from the environment; this is only the default.
ENV PORT={options.port} \\
    DB_PATH={options.database}
# The database lives on a volume: in CapRover, a persistent directory at {data_dir}.
VOLUME {data_dir}
EXPOSE {options.port}

# CapRover passes the deployed commit only as this build arg; ENV keeps it for the app, which
# reports it (GET /version) so that `railguard smoke` can check the deploy. Last, so that a new
# commit does not rebuild the layers above.
ARG CAPROVER_GIT_COMMIT_SHA
ENV CAPROVER_GIT_COMMIT_SHA=${{CAPROVER_GIT_COMMIT_SHA}}

# Strict: exit 1 unless {options.health_path} answers exactly 200; no `|| exit 0`. The check gives up
# after 5 s, before Docker's --timeout, so the reason lands in `docker inspect`.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \\
    CMD {runtime.healthcheck(options)}

CMD ["./startup.sh"]
"""


_PIP = " \\\n    && if [ -f requirements.txt ]; then pip install --no-cache-dir -r requirements.txt; fi"


def startup_script(command: str) -> str:
    return f"""\
#!/bin/sh
# exec: the app replaces this shell, so SIGTERM from `docker stop` reaches it and it can finish
# its writes. No sleep: the HEALTHCHECK start period covers a slow start.
set -eu
exec {command}
"""


DOCKERIGNORE = """\
# Keep the build context (and the image) free of history, dependencies, data and backups.
.git
.gitignore
node_modules
data
backups
*.db
*.db-wal
*.db-shm
*.sqlite3
*.sqlite3.*
.env
.env.*
__pycache__
*.pyc
"""


def railguard_toml(options: RuntimeOptions) -> str:
    data_dir = options.database.rsplit("/", 1)[0] or "/"
    return f"""\
# railguard's settings for this app (docs/configuration.md). Every key has a default; these
# are the plan's: a daily verified backup next to the database, 7 daily + 4 weekly kept.
timezone = "UTC"

[apps.{options.app_name}]
database = "{options.database}"
url = "http://127.0.0.1:{options.port}"

[apps.{options.app_name}.backup]
directory = "{data_dir}/backups"
method = "backup-api"
compression = "zstd"
check = "integrity"

[apps.{options.app_name}.retention]
keep_daily = 7
keep_weekly = 4
"""
