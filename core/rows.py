"""Data rows decoded: a slice of text lines in, the values of each channel out.

The engine (``core.engine``) cuts the data section of a file into slices of at most
``batch_points / channels`` lines and hands each to ``RowDecoder.decode``, which returns a
``DecodedRows``: each row's timestamp text and line number, and per channel the values to
write, both as the logger wrote them and as floats. ``core.points`` turns that into line
protocol. Two paths give the same result:

- the fast path takes a slice made only of timestamps and plain decimal numbers (what a
  logger writes): its rows are split and transposed into columns at once, every check made
  on the whole slice before anything is counted;
- any other slice is read line by line (the checked path), so each problem is counted against
  its own line and the good rows and values around it still go out.

A problem with a whole row skips the row (``RowSkip``), a problem with one value skips only
that value (``ValueSkip``); both are counted in the file's summary with their first lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.summary import FileSummary, RowSkip, ValueSkip

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


@dataclass(slots=True)
class DecodedRows:
    """One slice of rows on their way to line protocol; row ``i`` is ``stamps[i]``.

    Per channel, ``values[c]`` and ``numbers[c]`` hold the same values (as written, and as
    floats); ``value_rows[c]`` is the row of each of them, or None when every row has one.
    """

    stamps: Sequence[bytes]  # the timestamp text of each row
    lines: Sequence[int]  # the line number of each row
    values: Sequence[Sequence[bytes]]
    numbers: Sequence[Sequence[float]]
    value_rows: Sequence[Sequence[int] | None]
    refused: dict[int, RowSkip]  # rows already refused (index -> why), not to be written
    sums: Sequence[float] | None = None  # sum of each channel's numbers, when known


class _FloatCache(dict[bytes, float]):
    """bytes -> float, filled on first use; float() raises ValueError for non-numbers."""

    def __missing__(self, text: bytes) -> float:
        number = self[text] = float(text)
        return number


class FloatColumns:
    """Columns of value texts to floats, through a cache per channel while its values repeat.

    A channel whose values mostly do not repeat is read with float() directly (a cache miss
    costs about two conversions) until the next probe, every ``_CACHE_PROBE_SLICES`` slices.
    """

    def __init__(self, channel_count: int) -> None:
        self._caches = [_FloatCache() for _ in range(channel_count)]
        self._direct = [False] * channel_count
        self._cache_limit = _FLOAT_CACHE_ENTRIES // channel_count
        self._slices = 0

    def convert(self, columns: Sequence[Sequence[bytes]]) -> list[list[float]]:
        """Each column as floats; raises ValueError when a text is not a number."""
        self._slices += 1
        if self._slices % _CACHE_PROBE_SLICES == 0:
            self._direct = [False] * len(self._direct)
        direct = self._direct
        numbers = []
        for index, column in enumerate(columns):
            if direct[index]:
                numbers.append(list(map(float, column)))
                continue
            cache = self._caches[index]
            before = len(cache)
            numbers.append(list(map(cache.__getitem__, column)))
            if (len(cache) - before) * 2 > len(column):
                direct[index] = True
                cache.clear()
            elif len(cache) > self._cache_limit:
                cache.clear()
        return numbers


class RowDecoder:
    """Decodes the slices of one file's data section, counting what it skips in ``summary``."""

    def __init__(
        self,
        channel_count: int,
        header_lines: Sequence[bytes],
        summary: FileSummary,
        skip_zero_rows: bool,
    ) -> None:
        """``header_lines`` are the two header lines as bytes: a copy of one among the rows
        is skipped as ``repeated_header``."""
        self._width = channel_count + 1
        self._header_lines = header_lines
        self._summary = summary
        self._skip_zero_rows = skip_zero_rows
        self._floats = FloatColumns(channel_count)
        self._every_row: tuple[None, ...] = (None,) * channel_count

    def decode(self, lines: list[bytes], first_line: int) -> DecodedRows:
        """The rows of ``lines``, the first being line ``first_line`` (no row at all when none
        of them can be written)."""
        rows = self._decode_plain(lines, first_line)
        return rows if rows is not None else self._decode_checked(lines, first_line)

    def _decode_plain(self, lines: list[bytes], first_line: int) -> DecodedRows | None:
        """The fast path. Everything that could make the rows unfit for verbatim copying is
        checked before any count changes; None means "use the checked path"."""
        text = b"\n".join(lines)
        if text.translate(None, _PLAIN_BYTES):
            return None
        shape = text.translate(_SHAPE)
        if b".\t" in shape or b"\t." in shape or shape.endswith(b"."):
            return None
        try:
            columns: list[tuple[bytes, ...]] = list(
                zip(*[line.split(b"\t") for line in lines], strict=True)
            )
        except ValueError:  # rows of different widths
            return None
        if len(columns) != self._width:
            return None
        value_columns = columns[1:]
        try:
            numbers = self._floats.convert(value_columns)
        except ValueError:  # "", "1.2.3", "--1"...
            return None
        sums = [sum(column) for column in numbers]
        if not all(map(math.isfinite, sums)):  # more digits than a float can hold
            return None
        self._summary.data_rows += len(lines)
        refused: dict[int, RowSkip] = {}
        if self._skip_zero_rows and 0.0 in numbers[0]:
            for index, row_values in enumerate(zip(*numbers, strict=True)):
                if not any(row_values):
                    refused[index] = RowSkip.ZERO_ROW
        return DecodedRows(
            stamps=columns[0],
            lines=range(first_line, first_line + len(lines)),
            values=value_columns,
            numbers=numbers,
            value_rows=self._every_row,
            refused=refused,
            sums=sums,
        )

    def _decode_checked(self, lines: list[bytes], first_line: int) -> DecodedRows:
        """The checked path: every line on its own; a value that cannot be written is left
        out and the rest of its row goes on."""
        channel_count = self._width - 1
        stamps: list[bytes] = []
        line_numbers: list[int] = []
        values: list[list[bytes]] = [[] for _ in range(channel_count)]
        numbers: list[list[float]] = [[] for _ in range(channel_count)]
        value_rows: list[list[int]] = [[] for _ in range(channel_count)]
        for offset, line in enumerate(lines):
            line_number = first_line + offset
            row = self._checked_row(line, line_number)
            if row is None:
                continue
            stamp, present = row
            for channel, value, number in present:
                values[channel].append(value)
                numbers[channel].append(number)
                value_rows[channel].append(len(stamps))
            stamps.append(stamp)
            line_numbers.append(line_number)
        return DecodedRows(
            stamps=stamps,
            lines=line_numbers,
            values=values,
            numbers=numbers,
            value_rows=[None if len(rows) == len(stamps) else rows for rows in value_rows],
            refused={},
        )

    def _checked_row(
        self, line: bytes, line_number: int
    ) -> tuple[bytes, list[tuple[int, bytes, float]]] | None:
        """The timestamp text of one line and its values that can be written, as (channel,
        text, number); None when the line is blank or the row is skipped (and counted)."""
        summary = self._summary
        if not line.strip():
            summary.blank_lines += 1
            return None
        summary.data_rows += 1
        problem = self._row_problem(line)
        if problem is not None:
            summary.skip_row(problem, line_number)
            return None
        fields = line.split(b"\t")
        present: list[tuple[int, bytes, float]] = []
        for channel, value in enumerate(map(clean_value, fields[1:])):
            if isinstance(value, ValueSkip):
                summary.skip_value(value, line_number)
            else:
                present.append((channel, value, float(value)))
        if not present:
            summary.skip_row(RowSkip.NO_VALID_VALUE, line_number)
            return None
        if (
            self._skip_zero_rows
            and len(present) == self._width - 1
            and not any(number for _, _, number in present)
        ):
            summary.skip_row(RowSkip.ZERO_ROW, line_number)
            return None
        return fields[0].strip(), present

    def _row_problem(self, line: bytes) -> RowSkip | None:
        """Why a whole row cannot be read, or None."""
        if line in self._header_lines:
            return RowSkip.REPEATED_HEADER
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return RowSkip.NOT_UTF8
        if line.count(b"\t") != self._width - 1:
            return RowSkip.WRONG_COLUMN_COUNT
        return None


def clean_value(text: bytes) -> bytes | ValueSkip:
    """The value as line-protocol float bytes, or the reason it cannot be written.

    Plain decimals go out exactly as written; other decimal spellings (``+5``, ``1e3``,
    ``.5``) are rewritten in Python's shortest round-trip form.
    """
    value = text.strip()
    if not value:
        return ValueSkip.EMPTY
    if _PLAIN_NUMBER_RE.fullmatch(value):
        return value
    if _DECIMAL_RE.fullmatch(value):
        number = float(value)
        return repr(number).encode() if math.isfinite(number) else ValueSkip.NOT_FINITE
    if _NOT_FINITE_RE.fullmatch(value):
        return ValueSkip.NOT_FINITE
    return ValueSkip.NOT_A_NUMBER
