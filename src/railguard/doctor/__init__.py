"""``railguard doctor``: static checks of a repository's deploy files (Dockerfile,
HEALTHCHECK, start script, .dockerignore, captain-definition), each finding with its file
and line, rule, severity, message and fix hint; and the safe fixes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from railguard.doctor.findings import Finding, Severity
from railguard.doctor.fix import FileEdit, apply_edits, plan_fixes
from railguard.doctor.repo import DirectoryNotFound, load
from railguard.doctor.rules import RULES, run_checks

__all__ = ["RULES", "DirectoryNotFound", "DoctorReport", "FileEdit", "Finding", "Severity", "diagnose"]


@dataclass
class DoctorReport:
    directory: Path
    findings: list[Finding]
    #: The edits --fix made (empty without --fix).
    edits: list[FileEdit] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)


def diagnose(directory: str | Path, *, fix: bool = False) -> DoctorReport:
    """Check the deploy files in ``directory``; with ``fix``, apply the safe fixes and
    report what is left."""
    root = Path(directory)
    files = load(root)
    findings = run_checks(files)
    if not fix:
        return DoctorReport(root, findings)
    edits = plan_fixes(files, findings)
    apply_edits(root, edits)
    return DoctorReport(root, run_checks(load(root)) if edits else findings, edits)
