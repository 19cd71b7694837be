"""Ansible module: a company user, member of its company's organization and team only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_user
short_description: Ensure a Grafana user that belongs to one PowerView company only
description:
  - Creates the user when missing, inside the company organization (Grafana otherwise puts a
    new user in the main organization), with the given role, in the company team, and
    removes it from the main organization, so it sees one company only.
  - A user is never moved between companies. Grafana finds logins and emails without regard
    to case, so C(ALICE) or C(alice@x) may name another company's C(alice); a user (found by
    login or by email) that belongs to any organization but the company's and the main one is
    refused with a message naming that organization, unless C(move_from) names exactly it,
    and then that membership (and with it the user's teams there) is removed and reported.
  - A password is only set when the user is created. When none is given, a random one
    (24 URL-safe characters, about 144 bits) is generated and written to C(password_file),
    mode 0600, in a folder only its owner can open (created 0700); an existing file is never
    overwritten (the run fails before creating the user), and nothing is ever printed.
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
  move_from:
    description:
      - Name of the company (organization) the user may be moved out of; empty refuses any move.
    type: str
    default: ""
  state: {description: present or absent., type: str, default: present}
"""

RETURN = r"""
user_id: {description: Id of the user (null when absent or only planned)., type: int}
password_file:
  description: File holding the generated password, when one was generated.
  type: str
removed_from:
  description: Organizations (name and role) the user was removed from.
  type: list
"""

import os  # noqa: E402
import secrets  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    MAIN_ORG_ID,
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    run_module,
)

COMPANY_ROLES = ("Viewer", "Editor")


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _missing_dirs(directory: str) -> list[str]:
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return list(reversed(missing))


def check_secret_file(path: str) -> None:
    """Refuse a password file that exists already, or a folder others may open."""
    if os.path.lexists(path):
        raise GrafanaError(
            f"password file {path} already exists: a password file is never overwritten; "
            "move it away (or give another user_password_file) and run again; nothing was "
            "created"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(directory):
        mode = stat.S_IMODE(os.stat(directory).st_mode)
        if not os.path.isdir(directory) or mode & 0o077:
            raise GrafanaError(
                f"the folder of password file {path} is open to other users (mode "
                f"{mode:04o}): use a folder only its owner can open (chmod 700 {directory}); "
                "nothing was created"
            )


def write_secret_file(path: str, secret: str) -> None:
    """Write ``secret`` to a new file ``path`` readable by its owner only, in a folder only its
    owner can open; never follow a symlink, never replace an existing file."""
    check_secret_file(path)
    for directory in _missing_dirs(os.path.dirname(os.path.abspath(path))):
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)  # whatever the umask
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, (secret + "\n").encode("utf-8"))
    finally:
        os.close(descriptor)


def lookup_user(client: GrafanaClient, login_or_email: str) -> dict | None:
    """The user whose login or email is ``login_or_email``; Grafana 12 compares both without
    regard to case (it stores them lowercased)."""
    status, user = client.call(
        "GET", "/api/users/lookup", query={"loginOrEmail": login_or_email}, accept=(404,)
    )
    return user if status == 200 else None


def organizations_of(client: GrafanaClient, user_id: int) -> dict[int, dict]:
    """``{org id: {"name", "role"}}`` of every organization the user belongs to."""
    _, orgs = client.call("GET", api_path("users", user_id, "orgs"))
    return {int(org["orgId"]): {"name": org["name"], "role": org["role"]} for org in orgs}


def memberships(client: GrafanaClient, user_id: int) -> dict[int, str]:
    return {org_id: org["role"] for org_id, org in organizations_of(client, user_id).items()}


def find_user(client: GrafanaClient, login: str, email: str) -> dict | None:
    """The user named by ``login``, refusing an ``email`` that is another user's."""
    user = lookup_user(client, login)
    if email:
        by_email = lookup_user(client, email)
        if by_email is not None and (user is None or by_email["id"] != user["id"]):
            orgs = organizations_of(client, int(by_email["id"]))
            companies = [o["name"] for i, o in sorted(orgs.items()) if i != MAIN_ORG_ID]
            owner = f" of company {companies[0]!r}" if companies else ""
            raise GrafanaError(
                f"email {email!r} already belongs to Grafana user {by_email['login']!r}{owner} "
                f"(emails are compared without case): refusing to give it to {login!r}"
            )
    return user


def foreign_companies(orgs: dict[int, dict], org_id: int | None) -> dict[int, dict]:
    """The organizations of a user that are neither the company's nor the main one."""
    return {i: o for i, o in orgs.items() if i not in (org_id, MAIN_ORG_ID)}


def refuse_foreign(login: str, user: dict, foreign: dict[int, dict], doing: str) -> None:
    names = ", ".join(repr(o["name"]) for _, o in sorted(foreign.items()))
    found = "" if user["login"] == login else f" (Grafana user {user['login']!r})"
    raise GrafanaError(
        f"login {login!r}{found} belongs to company {names}: refusing to {doing}; a user is "
        "never moved between companies (pick another login, or move it explicitly with "
        f"move_from_company={next(iter(sorted(foreign.items())))[1]['name']})"
    )


def ensure_user(client: GrafanaClient, params: dict, check_mode: bool) -> dict:
    """Create, re-scope or delete the company user ``params["login"]``."""
    login, state, org_id = params["login"], params["state"], params["org_id"]
    role, team_id = params.get("role") or "Viewer", params.get("team_id")
    move_from = params.get("move_from") or ""
    if role not in COMPANY_ROLES:
        raise GrafanaError(f"role must be one of {COMPANY_ROLES}, not {role!r}")
    user = find_user(client, login, params.get("email") or "")
    if user is not None and user.get("isGrafanaAdmin"):
        raise GrafanaError(
            f"{login!r} is a Grafana server admin: refusing to manage it as a company user"
        )
    result: dict = {
        "user_id": user["id"] if user else None,
        "password_file": None,
        "removed_from": [],
    }
    before_orgs = organizations_of(client, user["id"]) if user else {}
    before = (
        {"login": login, "organizations": {i: o["role"] for i, o in before_orgs.items()}}
        if user
        else {}
    )

    if state == "absent":
        others = {i: o for i, o in before_orgs.items() if i != org_id}
        if others:
            names = ", ".join(f"{o['name']!r} (id {i})" for i, o in sorted(others.items()))
            raise GrafanaError(
                f"{login!r} also belongs to organizations {names}: refusing to delete it"
            )
        if user is not None and not check_mode:
            client.call("DELETE", api_path("admin", "users", user["id"]), accept=(404,))
        return {**result, "changed": user is not None, "diff": changes(before, {})}

    foreign = foreign_companies(before_orgs, org_id)
    moved = {i: o for i, o in foreign.items() if o["name"] == move_from}
    if user is not None and len(moved) < len(foreign):
        refuse_foreign(
            login, user, {i: o for i, o in foreign.items() if i not in moved}, "add it here"
        )
    if move_from and not moved and (user is None or org_id not in before_orgs):
        raise GrafanaError(
            f"move_from_company={move_from}: {login!r} is not a member of organization "
            f"{move_from!r}, so there is nothing to move"
        )
    after = {"login": login, "organizations": {org_id: role} if org_id else "(planned)"}
    if org_id is None:  # organization only planned (check mode): everything would change
        return {**result, "changed": True, "diff": changes(before, after)}
    changed = False
    if user is None:
        changed = True
        password = params.get("password") or ""
        generated = not password
        if generated:
            if not params.get("password_file"):
                raise GrafanaError("password_file is required when no password is given")
            check_secret_file(params["password_file"])
        if check_mode:
            return {**result, "changed": True, "diff": changes(before, after)}
        if generated:
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
        foreign = foreign_companies(organizations_of(client, int(user["id"])), org_id)
        if foreign:  # the parallel run was for another company
            refuse_foreign(login, user, foreign, "add it here")
    user_id = int(user["id"])
    orgs = memberships(client, user_id)
    org_users = api_path("orgs", org_id, "users")
    if org_id not in orgs:
        changed = True
        if not check_mode:
            status, _ = client.call(
                "POST", org_users, {"loginOrEmail": user["login"], "role": role}, accept=(409,)
            )
            if status == 409:
                client.call("PATCH", api_path("orgs", org_id, "users", user_id), {"role": role})
    elif orgs[org_id] != role:
        changed = True
        if not check_mode:
            client.call("PATCH", api_path("orgs", org_id, "users", user_id), {"role": role})
    # The main organization (auto-assign) and, when asked, the company it is moved from.
    for other in sorted(set(orgs) - {org_id}):
        changed = True
        name = before_orgs.get(other, {}).get("name", str(other))
        result["removed_from"].append({"organization": name, "id": other, "role": orgs[other]})
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
    "move_from": {"type": "str", "default": ""},
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
