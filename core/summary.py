"""The per-file summary the engine fills in while it encodes, in the same single pass.

``FileSummary.as_dict`` is the file's entry in the JSON run report; ``RowSkip`` and
``ValueSkip`` name why rows and values were left out (each counted with its first lines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from core.timestamps import iso_utc

FIRST_LINES_KEPT = 10


class RowSkip(StrEnum):
    """Why a whole row was not written (a key of ``skipped_rows`` in the report). The README's
    table of oddities says which content leads to each."""

    WRONG_COLUMN_COUNT = "wrong_column_count"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_BEFORE_FLOOR = "timestamp_before_floor"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"
    ZERO_ROW = "zero_row"
    REPEATED_HEADER = "repeated_header"
    NOT_UTF8 = "not_utf8"
    NO_VALID_VALUE = "no_valid_value"
    AFTER_END_DATA = "after_end_data"


class ValueSkip(StrEnum):
    """Why a single value was not written while the rest of its row was (a key of
    ``skipped_values``)."""

    EMPTY = "empty"
    NOT_A_NUMBER = "not_a_number"
    NOT_FINITE = "not_finite"


@dataclass
class SkipCounter:
    """How many times a reason occurred, and the first few line numbers."""

    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < FIRST_LINES_KEPT:
            self.lines.append(line)


@dataclass
class ChannelStats:
    """Count, min, max and sum of the values written for one channel."""

    channel_id: str
    field_key: str
    name: str
    unit: str
    count: int = 0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    total: float = 0.0

    def add_many(self, values: Sequence[float], total: float | None = None) -> None:
        """Account for written values; ``total`` is their sum when the caller has it."""
        if not values:
            return
        self.count += len(values)
        low, high = min(values), max(values)
        self.minimum = min(low, self.minimum)
        self.maximum = max(high, self.maximum)
        self.total += sum(values) if total is None else total

    def as_dict(self) -> dict[str, object]:
        has_values = self.count > 0
        return {
            "channel_id": self.channel_id,
            "field": self.field_key,
            "name": self.name,
            "unit": self.unit,
            "count": self.count,
            "min": self.minimum if has_values else None,
            "max": self.maximum if has_values else None,
            "mean": round(self.total / self.count, 6) if has_values else None,
        }


@dataclass
class FileSummary:
    """Everything known about one file after reading it."""

    file: str
    company: str | None = None
    campaign: str | None = None
    device_folder: str | None = None
    format: str | None = None
    format_tag: str | None = None
    model: str | None = None
    metadata: dict[str, object] = field(default_factory=dict)
    master_sn: str | None = None
    master_subtype: str | None = None
    slaves: list[str] = field(default_factory=list)
    time_zone: str = "UTC"
    bytes_read: int = 0
    lines: int = 0
    data_rows: int = 0
    rows_written: int = 0
    values_written: int = 0
    blank_lines: int = 0
    first_timestamp: int | None = None
    last_timestamp: int | None = None
    ambiguous_local_times: int = 0
    nonexistent_local_times: int = 0
    truncated: bool = False
    bom: bool = False
    crlf: bool = False
    skipped_rows: dict[RowSkip, SkipCounter] = field(default_factory=dict)
    skipped_values: dict[ValueSkip, SkipCounter] = field(default_factory=dict)
    channels: list[ChannelStats] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skip_row(self, reason: RowSkip, line: int) -> None:
        counter = self.skipped_rows.get(reason)
        if counter is None:
            counter = self.skipped_rows[reason] = SkipCounter()
        counter.add(line)

    def skip_value(self, reason: ValueSkip, line: int) -> None:
        counter = self.skipped_values.get(reason)
        if counter is None:
            counter = self.skipped_values[reason] = SkipCounter()
        counter.add(line)

    @property
    def rows_skipped(self) -> int:
        return sum(counter.count for counter in self.skipped_rows.values())

    @property
    def values_skipped(self) -> int:
        return sum(counter.count for counter in self.skipped_values.values())

    def as_dict(self) -> dict[str, object]:
        def counters(
            table: Mapping[RowSkip, SkipCounter] | Mapping[ValueSkip, SkipCounter],
        ) -> dict[str, object]:
            return {
                reason.value: {"count": counter.count, "first_lines": counter.lines}
                for reason, counter in sorted(table.items())
            }

        return {
            "file": self.file,
            "company": self.company,
            "campaign": self.campaign,
            "device_folder": self.device_folder,
            "format": self.format,
            "format_tag": self.format_tag,
            "model": self.model,
            "header": self.metadata,
            "master_sn": self.master_sn,
            "master_subtype": self.master_subtype,
            "slaves": self.slaves,
            "channel_count": len(self.channels),
            "time_zone": self.time_zone,
            "bytes": self.bytes_read,
            "lines": self.lines,
            "data_rows": self.data_rows,
            "rows_written": self.rows_written,
            "rows_skipped": self.rows_skipped,
            "values_written": self.values_written,
            "values_skipped": self.values_skipped,
            "blank_lines": self.blank_lines,
            "skipped_rows": counters(self.skipped_rows),
            "skipped_values": counters(self.skipped_values),
            "first_timestamp": iso_utc(self.first_timestamp),
            "last_timestamp": iso_utc(self.last_timestamp),
            "ambiguous_local_times": self.ambiguous_local_times,
            "nonexistent_local_times": self.nonexistent_local_times,
            "truncated": self.truncated,
            "bom": self.bom,
            "crlf": self.crlf,
            "channels": [channel.as_dict() for channel in self.channels],
            "warnings": self.warnings,
        }
