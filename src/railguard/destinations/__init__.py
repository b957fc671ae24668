"""Off-host copies: destinations chosen by URL scheme (file://, s3://, rclone:), optional age
encryption, and one module per job on them: ``replicate`` copies what a destination is missing
and verifies it there, ``prune`` applies retention there, ``remote`` reads a copy back (verify,
restore, drill). ``configured`` opens an app's destinations by name, ``history`` owns
``destinations.log``."""

from railguard.destinations import file, rclone, s3  # noqa: F401  (each registers its URL scheme)
from railguard.destinations.base import (
    CopyVerifyFailed, Destination, DestinationError, ObjectStore, RemoteBackup, RemoteBackupNotFound,
)
from railguard.destinations.configured import DestinationNotFound, open_destination
from railguard.destinations.prune import DestinationPrune, prune_destinations
from railguard.destinations.remote import fetch_backup, fetched_for_restore, verify_remote
from railguard.destinations.replicate import DestinationRun, replicate

__all__ = [
    "CopyVerifyFailed",
    "Destination",
    "DestinationError",
    "DestinationNotFound",
    "DestinationPrune",
    "DestinationRun",
    "fetch_backup",
    "fetched_for_restore",
    "ObjectStore",
    "RemoteBackup",
    "RemoteBackupNotFound",
    "open_destination",
    "prune_destinations",
    "replicate",
    "verify_remote",
]
