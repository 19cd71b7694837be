"""Writing line protocol to InfluxDB: bounded gzip batches, retries, classified failures.

Batches go through ``influxdb-client``'s write service as raw line-protocol bytes, compressed
here with gzip level 1 (the client's own gzip uses level 9, which compresses five times more
slowly for a few percent of size; line protocol shrinks about 30 times either way) and sent
with seconds precision. A sender thread compresses and sends while the engine parses the
next batch; the queue between them holds two batches, so memory stays bounded.

Temporary failures (unreachable server, timeouts, 429, 5xx) are retried by the client's
``WritesRetry`` (exponential backoff, ``Retry-After`` honoured up to the longest backoff).
When retries are exhausted, or on any other failure, the file's writing stops with a
``WriteError`` whose ``kind`` tells the caller what to do with the file.
"""

from __future__ import annotations

import gzip
import logging
import queue
import threading
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from influxdb_client import InfluxDBClient
from influxdb_client.client.write.retry import WritesRetry
from influxdb_client.service.write_service import WriteService

from core.influx_admin import (
    CLIENT_ERRORS,
    CONFIGURATION,
    TEMPORARY,
    InfluxAdminError,
    classify_error,
    describe_error,
    ensure_bucket,
    find_org_id,
)
from core.settings import Settings

log = logging.getLogger("powerview.influx")

DATA = "data"
_QUEUE_DEPTH = 2
_GZIP_LEVEL = 1


class WriteError(RuntimeError):
    """Writing failed; ``kind`` is ``temporary``, ``configuration`` or ``data``."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class _RequestRetry(WritesRetry):
    """WritesRetry whose time budget starts with each request, not with the client.

    The library computes the ``max_retry_time`` deadline once, when the retry object is
    made; passed to a client that lives for a whole sweep, the budget would run out after
    a few minutes and a later failure would not be retried at all. A ``Retry-After`` longer
    than the longest backoff is cut to it, so one answer cannot stall a sweep for an hour.
    """

    def increment(self, *args: Any, **kwargs: Any) -> WritesRetry:
        if not self.history:
            self.retry_timeout = datetime.now() + timedelta(seconds=self.max_retry_time)
        return super().increment(*args, **kwargs)

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)
        if retry_after is None:
            return None
        return min(retry_after, self.max_retry_delay)


def _write_error(error: BaseException, url: str, doing: str) -> WriteError:
    """Classify a failed write for the file lifecycle."""
    status = getattr(error, "status", None)
    message = f"{doing}: {describe_error(error, url)}"
    if status == 400:
        return WriteError(message, DATA)
    if status in (404, 413):
        # 404: the bucket vanished or the token cannot see it; 413: INFLUXDB_BATCH_SIZE is
        # too large for the server. Neither is solved by retrying the same file.
        return WriteError(message, CONFIGURATION)
    kind = classify_error(error)
    return WriteError(message, kind if kind in (TEMPORARY, CONFIGURATION) else TEMPORARY)


class InfluxWriter:
    """One connection to InfluxDB for a whole run: buckets checked once, files written."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.influxdb_url
        self.org = settings["INFLUXDB_ORG"]
        self.retention_s = settings["INFLUXDB_BUCKET_RETENTION"]
        timeout_s = settings["INFLUXDB_TIMEOUT_S"]
        interval_s = settings["INFLUXDB_RETRY_INTERVAL_MS"] / 1000
        max_retries = settings["INFLUXDB_MAX_RETRIES"]
        max_delay_s = interval_s * 2 ** max(max_retries, 1)
        retry = _RequestRetry(
            total=max_retries,
            retry_interval=interval_s,
            max_retry_delay=max_delay_s,
            max_retry_time=max_delay_s * (max_retries + 1) + timeout_s * (max_retries + 1),
            exponential_base=2,
            allowed_methods=frozenset({"POST"}),
            raise_on_status=True,
        )
        self.client = InfluxDBClient(
            url=self.url,
            token=settings["INFLUXDB_ADMIN_TOKEN"],
            org=self.org,
            timeout=int(timeout_s * 1000) if timeout_s else None,
            retries=retry if max_retries else False,
        )
        self._admin = InfluxDBClient(
            url=self.url,
            token=settings["INFLUXDB_ADMIN_TOKEN"],
            org=self.org,
            timeout=int(timeout_s * 1000) if timeout_s else None,
            retries=False,
        )
        self._service = WriteService(self.client.api_client)
        self._org_id: str | None = None
        self._buckets: dict[str, str] = {}

    def close(self) -> None:
        self.client.close()
        self._admin.close()

    def __enter__(self) -> InfluxWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- set-up -------------------------------------------------------------------------
    def check(self) -> None:
        """Reach the server and find the org, before any file is touched."""
        try:
            self._org_id = find_org_id(self._admin, self.org)
        except InfluxAdminError as error:
            kind = error.kind if error.kind != "other" else CONFIGURATION
            raise WriteError(str(error), kind) from error

    def ensure_bucket(self, name: str) -> str:
        """The bucket's ID, created when missing; looked up once per run."""
        bucket_id = self._buckets.get(name)
        if bucket_id is None:
            if self._org_id is None:
                self.check()
            try:
                bucket_id = ensure_bucket(self._admin, self._org_id, name, self.retention_s)  # type: ignore[arg-type]
            except InfluxAdminError as error:
                kind = error.kind if error.kind != "other" else CONFIGURATION
                raise WriteError(str(error), kind) from error
            self._buckets[name] = bucket_id
        return bucket_id

    # -- writing ------------------------------------------------------------------------
    def write_now(self, bucket: str, body: bytes, precision: str = "s") -> None:
        """Send one batch and wait for the answer (retries included)."""
        compressed = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
        try:
            self._service.post_write(
                org=self.org,
                bucket=bucket,
                body=compressed,
                precision=precision,
                content_encoding="gzip",
                content_type="text/plain; charset=utf-8",
            )
        except CLIENT_ERRORS as error:
            raise _write_error(error, self.url, f"writing to bucket {bucket!r}") from error

    def file_writer(self, bucket: str) -> FileWriter:
        """A writer for one file's batches into ``bucket`` (which must exist)."""
        return FileWriter(self, bucket)

    def query_count(self, flux: str) -> int:
        """The single number a counting Flux query returns (0 when no table comes back)."""
        try:
            tables = self._admin.query_api().query(flux, org=self.org)
        except CLIENT_ERRORS as error:
            raise _write_error(error, self.url, "reading back the points") from error
        return int(sum(record.get_value() or 0 for table in tables for record in table.records))


class FileWriter:
    """Sends one file's batches from a background thread, in order.

    ``submit`` blocks while two batches are waiting, and raises as soon as a previous batch
    failed (the caller stops reading the file); ``finish`` waits for the last batch.
    """

    def __init__(self, writer: InfluxWriter, bucket: str) -> None:
        self._writer = writer
        self._bucket = bucket
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: WriteError | None = None
        self.points_written = 0
        self._thread = threading.Thread(target=self._send_all, name="influx-sender", daemon=True)
        self._thread.start()

    def _send_all(self) -> None:
        while (body := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write_now(self._bucket, body)
                    self.points_written += body.count(b"\n")
                except WriteError as error:
                    self._error = error
                except Exception as error:  # reported to the reading thread
                    self._error = WriteError(f"unexpected failure while writing: {error!r}", DATA)

    def submit(self, body: bytes) -> None:
        if self._error is not None:
            self.finish()
        self._queue.put(body)

    def finish(self) -> None:
        """Wait until every submitted batch is written; raise the first failure."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop after the batch in flight (the file failed for another reason)."""
        if self._thread.is_alive():
            self._error = self._error or WriteError("abandoned", DATA)
            self._queue.put(None)
            self._thread.join()
