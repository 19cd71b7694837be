"""The playbooks, run by the real ansible-playbook against the Grafana and InfluxDB doubles.

One Grafana and one InfluxDB serve the whole module (each run of ansible-playbook costs
seconds): acme and beta are created once by the ``companies`` fixture, and the tests that
change things use companies of their own. Every run is made the way an admin or the upload
hook makes it: the playbook by its path from another directory, with no ANSIBLE_CONFIG (the
plugins are found beside the playbooks), names in a JSON file given by ``--extra-vars @file``,
and an ``id`` command planted first on PATH that leaves a marker if anything ever runs it.
After every run, no secret may appear in what it printed.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest

from tests.doubles.grafana import GrafanaDouble
from tests.doubles.grafana_fixtures import grafana_environment, load_grafana_contract
from tests.doubles.influxdb import InfluxDBDouble
from tests.grafana.conftest import AUTOMATION, Run, api, ok, run_playbook

CREATE = AUTOMATION / "playbooks" / "create_grafana_resources.yml"
DELETE = AUTOMATION / "playbooks" / "delete_grafana_resources.yml"
ADD_USER = AUTOMATION / "playbooks" / "add_grafana_user_to_team.yml"
HOSTILE = "{{ lookup('pipe','id') }}"


@dataclass
class Stack:
    grafana: GrafanaDouble
    influxdb: InfluxDBDouble
    home: Path
    marker: Path
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    def run(
        self, playbook: Path, *args: str, names: dict[str, Any] | None = None, **env: str
    ) -> Run:
        """ansible-playbook as the hook runs it: names in a JSON file, from another directory."""
        run = run_playbook(
            playbook, *args, home=self.home, env={**self.env, **env}, names=names, timeout=120
        )
        self.runs.append(run)
        self.assert_no_secret_in(run.output)
        assert not self.marker.exists(), f"a planted command ran:\n{run.output}"
        return run

    def secrets(self) -> list[str]:
        found = [self.grafana.admin_password, self.influxdb.admin_token]
        found += [auth.token for auth in self.influxdb.authorizations()]
        with self.grafana.state.lock:
            found += [u.password for u in self.grafana.state.users.values()]
        return [secret for secret in found if secret]

    def assert_no_secret_in(self, output: str) -> None:
        for secret in self.secrets():
            assert secret not in output, "a secret was printed"

    def org_id(self, company: str) -> int | None:
        org = self.grafana.state.org_by_name(company)
        return org.id if org else None

    def password_of(self, company: str, user: str) -> str:
        path = self.home / ".powerview" / "grafana-passwords" / company / f"{user}.txt"
        return path.read_text(encoding="utf-8").strip()

    def write_point(self, bucket: str, line: str) -> None:
        request = Request(
            f"{self.influxdb.url}/api/v2/write?org={self.influxdb.org}&bucket={bucket}&precision=s",
            data=line.encode(),
            method="POST",
            headers={"Authorization": f"Token {self.influxdb.admin_token}"},
        )
        with urlopen(request, timeout=10) as response:
            assert response.status == 204


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    planted = home / "bin"
    planted.mkdir()
    marker = home / "PLANTED_COMMAND_RAN"
    script = planted / "id"
    script.write_text(f'#!/bin/sh\necho "id $*" >> "{marker}"\necho 0\n', encoding="utf-8")
    script.chmod(0o755)
    grafana = GrafanaDouble(contract=load_grafana_contract()).start()
    influxdb = InfluxDBDouble().start()
    env = grafana_environment(grafana)
    env.update(
        INFLUXDB_HOST=influxdb.url,
        INFLUXDB_ORG=influxdb.org,
        INFLUXDB_ADMIN_TOKEN=influxdb.admin_token,
        HOME=str(home),
        PATH=f"{planted}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(home / "ansible-tmp"),
    )
    env.pop("INFLUXDB_URL", None)
    env.pop("ANSIBLE_CONFIG", None)
    yield Stack(grafana, influxdb, home, marker, env)
    problems = list(grafana.contract_problems)
    grafana.stop()
    influxdb.stop()
    assert not problems, "requests outside Grafana's API description:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def companies(stack: Stack) -> dict[str, Run]:
    """acme (campaign camp1, user alice) created twice, beta (user bob) once."""
    acme = {"company_name": "acme", "campaign_name": "camp1", "user_name": "alice"}
    first = ok(stack.run(CREATE, "--diff", "-v", names=acme))
    second = ok(stack.run(CREATE, "--diff", names=acme))
    beta = ok(stack.run(CREATE, names={"company_name": "beta", "user_name": "bob"}))
    return {"first": first, "second": second, "beta": beta}


# ---- create, twice


def test_first_run_creates_the_company(stack, companies):
    assert companies["first"].recap["changed"] == 7
    state, org_id = stack.grafana.state, stack.org_id("acme")
    team = next(t for t in state.teams.values() if t.org_id == org_id)
    folder = state.item_by_uid(org_id, "powerview-folder_acme")
    assert team.name == "acme" and folder.title == "acme"
    assert folder.acl == {("team", team.id): 1}  # no Viewer/Editor default left
    datasource = state.datasource_by(org_id, uid="influxdb_acme")
    assert datasource.name == "influxdb_acme" and datasource.type == "influxdb"
    assert datasource.url == stack.influxdb.url
    assert datasource.json_data["version"] == "Flux"
    assert datasource.json_data["defaultBucket"] == "acme"
    assert datasource.json_data["organization"] == stack.influxdb.org
    for uid in ("powerview_acme", "powerview_acme_camp1"):
        assert state.item_by_uid(org_id, uid).folder_uid == "powerview-folder_acme"


def test_second_run_changes_nothing(stack, companies):
    assert companies["second"].recap == {**companies["second"].recap, "changed": 0, "failed": 0}
    org_id = stack.org_id("acme")
    assert stack.grafana.state.item_by_uid(org_id, "powerview_acme").version == 1


def test_the_datasource_token_reads_the_company_bucket_only(stack, companies):
    token = stack.grafana.state.datasource_by(stack.org_id("acme"), uid="influxdb_acme")
    (auth,) = [
        a for a in stack.influxdb.authorizations() if a.token == token.secure_json_data["token"]
    ]
    assert [(p.action, p.type, p.id) for p in auth.permissions] == [
        ("read", "buckets", stack.influxdb.bucket_id("acme"))
    ]


def test_the_user_belongs_to_its_company_only(stack, companies):
    state = stack.grafana.state
    alice = state.user_by_login("alice")
    assert state.orgs_of(alice.id) == {stack.org_id("acme"): "Viewer"}
    path = stack.home / ".powerview" / "grafana-passwords" / "acme" / "alice.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert f"written to {path}" in companies["first"].output
    assert alice.password == stack.password_of("acme", "alice")


def test_the_admin_never_switches_organization(stack, companies):
    assert stack.grafana.state.user_by_login(stack.grafana.admin_login).org_id == 1
    assert not [r for r in stack.grafana.requests if "/using/" in r.path]
    org_scoped = [
        r for r in stack.grafana.requests if r.path.startswith(("/api/folders", "/api/teams"))
    ]
    assert org_scoped and all(r.headers.get("X-Grafana-Org-Id") for r in org_scoped)


# ---- isolation between companies


def test_a_user_sees_nothing_of_another_company(stack, companies):
    grafana, password = stack.grafana, stack.password_of("acme", "alice")

    def as_alice(method, path, body=None, org=None):
        return api(grafana, method, path, body, login="alice", password=password, org=org)

    assert as_alice("GET", "/api/user/orgs")[1] == [
        {"orgId": stack.org_id("acme"), "name": "acme", "role": "Viewer"}
    ]
    visible = {hit["uid"] for hit in as_alice("GET", "/api/search")[1]}
    assert visible == {"powerview-folder_acme", "powerview_acme", "powerview_acme_camp1"}
    assert {f["uid"] for f in as_alice("GET", "/api/folders")[1]} == {"powerview-folder_acme"}
    assert as_alice("GET", "/api/dashboards/uid/powerview_beta")[0] == 404
    assert as_alice("GET", "/api/search", org=stack.org_id("beta"))[0] == 403
    datasources = as_alice("GET", "/api/frontend/settings")[1]["datasources"]
    assert set(datasources) == {"influxdb_acme"}
    # The Main Org. (where Grafana puts new users by default) holds nothing of a company.
    assert as_alice("GET", "/api/search", org=1)[0] == 403


def test_a_user_can_query_its_bucket_but_not_another_companys(stack, companies):
    stack.write_point("acme", "electrical,campaign=camp1 M1_U1_V=230.5 1700000000")
    stack.write_point("beta", "electrical,campaign=x M2_U1_V=231.0 1700000000")
    password = stack.password_of("acme", "alice")

    def query(datasource_uid, bucket):
        flux = f'from(bucket: "{bucket}") |> range(start: 0) |> count()'
        body = {"queries": [{"refId": "A", "datasource": {"uid": datasource_uid}, "query": flux}]}
        return api(stack.grafana, "POST", "/api/ds/query", body, login="alice", password=password)

    status, body = query("influxdb_acme", "acme")
    assert status == 200 and body["results"]["A"]["frames"][0]["data"]["values"]
    status, body = query("influxdb_acme", "beta")  # beta's bucket through acme's token
    assert status == 400 and body["results"]["A"]["status"] == 404
    assert query("influxdb_beta", "beta")[0] == 404  # beta's data source is not in her org


# ---- check mode


def test_check_mode_reports_changes_and_makes_none(stack, companies):
    before, buckets = stack.grafana.snapshot(), stack.influxdb.bucket_names()
    new = ok(stack.run(CREATE, "--check", "--diff", names={
        "company_name": "gamma", "campaign_name": "c1", "user_name": "gary"}))  # fmt: skip
    assert new.recap["changed"] == 7
    more = ok(
        stack.run(CREATE, "--check", names={"company_name": "acme", "campaign_name": "camp2"})
    )
    assert more.recap["changed"] == 1  # only the new campaign dashboard
    assert stack.grafana.snapshot() == before
    assert stack.influxdb.bucket_names() == buckets
    assert not (stack.home / ".powerview" / "grafana-passwords" / "gamma").exists()


# ---- users


def test_add_user_to_an_existing_company(stack, companies):
    stack.grafana.create_user("carol", "carol-old", {1: "Viewer"})  # as auto-assign leaves it
    names = {"company_name": "acme", "user_name": "carol", "user_email": "carol@example.com"}
    first = ok(stack.run(ADD_USER, names=names))
    assert first.recap["changed"] == 1
    state, org_id = stack.grafana.state, stack.org_id("acme")
    carol = state.user_by_login("carol")
    assert state.orgs_of(carol.id) == {org_id: "Viewer"}
    team = next(t for t in state.teams.values() if t.org_id == org_id)
    assert carol.id in team.members
    assert ok(stack.run(ADD_USER, names=names)).recap["changed"] == 0


def test_a_given_password_is_data_too(stack, companies):
    password = HOSTILE + "-and-long-enough"
    names = {"company_name": "acme", "user_name": "erin", "user_password": password}
    ok(stack.run(ADD_USER, names=names))
    assert stack.grafana.state.user_by_login("erin").password == password
    assert not (stack.home / ".powerview" / "grafana-passwords" / "acme" / "erin.txt").exists()


def test_a_new_user_needs_an_existing_company(stack, companies):
    run = stack.run(ADD_USER, names={"company_name": "nowhere", "user_name": "nemo"})
    assert run.returncode != 0 and "run create_grafana_resources.yml" in run.output
    assert stack.grafana.state.user_by_login("nemo") is None


# ---- delete


def test_delete_removes_grafana_resources_and_keeps_the_data(stack, companies):
    ok(stack.run(CREATE, names={"company_name": "delta", "user_name": "dave"}))
    stack.write_point("delta", "electrical,campaign=c M1_U1_V=229.0 1700000000")
    points, tokens = stack.influxdb.points("delta"), stack.influxdb.authorizations()
    deleted = ok(stack.run(DELETE, names={"company_name": "delta", "user_name": "dave"}))
    assert deleted.recap["changed"] == 2
    assert stack.org_id("delta") is None
    assert stack.grafana.state.user_by_login("dave") is None
    assert not [d for d in stack.grafana.state.datasources.values() if d.name == "influxdb_delta"]
    assert stack.influxdb.points("delta") == points
    assert stack.influxdb.authorizations() == tokens
    assert ok(stack.run(DELETE, names={"company_name": "delta"})).recap["changed"] == 0


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
    stack, companies, playbook, names
):
    before, influx_requests = stack.grafana.snapshot(), len(stack.influxdb.requests)
    run = stack.run(playbook, names=names)
    assert run.returncode != 0 and "is not allowed" in run.output
    assert stack.grafana.snapshot() == before
    assert len(stack.influxdb.requests) == influx_requests


def test_a_hostile_name_on_the_command_line_runs_nothing(stack, companies):
    before = stack.grafana.snapshot()
    run = stack.run(CREATE, "-e", f"company_name={HOSTILE}")
    assert run.returncode != 0 and "is not allowed" in run.output
    assert stack.grafana.snapshot() == before


# ---- failures


def test_an_interrupted_run_converges(stack, companies):
    names = {"company_name": "epsilon", "campaign_name": "c1"}
    stack.grafana.fail_next("POST", "/api/dashboards/db", 500)
    failed = stack.run(CREATE, names=names)
    assert failed.returncode != 0 and "HTTP 500" in failed.output
    assert ok(stack.run(CREATE, names=names)).recap["changed"] == 2  # the two dashboards
    assert ok(stack.run(CREATE, names=names)).recap["changed"] == 0


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
def test_failures_say_what_to_fix(stack, companies, setting, value, message):
    run = stack.run(
        CREATE, names={"company_name": "acme"}, **{setting: value.format(port=free_port())}
    )
    assert run.returncode != 0 and message in run.output
    assert "Traceback" not in run.output
