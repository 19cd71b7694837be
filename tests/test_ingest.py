"""End to end: the real tsv_parser.py process, the sample tree, the InfluxDB double.

Every fault the writer must survive is injected here; after each, the files are where the
lifecycle says and the stored points are exactly the contract's, never duplicated or lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.doubles.line_protocol import parse_batch
from tests.helpers import (
    COMPANY1,
    EMPTY,
    EXPECTED,
    HEADER_ONLY,
    PARSER,
    PROJECT_ROOT,
    SAMPLES,
    V003,
    contract,
    copy_samples,
    electrical,
    files_under,
    last_report,
    run_parser,
)


@pytest.fixture
def env(influxdb_env, tmp_path) -> dict[str, str]:
    return {
        **influxdb_env,
        "INFLUXDB_RETRY_INTERVAL_MS": "50",
        "INFLUXDB_MAX_RETRIES": "2",
        "INFLUXDB_TIMEOUT_S": "2",
        "TSV_REPORT_DIR": str(tmp_path / "reports"),
        "TSV_LOG_LEVEL": "WARNING",
    }


def EXPECTED_LP(relative: str) -> str:  # noqa: N802
    return (EXPECTED / Path(relative).with_suffix(".lp")).read_text()


def test_sample_tree_is_ingested_as_the_contract_says(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data")
    result = run_parser(env, data, "--verify")
    assert result.returncode == 1, result.stderr  # two sample files are refused
    assert electrical(influxdb, "company1") == contract(COMPANY1)
    dominique = electrical(influxdb, "dominique")
    assert contract(V003) <= dominique  # the other dominique files add their own points
    report = last_report(env)
    statuses = {entry["file"]: entry["status"] for entry in report["files"]}
    assert statuses[EMPTY] == statuses[HEADER_ONLY] == "error"
    assert Counter(statuses.values()) == {"ok": 12, "error": 2}
    for entry in report["files"]:
        if entry["status"] == "ok":
            assert entry["verify"]["ok"] and entry["verify"]["found"] == entry["points_written"]
            assert entry["points_written"] == entry["summary"]["values_written"] > 0
    remaining = files_under(data)
    assert all("/parsed/" in path or "/error/" in path for path in remaining)
    assert "company1/campaign1/02001084/parsed/T302_251012_031720.tsv" in remaining
    reason = json.loads(
        (data / "acme/base/02001283/error/T302_260109_133915.tsv.error.json").read_text()
    )
    assert reason["code"] == "no_data_rows" and reason["line"] == 2
    assert reason["file"] == HEADER_ONLY and reason["parser_version"] and reason["time"]
    assert report["totals"]["points_written"] == sum(
        entry["points_written"] for entry in report["files"]
    )


def test_the_same_files_again_write_the_same_points_and_nothing_else(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1, V003)
    assert run_parser(env, data).returncode == 0
    first = {bucket: electrical(influxdb, bucket) for bucket in ("company1", "dominique")}
    copy_samples(data, COMPANY1, V003)  # uploaded again, same content
    assert run_parser(env, data).returncode == 0
    assert {bucket: electrical(influxdb, bucket) for bucket in first} == first
    assert files_under(data) == [
        "company1/campaign1/02001084/parsed/T302_251012_031720.tsv",
        "dominique/v003/02000800/parsed/T302_260208_211459_UTC.tsv",
    ]
    notes = [note for entry in last_report(env)["files"] for note in entry["notes"]]
    assert any("identical file was already in parsed/" in note for note in notes)


def test_a_changed_file_of_the_same_name_is_kept_beside_the_first(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    assert run_parser(env, data).returncode == 0
    path = data / V003
    lines = (SAMPLES / V003).read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2] + lines[-1:]))  # one row less
    assert run_parser(env, data).returncode == 0
    parsed = sorted(p.name for p in (path.parent / "parsed").iterdir())
    assert parsed == ["T302_260208_211459_UTC.2.tsv", "T302_260208_211459_UTC.tsv"]


def test_the_bucket_is_created_once_per_run_with_the_retention(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", "acme/base/02001283/T302_251025_031739.tsv",
                        "acme/base/02001283/T302_251027_031520.tsv",
                        "acme/base/02001283/T302_251101_032048.tsv")  # fmt: skip
    result = run_parser({**env, "INFLUXDB_BUCKET_RETENTION": "3650d"}, data)
    assert result.returncode == 0, result.stderr
    assert influxdb.bucket_retention("acme") == 3650 * 86400
    lookups = [
        r
        for r in influxdb.requests
        if r.path == "/api/v2/buckets" and r.query.get("name") == ["acme"]
    ]
    creations = [r for r in influxdb.requests if r.method == "POST" and r.path == "/api/v2/buckets"]
    assert [r.status for r in lookups] == [404]  # what 2.7 answers for a missing bucket
    assert [r.json["name"] for r in creations] == ["acme", "powerview_meta"]


def test_writes_are_gzip_batches_in_seconds_within_the_batch_size(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1)
    assert run_parser({**env, "INFLUXDB_BATCH_SIZE": "1000"}, data).returncode == 0
    data_writes = [w for w in influxdb.writes if w.bucket == "company1" and w.precision == "s"]
    assert len(data_writes) == 5  # 4290 points, 33 rows of 30 per batch
    assert all(w.content_encoding == "gzip" and w.points <= 1000 for w in data_writes)
    assert sum(w.points for w in data_writes) == 4290


def test_every_request_the_parser_sends_follows_the_openapi_contract(
    influxdb, env, tmp_path, influxdb_contract
):
    data = copy_samples(tmp_path / "data")
    run_parser(env, data, "--verify")
    assert influxdb.requests
    assert influxdb_contract.check_requests(influxdb.requests) == []


def test_ingestion_records_in_the_company_and_meta_buckets(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003, EMPTY)
    assert run_parser(env, data).returncode == 1
    company = [p for p in influxdb.points("dominique") if p.measurement == "powerview_ingest"]
    fields = {p.field: p.value for p in company}
    assert fields["points_written"] == 72 and fields["rows"] == 6
    assert fields["file"] == "T302_260208_211459_UTC.tsv"
    assert dict(company[0].tags)["device_master_sn"] == "02000800"
    meta = influxdb.points("powerview_meta")
    per_file = {(dict(p.tags)["company"], dict(p.tags)["status"]) for p in meta
                if p.measurement == "tsv_parser_file"}  # fmt: skip
    assert per_file == {("dominique", "ok"), ("acme", "error")}
    run = {p.field: p.value for p in meta if p.measurement == "tsv_parser_run"}
    assert run["files"] == 2 and run["ok"] == 1 and run["error"] == 1 and run["exit_code"] == 1
    assert not [p for p in influxdb.points("acme") if p.measurement == "electrical"]


def test_a_failed_ingestion_record_is_only_a_warning(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    influxdb.fail_nth_write(2, status=500)  # the file is one write; the next is its record
    result = run_parser({**env, "INFLUXDB_MAX_RETRIES": "0"}, data)
    assert result.returncode == 0, result.stderr
    entry = last_report(env)["files"][0]
    assert entry["status"] == "ok"
    assert any("ingestion record" in note for note in entry["notes"])
    assert (data / "dominique/v003/02000800/parsed/T302_260208_211459_UTC.tsv").exists()


# -- faults ---------------------------------------------------------------------------------
def test_unreachable_server_leaves_files_in_place(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1, V003)
    before = files_under(data)
    influxdb.refuse_connections()
    result = run_parser(env, data)
    assert result.returncode == 3
    assert "cannot reach InfluxDB" in result.stderr and "no file was touched" in result.stderr
    assert files_under(data) == before


def test_server_lost_during_the_run_is_temporary(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1)
    influxdb.fail_next(100, status=503, only_writes=True)
    result = run_parser(env, data)
    assert result.returncode == 3, result.stderr
    entry = last_report(env)["files"][0]
    assert (entry["status"], entry["error_kind"]) == ("retry", "temporary")
    assert (data / COMPANY1).exists() and not (data / COMPANY1).parent.joinpath("error").exists()
    influxdb.reset_faults()
    assert run_parser(env, data).returncode == 0
    assert electrical(influxdb, "company1") == contract(COMPANY1)


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (500, None), (429, 0.2)])
def test_temporary_answers_are_retried_within_the_run(influxdb, env, tmp_path, status, retry_after):
    data = copy_samples(tmp_path / "data", COMPANY1)
    influxdb.fail_next(2, status=status, retry_after=retry_after, only_writes=True)
    result = run_parser(env, data)
    assert result.returncode == 0, result.stderr
    assert electrical(influxdb, "company1") == contract(COMPANY1)
    assert [w.status for w in influxdb.writes][:3] == [status, status, 204]


def test_a_later_batch_failing_leaves_the_file_whole_for_the_next_sweep(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1)
    env = {**env, "INFLUXDB_BATCH_SIZE": "600", "INFLUXDB_MAX_RETRIES": "0"}
    influxdb.fail_nth_write(4, status=500)
    assert run_parser(env, data).returncode == 3
    partial = electrical(influxdb, "company1")
    assert 0 < sum(partial.values()) < 4290
    assert (data / COMPANY1).exists()
    assert run_parser(env, data).returncode == 0
    stored = electrical(influxdb, "company1")
    assert stored == contract(COMPANY1)  # nothing lost, nothing duplicated
    assert influxdb.point_count("company1") == 4290 + 5 * 1  # + one ingestion record


def test_a_slow_server_times_out_as_temporary(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    influxdb.set_delay(3, only_writes=True)
    result = run_parser({**env, "INFLUXDB_TIMEOUT_S": "0.5", "INFLUXDB_MAX_RETRIES": "0"}, data)
    assert result.returncode == 3, result.stderr
    assert "did not answer in time" in json.dumps(last_report(env))
    assert (data / V003).exists()


def test_a_refused_token_stops_the_run_before_any_file(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1, V003)
    before = files_under(data)
    result = run_parser({**env, "INFLUXDB_ADMIN_TOKEN": "not-a-token"}, data)
    assert result.returncode == 4
    assert "401" in result.stderr
    assert files_under(data) == before


def test_a_wrong_org_is_a_configuration_error(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    result = run_parser({**env, "INFLUXDB_ORG": "nobody"}, data)
    assert result.returncode == 4
    assert "INFLUXDB_ORG" in result.stderr
    assert (data / V003).exists()


def test_a_token_that_cannot_write_a_bucket_stops_the_run_there(influxdb, tmp_path, env):
    for bucket in ("company1", "dominique", "powerview_meta"):
        influxdb.create_bucket(bucket)
    org_id = influxdb.org_id
    permissions = [
        {"action": "read", "resource": {"type": "orgs", "id": org_id}},
        {"action": "read", "resource": {"type": "buckets", "orgID": org_id}},
        {"action": "write", "resource": {"type": "buckets", "orgID": org_id,
                                          "id": influxdb.bucket_id("company1")}},
    ]  # fmt: skip
    answer = requests.post(
        f"{influxdb.url}/api/v2/authorizations",
        json={"orgID": org_id, "permissions": permissions},
        headers={"Authorization": f"Token {influxdb.admin_token}"},
        timeout=5,
    )
    token = answer.json()["token"]
    bavella = "dominique/bavella/02000800/T302_260105_162016.tsv"
    data = copy_samples(tmp_path / "data", COMPANY1, bavella, V003)
    result = run_parser({**env, "INFLUXDB_ADMIN_TOKEN": token}, data)
    assert result.returncode == 4, result.stderr
    report = last_report(env)
    assert [(e["status"], e["error_kind"]) for e in report["files"]] == [
        ("ok", None),
        ("retry", "configuration"),
        ("retry", "configuration"),
    ]
    assert "403" in report["files"][1]["error"]["reason"]
    assert "not tried" in report["files"][2]["notes"][0]
    assert "stopped after" in report["messages"][0]
    assert (data / bavella).exists() and (data / V003).exists()
    assert not (data / COMPANY1).exists()


def test_missing_settings_are_refused_before_anything(env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    broken = {k: v for k, v in env.items() if not k.startswith("INFLUXDB_")}
    broken["INFLUXDB_BATCH_SIZE"] = "lots"
    result = run_parser(broken, data)
    assert result.returncode == 2
    for problem in ("INFLUXDB_HOST is not set", "INFLUXDB_ORG is not set",
                    "INFLUXDB_BATCH_SIZE='lots'"):  # fmt: skip
        assert problem in result.stderr
    assert (data / V003).exists()


# -- the file lifecycle ---------------------------------------------------------------------
def test_sweep_skips_files_that_may_still_be_uploading(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    result = subprocess.run(
        [sys.executable, str(PARSER), "--dataFolder", str(data)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    entry = last_report(env)["files"][0]
    assert entry["status"] == "skipped" and "may still be uploading" in entry["notes"][0]
    assert (data / V003).exists()


def test_an_explicit_file_is_taken_whatever_its_age(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    result = subprocess.run(
        [sys.executable, str(PARSER), "--dataFolder", str(data), "--tsvFile", str(data / V003)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (data / V003).exists()


def test_unsafe_folder_names_go_to_error(influxdb, env, tmp_path):
    data = tmp_path / "data"
    path = data / "bad company" / "site" / "02000800" / "T302.tsv"
    path.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / V003, path)
    result = run_parser(env, data)
    assert result.returncode == 1
    assert (path.parent / "error" / "T302.tsv.error.json").exists()
    assert "bad company" not in influxdb.bucket_names()


def test_concurrent_processes_ingest_each_file_exactly_once(influxdb, env, tmp_path):
    """24 parser processes (hooks and sweeps) race over the same 10 files."""
    data = tmp_path / "data"
    sources = [
        "acme/base/02001283/T302_251025_031739.tsv",
        "acme/base/02001283/T302_251026_031500.tsv",
        "acme/base/02001283/T302_251027_031520.tsv",
        "acme/base/02001283/T302_251101_032048.tsv",
        "acme/base/02001283/T302_251128_031740.tsv",
        "acme/mono-v003/02001311/T302_260122_162658_UTC.tsv",
        COMPANY1,
        "dominique/bavella/02000800/T302_260105_162016.tsv",
        "dominique/v003/02000800/T302_260128_171459_UTC.tsv",
        V003,
    ]
    copy_samples(data, *sources)
    commands = []
    for number in range(24):
        command = [sys.executable, str(PARSER), "--dataFolder", str(data), "--min-age", "0"]
        if number % 2:
            command += ["--tsvFile", str(data / sources[number % len(sources)])]
        commands.append(command)
    slow_machine = {**env, "INFLUXDB_TIMEOUT_S": "60"}  # 24 processes on two loaded cores
    processes = [
        subprocess.Popen(
            command, env=slow_machine, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for command in commands
    ]
    codes = [process.wait(timeout=180) for process in processes]
    assert codes == [0] * len(commands), [p.stderr.read() for p in processes if p.returncode]
    reports = [json.loads(p.read_text()) for p in Path(env["TSV_REPORT_DIR"]).glob("*.json")]
    ingested = Counter(
        entry["file"] for report in reports for entry in report["files"] if entry["status"] == "ok"
    )
    assert ingested == Counter(sources)  # each file exactly once
    assert all("/parsed/" in path for path in files_under(data))
    assert len(files_under(data)) == len(sources)
    for bucket in ("acme", "company1", "dominique"):
        points = electrical(influxdb, bucket)
        assert max(points.values()) == 1
    assert electrical(influxdb, "company1") == contract(COMPANY1)
    data_writes = [w for w in influxdb.writes if w.precision == "s" and w.status == 204]
    # Every point a report counts reached the server; on a loaded machine a write that timed
    # out on the client's side may have been stored and then sent again (writes are idempotent).
    assert sum(w.points for w in data_writes) >= sum(
        entry["points_written"] for report in reports for entry in report["files"]
    )


def test_a_claim_left_by_a_killed_process_is_taken_by_the_next_run(influxdb, env, tmp_path):
    """A process holding a file is killed with SIGKILL; the next run ingests the file."""
    data = copy_samples(tmp_path / "data", V003)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from core.lifecycle import claim\n"
         "with claim(Path(sys.argv[1])) as mine:\n"
         "    print(mine, flush=True); time.sleep(600)",
         str(data / V003)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "True"
    held = run_parser(env, data)
    assert held.returncode == 0
    assert last_report(env)["files"][0]["status"] == "skipped"  # claimed by the holder
    holder.kill()
    holder.wait()
    result = run_parser(env, data)
    assert result.returncode == 0, result.stderr
    assert last_report(env)["files"][0]["status"] == "ok"
    assert not (data / V003).exists()
    assert contract(V003) <= electrical(influxdb, "dominique")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie holds nothing)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, what: str, deadline_s: float = 120.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_parser_killed_mid_file_leaves_no_process_claim_or_shared_memory(influxdb, env, tmp_path):
    """kill -9 of the parser while its sender waits on a write: the sender dies with it, the
    claim is released, no /dev/shm segment is left, and the next run takes the file."""
    big = COMPANY1  # 143 rows of 30 channels: 72 writes of 60 points
    data = copy_samples(tmp_path / "data", big)
    influxdb.set_delay(600, only_writes=True)
    parser = subprocess.Popen(
        [sys.executable, str(PARSER), "--dataFolder", str(data), "--min-age", "0",
         "--tsvFile", str(data / big)],
        env={**env, "INFLUXDB_BATCH_SIZE": "60", "INFLUXDB_TIMEOUT_S": "600",
             "INFLUXDB_INLINE_MAX_BYTES": "0"},  # the sender process, even for this small file
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: influxdb.write_requests_received >= 1 or parser.poll() is not None,
                  "the first write")  # fmt: skip
        assert parser.poll() is None, "the parser ended before its first write was answered"
        children = _children(parser.pid)
        segments = set()
        for child in children:
            with contextlib.suppress(OSError):
                maps = (Path("/proc") / str(child) / "maps").read_text()
                segments |= {line.split()[-2] if line.endswith("(deleted)") else line.split()[-1]
                             for line in maps.splitlines() if "/dev/shm/" in line}  # fmt: skip
        assert children, "the sender process was not found"
        os.kill(parser.pid, signal.SIGKILL)
        parser.wait()
        _wait_for(lambda: not any(_alive(child) for child in children), "the sender to end")
    finally:
        if parser.poll() is None:
            parser.kill()
            parser.wait()
        influxdb.reset_faults()
    assert not [segment for segment in segments if Path(segment).exists()]
    with open(data / big, "rb") as held:  # the claim (an flock) died with its holders
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(held, fcntl.LOCK_UN)
    result = run_parser(env, data)
    assert result.returncode == 0, result.stderr
    assert last_report(env)["files"][0]["status"] == "ok"
    assert (data / big).parent.joinpath("parsed", Path(big).name).exists()
    assert electrical(influxdb, "company1") == contract(big)


# -- answers of a real InfluxDB 2.7 that belong to the file ------------------------------------
def test_a_partial_write_sends_the_file_to_error_once(influxdb, env, tmp_path):
    """422 "partial write: field type conflict" (another writer made the field an integer):
    the file goes to error/ with the server's message, exit 1, and is not retried."""
    data = copy_samples(tmp_path / "data", V003, COMPANY1)
    (point, *_), _ = parse_batch(EXPECTED_LP(V003), "s")
    field = point.fields[0][0]
    influxdb.create_bucket("dominique")
    line = f"electrical {field}=1i {point.time_ns // 10**9}\n".encode()
    with requests.post(
        f"{influxdb.url}/api/v2/write",
        params={"org": influxdb.org, "bucket": "dominique", "precision": "s"},
        headers={"Authorization": f"Token {influxdb.admin_token}"},
        data=line,
        timeout=10,
    ) as answer:
        assert answer.status_code == 204
    result = run_parser(env, data)
    assert result.returncode == 1, result.stderr
    entries = {entry["file"]: entry for entry in last_report(env)["files"]}
    assert entries[COMPANY1]["status"] == "ok"
    refused = entries[V003]
    assert (refused["status"], refused["error"]["code"]) == ("error", "partial_write")
    assert "partial write: field type conflict" in refused["error"]["reason"]
    sidecar = data / Path(V003).parent / "error" / (Path(V003).name + ".error.json")
    assert "field type conflict" in json.loads(sidecar.read_text())["reason"]
    writes_before = len(influxdb.writes)
    again = run_parser(env, data)
    assert again.returncode == 0, again.stderr
    assert len(influxdb.writes) == writes_before + 1  # only the run record: no file retried


def test_a_413_sets_that_file_aside_and_the_sweep_goes_on(influxdb, env, tmp_path):
    """A 413 (a proxy's or another server's body limit) belongs to the file, not to the setup."""
    data = copy_samples(tmp_path / "data", COMPANY1, V003)
    influxdb.fail_nth_write(1, status=413)  # the first file's first batch
    result = run_parser(env, data)
    assert result.returncode == 1, result.stderr
    entries = last_report(env)["files"]
    statuses = sorted((entry["status"], (entry["error"] or {}).get("code")) for entry in entries)
    assert statuses == [("error", "request_too_large"), ("ok", None)]
    assert len(files_under(data)) == 3  # one file in parsed/, one in error/ with its sidecar


def test_no_request_carries_more_points_than_the_batch_size(influxdb, env, tmp_path):
    """A row holds 12 channels, INFLUXDB_BATCH_SIZE is 5: rows are split across requests."""
    data = copy_samples(tmp_path / "data", V003)
    result = run_parser({**env, "INFLUXDB_BATCH_SIZE": "5"}, data)
    assert result.returncode == 0, result.stderr
    data_writes = [w for w in influxdb.writes if w.bucket == "dominique" and w.precision == "s"]
    assert max(w.points for w in data_writes) == 5
    assert sum(w.points for w in data_writes) == 72
    assert electrical(influxdb, "dominique") == contract(V003)
    assert last_report(env)["files"][0]["points_written"] == 72


@pytest.mark.parametrize(
    ("company", "why"),
    [
        ("ACME", "differs from the existing company 'acme' only by case"),
        ("POWERVIEW_META", "is reserved"),
        ("powerview_meta", "is reserved"),
        ("General", "is reserved"),
    ],
)
def test_reserved_and_case_conflicting_companies_are_set_aside(
    influxdb, env, tmp_path, company, why
):
    influxdb.create_bucket("acme")
    data = copy_samples(tmp_path / "data", V003)
    path = data / company / "site" / "02000800" / "T302_260208_211459_UTC.tsv"
    path.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / V003, path)
    result = run_parser(env, data)
    assert result.returncode == 1, result.stderr
    entries = {entry["file"]: entry for entry in last_report(env)["files"]}
    refused = entries[str(path.relative_to(data))]
    assert refused["status"] == "error" and why in refused["error"]["reason"]
    assert refused["error"]["code"] in ("reserved_company_name", "company_case_conflict")
    assert (path.parent / "error" / (path.name + ".error.json")).exists()
    assert entries[V003]["status"] == "ok"
    assert influxdb.bucket_names() == {"acme", "dominique", "powerview_meta"}
    # the refused company's own ingestion record lands nowhere, not even in the meta bucket
    ingest = [p for p in influxdb.points("powerview_meta") if p.measurement == "powerview_ingest"]
    assert ingest == []


def test_a_retention_under_one_hour_is_refused_at_start_up(influxdb, env, tmp_path):
    """InfluxDB 2.7 would answer 500 to such a bucket at every sweep."""
    data = copy_samples(tmp_path / "data", V003)
    result = run_parser({**env, "INFLUXDB_BUCKET_RETENTION": "30m"}, data)
    assert result.returncode == 2
    assert "INFLUXDB_BUCKET_RETENTION" in result.stderr and "1 h" in result.stderr
    assert (data / V003).exists() and not influxdb.requests


def test_a_first_upload_of_a_new_company_creates_its_bucket(influxdb, env, tmp_path):
    data = copy_samples(tmp_path / "data", V003)
    result = run_parser(env, data)
    assert result.returncode == 0, result.stderr
    lookup = next(r for r in influxdb.requests if r.query.get("name") == ["dominique"])
    assert lookup.status == 404  # tenant/service_bucket.go: GetBucketByName
    assert electrical(influxdb, "dominique") == contract(V003)
