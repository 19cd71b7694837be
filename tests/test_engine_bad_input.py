"""Bad input: every case gets a clear reason naming the file and the line, and nothing is lost.

File-level problems raise FileDataError (the file goes to error/); row-level problems skip
the row or the value, are counted with their line numbers, and the rest of the file goes on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core.engine import MV2File, ParseOptions
from core.errors import FileDataError
from tests.lp import parse_lines

NOW = 1_800_000_000  # 2027-01-15: "now" for the future check, fixed for the tests
SERIALS = "02001283\t02001283\t02001283"
LABELS = "MV_T302_V002\tPh 1 V\tVoie1 W"
HEADER = f"{SERIALS}\n{LABELS}\n"
V003_JSON = {
    "DataTimeSettings": "UTC",
    "TimeZone": "CET-1CEST,M3.5.0,M10.5.0/3",
    "TimeZoneName": "Europe/Paris",
    "FileVersion": 3,
    "MasterType": "Mono",
}


def v003(rows: str, end: bool = True, metadata: object = None) -> str:
    header = json.dumps(V003_JSON if metadata is None else metadata)
    tail = "END_DATA\n" if end else ""
    return (
        f"START_HEADER\n{header}\nEND_HEADER\nSTART_DATA\n{SERIALS}\n"
        f"MV_T302_V003\tPh 1 V\tVoie1 W\n{rows}{tail}"
    )


def run(tmp_path: Path, content: str | bytes, **options):
    path = tmp_path / "T302_test.tsv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with MV2File(path, "camp", ParseOptions(now=NOW, **options)) as mv2:
        data = b"".join(mv2.batches())
    return parse_lines(data), mv2.summary


def refused(tmp_path: Path, content: str | bytes) -> FileDataError:
    with pytest.raises(FileDataError) as excinfo:
        run(tmp_path, content)
    error = excinfo.value
    assert error.path.endswith("T302_test.tsv"), "the error names the file"
    assert str(error).startswith(error.path)
    return error


def skipped_rows(summary) -> dict[str, tuple[int, list[int]]]:
    return {reason: (c.count, c.lines) for reason, c in summary.skipped_rows.items()}


def skipped_values(summary) -> dict[str, tuple[int, list[int]]]:
    return {reason: (c.count, c.lines) for reason, c in summary.skipped_values.items()}


# -- file-level problems --------------------------------------------------------------------
def test_empty_file(tmp_path):
    error = refused(tmp_path, b"")
    assert error.code == "empty_file"
    assert "0 bytes" in error.reason


def test_header_only(tmp_path):
    error = refused(tmp_path, HEADER)
    assert (error.code, error.line) == ("no_data_rows", 2)


def test_header_only_with_blank_lines(tmp_path):
    error = refused(tmp_path, HEADER + "\n\n")
    assert error.code == "no_data_rows"


def test_unknown_format_tag(tmp_path):
    error = refused(
        tmp_path, f"{SERIALS}\nMV_T302_V009\tPh 1 V\tVoie1 W\n01/01/25 00:00:00\t1\t2\n"
    )
    assert (error.code, error.line) == ("unknown_format", 2)
    assert "MV_T302_V009" in error.reason


def test_not_an_mv2_file_at_all(tmp_path):
    error = refused(tmp_path, "date,value\n2025-01-01,3\n")
    assert error.code in ("unknown_format", "header_column_mismatch")
    assert error.line == 2


def test_header_lines_with_different_column_counts(tmp_path):
    error = refused(tmp_path, f"{SERIALS}\t02001283\n{LABELS}\n01/01/25 00:00:00\t1\t2\n")
    assert (error.code, error.line) == ("header_column_mismatch", 2)
    assert "4 columns" in error.reason and "3" in error.reason


def test_invalid_v003_json(tmp_path):
    content = v003("01/01/25 00:00:00\t1\t2\n").replace('"FileVersion": 3', '"FileVersion": 3,,')
    error = refused(tmp_path, content)
    assert (error.code, error.line) == ("invalid_json", 2)
    assert "not valid JSON" in error.reason


def test_v003_json_that_is_not_an_object(tmp_path):
    error = refused(tmp_path, v003("01/01/25 00:00:00\t1\t2\n", metadata=[1, 2]))
    assert (error.code, error.line) == ("invalid_json", 2)


def test_v003_without_start_data(tmp_path):
    content = v003("01/01/25 00:00:00\t1\t2\n").replace("START_DATA\n", "")
    error = refused(tmp_path, content)
    assert error.code == "missing_marker"
    assert error.line == 4


def test_v003_tag_in_a_v002_layout(tmp_path):
    error = refused(
        tmp_path, f"{SERIALS}\nMV_T302_V003\tPh 1 V\tVoie1 W\n01/01/25 00:00:00\t1\t2\n"
    )
    assert (error.code, error.line) == ("format_mismatch", 2)


def test_label_without_unit(tmp_path):
    error = refused(tmp_path, f"{SERIALS}\nMV_T302_V002\tPh 1 V\tVoie1\n01/01/25 00:00:00\t1\t2\n")
    assert (error.code, error.line) == ("bad_label", 2)
    assert "'Voie1'" in error.reason


def test_unsafe_serial_number(tmp_path):
    error = refused(
        tmp_path, f"0200 1283\t0200 1283\t0200 1283\n{LABELS}\n01/01/25 00:00:00\t1\t2\n"
    )
    assert (error.code, error.line) == ("bad_serial", 1)


def test_header_that_is_not_utf8(tmp_path):
    content = HEADER.replace("Voie1", "Voie\xe9").encode("latin-1") + b"01/01/25 00:00:00\t1\t2\n"
    error = refused(tmp_path, content)
    assert (error.code, error.line) == ("not_utf8", 2)
    assert "0xe9" in error.reason


def test_local_time_without_any_usable_zone(tmp_path):
    metadata = {**V003_JSON, "DataTimeSettings": "Local", "TimeZoneName": "Mars/Olympus"}
    metadata["TimeZone"] = "not a rule"
    error = refused(tmp_path, v003("01/01/25 00:00:00\t1\t2\n", metadata=metadata))
    assert (error.code, error.line) == ("bad_time_zone", 2)


def test_every_row_refused(tmp_path):
    error = refused(tmp_path, HEADER + "01/01/20 00:00:00\t1\t2\n01/01/20 00:10:00\t1\t2\n")
    assert error.code == "nothing_to_write"
    assert "timestamp_before_floor: 2" in error.reason


# -- tolerated layouts ----------------------------------------------------------------------
def test_crlf_line_endings(tmp_path):
    content = HEADER + "01/01/25 00:00:00\t230.5\t12.0\n01/01/25 00:10:00\t231\t-3.5\n"
    plain, _ = run(tmp_path, content)
    crlf, summary = run(tmp_path, content.replace("\n", "\r\n"))
    assert crlf == plain and len(plain) == 4
    assert summary.crlf
    assert summary.values_skipped == 0


def test_utf8_byte_order_mark(tmp_path):
    content = HEADER + "01/01/25 00:00:00\t230.5\t12.0\n"
    points, summary = run(tmp_path, b"\xef\xbb\xbf" + content.encode())
    assert summary.bom
    assert {point[2] for point in points} == {"M02001283_U1_V", "M02001283_Ch1_W"}


def test_utf8_channel_names_are_kept(tmp_path):
    content = f"{SERIALS}\nMV_T302_V002\tPh 1 V\tChauffe-eau ménage W\n01/01/25 00:00:00\t1\t2\n"
    points, _ = run(tmp_path, content)
    names = {dict(point[1])["channel_name"] for point in points}
    assert names == {"Ph 1", "Chauffe-eau ménage"}


def test_blank_and_trailing_lines(tmp_path):
    content = HEADER + "01/01/25 00:00:00\t1\t2\n\n   \n01/01/25 00:10:00\t3\t4\n\n\n"
    points, summary = run(tmp_path, content)
    assert len(points) == 4
    assert summary.blank_lines == 4
    assert summary.rows_skipped == 0


def test_last_line_without_line_ending_is_read(tmp_path):
    points, summary = run(tmp_path, HEADER + "01/01/25 00:00:00\t1\t2\n01/01/25 00:10:00\t3\t4")
    assert len(points) == 4
    assert any("no line ending" in warning for warning in summary.warnings)


def test_last_line_cut_short_is_skipped_with_a_warning(tmp_path):
    points, summary = run(tmp_path, HEADER + "01/01/25 00:00:00\t1\t2\n01/01/25 00:10:00\t3")
    assert len(points) == 2
    assert skipped_rows(summary) == {"wrong_column_count": (1, [4])}
    assert any("line 4" in warning for warning in summary.warnings)


def test_v003_without_end_data_keeps_rows_and_flags_truncation(tmp_path):
    points, summary = run(tmp_path, v003("01/01/25 00:00:00\t1\t2\n", end=False))
    assert len(points) == 2
    assert summary.truncated
    assert any("END_DATA" in warning for warning in summary.warnings)


def test_lines_after_end_data_are_reported_not_written(tmp_path):
    content = v003("01/01/25 00:00:00\t1\t2\n") + "\n01/01/25 00:10:00\t3\t4\n"
    points, summary = run(tmp_path, content)
    assert len(points) == 2
    assert not summary.truncated
    assert skipped_rows(summary) == {"after_end_data": (1, [10])}


# -- row-level problems ---------------------------------------------------------------------
def test_bad_timestamps_are_skipped_with_their_lines(tmp_path):
    content = HEADER + (
        "01/01/25 00:00:00\t1\t2\n"
        "32/01/25 00:00:00\t1\t2\n"
        "01/13/25 00:00:00\t1\t2\n"
        "01/01/25 24:00:00\t1\t2\n"
        "2025-01-01 00:00\t1\t2\n"
        "01/01/25 00:10:00\t3\t4\n"
    )
    points, summary = run(tmp_path, content)
    assert len(points) == 4
    assert skipped_rows(summary) == {"bad_timestamp": (4, [4, 5, 6, 7])}


def test_implausible_timestamps_are_counted_apart_from_unparsable_ones(tmp_path):
    content = HEADER + (
        "01/01/20 01:00:02\t1\t2\n"  # clock not set yet
        "31/12/20 23:59:59\t1\t2\n"  # just before the default floor
        "01/01/21 00:00:00\t1\t2\n"  # the floor itself is plausible
        "16/01/27 00:00:00\t1\t2\n"  # NOW + 1 day is 2027-01-16T08:00Z: still plausible
        "17/01/27 00:00:00\t1\t2\n"  # beyond now + 1 day
        "xx/01/25 00:00:00\t1\t2\n"
    )
    points, summary = run(tmp_path, content)
    assert len({point[4] for point in points}) == 2
    assert skipped_rows(summary) == {
        "timestamp_before_floor": (2, [3, 4]),
        "timestamp_in_future": (1, [7]),
        "bad_timestamp": (1, [8]),
    }


def test_timestamp_floor_is_configurable(tmp_path):
    content = HEADER + "01/06/20 00:00:00\t1\t2\n"
    points, _ = run(tmp_path, content, timestamp_floor=1577836800)  # 2020-01-01
    assert len(points) == 2


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("abc", "not_a_number"),
        ("12,5", "not_a_number"),
        ("1_000", "not_a_number"),
        ("0x10", "not_a_number"),
        ("1.2.3", "not_a_number"),
        ('"5"', "not_a_number"),
        ("5i", "not_a_number"),
        ("true", "not_a_number"),
        ("nan", "not_finite"),
        ("NaN", "not_finite"),
        ("inf", "not_finite"),
        ("-Infinity", "not_finite"),
        ("1e999", "not_finite"),
    ],
)
def test_unwritable_values_are_skipped_and_the_row_goes_on(tmp_path, value, reason):
    content = HEADER + f"01/01/25 00:00:00\t230.1\t{value}\n01/01/25 00:10:00\t231\t7\n"
    points, summary = run(tmp_path, content)
    fields = sorted((point[2], point[3]) for point in points)
    assert fields == [
        ("M02001283_Ch1_W", 7.0),
        ("M02001283_U1_V", 230.1),
        ("M02001283_U1_V", 231.0),
    ]
    assert all(math.isfinite(point[3]) for point in points)
    assert skipped_values(summary) == {reason: (1, [3])}
    assert summary.rows_written == 2


@pytest.mark.parametrize(
    ("value", "written"),
    [("+5", 5.0), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0), ("-.25", -0.25), (" 7.5", 7.5)],
)
def test_other_decimal_spellings_are_written_as_plain_floats(tmp_path, value, written):
    content = HEADER + f"01/01/25 00:00:00\t230.1\t{value}\n"
    path = tmp_path / "T302_test.tsv"
    path.write_text(content)
    with MV2File(path, "camp", ParseOptions(now=NOW)) as mv2:
        data = b"".join(mv2.batches())
    line = next(line for line in data.split(b"\n") if b"Ch1_W=" in line)
    text = line.split(b" ")[-2].split(b"=")[1]
    assert float(text) == written
    assert text.replace(b".", b"").replace(b"-", b"").isdigit(), text


def test_a_row_with_no_writable_value_is_skipped(tmp_path):
    content = HEADER + "01/01/25 00:00:00\tnan\t\n01/01/25 00:10:00\t1\t2\n"
    points, summary = run(tmp_path, content)
    assert len(points) == 2
    assert skipped_rows(summary) == {"no_valid_value": (1, [3])}
    assert skipped_values(summary) == {"not_finite": (1, [3]), "empty": (1, [3])}


def test_rows_with_fewer_or_more_columns_than_the_header(tmp_path):
    content = HEADER + (
        "01/01/25 00:00:00\t1\t2\n"
        "01/01/25 00:10:00\t1\n"
        "01/01/25 00:20:00\t1\t2\t3\n"
        "01/01/25 00:30:00\t1\t2\t\n"
        "01/01/25 00:40:00\t1\t2\n"
    )
    points, summary = run(tmp_path, content)
    assert len(points) == 4
    assert skipped_rows(summary) == {"wrong_column_count": (3, [4, 5, 6])}


def test_the_same_timestamp_twice_keeps_the_first_row(tmp_path):
    content = HEADER + (
        "01/01/25 00:00:00\t230\t10\n01/01/25 00:10:00\t231\t11\n01/01/25 00:00:00\t999\t99\n"
    )
    points, summary = run(tmp_path, content)
    assert sorted(point[3] for point in points) == [10.0, 11.0, 230.0, 231.0]
    assert skipped_rows(summary) == {"duplicate_timestamp": (1, [5])}


def test_duplicates_are_found_across_batches_and_blocks(tmp_path):
    rows = [
        f"01/01/25 {hour:02d}:{minute:02d}:00\t{hour + 1}\t{minute}\n"
        for hour in range(24)
        for minute in range(0, 60, 10)
    ]
    content = HEADER + "".join(rows) + rows[3] + rows[100]
    path = tmp_path / "T302_test.tsv"
    path.write_text(content)
    options = ParseOptions(now=NOW, batch_points=10, block_size=256)
    with MV2File(path, "camp", options) as mv2:
        points = parse_lines(b"".join(mv2.batches()))
    assert len(points) == 2 * 144
    assert len(set(points)) == len(points)
    assert skipped_rows(mv2.summary) == {"duplicate_timestamp": (2, [147, 148])}


def test_all_zero_rows_are_start_up_markers(tmp_path):
    content = HEADER + "01/01/25 00:00:00\t0\t0\n01/01/25 00:00:00\t230\t-0.0\n"
    points, summary = run(tmp_path, content)
    assert sorted(point[3] for point in points) == [-0.0, 230.0]
    assert skipped_rows(summary) == {"zero_row": (1, [3])}
    points, summary = run(tmp_path, content, skip_zero_rows=False)
    assert sorted(point[3] for point in points) == [0.0, 0.0]
    assert skipped_rows(summary) == {"duplicate_timestamp": (1, [4])}


def test_bytes_that_are_not_utf8_in_a_row_skip_that_row(tmp_path):
    content = HEADER.encode() + b"01/01/25 00:00:00\t1\t2\n01/01/25 00:10:00\t\xff\xfe\t2\n"
    points, summary = run(tmp_path, content)
    assert len(points) == 2
    assert skipped_rows(summary) == {"not_utf8": (1, [4])}


def test_a_repeated_header_inside_the_data(tmp_path):
    content = HEADER + "01/01/25 00:00:00\t1\t2\n" + HEADER + "01/01/25 00:10:00\t3\t4\n"
    points, summary = run(tmp_path, content)
    assert len(points) == 4
    assert skipped_rows(summary) == {"repeated_header": (2, [4, 5])}


def test_problems_never_reach_the_line_protocol(tmp_path):
    """Whatever the rows hold, every line written parses as a float field with a timestamp."""
    content = HEADER + "".join(
        f"01/01/25 00:{minute:02d}:00\t{value}\t{value}\n"
        for minute, value in enumerate(["1", "nan", '"x"', "1 2", "-", "1e5", "=", ",", "\\"])
    )
    path = tmp_path / "T302_test.tsv"
    path.write_text(content)
    with MV2File(path, "camp", ParseOptions(now=NOW)) as mv2:
        data = b"".join(mv2.batches())
    for line in data.decode().splitlines():
        _series, field, stamp = line.rsplit(" ", 2)
        assert math.isfinite(float(field.split("=", 1)[1]))
        assert stamp.isdigit()
    assert mv2.summary.values_written == 4


# -- hostile input: a clear error, never a crash, bounded memory (issue 9) -------------------


def test_a_label_whose_last_word_is_a_number_has_no_unit(tmp_path):
    """``Ph 1`` would read as channel ``Ph`` with unit ``1``: the master would turn mono and
    every later channel id would shift. The README says such a file is refused."""
    content = f"{SERIALS}\nMV_T302_V002\tPh 1\tVoie1 W\n01/01/26 00:00:00\t230.1\t5.0\n"
    error = refused(tmp_path, content)
    assert (error.code, error.line) == ("bad_label", 2)
    assert "'Ph 1' is not '<channel name> <unit>'" in error.reason


def test_v003_json_nested_too_deeply(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    content = v003("01/01/26 00:00:00\t230.1\t5.0\n").replace(json.dumps(V003_JSON), deep)
    error = refused(tmp_path, content)
    assert (error.code, error.line) == ("invalid_json", 2)
    assert "nested too deeply" in error.reason


def test_v003_json_with_a_number_of_thousands_of_digits(tmp_path):
    content = v003("01/01/26 00:00:00\t230.1\t5.0\n", metadata={"x": 0}).replace(
        '{"x": 0}', '{"FileVersion": ' + "9" * 5000 + "}"
    )
    error = refused(tmp_path, content)
    assert (error.code, error.line) == ("invalid_json", 2)
    assert "digits" in error.reason


def test_a_v003_header_without_end_header_is_bounded(tmp_path):
    lines = "".join(f'"key{number}": {number},\n' for number in range(60_000))
    content = f"START_HEADER\n{{\n{lines}"
    error = refused(tmp_path, content)
    assert error.code == "header_too_long" and error.line == 2


@pytest.mark.parametrize("line", [1, 2])
def test_a_header_line_longer_than_the_limit_names_its_line(tmp_path, line):
    from core.formats import MAX_LINE_BYTES

    header = [SERIALS, LABELS]
    header[line - 1] += "x" * (MAX_LINE_BYTES + 1)
    error = refused(tmp_path, "\n".join(header) + "\n01/01/26 00:00:00\t230.1\t5.0\n")
    assert (error.code, error.line) == ("line_too_long", line)


@pytest.mark.parametrize("newline", [True, False])
def test_a_data_line_longer_than_the_limit_names_its_line(tmp_path, newline):
    from core.formats import MAX_LINE_BYTES

    rows = "01/01/26 00:00:00\t230.1\t5.0\n" * 3
    long_line = "01/01/26 00:10:00\t" + "7" * (MAX_LINE_BYTES + 10) + ("\n" if newline else "")
    content = HEADER + rows + long_line + "01/01/26 00:20:00\t230.1\t5.0\n"
    with pytest.raises(FileDataError) as excinfo:
        run(tmp_path, content, block_size=64 * 1024)
    assert (excinfo.value.code, excinfo.value.line) == ("line_too_long", 6)
    assert "line 6 is longer than 1,048,576 bytes" in excinfo.value.reason


def test_a_line_at_the_limit_is_read(tmp_path):
    from core.formats import MAX_LINE_BYTES

    value = "1" * 15 + "." + "0" * (MAX_LINE_BYTES - len("01/01/26 00:10:00\t\t5.0") - 16)
    line = f"01/01/26 00:10:00\t{value}\t5.0\n"
    assert len(line) == MAX_LINE_BYTES + 1
    points, summary = run(tmp_path, HEADER + line, block_size=64 * 1024)
    assert summary.rows_written == 1 and len(points) == 2
