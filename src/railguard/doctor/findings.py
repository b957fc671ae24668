"""What a check reports: one finding per problem, with where, which rule, how bad, and the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.Enum):
    #: The deploy is unsafe as it stands (a healthcheck that cannot fail, an invalid captain-definition).
    ERROR = "error"
    #: Costs downtime or data under some conditions; fix when you can.
    WARNING = "warning"
    #: Worth knowing; the plan may keep it on purpose (debugging tools in the image).
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    file: str  #: relative to the checked directory
    line: int | None  #: 1-based; None when the finding is about a whole (or missing) file
    rule: str  #: a rule id from railguard.doctor.rules.RULES
    severity: Severity
    message: str
    hint: str
    #: True when ``railguard doctor --fix`` repairs it.
    fixable: bool = False

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "rule": self.rule, "severity": self.severity.value,
                "message": self.message, "hint": self.hint, "fixable": self.fixable}
