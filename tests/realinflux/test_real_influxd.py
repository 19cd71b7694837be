"""The real storage engine: tsv_parser.py writes into influxd, InfluxQL reads every point back.

What the dry run says it would write (``--dry-run --lp-out``) is parsed with the double's
server-faithful parser, and must be exactly what influxd stores: same series keys, fields,
float values and timestamps, the same count, no write refused. influxd is the judge here; the
double's rules are checked against it by the same comparison.

Run this tier alone with ``.venv/bin/python -m pytest -q tests/realinflux``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from core.lineprotocol import escape_key
from tests.doubles.line_protocol import parse_batch
from tests.helpers import SAMPLES, last_report
from tests.helpers import run_parser as run_parser_process
from tests.realinflux.server import RealInflux

V003 = "dominique/v003/02000800/T302_260208_211459_UTC.tsv"

StoredPoint = tuple[str, frozenset[tuple[str, str]], str, object, int]


def run_parser(env: dict[str, str], data: Path, *args: str) -> subprocess.CompletedProcess:
    return run_parser_process(env, data, *args, timeout=600)


def planned_points(env: dict[str, str], data: Path, tmp_path: Path) -> dict[str, set[StoredPoint]]:
    """The points the dry run would write, per bucket (``# bucket:`` lines of --lp-out)."""
    lp_path = tmp_path / "planned.lp"
    run_parser(env, data, "--dry-run", "--lp-out", str(lp_path))
    planned: dict[str, set[StoredPoint]] = defaultdict(set)
    bucket = None
    block: list[str] = []

    def flush() -> None:
        points, rejected = parse_batch("\n".join(block), "s")
        assert rejected == [], [line.message() for line in rejected]
        for point in points:
            for field, value in point.fields:
                planned[bucket].add(
                    (point.measurement, frozenset(point.tags), field, value, point.time_ns)
                )

    for line in lp_path.read_text().split("\n"):
        if line.startswith("# bucket: "):
            if block:
                flush()
            bucket, block = line.split()[2], []
        elif line:
            block.append(line)
    if block:
        flush()
    return dict(planned)


def stored_points(server: RealInflux, bucket: str) -> list[StoredPoint]:
    """Every ``electrical`` value influxd holds in the bucket, read back with InfluxQL."""
    answer = server.query('SELECT * FROM "electrical" GROUP BY *', bucket)
    points = []
    for result in answer["results"]:
        assert "error" not in result, result
        for series in result.get("series", []):
            tags = frozenset((k, v) for k, v in series.get("tags", {}).items() if v)
            columns = series["columns"]
            for row in series["values"]:
                for column, value in zip(columns[1:], row[1:], strict=True):
                    if value is not None:
                        points.append((series["name"], tags, column, value, row[0]))
    return points


def _rows(answer: dict) -> list[list]:
    return [
        row
        for result in answer["results"]
        for series in result.get("series", [])
        if series["name"] == "electrical"
        for row in series["values"]
    ]


def test_every_sample_is_stored_exactly_as_the_dry_run_says(real_influx, real_env, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLES, data)
    planned = planned_points(real_env, data, tmp_path)
    assert set(planned) == {"acme", "company1", "dominique"}

    result = run_parser(real_env, data)
    assert result.returncode == 1, result.stderr  # the empty and the header-only samples
    report = last_report(real_env)
    errors = {e["file"]: e["error"]["code"] for e in report["files"] if e["status"] == "error"}
    assert sorted(errors.values()) == ["empty_file", "no_data_rows"], errors
    assert {e["status"] for e in report["files"]} == {"ok", "error"}
    assert set(real_influx.adapter.write_statuses) == {204}

    for bucket, expected in planned.items():
        stored = stored_points(real_influx, bucket)
        assert len(stored) == len(set(stored)) == len(expected), bucket
        assert set(stored) == expected, bucket
        types = {row[1] for row in _rows(real_influx.query("SHOW FIELD KEYS", bucket))}
        assert types == {"float"}, bucket  # powerview_ingest records hold other types
    assert sum(len(points) for points in planned.values()) == report["totals"]["points_written"]


HOSTILE_LABELS = {
    # label in the file: (channel_name stored, channel_unit stored)
    "a,b V": ("a,b", "V"),
    "x=y A": ("x=y", "A"),
    'say "hi" W': ('say "hi"', "W"),
    "Vo\\ie1 V": ("Vo\\ie1", "V"),
    "sp  ace V": ("sp  ace", "V"),
    "ünï ✓ €": ("ünï ✓", "€"),
    "a\\,b\\=c\\ d kW": ("a\\,b\\=c\\ d", "kW"),
    "fin\\ V": ("fin", "V"),  # a tag value cannot end with a backslash
    "back\\\\ V": ("back", "V"),
    "u1 k\\h": ("u1", "k\\h"),  # a backslash before a letter stays, in the field key too
    "u2 k\\,h": ("u2", "k,h"),  # a field key cannot hold a backslash before a comma
    'u3 a"b=c': ("u3", 'a"b=c'),
}


def hostile_file(folder: Path) -> Path:
    labels = list(HOSTILE_LABELS)
    serials = "\t".join(["02001283"] * (len(labels) + 1))
    rows = "".join(
        f"{day:02d}/10/25 12:00:00\t" + "\t".join(f"{day}.{i + 1}" for i in range(len(labels)))
        + "\n"
        for day in (1, 2, 3)
    )  # fmt: skip
    path = folder / "hostile" / "labels" / "02001283" / "T302_251003_120000.tsv"
    path.parent.mkdir(parents=True)
    path.write_text(f"{serials}\nMV_T302_V002\t" + "\t".join(labels) + f"\n{rows}")
    return path


def test_hostile_channel_labels_round_trip(real_influx, real_env, tmp_path):
    data = tmp_path / "data"
    hostile_file(data)
    planned = planned_points(real_env, data, tmp_path)
    result = run_parser(real_env, data)
    assert result.returncode == 0, result.stderr
    stored = stored_points(real_influx, "hostile")
    assert set(stored) == planned["hostile"]
    assert len(stored) == 3 * len(HOSTILE_LABELS)
    names_units = {
        (dict(tags)["channel_name"], dict(tags)["channel_unit"]) for _, tags, *_ in stored
    }
    assert names_units == set(HOSTILE_LABELS.values())
    fields = {field for _, _, field, _, _ in stored}
    # mono master: U1, then Ch1..Ch11
    assert "M02001283_Ch10_k,h" in fields and 'M02001283_Ch11_a"b=c' in fields
    assert "M02001283_Ch9_k\\h" in fields


def test_another_writers_integer_field_sends_the_file_to_error(real_influx, real_env, tmp_path):
    """A partial write (field type conflict): the file goes to error/ with the server's reason
    and stays there: the next run does not try it again."""
    data = tmp_path / "data"
    source = data / V003
    source.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / V003, source)
    planned = planned_points(real_env, data, tmp_path)["dominique"]
    measurement, tags, field, _, time_ns = min(planned, key=lambda point: point[4])
    real_influx.query('CREATE DATABASE "dominique"')
    tag_text = ",".join(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags))
    status, body, _ = real_influx.influxd.request(
        "POST",
        "/write",
        {"db": "dominique", "precision": "n"},
        f"{measurement},{tag_text} {field}=7i {time_ns}\n".encode(),
        {},
    )
    assert status == 204, body

    result = run_parser(real_env, data)
    assert result.returncode == 1, result.stderr
    entry = last_report(real_env)["files"][0]
    assert entry["status"] == "error"
    assert "field type conflict" in entry["error"]["reason"]
    sidecar = source.parent / "error" / (source.name + ".error.json")
    assert "field type conflict" in json.loads(sidecar.read_text())["reason"]
    assert (source.parent / "error" / source.name).exists() and not source.exists()

    again = run_parser(real_env, data)
    assert again.returncode == 0, again.stderr
    assert (source.parent / "error" / source.name).exists()
    assert not [e for e in last_report(real_env)["files"] if e["status"] != "skipped"]
