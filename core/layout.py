"""The data folder: ``<data>/<company>/<campaign>/<device>/<file>.tsv``.

``<company>`` is the InfluxDB bucket, ``<campaign>`` the ``campaign`` tag, ``<device>`` the
master's serial as the operator named the folder. Processed files live in the device
folder's ``parsed/`` and ``error/`` subfolders, which are never read again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import FileDataError
from core.names import UnsafeNameError, check_name

PARSED_DIR = "parsed"
ERROR_DIR = "error"
DONE_DIRS = frozenset({PARSED_DIR, ERROR_DIR})
TSV_SUFFIX = ".tsv"


@dataclass(frozen=True)
class FileLocation:
    """Where a file sits in the data folder, and what that makes of it."""

    data_folder: Path  # resolved
    path: Path  # resolved, inside data_folder
    relative: str  # path relative to the data folder, with "/"
    company: str
    campaign: str
    device_folder: str

    @property
    def device_dir(self) -> Path:
        return self.path.parent


class LayoutError(FileDataError):
    """The file is outside the data folder, at the wrong depth, or under an unsafe name."""


def is_tsv_name(name: str) -> bool:
    """A visible ``*.tsv`` file name (SFTPGo's atomic upload temp files start with a dot)."""
    return name.lower().endswith(TSV_SUFFIX) and not name.startswith(".")


def locate(data_folder: Path, file_path: Path) -> FileLocation:
    """Resolve links and check that ``file_path`` is a regular file at the right depth of
    ``data_folder`` with safe names; raises LayoutError saying what is wrong."""
    root = data_folder.resolve()
    shown = str(file_path)
    try:
        resolved = file_path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise LayoutError(shown, None, "not_found", "file does not exist") from None
    if not resolved.is_relative_to(root):
        raise LayoutError(
            shown,
            None,
            "outside_data_folder",
            f"file is not inside the data folder {root} (links are resolved)",
        )
    if not stat.S_ISREG(resolved.stat().st_mode):
        raise LayoutError(shown, None, "not_a_file", "not a regular file")
    parts = resolved.relative_to(root).parts
    relative = "/".join(parts)
    if len(parts) != 4:
        raise LayoutError(
            relative,
            None,
            "wrong_depth",
            "expected <company>/<campaign>/<device>/<file>.tsv under the data folder",
        )
    company, campaign, device, _ = parts
    try:
        check_name(company, "company")
        check_name(campaign, "campaign")
        check_name(device, "device folder")
    except UnsafeNameError as exc:
        raise LayoutError(relative, None, "unsafe_name", str(exc)) from None
    return FileLocation(root, resolved, relative, company, campaign, device)


@dataclass(frozen=True)
class PendingFile:
    path: Path
    age_s: float


def pending_files(
    data_folder: Path,
    now: float,
    unreadable: list[str] | None = None,
    company: str | None = None,
) -> Iterator[PendingFile]:
    """Every ``*.tsv`` waiting under the data folder, in path order.

    Not taken: files in a device folder's ``parsed/`` and ``error/``, hidden files and folders
    (including SFTPGo's ``.sftpgo-upload.*`` temp files), and symbolic links, which could
    lead out of the data folder. A folder that cannot be listed is added to ``unreadable``
    (with the reason), so that its files are not silently forgotten.

    With ``company``, the walk starts at ``<data_folder>/<company>``: the other companies'
    folders are not even listed (the sweep after one SFTP disconnection reads one tree).
    """

    def cannot_list(error: OSError) -> None:
        if unreadable is not None:
            unreadable.append(f"{error.filename}: {error.strerror}")

    root_depth = len(data_folder.parts)
    start = data_folder / company if company else data_folder
    for directory, subdirs, files in os.walk(start, onerror=cannot_list, followlinks=False):
        in_device_folder = len(Path(directory).parts) - root_depth == 3
        subdirs[:] = sorted(
            name
            for name in subdirs
            if not name.startswith(".")
            and not (in_device_folder and name in DONE_DIRS)
            and not os.path.islink(os.path.join(directory, name))
        )
        for name in sorted(files):
            if not is_tsv_name(name):
                continue
            path = Path(directory, name)
            try:
                info = path.lstat()
            except FileNotFoundError:  # taken by another process meanwhile
                continue
            if stat.S_ISREG(info.st_mode):
                yield PendingFile(path, now - info.st_mtime)
