"""The installation check: ``tsv_parser.py --check`` and ``core.health``.

Each test breaks one thing on the doubles and reads the check's verdict: the failing line
names the problem, the later checks that depend on it are skipped, and the exit code says
which kind of problem it is (2 settings, 4 refused, 3 unreachable).
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys

import pytest
import requests

from core.health import check_from_environment, run_health_check
from core.settings import load_settings
from tests.helpers import PROJECT_ROOT

PARSER = PROJECT_ROOT / "tsv_parser.py"


def free_port_url() -> str:
    """A URL on which nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def environ(influxdb, grafana) -> dict[str, str]:
    """Only the settings: the check must not depend on the test runner's environment."""
    return {
        "INFLUXDB_HOST": influxdb.url,
        "INFLUXDB_ORG": influxdb.org,
        "INFLUXDB_ADMIN_TOKEN": influxdb.admin_token,
        "INFLUXDB_TIMEOUT_S": "3",
        "GRAFANA_URL": grafana.url,
        "GRAFANA_USERNAME": grafana.admin_login,
        "GRAFANA_PASSWORD": grafana.admin_password,
    }


def check(environ: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = check_from_environment(out, environ)
    return code, out.getvalue()


def line(output: str, start: str) -> str:
    """The first report line whose check name starts with ``start``."""
    for text in output.splitlines():
        if text[8:].startswith(start):
            return text
    raise AssertionError(f"no line for {start!r} in:\n{output}")


def test_all_good_exits_0_and_proves_the_token_may_write(environ, influxdb):
    code, output = check(environ)
    assert code == 0, output
    outcomes = [text.split()[0] for text in output.splitlines()[1:-1]]
    assert outcomes == ["ok"] * 6, output
    assert "result: all good (exit code 0)" in output
    assert "powerview_meta" in influxdb.bucket_names()
    assert {p.measurement for p in influxdb.points("powerview_meta")} == {"powerview_health"}


def test_the_cli_runs_the_check_without_a_data_folder(environ):
    result = subprocess.run(
        [sys.executable, str(PARSER), "--check"],
        env={**environ, "POWERVIEW_ENV_FILE": "/dev/null", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Grafana login 'admin'" in result.stdout


def test_missing_settings_are_named_and_nothing_is_contacted(environ, influxdb, grafana):
    del environ["INFLUXDB_ADMIN_TOKEN"], environ["GRAFANA_PASSWORD"]
    code, output = check(environ)
    assert code == 2
    assert "not set: INFLUXDB_ADMIN_TOKEN, GRAFANA_PASSWORD" in line(output, "settings")
    assert line(output, "InfluxDB").split()[0] == "skip"
    assert line(output, "Grafana").split()[0] == "skip"
    assert influxdb.requests == [] and grafana.requests == []


def test_a_malformed_setting_is_reported_with_the_others(environ):
    environ["INFLUXDB_HOST"] = "localhost:8086"
    environ["TSV_LOG_LEVEL"] = "LOUD"
    code, output = check(environ)
    assert code == 2
    assert "INFLUXDB_HOST='localhost:8086'" in output
    assert "TSV_LOG_LEVEL='LOUD'" in output


def test_influxdb_unreachable_is_a_temporary_failure(environ):
    environ["INFLUXDB_HOST"] = free_port_url()
    code, output = check(environ)
    assert code == 3
    assert "cannot connect" in line(output, "InfluxDB http")
    assert "FAIL" in line(output, "InfluxDB http")
    assert "ok" in line(output, "Grafana login")  # Grafana is still checked


def test_a_refused_token_is_a_configuration_failure(environ):
    environ["INFLUXDB_ADMIN_TOKEN"] = "not-a-token"
    code, output = check(environ)
    assert code == 4
    assert "refused the token" in line(output, "InfluxDB organization")


def test_an_unknown_organization_is_a_configuration_failure(environ):
    environ["INFLUXDB_ORG"] = "nobody"
    code, output = check(environ)
    assert code == 4
    assert "INFLUXDB_ORG" in line(output, "InfluxDB organization 'nobody'")


def test_a_token_that_may_not_write_is_caught(environ, influxdb):
    influxdb.create_bucket("powerview_meta")
    org_id = influxdb.org_id
    permissions = [
        {"action": "read", "resource": {"type": "orgs", "id": org_id}},
        {"action": "read", "resource": {"type": "buckets", "orgID": org_id}},
    ]
    answer = requests.post(
        f"{influxdb.url}/api/v2/authorizations",
        json={"orgID": org_id, "permissions": permissions},
        headers={"Authorization": f"Token {influxdb.admin_token}"},
        timeout=5,
    )
    environ["INFLUXDB_ADMIN_TOKEN"] = answer.json()["token"]
    code, output = check(environ)
    assert code == 4
    assert "FAIL" in line(output, "InfluxDB bucket 'powerview_meta'")


def test_a_wrong_grafana_password_is_a_configuration_failure(environ):
    environ["GRAFANA_PASSWORD"] = "wrong"
    code, output = check(environ)
    assert code == 4
    assert "GRAFANA_PASSWORD" in line(output, "Grafana login")


def test_a_grafana_login_that_is_not_server_admin_is_refused(environ, grafana):
    grafana.create_user("operator", "operator-password", {1: "Admin"})
    environ.update(GRAFANA_USERNAME="operator", GRAFANA_PASSWORD="operator-password")
    code, output = check(environ)
    assert code == 4
    assert "not a Grafana server admin" in line(output, "Grafana login 'operator'")


def test_grafana_unreachable_is_a_temporary_failure(environ):
    environ["GRAFANA_URL"] = free_port_url()
    code, output = check(environ)
    assert code == 3
    assert "cannot connect" in line(output, "Grafana http")
    assert "ok" in line(output, "InfluxDB bucket")


def test_settings_problems_win_over_unreachable_servers(environ):
    environ["GRAFANA_URL"] = free_port_url()
    del environ["INFLUXDB_ORG"]
    settings = load_settings(environ)
    out = io.StringIO()
    assert run_health_check(settings, out) == 2
    assert "not set: INFLUXDB_ORG" in out.getvalue()
