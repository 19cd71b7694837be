"""The HTTP client the modules share: clear errors, organization header, settings."""

from __future__ import annotations

import socket

import pytest
from ansible.module_utils.powerview_grafana import (
    GrafanaClient,
    GrafanaError,
    api_path,
    client_from_settings,
    find_org,
    find_team,
    verify_server_admin,
)

from tests.helpers import PROJECT_ROOT


@pytest.fixture
def admin(grafana):
    return GrafanaClient(grafana.url, grafana.admin_login, grafana.admin_password)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_path_segment_is_quoted():
    assert api_path("orgs", "name", "a b/c") == "/api/orgs/name/a%20b%2Fc"
    assert api_path("orgs", 3, "users") == "/api/orgs/3/users"


def test_unreachable_grafana_says_which_url_and_setting():
    client = GrafanaClient(f"http://127.0.0.1:{free_port()}", "admin", "secret", timeout=2)
    with pytest.raises(GrafanaError) as error:
        client.call("GET", "/api/health")
    assert error.value.status is None
    assert "unreachable" in str(error.value) and "GRAFANA_URL" in str(error.value)


def test_wrong_password_names_the_settings_and_not_the_password(grafana):
    client = GrafanaClient(grafana.url, grafana.admin_login, "not-the-password")
    with pytest.raises(GrafanaError) as error:
        client.call("GET", "/api/user")
    assert error.value.status == 401
    assert "GRAFANA_USERNAME and GRAFANA_PASSWORD" in str(error.value)
    assert "not-the-password" not in str(error.value)


def test_a_user_who_is_not_server_admin_is_refused_before_any_change(grafana):
    grafana.create_user("operator", "operator-password", {1: "Admin"})
    client = GrafanaClient(grafana.url, "operator", "operator-password")
    with pytest.raises(GrafanaError, match="not a Grafana server admin"):
        verify_server_admin(client)


def test_server_admin_passes_the_check(admin):
    verify_server_admin(admin)


def test_org_calls_carry_the_header_and_never_switch_the_admin(grafana, admin):
    _, created = admin.call("POST", "/api/orgs", {"name": "acme"})
    org_id = created["orgId"]
    _, current = admin.in_org(org_id).call("GET", "/api/org")
    assert current["name"] == "acme"
    _, me = admin.call("GET", "/api/user")
    assert me["orgId"] == 1  # still Main Org.
    assert admin.org_id is None  # in_org() returns a copy
    sent = [r for r in grafana.requests if r.path == "/api/org"]
    assert sent[-1].headers.get("X-Grafana-Org-Id") == str(org_id)


def test_accepted_statuses_are_answers_not_errors(admin):
    assert find_org(admin, "nobody") is None
    status, body = admin.call("GET", "/api/orgs/name/nobody", accept=(404,))
    assert status == 404 and body["message"] == "Organization not found"


def test_find_team_treats_no_match_as_absent(admin):
    _, created = admin.call("POST", "/api/orgs", {"name": "acme"})
    org = admin.in_org(created["orgId"])
    assert find_team(org, "acme") is None
    org.call("POST", "/api/teams", {"name": "acme-old"})
    assert find_team(org, "acme") is None  # an exact name, not a prefix
    org.call("POST", "/api/teams", {"name": "acme"})
    assert find_team(org, "acme")["name"] == "acme"


def test_settings_come_from_core_settings(monkeypatch, grafana):
    monkeypatch.setenv("POWERVIEW_ROOT", str(PROJECT_ROOT))
    monkeypatch.setenv("POWERVIEW_ENV_FILE", "/dev/null")
    monkeypatch.setenv("GRAFANA_URL", grafana.url + "/")
    monkeypatch.setenv("GRAFANA_USERNAME", grafana.admin_login)
    monkeypatch.setenv("GRAFANA_PASSWORD", grafana.admin_password)
    client = client_from_settings()
    assert client.url == grafana.url
    verify_server_admin(client)


def test_missing_settings_are_listed_without_secrets(monkeypatch):
    monkeypatch.setenv("POWERVIEW_ROOT", str(PROJECT_ROOT))
    monkeypatch.setenv("POWERVIEW_ENV_FILE", "/dev/null")
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.delenv("GRAFANA_USERNAME", raising=False)
    monkeypatch.setenv("GRAFANA_PASSWORD", "s3cret-value")
    with pytest.raises(GrafanaError) as error:
        client_from_settings()
    assert "GRAFANA_URL is not set" in str(error.value)
    assert "s3cret-value" not in str(error.value)


def test_modules_outside_the_playbooks_say_why_they_cannot_run(monkeypatch):
    monkeypatch.delenv("POWERVIEW_ROOT", raising=False)
    with pytest.raises(GrafanaError, match="POWERVIEW_ROOT"):
        client_from_settings()
