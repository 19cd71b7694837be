"""A stateful test double of InfluxDB OSS v2.7, served over real HTTP on 127.0.0.1.

The parser, the token script and the end-to-end tests talk to it as to a real server; it must
answer, reject and fail as InfluxDB OSS 2.7.x does: statuses, error bodies, token scoping,
overwrite semantics. It implements the endpoints the project calls through ``influxdb-client``
(health, ping, orgs, buckets, authorizations, write, query). The request shapes are checked
against the OpenAPI file (``tests/contracts/influxdb-oss-v2.yml``), but the **answers follow the
server's source** (influxdata/influxdb, tag v2.7.12), which wins where the two disagree. The
real storage engine also runs in the test suite (``tests/realinflux/``) for what the double
only models.

The HTTP side (threads, reading requests, writing answers, the queue of injected faults) is
``tests.doubles.http_base``'s; this module keeps InfluxDB's rules. Use it from a test with the
fixtures of ``tests.doubles.influxdb_fixtures``, as a context manager, or by hand::

    python -m tests.doubles.influxdb --port 8086 --org powerview --admin-token devtoken

Behaviours and the server source file each comes from (paths in influxdata/influxdb v2.7.12):

=====================================================  ==========================================
behaviour                                              source
=====================================================  ==========================================
error body ``{"code", "message"}`` only (no ``line``   ``kit/transport/http/error_handler.go``
member); ``X-Platform-Error-Code``; code → status:     (``WriteErrorResponse``,
invalid 400, unauthorized 401, forbidden 403, not      ``influxDBErrorToStatusCode``)
found 404, conflict 422, unprocessable entity 422,
request too large 413, internal error 500
an error that is not an ``*errors.Error`` is 500       ``kit/transport/http/error_handler.go``
``An internal error has occurred - check server        (``HandleHTTPError``)
logs``
no token, unknown or inactive token: 401               ``authorization/middleware.go``
``unauthorized access``
reading a bucket, org or token without permission:     ``authorizer/authorize.go``
401 ``<action>:<resource> is unauthorized``
``GET /api/v2/buckets`` with an org and a name: the    ``tenant/service_bucket.go``
bucket, or **404** ``bucket "x" not found``; with      (``FindBuckets``),
``id``: 404 ``bucket not found``; with a name only     ``tenant/storage_bucket.go``
or an org only: a list (filtered by read permission)   (``GetBucketByName``),
                                                       ``tenant/middleware_bucket_auth.go``
listing by org: in name order, ``after`` an ID to     ``tenant/storage_bucket.go``
resume after; without org: in ID order; a full page   (``listBucketsByOrg``, ``ListBuckets``),
has a ``next`` link                                    ``paging.go`` (``NewPagingLinks``)
``org=<unknown name>``: 404 ``organization name "x"    ``tenant/service_org.go``
not found``
``limit`` outside 1..100, bad ``offset``/``after``:    ``paging.go`` (``DecodeFindOptions``)
400 with the server's words
creating a bucket: name starting with ``_`` or         ``tenant/service_bucket.go``
holding ``"``: 400; duplicate name: 422 ``bucket       (``validBucketName``),
with name x already exists``; negative retention or    ``tenant/storage_bucket.go``,
several rules: 422                                     ``tenant/http_server_bucket.go`` (``OK``)
a retention between 1 s and 1 h: **500** internal      ``storage/bucket_service.go``,
error, the bucket is not kept                          ``v1/services/meta/client.go``
                                                       (``ErrRetentionPolicyDurationTooLow``)
write: precision other than ns/us/ms/s: 400; no        ``http/write_handler.go``
``bucket``: 404 ``bucket not found``; unknown          (``decodeWriteRequest``, ``findBucket``,
bucket: 404 ``bucket "x" not found``; no write         ``checkBucketWritePermissions``)
permission: 403 ``insufficient permissions for
write``
write: a body that is not gzip under ``Content-        ``http/points/batch_reader.go``,
Encoding: gzip``: 500 internal error; a bad checksum:  ``http/points/points_parser.go``
400; a body over the limit: 413 ``unable to read
data: points batch is too large``. **OSS 2.7 sets no
limit** (the launcher never sets MaxBatchSizeBytes):
``max_body_bytes=0`` by default; a limit models a
proxy or another product
write: an empty body writes nothing: 204; bytes that   ``http/points/points_parser.go``,
are not UTF-8 are not refused                          ``storage/engine.go`` (``WritePoints``)
write: one malformed line rejects the whole batch:     ``models/points.go``
400, one ``unable to parse '<line>': <reason>`` per    (``ParsePointsWithPrecision``)
bad line, joined by newlines
line protocol escaping (see ``line_protocol.py``)      ``models/points.go``, ``pkg/escape``
field type conflict: the points with the conflicting   ``tsdb/field_validator.go``,
field are dropped, the others stored; 422 ``failure    ``tsdb/shard.go``
writing points to database: partial write: field       (``validateSeriesAndFields``,
type conflict: input field "f" on measurement "m" is   ``PartialWriteError``),
type integer, already exists as type float             ``http/write_handler.go``
dropped=N`` (field types per bucket and measurement,
the server's are per shard)
points older than now - retention are dropped unless   ``v1/coordinator/points_writer.go``
a shard group made for another point of the request    (``MapShards``, ``SummariseDropped``)
covers them; 422 ``partial write: dropped N points
outside retention policy of duration ...``
``GET /api/v2/authorizations`` lists token values in   ``authorization/storage.go``; 2.9's
clear (OSS up to 2.8); ``token_listing="hashed"``      hashed tokens
models OSS 2.9 (``REDACTED``), ``"redacted"`` Cloud
a query on a bucket the token may not read: 404        ``query/control``, the authorizing bucket
``failed to initialize execute state: could not find   lookup of ``cmd/influxd/launcher``
bucket "x"``, as for a missing bucket
=====================================================  ==========================================

Faults a test can inject (``fail_next``, ``fail_nth_write``, ``disconnect_next``, ``set_delay``,
``refuse_connections``) model what lies outside the server: an overloaded machine, a proxy, a
restart. OSS 2.7's write path itself answers 500 for an engine failure (``unexpected error
writing points to database``) and never 429 or 503; **a 429 with ``Retry-After`` is InfluxDB
Cloud's behaviour** (and some proxies'), injected only to test the client's handling of it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tests.doubles.flux import Dialect, FluxError, bucket_of, compile_query, run_query
from tests.doubles.flux import to_annotated_csv as flux_to_csv
from tests.doubles.http_base import (
    DISCONNECT,
    Fault,
    FaultQueue,
    HttpAnswer,
    HttpDouble,
    HttpRequest,
    RecordedRequest,
    any_request,
    copy_state,
)
from tests.doubles.line_protocol import PRECISION_NS, field_kind, parse_batch, series_key

DEFAULT_MAX_BODY_BYTES = 0  # OSS 2.7 sets no limit (see the module docstring)
MIN_RETENTION_S = 3600  # v1/services/meta/data.go: MinRetentionPolicyDuration
DEFAULT_VERSION = "v2.7.12"
RESOURCE_TYPES = (
    "authorizations", "buckets", "dashboards", "orgs", "tasks", "telegrafs", "users",
    "variables", "secrets", "labels", "views", "documents", "notificationRules",
    "notificationEndpoints", "checks", "dbrp", "annotations", "sources", "scrapers",
    "notebooks", "remotes", "replications", "instance", "flows", "functions", "subscriptions",
)  # fmt: skip
TOKEN_LISTINGS = ("plain", "hashed", "redacted")
_WRITE_PATH = "/api/v2/write"


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    """A 16 hex digit resource ID, the shape InfluxDB uses for orgs, buckets and tokens."""
    return secrets.token_hex(8)


def new_token() -> str:
    """A token shaped like InfluxDB's: 64 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(64)).decode()


def _is_id(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Permission:
    """``action`` on a resource type, optionally narrowed to one org and one resource ID."""

    action: str
    type: str
    id: str | None = None
    org_id: str | None = None

    def allows(self, action: str, type_: str, resource_id: str | None, org_id: str | None) -> bool:
        """True when this permission covers the wanted action on the wanted resource."""
        return (
            self.action == action
            and self.type == type_
            and (self.org_id is None or self.org_id == org_id)
            and (self.id is None or self.id == resource_id)
        )


def resource_path(type_: str, resource_id: str | None, org_id: str | None) -> str:
    """The ``orgs/<org>/buckets/<id>`` spelling InfluxDB uses in permission errors."""
    if type_ == "orgs":
        return f"orgs/{resource_id}" if resource_id else "orgs"
    path = f"orgs/{org_id}/{type_}" if org_id else type_
    return f"{path}/{resource_id}" if resource_id else path


@dataclass
class Organization:
    id: str
    name: str
    created_at: str = field(default_factory=_now_rfc3339)


@dataclass
class Bucket:
    id: str
    org_id: str
    name: str
    retention_seconds: int = 0
    type: str = "user"
    description: str | None = None
    created_at: str = field(default_factory=_now_rfc3339)
    updated_at: str = ""


@dataclass
class Authorization:
    id: str
    token: str
    org_id: str
    user_id: str
    permissions: list[Permission]
    description: str = ""
    status: str = "active"
    created_at: str = field(default_factory=_now_rfc3339)
    updated_at: str = ""


class StoredPoint(NamedTuple):
    """One stored value, comparable with plain tuples in tests."""

    measurement: str
    tags: frozenset[tuple[str, str]]
    field: str
    value: Any
    time_ns: int


@dataclass(frozen=True)
class WriteRecord:
    """One write request: where, how it was encoded, what it contained, how it ended."""

    org: str
    bucket: str
    precision: str
    content_encoding: str
    body_bytes: int
    decoded_bytes: int
    points: int
    rejected_lines: tuple[int, ...]
    status: int


class ApiError(Exception):
    """An error answer: HTTP status, InfluxDB error code, message, optional extra members."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


def _internal_error() -> ApiError:
    """What ``HandleHTTPError`` answers for an error that is not an ``*errors.Error``."""
    return ApiError(500, "internal error", "An internal error has occurred - check server logs")


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string, as the server's messages print names."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def go_duration(seconds: int) -> str:
    """Go's ``time.Duration.String`` for whole seconds (``3600`` → ``1h0m0s``)."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def go_rfc3339_nano(time_ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction are dropped."""
    seconds, nanos = divmod(time_ns, 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def _unauthorized(message: str = "unauthorized access") -> ApiError:
    return ApiError(401, "unauthorized", message)


def _denied(action: str, type_: str, resource_id: str | None, org_id: str | None) -> ApiError:
    return _unauthorized(f"{action}:{resource_path(type_, resource_id, org_id)} is unauthorized")


# --------------------------------------------------------------------------- state


class InfluxState:
    """Orgs, buckets, tokens and points, guarded by one lock (handlers run in threads)."""

    def __init__(self, token_listing: str = "plain") -> None:
        if token_listing not in TOKEN_LISTINGS:
            raise ValueError(f"token_listing must be one of {TOKEN_LISTINGS}")
        self.lock = threading.RLock()
        self.token_listing = token_listing
        self.user_id = new_id()
        self.user_name = "admin"
        self.orgs: dict[str, Organization] = {}
        self.buckets: dict[str, Bucket] = {}
        self.auths: dict[str, Authorization] = {}
        self.by_token: dict[str, Authorization] = {}
        # bucket id -> (measurement, tags) -> field -> time -> value
        self.data: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], dict]] = {}
        self.field_types: dict[tuple[str, str, str], str] = {}

    # ---- orgs, buckets, tokens

    def add_org(self, name: str) -> Organization:
        with self.lock:
            org = Organization(new_id(), name)
            self.orgs[org.id] = org
            for system, seconds in (("_monitoring", 7 * 86400), ("_tasks", 3 * 86400)):
                self.add_bucket(org.id, system, seconds, type_="system")
            return org

    def org_by_name(self, name: str) -> Organization | None:
        with self.lock:
            return next((org for org in self.orgs.values() if org.name == name), None)

    def add_bucket(
        self, org_id: str, name: str, retention_seconds: int = 0, type_: str = "user",
        description: str | None = None,
    ) -> Bucket:  # fmt: skip
        with self.lock:
            if self.bucket_by_name(org_id, name) is not None:
                raise ApiError(422, "conflict", f"bucket with name {name} already exists")
            bucket = Bucket(new_id(), org_id, name, retention_seconds, type_, description)
            bucket.updated_at = bucket.created_at
            self.buckets[bucket.id] = bucket
            self.data[bucket.id] = {}
            return bucket

    def bucket_by_name(self, org_id: str, name: str) -> Bucket | None:
        with self.lock:
            return next(
                (b for b in self.buckets.values() if b.org_id == org_id and b.name == name), None
            )

    def delete_bucket(self, bucket_id: str) -> None:
        with self.lock:
            self.buckets.pop(bucket_id)
            self.data.pop(bucket_id, None)
            for key in [key for key in self.field_types if key[0] == bucket_id]:
                del self.field_types[key]

    def add_auth(
        self, org_id: str, permissions: list[Permission], description: str = "",
        token: str | None = None, status: str = "active",
    ) -> Authorization:  # fmt: skip
        with self.lock:
            auth = Authorization(
                new_id(), token or new_token(), org_id, self.user_id, list(permissions),
                description, status,
            )  # fmt: skip
            auth.updated_at = auth.created_at
            self.auths[auth.id] = auth
            self.by_token[auth.token] = auth
            return auth

    def delete_auth(self, auth_id: str) -> None:
        with self.lock:
            auth = self.auths.pop(auth_id)
            self.by_token.pop(auth.token, None)

    # ---- points

    def apply_points(self, bucket_id: str, points: Iterable[Any]) -> tuple[str, int] | None:
        """Store points (same series, field and time: the last value wins).

        A point with a field whose type differs from the field's known type is dropped whole,
        the other points are stored (``tsdb/field_validator.go``, ``tsdb/shard.go``
        validateSeriesAndFields). Returns (first reason, points dropped), or None.
        """
        first: str | None = None
        dropped = 0
        with self.lock:
            series_map = self.data[bucket_id]
            types = self.field_types
            for point in points:
                measurement = point.measurement
                problem = None
                for name, value in point.fields:
                    kind = field_kind(value)
                    known = types.get((bucket_id, measurement, name))
                    if known is not None and known != kind:
                        problem = (
                            f"field type conflict: input field {go_quote(name)} on measurement "
                            f"{go_quote(measurement)} is type {kind}, already exists as type "
                            f"{known}"
                        )
                        break
                if problem:
                    first = first or problem
                    dropped += 1
                    continue
                fields = series_map.setdefault((measurement, point.tags), {})
                for name, value in point.fields:
                    types.setdefault((bucket_id, measurement, name), field_kind(value))
                    fields.setdefault(name, {})[point.time_ns] = value
        return (first, dropped) if first else None

    def series_of(self, bucket_id: str) -> list[tuple[str, tuple, str, dict[int, Any]]]:
        """A copy of one bucket's series, safe to read outside the lock."""
        with self.lock:
            return [
                (measurement, tags, name, dict(values))
                for (measurement, tags), fields in self.data.get(bucket_id, {}).items()
                for name, values in fields.items()
            ]


_FAULT_CODES = {
    429: "too many requests",
    500: "internal error",
    502: "internal error",
    503: "unavailable",
    504: "unavailable",
}
# Faults that match the same request: a disconnection first, then fail_next, then the n-th
# write (each kind replaces the earlier fault of its kind).
_DISCONNECT, _FAIL, _NTH_WRITE = "disconnect", "fail", "nth write"
_RANKS = {_DISCONNECT: 0, _FAIL: 1, _NTH_WRITE: 2}


def _is_write(request: HttpRequest) -> bool:
    return request.method == "POST" and request.path == _WRITE_PATH


def _json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError as error:
        raise ApiError(400, "invalid", f"failed to decode request body: {error}") from error


# --------------------------------------------------------------------------- the double


class InfluxDBDouble(HttpDouble):
    """The server, its state and its fault switches; see the module docstring."""

    name = "influxdb-double"

    def __init__(
        self,
        *,
        org: str = "powerview",
        admin_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        token_listing: str = "plain",
        version: str = DEFAULT_VERSION,
    ) -> None:
        super().__init__(host, port)
        self.state = InfluxState(token_listing)
        self.max_body_bytes = max_body_bytes
        self.version = version
        self._org = self.state.add_org(org)
        operator = [
            Permission(action, type_) for type_ in RESOURCE_TYPES for action in ("read", "write")
        ]
        self._admin = self.state.add_auth(
            self._org.id, operator, f"{self.state.user_name}'s Token", token=admin_token
        )
        self._faults = FaultQueue()
        self._delay_lock = threading.Lock()  # the delay and the count of writes received
        self._delay_s = 0.0
        self._delay_only_writes = False
        self._delay_over = threading.Event()
        self._write_requests_seen = 0
        self._requests: list[RecordedRequest] = []
        self._writes: list[WriteRecord] = []
        self._log_lock = threading.Lock()

    @property
    def org(self) -> str:
        """Name of the organization created at start."""
        return self._org.name

    @property
    def org_id(self) -> str:
        """ID of the organization created at start."""
        return self._org.id

    @property
    def admin_token(self) -> str:
        """The operator token that exists at start (all permissions, every org)."""
        return self._admin.token

    def copy(self) -> InfluxDBDouble:
        """A double, not started, holding a copy of this one's state (same organization,
        tokens, buckets and points) and request logs, but none of its faults."""
        twin = InfluxDBDouble(
            host=self.host, max_body_bytes=self.max_body_bytes,
            token_listing=self.state.token_listing, version=self.version,
        )  # fmt: skip
        with self.state.lock:
            twin.state = copy_state(self.state)
        twin._org = twin.state.orgs[self._org.id]
        twin._admin = twin.state.auths[self._admin.id]
        with self._log_lock:
            twin._requests, twin._writes = list(self._requests), list(self._writes)
        twin._write_requests_seen = self.write_requests_received
        return twin

    # ---- set-up helpers for tests

    def create_org(self, name: str) -> str:
        """Create another organization; returns its ID."""
        return self.state.add_org(name).id

    def create_bucket(self, name: str, org: str | None = None, retention_seconds: int = 0) -> str:
        """Create a bucket directly (no HTTP); returns its ID."""
        return self.state.add_bucket(self._org_id(org), name, retention_seconds).id

    def create_token(
        self, *permissions: tuple[str, str | None], org: str | None = None,
        description: str = "",
    ) -> str:  # fmt: skip
        """Create a token from ``("read"|"write", bucket name or None for all buckets)`` pairs."""
        org_id = self._org_id(org)
        granted = []
        for action, bucket_name in permissions:
            bucket_id = None
            if bucket_name is not None:
                bucket = self.state.bucket_by_name(org_id, bucket_name)
                if bucket is None:
                    raise KeyError(f"no bucket {bucket_name!r}")
                bucket_id = bucket.id
            granted.append(Permission(action, "buckets", bucket_id, org_id))
        return self.state.add_auth(org_id, granted, description).token

    def set_token_active(self, token: str, active: bool) -> None:
        """Activate or deactivate a token (an inactive token gets 401 everywhere)."""
        with self.state.lock:
            self.state.by_token[token].status = "active" if active else "inactive"

    def _org_id(self, org: str | None) -> str:
        if org is None:
            return self._org.id
        found = self.state.org_by_name(org) or self.state.orgs.get(org)
        if found is None:
            raise KeyError(f"no organization {org!r}")
        return found.id

    # ---- inspection

    def bucket_id(self, name: str, org: str | None = None) -> str | None:
        """ID of a bucket by name, or None."""
        bucket = self.state.bucket_by_name(self._org_id(org), name)
        return bucket.id if bucket else None

    def bucket_names(self, org: str | None = None, include_system: bool = False) -> set[str]:
        """Names of the buckets of an organization."""
        org_id = self._org_id(org)
        with self.state.lock:
            return {
                b.name for b in self.state.buckets.values()
                if b.org_id == org_id and (include_system or b.type == "user")
            }  # fmt: skip

    def bucket_retention(self, name: str, org: str | None = None) -> int:
        """Retention of a bucket in seconds (0: forever)."""
        bucket = self.state.bucket_by_name(self._org_id(org), name)
        if bucket is None:
            raise KeyError(name)
        return bucket.retention_seconds

    def points(self, bucket: str, org: str | None = None) -> set[StoredPoint]:
        """Every stored value of a bucket as (measurement, tags, field, value, time_ns)."""
        bucket_id = self.bucket_id(bucket, org)
        if bucket_id is None:
            return set()
        return {
            StoredPoint(measurement, frozenset(tags), name, value, time_ns)
            for measurement, tags, name, values in self.state.series_of(bucket_id)
            for time_ns, value in values.items()
        }

    def point_count(self, bucket: str, org: str | None = None) -> int:
        """Number of stored values (series x field x timestamp) in a bucket."""
        bucket_id = self.bucket_id(bucket, org)
        if bucket_id is None:
            return 0
        return sum(len(values) for *_, values in self.state.series_of(bucket_id))

    def authorizations(self, description: str | None = None) -> list[Authorization]:
        """All tokens (or those with a description), as stored."""
        with self.state.lock:
            return [
                auth for auth in self.state.auths.values()
                if description is None or auth.description == description
            ]  # fmt: skip

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._log_lock:
            return list(self._requests)

    @property
    def writes(self) -> list[WriteRecord]:
        """Every write request received so far, in order (faulted ones included)."""
        with self._log_lock:
            return list(self._writes)

    def clear_log(self) -> None:
        """Forget the request and write logs (not the data)."""
        with self._log_lock:
            self._requests.clear()
            self._writes.clear()

    # ---- faults

    def refuse_connections(self) -> None:
        """Close the listening socket: clients get ECONNREFUSED until accept_connections()."""
        self.stop()

    def accept_connections(self) -> None:
        """Listen again on the same port after refuse_connections()."""
        self.start()

    def set_delay(self, seconds: float, only_writes: bool = False) -> None:
        """Wait ``seconds`` before handling every request (or every write).

        The request is still handled after the wait, as a slow server would: a client that gave
        up on a write may find it stored anyway, which is what retries must cope with.
        """
        with self._delay_lock:
            self._delay_s = seconds
            self._delay_only_writes = only_writes

    def fail_next(
        self, count: int, status: int = 503, retry_after: float | None = None,
        only_writes: bool = False,
    ) -> None:  # fmt: skip
        """Answer the next ``count`` requests (or writes) with ``status`` (429, 500, 503...)."""
        self._add_fault(_FAIL, status, count, only_writes, retry_after=retry_after)

    def fail_nth_write(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        """Fail exactly the n-th write request from now on (1 = the next one)."""
        self._add_fault(_NTH_WRITE, status, 1, True, nth=n, retry_after=retry_after)

    @property
    def write_requests_received(self) -> int:
        """Write requests that reached the double so far, answered or not (even while a
        delay holds them): an event a test can wait on."""
        with self._delay_lock:
            return self._write_requests_seen

    def disconnect_next(self, count: int, only_writes: bool = False) -> None:
        """Close the connection without answering the next ``count`` requests (or writes)."""
        self._add_fault(_DISCONNECT, DISCONNECT, count, only_writes)

    def reset_faults(self) -> None:
        """Remove every injected fault (a refused listener is reopened); requests waiting in
        a delay are answered at once."""
        self._faults.clear()
        with self._delay_lock:
            self._delay_s, self._delay_only_writes = 0.0, False
            self._delay_over.set()
            self._delay_over = threading.Event()
        if not self.listening:
            self.start()

    def _add_fault(self, kind: str, status: int, count: int, only_writes: bool,
                   **more: Any) -> None:  # fmt: skip
        matches = _is_write if only_writes else any_request
        fault = Fault(status, count, matches, kind=kind, rank=_RANKS[kind], **more)
        self._faults.add(fault, replace=True)

    # ---- request handling

    def answer(self, request: HttpRequest) -> HttpAnswer:
        is_write = _is_write(request)
        with self._delay_lock:
            wait = self._delay_s if (is_write or not self._delay_only_writes) else 0.0
            delay_over = self._delay_over
            if is_write:
                self._write_requests_seen += 1
        fault = self._faults.take(request)
        if wait:
            delay_over.wait(wait)
        headers = {"X-Influxdb-Build": "OSS", "X-Influxdb-Version": self.version}
        write_info: dict[str, Any] = {}
        if fault is not None and fault.status == DISCONNECT:
            status, payload = DISCONNECT, b""
        elif fault is not None:
            code = _FAULT_CODES.get(fault.status, "internal error")
            error = ApiError(fault.status, code, f"injected fault: {code}")
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            status, payload = self._error(error, headers)
        else:
            try:
                status, payload, extra_headers = self._route(request, write_info)
                headers.update(extra_headers)
            except ApiError as error:
                status, payload = self._error(error, headers)
            except Exception as error:  # a bug in the double: say so instead of hanging up
                bug = ApiError(500, "internal error", f"test double bug: {error!r}")
                status, payload = self._error(bug, headers)
        self._record(request, status, is_write, write_info)
        return HttpAnswer(status, payload, headers)

    @staticmethod
    def _error(error: ApiError, headers: dict[str, str]) -> tuple[int, bytes]:
        headers.update(error.headers)
        headers["Content-Type"] = "application/json; charset=utf-8"
        headers["X-Platform-Error-Code"] = error.code
        body = {"code": error.code, "message": error.message, **error.extra}
        return error.status, json.dumps(body).encode()

    def _record(
        self, request: HttpRequest, status: int, is_write: bool, write_info: dict[str, Any]
    ) -> None:
        content_type = request.headers.get("Content-Type", "")
        parsed: Any = None
        if "json" in content_type and request.body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(request.body)
        recorded = RecordedRequest(
            request.method,
            request.path,
            request.query,
            {name: value for name, value in request.headers.items()},
            None if is_write else request.body,
            parsed,
            status,
        )
        with self._log_lock:
            self._requests.append(recorded)
            if is_write:
                self._writes.append(
                    WriteRecord(
                        org=request.param("org") or request.param("orgID"),
                        bucket=request.param("bucket"),
                        precision=request.param("precision") or "ns",
                        content_encoding=request.headers.get("Content-Encoding", "identity"),
                        body_bytes=len(request.body),
                        decoded_bytes=write_info.get("decoded_bytes", 0),
                        points=write_info.get("points", 0),
                        rejected_lines=tuple(write_info.get("rejected", ())),
                        status=status,
                    )
                )

    def _route(
        self, request: HttpRequest, write_info: dict[str, Any]
    ) -> tuple[int, bytes, dict[str, str]]:
        path, method = request.path.rstrip("/") or "/", request.method
        if path == "/ping":
            self._allow(method, "GET", "HEAD")
            return 204, b"", {}
        if path in ("/health", "/ready"):
            self._allow(method, "GET")
            if path == "/ready":
                body = {"status": "ready", "started": self._org.created_at, "up": "1s"}
            else:
                body = {
                    "name": "influxdb", "message": "ready for queries and writes",
                    "status": "pass", "checks": [], "version": self.version, "commit": "double",
                }  # fmt: skip
            return self._json(200, body)
        if not path.startswith("/api/v2/"):
            raise ApiError(404, "not found", "path not found")
        auth = self._authenticate(request)
        segments = path.split("/")[3:]
        resource, item = segments[0], "/".join(segments[1:])
        if resource == "write" and not item:
            self._allow(method, "POST")
            return self._write(request, auth, write_info)
        if resource == "query" and not item:
            self._allow(method, "POST")
            return self._query(request, auth)
        if resource == "orgs":
            return self._orgs(request, auth, item)
        if resource == "buckets":
            return self._buckets(request, auth, item)
        if resource == "authorizations":
            return self._authorizations(request, auth, item)
        raise ApiError(404, "not found", "path not found")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(405, "method not allowed", f"allow: {', '.join(allowed)}")

    @staticmethod
    def _json(status: int, body: Any) -> tuple[int, bytes, dict[str, str]]:
        return (
            status,
            json.dumps(body).encode(),
            {"Content-Type": "application/json; charset=utf-8"},
        )

    def _authenticate(self, request: HttpRequest) -> Authorization:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme not in ("Token", "Bearer") or not token.strip():
            raise _unauthorized()
        auth = self.state.by_token.get(token.strip())
        if auth is None or auth.status != "active":
            raise _unauthorized()
        return auth

    @staticmethod
    def _can(auth: Authorization, action: str, type_: str, resource_id: str | None,
             org_id: str | None) -> bool:  # fmt: skip
        return any(p.allows(action, type_, resource_id, org_id) for p in auth.permissions)

    def _require(self, auth: Authorization, action: str, type_: str, resource_id: str | None,
                 org_id: str | None) -> None:  # fmt: skip
        if not self._can(auth, action, type_, resource_id, org_id):
            raise _denied(action, type_, resource_id, org_id)

    def _find_org(self, request: HttpRequest, required: bool = True) -> Organization | None:
        """The org named by ``org`` (name or ID) or ``orgID``, as InfluxDB's queryOrganization."""
        org_param, org_id = request.param("org"), request.param("orgID")
        if not org_param and not org_id:
            if required:
                raise ApiError(400, "invalid", "Please provide either orgID or org")
            return None
        with self.state.lock:
            if org_id:
                if not _is_id(org_id):
                    raise ApiError(400, "invalid", "id must have a length of 16 bytes")
                found = self.state.orgs.get(org_id)
                if found is None:
                    raise ApiError(404, "not found", "organization not found")
                return found
            found = self.state.orgs.get(org_param) if _is_id(org_param) else None
            found = found or self.state.org_by_name(org_param)
            if found is None:
                raise ApiError(404, "not found", f'organization name "{org_param}" not found')
            return found

    # ---- orgs

    def _org_json(self, org: Organization) -> dict[str, Any]:
        return {
            "id": org.id, "name": org.name, "description": "", "status": "active",
            "createdAt": org.created_at, "updatedAt": org.created_at,
            "links": {
                "self": f"/api/v2/orgs/{org.id}", "members": f"/api/v2/orgs/{org.id}/members",
                "owners": f"/api/v2/orgs/{org.id}/owners",
                "labels": f"/api/v2/orgs/{org.id}/labels",
                "secrets": f"/api/v2/orgs/{org.id}/secrets",
                "buckets": f"/api/v2/buckets?org={org.name}",
                "tasks": f"/api/v2/tasks?org={org.name}",
                "dashboards": f"/api/v2/dashboards?org={org.name}",
            },
        }  # fmt: skip

    def _orgs(self, request: HttpRequest, auth: Authorization, item: str) -> tuple:
        if item:
            self._allow(request.method, "GET")
            if not _is_id(item):
                raise ApiError(400, "invalid", "id must have a length of 16 bytes")
            org = self.state.orgs.get(item)
            if org is None:
                raise ApiError(404, "not found", "organization not found")
            self._require(auth, "read", "orgs", org.id, None)
            return self._json(200, self._org_json(org))
        self._allow(request.method, "GET")
        found = self._find_org(request, required=False)
        with self.state.lock:
            candidates = [found] if found else list(self.state.orgs.values())
        visible = [org for org in candidates if self._can(auth, "read", "orgs", org.id, None)]
        return self._json(
            200, {"links": {"self": "/api/v2/orgs"}, "orgs": [self._org_json(o) for o in visible]}
        )

    # ---- buckets

    @staticmethod
    def _shard_group_seconds(retention: int) -> int:
        if retention == 0 or retention >= 180 * 86400:
            return 7 * 86400
        return 3600 if retention < 2 * 86400 else 86400

    def _bucket_json(self, bucket: Bucket) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": bucket.id, "orgID": bucket.org_id, "type": bucket.type,
            "schemaType": "implicit", "name": bucket.name,
            "retentionRules": [{
                "type": "expire", "everySeconds": bucket.retention_seconds,
                "shardGroupDurationSeconds": self._shard_group_seconds(bucket.retention_seconds),
            }],
            "createdAt": bucket.created_at, "updatedAt": bucket.updated_at,
            "links": {
                "labels": f"/api/v2/buckets/{bucket.id}/labels",
                "members": f"/api/v2/buckets/{bucket.id}/members",
                "org": f"/api/v2/orgs/{bucket.org_id}",
                "owners": f"/api/v2/buckets/{bucket.id}/owners",
                "self": f"/api/v2/buckets/{bucket.id}",
                "write": f"/api/v2/write?org={bucket.org_id}&bucket={bucket.id}",
            },
            "labels": [],
        }  # fmt: skip
        if bucket.description is not None:
            body["description"] = bucket.description
        return body

    def _buckets(self, request: HttpRequest, auth: Authorization, item: str) -> tuple:
        if item:
            self._allow(request.method, "GET", "DELETE")
            if not _is_id(item):
                raise ApiError(400, "invalid", "id must have a length of 16 bytes")
            bucket = self.state.buckets.get(item)
            if bucket is None:
                raise ApiError(404, "not found", "bucket not found")
            if request.method == "GET":
                self._require(auth, "read", "buckets", bucket.id, bucket.org_id)
                return self._json(200, self._bucket_json(bucket))
            self._require(auth, "write", "buckets", bucket.id, bucket.org_id)
            self.state.delete_bucket(bucket.id)
            return 204, b"", {}
        self._allow(request.method, "GET", "POST")
        if request.method == "POST":
            return self._create_bucket(request, auth)
        limit, offset, after = self._find_options(request)
        name, wanted_id = request.param("name"), request.param("id")
        org_id = request.param("orgID")
        if org_id and not _is_id(org_id):
            raise ApiError(400, "invalid", "id must have a length of 16 bytes")
        if wanted_id and not _is_id(wanted_id):
            raise ApiError(400, "invalid", "id must have a length of 16 bytes")
        org = None
        if not org_id and request.param("org"):
            org = self.state.org_by_name(request.param("org"))
            if org is None:
                raise ApiError(
                    404, "not found", f'organization name "{request.param("org")}" not found'
                )
            org_id = org.id
        with self.state.lock:
            found = sorted(self.state.buckets.values(), key=lambda b: b.id)
        if wanted_id:  # FindBucketByID: the org and the name are not looked at
            found = [b for b in found if b.id == wanted_id]
            if not found:
                raise ApiError(404, "not found", "bucket not found")
        elif name and org_id:  # GetBucketByName: a missing bucket is a 404, not an empty list
            found = [b for b in found if b.org_id == org_id and b.name == name]
            if not found:
                raise ApiError(404, "not found", f'bucket "{name}" not found')
        elif org_id:  # listBucketsByOrg: the org's name index, "after" is a position
            found = sorted((b for b in found if b.org_id == org_id), key=lambda b: b.name.encode())
            if after:
                ids = [b.id for b in found]
                found = found[ids.index(after) + 1 :] if after in ids else []
        else:  # ListBuckets: every bucket by ID, "after" seeks past that ID
            found = [
                b for b in found if (not name or b.name == name) and (not after or b.id > after)
            ]
        found = [b for b in found if self._can(auth, "read", "buckets", b.id, b.org_id)]
        page = found[offset : offset + limit]
        query = f"descending=false&limit={limit}&offset={offset}"
        if name:
            query += f"&name={name}"
        if org_id:
            query += f"&orgID={org_id}"
        links = {"self": f"/api/v2/buckets?{query}"}
        if len(page) >= limit:  # paging.go NewPagingLinks: a full page has a next link
            links["next"] = (
                f"/api/v2/buckets?{query.replace(f'offset={offset}', f'offset={offset + limit}')}"
            )
        return self._json(200, {"links": links, "buckets": [self._bucket_json(b) for b in page]})

    @staticmethod
    def _find_options(request: HttpRequest) -> tuple[int, int, str]:
        """limit, offset and after as ``DecodeFindOptions`` (``paging.go``) reads them."""
        try:
            offset = int(request.param("offset") or 0)
        except ValueError as error:
            raise ApiError(400, "invalid", "offset is invalid") from error
        after = request.param("after")
        if after and not _is_id(after):
            raise ApiError(400, "invalid", "decoding after: id must have a length of 16 bytes")
        try:
            limit = int(request.param("limit") or 20)
        except ValueError as error:
            raise ApiError(400, "invalid", "limit is invalid") from error
        if not 1 <= limit <= 100:
            raise ApiError(400, "invalid", "limit must be between 1 and 100")
        return limit, offset, after

    def _create_bucket(self, request: HttpRequest, auth: Authorization) -> tuple:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid", "failed to decode request body: expected an object")
        org_id, name = body.get("orgID"), body.get("name")
        if not org_id:
            raise ApiError(400, "invalid", "organization id must be provided")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "invalid", "bucket name is required")
        rules = body.get("retentionRules") or []
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            raise ApiError(400, "invalid", "failed to decode request body: retentionRules")
        if len(rules) > 1:
            raise ApiError(
                422, "unprocessable entity",
                "buckets cannot have more than one retention rule at this time",
            )  # fmt: skip
        retention = 0
        for rule in rules:
            seconds = rule.get("everySeconds", 0)
            if not isinstance(seconds, int):
                raise ApiError(400, "invalid", "failed to decode request body: everySeconds")
            if seconds < 0:
                raise ApiError(422, "unprocessable entity", "expiration seconds cannot be negative")
            retention = seconds
        if name.startswith("_"):
            raise ApiError(
                400,
                "invalid",
                f"bucket name {name} is invalid. Buckets may not start with underscore",
            )
        if '"' in name:
            raise ApiError(
                400, "invalid",
                f"bucket name {name} is invalid. Bucket names may not include quotation marks",
            )  # fmt: skip
        if not _is_id(str(org_id)) or org_id not in self.state.orgs:
            raise ApiError(404, "not found", "organization not found")
        self._require(auth, "write", "buckets", None, org_id)
        if self.state.bucket_by_name(org_id, name) is not None:
            raise ApiError(422, "conflict", f"bucket with name {name} already exists")
        if 0 < retention < MIN_RETENTION_S:
            # The storage engine refuses the retention policy with a plain Go error
            # (ErrRetentionPolicyDurationTooLow); the API answers it as an internal error and
            # deletes the bucket it had just stored.
            raise _internal_error()
        bucket = self.state.add_bucket(org_id, name, retention, description=body.get("description"))
        return self._json(201, self._bucket_json(bucket))

    # ---- authorizations

    def _auth_json(self, auth: Authorization, reveal: bool) -> dict[str, Any]:
        with self.state.lock:
            org = self.state.orgs.get(auth.org_id)
            permissions = []
            for permission in auth.permissions:
                resource: dict[str, Any] = {"type": permission.type}
                if permission.id:
                    resource["id"] = permission.id
                    target = self.state.buckets.get(permission.id)
                    if permission.type == "buckets" and target is not None:
                        resource["name"] = target.name
                if permission.org_id:
                    resource["orgID"] = permission.org_id
                    owner = self.state.orgs.get(permission.org_id)
                    if owner is not None:
                        resource["org"] = owner.name
                permissions.append({"action": permission.action, "resource": resource})
        if reveal or self.state.token_listing == "plain":
            token = auth.token
        else:
            token = "REDACTED" if self.state.token_listing == "hashed" else "redacted"
        return {
            "id": auth.id, "token": token, "status": auth.status,
            "description": auth.description, "orgID": auth.org_id,
            "org": org.name if org else "", "userID": auth.user_id, "user": self.state.user_name,
            "permissions": permissions, "createdAt": auth.created_at,
            "updatedAt": auth.updated_at,
            "links": {"self": f"/api/v2/authorizations/{auth.id}",
                      "user": f"/api/v2/users/{auth.user_id}"},
        }  # fmt: skip

    def _authorizations(self, request: HttpRequest, auth: Authorization, item: str) -> tuple:
        if item:
            self._allow(request.method, "GET", "PATCH", "DELETE")
            if not _is_id(item):
                raise ApiError(400, "invalid", "id must have a length of 16 bytes")
            target = self.state.auths.get(item)
            if target is None:
                raise ApiError(404, "not found", "authorization not found")
            if request.method == "GET":
                self._require(auth, "read", "authorizations", None, target.org_id)
                return self._json(200, self._auth_json(target, reveal=False))
            self._require(auth, "write", "authorizations", None, target.org_id)
            if request.method == "DELETE":
                self.state.delete_auth(target.id)
                return 204, b"", {}
            body = _json_body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "invalid", "failed to decode request body: expected an object")
            status = body.get("status", target.status)
            if status not in ("active", "inactive"):
                raise ApiError(400, "invalid", f"unknown authorization status {status!r}")
            with self.state.lock:
                target.status = status
                target.description = body.get("description", target.description)
                target.updated_at = _now_rfc3339()
            return self._json(200, self._auth_json(target, reveal=False))
        self._allow(request.method, "GET", "POST")
        if request.method == "POST":
            return self._create_authorization(request, auth)
        org = self._find_org(request, required=False)
        user_id, user = request.param("userID"), request.param("user")
        with self.state.lock:
            found = [
                a for a in self.state.auths.values()
                if (org is None or a.org_id == org.id) and (not user_id or a.user_id == user_id)
                and (not user or user == self.state.user_name)
                and self._can(auth, "read", "authorizations", None, a.org_id)
            ]  # fmt: skip
        return self._json(
            200,
            {
                "links": {"self": "/api/v2/authorizations"},
                "authorizations": [self._auth_json(a, reveal=False) for a in found],
            },
        )

    def _create_authorization(self, request: HttpRequest, auth: Authorization) -> tuple:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid", "failed to decode request body: expected an object")
        org_id = body.get("orgID")
        if not org_id or not _is_id(str(org_id)) or org_id not in self.state.orgs:
            raise ApiError(400, "invalid", "orgID is missing or does not name an organization")
        self._require(auth, "write", "authorizations", None, org_id)
        raw_permissions = body.get("permissions")
        if not isinstance(raw_permissions, list) or not raw_permissions:
            raise ApiError(400, "invalid", "authorization must have at least one permission")
        permissions = []
        for raw in raw_permissions:
            resource = raw.get("resource") if isinstance(raw, dict) else None
            action = raw.get("action") if isinstance(raw, dict) else None
            if action not in ("read", "write") or not isinstance(resource, dict):
                raise ApiError(400, "invalid", f"invalid permission {raw!r}")
            type_ = resource.get("type")
            if type_ not in RESOURCE_TYPES:
                raise ApiError(400, "invalid", f"unknown resource type {type_!r}")
            resource_id, resource_org = resource.get("id"), resource.get("orgID")
            for value in (resource_id, resource_org):
                if value is not None and not _is_id(str(value)):
                    raise ApiError(400, "invalid", "id must have a length of 16 bytes")
            permission = Permission(action, type_, resource_id, resource_org)
            if not self._can(auth, action, type_, resource_id, resource_org):
                path = resource_path(type_, resource_id, resource_org)
                raise ApiError(
                    403, "forbidden",
                    f"permission {action}:{path} is not allowed: {action}:{path} is unauthorized",
                )  # fmt: skip
            permissions.append(permission)
        status = body.get("status", "active")
        if status not in ("active", "inactive"):
            raise ApiError(400, "invalid", f"unknown authorization status {status!r}")
        created = self.state.add_auth(
            org_id, permissions, str(body.get("description") or ""), status=status
        )
        return self._json(201, self._auth_json(created, reveal=True))

    # ---- write

    def _write(self, request: HttpRequest, auth: Authorization, info: dict[str, Any]) -> tuple:
        precision = request.param("precision") or "ns"
        if precision not in PRECISION_NS:
            raise ApiError(
                400, "invalid", "invalid precision; valid precision units are ns, us, ms, and s"
            )
        bucket_param = request.param("bucket")
        if not bucket_param:
            raise ApiError(404, "not found", "bucket not found")
        org = self._find_org(request)
        assert org is not None
        with self.state.lock:
            bucket = self.state.buckets.get(bucket_param) if _is_id(bucket_param) else None
            if bucket is None or bucket.org_id != org.id:
                bucket = self.state.bucket_by_name(org.id, bucket_param)
        if bucket is None:
            raise ApiError(404, "not found", f'bucket "{bucket_param}" not found')
        if not self._can(auth, "write", "buckets", bucket.id, org.id):
            raise ApiError(403, "forbidden", "insufficient permissions for write")
        data = self._decode_body(request)
        info["decoded_bytes"] = len(data)
        # No UTF-8 check: the 2.x engine does not validate keys ("TODO - remember to add back
        # unicode validation" in storage/engine.go WritePoints).
        text = data.decode("utf-8", "surrogateescape")
        points, rejected = parse_batch(text, precision, time.time_ns())
        info["points"] = len(points)
        info["rejected"] = [line.number for line in rejected]
        if rejected:
            raise ApiError(400, "invalid", "\n".join(line.message() for line in rejected))
        points, retention_error = self._drop_beyond_retention(bucket, points)
        problem = self.state.apply_points(bucket.id, points)
        if problem is not None:
            reason, dropped = problem
            message = (
                f"failure writing points to database: partial write: {reason} dropped={dropped}"
            )
            raise ApiError(422, "unprocessable entity", message)
        if retention_error is not None:
            raise ApiError(422, "unprocessable entity", retention_error)
        return 204, b"", {}

    def _drop_beyond_retention(
        self, bucket: Bucket, points: list[Any]
    ) -> tuple[list[Any], str | None]:
        """``MapShards`` (v1/coordinator/points_writer.go): a point older than now - retention
        is dropped unless a shard group made for another point of the request covers it."""
        if not bucket.retention_seconds:
            return points, None
        group_ns = self._shard_group_seconds(bucket.retention_seconds) * 10**9
        now_ns = time.time_ns()
        floor_ns = now_ns - bucket.retention_seconds * 10**9
        groups = {p.time_ns - p.time_ns % group_ns for p in points if p.time_ns >= floor_ns}
        kept, dropped = [], []
        for point in points:
            if point.time_ns >= floor_ns or point.time_ns - point.time_ns % group_ns in groups:
                kept.append(point)
            else:
                dropped.append(point)
        if not dropped:
            return points, None
        oldest = min(dropped, key=lambda p: p.time_ns)
        newest = max(dropped, key=lambda p: p.time_ns)
        bound = go_rfc3339_nano(floor_ns)

        def described(point: Any) -> str:
            return (
                f"point {series_key(point)} at {go_rfc3339_nano(point.time_ns)} dropped because "
                f"it violates a Retention Policy Lower Bound at {bound}"
            )

        message = (
            "failure writing points to database: partial write: dropped "
            f"{len(dropped)} points outside retention policy of duration "
            f"{go_duration(bucket.retention_seconds)} - oldest {described(oldest)}, newest "
            f"{described(newest)} dropped={len(dropped)} for database: {bucket.id} for "
            "retention policy: autogen"
        )
        return kept, message

    def _decode_body(self, request: HttpRequest) -> bytes:
        """``points.BatchReadCloser`` and ``Parser.parsePoints`` (http/points/): gzip, limit."""
        body = request.body
        limit = self.max_body_bytes
        too_large = ApiError(
            413, "request too large", "unable to read data: points batch is too large"
        )
        encoding = request.headers.get("Content-Encoding", "")
        if encoding not in ("gzip", "x-gzip"):
            if limit and len(body) > limit:
                raise too_large
            return body
        if len(body) < 10 or body[:3] != b"\x1f\x8b\x08":
            raise _internal_error()  # gzip.NewReader fails: a plain error, answered as a 500
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = decompressor.decompress(body, limit + 1 if limit else 0)
        except zlib.error as error:
            if "incorrect data check" in str(error) or "incorrect length check" in str(error):
                raise ApiError(
                    400, "invalid", "unable to read data: gzip: invalid checksum"
                ) from error
            raise ApiError(500, "internal error", f"unable to read data: flate: {error}") from error
        if limit and len(data) > limit:
            raise too_large
        if not decompressor.eof:
            raise ApiError(500, "internal error", "unable to read data: unexpected EOF")
        return data

    # ---- query

    def _query(self, request: HttpRequest, auth: Authorization) -> tuple:
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0]
        now_ns = time.time_ns()
        if content_type.strip() == "application/vnd.flux":
            source, dialect = request.body.decode("utf-8", "replace"), Dialect.from_json(None)
        elif content_type.strip() == "application/json":
            body = _json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("query"), str):
                raise ApiError(400, "invalid", "failed to decode request body: query is required")
            if body.get("type", "flux") != "flux":
                raise ApiError(400, "invalid", f"unsupported query type {body.get('type')!r}")
            extern = body.get("extern")
            if extern and (extern.get("body") or extern.get("imports")):
                raise ApiError(400, "invalid", "extern is not supported by the test double")
            if body.get("params"):
                raise ApiError(400, "invalid", "params are not supported by the test double")
            if body.get("now"):
                now_ns = int(datetime.fromisoformat(body["now"].replace("Z", "+00:00"))
                             .timestamp() * 1e9)  # fmt: skip
            source, dialect = body["query"], Dialect.from_json(body.get("dialect"))
        else:
            raise ApiError(400, "invalid", f"unsupported Content-Type {content_type!r}")
        try:
            org = self._find_org(request)
        except ApiError as error:
            raise ApiError(
                400, "invalid", f"failed to decode request body: {error.message}"
            ) from error
        assert org is not None
        try:
            stages = compile_query(source)
        except FluxError as error:
            raise ApiError(400, "invalid", str(error)) from error
        name = bucket_of(stages)
        bucket = self.state.bucket_by_name(org.id, name)
        if bucket is None or not self._can(auth, "read", "buckets", bucket.id, org.id):
            raise ApiError(
                404,
                "not found",
                f'failed to initialize execute state: could not find bucket "{name}"',
            )
        try:
            result = run_query(stages, lambda: self.state.series_of(bucket.id), now_ns)
        except FluxError as error:
            raise ApiError(400, "invalid", str(error)) from error
        payload = flux_to_csv(result, dialect).encode()
        headers = {"Content-Type": "text/csv; charset=utf-8"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            payload = gzip.compress(payload, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return 200, payload, headers


def main(argv: list[str] | None = None) -> int:
    """Serve the double in the foreground for a local demo."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.doubles.influxdb",
        description="Serve the InfluxDB OSS v2 test double until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument("--org", default="powerview")
    parser.add_argument("--admin-token", default="devtoken")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--token-listing", choices=TOKEN_LISTINGS, default="plain")
    args = parser.parse_args(argv)
    double = InfluxDBDouble(
        org=args.org, admin_token=args.admin_token, host=args.host, port=args.port,
        max_body_bytes=args.max_body_bytes, token_listing=args.token_listing,
    )  # fmt: skip
    try:
        double.start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"INFLUXDB_URL={double.url}")
    print(f"INFLUXDB_ORG={double.org}")
    print(f"INFLUXDB_ORG_ID={double.org_id}")
    print(f"INFLUXDB_ADMIN_TOKEN={double.admin_token}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
