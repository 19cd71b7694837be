"""A real InfluxDB storage engine for the tests: ``influxd`` 1.x behind a small v2 adapter.

Debian's ``influxdb`` package (1.6.7) is a real InfluxDB: the TSM storage engine and the
line-protocol parser (``models/``) that 2.x still uses, with the v1 HTTP API only
(``/write?db=&precision=``, InfluxQL ``/query``, ``/ping``). PowerView speaks v2, so
``V2Adapter`` serves the few v2 calls the parser makes and forwards each write to ``/write``
unchanged: the body (still gzip) goes to influxd as it came, and influxd's status and body
come back as they are. Nothing here decides whether a write is good: influxd does.

=============================  ==============================================================
v2 call of the parser           what the adapter does
=============================  ==============================================================
``GET /ping``, ``/health``      answers itself (influxd is up: the adapter started after it)
``GET /api/v2/orgs?org=``       one organization, ``ORG`` (404 for any other name, as 2.7)
``GET /api/v2/buckets``         ``SHOW DATABASES``; org + name of a missing bucket: 404, as 2.7
``POST /api/v2/buckets``        ``CREATE DATABASE ... WITH DURATION <retention>`` (422 when it
                                exists, as 2.7)
``POST /api/v2/write``          ``POST /write?db=<bucket>&precision=<n|u|ms|s>``, body and
                                headers unchanged, influxd's answer passed back unchanged
=============================  ==============================================================

The adapter is test code (an ``HttpDouble`` of ``tests.doubles.http_base``, like the
doubles): no token scoping, no Flux. Start both from a script with
``RealInflux`` (``with RealInflux.start() as server: server.url, server.org, server.token``);
the test tier uses it through a session fixture (``tests/realinflux/conftest.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.doubles.http_base import HttpAnswer, HttpDouble, HttpRequest

ORG = "powerview"
ORG_ID = "0a0b0c0d0e0f1011"
TOKEN = "realinflux-test-token"
REQUIRE_VARIABLE = "POWERVIEW_REQUIRE_INFLUXD"
_V1_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
_START_TIMEOUT_S = 120.0


class InfluxdUnavailableError(RuntimeError):
    """influxd is not installed and cannot be installed here; the message says why."""


def find_influxd(install: bool = True) -> str:
    """The path of ``influxd`` 1.x, installed from Debian's ``influxdb`` package when missing
    and the machine allows it (root and apt-get); InfluxdUnavailableError otherwise."""
    path = shutil.which("influxd")
    if path is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=False, env=environment, timeout=600, **quiet)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "influxdb"],
            check=False,
            env=environment,
            timeout=900,
            **quiet,
        )
        path = shutil.which("influxd")
    if path is None:
        why = (
            "not root"
            if os.geteuid() != 0
            else "no apt-get"
            if not shutil.which("apt-get")
            else ("apt-get install influxdb failed")
        )
        raise InfluxdUnavailableError(f"influxd is not installed and cannot be installed ({why})")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(folder: Path, rpc_port: int, http_port: int) -> str:
    """An influxd 1.x configuration: everything in ``folder``, 127.0.0.1 only, nothing else
    listening (no UDP, Graphite, collectd, OpenTSDB), no reporting, no self-monitoring."""
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{folder / "meta"}"
  logging-enabled = false

[data]
  dir = "{folder / "data"}"
  wal-dir = "{folder / "wal"}"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10m"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[ifql]
  enabled = false

[continuous_queries]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""


class Influxd:
    """An ``influxd`` child process with its own configuration and data folder."""

    def __init__(self, executable: str, folder: Path) -> None:
        self.folder = folder
        self.http_port = _free_port()
        config = folder / "influxdb.conf"
        config.write_text(_config(folder, _free_port(), self.http_port))
        self.log_path = folder / "influxd.log"
        # A clean environment: influxd reads INFLUXDB_* variables as configuration.
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [executable, "-config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=folder,
                start_new_session=True,
            )
        self._wait_until_up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"influxd ended with {self.process.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
                try:
                    connection.request("GET", "/ping")
                    if connection.getresponse().status == 204:
                        return
                finally:
                    connection.close()
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {_START_TIMEOUT_S:g} s")

    def query(self, text: str, database: str | None = None, epoch: str = "ns") -> dict[str, Any]:
        """One InfluxQL statement over ``/query``; the decoded JSON answer."""
        params = {"q": text, "epoch": epoch}
        if database:
            params["db"] = database
        status, body, _ = self.request("POST", "/query", params, b"", {})
        answer = json.loads(body or b"{}")
        if status != 200:
            raise RuntimeError(f"influxd answered {status} to {text!r}: {answer}")
        return answer

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, bytes, dict[str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=60)
        try:
            connection.request(method, f"{path}?{urlencode(params)}", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class _Bucket:
    name: str
    retention_seconds: int
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = hashlib.sha256(self.name.encode()).hexdigest()[:16]

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "orgID": ORG_ID,
            "name": self.name,
            "type": "user",
            "retentionRules": [{"type": "expire", "everySeconds": self.retention_seconds}],
        }


def _duration_seconds(text: str) -> int:
    """influxd's ``87600h0m0s`` (``0s``: forever) in seconds."""
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number or 0) * {"h": 3600, "m": 60, "s": 1}.get(char, 0)
            number = ""
    return total


class V2Adapter(HttpDouble):
    """The v2 calls of the parser over a real influxd (see the module docstring)."""

    name = "influxd-v2-adapter"
    methods = frozenset({"GET", "HEAD", "POST"})

    def __init__(self, influxd: Influxd) -> None:
        super().__init__()
        self.influxd = influxd
        self.lock = threading.Lock()
        self.write_statuses: list[int] = []

    def answer(self, request: HttpRequest) -> HttpAnswer:
        # parse_qs without blank values, as the adapter always read them: ``org=`` is no org
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.target).query).items()}
        headers = dict(request.headers.items())
        return HttpAnswer(*self.handle(request.method, request.path, query, headers, request.body))

    # -- requests -------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if path in ("/ping", "/health"):
            if path == "/ping":
                return 204, b"", {}
            return self._json(200, {"name": "influxdb", "status": "pass", "checks": []})
        if headers.get("Authorization", "").split(" ", 1)[-1] != TOKEN:
            return self._error(401, "unauthorized", "unauthorized access")
        if path == "/api/v2/orgs" and method == "GET":
            if query.get("org", ORG) != ORG:
                return self._error(
                    404, "not found", f'organization name "{query["org"]}" not found'
                )
            return self._json(200, {"orgs": [{"id": ORG_ID, "name": ORG}]})
        if path == "/api/v2/buckets" and method == "GET":
            return self._list_buckets(query)
        if path == "/api/v2/buckets" and method == "POST":
            return self._create_bucket(json.loads(body or b"{}"))
        if path.startswith("/api/v2/buckets/") and method == "GET":
            wanted = path.rsplit("/", 1)[-1]
            for bucket in self.buckets():
                if bucket.id == wanted:
                    return self._json(200, bucket.json())
            return self._error(404, "not found", "bucket not found")
        if path == "/api/v2/write" and method == "POST":
            return self._write(query, headers, body)
        return self._error(404, "not found", "path not found")

    def buckets(self) -> list[_Bucket]:
        answer = self.influxd.query("SHOW DATABASES")
        names = [row[0] for row in _rows(answer) if not row[0].startswith("_")]
        found = []
        for name in names:
            policies = self.influxd.query(f'SHOW RETENTION POLICIES ON "{name}"')
            durations = [row[1] for row in _rows(policies) if row[0] == "autogen"]
            found.append(_Bucket(name, _duration_seconds(durations[0]) if durations else 0))
        return sorted(found, key=lambda bucket: bucket.id)

    def _list_buckets(self, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        found = self.buckets()
        name = query.get("name")
        if name:
            found = [bucket for bucket in found if bucket.name == name]
            if not found and (query.get("orgID") or query.get("org")):
                return self._error(404, "not found", f'bucket "{name}" not found')
        after = query.get("after")
        if after:
            found = [bucket for bucket in found if bucket.id > after]
        limit = int(query.get("limit") or 20)
        found = found[:limit]
        links = {"self": "/api/v2/buckets"}
        if len(found) >= limit:  # paging.go NewPagingLinks: a full page has a next link
            links["next"] = "/api/v2/buckets?next"
        return self._json(200, {"links": links, "buckets": [bucket.json() for bucket in found]})

    def _create_bucket(self, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        name = str(body.get("name") or "")
        rules = body.get("retentionRules") or [{}]
        seconds = int(rules[0].get("everySeconds") or 0)
        with self.lock:
            if any(bucket.name == name for bucket in self.buckets()):
                return self._error(422, "conflict", f"bucket with name {name} already exists")
            duration = f"{seconds}s" if seconds else "INF"
            answer = self.influxd.query(
                f'CREATE DATABASE "{name}" WITH DURATION {duration} NAME "autogen"'
            )
        problems = [result.get("error") for result in answer.get("results", [])]
        if any(problems):  # 2.7 answers a refused retention policy as an internal error
            return self._error(500, "internal error", "; ".join(filter(None, problems)))
        return self._json(201, _Bucket(name, seconds).json())

    def _write(
        self, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        params = {"db": query.get("bucket", "")}
        precision = query.get("precision") or "ns"
        if precision not in _V1_PRECISION:
            return self._error(
                400, "invalid", "invalid precision; valid precision units are ns, us, ms, and s"
            )
        params["precision"] = _V1_PRECISION[precision]
        forwarded = {
            name: value
            for name, value in headers.items()
            if name.lower() in ("content-encoding", "content-type")
        }
        status, payload, answer_headers = self.influxd.request(
            "POST", "/write", params, body, forwarded
        )
        with self.lock:
            self.write_statuses.append(status)
        passed = {k: v for k, v in answer_headers.items() if k.lower() == "content-type"}
        return status, payload, passed

    @staticmethod
    def _json(status: int, body: Any) -> tuple[int, bytes, dict[str, str]]:
        return status, json.dumps(body).encode(), {"Content-Type": "application/json"}

    def _error(self, status: int, code: str, message: str) -> tuple[int, bytes, dict[str, str]]:
        return self._json(status, {"code": code, "message": message})


def _rows(answer: dict[str, Any]) -> list[list[Any]]:
    return [
        row
        for result in answer.get("results", [])
        for series in result.get("series", [])
        for row in series.get("values", [])
    ]


@dataclass
class RealInflux:
    """influxd and its adapter, running; ``url``, ``org`` and ``token`` are what PowerView's
    settings need (INFLUXDB_HOST, INFLUXDB_ORG, INFLUXDB_ADMIN_TOKEN)."""

    influxd: Influxd
    adapter: V2Adapter
    folder: Path
    org: str = ORG
    token: str = TOKEN

    @property
    def url(self) -> str:
        return self.adapter.url

    def env(self) -> dict[str, str]:
        """The settings that point a PowerView process at this server."""
        return {
            "INFLUXDB_HOST": self.url,
            "INFLUXDB_ORG": self.org,
            "INFLUXDB_ADMIN_TOKEN": self.token,
        }

    def query(self, text: str, database: str | None = None) -> dict[str, Any]:
        return self.influxd.query(text, database)

    def drop_all(self) -> None:
        """Remove every database (between tests that need an empty server)."""
        for bucket in self.adapter.buckets():
            self.influxd.query(f'DROP DATABASE "{bucket.name}"')

    def stop(self) -> None:
        self.adapter.stop()
        self.influxd.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def start(cls, install: bool = True) -> Iterator[RealInflux]:
        """influxd (installed if needed and possible) and the adapter, stopped on exit."""
        executable = find_influxd(install)
        folder = Path(tempfile.mkdtemp(prefix="powerview-influxd-"))
        try:
            influxd = Influxd(executable, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        server = cls(influxd, V2Adapter(influxd).start(), folder)
        try:
            yield server
        finally:
            server.stop()
