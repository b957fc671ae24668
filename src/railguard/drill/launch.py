"""What to run for a drill, as a value: the command or ``docker run`` line, its environment and
working directory, with the placeholders filled in. Pure: nothing here starts a process.

Placeholders: ``{db}`` (the copy of the database), ``{dir}`` (the directory holding it: the
app's data directory), ``{port}`` (a free port on 127.0.0.1), and the caller's own (the deploy
rehearsal's ``{tree}``, the candidate commit's extracted tree). In Docker mode ``{db}`` and
``{dir}`` name the paths inside the container. Other braces are left alone, so an argument such
as ``python3 -c "print({1: 2})"`` passes through unchanged, and so is a placeholder the caller
did not give (``{tree}`` in a drill).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from railguard.config import DrillSettings
from railguard.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{(db|dir|port|tree)\}")


class DrillNotConfigured(ConfigError):
    pass


class DrillTouchesProduction(ConfigError):
    pass


@dataclass(frozen=True)
class LaunchPlan:
    mode: str  # command | docker
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    #: Docker mode: the container's name, so it can be stopped and removed.
    container: str | None = None
    #: The copy's paths as the app sees them.
    app_db: str = ""
    app_dir: str = ""
    #: Environment shown in reports: only the names railguard set (values may be anything).
    shown_env: list[str] = field(default_factory=list)


def expand(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def plan_launch(drill: DrillSettings, *, app_name: str, copy: Path, port: int, production_db: Path,
                environ: Mapping[str, str] = os.environ, uid: int | None = None, gid: int | None = None,
                docker: str = "docker", container: str | None = None,
                placeholders: Mapping[str, str] | None = None, cwd: str | None = None) -> LaunchPlan:
    """The plan for starting the app on ``copy`` (a file in its own fresh directory).

    ``placeholders`` adds values (``tree``); ``cwd`` (command mode) replaces the drill's
    ``workdir`` and its default, the drill's temporary directory."""
    if not drill.command and not drill.image:
        raise DrillNotConfigured(
            f"app {app_name} has no drill command or image",
            hint=f"Add [apps.{app_name}.drill] with command = [\"bun\", \"run\", \"index.ts\"] or image = "
                 "\"NAME\" (docs/drill.md)")
    if drill.image:
        inside_dir = str(PurePosixPath(drill.data_dir))
        values = {"db": str(PurePosixPath(inside_dir) / copy.name), "dir": inside_dir, "port": str(port)}
    else:
        values = {"db": str(copy), "dir": str(copy.parent), "port": str(port)}
    values = {**(placeholders or {}), **values}
    env = {"PORT": str(port)}
    env.update({key: expand(value, values) for key, value in drill.env.items()})
    shown = sorted(env)
    if drill.image:
        name = container or f"railguard-drill-{app_name}-{port}"
        user = drill.docker_user
        if user == "current":
            user = f"{os.getuid() if uid is None else uid}:{os.getgid() if gid is None else gid}"
        argv = [docker, "run", "--rm", "--name", name, "--label", f"railguard.drill={app_name}",
                "--network", "host", "--volume", f"{copy.parent}:{values['dir']}"]
        if user:
            argv += ["--user", user]
        if drill.workdir:
            argv += ["--workdir", expand(drill.workdir, values)]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        argv.append(drill.image)
        argv += [expand(part, values) for part in drill.command]
        # The environment here is the docker client's (DOCKER_HOST, DOCKER_CONFIG, ...), not the
        # app's: the container gets only the --env pairs above.
        plan = LaunchPlan("docker", argv, dict(environ), None, name, values["db"], values["dir"], shown)
    else:
        argv = [expand(part, values) for part in drill.command]
        if cwd is None:
            cwd = expand(drill.workdir, values) if drill.workdir else str(copy.parent.parent)
        plan = LaunchPlan("command", argv, {**_inherited(drill, environ), **env}, cwd, None, values["db"],
                          values["dir"], shown)
        # Only command mode can reach the host's files: in Docker mode the one host path is the
        # mount of the copy, and container paths (/app/data) are not the host's.
        refuse_production_paths(plan, production_db, app_name)
    return plan


def _inherited(drill: DrillSettings, environ: Mapping[str, str]) -> dict[str, str]:
    return {name: environ[name] for name in drill.inherit_env if name in environ}


def refuse_production_paths(plan: LaunchPlan, production_db: Path, app_name: str) -> None:
    """The drill runs on a copy: a command, variable or working directory that names the
    production database or its directory would let the drilled app write to production."""
    database = str(production_db)
    directory = str(production_db.parent).rstrip("/") or "/"
    checked = [("command", part) for part in plan.argv] + [(f"env {k}", v) for k, v in plan.env.items()
                                                           if k in plan.shown_env]
    if plan.cwd is not None:
        checked.append(("workdir", plan.cwd))
    for where, value in checked:
        names_database = database in value
        names_directory = directory != "/" and (value.rstrip("/") == directory or f"{directory}/" in value
                                                or value.endswith(f"={directory}"))
        if names_database or names_directory:
            raise DrillTouchesProduction(
                f"drill {where} names the production {'database' if names_database else 'data directory'} "
                f"({database if names_database else directory}): the drill must only touch its copy",
                hint=f"Use the placeholders {{db}} and {{dir}} in [apps.{app_name}.drill] instead")
