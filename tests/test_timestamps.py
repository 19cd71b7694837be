"""Time: UTC by default, local time converted with zoneinfo, DST folds and gaps by rule."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.engine import MV2File, ParseOptions
from core.timestamps import (
    SeenTimestamps,
    TimestampConverter,
    TimestampError,
    resolve_zone,
    zone_from_posix_rule,
)
from tests.helpers import SAMPLES
from tests.lp import parse_lines

PARIS_RULE = "CET-1CEST,M3.5.0,M10.5.0/3"


def unix(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def test_utc_conversion():
    converter = TimestampConverter()
    assert converter.to_unix(b"08/02/26 19:10:00") == unix("2026-02-08T19:10:00Z")
    assert converter.to_unix_many([b"01/01/24 00:00:00", b"bad", b"29/02/24 23:59:59"]) == [
        1704067200,
        None,
        unix("2024-02-29T23:59:59Z"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        b"29/02/25 00:00:00",
        b"00/01/25 00:00:00",
        b"01/01/25 23:60:00",
        b"01/01/25 00:00:60",
        b"1/1/25 0:0:0",
        b"01/01/25T00:00:00",
        b"",
        b"01/01/2025 00:00:00",
    ],
)
def test_invalid_timestamps(text):
    with pytest.raises(TimestampError):
        TimestampConverter().to_unix(text)


def test_posix_rule_matches_the_iana_zone_all_year():
    rule_zone = zone_from_posix_rule(PARIS_RULE)
    paris = ZoneInfo("Europe/Paris")
    for month in range(1, 13):
        for fold in (0, 1):
            moment = datetime(2025, month, 15, 12, 0, fold=fold)
            assert (
                moment.replace(tzinfo=rule_zone).utcoffset()
                == moment.replace(tzinfo=paris).utcoffset()
            )


def test_invalid_posix_rule():
    with pytest.raises(ValueError, match=r"STD offset|invalid POSIX"):
        zone_from_posix_rule("not a rule")


def test_resolve_zone_prefers_the_iana_name_and_falls_back_to_the_rule():
    assert resolve_zone("UTC") == (None, "UTC")
    zone, description = resolve_zone("Europe/Paris", PARIS_RULE)
    assert description == "Europe/Paris"
    zone, description = resolve_zone("Not/AZone", PARIS_RULE)
    assert description == f"POSIX rule {PARIS_RULE}"
    assert datetime(2025, 7, 1, tzinfo=zone).utcoffset().total_seconds() == 7200
    with pytest.raises(ValueError):
        resolve_zone("Not/AZone", None)


def test_fall_back_hour_written_twice_goes_in_order():
    """Europe/Paris, 2025-10-26: 02:00-02:59 happens twice; rows keep their order."""
    converter = TimestampConverter(ZoneInfo("Europe/Paris"))
    rows = [
        b"26/10/25 01:50:00",
        b"26/10/25 02:00:00",
        b"26/10/25 02:50:00",
        b"26/10/25 02:00:00",
        b"26/10/25 02:50:00",
        b"26/10/25 03:00:00",
    ]
    stamps = [converter.to_unix(row) for row in rows]
    assert stamps == [
        unix("2025-10-25T23:50:00Z"),
        unix("2025-10-26T00:00:00Z"),  # 02:00 summer time
        unix("2025-10-26T00:50:00Z"),
        unix("2025-10-26T01:00:00Z"),  # 02:00 again, winter time
        unix("2025-10-26T01:50:00Z"),
        unix("2025-10-26T02:00:00Z"),
    ]
    assert converter.ambiguous == 4
    assert converter.nonexistent == 0


def test_an_ambiguous_time_alone_is_the_first_instant():
    converter = TimestampConverter(ZoneInfo("Europe/Paris"))
    assert converter.to_unix(b"26/10/25 02:30:00") == unix("2025-10-26T00:30:00Z")


def test_spring_forward_gap_uses_the_offset_before_the_change():
    converter = TimestampConverter(ZoneInfo("Europe/Paris"))
    assert converter.to_unix(b"30/03/25 02:30:00") == unix("2025-03-30T01:30:00Z")
    assert converter.to_unix(b"30/03/25 03:30:00") == unix("2025-03-30T01:30:00Z")
    assert converter.nonexistent == 1


def test_v002_local_time_sample_with_the_october_change(tmp_path):
    """The acme base logger writes local time: 02:00-02:50 appears twice on 26/10/25."""
    sample = SAMPLES / "acme/base/02001283/T302_251026_031500.tsv"
    with MV2File(sample, "base", ParseOptions(now=2e9)) as utc_reading:
        utc_points = parse_lines(b"".join(utc_reading.batches()))
    assert utc_reading.summary.skipped_rows["duplicate_timestamp"].count == 6
    options = ParseOptions(now=2e9, v002_time_zone="Europe/Paris")
    with MV2File(sample, "base", options) as local_reading:
        local_points = parse_lines(b"".join(local_reading.batches()))
    summary = local_reading.summary
    assert summary.skipped_rows == {}
    assert summary.rows_written == 149
    assert summary.ambiguous_local_times == 12
    assert summary.time_zone == "Europe/Paris"
    assert len(local_points) == len(utc_points) + 6 * 6
    assert summary.last_timestamp == unix("2025-10-26T02:00:00Z")  # 03:00 CET


def write_v003(tmp_path: Path, metadata: dict, rows: str) -> Path:
    path = tmp_path / "T302_local.tsv"
    path.write_text(
        f"START_HEADER\n{json.dumps(metadata)}\nEND_HEADER\nSTART_DATA\n"
        "02000800\t02000800\n"
        f"MV_T302_V003\tPh 1 V\n{rows}END_DATA\n"
    )
    return path


@pytest.mark.parametrize(
    ("metadata", "zone_description"),
    [
        ({"DataTimeSettings": "Local", "TimeZoneName": "Europe/Paris"}, "Europe/Paris"),
        (
            {"DataTimeSettings": "Local", "TimeZoneName": "", "TimeZone": PARIS_RULE},
            f"POSIX rule {PARIS_RULE}",
        ),
        ({"DataTimeSettings": "UTC", "TimeZoneName": "Europe/Paris"}, "UTC"),
    ],
)
def test_v003_time_settings(tmp_path, metadata, zone_description):
    path = write_v003(tmp_path, metadata, "01/07/25 12:00:00\t230\n")
    with MV2File(path, "camp", ParseOptions(now=2e9)) as mv2:
        points = parse_lines(b"".join(mv2.batches()))
    expected = "2025-07-01T12:00:00Z" if zone_description == "UTC" else "2025-07-01T10:00:00Z"
    assert points[0][4] == unix(expected)
    assert mv2.summary.time_zone == zone_description


def test_v003_local_gap_and_fold_are_counted(tmp_path):
    rows = "30/03/25 02:30:00\t230\n26/10/25 02:30:00\t231\n26/10/25 02:30:00\t232\n"
    path = write_v003(tmp_path, {"DataTimeSettings": "Local", "TimeZoneName": "Europe/Paris"}, rows)
    with MV2File(path, "camp", ParseOptions(now=2e9)) as mv2:
        points = parse_lines(b"".join(mv2.batches()))
    assert sorted(point[4] for point in points) == [
        unix("2025-03-30T01:30:00Z"),
        unix("2025-10-26T00:30:00Z"),
        unix("2025-10-26T01:30:00Z"),
    ]
    assert mv2.summary.nonexistent_local_times == 1
    assert mv2.summary.ambiguous_local_times == 2


def test_seen_timestamps_spans_and_bitmap():
    seen = SeenTimestamps()
    assert seen.add_all(list(range(1000, 2000, 10))) == []  # one regular span
    assert seen.add_all(list(range(2000, 3000, 10))) == []  # continues it
    assert seen.add_all([1500, 1505, 2990, 5000, 5000]) == [0, 2, 4]
    assert seen.add_all([1505, 4000]) == [0]
    assert seen.add_all([]) == []
