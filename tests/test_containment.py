"""Every failure stays with its file: no upload can stop a sweep or lose data (issue 9).

One sweep over a tree holding every trigger known to have stopped the parser for every
company: each good file is ingested, each bad one set aside with its reason (or left in place
with the reason in the report when it cannot be moved), the report is written and the exit
code is the documented one. Then each trigger on its own, with the in-process runner where
the point is a sequence of events (a file replaced or grown during ingestion).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import streaming
from core.engine import ParseOptions
from core.file_processor import Ingestion
from core.influx_writer import InfluxWriter
from core.lifecycle import sidecar_path
from core.outcomes import ExitCode
from core.runner import RunConfig, Runner
from core.settings import load_settings
from tests.helpers import COMPANY1, PROJECT_ROOT, SAMPLES, V003, contract, electrical
from tests.unprivileged import AS_ROOT, bound_by_permissions

PARSER = PROJECT_ROOT / "tsv_parser.py"
ACME_RELATIVE = "acme/base/02001283/T302_251025_031739.tsv"
V003_LINES = (SAMPLES / V003).read_bytes().split(b"\n")
GOOD_T302 = (SAMPLES / ACME_RELATIVE).read_bytes()


def v003_with_header(json_line: bytes) -> bytes:
    """The V003 sample with another JSON header line."""
    return b"\n".join([V003_LINES[0], json_line, *V003_LINES[2:]])


def put(root: Path, relative: str, content: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def can_mount_tmpfs(point: Path) -> bool:
    if not AS_ROOT:
        return False
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
        capture_output=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


def fill(folder: Path) -> None:
    """Write into ``folder`` until its file system is full."""
    try:
        with open(folder / "filler", "wb") as stream:
            while True:
                stream.write(b"\0" * 4096)
                stream.flush()
    except OSError as error:
        assert error.errno == errno.ENOSPC


def run_parser(env: dict[str, str], data: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(PARSER), "--dataFolder", str(data), "--min-age", "0", *args]
    return subprocess.run(
        bound_by_permissions(command),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=PROJECT_ROOT,
    )


def report_of(reports: Path) -> dict:
    (found,) = reports.glob("tsv_parser_*.json")
    return json.loads(found.read_text())


LONG_NAME = "L" * 251 + ".tsv"  # 255 bytes: the longest name a Linux file system takes


def test_a_sweep_over_every_trigger_goes_on_and_reports_each_file(tmp_path, influxdb_env, influxdb):
    data, reports, outside = tmp_path / "data", tmp_path / "reports", tmp_path / "outside"
    outside.mkdir()
    good = {
        COMPANY1: (SAMPLES / COMPANY1).read_bytes(),
        V003: (SAMPLES / V003).read_bytes(),
        ACME_RELATIVE: GOOD_T302,
        "acme/after/02001283/zz_last.tsv": GOOD_T302,  # after every trigger, in path order
    }
    for relative, content in good.items():
        put(data, relative, content)
    bad = {
        "acme/deep/02000800/deep.tsv": v003_with_header(b"[" * 100_000 + b"]" * 100_000),
        "acme/digits/02000800/digits.tsv": v003_with_header(
            b'{"FileVersion": ' + b"7" * 5000 + b"}"
        ),
        f"acme/long/02001283/{LONG_NAME}": b"",
        "acme/unreadable/02001283/secret.tsv": GOOD_T302,
        "acme/parsedfile/02001283/good.tsv": GOOD_T302,
        "acme/errorfile/02001283/empty.tsv": b"",
        "acme/parsedlink/02001283/good.tsv": GOOD_T302,
        "acme/errorlink/02001283/empty.tsv": b"",
        "acme/parsedro/02001283/good.tsv": GOOD_T302,
        "acme/errorro/02001283/empty.tsv": b"",
    }
    for relative, content in bad.items():
        put(data, relative, content)
    put(data, "acme/parsedfile/02001283/parsed", b"a plain file named parsed")
    put(data, "acme/errorfile/02001283/error", b"a plain file named error")
    (data / "acme/parsedlink/02001283/parsed").symlink_to(outside)
    (data / "acme/errorlink/02001283/error").symlink_to(outside)
    (data / "acme/unreadable/02001283/secret.tsv").chmod(0)
    for folder in ("acme/parsedro/02001283/parsed", "acme/errorro/02001283/error"):
        (data / folder).mkdir()
        (data / folder).chmod(0o555)
    full_disk = can_mount_tmpfs(data / "full")
    try:
        if full_disk:
            put(data, "full/site/02001283/empty.tsv", b"")
            fill(data / "full")
            bad["full/site/02001283/empty.tsv"] = b""
        env = {**influxdb_env, "TSV_REPORT_DIR": str(reports), "TSV_LOG_LEVEL": "WARNING"}
        result = run_parser(env, data)
        report = report_of(reports)
        by_file = {entry["file"]: entry for entry in report["files"]}
        tree = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.name != "filler")
    finally:
        if full_disk:
            subprocess.run(["umount", str(data / "full")], check=True)
        for folder in ("acme/parsedro/02001283/parsed", "acme/errorro/02001283/error"):
            (data / folder).chmod(0o755)  # for pytest's clean-up

    assert result.returncode == ExitCode.UNEXPECTED, result.stderr
    assert report["exit_code"] == ExitCode.UNEXPECTED
    assert "Traceback" not in result.stderr  # the unexpected is in the report, not a crash
    for relative in good:
        assert by_file[relative]["status"] == "ok", by_file[relative]
        folder, name = relative.rsplit("/", 1)
        assert f"{folder}/parsed/{name}" in tree
    assert contract(COMPANY1) <= electrical(influxdb, "company1")
    assert contract(V003) <= electrical(influxdb, "dominique")

    def reason(relative: str) -> str:
        entry = by_file[relative]
        assert entry["status"] == "error", entry
        return f"{entry['error']['code']}: {entry['error']['reason']} {entry['notes']}"

    def set_aside(relative: str) -> dict:
        folder, name = relative.rsplit("/", 1)
        assert relative not in tree and f"{folder}/error/{name}" in tree
        moved = data / folder / "error" / name
        return json.loads(sidecar_path(moved).read_text())

    def left_in_place(relative: str) -> None:
        assert relative in tree
        assert "left in place" in " ".join(by_file[relative]["notes"])

    assert "nested too deeply" in reason("acme/deep/02000800/deep.tsv")
    assert set_aside("acme/deep/02000800/deep.tsv")["code"] == "invalid_json"
    assert "digits" in reason("acme/digits/02000800/digits.tsv")
    assert set_aside("acme/digits/02000800/digits.tsv")["code"] == "invalid_json"
    assert set_aside(f"acme/long/02001283/{LONG_NAME}")["code"] == "empty_file"
    assert "Permission denied" in reason("acme/unreadable/02001283/secret.tsv")
    assert set_aside("acme/unreadable/02001283/secret.tsv")["code"] == "unreadable"
    assert "parsed is a file" in reason("acme/parsedfile/02001283/good.tsv")
    assert set_aside("acme/parsedfile/02001283/good.tsv")["code"] == "done_folder_unusable"
    assert "parsed is a symbolic link" in reason("acme/parsedlink/02001283/good.tsv")
    set_aside("acme/parsedlink/02001283/good.tsv")
    assert "not writable" in reason("acme/parsedro/02001283/good.tsv")
    set_aside("acme/parsedro/02001283/good.tsv")
    assert "error is a file" in reason("acme/errorfile/02001283/empty.tsv")
    left_in_place("acme/errorfile/02001283/empty.tsv")
    assert "error is a symbolic link" in reason("acme/errorlink/02001283/empty.tsv")
    left_in_place("acme/errorlink/02001283/empty.tsv")
    assert "not writable" in reason("acme/errorro/02001283/empty.tsv")
    left_in_place("acme/errorro/02001283/empty.tsv")
    if full_disk:
        assert "No space left on device" in reason("full/site/02001283/empty.tsv")
        left_in_place("full/site/02001283/empty.tsv")
    assert list(outside.iterdir()) == []  # no link was followed out of the data folder
    for relative in bad:
        assert by_file[relative]["error_kind"] in ("data", "unexpected")
    assert set(by_file) == set(good) | set(bad)


def test_a_full_disk_while_setting_aside_leaves_the_file_with_its_reason(tmp_path, monkeypatch):
    """The same as the tmpfs case of the sweep above, on any machine: ENOSPC injected where
    the reason is written."""
    data = tmp_path / "data"
    path = put(data, "acme/site/02001283/empty.tsv", b"")

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("core.lifecycle.write_json_atomically", no_space)
    runner = Runner(RunConfig(data_folder=data, dry_run=False, min_file_age_s=0), writer=_Idle())
    report = runner.run()
    (entry,) = report.files
    assert path.exists() and not (path.parent / "error" / path.name).exists()
    assert entry.error["code"] == "empty_file" and entry.error_kind == "unexpected"
    assert any("No space left on device" in note for note in entry.notes)
    assert report.exit_code == ExitCode.UNEXPECTED


class _Idle:
    """A writer for files refused before any point is sent: nothing ever reaches it."""

    points_written = 0

    def ensure_bucket(self, name: str) -> str:
        return name

    ensure_company_bucket = ensure_bucket

    def file_writer(self, bucket: str) -> _Idle:
        return self

    def submit(self, batch: bytes) -> None:
        raise AssertionError("nothing should be written")

    def finish(self) -> None:
        raise AssertionError("nothing should be written")

    def abandon(self) -> None:
        pass

    def write_now(self, *args: object, **kwargs: object) -> None:
        pass


def test_a_bug_in_one_file_does_not_stop_the_others(tmp_path, monkeypatch, influxdb_env):
    data = tmp_path / "data"
    put(data, COMPANY1, (SAMPLES / COMPANY1).read_bytes())
    put(data, V003, (SAMPLES / V003).read_bytes())
    original = streaming.check_device_folder

    def bug(location, summary):
        if location.company == "company1":
            raise KeyError("a bug")
        original(location, summary)

    monkeypatch.setattr(streaming, "check_device_folder", bug)
    writer = InfluxWriter(load_settings(influxdb_env, require=("influxdb",)).influx)
    try:
        report = Runner(RunConfig(data, dry_run=False, min_file_age_s=0), writer).run()
    finally:
        writer.close()
    by_file = {entry.file: entry for entry in report.files}
    assert by_file[COMPANY1].error == {
        "code": "unexpected_error",
        "line": None,
        "reason": "KeyError: 'a bug'",
    }
    assert (data / Path(COMPANY1).parent / "error" / Path(COMPANY1).name).exists()
    assert by_file[V003].status == "ok"
    assert report.exit_code == ExitCode.UNEXPECTED


# -- the file ingested is the file moved -----------------------------------------------------


@pytest.fixture
def writer(influxdb_env):
    """A writer per run, as each parser process has its own: ``writer()`` makes one, and
    closes the previous one (its sender process ends with it)."""
    made: list[InfluxWriter] = []

    def new() -> InfluxWriter:
        for old in made:
            old.close()
        made.append(InfluxWriter(load_settings(influxdb_env, require=("influxdb",)).influx))
        return made[-1]

    yield new
    for old in made:
        old.close()


def ingest_with(data: Path, writer, monkeypatch, during) -> Runner:
    """An ingestion of ``data`` that calls ``during(path)`` once the file has been read to
    its end and before it is moved (where a slow InfluxDB leaves time for an upload)."""
    original = Ingestion._stream

    def stream_then_interfere(self, location, summary, stream, send):
        original(self, location, summary, stream, send)
        during(location.path)

    monkeypatch.setattr(Ingestion, "_stream", stream_then_interfere)
    runner = Runner(RunConfig(data, dry_run=False, min_file_age_s=0), writer())
    runner.run()
    return runner


def test_a_file_replaced_by_rename_during_ingest_stays_for_the_next_run(
    tmp_path, writer, influxdb, monkeypatch
):
    data = tmp_path / "data"
    path = put(data, "acme/base/02001283/T302.tsv", (SAMPLES / ACME_RELATIVE).read_bytes())
    newer = (SAMPLES / V003).read_bytes()

    def overwrite_by_rename(target: Path) -> None:  # what SFTP clients do
        upload = target.with_name(".upload.tmp")
        upload.write_bytes(newer)
        upload.rename(target)

    runner = ingest_with(data, writer, monkeypatch, overwrite_by_rename)
    (entry,) = runner.report.files
    assert entry.status == "skipped" and "replaced during ingestion" in " ".join(entry.notes)
    assert path.read_bytes() == newer  # the new upload is where it was put
    assert not (path.parent / "parsed").exists() or not any((path.parent / "parsed").iterdir())
    monkeypatch.undo()
    again = Runner(RunConfig(data, dry_run=False, min_file_age_s=0), writer()).run()
    assert [entry.status for entry in again.files] == ["ok"]
    assert (path.parent / "parsed" / path.name).read_bytes() == newer


def test_a_file_appended_to_after_its_last_read_is_not_moved(
    tmp_path, writer, influxdb, monkeypatch
):
    data = tmp_path / "data"
    original = (SAMPLES / V003).read_bytes()
    path = put(data, "dominique/v003/02000800/T302.tsv", original.split(b"END_DATA")[0])
    rows = b"08/02/26 23:50:00" + b"\t1.5" * 12 + b"\nEND_DATA\n"

    def append(target: Path) -> None:
        with open(target, "ab") as stream:
            stream.write(rows)

    runner = ingest_with(data, writer, monkeypatch, append)
    (entry,) = runner.report.files
    assert entry.status == "skipped" and "changed during ingestion" in " ".join(entry.notes)
    assert path.read_bytes().endswith(rows) and not (path.parent / "parsed").exists()
    monkeypatch.undo()
    Runner(RunConfig(data, dry_run=False, min_file_age_s=0), writer()).run()
    assert (path.parent / "parsed" / path.name).read_bytes().endswith(rows)
    stamps = {point.time_ns // 10**9 for point in influxdb.points("dominique")}
    assert 1770594600 in stamps  # 08/02/26 23:50:00 UTC: the appended row was ingested


def test_content_appended_while_the_file_is_read_is_read_by_the_same_run(
    tmp_path, writer, influxdb
):
    """Growth before the end of the read is ingested by the run itself, then the file moved."""
    data = tmp_path / "data"
    original = (SAMPLES / V003).read_bytes()
    head, _ = original.split(b"END_DATA")
    path = put(data, "dominique/v003/02000800/T302.tsv", head)
    appended = b"08/02/26 23:50:00" + b"\t1.5" * 12 + b"\nEND_DATA\n"

    class AppendOnFirstBatch:
        """The --lp-out copy: the first batch arrives before the end of the file is read."""

        def __init__(self) -> None:
            self.done = False

        def write(self, chunk: bytes) -> int:
            if not self.done and not chunk.startswith(b"#"):
                self.done = True
                with open(path, "ab") as stream:
                    stream.write(appended)
            return len(chunk)

    config = RunConfig(
        data,
        dry_run=False,
        min_file_age_s=0,
        parse=ParseOptions(block_size=256, batch_points=12),
        lp_out=AppendOnFirstBatch(),  # type: ignore[arg-type]
    )
    report = Runner(config, writer()).run()
    assert [entry.status for entry in report.files] == ["ok"]
    assert (path.parent / "parsed" / path.name).read_bytes() == head + appended
    stamps = {point.time_ns // 10**9 for point in influxdb.points("dominique")}
    assert 1770594600 in stamps


def test_a_wrong_depth_file_is_reported_and_other_files_go_on(tmp_path):
    data = tmp_path / "data"
    stray = put(data, "acme/base/x.tsv", GOOD_T302)
    put(data, V003, (SAMPLES / V003).read_bytes())
    report = Runner(RunConfig(data, dry_run=True, min_file_age_s=0)).run()
    by_file = {entry.file: entry for entry in report.files}
    assert by_file["acme/base/x.tsv"].error["code"] == "wrong_depth"
    assert by_file[V003].status == "ok" and stray.exists()


def test_the_sidecar_of_a_very_long_name_fits(tmp_path):
    """``<255-byte name>.error.json`` does not fit: the sidecar name is shortened, keeping
    the start of the name and a hash, and different long names get different sidecars."""
    first = sidecar_path(tmp_path / ("A" * 251 + ".tsv"))
    second = sidecar_path(tmp_path / ("A" * 250 + "B.tsv"))
    assert len(first.name.encode()) <= 255 and first.name.endswith(".error.json")
    assert first.name.startswith("A" * 200) and first != second
    assert sidecar_path(tmp_path / "short.tsv").name == "short.tsv.error.json"


def test_a_misplaced_file_is_reported_once_then_remembered(tmp_path, writer):
    """``acme/base/x.tsv`` has no device folder, so no error/ to go to: the first sweep
    reports it (exit 1), later sweeps skip it pointing to that report (exit 0) instead of
    reporting it every five minutes for ever; a new file under that name is reported again."""
    data, reports = tmp_path / "data", tmp_path / "reports"
    stray = put(data, "acme/base/x.tsv", GOOD_T302)

    def sweep():
        config = RunConfig(data, dry_run=False, min_file_age_s=0, state_dir=reports)
        return Runner(config, writer()).run()

    first = sweep()
    assert [(e.status, e.error["code"]) for e in first.files] == [("error", "wrong_depth")]
    assert first.exit_code == 1
    second = sweep()
    (entry,) = second.files
    assert (entry.status, entry.skip_reason, second.exit_code) == ("skipped", "reported_before", 0)
    assert "misplaced, reported on" in entry.notes[0]
    stray.unlink()
    put(data, "acme/base/x.tsv", GOOD_T302 + b"\n")  # another upload under the same name
    assert [e.status for e in sweep().files] == ["error"]
    stray.unlink()
    assert sweep().files == []
    assert json.loads((reports / "misplaced-files.json").read_text()) == {}
