"""The deploy files of a repository, read once, defensively: what the rules look at.

Reading never raises for a bad file: an unreadable or binary file becomes a finding
(``file-unreadable``) and the rules that need it are skipped.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railguard.doctor import dockerfile as dockerfile_module
from railguard.doctor import shell
from railguard.doctor.findings import Finding, Severity
from railguard.errors import NotFound

CAPTAIN_DEFINITION = "captain-definition"
DOCKERIGNORE = ".dockerignore"
#: Where a start script is looked for when CMD/ENTRYPOINT names none that exists.
START_SCRIPT_NAMES = ("startup.sh", "start.sh", "entrypoint.sh", "docker-entrypoint.sh")
#: The plan's database, when neither railguard.toml nor the Dockerfile names one.
DEFAULT_DATABASE = "/app/data/tasks.db"
DATABASE_ENV_NAMES = ("DB_PATH", "DATABASE_PATH", "SQLITE_PATH", "DATABASE_FILE")
MAX_FILE_SIZE = 1024 * 1024


class DirectoryNotFound(NotFound):
    pass


@dataclass
class TextFile:
    name: str  #: relative to the repository
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass
class DeployFiles:
    root: Path
    problems: list[Finding] = field(default_factory=list)
    captain_definition: TextFile | None = None
    #: The parsed captain-definition when it is a JSON object (validity is a rule's business).
    captain: dict[str, Any] | None = None
    dockerfile_file: TextFile | None = None
    dockerfile: dockerfile_module.Dockerfile | None = None
    #: Where the Dockerfile came from when it is not a file (captain-definition dockerfileLines).
    dockerfile_origin: str | None = None
    start_script: TextFile | None = None
    dockerignore: TextFile | None = None
    railguard_toml: TextFile | None = None

    def read(self, name: str, *, report: bool = True) -> TextFile | None:
        """The file as text, None when absent; unreadable or binary files add a finding
        (unless ``report`` is false: the app's own source files are not deploy files)."""
        path = self.root / name
        if not path.exists() and not path.is_symlink():
            return None
        try:
            if not path.is_file():
                raise IsADirectoryError(f"{name} is not a regular file")
            if path.stat().st_size > MAX_FILE_SIZE:
                raise ValueError(f"larger than {MAX_FILE_SIZE // 1024} KiB: not a deploy file")
            data = path.read_bytes()
            if b"\0" in data:
                raise ValueError("binary content (NUL bytes)")
            text = data.decode("utf-8")
        except (OSError, ValueError) as exc:
            if not report:
                return None
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, UnicodeDecodeError):
                reason = f"not UTF-8 text (byte {exc.start})"
            self.problems.append(Finding(name, None, "file-unreadable", Severity.ERROR,
                                         f"cannot read {name}: {reason}",
                                         f"Make {name} a readable UTF-8 text file, or remove it"))
            return None
        return TextFile(name, text.removeprefix("\ufeff"))


def load(directory: str | Path) -> DeployFiles:
    root = Path(directory)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DirectoryNotFound(f"directory {root} {what}",
                                hint="Give the repository's root directory: railguard doctor PATH")
    files = DeployFiles(root=root)
    files.captain_definition = files.read(CAPTAIN_DEFINITION)
    if files.captain_definition is not None:
        try:
            document = json.loads(files.captain_definition.text)
        except ValueError:
            document = None
        files.captain = document if isinstance(document, dict) else None
    _load_dockerfile(files)
    files.dockerignore = files.read(DOCKERIGNORE)
    files.railguard_toml = files.read("railguard.toml")
    files.start_script = _find_start_script(files)
    return files


def _load_dockerfile(files: DeployFiles) -> None:
    captain = files.captain or {}
    lines = captain.get("dockerfileLines")
    if isinstance(lines, list) and all(isinstance(line, str) for line in lines):
        files.dockerfile_origin = f"{CAPTAIN_DEFINITION} (dockerfileLines)"
        files.dockerfile = dockerfile_module.parse("\n".join(lines) + "\n")
        return
    if "imageName" in captain or "templateId" in captain:
        return  # a prebuilt image: no Dockerfile in this repository
    path = captain.get("dockerfilePath")
    name = str(Path(path.lstrip("/") if isinstance(path, str) else "Dockerfile"))  # "./Dockerfile" -> "Dockerfile"
    files.dockerfile_file = files.read(name)
    if files.dockerfile_file is not None:
        files.dockerfile = dockerfile_module.parse(files.dockerfile_file.text)


def start_command(files: DeployFiles) -> list[str]:
    """The words of ENTRYPOINT + CMD of the final stage (exec form, or shell form split)."""
    if files.dockerfile is None:
        return []
    words: list[str] = []
    for keyword in ("ENTRYPOINT", "CMD"):
        instruction = files.dockerfile.last(keyword)
        if instruction is None:
            continue
        argv = instruction.exec_form
        if argv is None:
            try:
                argv = shell.tokens(instruction.value)
            except shell.ShellSyntaxError:
                argv = instruction.value.split()
        words.extend(argv)
    return words


def _find_start_script(files: DeployFiles) -> TextFile | None:
    for word in start_command(files):
        if not word.endswith(".sh"):
            continue
        for candidate in _repo_candidates(files, word):
            found = files.read(candidate)
            if found is not None:
                return found
    if start_command(files):
        return None  # the image starts something else: no script to check
    for name in START_SCRIPT_NAMES:
        found = files.read(name)
        if found is not None:
            return found
    return None


def _repo_candidates(files: DeployFiles, container_path: str) -> list[str]:
    """Repository paths that may be the script the image runs at ``container_path``:
    the source of a COPY/ADD that puts it there, else the same relative path or basename."""
    candidates: list[str] = []
    basename = container_path.rsplit("/", 1)[-1]
    for instruction in (files.dockerfile.all("COPY") + files.dockerfile.all("ADD")) if files.dockerfile else []:
        sources = [word for word in instruction.value.split() if not word.startswith("--")][:-1]
        for source in sources:
            if source.rsplit("/", 1)[-1] == basename:
                candidates.append(source.removeprefix("./"))
    candidates += [container_path.removeprefix("./").lstrip("/"), basename]
    return [c for c in dict.fromkeys(candidates) if ".." not in Path(c).parts and c]


def database_path(files: DeployFiles) -> tuple[str, str]:
    """The database file inside the container, and where that came from."""
    if files.railguard_toml is not None:
        try:
            document = tomllib.loads(files.railguard_toml.text)
            apps = document.get("apps", {})
            for app in apps.values() if isinstance(apps, dict) else []:
                if isinstance(app, dict) and isinstance(app.get("database"), str):
                    return app["database"], "railguard.toml"
        except tomllib.TOMLDecodeError:
            pass
    if files.dockerfile is not None:
        env = files.dockerfile.env()
        for name in DATABASE_ENV_NAMES:
            if env.get(name, "").startswith("/"):
                return env[name], f"ENV {name}"
    return DEFAULT_DATABASE, "the plan's default"
