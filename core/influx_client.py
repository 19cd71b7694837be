"""The one place that builds InfluxDB clients, and the classification of their failures.

Every process talks to InfluxDB through ``influxdb-client`` made here from ``InfluxSettings``:
the writer and its sender process (``core/influx_writer.py``), the admin functions
(``core/influx_admin.py``), ``manage_influx_tokens.py``, ``tsv_parser.py --check``
(``core/health.py``) and the playbooks' preflight. Two retry policies exist, and urllib3 binds
retries to a client's connection pool, so a process that both administers and writes holds
two clients, both made by ``connect``:

- admin calls and queries (``connect(settings)``) are never retried: they are few and
  idempotent, and the caller decides from the error kind instead of waiting behind hidden
  retries (a bucket or token creation retried blindly could also be made twice);
- writes (``connect(settings, retry_writes=True)``) are retried on 429, 5xx, timeouts and
  refused connections with exponential backoff (``Retry-After`` honoured up to the longest
  backoff), POST only, ``INFLUXDB_MAX_RETRIES`` times from ``INFLUXDB_RETRY_INTERVAL_MS``.

A failure of any call is an exception of ``CLIENT_ERRORS``; ``classify_error`` gives its
``ErrorKind`` and ``describe_error`` a line for an operator:

============================================  ==============================================
failure                                       kind
============================================  ==============================================
401, 403 (token refused or lacking a right)   ``configuration``: fix the settings; retrying
                                              will not help
429, 5xx, unreachable, timeout                ``temporary``: try again later
any other answer (400, 404, 422...)           ``unexpected``: callers that expect one of
                                              these (a 404 for a missing bucket) handle it
                                              before classifying
============================================  ==============================================

The server's health (``/health``, public in InfluxDB OSS 2.7: ``http/health.go``) is read
with the client's own ``HealthService``: ``InfluxDBClient.health()`` is deprecated and, like
``ping()``, swallows the error that says why the server cannot be reached.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Self

import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.write.retry import WritesRetry
from influxdb_client.domain.health_check import HealthCheck
from influxdb_client.rest import ApiException
from influxdb_client.service.health_service import HealthService

from core.outcomes import ErrorKind
from core.settings import InfluxSettings

CLIENT_ERRORS = (ApiException, InfluxDBError, urllib3.exceptions.HTTPError, OSError)


class _RequestRetry(WritesRetry):
    """WritesRetry whose time budget starts with each request, not with the client.

    The library computes the ``max_retry_time`` deadline once, when the retry object is
    made; passed to a client that lives for a whole sweep, the budget would run out after
    a few minutes and a later failure would not be retried at all. A ``Retry-After`` longer
    than the longest backoff is cut to it, so one answer cannot stall a sweep for an hour.
    """

    def increment(self, *args: Any, **kwargs: Any) -> Self:
        if not self.history:
            self.retry_timeout = datetime.now() + timedelta(seconds=self.max_retry_time)
        retry: Self = super().increment(*args, **kwargs)
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        retry_after: float | None = super().get_retry_after(response)
        if retry_after is None:
            return None
        longest: float = self.max_retry_delay
        return min(retry_after, longest)


def _write_retry(settings: InfluxSettings) -> _RequestRetry | bool:
    """The writes' retry policy (see the module docstring); False when retries are off."""
    if not settings.max_retries:
        return False
    interval_s = settings.retry_interval_ms / 1000
    max_retries = settings.max_retries
    max_delay_s = interval_s * 2 ** max(max_retries, 1)
    return _RequestRetry(
        total=max_retries,
        retry_interval=interval_s,
        max_retry_delay=max_delay_s,
        max_retry_time=(max_delay_s + settings.timeout_s) * (max_retries + 1),
        exponential_base=2,
        allowed_methods=frozenset({"POST"}),
        raise_on_status=True,
    )


def connect(settings: InfluxSettings, retry_writes: bool = False) -> InfluxDBClient:
    """A client for ``settings.url`` with the admin token, the request timeout (0: none) and
    the retry policy of admin calls (none) or of writes (``retry_writes``)."""
    timeout_ms = int(settings.timeout_s * 1000) if settings.timeout_s > 0 else None
    return InfluxDBClient(
        url=settings.url,
        token=settings.token,
        org=settings.org,
        timeout=timeout_ms,
        retries=_write_retry(settings) if retry_writes else False,
    )


def with_token(client: InfluxDBClient, token: str) -> InfluxDBClient:
    """A client for the same server and timeout, without retries, authenticated by ``token``
    (to try a token, not to use it)."""
    timeout_s = (client.conf.timeout or 0) / 1000
    return connect(InfluxSettings(url=client.url, token=token, timeout_s=timeout_s))


def server_health(client: InfluxDBClient) -> HealthCheck:
    """The server's ``/health`` answer; raises one of ``CLIENT_ERRORS`` when there is none
    (a 503 of an unhealthy server is an ``ApiException`` whose body says why)."""
    health: HealthCheck = HealthService(client.api_client).get_health()
    return health


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a failed call, or None when no answer came."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return status
    response = getattr(error, "response", None)
    status = getattr(response, "status", None)
    return status if isinstance(status, int) else None


def classify_error(error: BaseException) -> ErrorKind:
    """The kind of an exception raised by influxdb-client or urllib3 (see module docstring)."""
    status = status_of(error)
    if status is not None:
        if status == 429 or status >= 500:
            return ErrorKind.TEMPORARY
        if status in (401, 403):
            return ErrorKind.CONFIGURATION
        return ErrorKind.UNEXPECTED
    if isinstance(error, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return ErrorKind.TEMPORARY
    return ErrorKind.UNEXPECTED


def server_message(error: BaseException) -> str:
    """The ``message`` of the server's JSON error body, else the body or the error itself."""
    body = getattr(error, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)
    message = getattr(error, "message", None)
    return str(message or error)


def describe_error(error: BaseException, url: str) -> str:
    """A one-line explanation of a failed call, for an operator."""
    status = status_of(error)
    if status == 401:
        return f"InfluxDB refused the token (HTTP 401: {server_message(error)})"
    if status == 403:
        return f"the token lacks a permission (HTTP 403: {server_message(error)})"
    if status is not None:
        return f"InfluxDB answered HTTP {status}: {server_message(error)}"
    if isinstance(error, urllib3.exceptions.NewConnectionError | ConnectionError):
        reason = str(error).rsplit(": ", 1)[-1]
        return f"cannot reach InfluxDB at {url} ({reason})"
    if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        return f"InfluxDB at {url} did not answer in time ({error})"
    if isinstance(error, urllib3.exceptions.HTTPError | OSError):
        return f"cannot reach InfluxDB at {url} ({error.__class__.__name__}: {error})"
    return f"{error.__class__.__name__}: {error}"
