"""Files outside the data folder's layout, reported once and then remembered.

A file at the wrong depth (``acme/base/x.tsv``) has no device folder, hence no ``error/`` to
be set aside in, and stays where it is. Without a memory, every sweep (every five minutes)
would report it again as an error and exit 1, for ever. The first sweep that meets it reports
it as an error; later sweeps list it as skipped (``reported_before``), pointing to that first
report, for as long as the same file (same inode, size and modification time) is there. A
file replaced under the same name is new, and reported again.

The memory is ``misplaced-files.json`` in the run reports folder; files that are gone are
forgotten at the next save. Two sweeps saving at once may both report a file: harmless.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.report import utc_now_iso, write_json_atomically

STATE_FILE = "misplaced-files.json"


class MisplacedFiles:
    def __init__(self, folder: Path) -> None:
        self.path = folder / STATE_FILE
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self._known: dict[str, dict[str, Any]] = loaded if isinstance(loaded, dict) else {}
        self._changed = False

    @staticmethod
    def _identity(path: Path) -> list[int] | None:
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        return [info.st_ino, info.st_size, info.st_mtime_ns]

    def reported_at(self, path: Path) -> str | None:
        """When the same file was first reported, or None when it was not."""
        entry = self._known.get(str(path))
        if isinstance(entry, dict) and entry.get("identity") == self._identity(path):
            return str(entry.get("reported_at"))
        return None

    def remember(self, path: Path, run_id: str) -> None:
        identity = self._identity(path)
        if identity is not None:
            self._known[str(path)] = {
                "identity": identity,
                "reported_at": utc_now_iso(),
                "run_id": run_id,
            }
            self._changed = True

    def save(self) -> None:
        """Write the memory, without the files that are gone or changed."""
        kept = {
            path: entry
            for path, entry in self._known.items()
            if isinstance(entry, dict) and entry.get("identity") == self._identity(Path(path))
        }
        if kept != self._known or self._changed:
            write_json_atomically(self.path, kept)
