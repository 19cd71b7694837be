"""What the PowerView Grafana modules share: one HTTP client, its error, and a few lookups.

Organization-level calls (``/api/orgs``, ``/api/admin``, ``/api/users``) go out with the
server admin's basic auth and no organization header. Calls inside a company's organization
add ``X-Grafana-Org-Id`` instead of switching the admin's current organization: that choice
is stored server-side, so two runs for two companies at the same time would race.

The connection settings are read here, through ``core.settings``, rather than passed as task
arguments: the admin password then never becomes an Ansible variable, never reaches a log,
and follows the same rules (environment first, then ``.env``) as every other PowerView tool.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import sys
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import ProxyHandler, Request, build_opener

PERMISSION_LEVELS = {"View": 1, "Edit": 2, "Admin": 4}
PERMISSION_NAMES = {level: name for name, level in PERMISSION_LEVELS.items()}
ORG_ROLES = ("Viewer", "Editor", "Admin")
TIMEOUT_S = 30.0
MAIN_ORG_ID = 1

# Grafana is reached directly (same host or container network): a proxy from the environment
# would only add a place where the admin's basic-auth header can leak.
_OPENER = build_opener(ProxyHandler({}))


class GrafanaError(Exception):
    """A Grafana call that failed; ``status`` is None when Grafana could not be reached."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def api_path(*segments: object) -> str:
    """``api_path("orgs", "name", "a b")`` -> ``/api/orgs/name/a%20b``: every segment quoted."""
    return "/api/" + "/".join(quote(str(segment), safe="") for segment in segments)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message") or payload.get("error") or payload)
    return str(payload)[:300]


class GrafanaClient:
    """Basic-auth JSON client; ``in_org()`` gives a copy bound to one organization."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        timeout: float = TIMEOUT_S,
        org_id: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._authorization = "Basic " + token
        self.timeout = timeout
        self.org_id = org_id

    def in_org(self, org_id: int) -> GrafanaClient:
        """The same credentials, every request tagged with ``X-Grafana-Org-Id: org_id``."""
        bound = copy.copy(self)
        bound.org_id = int(org_id)
        return bound

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """Send one request; return ``(status, decoded body)`` for a 2xx status or one listed
        in ``accept`` (how callers treat "not found" or "already exists" as an answer), and
        raise GrafanaError with an actionable message otherwise."""
        url = self.url + path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json", "Authorization": self._authorization}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.org_id is not None:
            headers["X-Grafana-Org-Id"] = str(self.org_id)
        request = Request(url, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, _decode(response.read())
        except HTTPError as error:
            status, payload = error.code, _decode(error.read())
        except (URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GrafanaError(
                f"Grafana is unreachable at {self.url} ({reason}): check GRAFANA_URL and that "
                "Grafana is running"
            ) from error
        if status in accept:
            return status, payload
        raise GrafanaError(self._explain(method, path, status, payload), status, payload)

    def _explain(self, method: str, path: str, status: int, payload: Any) -> str:
        if status == 401:
            return (
                f"Grafana refused the credentials of {self.username!r} (HTTP 401 on {method} "
                f"{path}): check GRAFANA_USERNAME and GRAFANA_PASSWORD"
            )
        if status == 403:
            return (
                f"Grafana user {self.username!r} may not {method} {path} (HTTP 403: "
                f"{_message(payload)}): the playbooks need a Grafana server admin"
            )
        return f"{method} {path} failed with HTTP {status}: {_message(payload)}"


def client_from_settings() -> GrafanaClient:
    """Build the client from GRAFANA_URL, GRAFANA_USERNAME and GRAFANA_PASSWORD as
    ``core.settings`` reads them; POWERVIEW_ROOT (set by the playbooks) locates ``core``."""
    root = os.environ.get("POWERVIEW_ROOT", "")
    if not root or not os.path.isdir(os.path.join(root, "core")):
        raise GrafanaError(
            "POWERVIEW_ROOT does not point at the PowerView project: run these modules "
            "through the playbooks of grafana-automation/, which set it"
        )
    if root not in sys.path:
        sys.path.insert(0, root)
    from core.settings import SettingsError, load_settings  # noqa: PLC0415

    try:
        settings = load_settings(require=("grafana",))
    except SettingsError as error:
        raise GrafanaError(str(error)) from error
    return GrafanaClient(
        settings["GRAFANA_URL"], settings["GRAFANA_USERNAME"], settings["GRAFANA_PASSWORD"]
    )


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
