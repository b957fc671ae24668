"""The pure choice of a rollback target, on one fixed history (newest first, like the file)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from railguard.deploy.actions import NothingToRollBackTo, choose_rollback_target
from railguard.deploy.deployer import AppVersion, AppVersions
from railguard.deploy.state import DeployRecord

A, B, C = "a" * 40, "b" * 40, "c" * 40
T = datetime(2026, 11, 27, tzinfo=timezone.utc)


def record(id_, git_hash, *, kind="deploy", result="accepted", image=None, version=None, rolled_back_from=None):
    return DeployRecord(id=id_, app="tasks", caprover_app="tasks", kind=kind, ref=None, git_hash=git_hash, tag=None,
                        image=image, version=version, started_at=T, finished_at=T, result=result, detail=None,
                        rolled_back_from=rolled_back_from)


@pytest.mark.parametrize(("history", "to", "expected"), [
    # The deploy before the current one, rebuilt from git when no image is known.
    ([record(2, B), record(1, A)], None, (None, A)),
    # Its recorded image when there is one.
    ([record(2, B, image="img-captain-tasks:1"), record(1, A, image="img-captain-tasks:0")], None,
     ("img-captain-tasks:0", A)),
    # Failed and pending deploys never ran: skipped.
    ([record(3, C, result="failed"), record(2, B), record(1, A, result="pending"), record(0, C)], None, (None, C)),
    # Redeploying the same commit twice does not make it its own predecessor.
    ([record(3, B), record(2, B), record(1, A)], None, (None, A)),
    # After rolling back from B to A, B is not a target again.
    ([record(4, A, kind="rollback", rolled_back_from=B), record(3, C), record(2, B), record(1, A)], None, (None, C)),
    # A version number with its image in railguard's history.
    ([record(2, B, image="img-captain-tasks:17", version=17), record(1, A)], "17", ("img-captain-tasks:17", B)),
    # A SHA prefix finds the recorded deploy and its image.
    ([record(2, B), record(1, A, image="img-captain-tasks:3", version=3)], "aaaaaaa", ("img-captain-tasks:3", A)),
    # A SHA never deployed is rebuilt from git.
    ([record(1, A)], "1234567abc", (None, "1234567abc")),
])
def test_rollback_target_from_railguards_history(history, to, expected):
    target = choose_rollback_target(to, caprover_app="tasks", history=history, versions=None)
    assert (target.image, target.git_hash) == expected


def test_with_capRovers_versions_the_newest_older_built_version_wins():
    versions = AppVersions(deployed_version=4, versions=[
        AppVersion(2, "img-captain-tasks:2", A, None), AppVersion(3, None, C, None),
        AppVersion(4, "img-captain-tasks:4", B, None)])
    target = choose_rollback_target(None, caprover_app="tasks", history=[], versions=versions)
    assert (target.image, target.git_hash, target.current) == ("img-captain-tasks:2", A, B)


@pytest.mark.parametrize(("history", "to"), [([], None), ([record(1, A)], None),
                                             ([record(2, A, kind="rollback", rolled_back_from=B), record(1, B)], None)])
def test_nothing_to_roll_back_to_is_not_found(history, to):
    with pytest.raises(NothingToRollBackTo):
        choose_rollback_target(to, caprover_app="tasks", history=history, versions=None)


def test_a_version_railguard_never_saw_is_not_guessed_into_an_image_name():
    # With a push registry the image is <registry>/<prefix>/img-captain-<app>:<n> (DockerRegistryHelper.ts):
    # only CapRover's version list knows it.
    with pytest.raises(NothingToRollBackTo) as caught:
        choose_rollback_target("17", caprover_app="tasks", history=[record(1, A)], versions=None)
    assert caught.value.message == ("railguard has no image recorded for version 17 of tasks, and an app token "
                                    "cannot read CapRover's version list")
    assert 'deploy.mode = "login"' in caught.value.hint
