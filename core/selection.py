"""Which files a run takes: one explicit file, a given list, or a sweep of the data folder.

- One explicit file (``tsv_parser.py --tsvFile``) or a list (the drainer's queued uploads):
  taken as given, in that order, whatever their age; each is checked later, when processed
  (``core/file_processor.py``).
- A sweep (no file given): every pending ``*.tsv`` of the data folder (``core/layout.py``'s
  ``pending_files``), or of one company's folder only (``--company``, the sweep after an SFTP
  disconnection), which is walked on its own. A file modified less than the minimum age ago
  may still be uploading: it is not taken, and the report lists it as skipped
  (``too_young``). A folder that cannot be listed is reported, since its files cannot even
  be named (the run then ends with exit code 5).

Nothing here opens, claims or moves a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.layout import pending_files
from core.outcomes import SkipReason, Status
from core.report import FileResult, printable


@dataclass
class Selection:
    """The files of one run, and what a sweep found without taking it."""

    files: list[Path] = field(default_factory=list)  # to process, in this order
    too_young: list[FileResult] = field(default_factory=list)  # skipped: may be uploading
    unlisted_folders: list[str] = field(default_factory=list)  # messages: "a folder could..."

    @classmethod
    def given(cls, files: Sequence[Path]) -> Selection:
        """An explicit file or list: taken as given."""
        return cls(files=list(files))

    def add_sweep(
        self, data_folder: Path, now: float, min_age_s: float, company: str | None = None
    ) -> None:
        """Add the pending files of the data folder (or of ``company``'s folder only).

        Fills the selection as the walk goes, so that what was found before a failure of the
        walk itself (an exception) stays in the report."""
        unreadable: list[str] = []
        for pending in pending_files(data_folder, now, unreadable, company):
            if pending.age_s < min_age_s:
                too_young = _too_young(data_folder, pending.path, pending.age_s, min_age_s)
                self.too_young.append(too_young)
            else:
                self.files.append(pending.path)
        self.unlisted_folders += [
            f"a folder could not be listed: {printable(folder)}" for folder in unreadable
        ]


def _too_young(data_folder: Path, path: Path, age_s: float, min_age_s: float) -> FileResult:
    return FileResult(
        file=relative_name(data_folder, path),
        status=Status.SKIPPED,
        notes=[f"modified {age_s:.0f} s ago: may still be uploading (minimum age {min_age_s:g} s)"],
        skip_reason=SkipReason.TOO_YOUNG,
    )


def relative_name(data_folder: Path, path: Path) -> str:
    """``path`` as the report names it: relative to the data folder when inside it."""
    try:
        return str(path.resolve().relative_to(data_folder.resolve()))
    except (ValueError, OSError):
        return str(path)
