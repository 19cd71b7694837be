r"""Decoded rows to line protocol: the timestamp checks, then one point per value.

``PointEncoder.encode`` takes one slice of rows decoded by ``core.rows`` and returns its
points as one bytes object, in row order within each channel, channel after channel. A row is
left out, and counted in the file's summary, when its timestamp is not a valid
``DD/MM/YY HH:MM:SS`` (``bad_timestamp``), is before the plausibility floor
(``timestamp_before_floor``) or after the ceiling, now plus a margin (``timestamp_in_future``),
or repeats the timestamp of an earlier row of the file (``duplicate_timestamp``: the first row
is kept, so writing a file twice writes the same points).

Each point is its channel's series prefix (measurement, tags, field key and ``=``, built once
per channel by ``core.lineprotocol.series_prefix``), the value exactly as decoded, and
`` <timestamp>\n``. The three are interleaved by slice assignment and joined once per slice,
so no bytes object is made per point: this is the engine's hot loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

from core.rows import DecodedRows
from core.summary import FileSummary, RowSkip
from core.timestamps import SeenTimestamps, TimestampConverter


class PointEncoder:
    """Line protocol for the slices of one file, in file order (the duplicate check keeps
    the timestamps already written)."""

    def __init__(
        self,
        prefixes: Sequence[bytes],
        converter: TimestampConverter,
        floor: int,
        ceiling: int,
        summary: FileSummary,
    ) -> None:
        """``prefixes`` are the series prefixes of the channels, in the order of
        ``summary.channels``; ``floor`` and ``ceiling`` bound the timestamps written."""
        self._prefixes = list(prefixes)
        self._converter = converter
        self._floor = floor
        self._ceiling = ceiling
        self._seen = SeenTimestamps()
        self._summary = summary

    def encode(self, rows: DecodedRows) -> bytes:
        """The points of the rows that are kept (b"" when none is)."""
        if not rows.stamps:
            return b""
        summary = self._summary
        stamps, kept = self._check_timestamps(rows)
        values, numbers, value_rows, sums = rows.values, rows.numbers, rows.value_rows, rows.sums
        if kept is not None:
            if not kept:
                return b""
            values, numbers, value_rows = _keep_rows(rows, kept)
            sums = None
        summary.rows_written += len(stamps)
        low, high = min(stamps), max(stamps)
        if summary.first_timestamp is None or low < summary.first_timestamp:
            summary.first_timestamp = low
        if summary.last_timestamp is None or high > summary.last_timestamp:
            summary.last_timestamp = high
        suffixes = [b" %d\n" % stamp for stamp in stamps]
        pieces: list[bytes] = []
        written = 0
        for index, (prefix, stats) in enumerate(zip(self._prefixes, summary.channels, strict=True)):
            column_values, rows_of_values = values[index], value_rows[index]
            if not column_values:
                continue
            value_suffixes = (
                suffixes if rows_of_values is None else [suffixes[row] for row in rows_of_values]
            )
            stats.add_many(numbers[index], sums[index] if sums else None)
            written += len(column_values)
            chunk = [prefix] * (3 * len(column_values))
            chunk[1::3] = column_values
            chunk[2::3] = value_suffixes
            pieces += chunk
        summary.values_written += written
        return b"".join(pieces)

    def _check_timestamps(self, rows: DecodedRows) -> tuple[list[int], list[int] | None]:
        """The timestamps of the rows that can be written, and the indexes of those rows
        (None: every row of the slice). The rows refused are counted in the summary."""
        stamps = self._converter.to_unix_many(rows.stamps)
        floor, ceiling = self._floor, self._ceiling
        refused = dict(rows.refused)
        candidates: list[int]
        candidate_stamps: list[int]
        if not refused and _all_valid(stamps) and min(stamps) >= floor and max(stamps) <= ceiling:
            repeated = self._seen.add_all(stamps)
            if not repeated:
                return stamps, None
            candidates, candidate_stamps = list(range(len(stamps))), stamps
        else:
            candidates, candidate_stamps = [], []
            for index, stamp in enumerate(stamps):
                if index in refused:
                    continue
                if stamp is None:
                    refused[index] = RowSkip.BAD_TIMESTAMP
                elif stamp < floor:
                    refused[index] = RowSkip.TIMESTAMP_BEFORE_FLOOR
                elif stamp > ceiling:
                    refused[index] = RowSkip.TIMESTAMP_IN_FUTURE
                else:
                    candidates.append(index)
                    candidate_stamps.append(stamp)
            repeated = self._seen.add_all(candidate_stamps)
        for position in repeated:
            refused[candidates[position]] = RowSkip.DUPLICATE_TIMESTAMP
        for index in sorted(refused):
            self._summary.skip_row(refused[index], rows.lines[index])
        kept = [
            (index, stamp)
            for index, stamp in zip(candidates, candidate_stamps, strict=True)
            if index not in refused
        ]
        return [stamp for _, stamp in kept], [index for index, _ in kept]


def _all_valid(stamps: list[int | None]) -> TypeGuard[list[int]]:
    """True when every timestamp could be read."""
    return None not in stamps


def _keep_rows(
    rows: DecodedRows, kept: list[int]
) -> tuple[list[Sequence[bytes]], list[Sequence[float]], list[Sequence[int] | None]]:
    """Each channel's values, numbers and value rows, for the rows of ``kept`` only (renumbered
    in that order)."""
    values: list[Sequence[bytes]] = []
    numbers: list[Sequence[float]] = []
    value_rows: list[Sequence[int] | None] = []
    position_of: dict[int, int] | None = None
    for column_values, column_numbers, rows_of_values in zip(
        rows.values, rows.numbers, rows.value_rows, strict=True
    ):
        if rows_of_values is None:
            values.append([column_values[row] for row in kept])
            numbers.append([column_numbers[row] for row in kept])
            value_rows.append(None)
            continue
        if position_of is None:
            position_of = {row: position for position, row in enumerate(kept)}
        picked = [
            (index, position_of[row])
            for index, row in enumerate(rows_of_values)
            if row in position_of
        ]
        values.append([column_values[index] for index, _ in picked])
        numbers.append([column_numbers[index] for index, _ in picked])
        value_rows.append([position for _, position in picked])
    return values, numbers, value_rows
