"""MV2 file formats: where the header is and what it says.

A format differs only in how its header is found; the rows that follow are read by one
path for all formats (``core.engine``):

- **V002** (``MV_T302_V002``, ``MV_T202_V002``...): line 1 holds the device serials,
  line 2 the format tag and the channel labels; rows follow.
- **V003** (``MV_T302_V003``): ``START_HEADER``, a JSON object, ``END_HEADER``,
  ``START_DATA``, the same two lines as V002, rows, then ``END_DATA``.

Header lines must be UTF-8 (a UTF-8 byte order mark at the start of the file is accepted
and ignored); Windows line endings are accepted everywhere. No line, header or data, may be
longer than ``MAX_LINE_BYTES`` (1 MiB, line ending excluded): a real header line is a few
kilobytes and a data row a few hundred bytes, so a longer line is a damaged file, refused as
``line_too_long`` naming the line as soon as the limit is passed, which bounds the memory
and the time a file can take, whatever it holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from core.errors import FileDataError

BOM = b"\xef\xbb\xbf"
FORMAT_TAG = re.compile(r"MV_([A-Z][0-9]{3})_V([0-9]{3})")
SUPPORTED_VERSIONS = {"002": "V002", "003": "V003"}
END_DATA = b"END_DATA"
MAX_LINE_BYTES = 1 << 20


def line_too_long(path: Path | str, line: int) -> FileDataError:
    """The error for a line longer than MAX_LINE_BYTES."""
    return FileDataError(
        path,
        line,
        "line_too_long",
        f"line {line} is longer than {MAX_LINE_BYTES:,} bytes (the file is damaged)",
    )


@dataclass
class Header:
    """What precedes the rows of an MV2 file."""

    format: str  # "V002" or "V003"
    format_tag: str  # e.g. "MV_T302_V003"
    model: str  # e.g. "T302"
    serials: list[str]  # line 1, one entry per column (column 0: the master)
    labels: list[str]  # line 2 after the format tag, one per value column
    serial_line: int  # 1-based line numbers of the two header lines
    label_line: int
    first_data_line: int  # 1-based number of the line after the label line
    metadata: dict[str, object] = field(default_factory=dict)  # V003 JSON
    metadata_line: int | None = None  # line of the V003 JSON (V002: the serial line)
    bom: bool = False
    crlf: bool = False
    raw_header_lines: tuple[bytes, bytes] = (b"", b"")


class _LineReader:
    """Reads header lines one at a time, counting them, tolerant of CRLF."""

    def __init__(self, stream: BinaryIO, path: Path) -> None:
        self.stream = stream
        self.path = path
        self.number = 0
        self.crlf = False
        self.bom = False

    def next_line(self) -> bytes | None:
        raw = self.stream.readline(MAX_LINE_BYTES + len(BOM) + 2)
        if not raw:
            return None
        self.number += 1
        if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES + (len(BOM) if self.number == 1 else 0):
            raise line_too_long(self.path, self.number)
        if self.number == 1 and raw.startswith(BOM):
            self.bom = True
            raw = raw[len(BOM) :]
        if raw.endswith(b"\r\n"):
            self.crlf = True
            return raw[:-2]
        return raw[:-1] if raw.endswith(b"\n") else raw

    def next_text(self, what: str) -> str:
        raw = self.next_line()
        if raw is None:
            raise FileDataError(
                self.path,
                self.number or None,
                "truncated_header",
                f"file ends before the {what}",
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileDataError(
                self.path,
                self.number,
                "not_utf8",
                f"{what} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1})",
            ) from None


def read_header(stream: BinaryIO, path: Path) -> Header:
    """Read and check the header; the stream is left at the first row.

    Raises FileDataError for an empty file, an unknown format tag, invalid V003 JSON,
    mismatched header lines and the like.
    """
    reader = _LineReader(stream, path)
    first = reader.next_line()
    if first is None:
        raise FileDataError(path, None, "empty_file", "file is empty (0 bytes)")
    if first.strip() == b"":
        raise FileDataError(path, 1, "blank_header", "line 1 is blank: expected the header")
    metadata: dict[str, object] = {}
    container = "V002"
    metadata_line = 1
    if first.strip() == b"START_HEADER":
        container = "V003"
        metadata_line = 2
        metadata = _read_v003_preamble(reader, path)
        serial_text = reader.next_text("serial number line")
    else:
        try:
            serial_text = first.decode("utf-8")
        except UnicodeDecodeError:
            raise FileDataError(path, 1, "not_utf8", "line 1 is not valid UTF-8") from None
    serial_line = reader.number
    label_text = reader.next_text("channel label line")
    label_line = reader.number
    serials = serial_text.split("\t")
    columns = label_text.split("\t")
    tag = columns[0].strip()
    match = FORMAT_TAG.fullmatch(tag)
    if match is None or match.group(2) not in SUPPORTED_VERSIONS:
        shown = tag if len(tag) <= 40 else tag[:40] + "..."
        raise FileDataError(
            path,
            label_line,
            "unknown_format",
            f"unknown format tag {shown!r}: expected MV_<model>_V002 or MV_<model>_V003",
        )
    version = SUPPORTED_VERSIONS[match.group(2)]
    if version != container:
        expected = "START_HEADER" if version == "V003" else "no START_HEADER"
        raise FileDataError(
            path,
            label_line,
            "format_mismatch",
            f"format tag {tag} does not match the file layout ({expected} expected for {version})",
        )
    if len(serials) != len(columns):
        raise FileDataError(
            path,
            label_line,
            "header_column_mismatch",
            f"line {serial_line} has {len(serials)} columns but line {label_line} has "
            f"{len(columns)}",
        )
    if len(columns) < 2:
        raise FileDataError(path, label_line, "no_channels", "the header names no channel")
    return Header(
        format=version,
        format_tag=tag,
        model=match.group(1),
        serials=[serial.strip() for serial in serials],
        labels=[label.strip() for label in columns[1:]],
        serial_line=serial_line,
        label_line=label_line,
        first_data_line=label_line + 1,
        metadata=metadata,
        metadata_line=metadata_line,
        bom=reader.bom,
        crlf=reader.crlf,
        raw_header_lines=(serial_text.encode(), label_text.encode()),
    )


def _read_v003_preamble(reader: _LineReader, path: Path) -> dict[str, object]:
    json_lines: list[str] = []
    json_line_number = reader.number + 1
    size = 0
    while True:
        text = reader.next_text("END_HEADER marker")
        if text.strip() == "END_HEADER":
            break
        json_lines.append(text)
        size += len(text)
        if size > MAX_LINE_BYTES:
            raise FileDataError(
                path,
                json_line_number,
                "header_too_long",
                f"the V003 header is longer than {MAX_LINE_BYTES:,} bytes "
                f"(no END_HEADER by line {reader.number})",
            )
    if not json_lines or not "".join(json_lines).strip():
        raise FileDataError(path, json_line_number, "invalid_json", "the V003 header is empty")
    try:
        metadata = json.loads("\n".join(json_lines))
    except RecursionError:
        raise FileDataError(
            path,
            json_line_number,
            "invalid_json",
            "the V003 header is nested too deeply to be a logger's header",
        ) from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):  # e.g. a number of thousands of digits
            raise FileDataError(
                path, json_line_number, "invalid_json", f"the V003 header cannot be read: {exc}"
            ) from None
        raise FileDataError(
            path,
            json_line_number + exc.lineno - 1,
            "invalid_json",
            f"the V003 header is not valid JSON: {exc.msg} at column {exc.colno}",
        ) from None
    if not isinstance(metadata, dict):
        raise FileDataError(
            path, json_line_number, "invalid_json", "the V003 header is not a JSON object"
        )
    marker = reader.next_text("START_DATA marker")
    if marker.strip() != "START_DATA":
        raise FileDataError(
            path,
            reader.number,
            "missing_marker",
            f"expected START_DATA after END_HEADER, found {marker[:40]!r}",
        )
    return metadata
