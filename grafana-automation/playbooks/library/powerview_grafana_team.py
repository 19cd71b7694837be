"""Ansible module: the team of one company inside its Grafana organization."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_team
short_description: Ensure the team of one PowerView company in its organization
description:
  - The team is what the company folder grants View to; its members are the company users.
  - Grafana adds the creating user (the server admin) to a new team as a team Admin; that
    membership is left in place, it grants nothing an organization Admin lacks.
options:
  org_id:
    description: Organization id; null means the organization is only planned (check mode).
    type: int
  name: {description: Team name (the company name)., type: str, required: true}
  state: {description: present or absent., type: str, default: present}
  create:
    description: When false, a missing team is an error instead of being created.
    type: bool
    default: true
"""

RETURN = r"""
team_id: {description: Id of the team; null when absent or only planned., type: int}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    find_team,
    run_module,
)


def ensure_team(client: GrafanaClient, params: dict, check_mode: bool) -> dict:
    """Create or delete the team ``params["name"]`` of organization ``params["org_id"]``."""
    name, state, org_id = params["name"], params["state"], params["org_id"]
    if org_id is None:
        planned = {"team": name, "state": state}
        return {
            "changed": state == "present",
            "team_id": None,
            "diff": changes({"team": name, "state": "absent"}, planned),
        }
    org = client.in_org(org_id)
    team = find_team(org, name)
    before = {"team": name, "state": "present" if team else "absent"}
    after = {"team": name, "state": state}
    if state == "absent":
        if team is not None and not check_mode:
            org.call("DELETE", api_path("teams", team["id"]), accept=(404,))
        return {"changed": team is not None, "team_id": None, "diff": changes(before, after)}
    if team is not None:
        return {"changed": False, "team_id": team["id"], "diff": changes(before, after)}
    if not params.get("create", True):
        raise GrafanaError(f"team {name!r} does not exist in organization {org_id}")
    if check_mode:
        return {"changed": True, "team_id": None, "diff": changes(before, after)}
    status, created = org.call("POST", "/api/teams", {"name": name}, accept=(409,))
    if status == 409:  # created meanwhile by a parallel run
        team = find_team(org, name)
        if team is None:
            raise GrafanaError(f"team {name!r} exists but cannot be found by name")
        return {"changed": False, "team_id": team["id"], "diff": changes(before, after)}
    return {"changed": True, "team_id": created["teamId"], "diff": changes(before, after)}


ARGUMENT_SPEC = {
    "org_id": {"type": "int"},
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "create": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, ensure_team)


if __name__ == "__main__":
    main()
