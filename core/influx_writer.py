"""Writing line protocol to InfluxDB: bounded gzip batches, retries, classified failures.

The writer receives ``InfluxSettings`` only, and its clients come from
``core/influx_client.py``: one for the admin calls and queries (no retries), one for writes
(retried), each made once per process. Batches go through ``influxdb-client``'s write service
as raw line-protocol bytes, compressed here with gzip level 1 (the client's own gzip uses
level 9, which compresses five times more slowly for a few percent of size; line protocol
shrinks about 30 times either way) and sent with seconds precision. A sender process
compresses and sends while the engine parses the next batch; at most four batches are in
flight, so memory stays bounded.

Temporary failures (unreachable server, timeouts, 429, 5xx) are retried by the write client
(see ``core/influx_client.py``). When retries are exhausted, or on any other failure, the
file's writing stops with a ``WriteError`` whose ``kind`` (an ``ErrorKind``) tells the caller
what to do with the file:

======================================  =========================================================
answer of the server                    kind (what happens to the file)
======================================  =========================================================
400 (a line the server cannot parse)    ``data``: the file goes to ``error/`` with the message
413 (request too large: a proxy or a    ``data``: a property of that file's batches, the file is
server with a body limit)               set aside and the run goes on
422 (partial write: field type          ``data``: the other points are stored, the file goes to
conflict, points beyond retention)      ``error/`` with the server's message (not retried)
401, 403, 404 (bucket gone)             ``configuration``: the run stops, files stay
429, 5xx, unreachable, timeout          ``temporary``: retried, then left for the next sweep
======================================  =========================================================

No request ever carries more than ``INFLUXDB_BATCH_SIZE`` points: a batch of the engine that
holds more lines (one row with more channels than that) is split at line boundaries.

**The sender dies with its parent.** The batch sender is a forked child. It asks the kernel
for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``), closes every descriptor it
inherited but its own end of the pipe (the file claims' ``flock`` descriptors, the parent's end
of the pipe), and ends when the pipe reaches end of file. The shared-memory segment is
unlinked as soon as both processes have mapped it. A parser killed with SIGKILL therefore
leaves no process, no claim and no ``/dev/shm`` entry behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from types import TracebackType
from typing import Any

from influxdb_client.service.write_service import WriteService

from core.influx_admin import (
    InfluxAdminError,
    ensure_bucket,
    ensure_company_bucket,
    find_org_id,
)
from core.influx_client import CLIENT_ERRORS, classify_error, connect, describe_error
from core.outcomes import ErrorKind
from core.settings import InfluxSettings

log = logging.getLogger("powerview.influx")

_GZIP_LEVEL = 1
# Answers that belong to the file's content (see the module docstring).
_DATA_STATUSES = {400: "rejected_by_influxdb", 413: "request_too_large", 422: "partial_write"}


class WriteError(RuntimeError):
    """Writing failed; ``kind`` is ``ErrorKind.TEMPORARY``, ``CONFIGURATION`` or ``DATA``.

    ``code`` names a ``data`` failure for the file's ``.error.json`` (``partial_write``,
    ``request_too_large``, ``rejected_by_influxdb``, ``reserved_company_name``...).
    """

    def __init__(self, message: str, kind: ErrorKind, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (WriteError, (str(self), self.kind, self.code))


def _write_error(error: BaseException, url: str, doing: str) -> WriteError:
    """Classify a failed write for the file lifecycle."""
    status = getattr(error, "status", None)
    message = f"{doing}: {describe_error(error, url)}"
    if status in _DATA_STATUSES:
        return WriteError(message, ErrorKind.DATA, _DATA_STATUSES[status])
    if status == 404:
        # The bucket vanished or the token cannot see it: not solved by retrying the file.
        return WriteError(message, ErrorKind.CONFIGURATION)
    kind = classify_error(error)
    if kind == ErrorKind.CONFIGURATION:
        return WriteError(message, kind)
    return WriteError(message, ErrorKind.TEMPORARY)


def _admin_write_error(error: InfluxAdminError) -> WriteError:
    """An admin call's failure, for a writer: an answer it does not expect stops the run as a
    configuration problem would (retrying the file would meet it again)."""
    if error.kind == ErrorKind.USAGE:  # a company name refused: the file's own problem
        return WriteError(str(error), ErrorKind.DATA, error.code)
    if error.kind == ErrorKind.TEMPORARY:
        return WriteError(str(error), ErrorKind.TEMPORARY)
    return WriteError(str(error), ErrorKind.CONFIGURATION)


class _Poster:
    """Sends gzip batches through the write client (retried): the parent's inline files and
    the health check, or the sender process's batches."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.url = settings.url
        self.org = settings.org
        self.client = connect(settings, retry_writes=True)
        self._service = WriteService(self.client.api_client)

    def post(self, bucket: str, body: bytes | memoryview, precision: str = "s") -> None:
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

    def close(self) -> None:
        self.client.close()


class InfluxWriter:
    """One connection to InfluxDB for a whole run: buckets checked once, files written.

    ``admin`` is the client of the admin calls and queries (no retries): the health check
    reads the server's health through it.
    """

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self.url = settings.url
        self.org = settings.org
        self.retention_s = settings.bucket_retention_s
        self.meta_bucket = settings.meta_bucket
        self.batch_points = settings.batch_size
        self.admin = connect(settings)
        self._poster = _Poster(settings)
        self._sender: BatchSender | None = None
        self._org_id: str | None = None
        self._buckets: dict[str, str] = {}
        self._refused: dict[str, WriteError] = {}

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._poster.close()
        self.admin.close()

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
        self._org_id = self._find_org_id()

    def _find_org_id(self) -> str:
        try:
            return find_org_id(self.admin, self.org)
        except InfluxAdminError as error:
            raise _admin_write_error(error) from error

    def ensure_bucket(self, name: str) -> str:
        """The bucket's ID, created when missing; looked up once per run.

        A company name refused earlier in the run stays refused (its file's records must not
        create the bucket the file could not have); the meta bucket is always allowed.
        """
        refused = self._refused.get(name)
        if refused is not None and name != self.meta_bucket:
            raise refused
        return self._ensure(name, company=False)

    def ensure_company_bucket(self, name: str) -> str:
        """``ensure_bucket`` for a company folder, after the company-name rules.

        A reserved name or one that differs from an existing bucket only by case raises a
        ``WriteError`` of kind ``data`` (code ``reserved_company_name`` or
        ``company_case_conflict``): the file is set aside and nothing is created.
        """
        refused = self._refused.get(name)
        if refused is not None:
            raise refused
        return self._ensure(name, company=True)

    def _ensure(self, name: str, company: bool) -> str:
        bucket_id = self._buckets.get(name)
        if bucket_id is not None and (not company or name != self.meta_bucket):
            return bucket_id
        if self._org_id is None:
            self._org_id = self._find_org_id()
        org_id = self._org_id
        try:
            if company:
                bucket_id = ensure_company_bucket(
                    self.admin, org_id, name, self.retention_s, self.meta_bucket
                )
            else:
                bucket_id = ensure_bucket(self.admin, org_id, name, self.retention_s)
        except InfluxAdminError as error:
            failure = _admin_write_error(error)
            if failure.kind == ErrorKind.DATA:
                self._refused[name] = failure
            raise failure from error
        self._buckets[name] = bucket_id
        return bucket_id

    # -- writing ------------------------------------------------------------------------
    def write_now(self, bucket: str, body: bytes | memoryview, precision: str = "s") -> None:
        """Send one batch and wait for the answer (retries included)."""
        self._poster.post(bucket, body, precision)

    def file_writer(self, bucket: str) -> FileWriter:
        """A writer for one file's batches into ``bucket`` (which must exist)."""
        if self._sender is None:
            self._sender = BatchSender(self.settings)
        return FileWriter(self._sender, bucket, self.batch_points)

    def query_count(self, flux: str) -> int:
        """The single number a counting Flux query returns (0 when no table comes back)."""
        try:
            tables = self.admin.query_api().query(flux, org=self.org)
        except CLIENT_ERRORS as error:
            raise _write_error(error, self.url, "reading back the points") from error
        return int(sum(record.get_value() or 0 for table in tables for record in table.records))


class FileWriter:
    """One file's batches, sent in order by the writer's sender process.

    ``submit`` raises as soon as an earlier batch of the file failed (the caller stops
    reading the file); ``finish`` waits for the file's last batch and raises its failure.
    """

    def __init__(self, sender: BatchSender, bucket: str, batch_points: int = 5000) -> None:
        self._sender = sender
        self.bucket = bucket
        self.batch_points = batch_points
        self.error: WriteError | None = None
        self.points_written = 0

    def submit(self, body: bytes) -> None:
        """Hand a batch of whole lines to the sender, in requests of at most
        ``batch_points`` lines."""
        if self.error is not None:
            raise self.error
        if body.count(b"\n") <= self.batch_points:
            self._sender.send(self, body)
            return
        for part in split_lines(body, self.batch_points):
            if self.error is not None:
                raise self.error
            self._sender.send(self, part)

    def finish(self) -> None:
        self._sender.drain()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Wait for the batches already handed over (the file failed for another reason)."""
        self._sender.drain()


def split_lines(body: bytes, most: int) -> list[bytes]:
    """``body`` (whole lines, each ending with a newline) in parts of at most ``most`` lines."""
    lines = body.split(b"\n")
    tail = lines.pop()  # empty when the body ends with a newline
    if tail:
        lines.append(tail)
    parts = [
        b"\n".join(lines[start : start + most]) + b"\n" for start in range(0, len(lines), most)
    ]
    if tail:
        parts[-1] = parts[-1][:-1]
    return parts


class BatchSender:
    """Compresses and sends batches from a child process, on the machine's other core.

    In one process, a sender thread loses most of its time waiting for the GIL, which the
    parsing thread holds: gzip and HTTP and parsing took turns instead of overlapping (about
    0.9 M values/s end to end, against 1.6 M here). The child gets the ``InfluxSettings`` and
    makes its own write client, with the same retries (a client is not shared across fork).
    Batches travel through shared memory (a few slots of 8 MB; a larger batch goes through the
    pipe), and each batch is acknowledged in order, so the parent knows which file a failure
    belongs to and how many points each file wrote.
    """

    SLOTS = 4
    SLOT_BYTES = 8 << 20

    def __init__(self, settings: InfluxSettings) -> None:
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
            args=(child_end, self._memory, settings, os.getpid()),
            name="powerview-sender",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        if self._memory is not None:
            # Both processes hold the mapping now: the name is no longer needed, and a name
            # left in /dev/shm would outlive a parser killed with SIGKILL.
            self._memory.unlink()
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
        shared = self._memory.buf if self._memory is not None else None
        if shared is not None and len(body) <= self.SLOT_BYTES:
            offset = slot * self.SLOT_BYTES
            shared[offset : offset + len(body)] = body
            inline = None
        self._in_flight[slot] = (file, body.count(b"\n"))
        try:
            self._conn.send((slot, len(body), file.bucket, inline))
        except OSError as error:
            raise self._fail(f"the sender process is gone ({error})") from error

    def drain(self) -> None:
        while self._in_flight:
            self._collect()

    def _collect(self) -> None:
        try:
            slot, kind, message, code = self._conn.recv()
        except (EOFError, OSError) as error:
            self._fail(f"the sender process ended unexpectedly ({error!r})")
            return
        file, points = self._in_flight.pop(slot)
        self._free.append(slot)
        if kind is None:
            file.points_written += points
        elif file.error is None:
            file.error = WriteError(message, kind, code)

    def _fail(self, message: str) -> WriteError:
        """Fail every batch in flight, and every later one, with ``message``."""
        broken = self._broken = WriteError(message, ErrorKind.TEMPORARY)
        for file, _ in self._in_flight.values():
            file.error = file.error or broken
        self._in_flight.clear()
        self._free = list(range(self.SLOTS))
        return broken

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


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGKILL when the parent dies; end now if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


def _close_inherited_descriptors(keep: set[int]) -> None:
    """Close every descriptor above stderr but ``keep``: the claims' flock descriptors and the
    parent's end of the pipe must not live on in the sender."""
    try:
        descriptors = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        descriptors = list(range(3, 1024))
    for descriptor in descriptors:
        if descriptor > 2 and descriptor not in keep:
            with contextlib.suppress(OSError):
                os.close(descriptor)


def _sender_main(
    conn: Connection, memory: SharedMemory | None, settings: InfluxSettings, parent_pid: int
) -> None:
    """The sender process: one message in, one write, one acknowledgement out, in order."""
    _die_with_parent(parent_pid)
    _close_inherited_descriptors({conn.fileno()})
    poster = _Poster(settings)
    shared = memory.buf if memory is not None else None
    try:
        while (message := conn.recv()) is not None:
            slot, length, bucket, inline = message
            if inline is None and shared is not None:
                offset = slot * BatchSender.SLOT_BYTES
                body: bytes | memoryview = shared[offset : offset + length]
            else:  # without shared memory, every batch comes through the pipe
                body = inline
            try:
                poster.post(bucket, body)
                conn.send((slot, None, None, None))
            except WriteError as error:
                conn.send((slot, error.kind, str(error), error.code))
            finally:
                if isinstance(body, memoryview):
                    body.release()
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        poster.close()
