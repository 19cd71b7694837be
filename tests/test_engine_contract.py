"""The engine produces exactly the points of the data contract."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from core.engine import MV2File, ParseOptions
from core.errors import FileDataError
from core.influx_writer import split_lines
from core.lineprotocol import series_prefix, storable_field_key_part, storable_tag_value
from tests.doubles.line_protocol import parse_batch, parse_line
from tests.helpers import EXPECTED, SAMPLES, sample_files
from tests.lp import parse_line as lp_parse_line
from tests.lp import parse_lines
from tests.reference import reference_line_protocol

NOW = time.time()


def encode(path: Path, campaign: str, **options) -> tuple[bytes, MV2File]:
    with MV2File(path, campaign=campaign, options=ParseOptions(now=NOW, **options)) as mv2:
        data = b"".join(mv2.batches())
    return data, mv2


def expected_files() -> list[Path]:
    return sorted(path.relative_to(EXPECTED) for path in EXPECTED.rglob("*.lp"))


def test_there_are_contract_files():
    assert len(expected_files()) == 2


@pytest.mark.parametrize("relative", expected_files(), ids=str)
def test_points_equal_the_original_parser_output(relative):
    """Same set of (series, field, float value, timestamp) as the original parser wrote."""
    source = SAMPLES / relative.with_suffix(".tsv")
    data, _ = encode(source, campaign=relative.parts[1])
    ours = parse_lines(data)
    expected = parse_lines((EXPECTED / relative).read_text())
    assert len(ours) == len(set(ours)), "a point is written twice"
    assert set(ours) == set(expected)


def writable_samples() -> list[Path]:
    return [path for path in sample_files() if (SAMPLES / path).stat().st_size > 200]


@pytest.mark.parametrize("relative", writable_samples(), ids=str)
def test_encoder_agrees_with_the_library_serializer(relative):
    """Our hand-written line protocol and influxdb_client.Point's give the same points."""
    data, mv2 = encode(SAMPLES / relative, campaign=relative.parts[1])
    library = reference_line_protocol(SAMPLES / relative, relative.parts[1], NOW)
    ours = parse_lines(data)
    assert ours, "nothing encoded"
    assert Counter(ours) == Counter(parse_lines(library))
    assert mv2.summary.values_written == len(ours)


@pytest.mark.parametrize("relative", sample_files(), ids=str)
def test_every_sample_is_either_encoded_or_refused_with_a_reason(relative):
    path = SAMPLES / relative
    try:
        data, mv2 = encode(path, campaign=relative.parts[1])
    except FileDataError as error:
        assert error.path == str(path)
        assert error.reason
        assert path.stat().st_size < 200, "a real data file was refused"
        return
    summary = mv2.summary
    assert summary.values_written == data.count(b"\n")
    assert summary.rows_written + summary.rows_skipped == summary.data_rows


def test_tri_master_with_slave_and_custom_names_has_the_contract_tags():
    path = SAMPLES / "dominique/v003/02000800/T302_260208_211459_UTC.tsv"
    data, mv2 = encode(path, campaign="v003")
    first_slave = next(p for p in parse_lines(data) if p[2] == "M02000800_S04001002_Ch1_W")
    assert dict(first_slave[1]) == {
        "campaign": "v003",
        "channel_id": "M02000800_S04001002_Ch1",
        "channel_label": "Ch1",
        "channel_name": "minipince",
        "channel_unit": "W",
        "device": "MV2",
        "device_master_sn": "02000800",
        "device_sn": "04001002",
        "device_type": "slave",
    }
    assert mv2.summary.master_subtype == "tri"
    assert mv2.summary.slaves == ["04001002"]


def test_mono_master_labels():
    path = SAMPLES / "acme/mono-v003/02001311/T302_260122_162658_UTC.tsv"
    data, _ = encode(path, campaign="mono-v003")
    fields = {point[2] for point in parse_lines(data)}
    assert fields == {"M02001311_U1_V"} | {f"M02001311_Ch{n}_W" for n in range(1, 6)}
    voltage = next(p for p in parse_lines(data) if p[2] == "M02001311_U1_V")
    assert dict(voltage[1])["device_subtype"] == "mono"
    assert dict(voltage[1])["channel_name"] == "Ph 1"


def test_line_example_of_the_design_document_is_reproduced(tmp_path):
    """The example point in DESIGN.md, byte for byte (tag order sorted, float as written)."""
    path = tmp_path / "x.tsv"
    serials = "\t".join(["02001283"] * 2)
    path.write_text(f"{serials}\nMV_T302_V002\tPh 1 V\n01/01/24 00:00:00\t247.2\n")
    data, _ = encode(path, campaign="camp1")
    assert data == (
        b"electrical,campaign=camp1,channel_id=M02001283_U1,channel_label=U1,"
        b"channel_name=Ph\\ 1,channel_unit=V,device=MV2,device_master_sn=02001283,"
        b"device_sn=02001283,device_subtype=mono,device_type=master M02001283_U1_V=247.2 "
        b"1704067200\n"
    )


def test_batches_are_bounded_and_complete():
    path = SAMPLES / "acme/base/02001283/T302_260109_102002.tsv"
    whole, _ = encode(path, campaign="base")
    with MV2File(path, "base", ParseOptions(now=NOW, batch_points=100, block_size=4096)) as mv2:
        batches = list(mv2.batches())
    assert len(batches) > 10
    assert all(batch.count(b"\n") <= 100 for batch in batches)
    assert Counter(parse_lines(b"".join(batches))) == Counter(parse_lines(whole))


def test_summary_statistics_are_those_of_the_written_values():
    path = SAMPLES / "dominique/v003/02000800/T302_260208_211459_UTC.tsv"
    data, mv2 = encode(path, campaign="v003")
    points = parse_lines(data)
    by_field: dict[str, list[float]] = {}
    for point in points:
        by_field.setdefault(point[2], []).append(point[3])
    report = mv2.summary.as_dict()
    assert report["first_timestamp"] == "2026-02-08T19:10:00Z"
    assert report["last_timestamp"] == "2026-02-08T20:00:00Z"
    for channel in report["channels"]:
        values = by_field[channel["field"]]
        assert channel["count"] == len(values)
        assert channel["min"] == min(values)
        assert channel["max"] == max(values)
        assert channel["mean"] == pytest.approx(sum(values) / len(values))


# -- escaping as the server's parser reads it (models/points.go) -----------------------------
HOSTILE = ["a,b", "x=y", 'say "hi"', "Vo\\ie1", "sp  ace", "ünï ✓", "a\\,b\\=c\\ d", "\\\\x", "€"]


@pytest.mark.parametrize("text", HOSTILE)
def test_tag_values_and_field_keys_round_trip_through_the_server_parser(text):
    field_key = f"f_{storable_field_key_part(text)}"  # no backslash before , = " space
    line = (series_prefix("m", {"tag": text}, field_key) + b"1.5 1").decode()
    point = parse_line(line, "s")
    assert point.tags == (("tag", text),)
    assert point.fields == ((field_key, 1.5),)


@pytest.mark.parametrize(
    ("name", "unit", "stored_name", "stored_unit"),
    [
        ("fin\\", "V", "fin", "V"),
        ("back\\\\", "V\\", "back", "V"),
        ("Vo\\ie1", "k\\h", "Vo\\ie1", "k\\h"),
        ("a\\,b", "k\\,h", "a\\,b", "k,h"),
        ("n", 'a\\"b\\=c', "n", 'a"b=c'),
    ],
)
def test_what_influxdb_cannot_store_loses_only_the_offending_backslashes(
    name, unit, stored_name, stored_unit
):
    assert (storable_tag_value(name), storable_field_key_part(unit)) == (stored_name, stored_unit)
    line = (series_prefix("m", {"n": stored_name}, f"f_{stored_unit}") + b"1 1").decode()
    point = parse_line(line, "s")
    assert point.tags == (("n", stored_name),) and point.fields[0][0] == f"f_{stored_unit}"


def test_a_label_ending_in_a_backslash_is_written_without_it(tmp_path):
    path = tmp_path / "T302_test.tsv"
    path.write_text(
        "02001283\t02001283\t02001283\nMV_T302_V002\tfin\\ V\tVoie\\1 k\\,W\n"
        "01/10/25 12:00:00\t1\t2\n"
    )
    data, _ = encode(path, campaign="c")
    points, rejected = parse_batch(data.decode(), "s")
    assert rejected == []
    names = {dict(p.tags)["channel_name"]: p.fields[0][0] for p in points}
    assert names == {"fin": "M02001283_U1_V", "Voie\\1": "M02001283_Ch1_k,W"}


def test_the_writer_splits_a_batch_larger_than_the_batch_size():
    body = b"".join(b"m f=%d %d\n" % (i, i) for i in range(11))
    parts = split_lines(body, 4)
    assert [part.count(b"\n") for part in parts] == [4, 4, 3]
    assert b"".join(parts) == body
    assert split_lines(b"a\nb", 1) == [b"a\n", b"b"]


@pytest.mark.parametrize("text", HOSTILE)
def test_the_tests_own_reader_agrees_with_the_server_parser(text):
    """tests/lp.py, which the contract tests compare against, reads escapes as the server."""
    field_key = f"f_{storable_field_key_part(text)}"
    line = (series_prefix("m", {"tag": text}, field_key) + b"1.5 1").decode()
    assert lp_parse_line(line) == [("m", frozenset({("tag", text)}), field_key, 1.5, 1)]
