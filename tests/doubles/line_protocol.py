r"""A line protocol parser for the InfluxDB test double, after the server's own parser.

Reference: influxdata/influxdb ``models/points.go`` and ``pkg/escape/bytes.go`` (tag v2.7.12;
the same code as the 1.x ``models/`` package). The double must reject exactly what a real server
rejects and store exactly what it stores, so the escaping rules are the parser's, which are
not those of the documentation's prose:

==================  ==========================================  ================================
element             a separator is escaped when                 stored form
==================  ==========================================  ================================
measurement         the byte before it is ``\``                 ``\,`` and ``\ `` lose the
                    (``scanMeasurement``)                       backslash (``unescapeMeasurement``)
tag key, tag value  the byte before it is ``\``                 ``\,`` ``\ `` ``\=`` lose the
                    (``scanTagsKey``, ``scanTagsValue``)        backslash; any other backslash
                                                                stays (``unescapeTag``)
field key           a ``\`` and the byte after it are skipped   ``\,`` ``\"`` ``\ `` ``\=`` lose
                    as a pair (``scanFields``)                  the backslash (``escape.Unescape``)
string field value  ``\"`` and ``\\`` are pairs                 ``\"`` and ``\\`` become ``"`` and
                    (``scanFieldValue``)                        ``\`` (``unescapeStringField``)
==================  ==========================================  ================================

So ``a\\,b`` in a tag value is the value ``a\,b`` (the comma is escaped by the backslash before
it), and a tag value ending in a backslash swallows the separator after it: the line is
refused. The error reasons use the server's words ("missing fields", "invalid number",
"duplicate tags", "cannot use reserved tag key", "max key length exceeded"...).

Two paths parse a line:

- a compiled regular expression recognises the common shape of a line without any backslash
  in one call (fast enough for a few hundred thousand lines per second across the suite);
- a byte-by-byte scanner, written after ``scanKey``/``scanFields``, handles every other line
  and is the one that explains *why* a line is malformed.
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

MAX_KEY_LENGTH = 65535
_RESERVED_TAG_KEYS = frozenset({"_field", "_measurement", "time"})
_MEASUREMENT_ESCAPES = (("\\,", ","), ("\\ ", " "))
_TAG_ESCAPES = (("\\,", ","), ("\\ ", " "), ("\\=", "="))
_FIELD_KEY_UNESCAPE = re.compile(r'\\([," =])')
_STRING_UNESCAPE = re.compile(r'\\([\\"])')
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


def _unescape_replacing(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    """``unescapeMeasurement`` / ``unescapeTag``: each escape pair replaced in turn."""
    if "\\" not in text:
        return text
    for escaped, plain in escapes:
        text = text.replace(escaped, plain)
    return text


def unescape_measurement(text: str) -> str:
    return _unescape_replacing(text, _MEASUREMENT_ESCAPES)


def unescape_tag(text: str) -> str:
    return _unescape_replacing(text, _TAG_ESCAPES)


def unescape_field_key(text: str) -> str:
    """``escape.Unescape``: a backslash before ``,`` ``"`` space ``=`` is dropped."""
    return _FIELD_KEY_UNESCAPE.sub(r"\1", text) if "\\" in text else text


def parse_field_value(raw: str) -> object:
    """Turn the text of one field value into float, int, UInt, bool or str."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineError("unbalanced quotes")
        body = raw[1:-1]
        return _STRING_UNESCAPE.sub(r"\1", body) if "\\" in body else body
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
    tags: list[tuple[str, str]] = list(_TAG_PAIR.findall(match.group("tags")))
    for key, _ in tags:
        if key in _RESERVED_TAG_KEYS:
            raise LineError(f'cannot use reserved tag key "{key}"')
    parsed = (match.group("measurement"), _check_tags(tags))
    if len(_key_cache) >= _KEY_CACHE_SIZE:
        _key_cache.clear()
    _key_cache[section] = parsed
    return parsed


def _parse_fast(line: str, precision_ns: int, now_ns: int) -> Point | None:
    if "\\" in line:
        return None
    key_match = _KEY_SECTION.match(line)
    if key_match is None:
        return None
    rest = _REST.fullmatch(line, key_match.end())
    if rest is None:
        return None
    key = _parse_key(key_match.group())
    if key is None:
        return None
    if len(key_match.group().encode()) > MAX_KEY_LENGTH:
        return None
    pairs = _FIELD_PAIR.findall(rest.group("fields"))
    fields = tuple((name, parse_field_value(value)) for name, value in pairs)
    return Point(
        key[0], key[1], fields, _timestamp_ns(rest.group("timestamp"), precision_ns, now_ns)
    )


def _scan_key(line: str) -> tuple[int, str, list[tuple[str, str]]]:
    """``scanKey``: (end, raw measurement, raw tag pairs). A separator is escaped when the byte
    before it is a backslash (``scanMeasurement``, ``scanTagsKey``, ``scanTagsValue``)."""
    length = len(line)
    if not length or line[0] == ",":
        raise LineError("missing measurement")
    i = 0
    while True:
        i += 1
        if i >= length:
            raise LineError("missing fields")
        if line[i - 1] == "\\":
            continue
        if line[i] in ", ":
            break
    measurement = line[:i]
    tags: list[tuple[str, str]] = []
    while line[i] == ",":
        i += 1
        key_start = i
        if i >= length or line[i] in " ,=":
            raise LineError("missing tag key")
        while True:
            i += 1
            if i >= length or (line[i] in " ," and line[i - 1] != "\\"):
                raise LineError("missing tag value")
            if line[i] == "=" and line[i - 1] != "\\":
                break
        key = line[key_start:i]
        i += 1
        value_start = i
        if i >= length or line[i] in ", ":
            raise LineError("missing tag value")
        while True:
            i += 1
            if i >= length:
                raise LineError("missing fields")
            if line[i - 1] == "\\":
                continue
            if line[i] == "=":
                raise LineError("invalid tag format")
            if line[i] in ", ":
                break
        tags.append((key, line[value_start:i]))
    for key, _ in tags:
        if key in _RESERVED_TAG_KEYS:
            raise LineError(f'cannot use reserved tag key "{key}"')
    if len({key for key, _ in tags}) != len(tags):
        raise LineError("duplicate tags")
    return i, measurement, tags


def _scan_fields(line: str, i: int) -> tuple[int, str]:
    """``scanFields``: (end, raw field section). A backslash and the byte after it are skipped
    as a pair; a double quote opens a string only in a value."""
    length = len(line)
    while i < length and line[i] == " ":
        i += 1
    start = i
    quoted = False
    equals = commas = 0
    while i < length:
        char = line[i]
        if char == "\\" and i + 1 < length:
            i += 2
            continue
        if char == '"' and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if char == "=" and not quoted:
            equals += 1
            if line[i - 1] == " " and line[i - 2] != "\\":
                raise LineError("missing field key")
            if line[i - 1] == "," and line[i - 2] != "\\":
                raise LineError("missing field key")
            if i + 1 >= length or line[i + 1] in ", ":
                raise LineError("missing field value")
            if line[i + 1] != '"':
                i += 1
                while i < length and line[i] not in ", ":
                    i += 1
                continue
        if char == "," and not quoted:
            commas += 1
        if char == " " and not quoted:
            break
        i += 1
    if quoted:
        raise LineError("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise LineError("invalid field format")
    return i, line[start:i]


def _walk_fields(section: str) -> list[tuple[str, str]]:
    """The FieldIterator: key up to an ``=`` not preceded by a backslash (``scanTo``), value up
    to a ``,`` outside quotes (``scanFieldValue``)."""
    pairs: list[tuple[str, str]] = []
    i, length = 0, len(section)
    while i < length:
        key_start = i
        while i < length and not (section[i] == "=" and (i == 0 or section[i - 1] != "\\")):
            i += 1
        key = section[key_start:i]
        i += 1
        value_start = i
        quoted = False
        while i < length:
            if section[i] == "\\" and i + 1 < length and section[i + 1] in '"\\':
                i += 2
                continue
            if section[i] == '"':
                quoted = not quoted
            elif section[i] == "," and not quoted:
                break
            i += 1
        pairs.append((key, section[value_start:i]))
        i += 1
    return pairs


def _parse_slow(line: str, precision_ns: int, now_ns: int) -> Point:
    pos, measurement, raw_tags = _scan_key(line)
    key_length = len(line[:pos].encode())
    if key_length > MAX_KEY_LENGTH:
        raise LineError(f"max key length exceeded: {key_length} > {MAX_KEY_LENGTH}")
    pos, section = _scan_fields(line, pos)
    if not section:
        raise LineError("missing fields")
    pairs = _walk_fields(section)
    for key, _ in pairs:
        size = key_length + 4 + len(key.encode())
        if size > MAX_KEY_LENGTH:
            raise LineError(f"max key length exceeded: {size} > {MAX_KEY_LENGTH}")
    rest = line[pos:].lstrip(" ")
    timestamp, _, after = rest.partition(" ")
    if timestamp and after.strip(" "):
        raise LineError("point is invalid")
    fields = tuple((unescape_field_key(key), parse_field_value(value)) for key, value in pairs)
    tags = [(unescape_tag(key), unescape_tag(value)) for key, value in raw_tags]
    return Point(
        unescape_measurement(measurement),
        _check_tags(tags),
        fields,
        _timestamp_ns(timestamp or None, precision_ns, now_ns),
    )


def _escape_tag(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def series_key(point: Point) -> str:
    """The series key as the server prints it: measurement and sorted tags, escaped."""
    measurement = point.measurement.replace(",", "\\,").replace(" ", "\\ ")
    tags = "".join(f",{_escape_tag(key)}={_escape_tag(value)}" for key, value in point.tags)
    return measurement + tags


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
