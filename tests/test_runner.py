"""The run itself: the progress display, the human summary, and the exit code chosen from the
outcomes."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import shutil
import struct
import sys
import termios
import threading
import tty
from pathlib import Path

from core import streaming
from core.engine import ParseOptions
from core.outcomes import ErrorKind, ExitCode, Status
from core.progress import DEFAULT_WIDTH, TerminalProgress, log_fields
from core.report import FileResult, print_human_summary
from core.runner import RunConfig, Runner
from tests.helpers import V003, copy_samples, run_parser

BIG = "acme/base/02001283/T302_260109_102002.tsv"  # 126 kB: some thirty blocks of 4 kB
LONG_NAME = "acme/base/02001283/" + "T302_" + "x" * 150 + ".tsv"
TOTALS = re.compile(r"^PowerView (dry run \(nothing written, nothing moved\)|run): \d+ file\(s\)")


def frames(shown: str) -> list[str]:
    """The successive states of a line redrawn in place: the text between carriage returns
    and new lines, blanks at the end dropped (they only clear a longer previous state)."""
    return [frame.rstrip() for frame in re.split(r"[\r\n]", shown) if frame.strip()]


def read_terminal(master: int, into: list[bytes]) -> None:
    """Everything written to a pseudo-terminal, until its other end is closed."""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed and everything was read
            return
        if not chunk:
            return
        into.append(chunk)


def run_on_terminal(config: RunConfig, columns: int, rows: int = 24) -> tuple[str, Runner]:
    """A run whose progress goes to a pseudo-terminal ``columns`` wide and ``rows`` high,
    redrawn at each change; what the terminal received."""
    master, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    tty.setraw(follower)  # the bytes as written: no newline turned into CR LF
    received: list[bytes] = []
    reader = threading.Thread(target=read_terminal, args=(master, received))
    reader.start()
    try:
        with open(follower, "w", encoding="utf-8") as terminal:
            # As in a real run, the terminal is stderr (tqdm asks the size of stderr only).
            saved, sys.stderr = sys.stderr, terminal
            try:
                runner = Runner(config, progress=TerminalProgress(terminal, refresh_s=0))
                runner.run()
            finally:
                sys.stderr = saved
        reader.join()
    finally:
        os.close(master)
    return b"".join(received).decode(), runner


def test_on_a_terminal_the_bar_fits_its_width_and_ends_with_the_totals(tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # the terminal's own width
    data = copy_samples(tmp_path / "data")
    shutil.copy(data / V003, data / LONG_NAME)
    config = RunConfig(data_folder=data, dry_run=True, min_file_age_s=0, progress=True)
    shown, runner = run_on_terminal(config, columns=50)
    states = frames(shown)
    assert len(runner.report.files) == 15 and len(states) > 15  # redrawn, file after file
    assert max(len(state) for state in states) <= 50
    assert shown.count("\n") == 1 and shown.endswith("\n")  # one line, redrawn in place
    assert states[-1].startswith("15 file(s): 13 ok, 2 error")


def test_a_terminal_nobody_sized_still_shows_the_bar(tmp_path, monkeypatch):
    """A pseudo-terminal of 0 x 0 (``script``, a CI runner) gets the default width, and the
    one bar is drawn rather than hidden as if it were below the screen."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    data = copy_samples(tmp_path / "data", V003, BIG)
    config = RunConfig(data_folder=data, dry_run=True, min_file_age_s=0, progress=True)
    shown, _ = run_on_terminal(config, columns=0, rows=0)
    states = frames(shown)
    assert len(states) > 2 and states[-1].startswith("2 file(s): 2 ok")
    assert max(len(state) for state in states) <= DEFAULT_WIDTH


def test_columns_sets_the_width_of_the_bar(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    data = copy_samples(tmp_path / "data", V003, BIG)
    shutil.copy(data / V003, data / LONG_NAME)
    stream = io.StringIO()
    config = RunConfig(data_folder=data, dry_run=True, min_file_age_s=0, progress=True)
    Runner(config, progress=TerminalProgress(stream, refresh_s=0)).run()
    states = frames(stream.getvalue())
    assert len(states) > 3 and max(len(state) for state in states) <= 40


def test_the_bar_moves_within_one_large_file(tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    data = copy_samples(tmp_path / "data", BIG)
    config = RunConfig(
        data_folder=data,
        dry_run=True,
        min_file_age_s=0,
        progress=True,
        parse=ParseOptions(block_size=4096),
    )
    shown, runner = run_on_terminal(config, columns=120)
    assert [result.status for result in runner.report.files] == [Status.OK]
    within = {
        int(match[1])
        for state in frames(shown)
        if state.startswith("1/1 files") and (match := re.search(r"(\d+)%", state))
    }
    assert len(within - {0, 100}) > 1  # several states strictly between start and end


def test_a_warning_during_a_terminal_run_gets_a_line_of_its_own(tmp_path, monkeypatch):
    """A log line printed while the bar is shown starts a line: it is not glued to the bar."""
    monkeypatch.setenv("COLUMNS", "100")
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(sys.stderr)  # as logging.basicConfig in tsv_parser.py
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    monkeypatch.setattr(logging.root, "handlers", [handler])
    data = copy_samples(tmp_path / "data", V003, BIG)
    original = streaming.check_device_folder

    def bug(location, summary):
        if location.path.name == Path(BIG).name:
            raise KeyError("a bug")
        original(location, summary)

    monkeypatch.setattr(streaming, "check_device_folder", bug)
    config = RunConfig(data_folder=data, dry_run=True, min_file_age_s=0, progress=True)
    report = Runner(config, progress=TerminalProgress(terminal, refresh_s=0)).run()
    assert report.exit_code == ExitCode.UNEXPECTED
    lines = terminal.getvalue().split("\n")
    (logged,) = [line for line in lines if "unexpected error on" in line]
    assert logged.split("\r")[-1].startswith("ERROR powerview.runner: unexpected error on")
    assert frames(terminal.getvalue())[-1].startswith("2 file(s): 1 ok, 1 error")


def test_the_summary_ends_with_the_totals(tmp_path):
    data = copy_samples(tmp_path / "data")
    report = Runner(RunConfig(data_folder=data, dry_run=True, min_file_age_s=0)).run()
    text = io.StringIO()
    print_human_summary(report, text)
    lines = text.getvalue().splitlines()
    assert len(lines) > len(report.files) > 1
    assert TOTALS.match(lines[-1]) and not any(TOTALS.match(line) for line in lines[:-1])
    assert lines[-1].endswith("14 file(s): 12 ok, 2 error, 0 to retry, 0 skipped; 29,034 values")
    assert lines[0] == f"  {report.files[0].status:<7} {report.files[0].file}"


def test_without_a_terminal_a_dry_run_prints_no_bar(tmp_path):
    data = copy_samples(tmp_path / "data")
    env = {**os.environ, "POWERVIEW_ENV_FILE": os.devnull}
    result = run_parser(env, data, "--dry-run")
    assert result.returncode == 1, result.stderr  # two sample files have bad content
    assert "\r" not in result.stderr and "%|" not in result.stderr
    assert TOTALS.match(result.stderr.splitlines()[-1])
    assert json.loads(result.stdout)["totals"]["files"] == 14


def test_without_a_terminal_a_run_logs_one_key_value_line_per_file(tmp_path, influxdb_env):
    data = copy_samples(tmp_path / "data", V003)
    env = {**influxdb_env, "TSV_REPORT_DIR": str(tmp_path / "reports"), "TSV_LOG_LEVEL": "INFO"}
    result = run_parser(env, data)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "powerview.runner" in line]
    fields = line.split("powerview.runner: ", 1)[1]
    assert re.fullmatch(rf"status=ok file={V003} points=\d+ duration_s=\d+\.\d{{3}}", fields)
    assert re.match(r"run report: ", result.stderr.splitlines()[-1])
    assert TOTALS.match(result.stderr.splitlines()[-2])


def test_a_log_line_quotes_what_would_break_it(caplog):
    result = FileResult(
        file='acme/a b/dev/x="y"\n.tsv',
        status=Status.ERROR,
        error_kind=ErrorKind.DATA,
        error={"code": "empty_file", "line": None, "reason": "file is empty"},
    )
    assert log_fields(result) == (
        'status=error file="acme/a b/dev/x=\\"y\\"\\n.tsv" error_kind=data '
        "error_code=empty_file points=0 duration_s=0.000"
    )


def test_a_dry_run_without_a_terminal_logs_nothing_per_file(tmp_path, caplog):
    data = copy_samples(tmp_path / "data", V003)
    with caplog.at_level(logging.INFO, logger="powerview.runner"):
        Runner(RunConfig(data_folder=data, dry_run=True, min_file_age_s=0)).run()
    assert caplog.messages == []


def test_exit_codes_rank_configuration_over_temporary_over_data(tmp_path):
    runner = Runner(RunConfig(data_folder=tmp_path, dry_run=True))
    assert runner._exit_code() == ExitCode.OK
    for kind, code in (("data", 1), ("temporary", 3), ("configuration", 4), ("unexpected", 5)):
        runner.report.files.append(
            FileResult(file=kind, status=Status.ERROR, error_kind=ErrorKind(kind))
        )
        assert runner._exit_code() == code


def test_a_failure_outside_any_file_still_finishes_the_report(tmp_path, monkeypatch):
    """Listing the data folder fails (an I/O error, a bug): the report says so and the run
    ends with exit code 5 instead of a traceback."""

    def unreadable_folder(folder, now, unreadable=None, company=None):
        raise OSError(5, "Input/output error")
        yield  # a generator, like pending_files

    monkeypatch.setattr("core.selection.pending_files", unreadable_folder)
    report = Runner(RunConfig(data_folder=tmp_path, dry_run=True, min_file_age_s=0)).run()
    assert report.exit_code == 5 and report.finished_at is not None
    assert report.messages == ["unexpected error: OSError: [Errno 5] Input/output error"]
