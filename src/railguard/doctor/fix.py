"""``railguard doctor --fix``: the repairs that cannot change what the app does.

Only four, each a pure text edit computed first and shown as a unified diff: remove the
tail that makes a HEALTHCHECK always succeed, remove a lone ``sleep`` line from the start
script, write or complete ``.dockerignore``, and declare + re-export the build arg
``CAPROVER_GIT_COMMIT_SHA`` in the final stage (placed before its HEALTHCHECK/CMD/ENTRYPOINT,
because an ARG's changing value invalidates the build cache of every RUN after it). Everything
else needs a person's judgement.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from railguard.doctor.findings import Finding
from railguard.doctor.repo import DOCKERIGNORE, DeployFiles
from railguard.doctor.rules import COMMIT_BUILD_ARG, MUST_IGNORE, SWALLOWING_TAIL, is_ignored, parse_dockerignore
from railguard.durable import write_bytes_atomic

DOCKERIGNORE_HEADER = "# Keep the build context (and the image) free of history, dependencies, data and backups.\n"


@dataclass(frozen=True)
class FileEdit:
    name: str
    before: str | None  #: None when the file is created
    after: str

    def diff(self) -> str:
        before = (self.before or "").splitlines(keepends=True)
        after = self.after.splitlines(keepends=True)
        lines = difflib.unified_diff(before, after, fromfile="/dev/null" if self.before is None else f"a/{self.name}",
                                     tofile=f"b/{self.name}")
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def plan_fixes(files: DeployFiles, findings: list[Finding]) -> list[FileEdit]:
    """The edits for the fixable findings; nothing is written."""
    texts: dict[str, str] = {}
    originals: dict[str, str | None] = {}

    def current(name: str, original: str | None) -> str:
        if name not in texts:
            originals[name] = original
            texts[name] = original or ""
        return texts[name]

    # Bottom-up, so that deleting a line does not move the lines still to be edited.
    for found in sorted(findings, key=lambda f: -(f.line or 0)):
        if not found.fixable:
            continue
        if found.rule == "healthcheck-cannot-fail" and files.dockerfile_file and files.dockerfile:
            health = files.dockerfile.healthcheck()
            assert health is not None  # the rule found this HEALTHCHECK in the same parse
            text = current(files.dockerfile_file.name, files.dockerfile_file.text)
            texts[files.dockerfile_file.name] = _remove_tail(text, health.instruction.end_line)
        elif found.rule == "start-sleep" and files.start_script and found.line:
            text = current(files.start_script.name, files.start_script.text)
            texts[files.start_script.name] = _edit_line(text, found.line, lambda line: None)
        elif found.rule == "commit-not-in-image" and files.dockerfile_file and files.dockerfile:
            text = current(files.dockerfile_file.name, files.dockerfile_file.text)
            texts[files.dockerfile_file.name] = _export_commit(text, files)
        elif found.rule in ("dockerignore-missing", "dockerignore-weak"):
            original = files.dockerignore.text if files.dockerignore else None
            text = current(DOCKERIGNORE, original)
            patterns = parse_dockerignore(text)
            missing = [path for path in MUST_IGNORE if not is_ignored(patterns, path)]
            if missing:
                prefix = text if text.endswith("\n") or not text else text + "\n"
                texts[DOCKERIGNORE] = (prefix or DOCKERIGNORE_HEADER) + "".join(f"{path}\n" for path in missing)
    return [FileEdit(name, originals[name], after) for name, after in texts.items() if after != originals[name]]


COMMIT_LINES = (f"# CapRover passes the deployed commit only as a build arg; ENV keeps it for the app (and the\n"
                f"# smoke check). Last, so that a new commit does not rebuild the layers above.\n"
                f"ARG {COMMIT_BUILD_ARG}\n"
                f"ENV {COMMIT_BUILD_ARG}=${{{COMMIT_BUILD_ARG}}}\n")


def _export_commit(text: str, files: DeployFiles) -> str:
    """Insert ARG + ENV of the commit before the final stage's HEALTHCHECK, CMD or ENTRYPOINT
    (or at the end); an ARG that is already there keeps its place, only the ENV is added."""
    assert files.dockerfile is not None
    stage = files.dockerfile.final_stage
    declared = any(i.value.split("=", 1)[0].split()[0:1] == [COMMIT_BUILD_ARG] for i in files.dockerfile.all("ARG"))
    block = COMMIT_LINES if not declared else f"ENV {COMMIT_BUILD_ARG}=${{{COMMIT_BUILD_ARG}}}\n"
    tail = [i for i in stage if i.keyword in ("HEALTHCHECK", "CMD", "ENTRYPOINT")]
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    at = (tail[0].line - 1) if tail else len(lines)
    # Keep a comment block that introduces the HEALTHCHECK/CMD above it.
    while tail and at > 0 and lines[at - 1].lstrip().startswith("#"):
        at -= 1
    return "".join(lines[:at] + [block] + (["\n"] if tail else []) + lines[at:])


def _remove_tail(text: str, number: int) -> str:
    """Remove ``|| exit 0`` (or the like) from line ``number``; a line left empty goes, with the
    continuation backslash before it (Docker would otherwise join the next instruction)."""
    lines = text.splitlines(keepends=True)
    body = lines[number - 1].rstrip("\r\n")
    changed = SWALLOWING_TAIL.sub("", body)
    if changed.strip():
        return _edit_line(text, number, lambda line: changed)
    text = _edit_line(text, number, lambda line: None)
    return _edit_line(text, number - 1, lambda line: line.rstrip().removesuffix("\\").rstrip())


def _edit_line(text: str, number: int, change: Callable[[str], str | None]) -> str:
    """Apply ``change`` to line ``number`` (1-based), keeping its line ending; None deletes it."""
    lines = text.splitlines(keepends=True)
    line = lines[number - 1]
    body = line.rstrip("\r\n")
    ending = line[len(body):]
    changed = change(body)
    lines[number - 1] = "" if changed is None else changed + ending
    return "".join(lines)


def apply_edits(root: Path, edits: list[FileEdit]) -> None:
    """Write each edited file atomically, keeping its permissions (a start script stays executable).

    The mode is given to the temporary file through its descriptor before the rename
    (:func:`~railguard.durable.write_bytes_atomic`), never set afterwards through the path: by
    then the name can be a link someone swapped in (the repository may be another user's), and
    a chmod would follow it.
    """
    for edit in edits:
        path = root / edit.name
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        write_bytes_atomic(path, edit.after.encode("utf-8"), mode=mode)
