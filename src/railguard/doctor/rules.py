"""The rules: each a pure function of the deploy files, returning findings.

Every rule id is listed in :data:`RULES` (severity, one-line summary, whether ``--fix``
repairs it); docs/doctor.md tables them and a test keeps the two in step.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from railguard.doctor import shell
from railguard.doctor.dockerfile import Healthcheck, parse_exec_form
from railguard.doctor.findings import Finding, Severity
from railguard.doctor.repo import CAPTAIN_DEFINITION, DOCKERIGNORE, DeployFiles, database_path


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    fixable: bool = False


RULES: dict[str, Rule] = {rule.id: rule for rule in [
    Rule("file-unreadable", Severity.ERROR, "a deploy file cannot be read, or is binary"),
    Rule("dockerfile-missing", Severity.ERROR, "no Dockerfile, and captain-definition names no image to deploy"),
    Rule("healthcheck-missing", Severity.ERROR, "the image has no HEALTHCHECK (or HEALTHCHECK NONE)"),
    Rule("healthcheck-cannot-fail", Severity.ERROR,
         "the HEALTHCHECK ends in `|| exit 0`, `|| true` or `; exit 0`: always healthy", fixable=True),
    Rule("healthcheck-ignores-status", Severity.ERROR,
         "curl without -f/--fail, or a fetch whose exit status is thrown away: a 503 passes"),
    Rule("healthcheck-port-only", Severity.WARNING, "the HEALTHCHECK only checks that a TCP port is open"),
    Rule("start-sleep", Severity.WARNING, "the start script sleeps before starting the app", fixable=True),
    Rule("start-no-exec", Severity.ERROR,
         "the start script (or a shell-form CMD) does not `exec` the app: SIGTERM never reaches it"),
    Rule("dockerignore-missing", Severity.WARNING, "no .dockerignore: .git, data and backups go into the build",
         fixable=True),
    Rule("dockerignore-weak", Severity.WARNING, ".dockerignore lets node_modules, .git, data or backups through",
         fixable=True),
    Rule("debug-tools-in-image", Severity.INFO, "curl or netcat installed in the image (the plan keeps sqlite3)"),
    Rule("port-hard-coded", Severity.WARNING, "a fixed port where the app should read PORT from the environment"),
    Rule("captain-definition-missing", Severity.INFO, "no captain-definition (CapRover then needs a Dockerfile)"),
    Rule("captain-definition-invalid", Severity.ERROR,
         "captain-definition is not JSON, not schemaVersion 2, or not exactly one build source"),
    Rule("database-not-on-volume", Severity.WARNING, "the database directory is not declared as a VOLUME"),
    Rule("commit-not-in-image", Severity.ERROR,
         "the smoke check expects the deployed commit, but the final stage does not re-export the build arg "
         "CAPROVER_GIT_COMMIT_SHA with ARG + ENV", fixable=True),
]}

#: CapRover passes the deployed commit to the image build only as this build arg (ImageMaker.ts
#: ensureImage → DockerApi.ts buildImageFromDockerFile ``buildargs``), never to the container.
COMMIT_BUILD_ARG = "CAPROVER_GIT_COMMIT_SHA"

Check = Callable[[DeployFiles], Iterable[Finding]]
CHECKS: list[Check] = []


def check(function: Check) -> Check:
    CHECKS.append(function)
    return function


def finding(rule: str, file: str, line: int | None, message: str, hint: str, *, fixable: bool | None = None) -> Finding:
    spec = RULES[rule]
    return Finding(file, line, rule, spec.severity, message, hint,
                   spec.fixable if fixable is None else fixable)


def run_checks(files: DeployFiles) -> list[Finding]:
    findings = list(files.problems)
    for function in CHECKS:
        findings.extend(function(files))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return sorted(findings, key=lambda f: (order[f.severity], f.file, f.line or 0, f.rule))


def _dockerfile_name(files: DeployFiles) -> str:
    if files.dockerfile_origin:
        return files.dockerfile_origin
    return files.dockerfile_file.name if files.dockerfile_file else "Dockerfile"


def _line(files: DeployFiles, line: int) -> int | None:
    # Lines of dockerfileLines are not lines of a file a user can open.
    return None if files.dockerfile_origin else line


# --- captain-definition ---------------------------------------------------------------

BUILD_SOURCES = ("templateId", "imageName", "dockerfilePath", "dockerfileLines")


@check
def captain_definition(files: DeployFiles) -> Iterator[Finding]:
    source = files.captain_definition
    if source is None:
        if not any(p.rule == "file-unreadable" and p.file == CAPTAIN_DEFINITION for p in files.problems):
            yield finding("captain-definition-missing", CAPTAIN_DEFINITION, None,
                          "no captain-definition; CapRover falls back to ./Dockerfile",
                          'Add captain-definition: {"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}')
        return
    try:
        document = json.loads(source.text)
    except json.JSONDecodeError as exc:
        yield finding("captain-definition-invalid", source.name, exc.lineno,
                      f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                      "Fix the JSON (no trailing commas or comments); check it with: python3 -m json.tool "
                      "captain-definition")
        return
    if not isinstance(document, dict):
        yield finding("captain-definition-invalid", source.name, 1, "the top level must be a JSON object",
                      '{"schemaVersion": 2, "dockerfilePath": "./Dockerfile"}')
        return
    if document.get("schemaVersion") != 2:
        yield finding("captain-definition-invalid", source.name, _json_key_line(source.text, "schemaVersion"),
                      f"schemaVersion must be 2, got {json.dumps(document.get('schemaVersion'))}",
                      'Set "schemaVersion": 2 (the only version CapRover accepts)')
    present = [key for key in BUILD_SOURCES if key in document]
    if len(present) != 1:
        yield finding("captain-definition-invalid", source.name, 1,
                      f"needs exactly one of {', '.join(BUILD_SOURCES)}; found "
                      f"{', '.join(present) if present else 'none'}",
                      'Usually: "dockerfilePath": "./Dockerfile"')
    path = document.get("dockerfilePath")
    if "dockerfilePath" in document:
        if not isinstance(path, str) or not path.strip():
            yield finding("captain-definition-invalid", source.name, _json_key_line(source.text, "dockerfilePath"),
                          "dockerfilePath must be a non-empty string", '"dockerfilePath": "./Dockerfile"')
        elif not (files.root / path.lstrip("/")).is_file():
            yield finding("captain-definition-invalid", source.name, _json_key_line(source.text, "dockerfilePath"),
                          f"dockerfilePath {path!r} does not exist (paths are relative to the project root)",
                          "Point dockerfilePath at the Dockerfile, e.g. ./Dockerfile")
    lines = document.get("dockerfileLines")
    if "dockerfileLines" in document and not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
        yield finding("captain-definition-invalid", source.name, _json_key_line(source.text, "dockerfileLines"),
                      "dockerfileLines must be a list of strings", '"dockerfileLines": ["FROM ...", "..."]')


def _json_key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if f'"{key}"' in line:
            return number
    return 1


# --- Dockerfile and HEALTHCHECK ---------------------------------------------------------

@check
def dockerfile_present(files: DeployFiles) -> Iterator[Finding]:
    if files.dockerfile is not None or any(p.rule == "file-unreadable" for p in files.problems):
        return
    captain = files.captain or {}
    if "imageName" in captain or "templateId" in captain:
        return
    yield finding("dockerfile-missing", "Dockerfile", None, "no Dockerfile to build the app from",
                  "Add a Dockerfile (railguard init --runtime bun|node|python --print shows one)")


@check
def healthcheck(files: DeployFiles) -> Iterator[Finding]:
    if files.dockerfile is None:
        return
    name = _dockerfile_name(files)
    health = files.dockerfile.healthcheck()
    init_hint = "Add a strict one: railguard init --runtime bun|node|python --print shows the line"
    if health is None:
        yield finding("healthcheck-missing", name, None,
                      "no HEALTHCHECK: Swarm routes traffic to a new container before it works and never "
                      "replaces one that stopped working", init_hint)
        return
    line = _line(files, health.instruction.line)
    if health.kind is None:
        yield finding("healthcheck-missing", name, line, "HEALTHCHECK NONE disables the health check", init_hint)
        return
    if not (health.argv if health.kind == "exec" else (health.shell or "").strip()):
        yield finding("healthcheck-missing", name, line, "HEALTHCHECK has no command to run (docker build refuses it)",
                      init_hint)
        return
    yield from _healthcheck_command(files, health, name, line)


#: The tail --fix removes from a HEALTHCHECK's last line.
SWALLOWING_TAIL = re.compile(r"\s*(\|\||;)\s*(exit\s+0|true|:)\s*$")
FETCHERS = {"curl", "wget"}
FAIL_FLAGS = {"-f", "--fail", "--fail-with-body"}
#: Commands whose exit status says nothing about what they were fed.
PASS_THROUGH = {"cat", "echo", "tee", "head", "tail", "true", ":", "printf", "sed", "awk", "tr"}


def _healthcheck_command(files: DeployFiles, health: Healthcheck, name: str, line: int | None) -> Iterator[Finding]:
    if health.kind == "exec":
        pipelines = [shell.Pipeline(commands=[health.argv or []])]
    else:
        try:
            pipelines = shell.and_or_list(health.shell or "")
        except shell.ShellSyntaxError as exc:
            yield finding("healthcheck-ignores-status", name, line, f"the HEALTHCHECK command does not parse: {exc}",
                          "Fix the quoting of the HEALTHCHECK command")
            return
    tail = shell.swallows_failure(pipelines)
    if tail:
        # Fixable only when the tail ends the instruction's last line, where --fix removes it.
        last_line = files.dockerfile_file.lines[health.instruction.end_line - 1] if files.dockerfile_file else ""
        yield finding("healthcheck-cannot-fail", name, line,
                      f"HEALTHCHECK ends in `{tail}`, so it always reports healthy: Docker never marks the "
                      "container unhealthy and Swarm keeps a broken app in service",
                      f"Remove `{tail}` (railguard doctor --fix does it)",
                      fixable=files.dockerfile_file is not None and SWALLOWING_TAIL.search(last_line) is not None)
        pipelines = pipelines[:-1]
    if not pipelines:
        return
    for pipeline in pipelines:
        for position, command in enumerate(pipeline.commands):
            program, args = shell.program(command)
            deciding = position == len(pipeline.commands) - 1
            if program == "curl" and deciding and not _curl_fails(args):
                yield finding("healthcheck-ignores-status", name, line,
                              "curl without -f/--fail exits 0 on any HTTP answer, a 503 included",
                              "Add --fail (curl -fsS URL), or use railguard probe / a bun -e fetch one-liner")
            elif program in FETCHERS and not deciding:
                next_program = shell.program(pipeline.commands[-1])[0]
                if next_program in PASS_THROUGH:
                    yield finding("healthcheck-ignores-status", name, line,
                                  f"{program}'s exit status is thrown away: the pipeline returns {next_program}'s",
                                  f"Let {program} be the last command (curl -fsS URL), or use railguard probe")
            elif program in ("nc", "netcat", "ncat") and deciding:
                yield finding("healthcheck-port-only", name, line,
                              f"{program} only checks that the port accepts connections, not that /health answers 200",
                              "Check /health itself: railguard probe http://127.0.0.1:${PORT}/health")
    # A fetch followed by `; other-command` is decided by the other command.
    deciding_pipeline = pipelines[-1]
    if deciding_pipeline.joined_by in (";", "&", "\n"):
        earlier = [p for p in pipelines[:-1] if any(shell.program(c)[0] in FETCHERS for c in p.commands)]
        if earlier and not any(shell.program(c)[0] in FETCHERS for c in deciding_pipeline.commands):
            yield finding("healthcheck-ignores-status", name, line,
                          "the fetch's exit status is thrown away: the command after `;` decides",
                          "Join the commands with && or end with the fetch")


def _curl_fails(args: list[str]) -> bool:
    for arg in args:
        if arg in FAIL_FLAGS:
            return True
        if arg.startswith("-") and not arg.startswith("--") and "f" in arg[1:]:
            return True  # combined short flags: -fsS, -sf
    return False


@check
def debug_tools(files: DeployFiles) -> Iterator[Finding]:
    if files.dockerfile is None:
        return
    health = files.dockerfile.healthcheck()
    check_text = " ".join(health.argv or []) if health and health.argv else (health.shell or "") if health else ""
    for instruction in files.dockerfile.all("RUN"):
        found = sorted(_installed_tools(instruction.value))
        if not found:
            continue
        used = [tool for tool in found if re.search(rf"\b{re.escape(tool)}\b", check_text)]
        note = f"; the HEALTHCHECK uses {', '.join(used)}, so replace the check first" if used else ""
        yield finding("debug-tools-in-image", _dockerfile_name(files), _line(files, instruction.line),
                      f"debugging tools in the image: {', '.join(found)} (larger image, more to patch){note}",
                      "Drop them after the pilot, as the plan says; sqlite3 can stay for inspecting the database")


_DEBUG_PACKAGES = {"curl": "curl", "netcat": "netcat", "netcat-openbsd": "netcat", "netcat-traditional": "netcat",
                   "ncat": "netcat", "nmap-ncat": "netcat", "busybox-extras": "netcat"}


def _installed_tools(run: str) -> set[str]:
    try:
        pipelines = shell.and_or_list(run)
    except shell.ShellSyntaxError:
        return set()
    tools = set()
    for pipeline in pipelines:
        for command in pipeline.commands:
            program, args = shell.program(command)
            if program in ("apt-get", "apt", "apk", "yum", "dnf", "microdnf") and \
                    any(a in ("install", "add") for a in args):
                tools |= {_DEBUG_PACKAGES[a] for a in args if a in _DEBUG_PACKAGES}
    return tools


@check
def database_volume(files: DeployFiles) -> Iterator[Finding]:
    if files.dockerfile is None or not files.dockerfile.instructions:
        return
    database, source = database_path(files)
    directory = database.rsplit("/", 1)[0] or "/"
    volumes: list[str] = []
    for instruction in files.dockerfile.all("VOLUME"):
        volumes += parse_exec_form(instruction.value) or instruction.value.split()
    covered = any(directory == v.rstrip("/") or directory.startswith(v.rstrip("/") + "/") for v in volumes)
    if not covered:
        yield finding("database-not-on-volume", _dockerfile_name(files), None,
                      f"the database directory {directory} ({source}) is not a VOLUME: unless CapRover has a "
                      "persistent directory there, every deploy starts with an empty database",
                      f"Add `VOLUME {directory}` and check the app's Persistent Directories in CapRover")


# --- start script and CMD ---------------------------------------------------------------

@check
def start_script(files: DeployFiles) -> Iterator[Finding]:
    script = files.start_script
    if script is not None:
        commands = [c for c in shell.script_commands(script.text) if not _is_setup(c)]
        if commands:
            *before, last = commands
            for command in before:
                if any(shell.program(c)[0] == "sleep" for p in command.pipelines for c in p.commands):
                    yield finding("start-sleep", script.name, command.line,
                                  f"`{command.text}` delays every start (and, for an app with a volume, every "
                                  "deploy is downtime for that long)",
                                  "Remove the sleep (railguard doctor --fix); the HEALTHCHECK start period "
                                  "covers slow starts", fixable=_is_lone_sleep(command))
            if any(shell.program(c)[0] == "sleep" for p in last.pipelines[:-1] for c in p.commands):
                yield finding("start-sleep", script.name, last.line,
                              f"`{last.text}` sleeps before the app starts",
                              "Remove the sleep; the HEALTHCHECK start period covers slow starts", fixable=False)
            if not _execs(last) and not _forwards_sigterm(shell.script_commands(script.text)):
                yield finding("start-no-exec", script.name, last.line,
                              f"`{last.text}` runs as a child of the shell: SIGTERM from docker stop never "
                              "reaches the app, which is killed 10 s later mid-write",
                              f"Start it with exec: `exec {last.text}`")
    if files.dockerfile is None:
        return
    cmd = files.dockerfile.last("CMD")
    if cmd is not None and cmd.exec_form is None and files.dockerfile.last("ENTRYPOINT") is None:
        try:
            pipelines = shell.and_or_list(cmd.value)
        except shell.ShellSyntaxError:
            pipelines = []
        if any(shell.program(c)[0] == "sleep" for p in pipelines[:-1] for c in p.commands):
            yield finding("start-sleep", _dockerfile_name(files), _line(files, cmd.line),
                          "the CMD sleeps before the app starts",
                          "Remove the sleep; the HEALTHCHECK start period covers slow starts", fixable=False)
        if len(pipelines) > 1 or any(len(p.commands) > 1 for p in pipelines):
            if not (pipelines and pipelines[-1].deciding[:1] == ["exec"]):
                yield finding("start-no-exec", _dockerfile_name(files), _line(files, cmd.line),
                              "shell-form CMD with several commands: /bin/sh stays PID 1 and does not pass "
                              "SIGTERM on",
                              'Move the commands into startup.sh ending in `exec ...`, and CMD ["./startup.sh"]')


def _is_setup(command: shell.ScriptCommand) -> bool:
    first = command.pipelines[0].commands[0][0] if command.pipelines and command.pipelines[0].commands else ""
    return first in ("set", "trap", "umask", "cd", "export", "unset", "shopt") and len(command.pipelines) == 1


def _forwards_sigterm(commands: list[shell.ScriptCommand]) -> bool:
    """``trap 'kill -TERM $child' TERM`` + ``wait``: the other correct way to pass signals on."""
    return any(c.text.startswith("trap ") and "TERM" in c.text and "kill" in c.text for c in commands)


def _is_lone_sleep(command: shell.ScriptCommand) -> bool:
    return (len(command.pipelines) == 1 and len(command.pipelines[0].commands) == 1
            and command.pipelines[0].commands[0][0] == "sleep" and command.line == command.end_line)


def _execs(command: shell.ScriptCommand) -> bool:
    deciding = command.pipelines[-1] if command.pipelines else None
    if deciding is None or len(deciding.commands) != 1:
        return False
    words = deciding.commands[0]
    while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier():
        words = words[1:]
    return bool(words) and words[0] == "exec"


# --- PORT -------------------------------------------------------------------------------

_PORT_FLAG = re.compile(r"^(--port|-p|--listen|--bind|-b)(=|$)")
_SOURCE_PORT = [
    re.compile(r"\bport\s*[:=]\s*(\d{2,5})\b", re.IGNORECASE),
    re.compile(r"\.listen\(\s*(\d{2,5})\b"),
]
SOURCE_ENTRY_SUFFIXES = (".ts", ".js", ".mjs", ".cjs", ".py")


@check
def port(files: DeployFiles) -> Iterator[Finding]:
    sources: list[tuple[str, int | None, list[str]]] = []
    if files.dockerfile is not None:
        for keyword in ("CMD", "ENTRYPOINT"):
            instruction = files.dockerfile.last(keyword)
            if instruction is not None:
                words = instruction.exec_form or _split(instruction.value)
                sources.append((_dockerfile_name(files), _line(files, instruction.line), words))
    if files.start_script is not None:
        for command in shell.script_commands(files.start_script.text):
            sources.append((files.start_script.name, command.line, _split(command.text)))
    entries: list[str] = []
    for name, line, words in sources:
        for index, word in enumerate(words):
            value = None
            flag = _PORT_FLAG.match(word)
            if flag:
                value = word.split("=", 1)[1] if flag.group(2) == "=" else (words[index + 1] if index + 1 < len(words)
                                                                            else None)
            elif re.fullmatch(r"PORT=\d+", word):  # `PORT=8080 cmd` and `export PORT=8080`
                value = word.split("=", 1)[1]
            if value is not None and value.isdigit():
                yield finding("port-hard-coded", name, line,
                              f"port {value} is fixed in the start command; CapRover and the HEALTHCHECK expect the "
                              "app to follow PORT", 'Use "${PORT}" (with a default in the Dockerfile: ENV PORT=3000)')
            if word.endswith(SOURCE_ENTRY_SUFFIXES) and not word.startswith("-"):
                entries.append(word.rsplit("/", 1)[-1] if "/" in word else word)
    for entry in dict.fromkeys(entries):
        source = files.read(entry, report=False)
        if source is None:
            continue
        for number, text in enumerate(source.lines, 1):
            if "PORT" in text or "env" in text.lower():
                continue
            for pattern in _SOURCE_PORT:
                match = pattern.search(text)
                if match:
                    yield finding("port-hard-coded", source.name, number,
                                  f"port {match.group(1)} is fixed in the code instead of read from PORT",
                                  "Read it from the environment: Number(process.env.PORT ?? 3000) / "
                                  "int(os.environ.get('PORT', '3000'))")
                    break


def _split(text: str) -> list[str]:
    try:
        return shell.tokens(text)
    except shell.ShellSyntaxError:
        return text.split()


# --- .dockerignore ----------------------------------------------------------------------

#: What must stay out of the build context (and so out of the image): history, installed
#: dependencies that the build installs itself, the live database and its backups.
MUST_IGNORE = ("node_modules", ".git", "data", "backups")


@check
def dockerignore(files: DeployFiles) -> Iterator[Finding]:
    if files.dockerfile is None and files.dockerfile_file is None:
        return
    if files.dockerignore is None:
        if any(p.file == DOCKERIGNORE for p in files.problems):
            return
        yield finding("dockerignore-missing", DOCKERIGNORE, None,
                      "no .dockerignore: the whole directory (.git, data, backups) is sent to the build and can "
                      "end up in the image", "Add one (railguard doctor --fix writes it)")
        return
    patterns = parse_dockerignore(files.dockerignore.text)
    missing = [path for path in MUST_IGNORE if not is_ignored(patterns, path)]
    if missing:
        yield finding("dockerignore-weak", DOCKERIGNORE, None,
                      f".dockerignore lets {', '.join(missing)} into the build context",
                      f"Add {', '.join(missing)} to .dockerignore (railguard doctor --fix does it)")


def parse_dockerignore(text: str) -> list[tuple[bool, str]]:
    """``(negated, pattern)`` pairs in file order, cleaned as Docker does."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:].strip() if negated else line
        line = line.strip("/").removeprefix("./")
        if line:
            patterns.append((negated, line))
    return patterns


def is_ignored(patterns: list[tuple[bool, str]], path: str) -> bool:
    """Docker's rule: the last pattern that matches wins; a directory's pattern covers its
    contents; ``**`` matches any number of directories."""
    ignored = False
    for negated, pattern in patterns:
        if _matches(pattern, path):
            ignored = not negated
    return ignored


def _matches(pattern: str, path: str) -> bool:
    candidates = [pattern]
    if pattern.startswith("**/"):
        candidates.append(pattern[3:])
    return any(fnmatch.fnmatchcase(path, c) or c in ("*", "**") for c in candidates)


# --- the deployed commit -------------------------------------------------------------------

@check
def commit_in_image(files: DeployFiles) -> Iterator[Finding]:
    if files.dockerfile is None or not files.dockerfile.instructions or not smoke_expects_commit(files):
        return
    declared = any(COMMIT_BUILD_ARG in _split(i.value)[0:1] or i.value.split("=", 1)[0].strip() == COMMIT_BUILD_ARG
                   for i in files.dockerfile.all("ARG"))
    exported = any(re.search(rf"\$\{{?{COMMIT_BUILD_ARG}\b", i.value) for i in files.dockerfile.all("ENV"))
    if declared and exported:
        return
    missing = "ENV" if declared else "ARG and ENV"
    yield finding("commit-not-in-image", _dockerfile_name(files), None,
                  f"CapRover passes the deployed commit only as the build arg {COMMIT_BUILD_ARG}, and the final "
                  f"stage lacks its {missing}: the running app reports commit `unknown`, so the smoke check after "
                  "every deploy fails",
                  f"Add to the final stage: `ARG {COMMIT_BUILD_ARG}` and `ENV {COMMIT_BUILD_ARG}="
                  f"${{{COMMIT_BUILD_ARG}}}` (railguard doctor --fix does it)",
                  fixable=files.dockerfile_file is not None and files.dockerfile_origin is None)


def smoke_expects_commit(files: DeployFiles) -> bool:
    """True when railguard.toml gives an app a ``url``: the smoke check then runs after each
    deploy and expects the deployed commit from ``/version`` or a ``*_build_info`` metric."""
    if files.railguard_toml is None:
        return False
    try:
        document = tomllib.loads(files.railguard_toml.text)
    except tomllib.TOMLDecodeError:
        return False
    apps = document.get("apps", {})
    return any(isinstance(app, dict) and app.get("url") for app in (apps.values() if isinstance(apps, dict) else []))
