"""Writing line protocol to InfluxDB: bounded gzip batches, retries, classified failures.

Batches go through ``influxdb-client``'s write service as raw line-protocol bytes, compressed
here with gzip level 1 (the client's own gzip uses level 9, which compresses five times more
slowly for a few percent of size; line protocol shrinks about 30 times either way) and sent
with seconds precision. A sender process compresses and sends while the engine parses the
next batch; at most four batches are in flight, so memory stays bounded.

Temporary failures (unreachable server, timeouts, 429, 5xx) are retried by the client's
``WritesRetry`` (exponential backoff, ``Retry-After`` honoured up to the longest backoff).
When retries are exhausted, or on any other failure, the file's writing stops with a
``WriteError`` whose ``kind`` tells the caller what to do with the file.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import multiprocessing
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
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
        self._settings = settings
        self._sender: BatchSender | None = None
        self._org_id: str | None = None
        self._buckets: dict[str, str] = {}

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
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
    def write_now(self, bucket: str, body: bytes | memoryview, precision: str = "s") -> None:
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
        if self._sender is None:
            self._sender = BatchSender(self._settings)
        return FileWriter(self._sender, bucket)

    def query_count(self, flux: str) -> int:
        """The single number a counting Flux query returns (0 when no table comes back)."""
        try:
            tables = self._admin.query_api().query(flux, org=self.org)
        except CLIENT_ERRORS as error:
            raise _write_error(error, self.url, "reading back the points") from error
        return int(sum(record.get_value() or 0 for table in tables for record in table.records))


class FileWriter:
    """One file's batches, sent in order by the writer's sender process.

    ``submit`` raises as soon as an earlier batch of the file failed (the caller stops
    reading the file); ``finish`` waits for the file's last batch and raises its failure.
    """

    def __init__(self, sender: BatchSender, bucket: str) -> None:
        self._sender = sender
        self.bucket = bucket
        self.error: WriteError | None = None
        self.points_written = 0

    def submit(self, body: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._sender.send(self, body)

    def finish(self) -> None:
        self._sender.drain()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Wait for the batches already handed over (the file failed for another reason)."""
        self._sender.drain()


class BatchSender:
    """Compresses and sends batches from a child process, on the machine's other core.

    In one process, a sender thread loses most of its time waiting for the GIL, which the
    parsing thread holds: gzip and HTTP and parsing took turns instead of overlapping (about
    0.9 M values/s end to end, against 1.6 M here). The child has its own client, with the
    same settings and retries. Batches travel through shared memory (a few slots of 8 MB;
    a larger batch goes through the pipe), and each batch is acknowledged in order, so the
    parent knows which file a failure belongs to and how many points each file wrote.
    """

    SLOTS = 4
    SLOT_BYTES = 8 << 20

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("fork")
        try:
            self._memory: SharedMemory | None = SharedMemory(
                create=True, size=self.SLOTS * self.SLOT_BYTES
            )
        except OSError:  # no /dev/shm: batches go through the pipe
            self._memory = None
        self._conn, child_end = context.Pipe()
        # Forked, the child inherits the mapping of the shared memory itself.
        self._process = context.Process(
            target=_sender_main,
            args=(child_end, self._memory, settings),
            name="powerview-sender",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self._free = list(range(self.SLOTS))
        self._in_flight: dict[int, tuple[FileWriter, int]] = {}
        self._broken: WriteError | None = None

    def send(self, file: FileWriter, body: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        while not self._free:
            self._collect()
        slot = self._free.pop()
        inline: bytes | None = body
        if self._memory is not None and len(body) <= self.SLOT_BYTES:
            offset = slot * self.SLOT_BYTES
            self._memory.buf[offset : offset + len(body)] = body
            inline = None
        self._in_flight[slot] = (file, body.count(b"\n"))
        try:
            self._conn.send((slot, len(body), file.bucket, inline))
        except OSError as error:
            self._fail(f"the sender process is gone ({error})")
            raise self._broken from error  # type: ignore[misc]

    def drain(self) -> None:
        while self._in_flight:
            self._collect()

    def _collect(self) -> None:
        try:
            slot, kind, message = self._conn.recv()
        except (EOFError, OSError) as error:
            self._fail(f"the sender process ended unexpectedly ({error!r})")
            return
        file, points = self._in_flight.pop(slot)
        self._free.append(slot)
        if kind is None:
            file.points_written += points
        elif file.error is None:
            file.error = WriteError(message, kind)

    def _fail(self, message: str) -> None:
        self._broken = WriteError(message, TEMPORARY)
        for file, _ in self._in_flight.values():
            file.error = file.error or self._broken
        self._in_flight.clear()
        self._free = list(range(self.SLOTS))

    def close(self) -> None:
        if self._broken is None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._conn.close()
        if self._memory is not None:
            self._memory.close()
            self._memory.unlink()


def _sender_main(conn: Connection, memory: SharedMemory | None, settings: Settings) -> None:
    """The sender process: one message in, one write, one acknowledgement out, in order."""
    writer = InfluxWriter(settings)
    try:
        while (message := conn.recv()) is not None:
            slot, length, bucket, inline = message
            if inline is None:
                offset = slot * BatchSender.SLOT_BYTES
                body: bytes | memoryview = memory.buf[offset : offset + length]  # type: ignore[union-attr]
            else:
                body = inline
            try:
                writer.write_now(bucket, body)
                conn.send((slot, None, None))
            except WriteError as error:
                conn.send((slot, error.kind, str(error)))
            finally:
                if isinstance(body, memoryview):
                    body.release()
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        writer.close()
