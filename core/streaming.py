"""One read of one file: the engine's batches of line protocol to where they go.

The file is read once, by ``core.engine.MV2File``; each batch goes, in file order, to

- the sender of a run that writes: a small file's batches are sent from the run's own
  process (``InlineSender``), each answered before the next is parsed; a file above
  ``INFLUXDB_INLINE_MAX_BYTES`` goes through the writer's sender process
  (``core.influx_writer.FileWriter``), which sends while the next batch is parsed (a daily
  file, some 50 kB, would spend more starting that process than it gains);
- the ``--lp-out`` copy, when asked for (``LineProtocolCopy``);
- the progress display, told how many bytes of the file have been read so far.

Nothing downstream reads the file again. Deciding what becomes of the file is
``core/file_processor.py``'s part.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from core.engine import MV2File, ParseOptions
from core.layout import FileLocation
from core.summary import FileSummary

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only (not dry runs)
    from core.influx_writer import FileWriter, InfluxWriter


class OutputClosedError(Exception):
    """The reader of the --lp-out copy went away (``--lp-out - | head``) during a dry run."""


def stream_file(
    location: FileLocation,
    summary: FileSummary,
    stream: BinaryIO,
    options: ParseOptions,
    send: Callable[[bytes], None] | None,
    *,
    copy: LineProtocolCopy | None = None,
    bytes_read: Callable[[int], None] | None = None,
) -> None:
    """Read ``stream`` (the file at ``location``) once: every batch to ``send``, to the
    --lp-out ``copy``, and the number of bytes read so far to ``bytes_read``."""
    with MV2File(location.path, location.campaign, options, summary, stream=stream) as mv2:
        check_device_folder(location, summary)
        for batch in mv2.batches():
            if copy is not None:
                copy.write(location, batch)
            if send is not None:
                send(batch)
            if bytes_read is not None:
                bytes_read(summary.bytes_read)


def check_device_folder(location: FileLocation, summary: FileSummary) -> None:
    """A warning when the device folder is not named after the file's master serial."""
    if summary.master_sn != location.device_folder:
        summary.warnings.append(
            f"the folder is named {location.device_folder} but the file's master serial "
            f"is {summary.master_sn}: points are tagged with {summary.master_sn}"
        )


class LineProtocolCopy:
    """The --lp-out copy: each file's points after a comment line naming their bucket (line
    protocol comments start with ``#``; ``influx write`` skips them).

    When its reader goes away, a dry run stops (``OutputClosedError``: the copy was all it
    was for); a run that writes goes on, without the copy, and says so in ``messages``."""

    def __init__(self, stream: BinaryIO, dry_run: bool, messages: list[str]) -> None:
        self.stream: BinaryIO | None = stream
        self._dry_run = dry_run
        self._messages = messages
        self._last_file: str | None = None

    @property
    def closed(self) -> bool:
        """True once the reader went away."""
        return self.stream is None

    def write(self, location: FileLocation, batch: bytes) -> None:
        if self.stream is None:
            return
        try:
            if self._last_file != location.relative:
                self._last_file = location.relative
                file = json.dumps(location.relative)
                self.stream.write(f"# bucket: {location.company} file: {file}\n".encode())
            self.stream.write(batch)
        except BrokenPipeError:
            self.stream = None
            if self._dry_run:
                raise OutputClosedError from None
            self._messages.append(
                "the reader of the line protocol closed it: no more copied (ingestion went on)"
            )


def open_sender(
    writer: InfluxWriter, bucket: str, size: int, inline_max_bytes: int
) -> InlineSender | FileWriter:
    """The sender of a file of ``size`` bytes (see the module docstring)."""
    if size <= inline_max_bytes:
        return InlineSender(writer, bucket)
    return writer.file_writer(bucket)


class InlineSender:
    """A small file's batches sent from the run's own process, each answered before the
    next is parsed; the interface of ``FileWriter`` (``submit`` raises the failure)."""

    def __init__(self, writer: InfluxWriter, bucket: str) -> None:
        self._writer = writer
        self.bucket = bucket
        self.points_written = 0

    def submit(self, body: bytes) -> None:
        from core.influx_writer import split_lines  # noqa: PLC0415 - see the imports

        most = self._writer.batch_points
        parts = [body] if body.count(b"\n") <= most else split_lines(body, most)
        for part in parts:
            self._writer.write_now(self.bucket, part)
            self.points_written += part.count(b"\n")

    def finish(self) -> None:
        """Every batch was answered in ``submit``."""

    def abandon(self) -> None:
        """Nothing is in flight."""
