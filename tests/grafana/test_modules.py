"""Each module's ``ensure_*`` function against the Grafana double, without Ansible.

Every resource is checked the same way: the first call creates it, a second call changes
nothing, check mode reports the change and leaves Grafana untouched, and state absent removes
it. These run in milliseconds; the playbook tests prove the same through ansible-playbook.
"""

from __future__ import annotations

import os
import stat

import pytest
import yaml
from ansible.module_utils.powerview_grafana import GrafanaClient, GrafanaError

from tests.helpers import AUTOMATION, library

org_module = library("powerview_grafana_org")
team_module = library("powerview_grafana_team")
folder_module = library("powerview_grafana_folder")
datasource_module = library("powerview_grafana_datasource")
dashboard_module = library("powerview_grafana_dashboard")
user_module = library("powerview_grafana_user")

TEMPLATE = str(AUTOMATION / "templates" / "electrical.json")


@pytest.fixture
def admin(grafana):
    return GrafanaClient(grafana.url, grafana.admin_login, grafana.admin_password)


@pytest.fixture
def org_id(admin):
    return org_module.ensure_org(admin, {"name": "acme", "state": "present"}, False)["org_id"]


@pytest.fixture
def team_id(admin, org_id):
    params = {"org_id": org_id, "name": "acme", "state": "present"}
    return team_module.ensure_team(admin, params, False)["team_id"]


def folder_params(org_id, team_id, **overrides):
    params = {
        "org_id": org_id,
        "uid": "powerview-folder_acme",
        "title": "acme",
        "permissions": [{"team_id": team_id, "permission": "View"}],
        "state": "present",
    }
    return {**params, **overrides}


def datasource_params(org_id, token="token-1", **overrides):
    params = {
        "org_id": org_id,
        "uid": "influxdb_acme",
        "name": "influxdb_acme",
        "type": "influxdb",
        "url": "http://influxdb:8086",
        "json_data": {"version": "Flux", "organization": "powerview", "defaultBucket": "acme"},
        "token": token,
        "check_health": False,
        "state": "present",
    }
    return {**params, **overrides}


def dashboard_params(org_id, **overrides):
    params = {
        "org_id": org_id,
        "uid": "powerview_acme",
        "title": "acme - overview",
        "folder_uid": "powerview-folder_acme",
        "template": TEMPLATE,
        "bucket": "acme",
        "campaign": None,
        "datasource_uid": "influxdb_acme",
        "datasource_type": "influxdb",
        "tags": ["powerview"],
        "state": "present",
    }
    return {**params, **overrides}


# ---- organization


def test_organization_is_created_once_with_the_admin_as_its_admin(grafana, admin):
    first = org_module.ensure_org(admin, {"name": "acme", "state": "present"}, False)
    second = org_module.ensure_org(admin, {"name": "acme", "state": "present"}, False)
    assert first["changed"] and not second["changed"]
    assert first["org_id"] == second["org_id"] != 1
    admin_id = grafana.state.user_by_login(grafana.admin_login).id
    assert grafana.state.members[(first["org_id"], admin_id)] == "Admin"


def test_an_organization_made_by_hand_gets_the_admin_added(grafana, admin):
    _, created = admin.call("POST", "/api/orgs", {"name": "acme"})
    admin_id = grafana.state.user_by_login(grafana.admin_login).id
    grafana.state.members.pop((created["orgId"], admin_id))
    result = org_module.ensure_org(admin, {"name": "acme", "state": "present"}, False)
    assert result["changed"]
    assert grafana.state.members[(created["orgId"], admin_id)] == "Admin"


def test_organization_check_mode_and_deletion(grafana, admin):
    before = grafana.snapshot()
    planned = org_module.ensure_org(admin, {"name": "acme", "state": "present"}, True)
    assert planned == {**planned, "changed": True, "org_id": None}
    assert grafana.snapshot() == before
    org_module.ensure_org(admin, {"name": "acme", "state": "present"}, False)
    assert org_module.ensure_org(admin, {"name": "acme", "state": "absent"}, False)["changed"]
    assert not org_module.ensure_org(admin, {"name": "acme", "state": "absent"}, False)["changed"]
    assert grafana.snapshot() == before


def test_a_missing_organization_is_an_error_when_it_must_exist(admin):
    with pytest.raises(GrafanaError, match=r"create_grafana_resources\.yml"):
        org_module.ensure_org(admin, {"name": "acme", "state": "present", "create": False}, False)


def test_the_main_organization_is_never_deleted(admin):
    with pytest.raises(GrafanaError, match="main organization"):
        org_module.ensure_org(admin, {"name": "Main Org.", "state": "absent"}, False)


# ---- team


def test_team_is_created_once(admin, org_id):
    params = {"org_id": org_id, "name": "acme", "state": "present"}
    first = team_module.ensure_team(admin, params, False)
    second = team_module.ensure_team(admin, params, False)
    assert first["changed"] and not second["changed"]
    assert first["team_id"] == second["team_id"]


def test_team_in_a_planned_organization_is_planned_too(grafana, admin):
    before = grafana.snapshot()
    result = team_module.ensure_team(
        admin, {"org_id": None, "name": "acme", "state": "present"}, True
    )
    assert result["changed"] and result["team_id"] is None
    assert grafana.snapshot() == before


# ---- folder


def test_folder_keeps_exactly_the_team_grant(grafana, admin, org_id, team_id):
    result = folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    assert result["changed"]
    folder = grafana.state.item_by_uid(org_id, "powerview-folder_acme")
    # Grafana's defaults (creator Admin, Editor Edit, Viewer View) are gone.
    assert folder.acl == {("team", team_id): 1}
    assert not folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)["changed"]


def test_folder_permissions_changed_by_hand_are_restored(grafana, admin, org_id, team_id):
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    folder = grafana.state.item_by_uid(org_id, "powerview-folder_acme")
    folder.acl[("role", "Viewer")] = 1
    result = folder_module.ensure_folder(admin, folder_params(org_id, team_id), True)
    assert result["changed"] and ("role", "Viewer") in folder.acl  # check mode: reported only
    assert "role Viewer: View" in result["diff"]["before"]["permissions"]
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    assert folder.acl == {("team", team_id): 1}


def test_folder_title_follows_the_task(grafana, admin, org_id, team_id):
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    result = folder_module.ensure_folder(admin, folder_params(org_id, team_id, title="Acme"), False)
    assert result["changed"]
    assert grafana.state.item_by_uid(org_id, "powerview-folder_acme").title == "Acme"


def test_folder_check_mode_changes_nothing(grafana, admin, org_id, team_id):
    before = grafana.snapshot()
    assert folder_module.ensure_folder(admin, folder_params(org_id, team_id), True)["changed"]
    assert grafana.snapshot() == before


def test_folder_grants_must_name_one_grantee(admin, org_id, team_id):
    bad = folder_params(
        org_id, team_id, permissions=[{"team_id": 1, "role": "Viewer", "permission": "View"}]
    )
    with pytest.raises(GrafanaError, match="exactly one"):
        folder_module.ensure_folder(admin, bad, False)
    bad = folder_params(org_id, team_id, permissions=[{"team_id": 1, "permission": "Read"}])
    with pytest.raises(GrafanaError, match="View, Edit or Admin"):
        folder_module.ensure_folder(admin, bad, False)


def test_folder_deletion_takes_its_dashboards(grafana, admin, org_id, team_id):
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    dashboard_module.ensure_dashboard(admin, dashboard_params(org_id), False)
    result = folder_module.ensure_folder(
        admin, folder_params(org_id, team_id, state="absent"), False
    )
    assert result["changed"]
    assert grafana.state.item_by_uid(org_id, "powerview_acme") is None


# ---- data source


def test_datasource_is_created_with_its_token_and_a_fingerprint(grafana, admin, org_id):
    result = datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    assert result["changed"]
    stored = grafana.state.datasource_by(org_id, uid="influxdb_acme")
    assert stored.secure_json_data == {"token": "token-1"}
    fingerprint = datasource_module.token_fingerprint("token-1")
    assert stored.json_data["powerviewTokenSha256"] == fingerprint == result["token_fingerprint"]
    assert "token-1" not in str(result)


def test_an_unchanged_token_is_not_sent_again(grafana, admin, org_id):
    datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    grafana.clear_log()
    result = datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    assert not result["changed"]
    assert not [r for r in grafana.requests if r.method in ("PUT", "POST")]


def test_a_rotated_token_is_sent_and_shown_as_a_fingerprint_change(grafana, admin, org_id):
    datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    result = datasource_module.ensure_datasource(admin, datasource_params(org_id, "token-2"), False)
    assert result["changed"]
    stored = grafana.state.datasource_by(org_id, uid="influxdb_acme")
    assert stored.secure_json_data == {"token": "token-2"}
    before = result["diff"]["before"]["jsonData"]["powerviewTokenSha256"]
    assert before == datasource_module.token_fingerprint("token-1")


def test_settings_changed_by_hand_are_restored_without_resending_the_token(grafana, admin, org_id):
    datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    stored = grafana.state.datasource_by(org_id, uid="influxdb_acme")
    stored.url = "http://elsewhere:8086"
    grafana.clear_log()
    assert datasource_module.ensure_datasource(admin, datasource_params(org_id), False)["changed"]
    assert stored.url == "http://influxdb:8086"
    put = next(r for r in grafana.requests if r.method == "PUT")
    assert "secureJsonData" not in put.json


def test_the_token_command_runs_only_when_a_token_is_needed(grafana, admin, org_id, influxdb):
    influxdb.create_bucket("acme")
    token = influxdb.create_token(("read", "acme"))
    calls = []

    def fetch():
        calls.append(1)
        return token

    params = datasource_params(org_id, token=None, url=influxdb.url, check_health=True)
    params["json_data"]["organization"] = influxdb.org
    first = datasource_module.ensure_datasource(admin, params, False, fetch_token=fetch)
    assert first["changed"] and calls == [1] and "warnings" not in first
    # Healthy with its token: InfluxDB is not asked again (an OSS 2.9+ server would rotate).
    assert not datasource_module.ensure_datasource(admin, params, False, fetch_token=fetch)[
        "changed"
    ]
    assert calls == [1]
    # A revoked token makes the data source unhealthy: a token is fetched and sent again.
    influxdb.set_token_active(token, False)
    fresh = influxdb.create_token(("read", "acme"))
    result = datasource_module.ensure_datasource(admin, params, False, fetch_token=lambda: fresh)
    assert result["changed"]
    assert (
        grafana.state.datasource_by(org_id, uid="influxdb_acme").secure_json_data["token"] == fresh
    )


def test_datasource_check_mode_never_fetches_a_token(grafana, admin, org_id):
    before = grafana.snapshot()

    def fetch():
        raise AssertionError("the token command must not run in check mode")

    params = datasource_params(org_id, token=None)
    assert datasource_module.ensure_datasource(admin, params, True, fetch_token=fetch)["changed"]
    assert grafana.snapshot() == before


def test_datasource_deletion(grafana, admin, org_id):
    datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    gone = datasource_module.ensure_datasource(
        admin, datasource_params(org_id, state="absent"), False
    )
    assert gone["changed"] and grafana.state.datasource_by(org_id, uid="influxdb_acme") is None


# ---- dashboard


def test_dashboard_is_saved_once(grafana, admin, org_id, team_id):
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    first = dashboard_module.ensure_dashboard(admin, dashboard_params(org_id), False)
    second = dashboard_module.ensure_dashboard(admin, dashboard_params(org_id), False)
    assert first["changed"] and not second["changed"]
    assert first["version"] == second["version"] == 1
    stored = grafana.state.item_by_uid(org_id, "powerview_acme")
    assert stored.folder_uid == "powerview-folder_acme"
    assert stored.model["templating"]["list"][0]["query"] == "acme"


def test_a_dashboard_moved_or_edited_by_hand_is_put_back(grafana, admin, org_id, team_id):
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    dashboard_module.ensure_dashboard(admin, dashboard_params(org_id), False)
    stored = grafana.state.item_by_uid(org_id, "powerview_acme")
    stored.folder_uid = ""
    stored.model["panels"][0]["title"] = "edited"
    result = dashboard_module.ensure_dashboard(admin, dashboard_params(org_id), False)
    assert result["changed"] and result["version"] == 2
    assert stored.folder_uid == "powerview-folder_acme"
    assert stored.model["panels"][0]["title"] == "Voltage per phase"


def test_campaign_dashboard_pins_the_campaign(grafana, admin, org_id, team_id):
    folder_module.ensure_folder(admin, folder_params(org_id, team_id), False)
    params = dashboard_params(
        org_id, uid="powerview_acme_camp1", title="acme - camp1", campaign="camp1"
    )
    dashboard_module.ensure_dashboard(admin, params, False)
    variables = grafana.state.item_by_uid(org_id, "powerview_acme_camp1").model["templating"][
        "list"
    ]
    campaign = next(v for v in variables if v["name"] == "campaign")
    assert campaign["type"] == "constant" and campaign["query"] == "camp1" and campaign["hide"] == 2


def test_dashboard_check_mode_changes_nothing(grafana, admin, org_id):
    before = grafana.snapshot()
    assert dashboard_module.ensure_dashboard(admin, dashboard_params(org_id), True)["changed"]
    assert grafana.snapshot() == before


# ---- user


def user_params(org_id, team_id, tmp_path, **overrides):
    params = {
        "login": "alice",
        "email": "",
        "name": None,
        "org_id": org_id,
        "team_id": team_id,
        "role": "Viewer",
        "password": None,
        "password_file": str(tmp_path / "secrets" / "alice.txt"),
        "state": "present",
    }
    return {**params, **overrides}


def test_new_user_gets_a_generated_password_in_an_owner_only_file(
    grafana, admin, org_id, team_id, tmp_path
):
    result = user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)
    path = tmp_path / "secrets" / "alice.txt"
    assert result["changed"] and result["password_file"] == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    password = path.read_text().strip()
    assert len(password) >= 24 and password not in str(result)
    user = grafana.state.user_by_login("alice")
    assert user.password == password
    # Member of the company organization only, as Viewer, and of the company team.
    assert grafana.state.orgs_of(user.id) == {org_id: "Viewer"}
    assert user.org_id == org_id
    assert user.id in grafana.state.teams[team_id].members


def test_two_generated_passwords_differ(grafana, admin, org_id, team_id, tmp_path):
    user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)
    params = user_params(
        org_id, team_id, tmp_path, login="bob", password_file=str(tmp_path / "bob")
    )
    user_module.ensure_user(admin, params, False)
    assert (tmp_path / "bob").read_text() != (tmp_path / "secrets" / "alice.txt").read_text()


def test_second_run_changes_nothing_and_writes_no_password(admin, org_id, team_id, tmp_path):
    user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)
    (tmp_path / "secrets" / "alice.txt").unlink()
    result = user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)
    assert not result["changed"] and result["password_file"] is None
    assert not (tmp_path / "secrets" / "alice.txt").exists()


def test_a_given_password_is_used_and_no_file_written(grafana, admin, org_id, team_id, tmp_path):
    params = user_params(org_id, team_id, tmp_path, password="{{ not a template }}")
    result = user_module.ensure_user(admin, params, False)
    assert result["password_file"] is None
    assert grafana.state.user_by_login("alice").password == "{{ not a template }}"


def test_an_existing_user_is_moved_out_of_other_organizations(
    grafana, admin, org_id, team_id, tmp_path
):
    grafana.create_user("alice", "old-password", {1: "Editor"})
    result = user_module.ensure_user(
        admin, user_params(org_id, team_id, tmp_path, role="Editor"), False
    )
    user = grafana.state.user_by_login("alice")
    assert result["changed"] and result["password_file"] is None
    assert grafana.state.orgs_of(user.id) == {org_id: "Editor"}
    assert user.password == "old-password"  # only a new user gets a password


def test_role_drift_is_corrected(grafana, admin, org_id, team_id, tmp_path):
    user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)
    user = grafana.state.user_by_login("alice")
    grafana.state.members[(org_id, user.id)] = "Admin"
    assert user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)["changed"]
    assert grafana.state.members[(org_id, user.id)] == "Viewer"


def test_server_admins_and_org_admin_roles_are_refused(admin, org_id, team_id, tmp_path):
    with pytest.raises(GrafanaError, match="server admin"):
        user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path, login="admin"), False)
    with pytest.raises(GrafanaError, match="role"):
        user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path, role="Admin"), False)


def test_user_check_mode_changes_nothing(grafana, admin, org_id, team_id, tmp_path):
    before = grafana.snapshot()
    result = user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), True)
    assert result["changed"] and not (tmp_path / "secrets").exists()
    assert grafana.snapshot() == before


def test_user_deletion_refuses_users_of_other_organizations(
    grafana, admin, org_id, team_id, tmp_path
):
    grafana.create_user("shared", "pw-shared", {1: "Viewer", org_id: "Viewer"})
    with pytest.raises(GrafanaError, match="also belongs"):
        user_module.ensure_user(
            admin, user_params(org_id, team_id, tmp_path, login="shared", state="absent"), False
        )
    user_module.ensure_user(admin, user_params(org_id, team_id, tmp_path), False)
    deleted = user_module.ensure_user(
        admin, user_params(org_id, team_id, tmp_path, state="absent"), False
    )
    assert deleted["changed"] and grafana.state.user_by_login("alice") is None


def test_a_datasource_made_by_hand_with_the_same_name_is_a_clear_error(admin, org_id):
    body = {"name": "influxdb_acme", "uid": "other", "type": "influxdb", "access": "proxy"}
    admin.in_org(org_id).call("POST", "/api/datasources", body)
    with pytest.raises(GrafanaError, match="already exists with another uid"):
        datasource_module.ensure_datasource(admin, datasource_params(org_id), False)


def test_a_datasource_created_meanwhile_is_adopted(grafana, admin, org_id):
    # A parallel run created it (without token yet) between this run's lookup and its POST.
    body = {"name": "influxdb_acme", "uid": "influxdb_acme", "type": "influxdb", "access": "proxy"}
    admin.in_org(org_id).call("POST", "/api/datasources", body)
    grafana.fail_next("GET", "/api/datasources/uid/influxdb_acme", 404)
    result = datasource_module.ensure_datasource(admin, datasource_params(org_id), False)
    assert result["changed"]
    stored = grafana.state.datasource_by(org_id, uid="influxdb_acme")
    assert stored.secure_json_data == {"token": "token-1"}
    assert stored.url == "http://influxdb:8086"


# ---- documentation


@pytest.mark.parametrize(
    "module",
    [org_module, team_module, folder_module, datasource_module, dashboard_module, user_module],
    ids=lambda module: module.__name__.rsplit("_", 1)[-1],
)
def test_each_module_documents_exactly_its_options(module):
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(documented) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        if "default" in spec:
            assert documented[name].get("default") == spec["default"], name
        if spec.get("no_log"):
            assert documented[name].get("no_log") is True, name
    yaml.safe_load(module.RETURN)
