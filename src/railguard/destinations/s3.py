"""``s3://bucket/prefix``: AWS S3 and S3-compatible stores (MinIO, Garage, R2, B2), via boto3.

Credentials come only from boto3's standard chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and ``~/.aws``, instance roles), never from
railguard.toml. Uploads are multipart in fixed-size parts read from the file as they are sent,
so memory stays flat; an object exists under its key only once ``CompleteMultipartUpload``
succeeds, and s3transfer aborts the upload when any part fails, so a half upload is never
visible. botocore's "standard" retry mode retries only what can pass (timeouts, dropped
connections, 5xx, throttling) with exponential backoff and jitter.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from railguard.config import DestinationSettings
from railguard.destinations.base import (
    DestinationError, ListedStore, ObjectInfo, RemoteBackupNotFound, register,
)
from railguard.errors import ConfigError

if TYPE_CHECKING:  # the stubs of the test extra (types-boto3[s3]); boto3 itself is imported where it is used
    from botocore.response import StreamingBody
    from types_boto3_s3 import S3Client

#: Part size and parallel parts. s3transfer holds each part of a stream in memory while it is
#: sent, up to ``max_in_memory_upload_chunks`` of them (default 10: 160 MiB at 16 MiB parts), so
#: that limit is set too: memory in flight stays near PART_SIZE x (CONCURRENCY + 1).
PART_SIZE = 8 * 1024 * 1024
CONCURRENCY = 4

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
                     "InvalidToken", "403", "Forbidden", "InvalidClientTokenId", "AuthorizationHeaderMalformed"}


@register("s3://")
def open_s3_store(name: str, settings: DestinationSettings, env: Mapping[str, str],
                  redact: Callable[[str], str]) -> S3Store:
    parts = urlsplit(settings.url)
    if "@" in parts.netloc:
        raise ConfigError(f"destination {name}: credentials do not belong in the URL",
                          hint="Remove them; export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE instead")
    if not parts.netloc:
        raise ConfigError(f"destination {name}: {redact(settings.url)} names no bucket",
                          hint="Write it as s3://BUCKET/PREFIX")
    # boto3 reads its credential chain from the process environment itself.
    return S3Store(name, settings, parts.netloc, parts.path.strip("/"), redact)


class S3Store(ListedStore):
    def __init__(self, name: str, settings: DestinationSettings, bucket: str, prefix: str,
                 redact: Callable[[str], str]) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError
        except ImportError:
            raise ConfigError(f"destination {name}: s3:// needs boto3, which is not installed",
                              hint="Install it: pip install 'railguard[s3]'") from None
        self.name, self.bucket, self.prefix, self.redact = name, bucket, prefix, redact
        self.endpoint = settings.endpoint_url or "AWS S3"
        timeout = settings.timeout.total_seconds()
        config = Config(
            region_name=settings.region,
            s3={"addressing_style": settings.addressing_style},
            retries={"mode": "standard", "total_max_attempts": settings.attempts},
            connect_timeout=timeout, read_timeout=timeout,
            # boto3 >= 1.36 adds CRC checksums to every upload by default, which several
            # S3-compatible stores reject; railguard reads each copy back and checks sha256 itself.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        # A session per store: boto3's default session is process-wide state.
        try:
            session = boto3.session.Session()
            self.client: S3Client = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
        except (BotoCoreError, ValueError) as exc:  # unknown AWS_PROFILE, malformed endpoint_url
            raise ConfigError(redact(f"destination {name}: {exc}"),
                              hint="Check AWS_PROFILE and endpoint_url for this destination") from None
        self.transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                       max_concurrency=CONCURRENCY, use_threads=True)
        # s3transfer's own setting, which boto3's constructor does not take.
        self.transfer.max_in_memory_upload_chunks = CONCURRENCY + 1

    def child(self, path: str) -> S3Store:
        """The store of the keys under ``PREFIX/path/`` (``tasks.pages/packs``): same client, same bucket."""
        child = object.__new__(S3Store)
        child.__dict__.update(self.__dict__)
        child.prefix = f"{self.prefix}/{path}" if self.prefix else path
        return child

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def upload(self, key: str, source: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        try:
            self.client.upload_fileobj(source, self.bucket, self._key(key), Config=self.transfer,
                                       Callback=None if progress is None else _Forward(progress))
        except BaseException as exc:
            self._abort_leftovers(key)
            if isinstance(exc, Exception):
                raise self._explain(exc, f"upload {key}") from None
            raise

    def _abort_leftovers(self, key: str) -> None:
        """s3transfer aborts a failed multipart upload; this catches one it could not abort
        (invisible, but its parts are billed until aborted)."""
        with contextlib.suppress(Exception):
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self._key(key))
            for upload in listing.get("Uploads", []):
                if upload["Key"] == self._key(key):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])

    @contextlib.contextmanager
    def download(self, key: str) -> Iterator[BinaryIO]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            raise self._explain(exc, f"read {key}") from None
        try:
            yield _Body(body, self)  # type: ignore[misc]  # read() is all a download's reader is asked for
        finally:
            body.close()

    def listing(self) -> list[ObjectInfo]:
        # An unfinished multipart upload is invisible (and aborted); the temporaries listed here are
        # the staged objects of a replacement killed before it removed them (Destination.put_backup).
        prefix = f"{self.prefix}/" if self.prefix else ""
        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(prefix):]
                    if key and "/" not in key:
                        found.append(ObjectInfo(key, item["Size"], item.get("LastModified")))
        except Exception as exc:
            raise self._explain(exc, "list") from None
        return found


    def remove(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            error = self._explain(exc, f"delete {key}")
            if not isinstance(error, RemoteBackupNotFound):
                raise error from None

    def _explain(self, exc: BaseException, action: str) -> DestinationError | RemoteBackupNotFound:
        """One line saying what failed and what to do, with every secret scrubbed."""
        from botocore import exceptions as boto

        where = f"destination {self.name} (s3://{self.bucket}/{self.prefix} at {self.endpoint})"
        if isinstance(exc, DestinationError | RemoteBackupNotFound):
            return exc
        if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
            return DestinationError(self.redact(f"{where}: no AWS credentials found"),
                                    hint="Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
        if isinstance(exc, boto.ConnectTimeoutError | boto.ReadTimeoutError):
            return DestinationError(self.redact(f"{where}: {action} timed out"),
                                    hint="Check the endpoint and the network, or raise timeout for this destination")
        if isinstance(exc, boto.EndpointConnectionError | boto.ConnectionClosedError):
            underlying = f"{exc} {getattr(exc, 'kwargs', {}).get('error', '')}".lower()
            reason = "connection refused" if "refused" in underlying else "cannot connect"
            return DestinationError(self.redact(f"{where}: {action} failed: {reason}"),
                                    hint="Check endpoint_url and that the store is up")
        if isinstance(exc, boto.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return DestinationError(self.redact(f"{where}: bucket {self.bucket} does not exist"),
                                        hint="Create the bucket, or fix the URL")
            if code in ("NoSuchKey", "404") or (status == 404 and action.startswith(("read", "delete"))):
                return RemoteBackupNotFound(self.redact(f"{where}: {action.split(' ', 1)[-1]} does not exist"))
            if code in _CREDENTIAL_CODES or status == 403:
                return DestinationError(self.redact(f"{where}: the store rejected the credentials ({code})"),
                                        hint="Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
                                             "and the key's permissions on the bucket")
            return DestinationError(self.redact(f"{where}: {action} failed: {code or status} "
                                                f"{error.get('Message', '')}".rstrip()))
        if isinstance(exc, boto.BotoCoreError | OSError):
            return DestinationError(self.redact(f"{where}: {action} failed: {exc}"))
        return DestinationError(self.redact(f"{where}: {action} failed: {type(exc).__name__}: {exc}"))


class _Body:
    """The object's stream, turning a dropped connection mid-read into a one-line error."""

    def __init__(self, body: StreamingBody, store: S3Store) -> None:
        self.body, self.store = body, store

    def read(self, n: int = -1) -> bytes:
        try:
            return self.body.read(n if n >= 0 else None)
        except Exception as exc:
            raise self.store._explain(exc, "read") from None

    def readable(self) -> bool:
        return True


class _Forward:
    """s3transfer's ``Callback``: called from its worker threads with the bytes each part sent,
    and with a negative amount when a retried request rewinds its part (s3transfer/utils.py:
    ``ReadFileChunk.seek`` "rewind[s] the callback() for an accurate progress report", and
    ``invoke_progress_callbacks``: "a negative amount which comes from retrying"). Forwarded
    is only what goes past the most bytes sent so far, one thread at a time, so the count
    never goes back and a part sent twice counts once.
    """

    def __init__(self, progress: Callable[[int], None]) -> None:
        self.progress = progress
        self.lock = threading.Lock()
        self.sent = 0
        self.best = 0

    def __call__(self, bytes_transferred: int) -> None:
        with self.lock:
            self.sent += bytes_transferred
            if self.sent > self.best:
                self.progress(self.sent - self.best)
                self.best = self.sent
