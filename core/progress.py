"""How a run shows its progress: a bar on a terminal, one log line per file elsewhere.

- On a terminal (``tsv_parser.py`` with stderr a tty): one bar over the bytes of every file
  the run takes (``TerminalProgress``), so that a single large file moves the bar while it
  is read (the engine's ``FileSummary.bytes_read``, after each batch). The line shows the
  file number, the file being read, the bytes read and the time left; it is redrawn in place
  (a carriage return, never a new line), at most every ``REFRESH_S``, and fits the width of
  the terminal at each redraw (``COLUMNS`` when set, as ``shutil.get_terminal_size`` reads
  it, else the terminal's own width), so that it never wraps. A warning logged meanwhile is
  printed above the bar, on a line of its own. Its last state shows the totals; the human
  summary that follows (``core/report.py``) ends with them too.
- Elsewhere (a pipe, a log file, a systemd unit), a run that writes logs one line per file,
  with ``key=value`` fields (``LogProgress``): no bar, no carriage return. A dry run there
  says nothing more: its JSON report and its summary say it all.

The bar is tqdm's: a small, pure-Python library without dependencies, kept up for years,
that shrinks its bar to a given width, counts bytes with binary units and limits its
redraws in time. rich would do as well, with three more packages (markdown-it-py, mdurl,
pygments) for features a one-line bar does not need, and an import that costs about as much
(some 70-90 ms here for either). Either way the import cost falls on terminal runs only:
tqdm is imported when a bar is drawn, never by the hook, the drainer or a run without a
terminal, which start often.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from core.report import FileResult, RunReport, printable

log = logging.getLogger("powerview.runner")

REFRESH_S = 0.1  # the shortest time between two redraws of the bar
DEFAULT_WIDTH = 80  # when the stream has no terminal size and COLUMNS is not set
_SCREEN_ROWS = 24  # what tqdm is told of the height (it only hides bars below it)
_NAME_WIDTH = 32  # the end of a long file name is kept, the rest shortened to "..."
# What matters first comes first: a narrow terminal cuts the end of the line.
_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}]{postfix}"
)


class QuietProgress:
    """Shows nothing; the other displays override what they show."""

    def start(self, files: Sequence[Path]) -> None:
        """The run takes these files, in this order."""

    def file_started(self, number: int, path: Path) -> None:
        """The ``number``-th file of ``start`` (from 1) is being processed."""

    def bytes_read(self, count: int) -> None:
        """``count`` bytes of the current file have been read so far."""

    def file_done(self, result: FileResult) -> None:
        """The current file's outcome."""

    def finish(self, report: RunReport) -> None:
        """The run is over."""


class LogProgress(QuietProgress):
    """One log line per file, ``key=value`` fields, for readers that are not a terminal."""

    def file_done(self, result: FileResult) -> None:
        log.info("%s", log_fields(result))


def log_fields(result: FileResult) -> str:
    """A file's outcome as ``key=value`` fields; a value with a space, a quote, an equals
    sign or a control character is quoted, its control characters escaped."""
    fields: dict[str, object] = {"status": result.status, "file": result.file}
    if result.skip_reason:
        fields["skip_reason"] = result.skip_reason
    if result.error_kind:
        fields["error_kind"] = result.error_kind
    if result.error:
        fields["error_code"] = result.error.get("code")
    fields["points"] = result.points_written
    fields["duration_s"] = f"{result.duration_s:.3f}"
    return " ".join(f"{key}={_field_value(str(value))}" for key, value in fields.items())


def _field_value(text: str) -> str:
    if text and text.isprintable() and not any(char in text for char in ' "=\\'):
        return text
    escaped = printable(text).replace("\t", "\\t").replace('"', '\\"')
    return f'"{escaped}"'


def terminal_width(stream: TextIO) -> int:
    """The width available on ``stream``'s terminal (see the module docstring)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        columns_of_terminal = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return DEFAULT_WIDTH
    # A pseudo-terminal nobody sized (a `script` or CI runner's pty) says 0 columns.
    return columns_of_terminal or DEFAULT_WIDTH


class TerminalProgress(QuietProgress):
    """One bar over the bytes of the run's files, redrawn in place (see the module
    docstring). ``width`` gives the terminal's width at each redraw."""

    def __init__(
        self,
        stream: TextIO,
        refresh_s: float = REFRESH_S,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream
        self.refresh_s = refresh_s
        self._width = width or (lambda: terminal_width(stream))
        self._bar: Any = None
        self._logging = ExitStack()  # console log lines printed above the bar
        self._sizes: list[int] = []
        self._done_bytes = 0  # of the files finished
        self._current_size = 0

    def start(self, files: Sequence[Path]) -> None:
        if not files:
            return
        from tqdm import tqdm  # noqa: PLC0415 - on a terminal only (see the module docstring)
        from tqdm.contrib.logging import logging_redirect_tqdm  # noqa: PLC0415

        class Bar(tqdm):
            monitor_interval = 0  # no monitoring thread: the run refreshes the bar itself

        self._sizes = [_size(path) for path in files]
        self._bar = Bar(
            total=sum(self._sizes),
            desc=f"0/{len(files)} files",
            file=self.stream,
            ncols=self._line_width(),
            # One bar, on the first line: it is never "below the screen". Left to itself,
            # tqdm reads the height of stderr, and a pseudo-terminal nobody sized (``script``,
            # a CI runner) gives -1, which hides the bar.
            nrows=_SCREEN_ROWS,
            bar_format=_BAR_FORMAT,
            mininterval=self.refresh_s,
            miniters=1,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=True,
        )
        self._logging.enter_context(logging_redirect_tqdm(tqdm_class=Bar))

    def file_started(self, number: int, path: Path) -> None:
        if self._bar is None:
            return
        self._current_size = self._sizes[number - 1]
        self._bar.set_description_str(f"{number}/{len(self._sizes)} files", refresh=False)
        self._bar.set_postfix_str(_short_name(path.name), refresh=False)
        self._move_to(self._done_bytes)

    def bytes_read(self, count: int) -> None:
        if self._bar is not None:
            self._move_to(self._done_bytes + min(count, self._current_size))

    def file_done(self, result: FileResult) -> None:
        if self._bar is not None:
            self._done_bytes += self._current_size
            self._current_size = 0
            self._move_to(self._done_bytes)

    def finish(self, report: RunReport) -> None:
        """The last state of the bar: the whole run, with its totals."""
        if self._bar is None:
            return
        totals = report.totals()
        self._bar.set_description_str(
            f"{totals['files']} file(s): {totals['ok']} ok, {totals['error']} error, "
            f"{totals['retry']} to retry, {totals['skipped']} skipped",
            refresh=False,
        )
        self._bar.set_postfix_str("", refresh=False)
        self._bar.ncols = self._line_width()
        self._bar.n = self._bar.total
        self._bar.close()  # draws the last state, then a new line
        self._bar = None
        self._logging.close()

    def _move_to(self, done: int) -> None:
        self._bar.ncols = self._line_width()
        self._bar.update(done - self._bar.n)  # redrawn when REFRESH_S has passed

    def _line_width(self) -> int:
        # The last column stays empty: some terminals wrap as soon as it is written.
        return max(self._width() - 1, 1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone, or not readable: processing will say so
        return 0


def _short_name(name: str) -> str:
    shown = printable(name)
    return shown if len(shown) <= _NAME_WIDTH else "..." + shown[-(_NAME_WIDTH - 3) :]
