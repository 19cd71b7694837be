"""The hook's two logs: the line per event (``uploads.log``) and its children's output.

``write_log_line`` writes one line of ``uploads.log`` in the form ``core/hook.py``'s
docstring gives; ``log_value`` quotes or escapes each value so that a name holding a newline
or a terminal escape cannot forge or garble a line. ``keep_output`` appends what the parser
and the playbooks printed to ``hook-output.log``, each line prefixed with the ``pid=`` of
the process that writes it and escaped the same way; ``log_warnings_to`` sends the drainer's
own warnings and tracebacks there too, in the same form. A log that cannot be written is not
an error: the line goes to stderr instead (``uploads.log``) or is dropped (the output).

Standard library only, like the rest of the hook.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from core.hook_config import Config
from core.outcomes import HookOutcome

_BARE = re.compile(r"[A-Za-z0-9_./:@+,-]+")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}


def log_value(text: str) -> str:
    """A value as the log writes it: bare when it holds only ``A-Za-z0-9_./:@+,-``, in double
    quotes when printable without ``"`` or ``\\``, else in bash's ``$'...'`` form."""
    if text and _BARE.fullmatch(text):
        return text
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return "$'" + "".join(_escape_char(char) for char in text) + "'"


def _escape_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_output_line(line: str) -> str:
    """A line of a child's output with every control character escaped (tabs kept)."""
    return "".join(
        char if char == "\t" or char.isprintable() else _escape_char(char) for char in line
    )


def write_log_line(
    config: Config,
    *,
    event: str,
    user: str,
    path: str,
    outcome: HookOutcome,
    duration_ms: int,
    detail: str,
) -> None:
    """One line of ``uploads.log`` (see ``core/hook.py``), from this process."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    fields = [
        stamp,
        f"pid={os.getpid()}",
        f"event={log_value(event)}",
        f"user={log_value(user or '-')}",
        f"path={log_value(path or '-')}",
        f"outcome={outcome}",
        f"duration_ms={duration_ms}",
        f"detail={log_value(detail)}",
    ]
    _append(config.hook_log, " ".join(fields) + "\n", fallback=sys.stderr)


def keep_output(config: Config, text: str) -> None:
    """A child's output into ``hook-output.log``, each line escaped and prefixed."""
    if not text:
        return
    prefix = f"pid={os.getpid()} "
    lines = [prefix + escape_output_line(line) + "\n" for line in text.splitlines()]
    _append(config.output_log, "".join(lines), fallback=None)


def _append(path: Path, text: str, fallback: TextIO | None) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(text)
    except OSError:
        if fallback is not None:
            fallback.write(text)


class _OutputFormatter(logging.Formatter):
    """hook-output.log's form: each line prefixed with the pid and escaped."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"pid={os.getpid()} "
        text = super().format(record)
        return "\n".join(prefix + escape_output_line(line) for line in text.splitlines())


def log_warnings_to(config: Config) -> None:
    """Warnings and tracebacks of this process go to hook-output.log (the drainer's stderr is
    /dev/null)."""
    try:
        config.output_log.parent.mkdir(parents=True, exist_ok=True)
        stream = open(config.output_log, "a", encoding="utf-8")  # noqa: SIM115 - for the life
    except OSError:
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_OutputFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
