"""Ansible module: the Grafana organization of one company."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_org
short_description: Ensure the Grafana organization of one PowerView company
description:
  - One organization per company is what isolates its data sources in Grafana OSS.
  - Ensures the organization exists (or not) and that the connecting server admin is one of
    its Admins, so later calls can target it with C(X-Grafana-Org-Id).
  - Connection settings come from GRAFANA_URL, GRAFANA_USERNAME and GRAFANA_PASSWORD
    (environment, then the project's .env), located through POWERVIEW_ROOT.
options:
  name: {description: Organization name (the company name)., type: str, required: true}
  state: {description: present or absent., type: str, default: present}
  create:
    description: When false, a missing organization is an error instead of being created.
    type: bool
    default: true
"""

RETURN = r"""
org_id:
  description: Id of the organization; null when absent or only planned (check mode).
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    MAIN_ORG_ID,
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    find_org,
    run_module,
    verify_server_admin,
)


def ensure_admin_is_org_admin(client: GrafanaClient, org_id: int, check_mode: bool) -> bool:
    """Make the connecting admin an Admin of the organization (Grafana does it for the
    creator; an organization made by hand may lack it). Return True when it changed."""
    _, members = client.call("GET", api_path("orgs", org_id, "users"))
    wanted = client.username.lower()
    for member in members:
        if wanted in (str(member.get("login", "")).lower(), str(member.get("email", "")).lower()):
            if member.get("role") == "Admin":
                return False
            if not check_mode:
                client.call(
                    "PATCH", api_path("orgs", org_id, "users", member["userId"]), {"role": "Admin"}
                )
            return True
    if not check_mode:
        client.call(
            "POST",
            api_path("orgs", org_id, "users"),
            {"loginOrEmail": client.username, "role": "Admin"},
            accept=(409,),
        )
    return True


def ensure_org(client: GrafanaClient, params: dict, check_mode: bool) -> dict:
    """Create or delete the organization named ``params["name"]``; report its id."""
    name, state = params["name"], params["state"]
    verify_server_admin(client)
    org = find_org(client, name)
    before = {"organization": name, "state": "present" if org else "absent"}
    after = {"organization": name, "state": state}
    if state == "absent":
        if org is None:
            return {"changed": False, "org_id": None, "diff": changes(before, after)}
        if org["id"] == MAIN_ORG_ID:
            raise GrafanaError(f"refusing to delete the main organization {name!r} (id 1)")
        if not check_mode:
            client.call("DELETE", api_path("orgs", org["id"]), accept=(404,))
        return {"changed": True, "org_id": org["id"], "diff": changes(before, after)}

    changed = False
    if org is None:
        if not params.get("create", True):
            raise GrafanaError(
                f"company {name!r} has no Grafana organization yet: run "
                "create_grafana_resources.yml for it first"
            )
        if check_mode:
            return {"changed": True, "org_id": None, "diff": changes(before, after)}
        status, created = client.call("POST", "/api/orgs", {"name": name}, accept=(409,))
        if status == 409:  # created meanwhile by a parallel run: adopt it
            org = find_org(client, name)
            if org is None:
                raise GrafanaError(f"organization {name!r} exists but cannot be read")
        else:
            org = {"id": int(created["orgId"]), "name": name}
            changed = True
    org_id = int(org["id"])
    changed |= ensure_admin_is_org_admin(client, org_id, check_mode)
    return {"changed": changed, "org_id": org_id, "diff": changes(before, after)}


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "create": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, ensure_org)


if __name__ == "__main__":
    main()
