"""manage_influx_tokens.py prints a token that reads one company's bucket and nothing else.

The script runs as a real process against the InfluxDB double, as an admin or a playbook would
run it: only the token on stdout, explanations on stderr, documented exit codes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from core import influx_admin
from core.influx_admin import InfluxAdminError, ensure_bucket
from core.influx_client import classify_error, connect
from core.outcomes import ErrorKind
from core.settings import InfluxSettings
from tests.doubles.influxdb import Permission

# Until tests/conftest.py registers the fixtures module as a plugin.

SCRIPT = Path(__file__).resolve().parent.parent / "manage_influx_tokens.py"
DESCRIPTION = "powerview_token_for_bucket_acme"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def token_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    return result.stdout[:-1]


def env_for(double, base: dict[str, str]) -> dict[str, str]:
    return {**base, "INFLUXDB_HOST": double.url, "INFLUXDB_ORG": double.org,
            "INFLUXDB_ADMIN_TOKEN": double.admin_token}  # fmt: skip


def works(double, token: str, bucket: str = "acme") -> bool:
    with InfluxDBClient(url=double.url, token=token, org=double.org) as client:
        try:
            client.query_api().query(f'from(bucket: "{bucket}") |> range(start: 0)')
        except ApiException:
            return False
    return True


def test_creates_bucket_and_token_that_only_reads_that_bucket(influxdb, influxdb_env):
    influxdb.create_bucket("globex")
    result = run({**influxdb_env, "INFLUXDB_BUCKET_RETENTION": "400d"}, "--bucket", "acme")
    token = token_of(result)
    assert "created bucket 'acme'" in result.stderr
    assert influxdb.bucket_retention("acme") == 400 * 86400
    (authorization,) = influxdb.authorizations(DESCRIPTION)
    bucket_id = influxdb.bucket_id("acme")
    assert authorization.permissions == [Permission("read", "buckets", bucket_id, influxdb.org_id)]

    with InfluxDBClient(url=influxdb.url, token=influxdb.admin_token, org=influxdb.org) as admin:
        admin.write_api(write_options=SYNCHRONOUS).write(
            bucket="acme", record=f"m f=1 {int(time.time())}", write_precision="s"
        )
    with InfluxDBClient(url=influxdb.url, token=token, org=influxdb.org) as client:
        tables = client.query_api().query('from(bucket: "acme") |> range(start: 0)')
        assert [record.get_value() for table in tables for record in table.records] == [1.0]
        assert [b.name for b in client.buckets_api().find_buckets().buckets] == ["acme"]
        for forbidden in (
            lambda: client.query_api().query('from(bucket: "globex") |> range(start: 0)'),
            lambda: client.write_api(write_options=SYNCHRONOUS).write(
                bucket="acme", record="m f=2 2", write_precision="s"
            ),
            lambda: client.buckets_api().create_bucket(bucket_name="x", org=influxdb.org_id),
            lambda: client.authorizations_api().find_authorizations(),
        ):
            with pytest.raises(ApiException) as caught:
                result = forbidden()
                if result == []:  # listing what one may not see returns nothing
                    raise ApiException(status=404)
            assert caught.value.status in (401, 403, 404)
    assert influxdb.point_count("acme") == 1


def test_a_second_run_prints_the_same_token_and_creates_nothing(influxdb, influxdb_env):
    first = token_of(run(influxdb_env, "--bucket", "acme"))
    posts = len([r for r in influxdb.requests if r.method == "POST"])
    second = run(influxdb_env, "--bucket", "acme")
    assert token_of(second) == first
    assert "reusing the read token" in second.stderr
    assert len([r for r in influxdb.requests if r.method == "POST"]) == posts
    assert len(influxdb.authorizations(DESCRIPTION)) == 1
    assert influxdb.bucket_names() == {"acme"}


def test_rotate_replaces_the_token_and_the_old_one_stops_working(influxdb, influxdb_env):
    old = token_of(run(influxdb_env, "--bucket", "acme"))
    rotated = run(influxdb_env, "--bucket", "acme", "--rotate")
    new = token_of(rotated)
    assert new != old
    assert "rotated" in rotated.stderr
    assert works(influxdb, new) and not works(influxdb, old)
    assert [a.token for a in influxdb.authorizations(DESCRIPTION)] == [new]
    assert token_of(run(influxdb_env, "--bucket", "acme")) == new


def test_a_server_that_hides_token_values_gets_a_rotation_said_on_stderr(
    influxdb_factory, influxdb_env
):
    double = influxdb_factory(token_listing="hashed")
    env = env_for(double, influxdb_env)
    old = token_of(run(env, "--bucket", "acme"))
    again = run(env, "--bucket", "acme")
    new = token_of(again)
    assert new != old
    assert "does not return the values of existing tokens" in again.stderr
    assert works(double, new) and not works(double, old)
    assert len(double.authorizations(DESCRIPTION)) == 1


def test_a_token_with_the_wrong_permissions_is_replaced(influxdb, influxdb_env):
    influxdb.create_bucket("acme")
    too_broad = influxdb.create_token(("read", "acme"), ("write", "acme"), description=DESCRIPTION)
    result = run(influxdb_env, "--bucket", "acme")
    token = token_of(result)
    assert token != too_broad
    assert [a.token for a in influxdb.authorizations(DESCRIPTION)] == [token]


@pytest.mark.parametrize("name", ["../etc", "-x", "_system", "a b", "x" * 65, ""])
def test_unsafe_bucket_names_are_refused_before_any_request(influxdb, influxdb_env, name):
    result = run(influxdb_env, f"--bucket={name}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "bucket name" in result.stderr
    assert influxdb.requests == []


def test_a_new_company_gets_its_bucket_though_the_lookup_answers_404(influxdb, influxdb_env):
    """InfluxDB 2.7 answers 404 to GET /api/v2/buckets?orgID=...&name=<missing>."""
    result = run(influxdb_env, "--bucket", "newco")
    assert result.returncode == 0, result.stderr
    lookups = [r for r in influxdb.requests if r.query.get("name") == ["newco"]]
    assert lookups[0].status == 404
    assert "newco" in influxdb.bucket_names()
    assert works(influxdb, token_of(result), "newco")


@pytest.mark.parametrize(
    ("name", "why"),
    [("POWERVIEW_META", "reserved"), ("ACME", "differs from the existing company 'acme'")],
)
def test_reserved_and_case_conflicting_companies_are_refused(influxdb, influxdb_env, name, why):
    influxdb.create_bucket("acme")
    influxdb.clear_log()
    result = run(influxdb_env, "--bucket", name)
    assert result.returncode == 2
    assert why in result.stderr
    assert influxdb.bucket_names() == {"acme"}
    assert not [r for r in influxdb.requests if r.method == "POST"]


def test_missing_settings_are_a_usage_error(influxdb_env):
    env = {k: v for k, v in influxdb_env.items() if k != "INFLUXDB_ADMIN_TOKEN"}
    result = run(env, "--bucket", "acme")
    assert (result.returncode, result.stdout) == (2, "")
    assert "INFLUXDB_ADMIN_TOKEN is not set" in result.stderr


def test_an_unknown_org_is_a_configuration_error(influxdb_env):
    """Exit 4, as tsv_parser.py and --check give for the same failure."""
    result = run({**influxdb_env, "INFLUXDB_ORG": "nobody"}, "--bucket", "acme")
    assert (result.returncode, result.stdout) == (4, "")
    assert "organization 'nobody'" in result.stderr


def test_a_wrong_admin_token_is_a_permission_error(influxdb, influxdb_env):
    result = run({**influxdb_env, "INFLUXDB_ADMIN_TOKEN": "wrong"}, "--bucket", "acme")
    assert (result.returncode, result.stdout) == (4, "")
    assert "refused the token (HTTP 401" in result.stderr
    assert influxdb.bucket_names() == set()


def test_an_unreachable_or_failing_server_is_a_temporary_error(influxdb, influxdb_env):
    influxdb.refuse_connections()
    refused = run(influxdb_env, "--bucket", "acme")
    assert (refused.returncode, refused.stdout) == (3, "")
    assert "cannot reach InfluxDB" in refused.stderr and "refused" in refused.stderr
    influxdb.accept_connections()
    influxdb.fail_next(1, status=503)
    failing = run(influxdb_env, "--bucket", "acme")
    assert (failing.returncode, failing.stdout) == (3, "")
    assert "HTTP 503" in failing.stderr


def test_an_answer_the_script_does_not_expect_is_unexpected(influxdb, influxdb_env):
    """Exit 5, as tsv_parser.py gives for a bug: the script used to exit 1 (bad content)."""
    influxdb.fail_next(1, status=400)
    result = run(influxdb_env, "--bucket", "acme")
    assert (result.returncode, result.stdout) == (5, "")
    assert "HTTP 400" in result.stderr
    assert influxdb.bucket_names() == set()


def test_a_slow_server_times_out_as_a_temporary_error(influxdb, influxdb_env):
    influxdb.set_delay(2)
    result = run({**influxdb_env, "INFLUXDB_TIMEOUT_S": "0.5"}, "--bucket", "acme")
    assert (result.returncode, result.stdout) == (3, "")
    assert "did not answer in time" in result.stderr


def test_help_documents_examples_and_exit_codes():
    result = run({}, "--help")
    assert result.returncode == 0
    for text in ("examples:", "--rotate", "exit codes:", "4  InfluxDB refused", "hashed"):
        assert text in result.stdout


# --------------------------------------------------------------------------- core.influx_admin


def admin_settings(double, token: str | None = None) -> InfluxSettings:
    """The settings section that points an admin client at ``double``."""
    return InfluxSettings(
        url=double.url, org=double.org, token=token or double.admin_token, timeout_s=5
    )


def test_ensure_bucket_reuses_a_bucket_created_concurrently(influxdb, monkeypatch):
    winner = influxdb.create_bucket("acme")
    real_lookup = influx_admin.find_bucket_id
    lookups = []

    def late_lookup(client, org_id, name):
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(client, org_id, name)

    monkeypatch.setattr(influx_admin, "find_bucket_id", late_lookup)
    with connect(admin_settings(influxdb)) as client:
        assert ensure_bucket(client, influxdb.org_id, "acme", 0) == winner
    assert len(lookups) == 2
    assert [w.status for w in influxdb.requests if w.method == "POST"] == [422]


def test_ensure_bucket_keeps_an_existing_bucket_as_it_is(influxdb):
    existing = influxdb.create_bucket("acme", retention_seconds=7200)
    with connect(admin_settings(influxdb)) as client:
        assert ensure_bucket(client, influxdb.org_id, "acme", 0) == existing
    assert influxdb.bucket_retention("acme") == 7200


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ApiException(status=401), ErrorKind.CONFIGURATION),
        (ApiException(status=403), ErrorKind.CONFIGURATION),
        (ApiException(status=429), ErrorKind.TEMPORARY),
        (ApiException(status=500), ErrorKind.TEMPORARY),
        (ApiException(status=503), ErrorKind.TEMPORARY),
        (ApiException(status=400), ErrorKind.UNEXPECTED),
        (urllib3.exceptions.NewConnectionError(None, "refused"), ErrorKind.TEMPORARY),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"), ErrorKind.TEMPORARY),
        (ConnectionRefusedError(), ErrorKind.TEMPORARY),
        (ValueError("bug"), ErrorKind.UNEXPECTED),
    ],
)
def test_errors_are_classified(error, kind):
    assert classify_error(error) == kind


def test_admin_errors_carry_kind_and_status(influxdb):
    with (
        connect(admin_settings(influxdb, token="wrong")) as client,
        pytest.raises(InfluxAdminError) as caught,
    ):
        influx_admin.find_org_id(client, influxdb.org)
    assert (caught.value.kind, caught.value.status) == (ErrorKind.CONFIGURATION, 401)
