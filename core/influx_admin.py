"""InfluxDB administration through the HTTP API: the org, company buckets, read-only tokens.

Everything goes through ``influxdb-client`` (no ``influx`` CLI on the hosts), and every function
takes its client and names explicitly so the tests can point it at the InfluxDB double.

A company's Grafana datasource reads its bucket with a token that has exactly one permission,
read on that bucket (by bucket ID and org ID), described ``powerview_token_for_bucket_<bucket>``;
the description is how the token is found again. InfluxDB OSS up to 2.8 lists token values, so
an existing token can be handed out again; OSS 2.9 stores tokens hashed by default (and Cloud
redacts them), so a listed value is only trusted after it has been tried against the bucket.

The clients come from ``core/influx_client.py`` (``connect``). Failures become
``InfluxAdminError`` with an ``ErrorKind`` that tells the caller what to do: ``configuration``
(401/403, unknown org: fix the settings, retrying will not help), ``temporary`` (unreachable,
timeout, 429, 5xx: try again later), ``usage`` (a company name that may not become a bucket:
nothing was created; ``code`` says why), ``unexpected`` (an answer this module does not
expect).

Answers of InfluxDB OSS 2.7 this module relies on (read in influxdata/influxdb, tag v2.7.12):

- ``GET /api/v2/buckets?orgID=…&name=…`` answers **404** ``bucket "x" not found`` when the
  bucket does not exist (``tenant/service_bucket.go``: ``FindBuckets`` calls
  ``GetBucketByName`` when both the org and the name are given), not an empty list: a 404
  there means "missing";
- creating a bucket whose name exists answers 422 (``EConflict`` in
  ``kit/transport/http/error_handler.go``);
- a retention between 1 s and 1 h is accepted by the HTTP layer, then refused by the storage
  engine with a plain error (``v1/services/meta/client.go``,
  ``ErrRetentionPolicyDurationTooLow``), which the API answers as a 500 "internal error":
  settings refuse such a retention before anything is created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from influxdb_client import (
    Authorization,
    BucketRetentionRules,
    InfluxDBClient,
    Permission,
    PermissionResource,
)

from core.influx_client import (
    CLIENT_ERRORS,
    classify_error,
    describe_error,
    status_of,
    with_token,
)
from core.names import company_case_conflict, reserved_company_reason
from core.outcomes import ErrorKind

READ_TOKEN_PREFIX = "powerview_token_for_bucket_"

log = logging.getLogger("powerview.influx_admin")
T = TypeVar("T")


class InfluxAdminError(RuntimeError):
    """An InfluxDB call that failed: its kind (see the module docstring), the HTTP status when
    the server answered, and for a refused company name the ``code`` of the refusal."""

    def __init__(
        self, message: str, kind: ErrorKind, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code


def _failure(client: InfluxDBClient, doing: str, error: BaseException) -> InfluxAdminError:
    return InfluxAdminError(
        f"{doing}: {describe_error(error, client.url)}", classify_error(error), status_of(error)
    )


def _call(client: InfluxDBClient, doing: str, call: Callable[[], T]) -> T:
    """Run one API call; turn any failure into a classified InfluxAdminError."""
    try:
        return call()
    except CLIENT_ERRORS as error:
        raise _failure(client, doing, error) from error


def find_org_id(client: InfluxDBClient, org_name: str) -> str:
    """The ID of an organization by name; a configuration error when it does not exist."""
    doing = f"looking up organization {org_name!r}"
    try:
        orgs = client.organizations_api().find_organizations(org=org_name)
    except CLIENT_ERRORS as error:
        if status_of(error) == 404:
            raise InfluxAdminError(
                f"{doing}: the organization does not exist (check INFLUXDB_ORG)",
                ErrorKind.CONFIGURATION,
                404,
            ) from error
        raise _failure(client, doing, error) from error
    for org in orgs:
        if org.name == org_name:
            org_id: str = org.id
            return org_id
    raise InfluxAdminError(
        f"{doing}: no such organization is visible to this token (it does not exist, or the "
        "token may not read it; check INFLUXDB_ORG and INFLUXDB_ADMIN_TOKEN)",
        ErrorKind.CONFIGURATION,
    )


def find_bucket_id(client: InfluxDBClient, org_id: str, name: str) -> str | None:
    """The ID of a bucket of the org by name, or None.

    Asked by org and name, InfluxDB 2.x answers 404 for a missing bucket (see the module
    docstring); an empty list (older servers, or a bucket the token may not read) is missing too.
    """
    doing = f"looking up bucket {name!r}"
    try:
        found = client.buckets_api().find_buckets(org_id=org_id, name=name).buckets
    except CLIENT_ERRORS as error:
        if status_of(error) == 404:
            return None
        raise _failure(client, doing, error) from error
    for bucket in found or []:
        if bucket.name == name and bucket.org_id == org_id:
            bucket_id: str = bucket.id
            return bucket_id
    return None


def ensure_bucket(client: InfluxDBClient, org_id: str, name: str, retention_seconds: int) -> str:
    """The ID of the bucket ``name``, created with ``retention_seconds`` (0: forever) if missing.

    Two processes may create the same company bucket at once; the loser gets 422 (InfluxDB 2.x
    answers a duplicate name with 422 "conflict", some proxies and later versions with 409) and
    simply reads the winner's bucket.
    """
    bucket_id = find_bucket_id(client, org_id, name)
    if bucket_id is not None:
        return bucket_id
    return _create_bucket(client, org_id, name, retention_seconds)


def _create_bucket(client: InfluxDBClient, org_id: str, name: str, retention_seconds: int) -> str:
    rules = BucketRetentionRules(type="expire", every_seconds=retention_seconds)
    try:
        created = client.buckets_api().create_bucket(
            bucket_name=name, org=org_id, retention_rules=rules
        )
    except CLIENT_ERRORS as error:
        if status_of(error) in (409, 422):
            bucket_id = find_bucket_id(client, org_id, name)
            if bucket_id is not None:
                return bucket_id
        raise _failure(client, f"creating bucket {name!r}", error) from error
    log.info(
        "created bucket %r (id %s, retention %s)",
        name,
        created.id,
        f"{retention_seconds} s" if retention_seconds else "forever",
    )
    created_id: str = created.id
    return created_id


def bucket_names(client: InfluxDBClient, org_id: str) -> list[str]:
    """The names of every bucket of the org (all pages)."""
    return _call(
        client,
        f"listing the buckets of organization {org_id}",
        lambda: [b.name for b in client.buckets_api().find_buckets_iter(org_id=org_id, limit=100)],
    )


def ensure_company_bucket(
    client: InfluxDBClient, org_id: str, name: str, retention_seconds: int, meta_bucket: str
) -> str:
    """``ensure_bucket`` for a company, after the company-name rules of ``core.names``.

    A reserved name (the meta bucket without regard to case, a leading ``_``...) or a name that
    equals an existing bucket of another spelling (``ACME`` beside ``acme``) is refused with
    kind ``usage`` before anything is created.
    """
    reason = reserved_company_reason(name, meta_bucket)
    if reason is not None:
        raise InfluxAdminError(reason, ErrorKind.USAGE, code="reserved_company_name")
    bucket_id = find_bucket_id(client, org_id, name)
    if bucket_id is not None:
        return bucket_id
    other = company_case_conflict(name, bucket_names(client, org_id))
    if other is not None:
        raise InfluxAdminError(
            f"company name {name!r} differs from the existing company {other!r} only by case: "
            f"rename the folder to {other!r} (company names are compared without case)",
            ErrorKind.USAGE,
            code="company_case_conflict",
        )
    return _create_bucket(client, org_id, name, retention_seconds)


def read_token_description(bucket_name: str) -> str:
    """The description that identifies the read token of a bucket."""
    return f"{READ_TOKEN_PREFIX}{bucket_name}"


def is_read_token_for(authorization: Authorization, org_id: str, bucket_id: str) -> bool:
    """True when the token is active and has exactly one permission: read on that bucket."""
    permissions = authorization.permissions or []
    if authorization.status not in (None, "active") or len(permissions) != 1:
        return False
    permission = permissions[0]
    resource = permission.resource
    return (
        permission.action == "read"
        and resource is not None
        and resource.type == "buckets"
        and resource.id == bucket_id
        and resource.org_id == org_id
    )


def find_read_tokens(client: InfluxDBClient, org_id: str, bucket_name: str) -> list[Authorization]:
    """Every authorization of the org described as the bucket's read token, oldest first."""
    description = read_token_description(bucket_name)
    found = _call(
        client,
        f"listing the tokens of organization {org_id}",
        lambda: client.authorizations_api().find_authorizations(org_id=org_id),
    )
    matching = [a for a in found or [] if a.description == description]
    return sorted(matching, key=lambda a: (str(a.created_at or ""), a.id))


def token_works(client: InfluxDBClient, token: str | None, bucket_id: str) -> bool:
    """Whether ``token`` really reads the bucket (a listed value may be a hash placeholder)."""
    if not token:
        return False
    with with_token(client, token) as probe:
        try:
            probe.buckets_api().find_bucket_by_id(bucket_id)
        except CLIENT_ERRORS as error:
            if status_of(error) in (400, 401, 403, 404):
                return False
            raise _failure(client, "trying a listed token", error) from error
    return True


def find_read_token(
    client: InfluxDBClient, org_id: str, bucket_id: str, bucket_name: str
) -> Authorization | None:
    """The bucket's read token whose value the server returned and that works, or None."""
    for authorization in reversed(find_read_tokens(client, org_id, bucket_name)):
        if is_read_token_for(authorization, org_id, bucket_id) and token_works(
            client, authorization.token, bucket_id
        ):
            return authorization
    return None


def create_read_token(
    client: InfluxDBClient, org_id: str, bucket_id: str, bucket_name: str
) -> Authorization:
    """Create a token that can only read the bucket; the answer carries the token value."""
    permission = Permission(
        action="read",
        resource=PermissionResource(type="buckets", id=bucket_id, org_id=org_id),
    )
    wanted = Authorization(
        org_id=org_id,
        permissions=[permission],
        description=read_token_description(bucket_name),
    )
    created = _call(
        client,
        f"creating the read token of bucket {bucket_name!r}",
        lambda: client.authorizations_api().create_authorization(authorization=wanted),
    )
    if not created.token:
        raise InfluxAdminError(
            f"creating the read token of bucket {bucket_name!r}: the server returned no token",
            ErrorKind.UNEXPECTED,
        )
    return created


def delete_tokens(client: InfluxDBClient, authorizations: list[Authorization]) -> list[str]:
    """Delete authorizations (one already gone counts as deleted); returns their IDs."""
    deleted = []
    for authorization in authorizations:
        try:
            client.authorizations_api().delete_authorization(authorization.id)
        except CLIENT_ERRORS as error:
            if status_of(error) != 404:
                raise _failure(client, f"deleting token {authorization.id}", error) from error
        deleted.append(authorization.id)
    return deleted


@dataclass(frozen=True)
class TokenOutcome:
    """What ensure/rotate did: the token to hand out, and which tokens it replaced and why.

    ``action`` is ``found`` (an existing token is reused), ``created`` (there was none) or
    ``rotated`` (a new token replaced ``replaced``). ``unretrievable`` is True when a rotation
    happened only because the server does not return existing token values.
    """

    token: str
    authorization_id: str
    action: str
    replaced: list[str] = field(default_factory=list)
    unretrievable: bool = False


def ensure_read_token(
    client: InfluxDBClient, org_id: str, bucket_id: str, bucket_name: str
) -> TokenOutcome:
    """Reuse the bucket's working read token, or create one (replacing unusable ones).

    A token with the right description but the wrong permissions (e.g. a bucket recreated under
    a new ID) or whose value the server hides cannot be handed out; a new token is created first,
    then those are deleted, so there is never a moment without a working token.
    """
    existing = find_read_tokens(client, org_id, bucket_name)
    usable = find_read_token(client, org_id, bucket_id, bucket_name) if existing else None
    if usable is not None:
        return TokenOutcome(usable.token, usable.id, "found")
    created = create_read_token(client, org_id, bucket_id, bucket_name)
    if not existing:
        return TokenOutcome(created.token, created.id, "created")
    unretrievable = any(is_read_token_for(a, org_id, bucket_id) for a in existing)
    replaced = delete_tokens(client, existing)
    return TokenOutcome(created.token, created.id, "rotated", replaced, unretrievable)


def rotate_read_token(
    client: InfluxDBClient, org_id: str, bucket_id: str, bucket_name: str
) -> TokenOutcome:
    """Create a new read token, then delete every older token of the bucket."""
    existing = find_read_tokens(client, org_id, bucket_name)
    created = create_read_token(client, org_id, bucket_id, bucket_name)
    replaced = delete_tokens(client, [a for a in existing if a.id != created.id])
    return TokenOutcome(created.token, created.id, "rotated" if replaced else "created", replaced)
