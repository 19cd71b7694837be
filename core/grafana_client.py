"""The one HTTP client for Grafana: the playbooks' modules and ``tsv_parser.py --check`` use it.

Organization-level calls (``/api/orgs``, ``/api/admin``, ``/api/users``) go out with the
server admin's basic auth and no organization header. Calls inside a company's organization
add ``X-Grafana-Org-Id`` (``in_org()``) instead of switching the admin's current organization:
that choice is stored server-side, so two runs for two companies at the same time would race.
``with_token()`` authenticates with a service account token instead (only the health check
does, to try ``GRAFANA_API_TOKEN``). Grafana is reached directly, never through a proxy of the
environment, which would only add a place where the admin's basic-auth header can leak.

It lives in ``core/`` and uses the standard library only (``urllib``): the modules run under
Ansible, which ships ``module_utils/powerview_grafana.py`` to them but not ``requests``;
that file re-exports this client and adds the lookups the modules share. ``core`` is the
right home because the check needs the client without Ansible, and the modules already import
``core`` at run time (``core.settings``, through POWERVIEW_ROOT), while ``core`` importing from
``grafana-automation/`` would reach upward out of the library.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import ProxyHandler, Request, build_opener

if TYPE_CHECKING:  # the modules import this file before they may load core.settings
    from core.settings import GrafanaSettings

TIMEOUT_S = 30.0

_OPENER = build_opener(ProxyHandler({}))


class GrafanaError(Exception):
    """A Grafana call that failed; ``status`` is None when Grafana could not be reached
    (``__cause__`` then says why), ``body`` the decoded answer otherwise."""

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

    @classmethod
    def from_settings(cls, settings: GrafanaSettings, timeout: float = TIMEOUT_S) -> GrafanaClient:
        """The server admin's client (GRAFANA_URL, GRAFANA_USERNAME, GRAFANA_PASSWORD)."""
        return cls(settings.url, settings.username, settings.password, timeout)

    def in_org(self, org_id: int) -> GrafanaClient:
        """The same credentials, every request tagged with ``X-Grafana-Org-Id: org_id``."""
        bound = copy.copy(self)
        bound.org_id = int(org_id)
        return bound

    def with_token(self, token: str) -> GrafanaClient:
        """The same server, authenticated by a service account token (``Bearer``)."""
        bound = copy.copy(self)
        bound.username = "the API token"
        bound._authorization = f"Bearer {token}"
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
