"""The Grafana double answers as Grafana documents: these tests pin the behaviours the
playbooks and the isolation tests rely on, so a change to the double that would make them
pass for the wrong reason fails here first."""

from __future__ import annotations

import json
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
import yaml

from core.names import reserved_company_reason
from tests.doubles.grafana import VERSION, GrafanaDouble
from tests.doubles.grafana_fixtures import grafana_contract_document, load_grafana_contract
from tests.helpers import PROJECT_ROOT
from tests.helpers import api as call


def new_org(double, name):
    status, body = call(double, "POST", "/api/orgs", {"name": name})
    assert status == 200, body
    return body["orgId"]


def test_health_needs_no_credentials(grafana):
    with urlopen(grafana.url + "/api/health", timeout=5) as response:
        assert json.loads(response.read())["database"] == "ok"


def test_basic_auth_is_checked(grafana):
    assert call(grafana, "GET", "/api/user", login="admin", password="wrong")[0] == 401
    request = Request(grafana.url + "/api/user")
    with pytest.raises(HTTPError) as error:
        urlopen(request, timeout=5)
    assert error.value.code == 401


def test_org_creation_duplicates_and_lookup(grafana):
    org_id = new_org(grafana, "acme")
    assert call(grafana, "POST", "/api/orgs", {"name": "acme"}) == (
        409,
        {"message": "Organization name taken"},
    )
    assert call(grafana, "GET", "/api/orgs/name/acme")[1]["id"] == org_id
    assert call(grafana, "GET", "/api/orgs/name/nope")[0] == 404


def test_org_header_needs_membership(grafana):
    org_id = new_org(grafana, "acme")
    grafana.create_user("mallory", "pw", {1: "Admin"})
    assert call(grafana, "GET", "/api/org", login="mallory", org=org_id)[0] == 403
    assert call(grafana, "GET", "/api/org", org=org_id)[1]["name"] == "acme"


def test_admin_apis_need_a_server_admin(grafana):
    grafana.create_user("orgadmin", "pw", {1: "Admin"})
    assert call(grafana, "POST", "/api/orgs", {"name": "x"}, login="orgadmin")[0] == 403
    assert call(grafana, "GET", "/api/users/lookup?loginOrEmail=admin", login="orgadmin")[0] == 403


def test_new_users_land_in_the_main_org_unless_told_otherwise(grafana):
    org_id = new_org(grafana, "acme")
    body = {"login": "u1", "password": "password1"}
    assert call(grafana, "POST", "/api/admin/users", body)[0] == 200
    assert (
        call(grafana, "POST", "/api/admin/users", {**body, "login": "u2", "orgId": org_id})[0]
        == 200
    )
    assert call(grafana, "POST", "/api/admin/users", body)[0] == 412
    u1 = grafana.state.user_by_login("u1")
    u2 = grafana.state.user_by_login("u2")
    assert grafana.state.orgs_of(u1.id) == {1: "Viewer"}
    assert grafana.state.orgs_of(u2.id) == {org_id: "Viewer"}


def test_without_auto_assign_a_new_user_gets_its_own_org(grafana_factory):
    double = grafana_factory(auto_assign_org=False)
    call(double, "POST", "/api/admin/users", {"login": "solo", "password": "password1"})
    user = double.state.user_by_login("solo")
    ((org_id, role),) = double.state.orgs_of(user.id).items()
    assert double.state.orgs[org_id].name == "solo" and role == "Admin"


def test_the_last_org_admin_cannot_be_removed(grafana):
    org_id = new_org(grafana, "acme")
    admin_id = grafana.state.user_by_login("admin").id
    assert call(grafana, "DELETE", f"/api/orgs/{org_id}/users/{admin_id}")[0] == 400


def test_team_creator_becomes_team_admin_and_duplicates_conflict(grafana):
    org_id = new_org(grafana, "acme")
    status, body = call(grafana, "POST", "/api/teams", {"name": "acme"}, org=org_id)
    assert status == 200
    members = call(grafana, "GET", f"/api/teams/{body['teamId']}/members", org=org_id)[1]
    assert [(m["login"], m["permission"]) for m in members] == [("admin", 4)]
    assert call(grafana, "POST", "/api/teams", {"name": "acme"}, org=org_id)[0] == 409
    search = call(grafana, "GET", "/api/teams/search?name=nobody", org=org_id)
    assert search == (200, {"totalCount": 0, "teams": [], "page": 1, "perPage": 1000})


def test_new_folder_has_grafanas_default_grants_until_replaced(grafana):
    org_id = new_org(grafana, "acme")
    call(grafana, "POST", "/api/folders", {"uid": "f1", "title": "F1"}, org=org_id)
    items = call(grafana, "GET", "/api/folders/f1/permissions", org=org_id)[1]
    assert sorted((i["role"], i["userLogin"], i["permission"]) for i in items) == [
        ("", "admin", 4),
        ("Editor", "", 2),
        ("Viewer", "", 1),
    ]
    again = call(grafana, "POST", "/api/folders", {"uid": "f1", "title": "x"}, org=org_id)
    assert again == (
        412,
        {"message": "the folder has been changed by someone else", "status": "version-mismatch"},
    )
    status, _ = call(grafana, "POST", "/api/folders/f1/permissions", {"items": []}, org=org_id)
    assert status == 200
    assert call(grafana, "GET", "/api/folders/f1/permissions", org=org_id)[1] == []


def test_viewers_see_what_their_role_team_or_user_is_granted(grafana):
    org_id = new_org(grafana, "acme")
    viewer = grafana.create_user("viewer", "pw", {org_id: "Viewer"})
    _, team = call(grafana, "POST", "/api/teams", {"name": "t"}, org=org_id)
    call(grafana, "POST", "/api/folders", {"uid": "open", "title": "Open"}, org=org_id)
    call(grafana, "POST", "/api/folders", {"uid": "team", "title": "Team"}, org=org_id)
    call(grafana, "POST", "/api/folders/team/permissions",
         {"items": [{"teamId": team["teamId"], "permission": 1}]}, org=org_id)  # fmt: skip
    dashboard = {"dashboard": {"title": "D", "uid": "d"}, "folderUid": "team"}
    call(grafana, "POST", "/api/dashboards/db", dashboard, org=org_id)

    def visible():
        return {h["uid"] for h in call(grafana, "GET", "/api/search", login="viewer")[1]}

    assert visible() == {"open"}
    assert call(grafana, "GET", "/api/dashboards/uid/d", login="viewer")[0] == 403
    call(grafana, "POST", f"/api/teams/{team['teamId']}/members", {"userId": viewer}, org=org_id)
    assert visible() == {"open", "team", "d"}
    assert call(grafana, "GET", "/api/dashboards/uid/d", login="viewer")[0] == 200


def test_dashboard_versions_and_conflicts(grafana):
    org_id = new_org(grafana, "acme")
    body = {"dashboard": {"title": "D", "uid": "d"}}
    first = call(grafana, "POST", "/api/dashboards/db", body, org=org_id)[1]
    assert first["version"] == 1 and first["status"] == "success"
    stale = call(grafana, "POST", "/api/dashboards/db", body, org=org_id)
    assert stale[0] == 412 and stale[1]["status"] == "version-mismatch"
    same_title = {"dashboard": {"title": "D", "uid": "other"}}  # titles are not unique in 12
    assert call(grafana, "POST", "/api/dashboards/db", same_title, org=org_id)[0] == 200
    assert (
        call(grafana, "POST", "/api/dashboards/db", {**body, "overwrite": True}, org=org_id)[1][
            "version"
        ]
        == 2
    )
    too_long = {"dashboard": {"title": "E", "uid": "x" * 41}}
    assert call(grafana, "POST", "/api/dashboards/db", too_long, org=org_id) == (
        400,
        {"message": "uid too long, max 40 characters"},
    )


def test_secure_fields_are_never_returned(grafana):
    org_id = new_org(grafana, "acme")
    body = {
        "name": "ds",
        "uid": "ds",
        "type": "influxdb",
        "url": "http://x",
        "access": "proxy",
        "jsonData": {"defaultBucket": "acme"},
        "secureJsonData": {"token": "t0ken"},
    }
    created = call(grafana, "POST", "/api/datasources", body, org=org_id)
    assert created[0] == 200 and "t0ken" not in json.dumps(created[1])
    assert call(grafana, "GET", "/api/datasources/uid/ds", org=org_id)[1]["secureJsonFields"] == {
        "token": True
    }
    assert call(grafana, "POST", "/api/datasources", body, org=org_id)[0] == 409
    update = {key: value for key, value in body.items() if key != "secureJsonData"}
    update["url"] = "http://y"
    call(grafana, "PUT", "/api/datasources/uid/ds", update, org=org_id)
    assert grafana.state.datasource_by(org_id, uid="ds").secure_json_data == {"token": "t0ken"}
    settings = call(grafana, "GET", "/api/frontend/settings", org=org_id)[1]
    assert "t0ken" not in json.dumps(settings)


def test_deleting_an_org_deletes_everything_in_it(grafana):
    org_id = new_org(grafana, "acme")
    grafana.create_user("u", "pw", {org_id: "Viewer"})
    call(grafana, "POST", "/api/teams", {"name": "t"}, org=org_id)
    call(grafana, "POST", "/api/folders", {"uid": "f", "title": "F"}, org=org_id)
    body = {"name": "ds", "type": "influxdb", "url": "http://x", "access": "proxy"}
    call(grafana, "POST", "/api/datasources", body, org=org_id)
    assert call(grafana, "DELETE", f"/api/orgs/{org_id}")[0] == 200
    snapshot = grafana.snapshot()
    assert snapshot["teams"] == {} and snapshot["items"] == {} and snapshot["datasources"] == {}
    assert grafana.state.user_by_login("u").org_id == 0


def test_queries_run_on_influxdb_with_the_datasource_token(grafana, influxdb):
    influxdb.create_bucket("acme")
    influxdb.create_bucket("beta")
    token = influxdb.create_token(("read", "acme"))
    org_id = new_org(grafana, "acme")
    grafana.create_user("viewer", "pw", {org_id: "Viewer"})
    body = {"name": "ds", "uid": "ds", "type": "influxdb", "url": influxdb.url, "access": "proxy",
            "jsonData": {"organization": influxdb.org, "defaultBucket": "acme"},
            "secureJsonData": {"token": token}}  # fmt: skip
    call(grafana, "POST", "/api/datasources", body, org=org_id)

    def query(bucket):
        flux = f'from(bucket: "{bucket}") |> range(start: v.timeRangeStart) |> count()'
        payload = {"queries": [{"refId": "A", "datasource": {"uid": "ds"}, "query": flux}],
                   "from": "now-1h", "to": "now"}  # fmt: skip
        return call(grafana, "POST", "/api/ds/query", payload, login="viewer")

    assert query("acme")[0] == 200  # any member may query (data source permissions: Enterprise)
    status, body = query("beta")
    assert status == 400 and body["results"]["A"]["status"] == 404
    assert call(grafana, "GET", "/api/datasources/uid/ds/health", org=org_id)[1]["status"] == "OK"


def test_injected_failures_change_nothing(grafana):
    grafana.fail_next("POST", "/api/orgs", 500)
    assert call(grafana, "POST", "/api/orgs", {"name": "acme"})[0] == 500
    assert call(grafana, "GET", "/api/orgs/name/acme")[0] == 404
    assert call(grafana, "POST", "/api/orgs", {"name": "acme"})[0] == 200


def test_requests_outside_the_api_description_are_refused(grafana_contract):
    if grafana_contract is None:
        pytest.skip("../shared/specs/grafana-api-merged.json is not on this machine")
    with GrafanaDouble(contract=grafana_contract) as double:
        org_id = new_org(double, "acme")
        status, body = call(double, "PUT", f"/api/orgs/{org_id}/users/1", {"role": "Viewer"})
        assert status == 400 and "method not in the contract" in body["message"]
        status, body = call(double, "GET", "/api/users/lookup")
        assert status == 400 and "'loginOrEmail' is missing" in body["message"]
        status, body = call(
            double, "POST", "/api/folders/x/permissions", {"items": [{"permission": 3}]}
        )
        assert status == 400 and "body" in body["message"]
        assert len(double.contract_problems) == 3


def test_additions_to_the_description_leave_the_original_untouched(grafana_contract):
    if grafana_contract is None:
        pytest.skip("../shared/specs/grafana-api-merged.json is not on this machine")
    original = {"paths": {"/teams/{team_id}/members": {"get": {}}}}
    completed = grafana_contract_document(original)
    assert "post" in completed["paths"]["/teams/{team_id}/members"]
    assert original == {"paths": {"/teams/{team_id}/members": {"get": {}}}}


def test_the_contract_is_optional(tmp_path):
    assert load_grafana_contract(tmp_path / "absent.json") is None


# ---- Grafana 12 behaviours the tenant checks rely on


@pytest.mark.parametrize(("database", "found"), [("sqlite3", False), ("mysql", True)])
def test_org_names_are_compared_as_the_database_compares_them(grafana_factory, database, found):
    double = grafana_factory(database=database)
    org_id = new_org(double, "acme")
    status, body = call(double, "GET", "/api/orgs/name/ACME")
    assert (status == 200 and body["id"] == org_id and body["name"] == "acme") is found
    assert (status == 404) is not found
    created = call(double, "POST", "/api/orgs", {"name": "ACME"})[0]
    assert created == (409 if found else 200)
    names = [org["name"] for org in call(double, "GET", "/api/orgs?perpage=10000")[1]]
    assert names == (["Main Org.", "acme"] if found else ["Main Org.", "acme", "ACME"])


def test_org_list_pages(grafana):
    for name in ("a", "b", "c"):
        new_org(grafana, name)

    def page(query):
        return [o["name"] for o in call(grafana, "GET", f"/api/orgs?{query}")[1]]

    assert page("perpage=2") == page("perpage=2&page=0") == ["Main Org.", "a"]
    assert page("perpage=2&page=1") == ["b", "c"]  # page counts from 0 (LIMIT/OFFSET)
    assert page("perpage=2&page=2") == []
    assert page("perpage=0") == ["Main Org.", "a", "b", "c"]  # <= 0: the default, 1000
    assert [o["name"] for o in call(grafana, "GET", "/api/orgs?name=b")[1]] == ["b"]


def test_logins_and_emails_are_stored_lowercased_and_found_without_case(grafana):
    body = {"login": "Carol", "email": "Carol@Example.COM", "password": "secret", "orgId": 1}
    status, created = call(grafana, "POST", "/api/admin/users", body)
    assert status == 200
    for wanted in ("carol", "CAROL", "carol@example.com", "CAROL@EXAMPLE.COM"):
        status, user = call(grafana, "GET", f"/api/users/lookup?loginOrEmail={wanted}")
        assert status == 200 and user["id"] == created["id"]
        assert (user["login"], user["email"]) == ("carol", "carol@example.com")
    again = {"login": "CAROL", "password": "secret"}
    assert call(grafana, "POST", "/api/admin/users", again)[0] == 412
    assert call(grafana, "GET", "/api/user/orgs", login="CAROL", password="secret")[0] == 200


def test_the_health_of_a_missing_datasource_is_a_500(grafana):
    status, body = call(grafana, "GET", "/api/datasources/uid/nope/health", org=1)
    assert status == 500 and body["message"] == "Unable to load datasource metadata"
    assert call(grafana, "GET", "/api/health")[1]["version"] == "12.3.1"


def test_the_double_follows_the_grafana_version_compose_pins():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["services"]["grafana"]["image"] == f"grafana/grafana:{VERSION}"


def test_lookups_try_the_email_first_only_with_an_at_sign(grafana):
    email_owner = {"login": "ann", "email": "shared@example.com", "password": "secret"}
    login_owner = {"login": "shared@example.com", "email": "bob@example.com", "password": "x1y2"}
    ann = call(grafana, "POST", "/api/admin/users", email_owner)[1]["id"]
    bob = call(grafana, "POST", "/api/admin/users", login_owner)[1]["id"]

    def found(wanted):
        status, user = call(grafana, "GET", f"/api/users/lookup?loginOrEmail={wanted}")
        return user["id"] if status == 200 else status

    assert found("SHARED@example.com") == ann  # the email column first
    assert found("BOB@example.com") == bob
    assert found("ann") == ann
    nameless = {"login": "carl", "email": "carl-mail", "password": "secret"}
    call(grafana, "POST", "/api/admin/users", nameless)
    assert found("carl-mail") == 404  # without an '@', only the login column


def test_folder_titles_general_is_taken_and_others_repeat(grafana):
    org_id = new_org(grafana, "acme")
    for title in ("General", "general", " GENERAL "):
        status, body = call(grafana, "POST", "/api/folders", {"title": title}, org=org_id)
        assert (status, body["message"]) == (400, "A folder with that name already exists")
    assert call(grafana, "POST", "/api/folders", {"title": "  "}, org=org_id) == (
        400,
        {"message": "folder title cannot be empty"},
    )
    for uid in ("f1", "f2"):
        body = {"uid": uid, "title": "Same"}
        assert call(grafana, "POST", "/api/folders", body, org=org_id)[0] == 200
    renamed = call(grafana, "PUT", "/api/folders/f1", {"title": "General", "overwrite": True},
                   org=org_id)  # fmt: skip
    assert renamed[0] == 400
    dashboard = {"dashboard": {"title": "General", "uid": "d1"}, "folderUid": "f1"}
    assert call(grafana, "POST", "/api/dashboards/db", dashboard, org=org_id)[0] == 200
    onto_folder = {"dashboard": {"title": "D", "uid": "f2"}}
    assert call(grafana, "POST", "/api/dashboards/db", onto_folder, org=org_id) == (
        400,
        {"message": "Dashboard cannot be changed to a folder"},
    )
    folder_on_dashboard = {"uid": "d1", "title": "F"}
    assert call(grafana, "POST", "/api/folders", folder_on_dashboard, org=org_id)[0] == 400


def test_the_reserved_company_general_is_the_folder_title_grafana_refuses(grafana):
    """core.names reserves ``General`` because the company folder takes the company's title."""
    org_id = new_org(grafana, "acme")
    for title, reserved in [("gEnErAl", True), ("Generally", False), ("acme", False)]:
        assert (reserved_company_reason(title, "powerview_meta") is not None) is reserved
        status, _ = call(grafana, "POST", "/api/folders", {"title": title}, org=org_id)
        assert (status == 400) is reserved
