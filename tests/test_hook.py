"""The SFTPGo hook, ``on-upload.sh`` and ``core/hook.py``, run as SFTPGo runs it.

SFTPGo starts the hook with an environment holding only its ``SFTPGO_*`` variables (plus
what its ``command`` section adds), no arguments, no stdin, and throws the output away. The
tests do the same: a cleared environment (what ``env -i`` gives) with the event's variables,
``POWERVIEW_ROOT`` and ``POWERVIEW_ENV_FILE``; every other setting (paths of the temporary
tree, InfluxDB and Grafana of the doubles) comes from that ``.env``, which the hook and the
parser load themselves. ``id`` and ``ansible-playbook`` stand-ins (and ``rm`` for hostile
names) come first on the hook's ``PATH`` and leave a marker if anything ever runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import (
    ACME,
    BAVELLA,
    COMPANY1,
    HOOK,
    LOG_FIELD,
    PROJECT_ROOT,
    SAMPLES,
    V003,
    VENV,
    copy_samples,
    ingest_records,
    standin,
)
from tests.helpers import HookInstallation as Stack

HOOK_MODULE = PROJECT_ROOT / "core" / "hook.py"
PARSER = PROJECT_ROOT / "tsv_parser.py"
TEN_FILES = [
    "acme/base/02001283/T202_251022_121951.tsv",
    "acme/base/02001283/T302_251025_031739.tsv",
    "acme/base/02001283/T302_251026_031500.tsv",
    "acme/base/02001283/T302_251027_031520.tsv",
    "acme/base/02001283/T302_251101_032048.tsv",
    "acme/mono-v003/02001311/T302_260122_162658_UTC.tsv",
    COMPANY1,
    BAVELLA,
    "dominique/v003/02000800/T302_260128_171459_UTC.tsv",
    V003,
]
HOSTILE_NAMES = [
    "{{ lookup('pipe','id') }}",
    "a;rm -rf x",
    "$(id)",
    "with space",
    "new\nline",
    "-rf",
    ".hidden",
]


def assert_no_job_started(stack: Stack, marker: Path) -> None:
    """No event logged a started job, and none ran: a sentinel job, started now, is the
    only one whose stand-in ever runs (jobs take the same lock, one after the other)."""
    assert "started" not in [line["outcome"] for line in stack.log()]
    sentinel = stack.data / "sentinel"
    sentinel.mkdir()
    before = len([line for line in stack.log() if line.get("event") == "job:playbook"])
    assert stack.mkdir(sentinel).returncode == 0
    stack.wait_for("job:playbook", count=before + 1)
    ran = marker.read_text().splitlines() if marker.exists() else []
    assert len(ran) <= 1 and all("ansible-playbook" in line for line in ran), ran  # sentinel


def only_line(stack: Stack) -> dict[str, str]:
    """The one outcome line (a queued upload's comes from the drainer)."""
    lines = stack.outcomes()
    assert len(lines) == 1, stack.uploads_log.read_text()
    return lines[0]


# -- upload --------------------------------------------------------------------------------


def test_an_upload_is_ingested_and_moved_to_parsed(stack):
    copy_samples(stack.data, COMPANY1)
    result = stack.upload(stack.data / COMPANY1, username="company1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""  # SFTPGo would throw it away: all goes to logs
    stack.settle()
    assert not (stack.data / COMPANY1).exists()
    assert (stack.data / COMPANY1).parent.joinpath("parsed", Path(COMPANY1).name).exists()
    electrical = {p for p in stack.influxdb.points("company1") if p.measurement == "electrical"}
    assert len(electrical) > 100
    assert ingest_records(stack.influxdb, "company1") == {Path(COMPANY1).name: 1}
    line = only_line(stack)
    assert line["event"] == "upload" and line["user"] == "company1"
    assert line["path"] == COMPANY1 and line["outcome"] == "ingested"
    assert int(line["duration_ms"]) >= 0
    assert line["detail"].startswith("1 file(s): 1 ok, 0 error, 0 to retry, 0 skipped; ")
    assert "PowerView run" in (stack.logs / "hook-output.log").read_text()
    assert list((stack.logs / "reports").glob("tsv_parser_*.json"))


def test_a_failed_upload_is_set_aside_unread(stack):
    copy_samples(stack.data, ACME)
    result = stack.upload(stack.data / ACME, status="2")
    assert result.returncode == 0
    device = (stack.data / ACME).parent
    assert not (stack.data / ACME).exists()
    assert (device / "error" / Path(ACME).name).exists()
    reason = json.loads((device / "error" / f"{Path(ACME).name}.error.json").read_text())
    assert reason["reason"] == "upload failed: SFTPGo status 2"
    assert "acme" not in stack.influxdb.bucket_names()
    assert only_line(stack)["outcome"] == "set-aside"


def test_a_failed_upload_that_left_no_file_is_only_logged(stack):
    result = stack.upload(stack.data / ACME, status="3")
    assert result.returncode == 0
    line = only_line(stack)
    assert line["outcome"] == "ignored" and "status 3" in line["detail"]


def test_a_file_that_is_not_tsv_is_ignored(stack):
    path = stack.data / "acme/base/02001283/notes.txt"
    path.parent.mkdir(parents=True)
    path.write_text("hello")
    assert stack.upload(path).returncode == 0
    assert path.exists() and not (path.parent / "parsed").exists()
    assert only_line(stack)["outcome"] == "ignored"
    assert stack.influxdb.writes == []


def test_bad_content_goes_to_error_and_the_hook_still_succeeds(stack):
    empty = "acme/base/02001283/T302_260109_120045.tsv"
    copy_samples(stack.data, empty)
    assert stack.upload(stack.data / empty).returncode == 0
    stack.settle()
    assert (stack.data / empty).parent.joinpath("error", Path(empty).name).exists()
    assert only_line(stack)["outcome"] == "set-aside"


def test_an_unexpected_error_is_a_failed_line_from_the_report_not_a_set_aside(stack):
    """The outcome comes from the run report: exit code 5, the file's error kind and where
    the file went; the hook says failed (an operator must act) and where the file is."""
    copy_samples(stack.data, ACME)
    device = (stack.data / ACME).parent
    (device / "parsed").write_text("a plain file where parsed/ should be")
    result = stack.upload(stack.data / ACME)
    assert result.returncode == 0  # queued: the drainer meets the error and logs it
    line = only_line(stack)
    assert line["outcome"] == "failed", line
    assert "unexpected error, moved to error/: parsed is a file, not a folder" in line["detail"]
    assert (device / "error" / Path(ACME).name).exists()
    assert "acme" not in stack.influxdb.bucket_names() or not any(
        point.measurement == "electrical" for point in stack.influxdb.points("acme")
    )


def test_influxdb_down_leaves_the_file_for_the_sweep(stack):
    copy_samples(stack.data, ACME)
    stack.influxdb.stop()
    assert stack.upload(stack.data / ACME).returncode == 0
    assert (stack.data / ACME).exists()
    line = only_line(stack)
    assert line["outcome"] == "deferred" and "left for the sweep" in line["detail"]


def test_a_reject_slower_than_the_hook_timeout_is_stopped_and_the_file_stays(stack):
    """A failed upload is set aside by a parser run of its own, within the time limit."""
    copy_samples(stack.data, ACME)
    venv = stack.home / "slow-venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(  # the hook runs on the real Python; the parser run hangs
        f'#!/bin/sh\ncase "$1" in -m|-S) exec "{VENV}/bin/python" "$@";; esac\nexec sleep 600\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    stack.settings(POWERVIEW_HOOK_TIMEOUT_S="1")
    result = stack.hook(
        extra_env={"POWERVIEW_VENV": str(venv)},
        action="upload",
        action_path=str(stack.data / ACME),
        action_status="2",
    )
    assert result.returncode == 0
    line = only_line(stack)
    assert line["outcome"] == "deferred" and "after 1 s" in line["detail"]
    assert (stack.data / ACME).exists()


def test_twenty_concurrent_events_for_ten_files_ingest_each_file_once(stack):
    copy_samples(stack.data, *TEN_FILES)
    events = [stack.data / relative for relative in TEN_FILES] * 2
    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        results = list(pool.map(stack.upload, events))
    assert [result.returncode for result in results] == [0] * 20
    stack.settle()
    for relative in TEN_FILES:
        path = stack.data / relative
        assert not path.exists()
        assert (path.parent / "parsed" / path.name).exists()
    expected: dict[str, Counter] = {}
    for relative in TEN_FILES:
        expected.setdefault(relative.split("/")[0], Counter())[Path(relative).name] += 1
    for bucket, files in expected.items():
        assert ingest_records(stack.influxdb, bucket) == files  # once each, never twice
    outcomes = Counter(line["outcome"] for line in stack.outcomes())
    assert outcomes["ingested"] == 10 and outcomes["skipped"] == 10, outcomes
    assert not stack.marker.exists()


# -- rename --------------------------------------------------------------------------------


def test_a_rename_to_tsv_ingests_the_target(stack):
    copy_samples(stack.data, ACME)
    target = stack.data / ACME
    source = target.with_suffix(".tsv.filepart")
    result = stack.hook(
        action="rename",
        action_path=str(source),
        action_target=str(target),
        action_status="1",
        action_username="acme",
    )
    assert result.returncode == 0
    stack.settle()
    assert (target.parent / "parsed" / target.name).exists()
    line = only_line(stack)
    assert line["event"] == "rename" and line["outcome"] == "ingested"


def test_a_rename_to_another_name_is_ignored(stack):
    copy_samples(stack.data, ACME)
    target = (stack.data / ACME).with_suffix(".bak")
    (stack.data / ACME).rename(target)
    result = stack.hook(
        action="rename",
        action_path=str(stack.data / ACME),
        action_target=str(target),
        action_status="1",
    )
    assert result.returncode == 0 and target.exists()
    assert only_line(stack)["outcome"] == "ignored"


# -- mkdir and the Grafana playbook --------------------------------------------------------


def recorder(stack: Stack) -> Path:
    """Replace the ansible-playbook stand-in by one that records its argv and vars file."""
    record = stack.home / "playbook-call"
    standin(stack.bin / "ansible-playbook", stack.home / "PLAYBOOK_RAN", record)
    return record


@pytest.mark.parametrize(
    ("relative", "names"),
    [
        ("acme", {"company_name": "acme"}),
        ("acme/site-1", {"company_name": "acme", "campaign_name": "site-1"}),
    ],
)
def test_mkdir_of_a_company_or_campaign_runs_the_playbook_with_the_names(stack, relative, names):
    record = recorder(stack)
    (stack.data / relative).mkdir(parents=True)
    result = stack.mkdir(stack.data / relative)
    assert result.returncode == 0
    assert stack.log()[0]["outcome"] == "started"  # logged before the playbook's own line
    done = stack.wait_for("job:playbook")[0]
    assert done["outcome"] == "completed", done
    assert done["user"] == "acme" and done["path"] == relative
    argv = (record.parent / f"{record.name}.argv").read_text().splitlines()
    playbook = PROJECT_ROOT / "grafana-automation/playbooks/create_grafana_resources.yml"
    assert argv[0] == str(playbook)
    assert argv[1] == "--extra-vars" and argv[2].startswith("@") and len(argv) == 3
    assert json.loads((record.parent / f"{record.name}.json").read_text()) == names
    assert not Path(argv[2][1:]).exists()  # the vars file is gone with its folder


def test_mkdir_of_a_device_folder_runs_nothing(stack):
    recorder(stack)
    (stack.data / "acme/site-1/02001283").mkdir(parents=True)
    assert stack.mkdir(stack.data / "acme/site-1/02001283").returncode == 0
    line = only_line(stack)
    assert line["outcome"] == "ignored" and "device folder" in line["detail"]
    assert_no_job_started(stack, stack.home / "PLAYBOOK_RAN")


def test_a_renamed_folder_counts_as_created(stack):
    record = recorder(stack)
    (stack.data / "acme/site-2").mkdir(parents=True)
    result = stack.hook(
        action="rename",
        action_path=str(stack.data / "acme/New folder"),
        action_target=str(stack.data / "acme/site-2"),
        action_status="1",
    )
    assert result.returncode == 0
    assert stack.wait_for("job:playbook")[0]["outcome"] == "completed"
    assert json.loads((record.parent / f"{record.name}.json").read_text()) == {
        "company_name": "acme",
        "campaign_name": "site-2",
    }


def test_mkdir_of_a_campaign_creates_the_company_in_grafana(stack, grafana):
    """The real ansible-playbook against the Grafana and InfluxDB doubles."""
    stack.settings(
        GRAFANA_URL=grafana.url,
        GRAFANA_USERNAME=grafana.admin_login,
        GRAFANA_PASSWORD=grafana.admin_password,
        POWERVIEW_GRAFANA_INFLUXDB_URL="http://influxdb:8086",
    )
    (stack.data / "acme/site-1").mkdir(parents=True)
    result = stack.mkdir(
        stack.data / "acme/site-1",
        POWERVIEW_ANSIBLE_PLAYBOOK=str(VENV / "bin" / "ansible-playbook"),
    )
    assert result.returncode == 0
    done = stack.wait_for("job:playbook", timeout_s=120)[0]
    output = (stack.logs / "hook-output.log").read_text()
    assert done["outcome"] == "completed", output
    assert "failed=0" in done["detail"]
    org = grafana.state.org_by_name("acme")
    assert org is not None
    assert grafana.state.item_by_uid(org.id, "powerview_acme_site-1") is not None
    datasource = grafana.state.datasource_by(org.id, uid="influxdb_acme")
    assert datasource.url == "http://influxdb:8086"
    assert "acme" in stack.influxdb.bucket_names()  # the data source's read token
    assert not stack.marker.exists()
    for secret in (grafana.admin_password, stack.influxdb.admin_token):
        assert secret not in output and secret not in stack.uploads_log.read_text()


# -- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_run_nothing_and_create_nothing(stack, name):
    for relative in (f"{name}/site/02001283", f"acme/{name}/02001283", f"acme/site/{name}"):
        folder = stack.data / relative
        folder.mkdir(parents=True)
        shutil.copy(SAMPLES / ACME, folder / "T302.tsv")
    (stack.home / "x").mkdir()
    standin(stack.bin / "rm", stack.marker)  # the hook itself never needs rm on this path
    before = stack.tree()
    events = [(stack.upload, stack.data / f"{name}/site/02001283/T302.tsv")]
    events += [(stack.upload, stack.data / f"acme/{name}/02001283/T302.tsv")]
    events += [(stack.upload, stack.data / f"acme/site/{name}/T302.tsv")]
    events += [(stack.mkdir, stack.data / name), (stack.mkdir, stack.data / "acme" / name)]
    for send, path in events:
        assert send(path).returncode == 0
    lines = stack.log()
    assert len(lines) == len(events)  # one line each: a newline in a name forges nothing
    assert [line["outcome"] for line in lines] == ["refused"] * len(events), lines
    assert stack.tree() == before
    assert stack.influxdb.writes == [] and stack.influxdb.bucket_names() == set()
    result = stack.hook(
        connection_username=name,
        connection_ip="192.0.2.1",
        connection_protocol="SFTP",
        connection_duration="1200",
    )
    assert result.returncode == 0
    assert stack.log()[-1]["outcome"] == "refused"
    assert_no_job_started(stack, stack.marker)


def test_dot_dot_in_a_path_is_refused(stack):
    copy_samples(stack.data, ACME)
    outside = stack.home / "outside/site/02001283"
    outside.mkdir(parents=True)
    shutil.copy(SAMPLES / ACME, outside / "T302.tsv")
    escaping = stack.data / "acme/../../outside/site/02001283/T302.tsv"
    staying = stack.data / "acme/base/../base/02001283" / Path(ACME).name  # harmless, yet odd
    assert stack.upload(escaping).returncode == 0
    assert stack.upload(staying).returncode == 0
    assert [line["outcome"] for line in stack.log()] == ["refused", "refused"]
    assert (outside / "T302.tsv").exists() and (stack.data / ACME).exists()
    assert stack.influxdb.writes == []


def test_a_symlink_leading_out_of_the_data_folder_is_refused(stack):
    outside = stack.home / "outside"
    outside.mkdir()
    shutil.copy(SAMPLES / ACME, outside / "T302.tsv")
    device = stack.data / "acme/base/02001283"
    device.mkdir(parents=True)
    (device / "link.tsv").symlink_to(outside / "T302.tsv")
    (stack.data / "acme/escape").symlink_to(outside, target_is_directory=True)
    assert stack.upload(device / "link.tsv").returncode == 0
    assert stack.mkdir(stack.data / "acme/escape").returncode == 0
    lines = stack.log()
    assert [line["outcome"] for line in lines] == ["refused", "refused"]
    assert "outside the data folder" in lines[0]["detail"]
    assert sorted(p.name for p in outside.iterdir()) == ["T302.tsv"]
    assert not (device / "error").exists() and not (device / "parsed").exists()
    assert_no_job_started(stack, stack.marker)


def test_a_symlink_inside_the_data_folder_is_refused_too(stack):
    copy_samples(stack.data, ACME)
    (stack.data / "acme/alias").symlink_to(stack.data / "acme/base")
    path = stack.data / "acme/alias/02001283" / Path(ACME).name
    assert stack.upload(path).returncode == 0
    assert only_line(stack)["outcome"] == "refused"
    assert (stack.data / ACME).exists()


def test_other_backends_are_ignored(stack):
    copy_samples(stack.data, ACME)
    result = stack.hook(
        action="upload",
        action_path=str(stack.data / ACME),
        action_status="1",
        action_fs_provider="1",
    )
    assert result.returncode == 0
    assert (stack.data / ACME).exists()
    assert only_line(stack)["outcome"] == "ignored"


# -- post-disconnect -----------------------------------------------------------------------


def disconnect(stack: Stack, username: str):
    return stack.hook(
        connection_ip="192.0.2.1",
        connection_username=username,
        connection_protocol="SFTP",
        connection_duration="4200",
    )


def test_post_disconnect_sweeps_the_users_company_and_skips_young_files(stack):
    copy_samples(stack.data, *TEN_FILES[:3], BAVELLA)
    old = time.time() - 3600
    for relative in (*TEN_FILES[:2], BAVELLA):
        os.utime(stack.data / relative, (old, old))
    young = stack.data / TEN_FILES[2]
    result = disconnect(stack, "acme")
    assert result.returncode == 0
    done = only_line(stack)
    assert done["event"] == "post-disconnect" and done["outcome"] == "completed", done
    assert done["user"] == "acme" and done["path"] == "acme"
    assert done["detail"].startswith(
        "acme: 2 ingested, 0 set aside, 0 to retry, 1 left because too young (under 60 s); "
        "3 file(s): 2 ok, 0 error, 0 to retry, 1 skipped; "
    ), done
    for relative in TEN_FILES[:2]:
        path = stack.data / relative
        assert (path.parent / "parsed" / path.name).exists()
    assert young.exists()  # may still be uploading
    assert (stack.data / BAVELLA).exists()  # another company's file
    assert "dominique" not in stack.influxdb.bucket_names()


def test_post_disconnect_of_a_user_without_a_company_folder_does_nothing(stack):
    assert disconnect(stack, "nobody").returncode == 0
    assert disconnect(stack, "").returncode == 0
    assert [line["outcome"] for line in stack.outcomes()] == ["ignored", "ignored"]


def test_an_action_variable_added_by_the_configuration_does_not_hide_a_disconnection(stack):
    """SFTPGo's command environment reaches the post-disconnect call unchanged, so a
    configuration may add SFTPGO_ACTION there: the hook goes by what SFTPGo itself sets."""
    copy_samples(stack.data, ACME)
    old = time.time() - 3600
    os.utime(stack.data / ACME, (old, old))
    result = stack.hook(
        extra_env={"SFTPGO_ACTION": "post-disconnect"},
        connection_username="acme",
        connection_ip="192.0.2.1",
        connection_protocol="SFTP",
        connection_duration="10",
    )
    assert result.returncode == 0
    line = only_line(stack)
    assert line["event"] == "post-disconnect" and line["outcome"] == "completed", line
    assert not (stack.data / ACME).exists()


def test_connection_variables_added_by_the_configuration_do_not_hide_an_upload(stack):
    copy_samples(stack.data, ACME)
    result = stack.hook(
        extra_env={"SFTPGO_CONNECTION_DURATION": "0"},
        action="upload",
        action_path=str(stack.data / ACME),
        action_status="1",
        action_username="acme",
    )
    assert result.returncode == 0
    line = only_line(stack)
    assert line["event"] == "upload" and line["outcome"] == "ingested"


# -- everything else -----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["download", "delete", "pre-upload", "ssh_cmd", "no-such"])
def test_other_actions_are_logged_and_succeed(stack, action):
    copy_samples(stack.data, ACME)
    result = stack.hook(action=action, action_path=str(stack.data / ACME), action_status="1")
    assert result.returncode == 0
    line = only_line(stack)
    assert line["event"] == action and line["outcome"] == "ignored"
    assert (stack.data / ACME).exists()


def test_run_without_an_event_says_so_and_logs_nothing(stack):
    """An operator trying the hook by hand gets a usage message, and the production log
    gets no line (no "failed" line about a missing virtualenv or data folder either)."""
    for extra in ({}, {"POWERVIEW_VENV": str(stack.home / "no-venv")}):
        result = stack.hook(extra_env=extra)
        assert result.returncode == 2
        assert "SFTPGO_" in result.stderr
    assert not stack.uploads_log.exists()


def test_a_broken_installation_fails_with_a_clear_line(stack):
    copy_samples(stack.data, ACME)
    result = stack.hook(
        extra_env={"POWERVIEW_VENV": str(stack.home / "no-venv")},
        action="upload",
        action_path=str(stack.data / ACME),
        action_status="1",
    )
    assert result.returncode == 1
    line = only_line(stack)
    assert line["outcome"] == "failed" and "no-venv" in line["detail"]


def test_the_default_paths_are_the_documented_ones():
    from core.hook_config import load_config

    config = load_config({"POWERVIEW_ENV_FILE": os.devnull})
    assert config.root == Path("/srv/powerview")
    assert config.data_dir == Path("/srv/sftpgo/data")
    assert config.hook_log == Path("/srv/sftpgo/logs/uploads.log")
    assert config.output_log == Path("/srv/sftpgo/logs/hook-output.log")
    assert config.venv == Path("/srv/powerview/envs/powerview")
    shim = HOOK.read_text()
    assert "/srv/powerview" in shim and "$POWERVIEW_ROOT/envs/powerview" in shim


def test_the_shim_is_short_and_leaves_the_logic_to_python():
    code = [
        line
        for line in HOOK.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(code) <= 15, code
    assert code[-1].endswith('-S -m core.enqueue "$@"') and "exec" in code[-1]
    assert "grep" not in HOOK.read_text()
    assert all("grep" not in path.read_text() for path in HOOK_MODULE.parent.glob("hook*.py"))


# -- channels.csv and the dashboards playbook -------------------------------------------------


def test_an_uploaded_channels_file_updates_the_campaigns_dashboards(stack):
    record = recorder(stack)
    channels = stack.data / "acme/site-1/channels.csv"
    channels.parent.mkdir(parents=True)
    channels.write_text("channel_id,label\n", encoding="utf-8")
    assert stack.upload(channels).returncode == 0
    started = stack.log()[0]
    assert started["outcome"] == "started" and started["path"] == "acme/site-1/channels.csv"
    done = stack.wait_for("job:dashboards")[0]
    assert done["outcome"] == "completed" and done["user"] == "acme", done
    argv = (record.parent / f"{record.name}.argv").read_text().splitlines()
    playbook = PROJECT_ROOT / "grafana-automation/playbooks/update_grafana_dashboards.yml"
    assert argv[:2] == [str(playbook), "--extra-vars"] and argv[2].startswith("@")
    assert json.loads((record.parent / f"{record.name}.json").read_text()) == {
        "company_name": "acme",
        "campaign_name": "site-1",
    }
    assert channels.exists()  # the file is the campaign's, kept where it was put


@pytest.mark.parametrize(
    "relative", ["acme/channels.csv", "acme/site-1/02001283/channels.csv", "acme/a b/channels.csv"]
)
def test_a_channels_file_elsewhere_runs_nothing(stack, relative):
    recorder(stack)
    channels = stack.data / relative
    channels.parent.mkdir(parents=True)
    channels.write_text("channel_id,label\n", encoding="utf-8")
    assert stack.upload(channels).returncode == 0
    assert only_line(stack)["outcome"] in ("ignored", "refused")
    assert_no_job_started(stack, stack.home / "PLAYBOOK_RAN")


# -- what the logs show ------------------------------------------------------------------------


def test_names_are_escaped_in_both_logs(stack):
    """A file name holding a newline and a terminal escape is one escaped token in
    uploads.log, and hook-output.log, which holds the parser's output, carries neither."""
    name = "T302\x1b[31m\nforged.tsv"
    path = stack.data / "acme/base/02001283" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # empty: refused, named in the parser's output
    assert stack.upload(path).returncode == 0
    line = only_line(stack)
    raw_log = stack.uploads_log.read_text()
    assert raw_log.count("\n") == 2 and "\x1b" not in raw_log  # its line, the drainer's
    assert raw_log.count(" path=$'acme/base/02001283/T302\\x1b[31m\\nforged.tsv' ") == 1
    assert line["path"] == f"acme/base/02001283/{name}" and line["outcome"] == "set-aside"
    output = (stack.logs / "hook-output.log").read_text()
    assert "\x1b" not in output
    assert all(text.startswith("pid=") for text in output.splitlines())
    assert "T302\\x1b[31m\\nforged.tsv" in output


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("acme/base/x.tsv", "acme/base/x.tsv"),
        ("with space", '"with space"'),
        ("", '""'),
        ('quote"d', "$'quote\"d'"),
        ("new\nline", "$'new\\nline'"),
        ("bell\x07", "$'bell\\x07'"),
        ("it's", '"it\'s"'),
        ("\x1b[31m", "$'\\x1b[31m'"),
    ],
)
def test_log_values_are_quoted_or_escaped(value, shown):
    from core.hook_log import log_value

    assert log_value(value) == shown
    assert LOG_FIELD.fullmatch(f"key={shown}")


# -- the parser's one-company sweep, which the post-disconnect event relies on ------------


def run_parser(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PARSER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_company_sweep_takes_only_that_company(influxdb_env, influxdb, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1, BAVELLA, V003)
    env = {**influxdb_env, "TSV_REPORT_DIR": str(tmp_path / "reports")}
    result = run_parser(env, "--dataFolder", str(data), "--company", "dominique", "--min-age", "0")
    assert result.returncode == 0, result.stderr
    assert not (data / BAVELLA).exists() and not (data / V003).exists()
    assert (data / "dominique/bavella/02000800/parsed/T302_260105_162016.tsv").exists()
    assert (data / COMPANY1).exists()
    assert "company1" not in influxdb.bucket_names()


@pytest.mark.parametrize(
    ("company", "message"),
    [("..", "not an allowed company name"), ("nobody", "is not a folder")],
)
def test_a_company_sweep_refuses_bad_names_and_missing_folders(tmp_path, company, message):
    data = copy_samples(tmp_path / "data", COMPANY1)
    env = {"POWERVIEW_ENV_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    result = run_parser(env, "--dataFolder", str(data), "--company", company, "--dry-run")
    assert result.returncode == 2
    assert message in result.stderr


def test_a_company_sweep_refuses_a_linked_company_folder(tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1)
    (data / "linked").symlink_to(data / "company1")
    env = {"POWERVIEW_ENV_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    result = run_parser(env, "--dataFolder", str(data), "--company", "linked", "--dry-run")
    assert result.returncode == 2
    assert "is not a folder" in result.stderr
