"""The seam between railguard's deploy flows and the platform that runs the app.

A :class:`Deployer` ships an exact tree (a tar of one commit) or an existing image, and can
say which versions exist. CapRover is the one implementation today
(:class:`railguard.deploy.caprover.CapRoverDeployer`); the flows in
:mod:`railguard.deploy.actions` and :mod:`railguard.deploy.release` only see this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from railguard.errors import UsageError
from railguard.secrets import Secret


class VersionsUnavailable(UsageError):
    """The deployer cannot list versions in its current mode (an app token sees none)."""


@dataclass
class DeployOutcome:
    #: ``ok``: built and running (observed); ``accepted``: the platform started it and said no more.
    result: Literal["ok", "accepted"]
    version: int | None = None
    image: str | None = None
    log_tail: list[str] = field(default_factory=list)


@dataclass
class AppVersion:
    version: int
    #: None when the build of this version failed (nothing to roll back to).
    image: str | None
    git_hash: str | None
    time: str | None


@dataclass
class AppVersions:
    deployed_version: int | None
    versions: list[AppVersion]

    def get(self, version: int) -> AppVersion | None:
        return next((v for v in self.versions if v.version == version), None)


class Deployer(Protocol):
    app: str

    @property
    def observes_builds(self) -> bool:
        """True when deploys wait for the build and report its version and image."""

    def deploy_source(self, tar: bytes, git_hash: str) -> DeployOutcome:
        """Build and run the tree in ``tar`` (``git archive`` of ``git_hash``), recorded as that commit."""

    def deploy_image(self, image: str, git_hash: str | None) -> DeployOutcome:
        """Run an image built earlier (a rollback), recorded as ``git_hash`` when known."""

    def versions(self) -> AppVersions:
        """Every version the platform keeps; raises :class:`VersionsUnavailable` when it cannot tell."""

    def trigger_branch_build(self, branch: str, expected_commit: str, webhook_token: Secret) -> DeployOutcome:
        """The legacy flow: ask the platform to build ``branch`` from its own clone. It builds the
        branch head when it builds, which may be a later commit than ``expected_commit``."""
