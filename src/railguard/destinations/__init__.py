"""Off-host copies: destinations chosen by URL scheme (file://, s3://, rclone:), optional age
encryption, and one module per job on them: ``replicate`` copies what a destination is missing
and verifies it there, ``prune`` applies retention there, ``remote`` reads a copy back (verify,
restore, drill). ``configured`` opens an app's destinations by name, ``history`` owns
``destinations.log``.

The backends and :mod:`base` are imported with the package, so that any way of opening a
destination finds every URL scheme registered. The jobs' names are imported on first use (PEP
562, :mod:`railguard.lazy`): ``railguard status`` reads ``destinations.log`` through
:mod:`history` and needs neither retention (prune) nor the copy and read-back jobs. The function
``replicate`` is imported from its module (``railguard.destinations.replicate``), whose name it
shares: a package attribute of that name is the module once anything has imported it, so the
package does not offer the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from railguard import lazy
from railguard.destinations import file, rclone, s3  # noqa: F401  (each registers its URL scheme)
# ("X as X": exported, since neither ruff nor mypy can read the computed __all__)
from railguard.destinations.base import CopyVerifyFailed as CopyVerifyFailed
from railguard.destinations.base import Destination as Destination
from railguard.destinations.base import DestinationError as DestinationError
from railguard.destinations.base import ObjectStore as ObjectStore
from railguard.destinations.base import RemoteBackup as RemoteBackup
from railguard.destinations.base import RemoteBackupNotFound as RemoteBackupNotFound

_EXPORTS = {
    "DestinationNotFound": "configured", "open_destination": "configured", "DestinationPrune": "prune",
    "prune_destinations": "prune", "fetch_backup": "remote", "fetched_for_restore": "remote",
    "verify_remote": "remote", "DestinationRun": "replicate",
}

__all__ = sorted([*_EXPORTS, "CopyVerifyFailed", "Destination", "DestinationError", "ObjectStore", "RemoteBackup",
                  "RemoteBackupNotFound"])

if TYPE_CHECKING:  # the same names for mypy, which would otherwise see each as Any
    # ("X as X": exported, since mypy cannot read the computed __all__)
    from railguard.destinations.configured import DestinationNotFound as DestinationNotFound
    from railguard.destinations.configured import open_destination as open_destination
    from railguard.destinations.prune import DestinationPrune as DestinationPrune
    from railguard.destinations.prune import prune_destinations as prune_destinations
    from railguard.destinations.remote import fetch_backup as fetch_backup
    from railguard.destinations.remote import fetched_for_restore as fetched_for_restore
    from railguard.destinations.remote import verify_remote as verify_remote
    from railguard.destinations.replicate import DestinationRun as DestinationRun

__getattr__ = lazy.exports(__name__, _EXPORTS)
