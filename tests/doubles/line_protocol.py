"""A line protocol parser for the InfluxDB test double, written from the documented syntax.

Reference: "Line protocol" in the InfluxDB OSS v2 documentation (elements, data types, special
characters and escaping, comments). The double must reject exactly what a real server rejects,
so the parser is strict where the documentation is strict, and its error reasons use the words
of InfluxDB 2.x's own parser ("missing fields", "invalid number", "duplicate tags", ...), which
is what clients and people grep for.

Two paths parse a line:

- a compiled regular expression recognises the common, well-formed shape in one call (fast
  enough for a few hundred thousand lines per second across the test suite);
- a character-by-character scanner handles everything the expression does not match and is the
  one that explains *why* a line is malformed.

Both paths apply the same escaping rules: in measurements a backslash escapes a comma or a
space; in tag keys, tag values and field keys it escapes a comma, an equals sign or a space; in
string field values it escapes a double quote; everywhere two contiguous backslashes stand for
one. Any other backslash is a literal backslash.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

MIN_TIME_NS = -9223372036854775806
MAX_TIME_NS = 9223372036854775806
PRECISION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1

_MEASUREMENT_SPECIALS = frozenset(", \\")
_KEY_SPECIALS = frozenset(",= \\")
_STRING_SPECIALS = frozenset('"\\')
_BOOLEANS = {
    "t": True,
    "T": True,
    "true": True,
    "True": True,
    "TRUE": True,
    "f": False,
    "F": False,
    "false": False,
    "False": False,
    "FALSE": False,
}
_INT = re.compile(r"-?\d+i")
_UINT = re.compile(r"\d+u")
_FLOAT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESTAMP = re.compile(r"-?\d+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

# One well-formed line: key section (measurement and tags), fields, optional timestamp. The
# possessive quantifiers keep the engine from backtracking over long runs of plain characters.
_KEY_CHAR = r"(?:[^\\,= \n]++|\\.)"
_FIELD_VALUE = r'(?:"(?:[^\\"]++|\\.)*+"|[^,\\ "\n]++)'
_FIELD = rf"{_KEY_CHAR}+={_FIELD_VALUE}"
_KEY_SECTION = re.compile(r"(?:[^\\ \n]++|\\.)++", re.DOTALL)
_KEY = re.compile(
    r"(?P<measurement>(?:[^\\, \n]++|\\.)++)" rf"(?P<tags>(?:,{_KEY_CHAR}+={_KEY_CHAR}+)*+)",
    re.DOTALL,
)
_REST = re.compile(
    rf" ++(?P<fields>{_FIELD}(?:,{_FIELD})*+)(?: ++(?P<timestamp>-?\d+))? *+", re.DOTALL
)
_TAG_PAIR = re.compile(rf",({_KEY_CHAR}+)=({_KEY_CHAR}+)", re.DOTALL)
_FIELD_PAIR = re.compile(rf"({_KEY_CHAR}+)=({_FIELD_VALUE})", re.DOTALL)
_KEY_CACHE_SIZE = 100_000
_key_cache: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}


class UInt(int):
    """An unsigned integer field value (``123u``), kept distinct from a signed one (``123i``)."""

    def __repr__(self) -> str:
        return f"{int(self)}u"


class LineError(ValueError):
    """A line that InfluxDB would refuse; ``reason`` uses InfluxDB's own wording."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Point(NamedTuple):
    """One parsed line: tags sorted by key, fields in line order, time in nanoseconds."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, object], ...]
    time_ns: int


@dataclass(frozen=True)
class RejectedLine:
    """A malformed line of a batch: its 1-based number, its text and the reason."""

    number: int
    text: str
    reason: str

    def message(self) -> str:
        """The sentence InfluxDB 2.x writes for one line it cannot parse."""
        return f"unable to parse '{self.text}': {self.reason}"


def field_kind(value: object) -> str:
    """The InfluxDB data type name of a stored field value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, UInt):
        return "unsigned"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "string"


def _unescape(text: str, specials: frozenset[str]) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(
        lambda match: match.group(1) if match.group(1) in specials else match.group(0), text
    )


def parse_field_value(raw: str) -> object:
    """Turn the text of one field value into float, int, UInt, bool or str."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineError("unbalanced quotes")
        return _unescape(raw[1:-1], _STRING_SPECIALS)
    last = raw[-1]
    if last == "i" and _INT.fullmatch(raw):
        number = int(raw[:-1])
        if not -MAX_INT64 - 1 <= number <= MAX_INT64:
            raise LineError(f"unable to parse integer {raw[:-1]}: value out of range")
        return number
    if last == "u" and _UINT.fullmatch(raw):
        number = int(raw[:-1])
        if number > MAX_UINT64:
            raise LineError(f"unable to parse unsigned {raw[:-1]}: value out of range")
        return UInt(number)
    if raw in _BOOLEANS:
        return _BOOLEANS[raw]
    first = raw[0]
    if first.isdigit() or first in "-.":
        if not _FLOAT.fullmatch(raw):
            raise LineError("invalid number")
        number = float(raw)
        if math.isinf(number):
            raise LineError("invalid float")
        return number
    raise LineError("invalid boolean")


def _timestamp_ns(raw: str | None, precision_ns: int, now_ns: int) -> int:
    if raw is None:
        return now_ns - now_ns % precision_ns
    if not _TIMESTAMP.fullmatch(raw):
        raise LineError("bad timestamp")
    time_ns = int(raw) * precision_ns
    if not MIN_TIME_NS <= time_ns <= MAX_TIME_NS:
        raise LineError(f"time outside range {MIN_TIME_NS} - {MAX_TIME_NS}")
    return time_ns


def _check_tags(tags: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    tags.sort()
    for index in range(1, len(tags)):
        if tags[index][0] == tags[index - 1][0]:
            raise LineError("duplicate tags")
    return tuple(tags)


def _parse_key(section: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """Measurement and sorted tags of a key section, cached: a batch repeats its series."""
    cached = _key_cache.get(section)
    if cached is not None:
        return cached
    match = _KEY.fullmatch(section)
    if match is None:
        return None
    tags = [
        (_unescape(key, _KEY_SPECIALS), _unescape(value, _KEY_SPECIALS))
        for key, value in _TAG_PAIR.findall(match.group("tags"))
    ]
    parsed = (_unescape(match.group("measurement"), _MEASUREMENT_SPECIALS), _check_tags(tags))
    if len(_key_cache) >= _KEY_CACHE_SIZE:
        _key_cache.clear()
    _key_cache[section] = parsed
    return parsed


def _parse_fast(line: str, precision_ns: int, now_ns: int) -> Point | None:
    key_match = _KEY_SECTION.match(line)
    if key_match is None:
        return None
    rest = _REST.fullmatch(line, key_match.end())
    if rest is None:
        return None
    key = _parse_key(key_match.group())
    if key is None:
        return None
    fields = tuple(
        (_unescape(name, _KEY_SPECIALS), parse_field_value(value))
        for name, value in _FIELD_PAIR.findall(rest.group("fields"))
    )
    return Point(
        key[0], key[1], fields, _timestamp_ns(rest.group("timestamp"), precision_ns, now_ns)
    )


class _Scanner:
    """The slow path: walks one line character by character and names the first problem."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.line)

    def peek(self) -> str:
        return self.line[self.pos]

    def take_until(self, stops: str, forbidden: str = "") -> str:
        """Consume characters up to an unescaped stop character; a backslash escapes one."""
        start = self.pos
        line = self.line
        while self.pos < len(line):
            char = line[self.pos]
            if char == "\\" and self.pos + 1 < len(line):
                self.pos += 2
                continue
            if char in stops:
                break
            if char in forbidden:
                raise LineError(forbidden_reason(char))
            self.pos += 1
        return line[start : self.pos]

    def skip_spaces(self) -> None:
        while self.pos < len(self.line) and self.line[self.pos] == " ":
            self.pos += 1


def forbidden_reason(char: str) -> str:
    """Why a character cannot appear unescaped where the scanner met it."""
    return "invalid tag format" if char == "=" else "invalid field format"


def _parse_slow(line: str, precision_ns: int, now_ns: int) -> Point:
    scan = _Scanner(line)
    if scan.peek() == ",":
        raise LineError("missing measurement")
    measurement = scan.take_until(", ")
    if scan.at_end():
        raise LineError("missing fields")
    tags: list[tuple[str, str]] = []
    while scan.peek() == ",":
        scan.pos += 1
        key = scan.take_until(", =")
        if not key:
            raise LineError("missing tag key")
        if scan.at_end() or scan.peek() != "=":
            raise LineError("missing tag value")
        scan.pos += 1
        value = scan.take_until(", ", forbidden="=")
        if not value:
            raise LineError("missing tag value")
        if scan.at_end():
            raise LineError("missing fields")
        tags.append((_unescape(key, _KEY_SPECIALS), _unescape(value, _KEY_SPECIALS)))
    scan.skip_spaces()
    if scan.at_end():
        raise LineError("missing fields")
    fields: list[tuple[str, object]] = []
    timestamp: str | None = None
    while True:
        key = scan.take_until("=, ")
        if not key:
            raise LineError("missing field key")
        if scan.at_end() or scan.peek() != "=":
            raise LineError("invalid field format")
        scan.pos += 1
        if scan.at_end() or scan.peek() in ", ":
            raise LineError("missing field value")
        if scan.peek() == '"':
            start = scan.pos
            scan.pos += 1
            scan.take_until('"')
            if scan.at_end():
                raise LineError("unbalanced quotes")
            scan.pos += 1
            raw = line[start : scan.pos]
        else:
            raw = scan.take_until(", ")
            if '"' in raw:
                raise LineError("invalid field format")
        fields.append((_unescape(key, _KEY_SPECIALS), parse_field_value(raw)))
        if scan.at_end():
            break
        if scan.peek() == ",":
            scan.pos += 1
            continue
        if scan.peek() != " ":
            raise LineError("invalid field format")
        scan.skip_spaces()
        if not scan.at_end():
            timestamp = scan.take_until(" ")
            scan.skip_spaces()
            if not scan.at_end():
                raise LineError("point is invalid")
        break
    return Point(
        _unescape(measurement, _MEASUREMENT_SPECIALS),
        _check_tags(tags),
        tuple(fields),
        _timestamp_ns(timestamp, precision_ns, now_ns),
    )


def parse_line(line: str, precision: str = "ns", now_ns: int = 0) -> Point:
    """Parse one non-blank, non-comment line; raise LineError when InfluxDB would refuse it."""
    precision_ns = PRECISION_NS[precision]
    point = _parse_fast(line, precision_ns, now_ns)
    return point if point is not None else _parse_slow(line, precision_ns, now_ns)


def split_lines(text: str) -> list[tuple[int, str]]:
    """Split a batch into (line number, line) pairs, keeping newlines inside string fields.

    A double quote opens a string only in a field value (after an unescaped space and an
    equals sign), as in InfluxDB's own scanner; a quoted string may span lines.
    """
    if '"' not in text:
        return list(enumerate(text.split("\n"), start=1))
    lines: list[tuple[int, str]] = []
    start = 0
    number = 1
    first_number = 1
    in_fields = quoted = False
    equals = commas = 0
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "\n":
            if not quoted:
                lines.append((first_number, text[start:index]))
                start = index + 1
                in_fields = False
                equals = commas = 0
                first_number = number + 1
            number += 1
        elif char == " " and not quoted:
            in_fields = True
        elif in_fields and not quoted and char == "=":
            equals += 1
        elif in_fields and not quoted and char == ",":
            commas += 1
        elif in_fields and char == '"' and (quoted or equals > commas):
            quoted = not quoted
        index += 1
    lines.append((first_number, text[start:]))
    return lines


def parse_batch(
    text: str, precision: str = "ns", now_ns: int = 0
) -> tuple[list[Point], list[RejectedLine]]:
    """Parse a write body: the points, and every line InfluxDB would reject.

    Blank lines and lines whose first non-blank character is ``#`` are skipped. Lines without a
    timestamp take ``now_ns`` truncated to the precision, as the server does.
    """
    precision_ns = PRECISION_NS[precision]
    points: list[Point] = []
    rejected: list[RejectedLine] = []
    for number, raw_line in split_lines(text):
        line = raw_line.lstrip(" \t")
        if not line or line[0] == "#":
            continue
        try:
            point = _parse_fast(line, precision_ns, now_ns)
            if point is None:
                point = _parse_slow(line, precision_ns, now_ns)
        except LineError as error:
            rejected.append(RejectedLine(number, line, error.reason))
            continue
        points.append(point)
    return points, rejected
