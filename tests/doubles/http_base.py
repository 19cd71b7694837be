"""The HTTP server every test double runs on, so that each double keeps only its server's rules.

The InfluxDB double (``influxdb.py``), the Grafana double (``grafana.py``) and the v2 adapter
in front of a real influxd (``tests/realinflux/server.py``) all subclass ``HttpDouble``. This
module owns what they had each written again:

- a threaded server on ``127.0.0.1`` (port 0: a free one), started and stopped by ``start``/
  ``stop`` or as a context manager; ``stop`` also drops the connections still open, and a
  stopped double listens again on the same port when started anew;
- reading a request: the target split into path and query, the headers, the body (sized by
  ``Content-Length`` or sent chunked), as one ``HttpRequest``;
- writing an answer: an ``HttpAnswer`` (``json_answer``, ``empty_answer``) with its
  ``Content-Length``, no body for ``HEAD``, or ``DROP`` to close the connection unanswered;
- a ``FaultQueue``: the failures a test injects, consumed by the requests they match;
- ``copy_state``: the copy behind each double's ``copy()``, so that a state built once (by
  slow playbook runs) can be handed to each test as a private copy.

A subclass sets ``name`` (its thread's name) and ``methods`` (the methods it serves: any other
gets the standard library's 501), and implements ``answer(request) -> HttpAnswer``. What a
server answers, and in which error shape a fault is answered, stays in the subclass.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol, Self, TypeVar
from urllib.parse import parse_qs, urlsplit


class _Locked(Protocol):
    lock: Any


_State = TypeVar("_State", bound=_Locked)
DISCONNECT = -1  # the status of an answer that is no answer: the connection is closed


@dataclass(frozen=True)
class HttpRequest:
    """One request as received."""

    method: str
    target: str  # path and query as sent on the request line
    path: str  # the target's path, still percent-encoded
    query: dict[str, list[str]]  # every parameter, blank values kept
    headers: Message  # case-insensitive ``get``
    body: bytes

    def param(self, name: str) -> str:
        """The first value of a query parameter, or an empty string."""
        values = self.query.get(name)
        return values[0] if values else ""


@dataclass(frozen=True)
class HttpAnswer:
    """What to send back: a status, headers (``Content-Length`` is added) and a body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


DROP = HttpAnswer(DISCONNECT)


@dataclass(frozen=True)
class RecordedRequest:
    """What a double received, for assertions and for the API contract check
    (``tests.contracts.openapi_check``); ``login`` is the Grafana user who signed in."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes | None
    json: Any
    status: int
    login: str | None = None


def json_answer(status: int, body: Any, content_type: str = "application/json") -> HttpAnswer:
    """``body`` as JSON, with the ``Content-Type`` the server sends."""
    return HttpAnswer(status, json.dumps(body).encode("utf-8"), {"Content-Type": content_type})


def empty_answer(status: int, headers: dict[str, str] | None = None) -> HttpAnswer:
    """An answer without a body (204, or a HEAD)."""
    return HttpAnswer(status, b"", dict(headers or {}))


# --------------------------------------------------------------------------- faults


def any_request(request: HttpRequest) -> bool:
    return True


@dataclass
class Fault:
    """An injected failure: answer ``status`` (or ``DISCONNECT``) to matching requests.

    It applies to the next ``count`` matching requests that reach it, or, with ``nth``, to the
    ``nth`` matching request from now only. ``rank`` orders faults that match the same request
    (lowest first, then the order they were added); ``kind`` names it for ``replace``.
    """

    status: int
    count: int = 1
    matches: Callable[[HttpRequest], bool] = any_request
    nth: int | None = None
    retry_after: float | None = None
    kind: str = ""
    rank: int = 0
    seen: int = 0  # matching requests since it was added


class FaultQueue:
    """The faults a test injected, consumed by the requests they match (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault, replace: bool = False) -> None:
        """Queue ``fault``; with ``replace``, it takes the place of the faults of its kind."""
        with self._lock:
            if replace:
                self._faults = [f for f in self._faults if f.kind != fault.kind]
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, request: HttpRequest) -> Fault | None:
        """The fault that applies to ``request``, consumed, or None."""
        with self._lock:
            matching = [fault for fault in self._faults if fault.matches(request)]
            for fault in matching:
                fault.seen += 1
            chosen = None
            for fault in sorted(matching, key=lambda f: f.rank):
                due = fault.seen == fault.nth if fault.nth is not None else fault.count > 0
                if due:
                    fault.count -= 1
                    chosen = fault
                    break
            self._faults = [  # a spent fault, or an nth one whose turn went by, is dropped
                f for f in self._faults if f.count > 0 and (f.nth is None or f.seen < f.nth)
            ]
            return chosen


def copy_state(state: _State) -> _State:
    """A deep copy of a double's state object, with a fresh ``lock`` of the same kind (the
    caller holds the original's lock)."""
    twin = object.__new__(type(state))
    attributes = {name: value for name, value in vars(state).items() if name != "lock"}
    vars(twin).update(copy.deepcopy(attributes))
    twin.lock = type(state.lock)()
    return twin


# --------------------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], double: HttpDouble) -> None:
        self.double = double
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: each double keeps its own request log."""

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        if self.command not in self.server.double.methods:  # as for a method with no do_*
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        body = self._read_body()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        request = HttpRequest(self.command, self.path, parts.path, query, self.headers, body)
        answer = self.server.double.answer(request)
        if answer.status == DISCONNECT:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD" and answer.body:
                self.wfile.write(answer.body)
        except ConnectionError:  # the client gave up waiting (a delay, a timeout): nobody reads
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815


class HttpDouble:
    """A server on ``host:port`` answering each request with ``answer``; see the module
    docstring."""

    name: ClassVar[str] = "http-double"
    methods: ClassVar[frozenset[str]] = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    def answer(self, request: HttpRequest) -> HttpAnswer:
        """The server's answer to ``request`` (``DROP`` to hang up)."""
        raise NotImplementedError

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        """Listen on ``host:port`` (port 0 picks a free one) and serve in a daemon thread."""
        with self._lifecycle:
            if self._server is None:
                self._server = _Server((self.host, self.port), self)
                self.port = self._server.server_address[1]
                self._thread = threading.Thread(
                    target=self._server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"{self.name}:{self.port}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.shutdown()
            server.server_close()
            with server.connections_lock:
                for connection in list(server.connections):
                    with contextlib.suppress(OSError):
                        connection.shutdown(socket.SHUT_RDWR)
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"
