"""Ansible module: a folder and its exact permission list inside one organization."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_folder
short_description: Ensure a Grafana folder and exactly the permissions it should have
description:
  - Grafana gives a new top-level folder three permissions (creator Admin, role Editor Edit,
    role Viewer View). This module replaces them with exactly C(permissions), so the company
    folder is visible to the company team only; organization Admins always keep access.
  - The folder is keyed on its uid, never on its title.
options:
  org_id: {description: Organization id; null means only planned (check mode)., type: int}
  uid:
    description: Folder uid (at most 40 characters of A-Z, a-z, 0-9, _ and -).
    type: str
    required: true
  title: {description: Folder title., type: str}
  permissions:
    description:
      - Exact list of grants; each item has one of team_id, user_id or role (Viewer/Editor)
        and a permission (View, Edit or Admin). A null team_id means the team is only planned.
    type: list
    elements: dict
    default: []
  state:
    description: present or absent (absent also deletes its dashboards).
    type: str
    default: present
"""

RETURN = r"""
folder_uid: {description: The folder uid., type: str}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    PERMISSION_LEVELS,
    PERMISSION_NAMES,
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    run_module,
)

GRANTEE_KEYS = ("team_id", "user_id", "role")


def desired_grants(permissions: list[dict]) -> tuple[dict[tuple[str, object], int], bool]:
    """``{("team", 3): 1, ...}`` from the task's list, and whether some grantee is only
    planned (a team that check mode did not create)."""
    grants: dict[tuple[str, object], int] = {}
    pending = False
    for item in permissions:
        present = [key for key in GRANTEE_KEYS if key in item]
        if len(present) != 1:
            raise GrafanaError(f"each permission needs exactly one of {GRANTEE_KEYS}: {item}")
        key = present[0]
        level = PERMISSION_LEVELS.get(str(item.get("permission")))
        if level is None:
            raise GrafanaError(f"permission must be View, Edit or Admin: {item}")
        if item[key] is None:
            pending = True
            continue
        if key == "role" and item[key] not in ("Viewer", "Editor"):
            raise GrafanaError("a role grant is for Viewer or Editor (Admins always have access)")
        value = item[key] if key == "role" else int(item[key])
        grants[(key.replace("_id", ""), value)] = level
    return grants, pending


def current_grants(items: list[dict]) -> dict[tuple[str, object], int]:
    """The folder's own (not inherited) grants, keyed like ``desired_grants``."""
    grants: dict[tuple[str, object], int] = {}
    for item in items:
        if item.get("inherited"):
            continue
        if item.get("teamId"):
            grants[("team", int(item["teamId"]))] = int(item["permission"])
        elif item.get("userId"):
            grants[("user", int(item["userId"]))] = int(item["permission"])
        elif item.get("role"):
            grants[("role", item["role"])] = int(item["permission"])
    return grants


def describe(grants: dict[tuple[str, object], int]) -> list[str]:
    return sorted(
        f"{kind} {who}: {PERMISSION_NAMES[level]}" for (kind, who), level in grants.items()
    )


def request_items(grants: dict[tuple[str, object], int]) -> list[dict]:
    fields = {"team": "teamId", "user": "userId", "role": "role"}
    return [{fields[kind]: who, "permission": level} for (kind, who), level in grants.items()]


def ensure_folder(client: GrafanaClient, params: dict, check_mode: bool) -> dict:
    """Create, retitle, re-permission or delete the folder ``params["uid"]``."""
    uid, state, org_id = params["uid"], params["state"], params["org_id"]
    title = params.get("title") or uid
    wanted, pending = desired_grants(params.get("permissions") or [])
    after = (
        {"uid": uid, "title": title, "permissions": describe(wanted)} if state == "present" else {}
    )
    if org_id is None:
        return {"changed": state == "present", "folder_uid": uid, "diff": changes({}, after)}
    org = client.in_org(org_id)
    status, folder = org.call("GET", api_path("folders", uid), accept=(404,))
    exists = status == 200
    if state == "absent":
        if exists and not check_mode:
            org.call("DELETE", api_path("folders", uid), accept=(404,))
        before = {"uid": uid, "title": folder.get("title")} if exists else {}
        return {"changed": exists, "folder_uid": uid, "diff": changes(before, after)}

    changed = False
    if not exists:
        changed = True
        if check_mode:
            return {"changed": True, "folder_uid": uid, "diff": changes({}, after)}
        status, folder = org.call(
            "POST", "/api/folders", {"uid": uid, "title": title}, accept=(409, 412)
        )
        if status != 200:  # created meanwhile: 409 (legacy storage) or 412 (newer storage)
            changed = False
            _, folder = org.call("GET", api_path("folders", uid))
    _, items = org.call("GET", api_path("folders", uid, "permissions"))
    have = current_grants(items)
    before = {"uid": uid, "title": folder.get("title"), "permissions": describe(have)}
    if not exists:
        before = {}
    if folder.get("title") != title:
        changed = True
        if not check_mode:
            org.call(
                "PUT",
                api_path("folders", uid),
                {"title": title, "version": folder.get("version"), "overwrite": True},
            )
    if have != wanted or pending:
        changed = True
        if not check_mode and not pending:
            org.call(
                "POST", api_path("folders", uid, "permissions"), {"items": request_items(wanted)}
            )
            _, items = org.call("GET", api_path("folders", uid, "permissions"))
            if current_grants(items) != wanted:
                raise GrafanaError(
                    f"folder {uid!r} permissions are {describe(current_grants(items))} after "
                    f"the update, expected {describe(wanted)}"
                )
    return {"changed": changed, "folder_uid": uid, "diff": changes(before, after)}


ARGUMENT_SPEC = {
    "org_id": {"type": "int"},
    "uid": {"type": "str", "required": True},
    "title": {"type": "str"},
    "permissions": {"type": "list", "elements": "dict", "default": []},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, ensure_folder)


if __name__ == "__main__":
    main()
