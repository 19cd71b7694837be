"""The ingestion engine: one MV2 file in, bounded batches of line protocol out, in one pass.

The file is read in blocks of about a megabyte, cut into slices of at most
``batch_points / channels`` rows. A slice made only of timestamps and plain decimal numbers
takes the fast path: rows are split and transposed into columns, and each channel's points
are its constant series prefix, the value text exactly as the logger wrote it, and the
timestamp, interleaved and joined once. Any other slice is read line by line (the checked
path), so each problem is counted against its own line and the good rows around it still
go out. Memory is bounded by the block and batch sizes, whatever the size of the file.

Row-level problems skip the row (or only the value) and are counted in the summary with
their first line numbers; file-level problems raise ``FileDataError``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from core.channels import Channel, build_channels
from core.errors import FileDataError
from core.formats import END_DATA, MAX_LINE_BYTES, Header, line_too_long, read_header
from core.lineprotocol import MEASUREMENT, series_prefix
from core.summary import ChannelStats, FileSummary
from core.timestamps import SeenTimestamps, TimestampConverter, resolve_zone

if TYPE_CHECKING:
    from core.settings import ParserSettings

DEFAULT_TIMESTAMP_FLOOR = 1609459200  # 2021-01-01T00:00:00Z
BLOCK_SIZE = 1 << 20

# The fast path accepts a slice only if it holds nothing but these bytes, and none of the
# spellings float() reads but line protocol may not ("1.", ".5", "-.5", " 5"): with newlines
# and minus signs read as separators and spaces as dots, such a dot or space shows up next
# to a separator.
_PLAIN_BYTES = b"0123456789-./: \t\n"
_SHAPE = bytes.maketrans(b"\n- ", b"\t\t.")

# Values the checked path copies verbatim, and the decimal spellings it rewrites.
_PLAIN_NUMBER_RE = re.compile(rb"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")
_DECIMAL_RE = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE_RE = re.compile(rb"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)

# Logger readings are quantized and repeat a lot, and a dictionary lookup costs far less
# than float() (about 200 ns here): each channel keeps a cache of conversions, the channels
# sharing a bound of about 120,000 entries (some 10 MB).
_FLOAT_CACHE_ENTRIES = 120_000
_CACHE_PROBE_SLICES = 64


class _FloatCache(dict[bytes, float]):
    """bytes -> float, filled on first use; float() raises ValueError for non-numbers."""

    def __missing__(self, text: bytes) -> float:
        number = self[text] = float(text)
        return number


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
        self.header: Header | None = None
        self.channels: list[Channel] = []
        self._stream: BinaryIO | None = None

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
        summary = self.summary
        summary.format = header.format
        summary.format_tag = header.format_tag
        summary.model = header.model
        summary.metadata = header.metadata
        summary.master_sn = header.serials[0]
        summary.master_subtype = self.channels[0].device_subtype
        summary.slaves = list(
            dict.fromkeys(ch.device_sn for ch in self.channels if ch.device_type == "slave")
        )
        summary.bom = header.bom
        summary.crlf = header.crlf
        summary.channels = [
            ChannelStats(ch.channel_id, ch.field_key, ch.name, ch.unit) for ch in self.channels
        ]
        zone_name, posix_rule = self._time_zone_source(header)
        try:
            zone, summary.time_zone = resolve_zone(zone_name, posix_rule)
        except ValueError as exc:
            raise FileDataError(
                self.path, header.metadata_line, "bad_time_zone", f"local time: {exc}"
            ) from None
        self._converter = TimestampConverter(zone)

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
        options = self.options
        now = time.time() if options.now is None else options.now
        self._floor = options.timestamp_floor
        self._ceiling = int(now) + options.future_margin_s
        self._seen = SeenTimestamps()
        master_sn = self.header.serials[0]
        self._prefixes = [
            series_prefix(options.measurement, ch.tags(self.campaign, master_sn), ch.field_key)
            for ch in self.channels
        ]
        self._width = len(self.channels) + 1
        self._rows_per_slice = max(1, options.batch_points // len(self.channels))
        self._floats = [_FloatCache() for _ in self.channels]
        self._cache_limit = _FLOAT_CACHE_ENTRIES // len(self.channels)
        self._direct = [False] * len(self.channels)
        self._slices = 0
        for block, first_line in self._data_blocks(self._stream, self.header):
            lines = block.split(b"\n")
            lines.pop()  # a block ends with a newline
            step = self._rows_per_slice
            for start in range(0, len(lines), step):
                part = lines[start : start + step]
                batch = self._encode_plain_rows(part, first_line + start)
                if batch is None:
                    batch = self._encode_checked_rows(part, first_line + start)
                if batch:
                    yield batch
        self._finish()

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
                        summary.skip_row("after_end_data", line_number + offset)
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

    def _finish(self) -> None:
        summary = self.summary
        summary.ambiguous_local_times = self._converter.ambiguous
        summary.nonexistent_local_times = self._converter.nonexistent
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

    # -- encoding -----------------------------------------------------------------------
    def _encode_plain_rows(self, lines: list[bytes], first_line: int) -> bytes | None:
        """The fast path. Everything that could make the rows unfit for verbatim copying is
        checked before any state changes; None means "use the checked path"."""
        text = b"\n".join(lines)
        if text.translate(None, _PLAIN_BYTES):
            return None
        shape = text.translate(_SHAPE)
        if b".\t" in shape or b"\t." in shape or shape.endswith(b"."):
            return None
        try:
            columns = list(zip(*[line.split(b"\t") for line in lines], strict=True))
        except ValueError:  # rows of different widths
            return None
        if len(columns) != self._width:
            return None
        value_columns = columns[1:]
        try:
            numbers = self._to_floats(value_columns)
        except ValueError:  # "", "1.2.3", "--1"...
            return None
        sums = [sum(column) for column in numbers]
        if not all(map(math.isfinite, sums)):  # more digits than a float can hold
            return None
        self.summary.data_rows += len(lines)
        dropped: dict[int, str] = {}
        if self.options.skip_zero_rows and 0.0 in numbers[0]:
            for index, row_values in enumerate(zip(*numbers, strict=True)):
                if not any(row_values):
                    dropped[index] = "zero_row"
        return self._emit(
            columns[0], value_columns, numbers, dropped, first_line=first_line, sums=sums
        )

    def _to_floats(self, value_columns: list[tuple[bytes, ...]]) -> list[list[float]]:
        """Each column as floats, through its channel's cache while its values repeat.

        A channel whose values mostly do not repeat is read with float() directly (a cache
        miss costs about two conversions) until the next probe.
        """
        self._slices += 1
        if self._slices % _CACHE_PROBE_SLICES == 0:
            self._direct = [False] * len(self._direct)
        numbers = []
        for index, column in enumerate(value_columns):
            if self._direct[index]:
                numbers.append(list(map(float, column)))
                continue
            cache = self._floats[index]
            before = len(cache)
            numbers.append(list(map(cache.__getitem__, column)))
            if (len(cache) - before) * 2 > len(column):
                self._direct[index] = True
                cache.clear()
            elif len(cache) > self._cache_limit:
                cache.clear()
        return numbers

    def _encode_checked_rows(self, lines: list[bytes], first_line: int) -> bytes:
        """The checked path: every line on its own; a value that cannot be written becomes
        None and the rest of its row goes on."""
        summary = self.summary
        skip_zero = self.options.skip_zero_rows
        header_lines = self.header.raw_header_lines if self.header else ()
        stamps: list[bytes] = []
        rows: list[list[bytes | None]] = []
        line_numbers: list[int] = []
        for offset, line in enumerate(lines):
            number = first_line + offset
            if not line.strip():
                summary.blank_lines += 1
                continue
            summary.data_rows += 1
            reason = self._row_problem(line, header_lines)
            if reason is not None:
                summary.skip_row(reason, number)
                continue
            fields = line.split(b"\t")
            row = [_clean_value(text) for text in fields[1:]]
            bad = [value for value in row if isinstance(value, str)]
            for value_reason in bad:
                summary.skip_value(value_reason, number)  # type: ignore[arg-type]
            if len(bad) == len(row):
                summary.skip_row("no_valid_value", number)
                continue
            if skip_zero and not bad and not any(float(value) for value in row):  # type: ignore[arg-type]
                summary.skip_row("zero_row", number)
                continue
            stamps.append(fields[0].strip())
            rows.append([None if isinstance(value, str) else value for value in row])
            line_numbers.append(number)
        if not rows:
            return b""
        value_columns = list(zip(*rows, strict=True))
        numbers = [
            [None if value is None else float(value) for value in column]
            for column in value_columns
        ]
        return self._emit(stamps, value_columns, numbers, {}, line_numbers=line_numbers)

    def _row_problem(self, line: bytes, header_lines: Sequence[bytes]) -> str | None:
        """Why a whole row cannot be read, or None."""
        if line in header_lines:
            return "repeated_header"
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return "not_utf8"
        if line.count(b"\t") != self._width - 1:
            return "wrong_column_count"
        return None

    def _emit(
        self,
        stamp_texts: Sequence[bytes],
        value_columns: Sequence[Sequence[bytes | None]],
        numbers: Sequence[Sequence[float | None]],
        dropped: dict[int, str],
        *,
        first_line: int = 0,
        line_numbers: list[int] | None = None,
        sums: list[float] | None = None,
    ) -> bytes:
        """Check the timestamps, then line protocol for the rows that are kept.

        ``dropped`` maps the indexes of rows already refused to their reason. A None value
        (checked path, which passes ``line_numbers``) is not written. ``sums`` are the
        column sums, when the caller has them and drops nothing.
        """
        summary = self.summary
        stamps = self._converter.to_unix_many(stamp_texts)
        floor, ceiling = self._floor, self._ceiling
        if dropped or None in stamps or min(stamps) < floor or max(stamps) > ceiling:  # type: ignore[type-var]
            candidates: list[int] = []
            for index, stamp in enumerate(stamps):
                if index in dropped:
                    continue
                if stamp is None:
                    dropped[index] = "bad_timestamp"
                elif stamp < floor:
                    dropped[index] = "timestamp_before_floor"
                elif stamp > ceiling:
                    dropped[index] = "timestamp_in_future"
                else:
                    candidates.append(index)
            repeated = self._seen.add_all([stamps[index] for index in candidates])  # type: ignore[misc]
        else:
            candidates = list(range(len(stamps)))
            repeated = self._seen.add_all(stamps)  # type: ignore[arg-type]
        for position in repeated:
            dropped[candidates[position]] = "duplicate_timestamp"
        for index in sorted(dropped):
            line = line_numbers[index] if line_numbers else first_line + index
            summary.skip_row(dropped[index], line)
        if dropped:
            kept = [index for index in candidates if index not in dropped]
            if not kept:
                return b""
            stamps = [stamps[index] for index in kept]
            value_columns = [[column[index] for index in kept] for column in value_columns]
            numbers = [[column[index] for index in kept] for column in numbers]
            sums = None
        summary.rows_written += len(stamps)
        low, high = min(stamps), max(stamps)  # type: ignore[type-var]
        if summary.first_timestamp is None or low < summary.first_timestamp:  # type: ignore[operator]
            summary.first_timestamp = low
        if summary.last_timestamp is None or high > summary.last_timestamp:  # type: ignore[operator]
            summary.last_timestamp = high
        suffixes = [b" %d\n" % stamp for stamp in stamps]  # type: ignore[str-bytes-safe]
        # Each point is prefix + value + suffix: the three are interleaved by slice
        # assignment and joined once, so no bytes object is made per point.
        pieces: list[bytes] = []
        written = 0
        for index, (prefix, stats) in enumerate(zip(self._prefixes, summary.channels)):  # noqa: B905
            values, column_numbers = value_columns[index], numbers[index]
            value_suffixes: Sequence[bytes] = suffixes
            if line_numbers is not None and None in values:
                pairs = [(v, s) for v, s in zip(values, suffixes, strict=True) if v is not None]
                if not pairs:
                    continue
                values, value_suffixes = zip(*pairs, strict=True)
                column_numbers = [number for number in column_numbers if number is not None]
            stats.add_many(column_numbers, sums[index] if sums else None)  # type: ignore[arg-type]
            written += len(values)
            chunk = [prefix] * (3 * len(values))
            chunk[1::3] = values
            chunk[2::3] = value_suffixes
            pieces += chunk
        summary.values_written += written
        return b"".join(pieces)


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


def _clean_value(text: bytes) -> bytes | str:
    """The value as line-protocol float bytes, or the reason it cannot be written.

    Plain decimals go out exactly as written; other decimal spellings (``+5``, ``1e3``,
    ``.5``) are rewritten in Python's shortest round-trip form.
    """
    value = text.strip()
    if not value:
        return "empty"
    if _PLAIN_NUMBER_RE.fullmatch(value):
        return value
    if _DECIMAL_RE.fullmatch(value):
        number = float(value)
        return repr(number).encode() if math.isfinite(number) else "not_finite"
    if _NOT_FINITE_RE.fullmatch(value):
        return "not_finite"
    return "not_a_number"
