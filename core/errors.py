"""Errors that name the file and the line, so an operator can find the problem at once."""

from __future__ import annotations

from pathlib import Path


class FileDataError(Exception):
    """A file-level problem: the file cannot be ingested as it is (it belongs in ``error/``).

    ``line`` is 1-based, or None when the problem is not tied to a line (an empty file).
    ``code`` is a short stable identifier for reports and tests (``empty_file``, ...).
    """

    def __init__(self, path: Path | str, line: int | None, code: str, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.code = code
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")

    def as_dict(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line, "code": self.code, "reason": self.reason}
