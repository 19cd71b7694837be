"""The playbooks, run by the real ansible-playbook against the Grafana and InfluxDB doubles.

The module builds one baseline (each run of ansible-playbook costs seconds): acme created
twice and beta once, by the ``companies`` runs; every test then gets its own copy of it (the
``site`` fixture), so no test sees what another changed. Every run is made the way an admin or
the upload hook makes it (``tests.helpers.GrafanaSite``): the playbook by its path from another
directory, with no ANSIBLE_CONFIG (the plugins are found beside the playbooks), names in a
JSON file given by ``--extra-vars @file``, and an ``id`` command planted first on PATH that
leaves a marker if anything ever runs it. After every run, no secret may appear in what it
printed.
"""

from __future__ import annotations

import socket
import stat

import pytest

from tests.helpers import ADD_USER, CREATE, DELETE, Baseline, GrafanaSite, Run, api, ok

HOSTILE = "{{ lookup('pipe','id') }}"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """acme (campaign camp1, user alice) created twice, beta (user bob) once."""
    site = GrafanaSite.start(tmp_path_factory.mktemp("home"))
    try:
        acme = {"company_name": "acme", "campaign_name": "camp1", "user_name": "alice"}
        ok(site.run(CREATE, "--diff", "-v", names=acme))
        ok(site.run(CREATE, "--diff", names=acme))
        ok(site.run(CREATE, names={"company_name": "beta", "user_name": "bob"}))
    except BaseException:
        site.stop()
        raise
    return Baseline.keep(site)


@pytest.fixture(scope="module")
def companies(baseline: Baseline) -> dict[str, Run]:
    """The baseline's three runs."""
    return dict(zip(("first", "second", "beta"), baseline.site.runs, strict=True))


# ---- create, twice


def test_first_run_creates_the_company(site, companies):
    assert companies["first"].recap["changed"] == 7
    state, org_id = site.grafana.state, site.org_id("acme")
    team = next(t for t in state.teams.values() if t.org_id == org_id)
    folder = state.item_by_uid(org_id, "powerview-folder_acme")
    assert team.name == "acme" and folder.title == "acme"
    assert folder.acl == {("team", team.id): 1}  # no Viewer/Editor default left
    datasource = state.datasource_by(org_id, uid="influxdb_acme")
    assert datasource.name == "influxdb_acme" and datasource.type == "influxdb"
    assert datasource.url == site.influxdb.url
    assert datasource.json_data["version"] == "Flux"
    assert datasource.json_data["defaultBucket"] == "acme"
    assert datasource.json_data["organization"] == site.influxdb.org
    for uid in ("powerview_acme", "powerview_acme_camp1"):
        assert state.item_by_uid(org_id, uid).folder_uid == "powerview-folder_acme"


def test_second_run_changes_nothing(site, companies):
    assert companies["second"].recap == {**companies["second"].recap, "changed": 0, "failed": 0}
    org_id = site.org_id("acme")
    assert site.grafana.state.item_by_uid(org_id, "powerview_acme").version == 1


def test_the_datasource_token_reads_the_company_bucket_only(site, companies):
    token = site.grafana.state.datasource_by(site.org_id("acme"), uid="influxdb_acme")
    (auth,) = [
        a for a in site.influxdb.authorizations() if a.token == token.secure_json_data["token"]
    ]
    assert [(p.action, p.type, p.id) for p in auth.permissions] == [
        ("read", "buckets", site.influxdb.bucket_id("acme"))
    ]


def test_the_user_belongs_to_its_company_only(site, companies):
    state = site.grafana.state
    alice = state.user_by_login("alice")
    assert state.orgs_of(alice.id) == {site.org_id("acme"): "Viewer"}
    path = site.passwords / "acme" / "alice.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert f"written to {path}" in companies["first"].output
    assert alice.password == site.password_of("acme", "alice")


def test_the_admin_never_switches_organization(site, companies):
    assert site.grafana.state.user_by_login(site.grafana.admin_login).org_id == 1
    assert not [r for r in site.grafana.requests if "/using/" in r.path]
    org_scoped = [
        r for r in site.grafana.requests if r.path.startswith(("/api/folders", "/api/teams"))
    ]
    assert org_scoped and all(r.headers.get("X-Grafana-Org-Id") for r in org_scoped)


# ---- isolation between companies


def test_a_user_sees_nothing_of_another_company(site, companies):
    grafana, password = site.grafana, site.password_of("acme", "alice")

    def as_alice(method, path, body=None, org=None):
        return api(grafana, method, path, body, login="alice", password=password, org=org)

    assert as_alice("GET", "/api/user/orgs")[1] == [
        {"orgId": site.org_id("acme"), "name": "acme", "role": "Viewer"}
    ]
    visible = {hit["uid"] for hit in as_alice("GET", "/api/search")[1]}
    assert visible == {"powerview-folder_acme", "powerview_acme", "powerview_acme_camp1"}
    assert {f["uid"] for f in as_alice("GET", "/api/folders")[1]} == {"powerview-folder_acme"}
    assert as_alice("GET", "/api/dashboards/uid/powerview_beta")[0] == 404
    assert as_alice("GET", "/api/search", org=site.org_id("beta"))[0] == 403
    datasources = as_alice("GET", "/api/frontend/settings")[1]["datasources"]
    assert set(datasources) == {"influxdb_acme"}
    # The Main Org. (where Grafana puts new users by default) holds nothing of a company.
    assert as_alice("GET", "/api/search", org=1)[0] == 403


def test_a_user_can_query_its_bucket_but_not_another_companys(site, companies):
    site.write_point("acme", "electrical,campaign=camp1 M1_U1_V=230.5 1700000000")
    site.write_point("beta", "electrical,campaign=x M2_U1_V=231.0 1700000000")
    password = site.password_of("acme", "alice")

    def query(datasource_uid, bucket):
        flux = f'from(bucket: "{bucket}") |> range(start: 0) |> count()'
        body = {"queries": [{"refId": "A", "datasource": {"uid": datasource_uid}, "query": flux}]}
        return api(site.grafana, "POST", "/api/ds/query", body, login="alice", password=password)

    status, body = query("influxdb_acme", "acme")
    assert status == 200 and body["results"]["A"]["frames"][0]["data"]["values"]
    status, body = query("influxdb_acme", "beta")  # beta's bucket through acme's token
    assert status == 400 and body["results"]["A"]["status"] == 404
    assert query("influxdb_beta", "beta")[0] == 404  # beta's data source is not in her org


# ---- check mode


def test_check_mode_reports_changes_and_makes_none(site, companies):
    before, buckets = site.grafana.snapshot(), site.influxdb.bucket_names()
    new = ok(site.run(CREATE, "--check", "--diff", names={
        "company_name": "gamma", "campaign_name": "c1", "user_name": "gary"}))  # fmt: skip
    assert new.recap["changed"] == 7
    more = ok(site.run(CREATE, "--check", names={"company_name": "acme", "campaign_name": "camp2"}))
    assert more.recap["changed"] == 1  # only the new campaign dashboard
    assert site.grafana.snapshot() == before
    assert site.influxdb.bucket_names() == buckets
    assert not (site.passwords / "gamma").exists()


# ---- users


def test_add_user_to_an_existing_company(site, companies):
    site.grafana.create_user("carol", "carol-old", {1: "Viewer"})  # as auto-assign leaves it
    names = {"company_name": "acme", "user_name": "carol", "user_email": "carol@example.com"}
    first = ok(site.run(ADD_USER, names=names))
    assert first.recap["changed"] == 1
    state, org_id = site.grafana.state, site.org_id("acme")
    carol = state.user_by_login("carol")
    assert state.orgs_of(carol.id) == {org_id: "Viewer"}
    team = next(t for t in state.teams.values() if t.org_id == org_id)
    assert carol.id in team.members
    assert ok(site.run(ADD_USER, names=names)).recap["changed"] == 0


def test_a_given_password_is_data_too(site, companies):
    password = HOSTILE + "-and-long-enough"
    names = {"company_name": "acme", "user_name": "erin", "user_password": password}
    ok(site.run(ADD_USER, names=names))
    assert site.grafana.state.user_by_login("erin").password == password
    assert not (site.passwords / "acme" / "erin.txt").exists()


def test_a_new_user_needs_an_existing_company(site, companies):
    run = site.run(ADD_USER, names={"company_name": "nowhere", "user_name": "nemo"})
    assert run.returncode != 0 and "run create_grafana_resources.yml" in run.output
    assert site.grafana.state.user_by_login("nemo") is None


# ---- delete


def test_delete_removes_grafana_resources_and_keeps_the_data(site, companies):
    ok(site.run(CREATE, names={"company_name": "delta", "user_name": "dave"}))
    site.write_point("delta", "electrical,campaign=c M1_U1_V=229.0 1700000000")
    points, tokens = site.influxdb.points("delta"), site.influxdb.authorizations()
    deleted = ok(site.run(DELETE, names={"company_name": "delta", "user_name": "dave"}))
    assert deleted.recap["changed"] == 2
    assert site.org_id("delta") is None
    assert site.grafana.state.user_by_login("dave") is None
    assert not [d for d in site.grafana.state.datasources.values() if d.name == "influxdb_delta"]
    assert site.influxdb.points("delta") == points
    assert site.influxdb.authorizations() == tokens
    assert ok(site.run(DELETE, names={"company_name": "delta"})).recap["changed"] == 0


# ---- names are data


@pytest.mark.parametrize(
    ("playbook", "names"),
    [
        (CREATE, {"company_name": HOSTILE}),
        (CREATE, {"company_name": "acme", "campaign_name": HOSTILE}),
        (CREATE, {"company_name": "acme", "campaign_name": "{% print(lookup('pipe', 'id')) %}"}),
        (ADD_USER, {"company_name": "acme", "user_name": HOSTILE}),
        (DELETE, {"company_name": "acme", "user_name": HOSTILE}),
    ],
)
def test_a_hostile_name_in_the_hook_file_runs_nothing_and_changes_nothing(
    site, companies, playbook, names
):
    before, influx_requests = site.grafana.snapshot(), len(site.influxdb.requests)
    run = site.run(playbook, names=names)
    assert run.returncode != 0 and "is not allowed" in run.output
    assert site.grafana.snapshot() == before
    assert len(site.influxdb.requests) == influx_requests


def test_a_hostile_name_on_the_command_line_runs_nothing(site, companies):
    before = site.grafana.snapshot()
    run = site.run(CREATE, "-e", f"company_name={HOSTILE}")
    assert run.returncode != 0 and "is not allowed" in run.output
    assert site.grafana.snapshot() == before


# ---- failures


def test_an_interrupted_run_converges(site, companies):
    names = {"company_name": "epsilon", "campaign_name": "c1"}
    site.grafana.fail_next("POST", "/api/dashboards/db", 500)
    failed = site.run(CREATE, names=names)
    assert failed.returncode != 0 and "HTTP 500" in failed.output
    assert ok(site.run(CREATE, names=names)).recap["changed"] == 2  # the two dashboards
    assert ok(site.run(CREATE, names=names)).recap["changed"] == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("GRAFANA_PASSWORD", "wrong-password", "refused the credentials"),
        ("GRAFANA_URL", "http://127.0.0.1:{port}", "Grafana is unreachable"),
        ("GRAFANA_URL", "", "GRAFANA_URL is not set"),
    ],
)
def test_failures_say_what_to_fix(site, companies, setting, value, message):
    run = site.run(
        CREATE, names={"company_name": "acme"}, **{setting: value.format(port=free_port())}
    )
    assert run.returncode != 0 and message in run.output
    assert "Traceback" not in run.output
