r"""InfluxDB line protocol pieces: escaping and the per-channel series prefix.

The hot loop never escapes anything: every point of a channel starts with the same bytes
(measurement, sorted tag set, field key, ``=``), so that prefix is built once per channel and
the loop only appends the value and the timestamp.

Escaping follows the server's parser, not the prose of the documentation (influxdata/influxdb
``models/points.go`` and ``pkg/escape/bytes.go``, identical in 1.6 and 2.7):

============================  ===============================  =================================
element                       escaped here                     why (server code)
============================  ===============================  =================================
measurement                   ``,`` and space                  ``scanMeasurement`` and
                                                               ``unescapeMeasurement``
tag key, tag value            ``,``, space, ``=``; a           ``scanTagsValue`` ends a value at a
                              backslash is *not* escaped       ``,``/space whose previous byte is
                                                               not ``\``; ``unescapeTag`` only
                                                               turns ``\,`` ``\ `` ``\=`` back
field key                     ``,``, space, ``=``, ``"``       ``scanFields`` skips any ``\``
                                                               and the byte after it;
                                                               ``escape.Unescape`` turns those
                                                               four back
string field value            ``"`` and ``\``                 ``scanFieldValue``,
                                                               ``unescapeStringField``
============================  ===============================  =================================

So a literal backslash is written as one backslash. What cannot be stored as is:

- a tag value (or key) ending in ``\``: the backslash would escape the separator after it;
- a field key ending in ``\``, or with a ``\`` before ``,`` space ``=`` ``"``: ``scanFields``
  pairs the backslash with the next byte, so the escape of that byte is lost.

``storable_tag_value`` and ``storable_field_key_part`` drop exactly those backslashes (the
README's table of oddities says so); every other text round-trips unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MEASUREMENT = "electrical"

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_TAG_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
_FIELD_KEY_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", '"': '\\"'})
_TRAILING_BACKSLASHES = re.compile(r"\\+$")
_FIELD_KEY_BAD_BACKSLASHES = re.compile(r'\\+(?=[, ="]|$)')


def escape_measurement(name: str) -> str:
    """Escape a measurement name."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Escape a tag key or a tag value (see the module docstring)."""
    return text.translate(_TAG_ESCAPES)


def escape_field_key(text: str) -> str:
    """Escape a field key (see the module docstring)."""
    return text.translate(_FIELD_KEY_ESCAPES)


def storable_tag_value(text: str) -> str:
    """``text`` without the trailing backslashes no tag value can end with."""
    return _TRAILING_BACKSLASHES.sub("", text)


def storable_field_key_part(text: str) -> str:
    """``text`` without the backslashes a field key cannot hold: at the end, or before
    ``,`` space ``=`` ``"``. The result is also a storable tag value."""
    return _FIELD_KEY_BAD_BACKSLASHES.sub("", text)


def series_prefix(measurement: str, tags: Mapping[str, str], field_key: str) -> bytes:
    """``measurement,tag=value,... field_key=`` as UTF-8 bytes, tags sorted by key.

    Tags with an empty value are left out: line protocol cannot carry them.
    """
    return (
        f"{escape_measurement(measurement)}{_tag_text(tags)} {escape_field_key(field_key)}="
    ).encode()


def _tag_text(tags: Mapping[str, str]) -> str:
    return "".join(
        f",{escape_key(key)}={escape_key(value)}" for key, value in sorted(tags.items()) if value
    )


def _field_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def format_point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, object], timestamp: int
) -> bytes:
    """One line of line protocol with typed fields (int → ``i``, str → quoted), for the small
    bookkeeping records; the hot path builds its lines from ``series_prefix`` instead."""
    field_text = ",".join(
        f"{escape_field_key(key)}={_field_value(value)}"
        for key, value in fields.items()
        if value is not None
    )
    return f"{escape_measurement(measurement)}{_tag_text(tags)} {field_text} {timestamp}\n".encode()
