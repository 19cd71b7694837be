"""The run itself: the progress display, and the exit code chosen from the outcomes."""

from __future__ import annotations

import io
import logging

from core.report import FileResult
from core.runner import RunConfig, Runner
from tests.helpers import V003, copy_samples


def test_a_terminal_sweep_shows_a_progress_bar(tmp_path):
    data = copy_samples(tmp_path / "data")
    stream = io.StringIO()
    config = RunConfig(data_folder=data, dry_run=True, min_file_age_s=0, progress=True)
    report = Runner(config, progress_stream=stream).run()
    shown = stream.getvalue()
    assert shown.count("\r[") == len(report.files) == 14
    assert "[##############################] 14/14 files" in shown
    assert shown.endswith("\n")


def test_without_a_terminal_each_file_is_a_log_line(tmp_path, caplog):
    data = copy_samples(tmp_path / "data", V003)
    config = RunConfig(data_folder=data, dry_run=True, min_file_age_s=0, progress=False)
    runner = Runner(config, progress_stream=io.StringIO())
    runner.config.dry_run = False  # log lines are for real runs; the file is not touched
    with caplog.at_level(logging.INFO, logger="powerview.runner"):
        runner._show_progress(1, 1, FileResult(file=V003, status="ok", points_written=72))
    assert caplog.messages == [f"ok {V003} (72 points)"]


def test_exit_codes_rank_configuration_over_temporary_over_data(tmp_path):
    runner = Runner(RunConfig(data_folder=tmp_path, dry_run=True))
    assert runner._exit_code() == 0
    for kind, code in (("data", 1), ("temporary", 3), ("configuration", 4), ("unexpected", 5)):
        runner.report.files.append(FileResult(file=kind, status="x", error_kind=kind))
        assert runner._exit_code() == code


def test_a_failure_outside_any_file_still_finishes_the_report(tmp_path, monkeypatch):
    """Listing the data folder fails (an I/O error, a bug): the report says so and the run
    ends with exit code 5 instead of a traceback."""

    def unreadable_folder(folder, now, unreadable=None, company=None):
        raise OSError(5, "Input/output error")
        yield  # a generator, like pending_files

    monkeypatch.setattr("core.runner.pending_files", unreadable_folder)
    report = Runner(RunConfig(data_folder=tmp_path, dry_run=True, min_file_age_s=0)).run()
    assert report.exit_code == 5 and report.finished_at is not None
    assert report.messages == ["unexpected error: OSError: [Errno 5] Input/output error"]
