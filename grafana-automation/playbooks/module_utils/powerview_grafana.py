"""What the PowerView Grafana modules share: the Grafana client, settings, a few lookups.

The HTTP client and its error are ``core/grafana_client.py``'s, re-exported here: the modules
and ``tsv_parser.py --check`` make the same calls the same way (basic auth, the
``X-Grafana-Org-Id`` header inside an organization, no proxy, the same timeouts and error
messages). ``core`` is found through POWERVIEW_ROOT, which the playbooks set (Ansible copies
this file, not ``core``, into each module's archive), else beside this file in a checkout
(the action plugins and the tests import it as a plain module).

The connection settings are read here, through ``core.settings``, rather than passed as task
arguments: the admin password then never becomes an Ansible variable, never reaches a log,
and follows the same rules (environment first, then ``.env``) as every other PowerView tool.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def _locate_core() -> None:
    """Put the PowerView project on ``sys.path``: POWERVIEW_ROOT, else this file's checkout."""
    candidates = [os.environ.get("POWERVIEW_ROOT", ""), str(Path(__file__).resolve().parents[3])]
    for root in candidates:
        if root and os.path.isdir(os.path.join(root, "core")):
            if root not in sys.path:
                sys.path.insert(0, root)
            return


_locate_core()
try:
    from core.grafana_client import GrafanaClient, GrafanaError, api_path
except ImportError as error:  # pragma: no cover - only outside the playbooks and the checkout
    raise ImportError(
        "POWERVIEW_ROOT does not point at the PowerView project: run these modules through "
        "the playbooks of grafana-automation/, which set it"
    ) from error

PERMISSION_LEVELS = {"View": 1, "Edit": 2, "Admin": 4}
PERMISSION_NAMES = {level: name for name, level in PERMISSION_LEVELS.items()}
ORG_ROLES = ("Viewer", "Editor", "Admin")
MAIN_ORG_ID = 1


def client_from_settings() -> GrafanaClient:
    """Build the client from GRAFANA_URL, GRAFANA_USERNAME and GRAFANA_PASSWORD as
    ``core.settings`` reads them; POWERVIEW_ROOT (set by the playbooks) locates ``core``."""
    root = os.environ.get("POWERVIEW_ROOT", "")
    if not root or not os.path.isdir(os.path.join(root, "core")):
        raise GrafanaError(
            "POWERVIEW_ROOT does not point at the PowerView project: run these modules "
            "through the playbooks of grafana-automation/, which set it"
        )
    from core.settings import SettingsError, load_settings  # noqa: PLC0415

    try:
        settings = load_settings(require=("grafana",))
    except SettingsError as error:
        raise GrafanaError(str(error)) from error
    return GrafanaClient.from_settings(settings.grafana)


def verify_server_admin(client: GrafanaClient) -> None:
    """Fail early and clearly: Grafana down, database failing, or credentials that are not a
    server admin's (only a server admin may create organizations and users)."""
    status, health = client.call("GET", "/api/health", accept=(503,))
    database = health.get("database") if isinstance(health, dict) else None
    if status != 200 or database != "ok":
        raise GrafanaError(f"Grafana at {client.url} is not healthy (database: {database})")
    _, me = client.call("GET", "/api/user")
    if not me.get("isGrafanaAdmin"):
        raise GrafanaError(
            f"Grafana user {client.username!r} is not a Grafana server admin: the playbooks "
            "need one to manage organizations and users (GRAFANA_USERNAME)"
        )


def find_org(client: GrafanaClient, name: str) -> dict[str, Any] | None:
    """The organization named exactly ``name``, or None.

    Grafana compares the name in SQL (``name = ?``): with SQLite or PostgreSQL ``ACME`` does
    not find ``acme``, with MySQL's default collation it does. An answer that differs from
    ``name`` (case included) is refused rather than acted upon: deleting ``ACME`` must never
    delete ``acme``."""
    status, org = client.call("GET", api_path("orgs", "name", name), accept=(404,))
    if status != 200:
        return None
    if org.get("name") != name:
        raise GrafanaError(
            f"Grafana answered organization {org.get('name')!r} when asked for {name!r} (its "
            "database compares names without case): company names are unique without regard "
            f"to case, so nothing was done for {name!r}"
        )
    return org


def find_team(org_client: GrafanaClient, name: str) -> dict[str, Any] | None:
    """The team named exactly ``name`` in the client's organization, or None.

    Grafana documents 404 for a name search without match while recent versions answer 200
    with an empty list: both mean "absent"."""
    status, found = org_client.call(
        "GET", "/api/teams/search", query={"name": name, "perpage": 1000}, accept=(404,)
    )
    if status == 404:
        return None
    for team in found.get("teams") or []:
        if team.get("name") == name:
            return team
    return None


def changes(before: Any, after: Any) -> dict[str, Any]:
    """The ``diff`` Ansible shows with ``--diff``."""
    return {"before": before, "after": after}


def run_module(module: Any, ensure: Any, **extra: Any) -> None:
    """Run ``ensure(client, params, check_mode, **extra)`` and report its dict, or fail with
    the GrafanaError message (never a traceback: the message says what to fix)."""
    try:
        client = client_from_settings()
        result = ensure(client, module.params, module.check_mode, **extra)
    except GrafanaError as error:
        module.fail_json(msg=str(error), status=error.status)
    module.exit_json(**result)
