"""tsv_parser.py as an operator uses it: dry runs, --lp-out, refusals, --reject, --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.helpers import COMPANY1, EMPTY, EXPECTED, PROJECT_ROOT, V003, copy_samples, files_under
from tests.lp import parse_lines
from tests.unprivileged import bound_by_permissions

PARSER = PROJECT_ROOT / "tsv_parser.py"
# No InfluxDB settings at all: a dry run must not need (or try) a connection.
OFFLINE_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("INFLUXDB_", "TSV_"))},
    "POWERVIEW_ENV_FILE": os.devnull,
}


def parser(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PARSER), *args],
        env=env or OFFLINE_ENV,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_dry_run_over_the_samples_reports_without_touching_anything(tmp_path):
    data = copy_samples(tmp_path / "data")
    before = files_under(data)
    result = parser("--dataFolder", str(data), "--dry-run", "--min-age", "0")
    assert result.returncode == 1  # the empty and the header-only sample files
    report = json.loads(result.stdout)
    assert report["mode"] == "dry-run"
    assert report["totals"]["files"] == 14
    assert report["totals"]["ok"] == 12 and report["totals"]["error"] == 2
    assert report["totals"]["values_written"] == 29034
    stderr = result.stderr.decode()
    assert "nothing written, nothing moved" in stderr
    assert "file is empty (0 bytes)" in stderr
    assert "duplicate_timestamp: 6 (lines 145, 146, 147, 148, 149)" in stderr
    assert files_under(data) == before
    by_file = {entry["file"]: entry for entry in report["files"]}
    empty = by_file[EMPTY]
    assert empty["error"]["code"] == "empty_file" and empty["error_kind"] == "data"
    summary = by_file[COMPANY1]["summary"]
    assert summary["master_sn"] == "02001171" and summary["channel_count"] == 30
    assert any("02001084" in warning for warning in summary["warnings"])


def test_lp_out_to_stdout_carries_exactly_the_contract_points(tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1)
    result = parser(
        "--dataFolder", str(data), "--tsvFile", str(data / COMPANY1), "--dry-run", "--lp-out", "-"
    )
    assert result.returncode == 0, result.stderr
    expected = Counter(parse_lines((EXPECTED / Path(COMPANY1).with_suffix(".lp")).read_text()))
    assert Counter(parse_lines(result.stdout)) == expected


def test_lp_out_to_a_file_keeps_the_report_on_stdout(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    out = tmp_path / "points.lp"
    result = parser("--dataFolder", str(data), "--dry-run", "--min-age", "0", "--lp-out", str(out))
    assert result.returncode == 0
    assert json.loads(result.stdout)["totals"]["values_written"] == 72
    assert len(parse_lines(out.read_bytes())) == 72


def test_relative_tsv_file_is_found_in_the_data_folder(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    result = parser("--dataFolder", str(data), "--tsvFile", V003, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"][0]["file"] == V003


def test_a_file_outside_the_data_folder_is_refused(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    outside = tmp_path / "elsewhere.tsv"
    outside.write_bytes((data / V003).read_bytes())
    link = data / "dominique/v003/02000800/link.tsv"
    link.symlink_to(outside)
    for target in (outside, link):
        result = parser("--dataFolder", str(data), "--tsvFile", str(target), "--dry-run")
        assert result.returncode == 2
        assert b"not inside the data folder" in result.stderr


def test_a_missing_file_is_an_error_unless_another_run_took_it(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    missing = data / "dominique/v003/02000800/none.tsv"
    result = parser("--dataFolder", str(data), "--tsvFile", str(missing), "--dry-run")
    assert result.returncode == 2 and b"does not exist" in result.stderr
    parsed = data / "dominique/v003/02000800/parsed"
    parsed.mkdir()
    (data / V003).rename(parsed / Path(V003).name)
    result = parser("--dataFolder", str(data), "--tsvFile", str(data / V003), "--dry-run")
    assert result.returncode == 0 and b"already moved by another run" in result.stderr


def test_reject_sets_an_incomplete_upload_aside(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    result = parser(
        "--dataFolder", str(data), "--tsvFile", str(data / V003),
        "--reject", "upload failed (SFTPGo status 2)",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    moved = data / "dominique/v003/02000800/error/T302_260208_211459_UTC.tsv"
    assert moved.exists() and not (data / V003).exists()
    reason = json.loads(moved.with_name(moved.name + ".error.json").read_text())
    assert reason["code"] == "upload_incomplete"
    assert reason["reason"] == "upload failed (SFTPGo status 2)"


def test_a_missing_data_folder(tmp_path):
    result = parser("--dataFolder", str(tmp_path / "nope"), "--dry-run")
    assert result.returncode == 2 and b"is not a folder" in result.stderr


def test_help_shows_examples_and_exit_codes():
    result = parser("--help")
    text = result.stdout.decode()
    assert result.returncode == 0
    assert "examples:" in text and "exit codes:" in text and "--dataFolder" in text
    assert "--data-folder" in text and "--tsv-file" in text


# -- operator frictions (issue 9) -------------------------------------------------------------


def test_reject_with_dry_run_moves_nothing(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    before = files_under(data)
    result = parser(
        "--dataFolder", str(data), "--tsvFile", str(data / V003), "--dry-run",
        "--reject", "upload failed (SFTPGo status 2)",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert files_under(data) == before
    assert b"dry run: would be set aside in error/, not moved" in result.stderr


def test_lp_out_to_a_closed_pipe_stops_quietly(tmp_path):
    """``--lp-out - | head -n 1``: the reader goes away after one line."""
    data = copy_samples(tmp_path / "data")
    command = [sys.executable, str(PARSER), "--dataFolder", str(data), "--dry-run"]
    process = subprocess.Popen(
        [*command, "--min-age", "0", "--lp-out", "-"],
        env=OFFLINE_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"# bucket: ")
    process.stdout.close()  # what head does once it has its lines
    stderr = process.stderr.read()
    assert process.wait(timeout=120) in (0, 1)  # the files read so far decide, as usual
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr, stderr
    assert b"closed it: the dry run stopped there" in stderr


def test_lp_out_names_the_bucket_of_each_files_points(tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1, V003)
    out = tmp_path / "points.lp"
    result = parser("--dataFolder", str(data), "--dry-run", "--min-age", "0", "--lp-out", str(out))
    assert result.returncode == 0, result.stderr
    bucket, blocks = None, Counter()
    for line in out.read_text().splitlines():
        if line.startswith("# bucket: "):
            bucket = line.split()[2]
            continue
        blocks[bucket] += len(parse_lines(line))
    written = {
        entry["file"].split("/")[0]: entry["summary"]["values_written"]
        for entry in json.loads(result.stdout)["files"]
    }
    assert blocks == written and written["dominique"] == 72


def test_a_negative_minimum_age_is_refused():
    result = parser("--dataFolder", "/nonexistent", "--dry-run", "--min-age", "-5")
    assert result.returncode == 2
    assert b"--min-age: '-5' is not a number of seconds, 0 or more" in result.stderr


def test_an_unreadable_settings_file_is_a_settings_error(tmp_path):
    env_file = tmp_path / "powerview.env"
    env_file.write_text("INFLUXDB_ORG=powerview\n")
    env_file.chmod(0)
    data = copy_samples(tmp_path / "data", V003)
    result = subprocess.run(
        bound_by_permissions([sys.executable, str(PARSER), "--dataFolder", str(data)]),
        env={**OFFLINE_ENV, "POWERVIEW_ENV_FILE": str(env_file)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"cannot read the settings file {env_file}: Permission denied".encode() in result.stderr
    assert b"Traceback" not in result.stderr
    assert (data / V003).exists()


def test_a_report_folder_that_cannot_be_written_stops_the_run_before_any_file(tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    reports = tmp_path / "reports"
    reports.write_text("a file where the folder should be")
    env = {
        **OFFLINE_ENV,
        "INFLUXDB_HOST": "http://127.0.0.1:9",  # never reached: the check comes first
        "INFLUXDB_ORG": "powerview",
        "INFLUXDB_ADMIN_TOKEN": "token",
        "TSV_REPORT_DIR": str(reports),
    }
    result = parser("--dataFolder", str(data), "--min-age", "0", env=env)
    assert result.returncode == 2
    assert b"run reports cannot be written in" in result.stderr
    assert (data / V003).exists() and files_under(data) == [V003]


def test_an_error_that_escapes_the_run_is_exit_code_5(tmp_path, monkeypatch, capsys):
    import tsv_parser

    def broken(self, explicit_file=None):
        raise RuntimeError("a bug outside any file")

    monkeypatch.setattr("core.runner.Runner.run", broken)
    monkeypatch.setenv("POWERVIEW_ENV_FILE", os.devnull)
    data = copy_samples(tmp_path / "data", V003)
    assert tsv_parser.main(["--dataFolder", str(data), "--dry-run"]) == 5
    assert "RuntimeError: a bug outside any file" in capsys.readouterr().err


def test_the_sweep_unit_fails_on_everything_but_bad_content():
    """0 and 1 are success for powerview-sweep.service; 2, 3, 4 and 5 (a crash) fail it."""
    from tests.helpers import DEPLOY, unit_file

    service = unit_file(DEPLOY / "powerview-sweep.service")
    assert service["Service"]["SuccessExitStatus"] == ["1"]


def test_an_unreadable_file_in_a_dry_run_is_reported_not_a_traceback(tmp_path):
    data = copy_samples(tmp_path / "data", V003, COMPANY1)
    (data / V003).chmod(0)
    command = [sys.executable, str(PARSER), "--dataFolder", str(data), "--dry-run"]
    result = subprocess.run(
        bound_by_permissions([*command, "--min-age", "0"]),
        env=OFFLINE_ENV,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 5, result.stderr
    assert b"Traceback" not in result.stderr
    by_file = {entry["file"]: entry for entry in json.loads(result.stdout)["files"]}
    assert by_file[V003]["error"]["code"] == "unreadable"
    assert "Permission denied" in by_file[V003]["error"]["reason"]
    assert by_file[COMPANY1]["status"] == "ok"
