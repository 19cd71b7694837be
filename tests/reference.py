"""The obvious, slow way to turn an MV2 file into points: ``influxdb_client.Point`` objects.

It re-implements the row rules independently of the engine (plain loops, ``strptime``,
``float``), uses the library's own serializer, and serves as the reference for the
contract tests and as the baseline of the engine benchmark.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from influxdb_client import Point, WritePrecision

from core.channels import build_channels
from core.formats import read_header
from core.lineprotocol import MEASUREMENT

FLOOR = 1609459200


def reference_points(path: Path, campaign: str, now: float, zone: object = None) -> list[Point]:
    """Points for every writable value of the file, by the rules of the data contract."""
    with open(path, "rb") as stream:
        header = read_header(stream, path)
        channels = build_channels(header, path)
        text = stream.read().decode("utf-8", errors="replace").replace("\r\n", "\n")
    master = header.serials[0]
    seen: set[int] = set()
    points: list[Point] = []
    for line in text.split("\n"):
        if line.strip() == "END_DATA":
            break
        fields = line.split("\t")
        if len(fields) != len(channels) + 1:
            continue
        try:
            moment = datetime.strptime(fields[0].strip(), "%d/%m/%y %H:%M:%S")
        except ValueError:
            continue
        moment = moment.replace(tzinfo=zone or UTC)
        stamp = int(moment.timestamp())
        if stamp < FLOOR or stamp > now + 86400 or stamp in seen:
            continue
        values: list[float | None] = []
        for text_value in fields[1:]:
            try:
                number = float(text_value)
            except ValueError:
                number = None
            values.append(number if number is not None and math.isfinite(number) else None)
        if all(value == 0.0 for value in values):
            continue
        seen.add(stamp)
        for channel, value in zip(channels, values, strict=True):
            if value is None:
                continue
            point = Point(MEASUREMENT)
            for key, tag in channel.tags(campaign, master).items():
                point.tag(key, tag)
            point.field(channel.field_key, value)
            point.time(stamp, WritePrecision.S)
            points.append(point)
    return points


def reference_line_protocol(path: Path, campaign: str, now: float, zone: object = None) -> str:
    """The library's serialization of ``reference_points``, one point per line."""
    return "\n".join(
        point.to_line_protocol() for point in reference_points(path, campaign, now, zone)
    )
