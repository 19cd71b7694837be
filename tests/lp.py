"""A small, strict line-protocol reader for tests: lines to comparable point tuples.

Independent of the encoder under test (it follows the syntax rules, not our code), so the
contract tests compare two implementations rather than one with itself.
"""

from __future__ import annotations

import functools
import re

Point = tuple[str, frozenset[tuple[str, str]], str, float, int]


# As InfluxDB's parser reads them (models/points.go): a separator preceded by a backslash is
# escaped, and a backslash escapes nothing else (``\\`` is two backslashes, not one).
_SPLIT = {separator: re.compile(rf"(?<!\\){separator}") for separator in " ,"}
_KEY_VALUE = re.compile(r"(.*?)(?<!\\)=(.*)", re.S)
_ESCAPED = {
    "measurement": re.compile(r"\\([, ])"),
    "tag": re.compile(r"\\([,= ])"),
    "field": re.compile(r'\\([,= "])'),
}


def _split_unescaped(text: str, separator: str) -> list[str]:
    return _SPLIT[separator].split(text)


def _key_value(text: str, kind: str) -> tuple[str, str]:
    match = _KEY_VALUE.fullmatch(text)
    if match is None or not match.group(1):
        raise ValueError(f"expected key=value: {text!r}")
    return _unescape(match.group(1), kind), match.group(2)


def _unescape(text: str, kind: str) -> str:
    return _ESCAPED[kind].sub(r"\1", text) if "\\" in text else text


@functools.lru_cache(maxsize=4096)
def _parse_series(series: str) -> tuple[str, frozenset[tuple[str, str]]]:
    measurement, *tag_parts = _split_unescaped(series, ",")
    tags = []
    for part in tag_parts:
        key, value = _key_value(part, "tag")
        tags.append((key, _unescape(value, "tag")))
    tag_set = frozenset(tags)
    if len(tag_set) != len(tags):
        raise ValueError(f"duplicate tag in {series!r}")
    return _unescape(measurement, "measurement"), tag_set


def parse_line(line: str) -> list[Point]:
    """Points (one per field) of one line with float fields and a timestamp."""
    sections = _split_unescaped(line, " ")
    if len(sections) != 3:
        raise ValueError(f"expected 'series fields timestamp': {line!r}")
    series, fields, stamp = sections
    measurement, tag_set = _parse_series(series)
    points = []
    for field in _split_unescaped(fields, ","):
        key, value = _key_value(field, "field")
        points.append((measurement, tag_set, key, float(value), int(stamp)))
    return points


def parse_lines(text: str | bytes) -> list[Point]:
    """Every point of a line-protocol document (blank lines and ``#`` comments ignored, as
    InfluxDB's line-protocol parser does)."""
    if isinstance(text, bytes):
        text = text.decode()
    points: list[Point] = []
    for line in text.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            points.extend(parse_line(line))
    return points
