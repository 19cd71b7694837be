"""A burst of uploads: the hook queues, one drainer ingests (core/queue.py, core/drainer.py).

Behaviour only, never durations: every file ends in ``parsed/`` once with its points stored
once; never more than one drainer holds the queue (read from the drainers' journal, which
the lock's holder writes); a drainer killed with SIGKILL mid-queue loses nothing; a hook that
queues while the drainer is letting go is not stranded.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import core.drainer
from core.drainer import Drainer
from core.enqueue import read_env_values
from core.hook_config import load_config, read_env_file
from tests.helpers import COMPANY1, PROJECT_ROOT, SAMPLES, HookInstallation, ingest_records

TEMPLATE = SAMPLES / COMPANY1


def daily_files(data: Path, count: int, company: str = "burst") -> list[Path]:
    """``count`` copies of the 143-row sample, each with its own serials (its own series) and
    its own device folder."""
    lines = TEMPLATE.read_text(encoding="ascii").splitlines(keepends=True)
    serials = lines[0].rstrip("\n").split("\t")
    distinct = list(dict.fromkeys(serials))
    paths = []
    for index in range(count):
        renamed = {serial: f"{number + 5}{index:07d}" for number, serial in enumerate(distinct)}
        header = "\t".join(renamed[serial] for serial in serials) + "\n"
        path = data / company / "site" / renamed[distinct[0]] / TEMPLATE.name
        path.parent.mkdir(parents=True)
        path.write_text(header + "".join(lines[1:]), encoding="ascii")
        paths.append(path)
    return paths


def upload_event(path: Path) -> dict[str, str]:
    """The variables SFTPGo gives the hook for a completed upload."""
    return {
        "SFTPGO_ACTION": "upload",
        "SFTPGO_ACTION_PATH": str(path),
        "SFTPGO_ACTION_STATUS": "1",
        "SFTPGO_ACTION_USERNAME": "burst",
        "SFTPGO_ACTION_FS_PROVIDER": "0",
    }


def holders(stack: HookInstallation) -> tuple[int, int, list[str]]:
    """(most drainers holding the queue at once, drainers holding it at the end, journal)."""
    lines = stack.spool.journal.read_text(encoding="utf-8").splitlines()
    holding = most = 0
    for line in lines:
        holding += 1 if line.startswith("acquired ") else -1
        most = max(most, holding)
    return most, holding, lines


def electrical(stack: HookInstallation, bucket: str) -> tuple[int, int]:
    """(points received in accepted writes of points, points stored)."""
    received = sum(
        write.points
        for write in stack.influxdb.writes
        if write.bucket == bucket and write.precision == "s" and write.status == 204
    )
    stored = sum(1 for point in stack.influxdb.points(bucket) if point.measurement == "electrical")
    return received, stored


def assert_ingested_once(stack: HookInstallation, paths: list[Path], bucket: str = "burst") -> None:
    for path in paths:
        assert not path.exists(), path
        assert [p.name for p in (path.parent / "parsed").iterdir()] == [path.name]
        assert not (path.parent / "error").exists()
    assert ingest_records(stack.influxdb, bucket) == {TEMPLATE.name: len(paths)}
    received, stored = electrical(stack, bucket)
    assert received == stored > 0  # no point written twice
    masters = {dict(point.tags).get("device_master_sn") for point in stack.influxdb.points(bucket)}
    assert {path.parent.name for path in paths} <= masters  # every file's points are there


def test_a_burst_of_hooks_ingests_every_file_once_with_one_drainer_at_a_time(stack):
    paths = daily_files(stack.data, 40)
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        results = list(pool.map(lambda path: stack.upload(path, username="burst"), paths))
    assert [result.returncode for result in results] == [0] * len(paths)
    lines = stack.outcomes()
    assert_ingested_once(stack, paths)
    outcomes = Counter((line["event"], line["outcome"]) for line in lines)
    assert outcomes == {("upload", "ingested"): len(paths)}, outcomes
    most, holding, journal = holders(stack)
    assert most == 1 and holding == 0, journal
    drainers = {line.split()[1] for line in journal}
    assert drainers >= {line["pid"] for line in lines}  # every outcome came from a drainer
    assert not stack.spool.queued() and not list(stack.spool.work.iterdir())


def test_a_drainer_killed_mid_queue_loses_nothing_and_the_next_hook_finishes(stack):
    paths = daily_files(stack.data, 6)
    stack.influxdb.set_delay(600, only_writes=True)  # the drainer's first write hangs
    stack.settings(INFLUXDB_TIMEOUT_S="600")
    stack.settle_after = False
    for path in paths[:5]:
        assert stack.upload(path, username="burst").returncode == 0
    deadline = time.monotonic() + 120
    while stack.influxdb.write_requests_received < 1:
        assert time.monotonic() < deadline, stack.uploads_log.read_text()
        time.sleep(0.05)
    journal = stack.spool.journal.read_text(encoding="utf-8").split()
    drainer = int(journal[journal.index("acquired") + 1])
    assert list(stack.spool.work.iterdir())  # it had taken markers
    os.kill(drainer, signal.SIGKILL)
    while stack.spool.is_locked():  # the kill releases the lock
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert all(path.exists() for path in paths)  # nothing moved, nothing lost
    stack.influxdb.set_delay(0)
    stack.settle_after = True
    assert stack.upload(paths[5], username="burst").returncode == 0  # the next upload
    lines = stack.outcomes()
    assert_ingested_once(stack, paths)
    finals = Counter(line["path"] for line in lines if line["event"] == "upload")
    assert finals == {str(path.relative_to(stack.data)): 1 for path in paths}, lines
    assert {line["outcome"] for line in lines if line["event"] == "upload"} == {"ingested"}


def test_a_hook_queueing_while_the_drainer_lets_go_is_not_stranded(stack, monkeypatch):
    """The hook queues after the drainer found the queue empty and before it released the
    lock: the hook cannot get the lock and leaves; the drainer, looking again after letting
    go, takes the lock back and ingests the file."""
    first, late = daily_files(stack.data, 2)
    monkeypatch.setenv("POWERVIEW_ENV_FILE", str(stack.env_file))
    environ = {"POWERVIEW_ENV_FILE": str(stack.env_file), "POWERVIEW_ROOT": str(PROJECT_ROOT)}
    config = load_config(environ)
    spool = config.spool
    spool.enqueue(upload_event(first), time.time_ns())
    descriptor = spool.try_lock()
    assert descriptor is not None
    releases = []
    real_release = core.drainer.release

    def release(held: int) -> None:
        if not releases:  # a hook arrives at the worst moment
            spool.enqueue(upload_event(late), time.time_ns())
            assert spool.try_lock() is None  # what the hook sees: a drainer holds it
        releases.append(held)
        real_release(held)

    monkeypatch.setattr(core.drainer, "release", release)
    Drainer(config, spool, keep_output=lambda text: None, environ=environ).run(descriptor)
    assert len(releases) == 2  # it let go, found the late marker, took the lock back
    assert_ingested_once(stack, [first, late])
    assert not spool.queued() and not spool.is_locked()
    most, holding, journal = holders(stack)
    assert most == 1 and holding == 0, journal


@pytest.mark.parametrize("companies", [1, 3])
def test_disconnections_of_a_burst_merge_into_one_sweep_per_company(stack, companies):
    """Every disconnection queues a sweep of its company; the drainer sweeps each company
    once for all the requests it found queued."""
    old = time.time() - 3600
    paths = []
    for number in range(companies):
        for path in daily_files(stack.data, 2, company=f"co{number}"):
            os.utime(path, (old, old))
            paths.append(path)
    spool = stack.spool
    descriptor = spool.try_lock()  # no drainer until every request is queued
    assert descriptor is not None
    stack.settle_after = False
    try:
        for number in range(companies):
            for _ in range(3):
                result = stack.hook(connection_username=f"co{number}", connection_duration="5")
                assert result.returncode == 0
    finally:
        os.close(descriptor)
    assert len(spool.queued()) == 3 * companies
    stack.settle_after = True
    stack.upload(paths[0], username="co0")  # an upload starts the drainer
    lines = [line for line in stack.outcomes() if line["event"] == "post-disconnect"]
    expected = sorted(f"co{n}" for n in range(companies) for _ in range(3))
    assert sorted(line["path"] for line in lines) == expected
    assert {line["outcome"] for line in lines} == {"completed"}
    assert all("(one sweep for 3 disconnections)" in line["detail"] for line in lines), lines
    sweeps = [json.loads(path.read_text()) for path in stack.logs.glob("reports/tsv_*.json")]
    assert (
        sorted(r["data_folder"] for r in sweeps if r["min_file_age_s"] is not None)
        == [str(stack.data)] * companies
    )  # one sweep per company
    for path in paths:
        assert (path.parent / "parsed" / path.name).exists()


def test_the_fast_path_reads_the_settings_file_as_the_hook_does(tmp_path):
    """core/enqueue.py reads .env without the hook's module (no re, no pathlib): the same
    values from a file written like .env.sample (export, quotes, comments)."""
    sample = (PROJECT_ROOT / ".env.sample").read_text(encoding="utf-8")
    env_file = tmp_path / "powerview.env"
    env_file.write_text(
        sample + '\nexport POWERVIEW_DATA_DIR="/srv/x y"  # here\n'
        "TSV_REPORT_DIR=/var/r # there\nPOWERVIEW_VENV='/opt/v' \n",
        encoding="utf-8",
    )
    keys = ("POWERVIEW_DATA_DIR", "POWERVIEW_VENV", "TSV_REPORT_DIR")
    fast = read_env_values(str(env_file), keys)
    full = {key: value for key, value in read_env_file(env_file).items() if key in keys}
    assert (
        fast
        == full
        == {
            "POWERVIEW_DATA_DIR": "/srv/x y",
            "TSV_REPORT_DIR": "/var/r",
            "POWERVIEW_VENV": "/opt/v",
        }
    )
