"""Off-host copies: destinations chosen by URL scheme (file://, s3://, rclone:), optional age
encryption, and replication that copies what a destination is missing and verifies it there."""

from railguard.destinations import file, rclone, s3  # noqa: F401  (each registers its URL scheme)
from railguard.destinations.base import (
    CopyVerifyFailed, Destination, DestinationError, ObjectStore, RemoteBackup, RemoteBackupNotFound,
)
from railguard.destinations.remote import fetch_backup, fetched_for_restore, verify_remote
from railguard.destinations.replicate import DestinationRun, open_destination, prune_destinations, replicate

__all__ = [
    "CopyVerifyFailed",
    "Destination",
    "DestinationError",
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
