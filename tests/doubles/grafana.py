"""A stateful test double of Grafana's HTTP API, served over real HTTP on 127.0.0.1.

No Grafana can run where PowerView is built, yet the playbooks must be tested against
something that answers as Grafana does, and the isolation between companies must be proved
on something that decides visibility as Grafana does. This double keeps organizations,
users, memberships, teams, folders, dashboards, data sources and their permissions, and
answers the calls the playbooks make plus those a company user's browser makes
(``/api/search``, ``/api/folders``, ``/api/frontend/settings``, ``/api/ds/query``...).

Behaviour follows Grafana 12.3.1, the version ``docker-compose.yml`` pins. Each rule below
names the Grafana source file behind it (paths under ``pkg/`` unless they start with ``apps/``),
read through the stored code index (the v12.3.1 snapshot is too large to fetch here), and says
which version of that file was read: **12** is a file holding code that exists only in 11.x/12.x
(unified storage ``legacysql``/``dualwrite``, k8s ``apps/`` APIs, ``dashboardaccess``...),
**old** a file whose only stored versions predate 11.x (the rule is then assumed unchanged).

=====================================================  ========================================
rule                                                   source (version read)
=====================================================  ========================================
every call but ``/api/health`` needs basic auth:       ``services/authn/clients/basic.go``
401 ``Invalid username or password``                   (not re-read)
the organization of a call is ``?targetOrgId=``, else  ``services/authn/authnimpl/service.go``
``X-Grafana-Org-Id``, else the user's current one; a   (``orgIDFromRequest``: query first, then
non-member gets 403                                    the header, 12); 403 is the double's
                                                       choice, see note 1
``/api/orgs``, ``/api/admin``, ``/api/users`` need a   ``api/api.go`` (route table,
server admin (403 otherwise)                           ``reqGrafanaAdmin``; not re-read)
``GET /api/orgs``: ``perpage`` <= 0 or absent means    ``api/org.go`` (``SearchOrgs``, 12),
1000; ``page`` counts from **0** (``LIMIT perpage      ``services/org/orgimpl/store.go``
OFFSET perpage*page``: ``page=1`` is the second page,  (``Search``, 12). The API docs' "page
whatever the docs say); ``query`` is ``name LIKE       default 1" contradicts the source
'q%'``, ``name`` is ``name = ?``
organization names are compared by the database:       ``orgimpl/store.go`` (``isOrgNameTaken``,
``name = ?`` finds ``ACME`` for ``acme`` with MySQL's  ``GetByName``, 12): plain ``name=?``, no
default collation, not with SQLite or PostgreSQL       lowering, no unique check in Go beyond
(``Settings.database``); stored as given               that query
``POST /api/orgs``: 409 ``Organization name taken``;   ``api/org.go`` (``CreateOrg``, 12),
the creator becomes an Admin of the new org            ``orgimpl/store.go`` (``CreateWithMember``,
                                                       12)
``DELETE /api/orgs/:id`` deletes memberships, teams,   ``orgimpl/store.go`` (``Delete``, 12:
data sources, and (delete renderers) folders and       ``org_user``, ``team``, ``data_source``...
dashboards                                             tables, then registered renderers)
lookups by ``loginOrEmail`` (``/api/users/lookup``,    ``services/user/userimpl/store.go``
``POST /api/orgs/:id/users``, sign-in) lowercase the   (``GetByLogin``, 12); stored lowercase:
input; with an ``@`` the email column is tried first,  ``userimpl/user.go`` and migration
then the login; without one, the login only. Logins    ``usermig/user_lowercase_login_and_email``
and emails are stored lowercased                       (not re-read)
``POST /api/admin/users``: login and email trimmed;    ``api/admin_users.go``
412 ``User with email '…' or username '…' already      (``AdminCreateUser``, 12-era
exists``; ``auto_assign_org`` (default on) puts the    ``contextmodel`` version),
user in ``orgId`` when given, else                     ``services/org/orgimpl/org.go``
``auto_assign_org_id`` (1), role                       (``GetIDForNewUser``; not re-read)
``auto_assign_org_role`` (Viewer); off: a new
organization named after the user, user Admin
``POST /api/orgs/:id/users``: 409 already member,      ``api/org_users.go``
404 ``User not found``, 400 invalid role               (``addOrgUserHelper``, old)
removing the last Admin of an organization, or         ``orgimpl/store.go``
demoting it: 400                                       (``validateOneAdminLeftInOrg``; not re-read)
removing a member drops its team memberships there     ``orgimpl/store.go`` (``RemoveOrgUser``;
                                                       not re-read)
``POST /api/teams`` adds its creator as team Admin;    ``services/team/teamapi/team.go``
409 ``Team name taken``; search by ``name`` without    (``createTeam``, ``searchTeams``; not
a match answers 200 with no teams                      re-read)
``POST /api/folders``: title trimmed; empty: 400       ``services/folder/folderimpl/folder.go``
``folder title cannot be empty``; ``General`` in any   (``CreateLegacy``,
case (the root folder's name): 400 ``A folder with     ``buildSaveDashboardCommand``: ``EqualFold
that name already exists``; the uid of an existing     (title, RootFolderName)``, 12),
folder: 412 ``version-mismatch``; of a dashboard: 400  ``registry/apis/folders/legacy_storage.go``
``Dashboard cannot be changed to a folder``; titles    (``Create`` -> ``CreateLegacy``, 12),
are **not** unique (no same-name check in 12)          ``api/apierrors/folder.go`` (12),
                                                       ``services/dashboards/errors.go`` (12: no
                                                       ``ErrFolderSameNameExists`` left)
a renamed folder follows the same title rules          ``folderimpl/folder.go`` (``legacyUpdate``,
                                                       12)
``POST /api/dashboards/db``: title trimmed, empty:     ``services/dashboards/service/
400; a stored uid with another ``version`` and no      dashboard_service.go``
``overwrite``: 412 ``version-mismatch``; the uid of a  (``BuildSaveDashboardCommand``,
folder: 400 ``Dashboard cannot be changed to a         ``ValidateDashboardBeforeSave``, 12),
folder``; unknown ``folderUid``: 400; the same title   ``services/dashboards/database/
twice in a folder is **allowed** (12 has no            database.go`` (12),
``name-exists`` check)                                 ``api/apierrors/dashboard.go`` (12)
``GET /api/dashboards/uid/:uid`` answers the JSON as   ``services/dashboards/service/client/
saved: no ``schemaVersion`` migration (the legacy API  client.go`` (``K8sClientWithFallback``
reads through the ``v0alpha1`` client, which           reads ``dashboardv0.VERSION``, 12); the
converts nothing)                                      migration runs only in v0 -> v1
                                                       conversion (``apps/dashboard/pkg/apis/
                                                       dashboard/v1beta1/conversion.go``, 12)
a new top-level folder gets creator Admin, Editor      ``api/folder.go``,
Edit, Viewer View; a dashboard in a folder only its    ``services/dashboards/service/
creator's Admin; ``POST .../permissions`` replaces     dashboard_service.go``
the whole list                                         (``setDefaultPermissions``; not re-read),
                                                       ``api/dashboard_permission.go``
org Admins see everything in their organization;       ``services/accesscontrol``
others need a grant on the folder or dashboard         (folder/dashboard scopes; not re-read)
any member may query any data source of its            ``services/datasources/guardian``
organization (permissions are Enterprise only)         (OSS allows all; not re-read)
``GET /api/datasources/uid/:uid/health``: 200 OK,      ``api/datasources.go``
400 when the plugin reports an error, **500**          (``CheckDatasourceHealthWithUID``, 12-era
``Unable to load datasource metadata`` when the        ``SkipDSCache`` version; the same 500 in
data source does not exist (not 404)                   every version read, 7.x on)
data source create: 409 on a taken name or uid         ``services/datasources/service/
                                                       datasource.go`` (not re-read)
=====================================================  ========================================

What differs from Grafana 11.x, which the double imitated before: the ``version`` of
``/api/health`` and ``buildInfo``; logins and emails lowercased when created; folder and
dashboard titles no longer unique (the older versions read, 9.x/10.x ``dashboards/models.go``
and ``database.go``, refused a second dashboard of the same title in a folder with 412
``name-exists`` and a second root folder of the same title); ``page`` of ``/api/orgs`` from 0
(the double counted it from 1). The 500 of a
missing data source's health is *not* new: every version read answers it. Organization name
lookups are unchanged (the database decides), which is why the project never relies on them
and lists organizations instead.

Note 1: Grafana resolves a user sending the header of an organization it is not a member of
with no organization role; the exact status is not documented, so the double picks 403.

The HTTP side (threads, reading requests, writing answers, the queue of injected faults) is
``tests.doubles.http_base``'s; this module keeps Grafana's rules. Every request is recorded
(``requests``) in the shape ``tests.contracts.openapi_check`` checks, and an optional
``contract`` checks each one as it arrives: a request Grafana's API description does not allow
is answered 400 and listed in ``contract_problems``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote
from urllib.request import ProxyHandler, Request, build_opener

from tests.doubles.http_base import (
    Fault,
    FaultQueue,
    HttpAnswer,
    HttpDouble,
    HttpRequest,
    RecordedRequest,
    copy_state,
    json_answer,
)

ROLE_RANK = {"Viewer": 1, "Editor": 2, "Admin": 3}
PERMISSION_NAMES = {1: "View", 2: "Edit", 4: "Admin"}
UID_PATTERN = re.compile(r"[A-Za-z0-9_-]*")
UID_MAX_LENGTH = 40
MAIN_ORG_NAME = "Main Org."
ROOT_FOLDER_NAME = "General"
VERSION = "12.3.1"
_OPENER = build_opener(ProxyHandler({}))


class ApiError(Exception):
    """An error answer: HTTP status and a Grafana-style JSON body."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = code
        self.body = {"message": message, **extra}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _short_uid() -> str:
    return secrets.token_hex(7)


def _check_folder_title(title: str) -> None:
    """The root folder's name is taken, in any case (``RootFolderName``)."""
    if title.lower() == ROOT_FOLDER_NAME.lower():
        raise ApiError(400, "A folder with that name already exists")


def _check_uid(uid: str) -> None:
    if len(uid) > UID_MAX_LENGTH:
        raise ApiError(400, "uid too long, max 40 characters")
    if not UID_PATTERN.fullmatch(uid):
        raise ApiError(400, "uid contains illegal characters")


# --------------------------------------------------------------------------- state


@dataclass
class User:
    id: int
    uid: str
    login: str
    email: str
    name: str
    password: str
    is_admin: bool = False
    org_id: int = 0  # the current organization, where the UI lands


@dataclass
class Org:
    id: int
    name: str


@dataclass
class Team:
    id: int
    uid: str
    org_id: int
    name: str
    email: str
    members: dict[int, int] = field(default_factory=dict)  # user id -> 0 member, 4 admin


@dataclass
class Item:
    """A folder or a dashboard: Grafana keeps both in one table, so their uids share one
    namespace per organization."""

    id: int
    uid: str
    org_id: int
    title: str
    is_folder: bool
    folder_uid: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    acl: dict[tuple[str, Any], int] = field(default_factory=dict)  # (kind, who) -> level
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)


@dataclass
class DataSource:
    id: int
    uid: str
    org_id: int
    name: str
    type: str
    access: str = "proxy"
    url: str = ""
    is_default: bool = False
    basic_auth: bool = False
    json_data: dict[str, Any] = field(default_factory=dict)
    secure_json_data: dict[str, str] = field(default_factory=dict)
    version: int = 1


@dataclass
class Settings:
    """The few ``grafana.ini`` settings the double honours (Grafana's defaults)."""

    admin_login: str = "admin"
    admin_password: str = "admin-password"
    auto_assign_org: bool = True
    auto_assign_org_id: int = 1
    auto_assign_org_role: str = "Viewer"
    # Grafana's database: "sqlite3" (the default) and "postgres" compare organization names
    # exactly, "mysql" (default collation) without regard to case.
    database: str = "sqlite3"


class GrafanaState:
    """Everything the server stores, behind one lock."""

    def __init__(self, settings: Settings) -> None:
        self.lock = threading.RLock()
        self.settings = settings
        self._ids: dict[str, int] = {}
        self.orgs: dict[int, Org] = {}
        self.users: dict[int, User] = {}
        self.members: dict[tuple[int, int], str] = {}  # (org id, user id) -> role
        self.teams: dict[int, Team] = {}
        self.items: dict[int, Item] = {}
        self.datasources: dict[int, DataSource] = {}
        main = self.add_org(MAIN_ORG_NAME)
        admin = self.add_user(settings.admin_login, "admin@localhost", settings.admin_password)
        admin.is_admin = True
        admin.org_id = main.id
        self.members[(main.id, admin.id)] = "Admin"

    def next_id(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    # ---- organizations and users

    def add_org(self, name: str) -> Org:
        org = Org(self.next_id("org"), name)
        self.orgs[org.id] = org
        return org

    def org_by_name(self, name: str) -> Org | None:
        """``WHERE name = ?``, as the configured database compares it."""
        if self.settings.database == "mysql":
            return next((o for o in self.orgs.values() if o.name.lower() == name.lower()), None)
        return next((o for o in self.orgs.values() if o.name == name), None)

    def add_user(self, login: str, email: str, password: str, name: str = "") -> User:
        login, email = login.lower(), (email or login).lower()  # Grafana 12 stores them so
        user = User(self.next_id("user"), _short_uid(), login, email, name or login, password)
        self.users[user.id] = user
        return user

    def user_by_login(self, login_or_email: str) -> User | None:
        """``GetByLogin``: the input lowercased; with an ``@``, the email column first, then
        (and otherwise only) the login column."""
        wanted = login_or_email.lower()
        if not wanted:
            return None
        if "@" in wanted:
            by_email = next((u for u in self.users.values() if u.email == wanted), None)
            if by_email is not None:
                return by_email
        return next((u for u in self.users.values() if u.login == wanted), None)

    def orgs_of(self, user_id: int) -> dict[int, str]:
        return {org: role for (org, uid), role in self.members.items() if uid == user_id}

    def admins_of(self, org_id: int) -> list[int]:
        return [
            uid for (org, uid), role in self.members.items() if org == org_id and role == "Admin"
        ]

    def remove_member(self, org_id: int, user_id: int) -> None:
        """Drop a membership; the user's current organization moves to another one of its
        organizations (or none), and its memberships of that organization's teams go."""
        self.members.pop((org_id, user_id), None)
        for team in self.teams.values():
            if team.org_id == org_id:
                team.members.pop(user_id, None)
        user = self.users.get(user_id)
        if user is not None and user.org_id == org_id:
            remaining = sorted(self.orgs_of(user_id))
            user.org_id = remaining[0] if remaining else 0

    def delete_org(self, org_id: int) -> None:
        for org, user_id in [key for key in self.members if key[0] == org_id]:
            self.remove_member(org, user_id)
        self.teams = {k: t for k, t in self.teams.items() if t.org_id != org_id}
        self.items = {k: i for k, i in self.items.items() if i.org_id != org_id}
        self.datasources = {k: d for k, d in self.datasources.items() if d.org_id != org_id}
        del self.orgs[org_id]

    # ---- what a user may see

    def team_ids_of(self, user_id: int, org_id: int) -> set[int]:
        return {t.id for t in self.teams.values() if t.org_id == org_id and user_id in t.members}

    def _acl_level(self, item: Item, user: User, role: str, teams: set[int]) -> int:
        level = 0
        for (kind, who), granted in item.acl.items():
            if (
                (kind == "user" and who == user.id)
                or (kind == "team" and who in teams)
                or (kind == "role" and ROLE_RANK.get(role, 0) >= ROLE_RANK.get(who, 9))
            ):
                level = max(level, granted)
        return level

    def level(self, item: Item, user: User, org_id: int) -> int:
        """The permission level (0, 1 View, 2 Edit, 4 Admin) ``user`` has on ``item``."""
        role = self.members.get((org_id, user.id), "")
        if role == "Admin":
            return 4
        teams = self.team_ids_of(user.id, org_id)
        level = self._acl_level(item, user, role, teams)
        if not item.is_folder and item.folder_uid:
            folder = self.item_by_uid(org_id, item.folder_uid)
            if folder is not None:
                level = max(level, self._acl_level(folder, user, role, teams))
        return level

    def item_by_uid(self, org_id: int, uid: str) -> Item | None:
        return next((i for i in self.items.values() if i.org_id == org_id and i.uid == uid), None)

    def datasource_by(self, org_id: int, **wanted: Any) -> DataSource | None:
        for datasource in self.datasources.values():
            if datasource.org_id == org_id and all(
                getattr(datasource, key) == value for key, value in wanted.items()
            ):
                return datasource
        return None


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class Call:
    """One request as the handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    params: dict[str, str] = field(default_factory=dict)
    user: User | None = None
    org_id: int = 0
    role: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if not self.raw:
            raise ApiError(400, "bad request data")
        try:
            return json.loads(self.raw)
        except ValueError as error:
            raise ApiError(400, "bad request data") from error

    def body(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise ApiError(400, "bad request data")
        return data

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError as error:
            raise ApiError(400, f"{name} is invalid") from error


def _field(body: dict[str, Any], name: str, default: Any = None) -> Any:
    """A JSON member looked up case-insensitively, as Go's encoding/json does."""
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return default


Route = tuple[str, re.Pattern[str], str, Callable[..., Any]]


class GrafanaDouble(HttpDouble):
    """The server, its state and its request log; see the module docstring."""

    name = "grafana-double"
    methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})  # HEAD: the library's 501

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        contract: Any = None,
        **settings: Any,
    ) -> None:
        super().__init__(host, port)
        self.settings = Settings(**settings)
        self.state = GrafanaState(self.settings)
        self.contract = contract
        self.contract_problems: list[str] = []
        self._requests: list[RecordedRequest] = []
        self._log_lock = threading.Lock()
        self._faults = FaultQueue()
        self._routes = self._route_table()

    @property
    def admin_login(self) -> str:
        return self.settings.admin_login

    @property
    def admin_password(self) -> str:
        return self.settings.admin_password

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._requests)

    def clear_log(self) -> None:
        with self._log_lock:
            self._requests.clear()

    def fail_next(self, method: str, path: str, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` ``method path`` requests with ``status`` and change
        nothing, as a Grafana that fails half-way through a run would."""

        def matches(request: HttpRequest) -> bool:
            return request.method == method and unquote(request.path) == path

        self._faults.add(Fault(status, count, matches))

    def copy(self) -> GrafanaDouble:
        """A double, not started, holding a copy of this one's state and request log (the
        same contract and settings), but none of its faults."""
        twin = GrafanaDouble(host=self.host, contract=self.contract, **asdict(self.settings))
        with self.state.lock:
            twin.state = copy_state(self.state)
        twin.state.settings = twin.settings
        with self._log_lock:
            twin._requests = list(self._requests)
            twin.contract_problems = list(self.contract_problems)
        return twin

    # ---- set-up and inspection helpers for tests

    def create_user(self, login: str, password: str, org_roles: dict[int, str]) -> int:
        """A user made directly (no HTTP), member of ``org_roles``; returns its id."""
        with self.state.lock:
            user = self.state.add_user(login, "", password)
            for org_id, role in org_roles.items():
                self.state.members[(org_id, user.id)] = role
            user.org_id = min(org_roles) if org_roles else 0
            return user.id

    def snapshot(self) -> dict[str, Any]:
        """Everything stored, as plain data: tests compare two snapshots to prove that a
        run (``--check``, a refused name) changed nothing."""
        with self.state.lock:
            state = self.state
            return json.loads(
                json.dumps(
                    {
                        "orgs": {o.id: o.name for o in state.orgs.values()},
                        "users": {
                            u.login: [u.email, u.is_admin, u.org_id] for u in state.users.values()
                        },
                        "members": sorted(
                            [org, user, role] for (org, user), role in state.members.items()
                        ),
                        "teams": {
                            t.id: [t.org_id, t.name, t.members] for t in state.teams.values()
                        },
                        "items": {
                            i.id: [
                                i.org_id,
                                i.uid,
                                i.title,
                                i.folder_uid,
                                i.version,
                                sorted([k, str(w), v] for (k, w), v in i.acl.items()),
                            ]
                            for i in state.items.values()
                        },
                        "datasources": {
                            d.id: [
                                d.org_id,
                                d.uid,
                                d.name,
                                d.url,
                                d.json_data,
                                d.version,
                                d.secure_json_data,
                            ]
                            for d in state.datasources.values()
                        },
                    },
                    default=str,
                )
            )

    # ---- dispatch

    def answer(self, request: HttpRequest) -> HttpAnswer:
        path = unquote(request.path)
        headers, raw = dict(request.headers), request.body
        call = Call(request.method, path, request.query, headers, raw)
        body_json: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                body_json = json.loads(raw)
        try:
            injected = self._faults.take(request)
            if injected is not None:
                raise ApiError(injected.status, "injected failure")
            status, body = self._dispatch(call, request.path, body_json)
        except ApiError as error:
            status, body = error.status, error.body
        except Exception as error:  # a bug in the double: answer as Grafana does, 500
            status, body = 500, {"message": f"internal error in the double: {error!r}"}
        record = RecordedRequest(
            request.method,
            path,
            call.query,
            headers,
            raw or None,
            body_json,
            status,
            call.user.login if call.user else None,
        )
        with self._log_lock:
            self._requests.append(record)
        return json_answer(status, body)

    def _dispatch(self, call: Call, raw_path: str, body_json: Any) -> tuple[int, Any]:
        if self.contract is not None:
            problems = self.contract.check(
                call.method,
                call.path,
                call.query,
                call.headers,
                body_json if body_json is not None else _no_body(call.raw),
            )
            if problems:
                with self._log_lock:
                    self.contract_problems.extend(problems)
                raise ApiError(400, "request does not match Grafana's API: " + "; ".join(problems))
        route = None
        for method, pattern, scope, handler in self._routes:
            match = pattern.fullmatch(raw_path)
            if match and method == call.method:
                route = (scope, handler)
                call.params = {k: unquote(v) for k, v in match.groupdict().items()}
                break
            if match:
                route = route or ("", None)
        if route is None:
            raise ApiError(404, "Not found")
        scope, handler = route
        if handler is None:
            raise ApiError(405, "Method not allowed")
        with self.state.lock:
            if scope != "public":
                self._authenticate(call, scope)
            result = handler(call)
        if callable(result):  # work to do outside the lock (a call to InfluxDB)
            result = result()
        return result

    def _authenticate(self, call: Call, scope: str) -> None:
        header = call.headers.get("Authorization") or call.headers.get("authorization") or ""
        if not header.startswith("Basic "):
            raise ApiError(401, "Unauthorized")
        try:
            login, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except ValueError as error:
            raise ApiError(401, "Invalid username or password") from error
        user = self.state.user_by_login(login)
        if user is None or user.password != password:
            raise ApiError(401, "Invalid username or password")
        call.user = user
        if scope == "server_admin":
            if not user.is_admin:
                raise ApiError(403, "Permission denied")
            return
        if scope == "org":
            wanted = call.arg("targetOrgId") or _header(call.headers, "X-Grafana-Org-Id")
            try:
                org_id = int(wanted) if wanted else user.org_id
            except ValueError:
                org_id = user.org_id
            role = self.state.members.get((org_id, user.id))
            if role is None:
                raise ApiError(403, "You are not a member of the requested organization")
            call.org_id, call.role = org_id, role

    def _route_table(self) -> list[Route]:
        table = [
            ("GET", "/api/health", "public", self._health),
            ("GET", "/api/user", "user", self._current_user),
            ("GET", "/api/user/orgs", "user", self._current_user_orgs),
            ("POST", "/api/user/using/{org_id}", "user", self._switch_org),
            ("GET", "/api/orgs", "server_admin", self._list_orgs),
            ("POST", "/api/orgs", "server_admin", self._create_org),
            ("GET", "/api/orgs/name/{name}", "server_admin", self._org_by_name),
            ("GET", "/api/orgs/{org_id}", "server_admin", self._org_by_id),
            ("DELETE", "/api/orgs/{org_id}", "server_admin", self._delete_org),
            ("GET", "/api/orgs/{org_id}/users", "server_admin", self._org_users),
            ("POST", "/api/orgs/{org_id}/users", "server_admin", self._add_org_user),
            ("PATCH", "/api/orgs/{org_id}/users/{user_id}", "server_admin", self._set_org_role),
            ("DELETE", "/api/orgs/{org_id}/users/{user_id}", "server_admin", self._remove_org_user),
            ("POST", "/api/admin/users", "server_admin", self._create_user),
            ("DELETE", "/api/admin/users/{user_id}", "server_admin", self._delete_user),
            ("GET", "/api/users/lookup", "server_admin", self._lookup_user),
            ("GET", "/api/users/{user_id}", "server_admin", self._user_by_id),
            ("GET", "/api/users/{user_id}/orgs", "server_admin", self._user_orgs),
            ("GET", "/api/org", "org", self._current_org),
            ("GET", "/api/teams/search", "org", self._search_teams),
            ("POST", "/api/teams", "org", self._create_team),
            ("GET", "/api/teams/{team_id}", "org", self._get_team),
            ("DELETE", "/api/teams/{team_id}", "org", self._delete_team),
            ("GET", "/api/teams/{team_id}/members", "org", self._team_members),
            ("POST", "/api/teams/{team_id}/members", "org", self._add_team_member),
            ("DELETE", "/api/teams/{team_id}/members/{user_id}", "org", self._remove_team_member),
            ("GET", "/api/folders", "org", self._list_folders),
            ("POST", "/api/folders", "org", self._create_folder),
            ("GET", "/api/folders/{uid}", "org", self._get_folder),
            ("PUT", "/api/folders/{uid}", "org", self._update_folder),
            ("DELETE", "/api/folders/{uid}", "org", self._delete_folder),
            ("GET", "/api/folders/{uid}/permissions", "org", self._get_permissions),
            ("POST", "/api/folders/{uid}/permissions", "org", self._set_permissions),
            ("POST", "/api/dashboards/db", "org", self._save_dashboard),
            ("GET", "/api/dashboards/uid/{uid}", "org", self._get_dashboard),
            ("DELETE", "/api/dashboards/uid/{uid}", "org", self._delete_dashboard),
            ("GET", "/api/dashboards/uid/{uid}/permissions", "org", self._get_permissions),
            ("POST", "/api/dashboards/uid/{uid}/permissions", "org", self._set_permissions),
            ("GET", "/api/search", "org", self._search),
            ("GET", "/api/datasources", "org", self._list_datasources),
            ("POST", "/api/datasources", "org", self._create_datasource),
            ("GET", "/api/datasources/name/{name}", "org", self._datasource_by_name),
            ("GET", "/api/datasources/uid/{uid}", "org", self._get_datasource),
            ("PUT", "/api/datasources/uid/{uid}", "org", self._update_datasource),
            ("DELETE", "/api/datasources/uid/{uid}", "org", self._delete_datasource),
            ("GET", "/api/datasources/uid/{uid}/health", "org", self._datasource_health),
            ("GET", "/api/frontend/settings", "org", self._frontend_settings),
            ("POST", "/api/ds/query", "org", self._query),
        ]
        return [
            (method, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)), scope, handler)
            for method, path, scope, handler in table
        ]

    # ---- helpers

    def _org_admin(self, call: Call) -> None:
        if call.role != "Admin":
            raise ApiError(403, "You'll need additional permissions to perform this action")

    def _user(self, call: Call) -> User:
        assert call.user is not None
        return call.user

    def _target_org(self, call: Call) -> Org:
        org = self.state.orgs.get(call.int_param("org_id"))
        if org is None:
            raise ApiError(404, "Organization not found")
        return org

    def _target_user(self, call: Call) -> User:
        user = self.state.users.get(call.int_param("user_id"))
        if user is None:
            raise ApiError(404, "User not found")
        return user

    def _user_json(self, user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "uid": user.uid,
            "email": user.email,
            "name": user.name,
            "login": user.login,
            "orgId": user.org_id,
            "isGrafanaAdmin": user.is_admin,
            "isDisabled": False,
            "isExternal": False,
            "authLabels": [],
            "theme": "",
        }

    # ---- health, current user

    def _health(self, call: Call) -> tuple[int, Any]:
        return 200, {"commit": "double", "database": "ok", "version": VERSION}

    def _current_user(self, call: Call) -> tuple[int, Any]:
        return 200, self._user_json(self._user(call))

    def _current_user_orgs(self, call: Call) -> tuple[int, Any]:
        user = self._user(call)
        orgs = self.state.orgs_of(user.id)
        return 200, [
            {"orgId": org_id, "name": self.state.orgs[org_id].name, "role": role}
            for org_id, role in sorted(orgs.items())
        ]

    def _switch_org(self, call: Call) -> tuple[int, Any]:
        user, org_id = self._user(call), call.int_param("org_id")
        if (org_id, user.id) not in self.state.members:
            raise ApiError(401, "Not a valid organization")
        user.org_id = org_id
        return 200, {"message": "Active organization changed"}

    # ---- organizations (server admin)

    def _list_orgs(self, call: Call) -> tuple[int, Any]:
        try:
            per_page = int(call.arg("perpage") or 0)
            page = int(call.arg("page") or 0)
        except ValueError as error:
            raise ApiError(400, "bad request data") from error
        query, name = call.arg("query") or "", call.arg("name")
        mysql = self.settings.database == "mysql"
        like_ignores_case = self.settings.database != "postgres"  # name LIKE 'query%'
        found = [
            {"id": o.id, "name": o.name}
            for o in sorted(self.state.orgs.values(), key=lambda o: o.id)
            if (
                o.name.lower().startswith(query.lower())
                if like_ignores_case
                else o.name.startswith(query)
            )
            and (name is None or (o.name.lower() == name.lower() if mysql else o.name == name))
        ]
        per_page = per_page if per_page > 0 else 1000
        # LIMIT perpage OFFSET perpage * page: page counts from 0 (page=1 is the second page)
        return 200, found[per_page * page : per_page * (page + 1)]

    def _org_json(self, org: Org) -> dict[str, Any]:
        address = dict.fromkeys(("address1", "address2", "city", "zipCode", "state", "country"), "")
        return {"id": org.id, "name": org.name, "address": address}

    def _create_org(self, call: Call) -> tuple[int, Any]:
        name = _field(call.body(), "name", "")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "bad request data")
        if self.state.org_by_name(name):
            raise ApiError(409, "Organization name taken")
        org = self.state.add_org(name)
        self.state.members[(org.id, self._user(call).id)] = "Admin"
        return 200, {"orgId": org.id, "message": "Organization created"}

    def _org_by_name(self, call: Call) -> tuple[int, Any]:
        org = self.state.org_by_name(call.params["name"])
        if org is None:
            raise ApiError(404, "Organization not found")
        return 200, self._org_json(org)

    def _org_by_id(self, call: Call) -> tuple[int, Any]:
        return 200, self._org_json(self._target_org(call))

    def _delete_org(self, call: Call) -> tuple[int, Any]:
        org = self._target_org(call)
        self.state.delete_org(org.id)
        return 200, {"message": "Organization deleted"}

    def _org_users(self, call: Call) -> tuple[int, Any]:
        org = self._target_org(call)
        users = []
        for (org_id, user_id), role in sorted(self.state.members.items()):
            if org_id == org.id:
                user = self.state.users[user_id]
                users.append(
                    {
                        "orgId": org_id,
                        "userId": user_id,
                        "email": user.email,
                        "login": user.login,
                        "name": user.name,
                        "role": role,
                        "avatarUrl": "",
                        "lastSeenAt": _now(),
                    }
                )
        return 200, users

    def _add_org_user(self, call: Call) -> tuple[int, Any]:
        org = self._target_org(call)
        body = call.body()
        role = _field(body, "role", "")
        if role not in ROLE_RANK:
            raise ApiError(400, "Invalid role specified")
        user = self.state.user_by_login(str(_field(body, "loginOrEmail", "")))
        if user is None:
            raise ApiError(404, "User not found")
        if (org.id, user.id) in self.state.members:
            raise ApiError(409, "User is already member of this organization", userId=user.id)
        self.state.members[(org.id, user.id)] = role
        if not user.org_id:
            user.org_id = org.id
        return 200, {"message": "User added to organization", "userId": user.id}

    def _set_org_role(self, call: Call) -> tuple[int, Any]:
        org, user = self._target_org(call), self._target_user(call)
        role = _field(call.body(), "role", "")
        if role not in ROLE_RANK:
            raise ApiError(400, "Invalid role specified")
        if (org.id, user.id) not in self.state.members:
            raise ApiError(404, "User not found")
        if role != "Admin" and self.state.admins_of(org.id) == [user.id]:
            raise ApiError(400, "Cannot change role so that there is no organization admin left")
        self.state.members[(org.id, user.id)] = role
        return 200, {"message": "Organization user updated"}

    def _remove_org_user(self, call: Call) -> tuple[int, Any]:
        org, user = self._target_org(call), self._target_user(call)
        if (org.id, user.id) not in self.state.members:
            raise ApiError(404, "User not found")
        if self.state.admins_of(org.id) == [user.id]:
            raise ApiError(400, "Cannot remove last organization admin")
        self.state.remove_member(org.id, user.id)
        return 200, {"message": "User removed from organization"}

    # ---- users (server admin)

    def _create_user(self, call: Call) -> tuple[int, Any]:
        body = call.body()
        form_login = str(_field(body, "login", "") or "").strip()
        email = str(_field(body, "email", "") or "").strip()
        password = str(_field(body, "password", "") or "")
        login = form_login or email
        if not login:
            raise ApiError(400, "Validation error, need specify either username or email")
        if len(password) < 4:
            raise ApiError(400, "Password is missing or too short")
        # LoginConflict: "email=? OR login=?" on the lowercased values, each column with its own
        taken_email, taken_login = (email or login).lower(), login.lower()
        if any(u.email == taken_email or u.login == taken_login for u in self.state.users.values()):
            raise ApiError(
                412, f"User with email '{email}' or username '{form_login}' already exists"
            )
        wanted_org = int(_field(body, "orgId", 0) or 0)
        settings = self.settings
        if settings.auto_assign_org and wanted_org:
            if wanted_org not in self.state.orgs:
                raise ApiError(400, "Organization not found")
            org_id, role = wanted_org, settings.auto_assign_org_role
        elif settings.auto_assign_org:
            org_id, role = settings.auto_assign_org_id, settings.auto_assign_org_role
        else:  # a personal organization named after the user, who administers it
            org_id, role = self.state.add_org(email or login).id, "Admin"
        user = self.state.add_user(login, email, password, str(_field(body, "name", "") or ""))
        user.org_id = org_id
        self.state.members[(org_id, user.id)] = role
        return 200, {"id": user.id, "uid": user.uid, "message": "User created"}

    def _delete_user(self, call: Call) -> tuple[int, Any]:
        user = self._target_user(call)
        if user.is_admin and user.login == self.settings.admin_login:
            raise ApiError(403, "You cannot delete the server admin you are signed in as")
        for org_id in list(self.state.orgs_of(user.id)):
            self.state.remove_member(org_id, user.id)
        del self.state.users[user.id]
        return 200, {"message": "User deleted"}

    def _lookup_user(self, call: Call) -> tuple[int, Any]:
        user = self.state.user_by_login(call.arg("loginOrEmail") or "")
        if user is None:
            raise ApiError(404, "user not found")
        return 200, self._user_json(user)

    def _user_by_id(self, call: Call) -> tuple[int, Any]:
        return 200, self._user_json(self._target_user(call))

    def _user_orgs(self, call: Call) -> tuple[int, Any]:
        user = self._target_user(call)
        return 200, [
            {"orgId": org_id, "name": self.state.orgs[org_id].name, "role": role}
            for org_id, role in sorted(self.state.orgs_of(user.id).items())
        ]

    def _current_org(self, call: Call) -> tuple[int, Any]:
        return 200, self._org_json(self.state.orgs[call.org_id])

    # ---- teams

    def _team(self, call: Call) -> Team:
        team = self.state.teams.get(call.int_param("team_id"))
        if team is None or team.org_id != call.org_id:
            raise ApiError(404, "Team not found")
        return team

    def _team_json(self, team: Team) -> dict[str, Any]:
        return {
            "id": team.id,
            "uid": team.uid,
            "orgId": team.org_id,
            "name": team.name,
            "email": team.email,
            "avatarUrl": "",
            "memberCount": len(team.members),
            "permission": 0,
        }

    def _search_teams(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        name, query = call.arg("name"), (call.arg("query") or "").lower()
        teams = [
            self._team_json(t)
            for t in self.state.teams.values()
            if t.org_id == call.org_id
            and (name is None or t.name == name)
            and query in t.name.lower()
        ]
        per_page = int(call.arg("perpage") or 1000)
        return 200, {"totalCount": len(teams), "teams": teams, "page": 1, "perPage": per_page}

    def _create_team(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        body = call.body()
        name = _field(body, "name", "")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "bad request data")
        if any(t.org_id == call.org_id and t.name == name for t in self.state.teams.values()):
            raise ApiError(409, "Team name taken")
        team = Team(
            self.state.next_id("team"), _short_uid(), call.org_id, name, _field(body, "email", "")
        )
        team.members[self._user(call).id] = 4  # the creator administers the team
        self.state.teams[team.id] = team
        return 200, {"message": "Team created", "teamId": team.id, "uid": team.uid}

    def _get_team(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        return 200, self._team_json(self._team(call))

    def _delete_team(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        team = self._team(call)
        del self.state.teams[team.id]
        for item in self.state.items.values():
            item.acl.pop(("team", team.id), None)
        return 200, {"message": "Team deleted"}

    def _team_members(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        team = self._team(call)
        members = []
        for user_id, permission in sorted(team.members.items()):
            user = self.state.users[user_id]
            members.append(
                {
                    "orgId": team.org_id,
                    "teamId": team.id,
                    "teamUID": team.uid,
                    "userId": user.id,
                    "userUID": user.uid,
                    "email": user.email,
                    "name": user.name,
                    "login": user.login,
                    "avatarUrl": "",
                    "labels": [],
                    "permission": permission,
                }
            )
        return 200, members

    def _add_team_member(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        team = self._team(call)
        user_id = _field(call.body(), "userId")
        if not isinstance(user_id, int) or user_id not in self.state.users:
            raise ApiError(404, "User not found")
        if user_id in team.members:
            raise ApiError(400, "User is already added to this team")
        team.members[user_id] = 0
        return 200, {"message": "Member added to Team"}

    def _remove_team_member(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        team = self._team(call)
        if team.members.pop(call.int_param("user_id"), None) is None:
            raise ApiError(404, "Team member not found")
        return 200, {"message": "Team Member removed"}

    # ---- folders and dashboards

    def _visible(self, call: Call, item: Item, level: int = 1) -> bool:
        return self.state.level(item, self._user(call), call.org_id) >= level

    def _folder(self, call: Call, level: int = 1) -> Item:
        folder = self.state.item_by_uid(call.org_id, call.params["uid"])
        if folder is None or not folder.is_folder:
            raise ApiError(404, "folder not found", status="not-found")
        if not self._visible(call, folder, level):
            raise ApiError(403, "Access denied to this folder")
        return folder

    def _folder_json(self, call: Call, folder: Item) -> dict[str, Any]:
        level = self.state.level(folder, self._user(call), call.org_id)
        return {
            "id": folder.id,
            "uid": folder.uid,
            "title": folder.title,
            "url": f"/dashboards/f/{folder.uid}/{_slug(folder.title)}",
            "hasAcl": True,
            "canSave": level >= 2,
            "canEdit": level >= 2,
            "canAdmin": level >= 4,
            "createdBy": "",
            "created": folder.created,
            "updatedBy": "",
            "updated": folder.updated,
            "version": folder.version,
        }

    def _list_folders(self, call: Call) -> tuple[int, Any]:
        return 200, [
            {"id": i.id, "uid": i.uid, "title": i.title}
            for i in self.state.items.values()
            if i.org_id == call.org_id and i.is_folder and self._visible(call, i)
        ]

    def _create_folder(self, call: Call) -> tuple[int, Any]:
        if ROLE_RANK[call.role] < ROLE_RANK["Editor"]:
            raise ApiError(403, "Access denied")
        body = call.body()
        title = str(_field(body, "title", "") or "")
        uid = str(_field(body, "uid", "") or "") or _short_uid()
        title = title.strip()
        if not title:
            raise ApiError(400, "folder title cannot be empty")
        _check_folder_title(title)
        _check_uid(uid)
        existing = self.state.item_by_uid(call.org_id, uid)
        if existing is not None and not existing.is_folder:
            raise ApiError(400, "Dashboard cannot be changed to a folder")
        if existing is not None:
            raise ApiError(
                412, "the folder has been changed by someone else", status="version-mismatch"
            )
        # Titles are not unique: two folders (or a folder and a dashboard) may share one.
        folder = Item(self.state.next_id("item"), uid, call.org_id, title, is_folder=True)
        folder.acl = {
            ("user", self._user(call).id): 4,
            ("role", "Editor"): 2,
            ("role", "Viewer"): 1,
        }
        self.state.items[folder.id] = folder
        return 200, self._folder_json(call, folder)

    def _get_folder(self, call: Call) -> tuple[int, Any]:
        return 200, self._folder_json(call, self._folder(call))

    def _update_folder(self, call: Call) -> tuple[int, Any]:
        folder = self._folder(call, level=2)
        body = call.body()
        if not _field(body, "overwrite", False) and _field(body, "version") != folder.version:
            raise ApiError(
                412, "the folder has been changed by someone else", status="version-mismatch"
            )
        title = str(_field(body, "title") or "").strip()
        if title:
            _check_folder_title(title)
            folder.title = title
        folder.version += 1
        folder.updated = _now()
        return 200, self._folder_json(call, folder)

    def _delete_folder(self, call: Call) -> tuple[int, Any]:
        folder = self._folder(call, level=4)
        for key, item in list(self.state.items.items()):
            if item.org_id == call.org_id and (item is folder or item.folder_uid == folder.uid):
                del self.state.items[key]
        return 200, {"message": "Folder deleted", "id": folder.id, "title": folder.title}

    def _item_for_permissions(self, call: Call) -> Item:
        if call.path.startswith("/api/folders/"):
            return self._folder(call, level=4)
        dashboard = self.state.item_by_uid(call.org_id, call.params["uid"])
        if dashboard is None or dashboard.is_folder:
            raise ApiError(404, "Dashboard not found")
        if not self._visible(call, dashboard, 4):
            raise ApiError(403, "Access denied")
        return dashboard

    def _permission_json(
        self, item: Item, kind: str, who: Any, level: int, inherited: bool
    ) -> dict:
        team = self.state.teams.get(who) if kind == "team" else None
        user = self.state.users.get(who) if kind == "user" else None
        return {
            "id": item.id,
            "uid": item.uid,
            "title": item.title,
            "isFolder": item.is_folder,
            "inherited": inherited,
            "userId": user.id if user else 0,
            "userLogin": user.login if user else "",
            "userEmail": user.email if user else "",
            "teamId": team.id if team else 0,
            "team": team.name if team else "",
            "role": who if kind == "role" else "",
            "permission": level,
            "permissionName": PERMISSION_NAMES.get(level, ""),
            "created": item.created,
            "updated": item.updated,
        }

    def _get_permissions(self, call: Call) -> tuple[int, Any]:
        item = self._item_for_permissions(call)
        entries = [self._permission_json(item, k, w, v, False) for (k, w), v in item.acl.items()]
        if not item.is_folder and item.folder_uid:
            folder = self.state.item_by_uid(call.org_id, item.folder_uid)
            if folder is not None:
                entries += [
                    self._permission_json(folder, k, w, v, True) for (k, w), v in folder.acl.items()
                ]
        return 200, entries

    def _set_permissions(self, call: Call) -> tuple[int, Any]:
        item = self._item_for_permissions(call)
        items = _field(call.body(), "items")
        if not isinstance(items, list):
            raise ApiError(400, "bad request data")
        acl: dict[tuple[str, Any], int] = {}
        for entry in items:
            grantees = [k for k in ("userId", "teamId", "role") if _field(entry, k)]
            if len(grantees) != 1:
                raise ApiError(400, "Permission item must have exactly one of userId, teamId, role")
            level = _field(entry, "permission")
            if level not in PERMISSION_NAMES:
                raise ApiError(400, "Invalid permission")
            kind, who = grantees[0], _field(entry, grantees[0])
            if kind == "role" and who not in ("Viewer", "Editor"):
                raise ApiError(400, "Permissions can only be set for the Viewer and Editor roles")
            if kind == "teamId" and (
                who not in self.state.teams or self.state.teams[who].org_id != call.org_id
            ):
                raise ApiError(400, "Team not found")
            if kind == "userId" and who not in self.state.users:
                raise ApiError(400, "User not found")
            acl[({"userId": "user", "teamId": "team", "role": "role"}[kind], who)] = level
        item.acl = acl
        kind = "Folder" if item.is_folder else "Dashboard"
        return 200, {"message": f"{kind} permissions updated", "id": item.id, "title": item.title}

    def _save_dashboard(self, call: Call) -> tuple[int, Any]:
        body = call.body()
        model = _field(body, "dashboard")
        if not isinstance(model, dict):
            raise ApiError(400, "bad request data")
        title = str(model.get("title") or "").strip()
        if not title:
            raise ApiError(400, "Dashboard title cannot be empty", status="empty-name")
        model = {**model, "title": title}
        uid = str(model.get("uid") or "") or _short_uid()
        _check_uid(uid)
        folder_uid = str(_field(body, "folderUid", "") or "")
        if folder_uid:
            folder = self.state.item_by_uid(call.org_id, folder_uid)
            if folder is None or not folder.is_folder:
                raise ApiError(400, "folder not found")
            target_level = self.state.level(folder, self._user(call), call.org_id)
        else:
            target_level = 4 if call.role == "Admin" else (2 if call.role == "Editor" else 0)
        if target_level < 2 or ROLE_RANK[call.role] < ROLE_RANK["Editor"]:
            raise ApiError(403, "Access denied")
        overwrite = bool(_field(body, "overwrite", False))
        existing = self.state.item_by_uid(call.org_id, uid)
        if existing is not None and existing.is_folder:
            raise ApiError(400, "Dashboard cannot be changed to a folder")
        if existing is not None and not overwrite and model.get("version") != existing.version:
            raise ApiError(
                412, "The dashboard has been changed by someone else", status="version-mismatch"
            )
        if existing is None:
            existing = Item(self.state.next_id("item"), uid, call.org_id, title, is_folder=False)
            existing.version = 0
            existing.acl = {("user", self._user(call).id): 4}
            if not folder_uid:
                existing.acl.update({("role", "Editor"): 2, ("role", "Viewer"): 1})
            self.state.items[existing.id] = existing
        existing.version += 1
        existing.title, existing.folder_uid, existing.updated = title, folder_uid, _now()
        existing.model = {**model, "id": existing.id, "uid": uid, "version": existing.version}
        slug = _slug(title)
        return 200, {
            "id": existing.id,
            "uid": uid,
            "url": f"/d/{uid}/{slug}",
            "status": "success",
            "version": existing.version,
            "slug": slug,
            "folderUid": folder_uid,
        }

    def _dashboard(self, call: Call) -> Item:
        dashboard = self.state.item_by_uid(call.org_id, call.params["uid"])
        if dashboard is None or dashboard.is_folder:
            raise ApiError(404, "Dashboard not found")
        if not self._visible(call, dashboard):
            raise ApiError(403, "Access denied to this dashboard")
        return dashboard

    def _get_dashboard(self, call: Call) -> tuple[int, Any]:
        dashboard = self._dashboard(call)
        folder = self.state.item_by_uid(call.org_id, dashboard.folder_uid)
        level = self.state.level(dashboard, self._user(call), call.org_id)
        meta = {
            "type": "db",
            "isFolder": False,
            "slug": _slug(dashboard.title),
            "url": f"/d/{dashboard.uid}/{_slug(dashboard.title)}",
            "canSave": level >= 2,
            "canEdit": level >= 2,
            "canAdmin": level >= 4,
            "created": dashboard.created,
            "updated": dashboard.updated,
            "version": dashboard.version,
            "folderId": folder.id if folder else 0,
            "folderUid": dashboard.folder_uid,
            "folderTitle": folder.title if folder else "General",
            "provisioned": False,
        }
        return 200, {"dashboard": json.loads(json.dumps(dashboard.model)), "meta": meta}

    def _delete_dashboard(self, call: Call) -> tuple[int, Any]:
        dashboard = self._dashboard(call)
        if not self._visible(call, dashboard, 2):
            raise ApiError(403, "Access denied")
        del self.state.items[dashboard.id]
        return 200, {"title": dashboard.title, "message": "Dashboard deleted", "id": dashboard.id}

    def _search(self, call: Call) -> tuple[int, Any]:
        query = (call.arg("query") or "").lower()
        kind = call.arg("type")
        # ?tag= may repeat; a hit carries every tag asked for (pkg/api/search.go reads the
        # "tag" list, the search service filters on all of them)
        tags = set(call.query.get("tag") or [])
        hits = []
        for item in sorted(self.state.items.values(), key=lambda i: i.title.lower()):
            item_kind = "dash-folder" if item.is_folder else "dash-db"
            if item.org_id != call.org_id or (kind and kind != item_kind):
                continue
            if tags and not tags <= set(item.model.get("tags") or []):
                continue
            if query not in item.title.lower() or not self._visible(call, item):
                continue
            hit = {
                "id": item.id,
                "uid": item.uid,
                "title": item.title,
                "uri": f"db/{_slug(item.title)}",
                "url": f"/d/{item.uid}/{_slug(item.title)}",
                "slug": "",
                "type": item_kind,
                "tags": list(item.model.get("tags", [])),
                "isStarred": False,
            }
            if item.folder_uid:
                folder = self.state.item_by_uid(call.org_id, item.folder_uid)
                hit.update(folderUid=item.folder_uid, folderTitle=folder.title if folder else "")
            hits.append(hit)
        return 200, hits

    # ---- data sources

    def _datasource_json(self, datasource: DataSource) -> dict[str, Any]:
        return {
            "id": datasource.id,
            "uid": datasource.uid,
            "orgId": datasource.org_id,
            "name": datasource.name,
            "type": datasource.type,
            "typeLogoUrl": "",
            "access": datasource.access,
            "url": datasource.url,
            "user": "",
            "database": "",
            "basicAuth": datasource.basic_auth,
            "basicAuthUser": "",
            "withCredentials": False,
            "isDefault": datasource.is_default,
            "jsonData": json.loads(json.dumps(datasource.json_data)),
            "secureJsonFields": dict.fromkeys(datasource.secure_json_data, True),
            "version": datasource.version,
            "readOnly": False,
        }

    def _datasource(self, call: Call, **wanted: Any) -> DataSource:
        datasource = self.state.datasource_by(call.org_id, **wanted)
        if datasource is None:
            raise ApiError(404, "Data source not found")
        return datasource

    def _list_datasources(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        return 200, [
            self._datasource_json(d)
            for d in self.state.datasources.values()
            if d.org_id == call.org_id
        ]

    def _apply_datasource(self, datasource: DataSource, body: dict[str, Any]) -> None:
        datasource.type = str(_field(body, "type", datasource.type) or "")
        datasource.access = str(_field(body, "access", "proxy") or "proxy")
        datasource.url = str(_field(body, "url", "") or "")
        datasource.is_default = bool(_field(body, "isDefault", False))
        datasource.basic_auth = bool(_field(body, "basicAuth", False))
        datasource.json_data = dict(_field(body, "jsonData") or {})
        secure = _field(body, "secureJsonData") or {}
        datasource.secure_json_data.update({k: str(v) for k, v in secure.items()})

    def _create_datasource(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        body = call.body()
        name = str(_field(body, "name", "") or "")
        if not name or not _field(body, "type"):
            raise ApiError(400, "Required data source fields are missing (name, type)")
        uid = str(_field(body, "uid", "") or "") or _short_uid()
        _check_uid(uid)
        if self.state.datasource_by(call.org_id, name=name):
            raise ApiError(409, "data source with the same name already exists")
        if self.state.datasource_by(call.org_id, uid=uid):
            raise ApiError(409, "data source with the same uid already exists")
        datasource = DataSource(self.state.next_id("datasource"), uid, call.org_id, name, "")
        self._apply_datasource(datasource, body)
        self.state.datasources[datasource.id] = datasource
        return 200, {
            "datasource": self._datasource_json(datasource),
            "id": datasource.id,
            "message": "Datasource added",
            "name": name,
        }

    def _datasource_by_name(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        return 200, self._datasource_json(self._datasource(call, name=call.params["name"]))

    def _get_datasource(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        return 200, self._datasource_json(self._datasource(call, uid=call.params["uid"]))

    def _update_datasource(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        datasource = self._datasource(call, uid=call.params["uid"])
        body = call.body()
        version = _field(body, "version")
        if version is not None and version != datasource.version:
            raise ApiError(
                409,
                "Datasource has already been updated by someone else. Please reload and try again",
            )
        name = str(_field(body, "name", "") or "")
        if not name:
            raise ApiError(400, "Required data source fields are missing (name)")
        other = self.state.datasource_by(call.org_id, name=name)
        if other is not None and other is not datasource:
            raise ApiError(409, "data source with the same name already exists")
        datasource.name = name
        self._apply_datasource(datasource, body)
        datasource.version += 1
        return 200, {
            "datasource": self._datasource_json(datasource),
            "id": datasource.id,
            "message": "Datasource updated",
            "name": name,
        }

    def _delete_datasource(self, call: Call) -> tuple[int, Any]:
        self._org_admin(call)
        datasource = self._datasource(call, uid=call.params["uid"])
        del self.state.datasources[datasource.id]
        return 200, {"message": "Data source deleted", "id": datasource.id}

    def _frontend_settings(self, call: Call) -> tuple[int, Any]:
        """What the browser of any member learns about the organization's data sources:
        their jsonData (organization, default bucket), never a secure field."""
        datasources = {
            d.name: {
                "id": d.id,
                "uid": d.uid,
                "type": d.type,
                "name": d.name,
                "url": f"/api/datasources/proxy/uid/{d.uid}",
                "access": d.access,
                "isDefault": d.is_default,
                "jsonData": json.loads(json.dumps(d.json_data)),
            }
            for d in self.state.datasources.values()
            if d.org_id == call.org_id
        }
        return 200, {"datasources": datasources, "buildInfo": {"version": VERSION}}

    def _datasource_health(self, call: Call) -> Callable[[], tuple[int, Any]]:
        datasource = self.state.datasource_by(call.org_id, uid=call.params["uid"])
        if datasource is None:  # the cache lookup fails: 500, not 404
            raise ApiError(500, "Unable to load datasource metadata")
        target = (datasource.url, dict(datasource.json_data), dict(datasource.secure_json_data))

        def check() -> tuple[int, Any]:
            url, json_data, secure = target
            bucket = json_data.get("defaultBucket", "")
            probe = f'from(bucket: "{bucket}") |> range(start: -1m) |> limit(n: 1)'
            status, text = _influx_query(url, json_data, secure, probe)
            if status == 200:
                return 200, {"status": "OK", "message": "datasource is working"}
            return 400, {"status": "ERROR", "message": f"InfluxDB answered {status}: {text}"}

        return check

    def _query(self, call: Call) -> Callable[[], tuple[int, Any]]:
        """``POST /api/ds/query``: each query runs on InfluxDB with its data source's token.

        Grafana passes the dashboard time range to Flux as ``v.timeRangeStart`` and
        ``v.timeRangeStop``; the double writes them into the query text as RFC 3339 times,
        because the InfluxDB double's Flux subset has no ``option`` statement."""
        body = call.body()
        queries = _field(body, "queries")
        if not isinstance(queries, list) or not queries:
            raise ApiError(400, "bad request data: queries are required")
        start, stop = _time_range(_field(body, "from", "now-6h"), _field(body, "to", "now"))
        jobs = []
        for query in queries:
            reference = query.get("datasource") or {}
            datasource = self.state.datasource_by(call.org_id, uid=reference.get("uid"))
            if datasource is None:
                raise ApiError(404, "Data source not found")
            flux = str(query.get("query", ""))
            flux = flux.replace("v.timeRangeStart", start).replace("v.timeRangeStop", stop)
            jobs.append(
                (
                    query.get("refId", "A"),
                    datasource.url,
                    dict(datasource.json_data),
                    dict(datasource.secure_json_data),
                    flux,
                )
            )

        def run() -> tuple[int, Any]:
            results, failed = {}, False
            for ref_id, url, json_data, secure, flux in jobs:
                status, text = _influx_query(url, json_data, secure, flux)
                if status == 200:
                    results[ref_id] = {"status": 200, "frames": [_frame(ref_id, text)]}
                else:
                    failed = True
                    results[ref_id] = {"status": status, "error": text}
            return (400 if failed else 200), {"results": results}

        return run


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _no_body(raw: bytes) -> Any:
    from tests.contracts.openapi_check import NO_BODY, RawBody

    return RawBody(len(raw)) if raw else NO_BODY


def _time_range(start: Any, stop: Any) -> tuple[str, str]:
    def instant(value: Any) -> str:
        now = time.time()
        text = str(value)
        if text.isdigit():
            seconds = int(text) / 1000
        elif text.startswith("now-") and text[4:-1].isdigit():
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}[text[-1]]
            seconds = now - int(text[4:-1]) * unit
        else:
            seconds = now
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return instant(start), instant(stop)


def _influx_query(
    url: str, json_data: dict[str, Any], secure: dict[str, str], flux: str
) -> tuple[int, str]:
    """What InfluxDB answers to ``flux`` sent with the data source's token and organization."""
    request = Request(
        url.rstrip("/") + "/api/v2/query?" + f"org={json_data.get('organization', '')}",
        data=json.dumps({"query": flux, "type": "flux"}).encode(),
        method="POST",
        headers={
            "Authorization": f"Token {secure.get('token', '')}",
            "Content-Type": "application/json",
            "Accept": "application/csv",
        },
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (URLError, OSError) as error:
        return 502, f"InfluxDB unreachable: {error}"


def _frame(ref_id: str, text: str) -> dict[str, Any]:
    """An annotated CSV answer as one data frame: column names and their string values."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
    if not rows:
        return {"schema": {"refId": ref_id, "fields": []}, "data": {"values": []}}
    header, data = rows[0], [row for row in rows[1:] if row != rows[0]]
    columns = [[row[i] if i < len(row) else "" for row in data] for i in range(len(header))]
    return {
        "schema": {"refId": ref_id, "fields": [{"name": name} for name in header]},
        "data": {"values": columns},
    }
