"""InfluxDB line protocol pieces: escaping and the per-channel series prefix.

The hot loop never escapes anything: every point of a channel starts with the same bytes
(measurement, sorted tag set, field key, ``=``), so that prefix is built once per channel and
the loop only appends the value and the timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping

MEASUREMENT = "electrical"

# Escaping rules of the official syntax: measurement names escape commas and spaces; tag keys,
# tag values and field keys escape commas, equals signs and spaces. A backslash is doubled so
# that a literal backslash (even a trailing one) survives.
_MEASUREMENT_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})
_KEY_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "=": "\\="})


def escape_measurement(name: str) -> str:
    """Escape a measurement name."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Escape a tag key, a tag value or a field key."""
    return text.translate(_KEY_ESCAPES)


def series_prefix(measurement: str, tags: Mapping[str, str], field_key: str) -> bytes:
    """``measurement,tag=value,... field_key=`` as UTF-8 bytes, tags sorted by key.

    Tags with an empty value are left out: line protocol cannot carry them.
    """
    return f"{escape_measurement(measurement)}{_tag_text(tags)} {escape_key(field_key)}=".encode()


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
        f"{escape_key(key)}={_field_value(value)}"
        for key, value in fields.items()
        if value is not None
    )
    return f"{escape_measurement(measurement)}{_tag_text(tags)} {field_text} {timestamp}\n".encode()
