"""MV2 timestamps (``DD/MM/YY HH:MM:SS``) to Unix seconds, in UTC or in a local time zone.

Local time is converted with the standard library's time zone data (``zoneinfo``). Two
local times need a rule, and both are counted in the file summary:

- *ambiguous* (the repeated hour when clocks go back, e.g. 02:30 on the last Sunday of
  October in Europe/Paris): the earliest of the two instants that is later than the previous
  row, so a logger that writes 02:00..02:50 twice gets both hours in order; when neither is
  later (the file is out of order anyway), the first instant (summer time).
- *non-existent* (the skipped hour when clocks go forward, e.g. 02:30 on the last Sunday of
  March): read with the UTC offset in force before the change, so 02:30 becomes 01:30 UTC,
  the instant a clock that was not moved forward would have shown.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_EPOCH_DAY = date(1970, 1, 1).toordinal()


class TimestampError(ValueError):
    """The text is not a valid ``DD/MM/YY HH:MM:SS`` timestamp."""


def zone_from_posix_rule(rule: str) -> tzinfo:
    """A tzinfo for a POSIX TZ rule such as ``CET-1CEST,M3.5.0,M10.5.0/3``.

    ``zoneinfo`` reads POSIX rules from the footer of TZif files; a TZif file with no
    transitions and the rule as footer makes the standard library apply the rule to every
    instant, so no rule arithmetic is written here. Raises ValueError for an invalid rule.
    """
    if not rule or "\n" in rule or not rule.isascii():
        raise ValueError(f"invalid POSIX time zone rule {rule!r}")

    def header() -> bytes:
        # version 2; counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt=1, charcnt=4
        return b"TZif2" + bytes(15) + struct.pack(">6l", 0, 0, 0, 0, 1, 4)

    data_block = struct.pack(">lbB", 0, 0, 0) + b"UTC\0"
    blob = header() + data_block + header() + data_block + b"\n" + rule.encode() + b"\n"
    return ZoneInfo.from_file(io.BytesIO(blob), key=rule)


def resolve_zone(name: str | None, posix_rule: str | None = None) -> tuple[tzinfo | None, str]:
    """The zone for an IANA name, else for a POSIX rule; (None, "UTC") means UTC.

    Returns the tzinfo and a description for the report. Raises ValueError when neither
    the name nor the rule can be used.
    """
    if name and name.upper() == "UTC":
        return None, "UTC"
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if posix_rule:
        return zone_from_posix_rule(posix_rule), f"POSIX rule {posix_rule}"
    raise ValueError(f"unknown time zone {name!r} and no usable POSIX rule")


class TimestampConverter:
    """Converts MV2 timestamp bytes to Unix seconds; stateful only for the ambiguity rule.

    Dates and times of day are cached, so a row costs two dictionary lookups in UTC and,
    in a local zone, one more lookup of the hour's UTC offset (computed once per hour, with
    the slow exact path only for hours that contain a clock change).
    """

    def __init__(self, zone: tzinfo | None = None) -> None:
        self.zone = zone
        self.ambiguous = 0
        self.nonexistent = 0
        self._dates: dict[bytes, int] = {}
        self._times: dict[bytes, int] = {}
        self._hour_offsets: dict[int, int | None] = {}
        self._previous: int | None = None

    def _day_seconds(self, text: bytes) -> int:
        try:
            day, month, year = int(text[0:2]), int(text[3:5]), int(text[6:8])
            if text[2:3] != b"/" or text[5:6] != b"/" or len(text) != 8:
                raise ValueError
            seconds = (date(2000 + year, month, day).toordinal() - _EPOCH_DAY) * 86400
        except ValueError:
            raise TimestampError(f"invalid date {text.decode('ascii', 'replace')!r}") from None
        self._dates[text] = seconds
        return seconds

    def _time_seconds(self, text: bytes) -> int:
        try:
            hour, minute, second = int(text[0:2]), int(text[3:5]), int(text[6:8])
            if text[2:3] != b":" or text[5:6] != b":" or len(text) != 8:
                raise ValueError
            if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
                raise ValueError
        except ValueError:
            raise TimestampError(f"invalid time {text.decode('ascii', 'replace')!r}") from None
        seconds = hour * 3600 + minute * 60 + second
        self._times[text] = seconds
        return seconds

    def wall_seconds(self, text: bytes) -> int:
        """Seconds since 1970-01-01 00:00 of the wall-clock reading, ignoring any zone."""
        if len(text) != 17 or text[8:9] != b" ":
            raise TimestampError(f"expected DD/MM/YY HH:MM:SS, got {text[:40]!r}")
        day = self._dates.get(text[:8])
        if day is None:
            day = self._day_seconds(text[:8])
        time_of_day = self._times.get(text[9:])
        if time_of_day is None:
            time_of_day = self._time_seconds(text[9:])
        return day + time_of_day

    def to_unix(self, text: bytes) -> int:
        """Unix seconds of one timestamp; raises TimestampError."""
        wall = self.wall_seconds(text)
        if self.zone is None:
            return wall
        hour = wall // 3600
        if hour in self._hour_offsets:
            offset = self._hour_offsets[hour]
        else:
            offset = self._hour_offsets[hour] = self._steady_offset(hour)
        unix = self._exact(wall) if offset is None else wall - offset
        self._previous = unix
        return unix

    def to_unix_many(self, texts: Sequence[bytes]) -> list[int | None]:
        """Unix seconds of each timestamp, None for one that is not valid.

        The per-row work is inlined here because it runs once per row of every file.
        """
        dates, times = self._dates, self._times
        result: list[int | None] = []
        append = result.append
        if self.zone is None:
            for text in texts:
                day = dates.get(text[:8])
                time_of_day = times.get(text[9:])
                if day is None or time_of_day is None or len(text) != 17 or text[8] != 32:
                    try:
                        append(self.wall_seconds(text))
                    except TimestampError:
                        append(None)
                else:
                    append(day + time_of_day)
            return result
        for text in texts:
            try:
                append(self.to_unix(text))
            except TimestampError:
                append(None)
        return result

    def _steady_offset(self, hour: int) -> int | None:
        """The UTC offset (seconds) valid for the whole wall-clock hour, or None when the
        hour contains a clock change or a repeated/skipped time."""
        start = datetime(1970, 1, 1) + timedelta(seconds=hour * 3600)
        offsets = {
            (moment.replace(tzinfo=self.zone, fold=fold)).utcoffset()
            for moment in (start, start + timedelta(seconds=3599))
            for fold in (0, 1)
        }
        if len(offsets) != 1:
            return None
        (offset,) = offsets
        return int(offset.total_seconds()) if offset is not None else 0

    def _exact(self, wall: int) -> int:
        local = datetime(1970, 1, 1) + timedelta(seconds=wall)
        first = local.replace(tzinfo=self.zone, fold=0)
        second = local.replace(tzinfo=self.zone, fold=1)
        first_unix = int(first.timestamp())
        second_unix = int(second.timestamp())
        if first_unix == second_unix:
            return first_unix
        round_trip = first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None)
        if round_trip != local:
            self.nonexistent += 1
            return first_unix
        self.ambiguous += 1
        candidates = sorted((first_unix, second_unix))
        if self._previous is not None:
            for candidate in candidates:
                if candidate > self._previous:
                    return candidate
        return first_unix


def iso_utc(unix_seconds: int | None) -> str | None:
    """``2026-02-08T19:10:00Z`` for Unix seconds (None stays None)."""
    if unix_seconds is None:
        return None
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SeenTimestamps:
    """The timestamps already written from one file, to refuse a second row with the same one.

    Logger files are mostly in order at a fixed interval, so a run of evenly spaced, rising
    timestamps is kept as a span (first, last, step): constant memory however long the run.
    Anything else goes into one bit per second in a bitmap per day (10.8 kB a day).
    """

    def __init__(self) -> None:
        self._spans: list[tuple[int, int, int]] = []
        self._days: dict[int, bytearray] = {}
        self._latest: int | None = None  # the largest timestamp recorded so far

    def add_all(self, stamps: Sequence[int]) -> list[int]:
        """Record ``stamps``; return the indexes of those already seen (not recorded again)."""
        if not stamps:
            return []
        first, count = stamps[0], len(stamps)
        step = stamps[1] - first if count > 1 else 1
        if (
            step > 0
            and (self._latest is None or first > self._latest)
            and (count == 1 or stamps == list(range(first, first + step * count, step)))
        ):
            last = stamps[-1]
            if self._spans and self._spans[-1][1] + step == first and self._spans[-1][2] == step:
                span_first = self._spans[-1][0]
                self._spans[-1] = (span_first, last, step)
            else:
                self._spans.append((first, last, step))
            self._latest = last
            return []
        repeated = []
        for index, stamp in enumerate(stamps):
            if self._contains(stamp):
                repeated.append(index)
            else:
                self._set(stamp)
        return repeated

    def _contains(self, stamp: int) -> bool:
        if self._latest is None or stamp > self._latest:
            return False
        day, second = divmod(stamp, 86400)
        bits = self._days.get(day)
        if bits is not None and bits[second >> 3] & (1 << (second & 7)):
            return True
        return any(
            first <= stamp <= last and (stamp - first) % step == 0
            for first, last, step in reversed(self._spans)
        )

    def _set(self, stamp: int) -> None:
        day, second = divmod(stamp, 86400)
        bits = self._days.get(day)
        if bits is None:
            bits = self._days[day] = bytearray(10800)
        bits[second >> 3] |= 1 << (second & 7)
        if self._latest is None or stamp > self._latest:
            self._latest = stamp
