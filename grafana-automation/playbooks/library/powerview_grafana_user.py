"""Ansible module: a company user, member of its company's organization and team only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_user
short_description: Ensure a Grafana user that belongs to one PowerView company only
description:
  - Creates the user when missing, inside the company organization (Grafana otherwise puts a
    new user in the main organization), with the given role, in the company team, and
    removes it from every other organization, so it sees one company only.
  - A password is only set when the user is created. When none is given, a random one
    (24 URL-safe characters, about 144 bits) is generated and written to C(password_file),
    mode 0600, never printed.
  - Refuses to manage a Grafana server admin, and refuses to delete a user that also
    belongs to another organization.
options:
  login: {description: Login of the user., type: str, required: true}
  email: {description: Email; empty lets Grafana use the login., type: str, default: ""}
  name: {description: Display name; defaults to the login., type: str}
  org_id: {description: Company organization id; null means only planned (check mode)., type: int}
  team_id: {description: Company team id; null means only planned or no team., type: int}
  role: {description: Viewer or Editor., type: str, default: Viewer}
  password: {description: Initial password; generated when empty., type: str, no_log: true}
  password_file: {description: Where a generated password is written (mode 0600)., type: path}
  state: {description: present or absent., type: str, default: present}
"""

RETURN = r"""
user_id: {description: Id of the user (null when absent or only planned)., type: int}
password_file:
  description: File holding the generated password, when one was generated.
  type: str
"""

import os  # noqa: E402
import secrets  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    run_module,
)

COMPANY_ROLES = ("Viewer", "Editor")


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def write_secret_file(path: str, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by its owner only; never follow a symlink."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, (secret + "\n").encode("utf-8"))
    finally:
        os.close(descriptor)


def lookup_user(client: GrafanaClient, login: str) -> dict | None:
    status, user = client.call(
        "GET", "/api/users/lookup", query={"loginOrEmail": login}, accept=(404,)
    )
    return user if status == 200 else None


def memberships(client: GrafanaClient, user_id: int) -> dict[int, str]:
    _, orgs = client.call("GET", api_path("users", user_id, "orgs"))
    return {int(org["orgId"]): org["role"] for org in orgs}


def ensure_user(client: GrafanaClient, params: dict, check_mode: bool) -> dict:
    """Create, re-scope or delete the company user ``params["login"]``."""
    login, state, org_id = params["login"], params["state"], params["org_id"]
    role, team_id = params.get("role") or "Viewer", params.get("team_id")
    if role not in COMPANY_ROLES:
        raise GrafanaError(f"role must be one of {COMPANY_ROLES}, not {role!r}")
    user = lookup_user(client, login)
    if user is not None and user.get("isGrafanaAdmin"):
        raise GrafanaError(
            f"{login!r} is a Grafana server admin: refusing to manage it as a company user"
        )
    result: dict = {"user_id": user["id"] if user else None, "password_file": None}
    before_orgs = memberships(client, user["id"]) if user else {}
    before = {"login": login, "organizations": before_orgs} if user else {}

    if state == "absent":
        others = sorted(set(before_orgs) - {org_id})
        if others:
            raise GrafanaError(
                f"{login!r} also belongs to organizations {others}: refusing to delete it"
            )
        if user is not None and not check_mode:
            client.call("DELETE", api_path("admin", "users", user["id"]), accept=(404,))
        return {**result, "changed": user is not None, "diff": changes(before, {})}

    after = {"login": login, "organizations": {org_id: role} if org_id else "(planned)"}
    if org_id is None:  # organization only planned (check mode): everything would change
        return {**result, "changed": True, "diff": changes(before, after)}
    changed = False
    if user is None:
        changed = True
        if check_mode:
            return {**result, "changed": True, "diff": changes(before, after)}
        password = params.get("password") or ""
        generated = not password
        if generated:
            if not params.get("password_file"):
                raise GrafanaError("password_file is required when no password is given")
            password = generate_password()
        body = {
            "login": login,
            "email": params.get("email") or "",
            "name": params.get("name") or login,
            "password": password,
            "orgId": org_id,
        }
        status, _ = client.call("POST", "/api/admin/users", body, accept=(412,))
        if status == 412:  # created meanwhile by a parallel run: keep its password
            changed, generated = False, False
        if generated:
            write_secret_file(params["password_file"], password)
            result["password_file"] = params["password_file"]
        user = lookup_user(client, login)
        if user is None:
            raise GrafanaError(f"user {login!r} was created but cannot be looked up")
        result["user_id"] = user["id"]
    user_id = int(user["id"])
    orgs = memberships(client, user_id)
    org_users = api_path("orgs", org_id, "users")
    if org_id not in orgs:
        changed = True
        if not check_mode:
            status, _ = client.call(
                "POST", org_users, {"loginOrEmail": login, "role": role}, accept=(409,)
            )
            if status == 409:
                client.call("PATCH", api_path("orgs", org_id, "users", user_id), {"role": role})
    elif orgs[org_id] != role:
        changed = True
        if not check_mode:
            client.call("PATCH", api_path("orgs", org_id, "users", user_id), {"role": role})
    for other in sorted(set(orgs) - {org_id}):  # e.g. the main organization from auto-assign
        changed = True
        if not check_mode:
            client.call("DELETE", api_path("orgs", other, "users", user_id), accept=(404,))
    if team_id is not None:
        org = client.in_org(org_id)
        _, members = org.call("GET", api_path("teams", team_id, "members"))
        if user_id not in {int(member["userId"]) for member in members}:
            changed = True
            if not check_mode:
                org.call(
                    "POST",
                    api_path("teams", team_id, "members"),
                    {"userId": user_id},
                    accept=(400,),
                )
    return {**result, "changed": changed, "diff": changes(before, after)}


ARGUMENT_SPEC = {
    "login": {"type": "str", "required": True},
    "email": {"type": "str", "default": ""},
    "name": {"type": "str"},
    "org_id": {"type": "int"},
    "team_id": {"type": "int"},
    "role": {"type": "str", "default": "Viewer", "choices": list(COMPANY_ROLES)},
    "password": {"type": "str", "no_log": True},
    "password_file": {"type": "path", "no_log": False},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, ensure_user)


if __name__ == "__main__":
    main()
