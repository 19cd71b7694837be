"""The ingestion engine: one MV2 file in, bounded batches of line protocol out, in one pass.

``MV2File`` is the only entry: opening it reads and checks the header (``core.formats``),
builds the channels (``core.channels``), fills the file's summary and resolves the clock's
time zone, so a bad file is refused before anything is written. ``batches()`` then reads the
data section in blocks of about a megabyte (the data section ends at ``END_DATA`` in V003, at
the end of the file in V002), cuts each block into slices of at most
``batch_points / channels`` rows, and passes each slice through the two stages of one pass:

- ``core.rows.RowDecoder``: the text lines to columns of values (a fast path for slices of
  plain numbers, a checked path line by line for the others);
- ``core.points.PointEncoder``: the timestamp checks, then the line protocol of the slice.

Everything a pass keeps between slices (the float caches, the timestamps already written,
the series prefixes) lives in those two objects, made by ``batches()``. Memory is bounded by
the block and batch sizes, whatever the size of the file.

Row-level problems skip the row (or only the value) and are counted in the summary with
their first line numbers; file-level problems raise ``FileDataError``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from core.channels import Channel, build_channels
from core.errors import FileDataError
from core.formats import END_DATA, MAX_LINE_BYTES, Header, line_too_long, read_header
from core.lineprotocol import MEASUREMENT, series_prefix
from core.points import PointEncoder
from core.rows import RowDecoder
from core.summary import ChannelStats, FileSummary, RowSkip
from core.timestamps import TimestampConverter, resolve_zone

if TYPE_CHECKING:
    from core.settings import ParserSettings

DEFAULT_TIMESTAMP_FLOOR = 1609459200  # 2021-01-01T00:00:00Z
BLOCK_SIZE = 1 << 20


@dataclass(frozen=True)
class ParseOptions:
    """How to read files; the defaults are those of the data contract."""

    batch_points: int = 5000
    timestamp_floor: int = DEFAULT_TIMESTAMP_FLOOR
    future_margin_s: int = 86400
    now: float | None = None  # "now" for the future check; None: when reading starts
    v002_time_zone: str = "UTC"
    skip_zero_rows: bool = True
    measurement: str = MEASUREMENT
    block_size: int = BLOCK_SIZE

    @classmethod
    def from_settings(cls, settings: ParserSettings) -> ParseOptions:
        """The options of the parser's settings section (``tsv_parser.py``, the drainer)."""
        return cls(
            batch_points=settings.batch_points,
            timestamp_floor=settings.timestamp_floor,
            v002_time_zone=settings.v002_time_zone,
            skip_zero_rows=settings.skip_zero_rows,
        )


class MV2File:
    """One MV2 file, opened for a single streaming pass.

    >>> with MV2File(path, campaign="camp1") as mv2:          # doctest: +SKIP
    ...     for batch in mv2.batches():
    ...         send(batch)
    >>> mv2.summary.values_written                             # doctest: +SKIP

    Opening reads and checks the header (FileDataError on a bad one). ``batches()`` yields
    line-protocol bytes, each at most ``batch_points`` lines (one row at least), and raises
    FileDataError at the end when the file had no row that could be written.
    """

    def __init__(
        self,
        path: Path | str,
        campaign: str,
        options: ParseOptions | None = None,
        summary: FileSummary | None = None,
        stream: BinaryIO | None = None,
    ) -> None:
        """``stream``, when given, is read instead of opening ``path`` (which then only names
        the file in messages): the runner passes the descriptor it holds the claim on."""
        self.path = Path(path)
        self._given_stream = stream
        self.campaign = campaign
        self.options = options or ParseOptions()
        self.summary = summary or FileSummary(file=str(path), campaign=campaign)
        # Known once opened:
        self.header: Header | None = None
        self.channels: list[Channel] = []
        self._stream: BinaryIO | None = None
        self._zone: tzinfo | None = None  # the file's clock; None: UTC

    # -- opening ------------------------------------------------------------------------
    def __enter__(self) -> MV2File:
        self._stream = self._given_stream or open(self.path, "rb")  # closed by __exit__
        try:
            self._read_header(self._stream)
        except BaseException:
            self._stream.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()

    def _read_header(self, stream: BinaryIO) -> None:
        header = self.header = read_header(stream, self.path)
        self.channels = build_channels(header, self.path)
        self._describe(header, self.channels)
        zone_name, posix_rule = self._time_zone_source(header)
        try:
            self._zone, self.summary.time_zone = resolve_zone(zone_name, posix_rule)
        except ValueError as exc:
            raise FileDataError(
                self.path, header.metadata_line, "bad_time_zone", f"local time: {exc}"
            ) from None

    def _describe(self, header: Header, channels: list[Channel]) -> None:
        """What the header says, in the summary."""
        summary = self.summary
        summary.format = header.format
        summary.format_tag = header.format_tag
        summary.model = header.model
        summary.metadata = header.metadata
        summary.master_sn = header.serials[0]
        summary.master_subtype = channels[0].device_subtype
        summary.slaves = list(
            dict.fromkeys(ch.device_sn for ch in channels if ch.device_type == "slave")
        )
        summary.bom = header.bom
        summary.crlf = header.crlf
        summary.channels = [
            ChannelStats(ch.channel_id, ch.field_key, ch.name, ch.unit) for ch in channels
        ]

    def _time_zone_source(self, header: Header) -> tuple[str | None, str | None]:
        """(IANA name, POSIX rule) of the file's clock; ("UTC", None) for UTC."""
        if header.format == "V002":
            return self.options.v002_time_zone, None
        setting = str(header.metadata.get("DataTimeSettings", "")).strip()
        if setting.upper() == "UTC":
            return "UTC", None
        name = header.metadata.get("TimeZoneName")
        rule = header.metadata.get("TimeZone")
        return (str(name) if name else None), (str(rule) if rule else None)

    # -- reading ------------------------------------------------------------------------
    def batches(self) -> Iterator[bytes]:
        """Line protocol for the whole file, in bounded batches, in file order."""
        if self._stream is None or self.header is None:
            raise RuntimeError("use MV2File as a context manager before reading batches")
        stream, header, options, summary = self._stream, self.header, self.options, self.summary
        now = time.time() if options.now is None else options.now
        converter = TimestampConverter(self._zone)
        decoder = RowDecoder(
            len(self.channels), header.raw_header_lines, summary, options.skip_zero_rows
        )
        encoder = PointEncoder(
            self._series_prefixes(header),
            converter,
            floor=options.timestamp_floor,
            ceiling=int(now) + options.future_margin_s,
            summary=summary,
        )
        rows_per_slice = max(1, options.batch_points // len(self.channels))
        for block, first_line in self._data_blocks(stream, header):
            lines = block.split(b"\n")
            lines.pop()  # a block ends with a newline
            for start in range(0, len(lines), rows_per_slice):
                # No name holds a slice's decoded rows, so they are freed before the next slice
                # is decoded and the allocator reuses memory still in the CPU's cache.
                part = lines[start : start + rows_per_slice]
                batch = encoder.encode(decoder.decode(part, first_line + start))
                if batch:
                    yield batch
        summary.ambiguous_local_times = converter.ambiguous
        summary.nonexistent_local_times = converter.nonexistent
        self._check_written()

    def _series_prefixes(self, header: Header) -> list[bytes]:
        """Each channel's ``measurement,tags field_key=``, in column order."""
        master_sn = header.serials[0]
        return [
            series_prefix(self.options.measurement, ch.tags(self.campaign, master_sn), ch.field_key)
            for ch in self.channels
        ]

    def _data_blocks(self, stream: BinaryIO, header: Header) -> Iterator[tuple[bytes, int]]:
        """(block of whole rows ending with a newline, its first line number).

        Windows line endings become plain newlines; a V003 file stops at END_DATA (and
        anything but blank lines after it is reported); a last line without a line ending
        is read, with a warning.
        """
        summary = self.summary
        expects_end = header.format == "V003"
        line_number = header.first_data_line
        summary.bytes_read = stream.tell()
        ended = False
        for block, complete in self._raw_blocks(stream, line_number):
            if not complete:
                last_line = line_number + block.count(b"\n")
                summary.warnings.append(
                    f"line {last_line}: the last line has no line ending "
                    "(the file may be cut short)"
                )
                block = block + b"\n"  # noqa: PLW2901 - the block is complete from here on
            if b"\r" in block:
                block = block.replace(b"\r\n", b"\n")  # noqa: PLW2901
            rows, after = block, None
            if expects_end and not ended:
                rows, after = _split_at_end_marker(block)
            elif ended:
                rows, after = b"", block
            if rows:
                yield rows, line_number
                line_number += rows.count(b"\n")
            if after is not None:
                if not ended:
                    ended = True
                    line_number += 1  # the END_DATA line
                for offset, line in enumerate(after.split(b"\n")[:-1]):
                    if line.strip():
                        summary.skip_row(RowSkip.AFTER_END_DATA, line_number + offset)
                line_number += after.count(b"\n")
        summary.lines = line_number - 1
        if expects_end and not ended:
            summary.truncated = True
            summary.warnings.append(
                f"no END_DATA marker: the file is truncated after line {summary.lines}; "
                "the rows read were kept"
            )

    def _raw_blocks(self, stream: BinaryIO, first_line: int) -> Iterator[tuple[bytes, bool]]:
        """Blocks of whole lines; the flag is False for a final line without a newline.

        Raises ``line_too_long`` once a line holds more than MAX_LINE_BYTES (plus a carriage
        return) without a newline, so a line is never held in memory beyond that.
        """
        read, size = stream.read, self.options.block_size
        leftover = b""
        lines_done = first_line - 1
        while chunk := read(size):
            self.summary.bytes_read += len(chunk)
            if leftover:
                first_end = chunk.find(b"\n")
                if first_end >= 0 and len(leftover) + first_end > MAX_LINE_BYTES + 1:
                    raise line_too_long(self.path, lines_done + 1)
            data = leftover + chunk if leftover else chunk
            cut = data.rfind(b"\n") + 1
            leftover = data[cut:]
            if len(leftover) > MAX_LINE_BYTES + 1:
                raise line_too_long(self.path, lines_done + data.count(b"\n", 0, cut) + 1)
            if cut:
                lines_done += data.count(b"\n", 0, cut)
                yield data[:cut], True
        if leftover:
            yield leftover, False

    def _check_written(self) -> None:
        """Raise FileDataError when the file had no row that could be written."""
        summary = self.summary
        if summary.data_rows == 0:
            raise FileDataError(
                self.path, summary.lines, "no_data_rows", "the file has a header but no data rows"
            )
        if summary.values_written == 0:
            reasons = ", ".join(
                f"{reason}: {counter.count}" for reason, counter in summary.skipped_rows.items()
            )
            raise FileDataError(
                self.path,
                summary.lines,
                "nothing_to_write",
                f"none of the {summary.data_rows} data rows can be written ({reasons})",
            )


def _split_at_end_marker(block: bytes) -> tuple[bytes, bytes | None]:
    """(the rows before the END_DATA line, what follows that line) or (block, None)."""
    start = 0
    while (position := block.find(END_DATA, start)) >= 0:
        line_end = block.find(b"\n", position)
        at_line_start = position == 0 or block[position - 1] == 0x0A
        if at_line_start and block[position:line_end].strip() == END_DATA:
            return block[:position], block[line_end + 1 :]
        start = position + 1
    return block, None
