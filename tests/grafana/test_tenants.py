"""Companies stay apart whatever an admin types: each case through the real ansible-playbook.

Every test starts its own Grafana and InfluxDB doubles and its own HOME, or gets a private
copy of the module's ``baseline`` (acme and beta), so no test depends on what another left.
Runs are made as an admin makes them: the playbook by its path, from a directory that is not
the project's, without ANSIBLE_CONFIG. After every scenario,
``assert_isolated`` checks, as each company user signs in, that no user sees any resource of
another company: one organization, data sources reading that company's bucket only, with a
token that can read nothing else.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.powerview_grafana import GrafanaClient, GrafanaError

from tests.helpers import (
    ADD_USER,
    ANSIBLE_PLAYBOOK,
    CREATE,
    DELETE,
    PROJECT_ROOT,
    UPDATE,
    VENV,
    Baseline,
    GrafanaSite,
    Run,
    api,
    library,
    ok,
)

PLAYBOOKS = (CREATE, ADD_USER, UPDATE, DELETE)
INVENTORY_WARNINGS = (
    "No inventory was parsed, only implicit localhost is available",
    "provided hosts list is empty, only localhost is available",
)


class Tenants(GrafanaSite):
    """A site with the checks every scenario ends with."""

    def create(self, company: str, **names: str) -> Run:
        return self.run(CREATE, names={"company_name": company, **names})

    def add_user(self, company: str, user: str, **names: str) -> Run:
        return self.run(ADD_USER, names={"company_name": company, "user_name": user, **names})

    def user(self, login: str) -> Any:
        return self.grafana.state.user_by_login(login)

    def org_names_of(self, login: str) -> set[str]:
        state = self.grafana.state
        return {state.orgs[org].name for org in state.orgs_of(self.user(login).id)}

    def assert_isolated(self) -> None:
        """As each company user signs in: one organization, and every data source it can
        use reads that company's bucket, with a token that can read nothing else."""
        with self.grafana.state.lock:
            users = [u for u in self.grafana.state.users.values() if not u.is_admin]
        tokens = {a.token: a for a in self.influxdb.authorizations()}
        for user in users:

            def as_user(method: str, path: str, user: Any = user) -> tuple[int, Any]:
                return api(self.grafana, method, path, login=user.login, password=user.password)

            status, orgs = as_user("GET", "/api/user/orgs")
            assert status == 200
            companies = [o for o in orgs if o["orgId"] != 1]
            assert len(companies) <= 1, f"{user.login} belongs to {orgs}"
            if not companies:
                continue
            company = companies[0]["name"]
            assert user.org_id == companies[0]["orgId"], f"{user.login} lands elsewhere"
            datasources = as_user("GET", "/api/frontend/settings")[1]["datasources"]
            for name, datasource in datasources.items():
                assert datasource["jsonData"]["defaultBucket"] == company, (user.login, name)
                stored = self.grafana.state.datasource_by(
                    companies[0]["orgId"], uid=datasource["uid"]
                )
                token = tokens[stored.secure_json_data["token"]]
                assert [(p.action, p.id) for p in token.permissions] == [
                    ("read", self.influxdb.bucket_id(company))
                ], (user.login, name)
            hits = as_user("GET", "/api/search")[1]
            org_items = {
                i.uid
                for i in self.grafana.state.items.values()
                if i.org_id == companies[0]["orgId"]
            }
            assert {hit["uid"] for hit in hits} <= org_items, user.login


def refused(run: Run, *words: str) -> Run:
    assert run.returncode != 0 and run.recap.get("failed") == 1, run.output
    for word in words:
        assert word in run.output, f"{word!r} not in:\n{run.output}"
    assert "Traceback" not in run.output
    return run


@pytest.fixture
def tenants_factory(site_factory: Callable[..., GrafanaSite]) -> Callable[..., Tenants]:
    """Start a site (``database`` is Grafana's: sqlite3 or mysql) for one test."""

    def start(**grafana_settings: Any) -> Tenants:
        site = site_factory(Tenants, **grafana_settings)
        assert isinstance(site, Tenants)
        return site

    return start


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """acme (user alice, alice@acme.example) and beta (user bob), Grafana on SQLite."""
    site = Tenants.start(tmp_path_factory.mktemp("home"))
    try:
        ok(site.create("acme", user_name="alice", user_email="alice@acme.example"))
        ok(site.create("beta", user_name="bob"))
    except BaseException:
        site.stop()
        raise
    return Baseline.keep(site)


@pytest.fixture
def tenants(site: GrafanaSite) -> Tenants:
    """The module's baseline, copied for this test."""
    assert isinstance(site, Tenants)
    return site


# ---- logins of another company


def test_a_login_of_another_company_is_refused_and_never_moved(tenants):
    password = tenants.user("alice").password
    before = tenants.grafana.snapshot()
    for playbook, names, found in [
        (ADD_USER, {"user_name": "alice"}, "login 'alice' belongs to company 'acme'"),
        (ADD_USER, {"user_name": "ALICE"}, "login 'ALICE' (Grafana user 'alice') belongs"),
        (
            ADD_USER,
            {"user_name": "mallory", "user_email": "ALICE@acme.example"},
            "email of Grafana user 'alice' of company 'acme'",
        ),
        (CREATE, {"user_name": "Alice"}, "(Grafana user 'alice') belongs to company 'acme'"),
    ]:
        refused(tenants.run(playbook, names={"company_name": "beta", **names}), found)
        assert tenants.grafana.snapshot() == before
    assert tenants.org_names_of("alice") == {"acme"}
    assert tenants.user("mallory") is None
    # Her old password still opens acme, and only acme.
    status, orgs = api(tenants.grafana, "GET", "/api/user/orgs", login="alice", password=password)
    assert status == 200 and [o["name"] for o in orgs] == ["acme"]
    tenants.assert_isolated()


def test_carol_in_capitals_does_not_adopt_carol(tenants):
    ok(tenants.add_user("acme", "carol"))
    refused(tenants.add_user("beta", "CAROL"), "belongs to company 'acme'")
    assert tenants.org_names_of("carol") == {"acme"}
    assert ok(tenants.add_user("acme", "CAROL")).recap["changed"] == 0  # the same user
    tenants.assert_isolated()


def test_a_user_made_by_hand_in_the_main_organization_is_adopted(tenants):
    tenants.grafana.create_user("dora", "dora-password", {1: "Viewer"})
    ok(tenants.add_user("beta", "dora"))
    assert tenants.org_names_of("dora") == {"beta"}
    tenants.assert_isolated()


def test_an_explicit_move_says_what_it_removes(tenants):
    run = ok(tenants.add_user("beta", "alice", move_from_company="acme"))
    assert "alice removed from organization acme" in run.output
    assert tenants.org_names_of("alice") == {"beta"}
    acme = tenants.org_id("acme")
    team = next(t for t in tenants.grafana.state.teams.values() if t.org_id == acme)
    assert tenants.user("alice").id not in team.members
    # Once moved, a rerun changes nothing.
    assert ok(tenants.add_user("beta", "alice", move_from_company="acme")).recap["changed"] == 0
    tenants.assert_isolated()


def test_deleting_a_company_never_deletes_another_companys_user(tenants):
    before = tenants.grafana.snapshot()
    refused(
        tenants.run(DELETE, names={"company_name": "beta", "user_name": "alice"}),
        "belongs to company 'acme'",
    )
    assert tenants.grafana.snapshot() == before
    tenants.assert_isolated()


# ---- company names that differ by case


@pytest.mark.parametrize("database", ["sqlite3", "mysql"])
def test_a_company_differing_only_by_case_is_refused_everywhere(tenants_factory, database):
    """Whether Grafana's organization lookup ignores case depends on its database: SQLite
    compares exactly, MySQL does not. Neither may matter."""
    site = tenants_factory(database=database)
    ok(site.create("acme", campaign_name="site1", user_name="alice"))
    before, buckets = site.grafana.snapshot(), site.influxdb.bucket_names()
    for playbook, names in [
        (CREATE, {"company_name": "ACME", "campaign_name": "site1"}),
        (CREATE, {"company_name": "Acme", "user_name": "eve"}),
        (ADD_USER, {"company_name": "ACME", "user_name": "eve"}),
        (DELETE, {"company_name": "ACME"}),
        (DELETE, {"company_name": "aCmE", "user_name": "alice"}),
        (UPDATE, {"company_name": "ACME"}),
        (UPDATE, {"company_name": "Acme", "campaign_name": "site1"}),
    ]:
        run = refused(site.run(playbook, names=names), "differs only by case", "'acme'")
        assert f"nothing was done for {names['company_name']!r}" in run.output
    assert site.grafana.snapshot() == before
    assert site.influxdb.bucket_names() == buckets
    assert not [d for d in site.grafana.state.datasources.values() if d.name != "influxdb_acme"]
    site.assert_isolated()


def test_a_company_known_only_to_influxdb_counts_too(tenants_factory):
    """The parser creates a company's bucket at its first upload, before any Grafana run."""
    site = tenants_factory()
    ok(site.create("acme"))
    ok(site.run(DELETE, names={"company_name": "acme"}))  # Grafana forgets, the bucket stays
    assert "acme" in site.influxdb.bucket_names()
    before = site.grafana.snapshot()
    refused(site.create("ACME"), "differs only by case", "InfluxDB bucket 'acme'")
    assert site.grafana.snapshot() == before
    assert "ACME" not in site.influxdb.bucket_names()


def test_the_org_module_never_acts_on_an_organization_of_another_case(tenants_factory):
    """Defence behind the preflight: with MySQL, asking Grafana for ACME answers acme."""
    site = tenants_factory(database="mysql")
    ok(site.create("acme"))
    org_id = site.org_id("acme")
    status, org = api(site.grafana, "GET", "/api/orgs/name/ACME")
    assert status == 200 and org["id"] == org_id  # what the module must not trust
    client = GrafanaClient(site.grafana.url, site.grafana.admin_login, site.grafana.admin_password)
    with pytest.raises(GrafanaError, match="nothing was done for 'ACME'"):
        library("powerview_grafana_org").ensure_org(
            client, {"name": "ACME", "state": "absent", "create": True}, False
        )
    assert site.org_id("acme") == org_id


# ---- reserved names


@pytest.mark.parametrize(
    ("playbook", "company", "reason"),
    [
        (CREATE, "powerview_meta", "TSV_META_BUCKET"),
        (DELETE, "PowerView_META", "TSV_META_BUCKET"),
        (ADD_USER, "General", "root folder"),
        (UPDATE, "general", "root folder"),
        (UPDATE, "POWERVIEW_meta", "TSV_META_BUCKET"),
    ],
)
def test_reserved_company_names_create_nothing(tenants_factory, playbook, company, reason):
    site = tenants_factory()
    before, buckets = site.grafana.snapshot(), site.influxdb.bucket_names()
    names = {"company_name": company, "user_name": "eve"}
    refused(site.run(playbook, names=names), "is reserved", reason)
    assert site.grafana.snapshot() == before
    assert site.influxdb.bucket_names() == buckets


def test_the_configured_meta_bucket_is_the_reserved_one(tenants_factory):
    site = tenants_factory()
    site.env["TSV_META_BUCKET"] = "records"
    refused(site.create("Records"), "is reserved", "TSV_META_BUCKET='records'")
    ok(site.create("powerview_meta"))  # no longer the records bucket: an ordinary name


# ---- password files


def test_password_files_of_different_pairs_never_collide(tenants_factory):
    site = tenants_factory()
    ok(site.create("a_b", user_name="c"))
    ok(site.create("a", user_name="b_c"))
    first = site.passwords / "a_b" / "c.txt"
    second = site.passwords / "a" / "b_c.txt"
    assert first.read_text().strip() == site.user("c").password
    assert second.read_text().strip() == site.user("b_c").password
    for path in (first, second):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(site.passwords.stat().st_mode) == 0o700
    site.assert_isolated()


def test_an_existing_password_file_is_never_overwritten(tenants_factory):
    site = tenants_factory()
    ok(site.create("acme"))
    folder = site.passwords / "acme"
    folder.mkdir(parents=True, mode=0o700)
    (folder / "zed.txt").write_text("kept\n")
    before = site.grafana.snapshot()
    refused(site.add_user("acme", "zed"), "already exists", "never overwritten")
    assert (folder / "zed.txt").read_text() == "kept\n"
    assert site.grafana.snapshot() == before and site.user("zed") is None


def test_a_password_folder_open_to_others_is_refused(tenants_factory):
    site = tenants_factory()
    ok(site.create("acme"))
    folder = site.home / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    run = refused(
        site.add_user("acme", "zed", user_password_file=str(folder / "zed.txt")),
        "open to other users",
    )
    assert "chmod 700" in run.output
    assert not (folder / "zed.txt").exists() and site.user("zed") is None


# ---- the command line


def test_a_name_cut_by_ansible_key_value_form_is_refused(tenants_factory):
    """The shell gives `-e company_name='a b'` to Ansible as `company_name=a b`."""
    site = tenants_factory()
    before = site.grafana.snapshot()
    for playbook in PLAYBOOKS:
        run = refused(site.run(playbook, "-e", "company_name=a b"), "key=value", "'b'")
        assert "company_name=a b" in run.output
    assert site.grafana.snapshot() == before and site.org_id("a") is None
    assert "a" not in site.influxdb.bucket_names()
    # The same name as JSON arrives whole, and the allowlist refuses it.
    refused(site.run(CREATE, "-e", json.dumps({"company_name": "a b"})), "is not allowed")
    # key=value without a space keeps working.
    ok(site.run(CREATE, "-e", "company_name=acme campaign_name=site1"))
    assert site.grafana.state.item_by_uid(site.org_id("acme"), "powerview_acme_site1")


# ---- from anywhere


@pytest.mark.parametrize("cwd", ["/", "project"])
def test_every_playbook_runs_by_its_path_from_any_directory(tenants_factory, cwd):
    site = tenants_factory()
    directory = {"/": Path("/"), "project": PROJECT_ROOT}[cwd]
    assert "ANSIBLE_CONFIG" not in site.env
    outputs = []
    for playbook, names in [
        (CREATE, {"company_name": "acme", "campaign_name": "site1"}),
        (ADD_USER, {"company_name": "acme", "user_name": "alice"}),
        (UPDATE, {"company_name": "acme", "campaign_name": "site1"}),
        (DELETE, {"company_name": "acme", "user_name": "alice"}),
    ]:
        vars_file = site.home / "vars.json"
        vars_file.write_text(json.dumps(names))
        completed = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), os.path.relpath(playbook, directory), "-e", f"@{vars_file}"],
            cwd=directory,
            env=site.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        outputs.append(output)
    assert site.org_id("acme") is None and site.user("alice") is None
    for output in outputs:
        warnings = [line for line in output.splitlines() if "[WARNING]" in line]
        # Without ansible.cfg Ansible says it uses its implicit localhost; nothing else may be
        # warned about (interpreter discovery, unknown plugins...).
        assert all(any(w in line for w in INVENTORY_WARNINGS) for line in warnings), warnings


def test_every_playbook_runs_with_an_admins_own_inventory(tenants_factory):
    """An admin's inventory that lists localhost makes Ansible reach it over SSH with the
    system's Python, unless the play says otherwise: every playbook must."""
    site = tenants_factory()
    inventory = site.home / "inventory.ini"
    inventory.write_text(
        "[servers]\nlocalhost ansible_python_interpreter=/nonexistent/python3\n", encoding="utf-8"
    )
    for playbook, names in [
        (CREATE, {"company_name": "acme", "campaign_name": "site1"}),
        (ADD_USER, {"company_name": "acme", "user_name": "alice"}),
        (UPDATE, {"company_name": "acme"}),
        (UPDATE, {}),
        (DELETE, {"company_name": "acme", "user_name": "alice"}),
    ]:
        ok(site.run(playbook, "-i", str(inventory), names=names))
        if playbook is CREATE:
            site.grafana.clear_log()
        if playbook is UPDATE:  # it read the company's dashboards, through HTTP, locally
            assert any(
                r.path == "/api/dashboards/uid/powerview_acme_site1" for r in site.grafana.requests
            )
    assert site.org_id("acme") is None and site.user("alice") is None


# ---- update_grafana_dashboards.yml over every company


def _legacy_company(site: Tenants, name: str) -> int:
    """An organization as create_grafana_resources.yml made one before the reserved names and
    the case rule: organization, folder, data source and an overview dashboard."""
    status, body = api(site.grafana, "POST", "/api/orgs", {"name": name})
    assert status == 200, body
    org_id = body["orgId"]
    folder_uid = f"powerview-folder_{name}"
    for path, payload in [
        ("/api/folders", {"uid": folder_uid, "title": f"{name} dashboards"}),
        (
            "/api/datasources",
            {"name": f"influxdb_{name}", "uid": f"influxdb_{name}", "type": "influxdb",
             "access": "proxy", "url": site.influxdb.url,
             "jsonData": {"version": "Flux", "defaultBucket": name}},
        ),
        (
            "/api/dashboards/db",
            {"dashboard": {"uid": f"powerview_{name}", "title": f"{name} - overview",
                           "panels": [], "schemaVersion": 39},
             "folderUid": folder_uid},
        ),
    ]:  # fmt: skip
        status, body = api(site.grafana, "POST", path, payload, org=org_id)
        assert status == 200, body
    return org_id


def test_an_update_of_every_company_leaves_reserved_and_case_twin_organizations_alone(
    tenants_factory,
):
    site = tenants_factory()
    ok(site.create("acme", campaign_name="site1"))
    ok(site.create("beta", campaign_name="b1"))
    left_alone = [_legacy_company(site, "ACME"), _legacy_company(site, "powerview_meta")]
    left_alone.append(site.org_id("acme"))
    # Hand edits that a run re-rendering the dashboard would undo.
    for company in ("acme", "beta"):
        uid = f"powerview_{company}"
        status, body = api(
            site.grafana, "GET", f"/api/dashboards/uid/{uid}", org=site.org_id(company)
        )
        assert status == 200, body
        edited = {**body["dashboard"], "description": "edited by hand"}
        status, body = api(
            site.grafana, "POST", "/api/dashboards/db",
            {"dashboard": edited, "folderUid": body["meta"]["folderUid"], "overwrite": True},
            org=site.org_id(company),
        )  # fmt: skip
        assert status == 200, body

    def items_of(org_ids: list[int]) -> list[Any]:
        with site.grafana.state.lock:
            items = site.grafana.state.items.values()
            return sorted(
                (i.org_id, i.uid, i.version, json.dumps(i.model, sort_keys=True))
                for i in items
                if i.org_id in org_ids
            )

    before = items_of(left_alone)
    run = refused(
        site.run(UPDATE, names={}),
        "ACME: organization 'ACME' differs only by case from organization 'acme'",
        "acme: organization 'acme' differs only by case from organization 'ACME'",
        "powerview_meta: company name 'powerview_meta' is reserved",
        "were left as they were",
    )
    assert "powerview_beta" in run.output  # beta, which has no twin, was re-rendered
    assert items_of(left_alone) == before
    beta = site.grafana.state.item_by_uid(site.org_id("beta"), "powerview_beta")
    assert "description" not in beta.model or beta.model["description"] != "edited by hand"


# ---- the upload hook: an SFTP mkdir of ACME/site1


def test_a_mkdir_of_a_company_differing_by_case_creates_nothing(stack, grafana):
    """on-upload.sh runs create_grafana_resources.yml for a new campaign folder: ``ACME/site1``
    beside an existing ``acme`` is refused by its preflight."""
    hook = stack  # the upload hook's installation and its InfluxDB
    hook.settings(
        GRAFANA_URL=grafana.url,
        GRAFANA_USERNAME=grafana.admin_login,
        GRAFANA_PASSWORD=grafana.admin_password,
    )
    real = {"POWERVIEW_ANSIBLE_PLAYBOOK": str(VENV / "bin" / "ansible-playbook")}
    (hook.data / "acme/site1").mkdir(parents=True)
    assert hook.mkdir(hook.data / "acme/site1", **real).returncode == 0
    assert hook.wait_for("job:playbook")[0]["outcome"] == "completed"
    before, buckets = grafana.snapshot(), hook.influxdb.bucket_names()
    (hook.data / "ACME/site1").mkdir(parents=True)
    assert hook.mkdir(hook.data / "ACME/site1", **real).returncode == 0
    done = hook.wait_for("job:playbook", count=2)[1]
    output = (hook.logs / "hook-output.log").read_text()
    assert done["outcome"] == "failed", output
    assert "'ACME' differs only by case from the existing company 'acme'" in output
    assert grafana.snapshot() == before
    assert hook.influxdb.bucket_names() == buckets
    org = grafana.state.org_by_name("acme")
    assert [d.name for d in grafana.state.datasources.values()] == ["influxdb_acme"]
    assert grafana.state.datasource_by(org.id, name="influxdb_ACME") is None
