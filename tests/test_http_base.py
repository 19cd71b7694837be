"""The HTTP base of the doubles (``tests/doubles/http_base.py``): requests read as sent,
answers written as given, the lifecycle, and the fault queue's order."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.doubles.http_base import (
    DISCONNECT,
    DROP,
    Fault,
    FaultQueue,
    HttpAnswer,
    HttpDouble,
    HttpRequest,
    empty_answer,
    json_answer,
)


class Echo(HttpDouble):
    """Answers what it read, as JSON; ``/drop`` hangs up, ``/empty`` has no body."""

    name = "echo-double"
    methods = frozenset({"GET", "HEAD", "POST"})

    def answer(self, request: HttpRequest) -> HttpAnswer:
        if request.path == "/drop":
            return DROP
        if request.path == "/empty":
            return empty_answer(204, {"X-Empty": "yes"})
        read = {
            "method": request.method,
            "target": request.target,
            "path": request.path,
            "query": request.query,
            "a": request.param("a"),
            "header": request.headers.get("x-test"),
            "body": request.body.decode(),
        }
        return json_answer(200, read, "application/json; charset=utf-8")


def call(double: HttpDouble, method: str, target: str, **options) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(double.host, double.port, timeout=10)
    connection.request(method, target, **options)
    return connection.getresponse()


def test_a_request_is_read_as_sent_and_the_answer_written_as_given():
    with Echo() as double:
        assert double.port != 0 and double.url == f"http://127.0.0.1:{double.port}"
        response = call(double, "POST", "/a%2Fb?a=&b=1", body=b"hello", headers={"X-Test": "t"})
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/json; charset=utf-8"
        assert json.loads(response.read()) == {
            "method": "POST",
            "target": "/a%2Fb?a=&b=1",
            "path": "/a%2Fb",
            "query": {"a": [""], "b": ["1"]},
            "a": "",
            "header": "t",
            "body": "hello",
        }


def test_a_chunked_body_is_read_whole():
    with Echo() as double:
        response = call(
            double, "POST", "/", body=iter([b"ab", b"cd"]), encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )  # fmt: skip
        assert json.loads(response.read())["body"] == "abcd"


def test_head_and_empty_answers_carry_no_body():
    with Echo() as double:
        head = call(double, "HEAD", "/")
        assert head.status == 200 and int(head.getheader("Content-Length")) > 0
        assert head.read() == b""
        empty = call(double, "GET", "/empty")
        assert (empty.status, empty.getheader("X-Empty"), empty.read()) == (204, "yes", b"")


def test_a_method_the_double_does_not_serve_gets_501():
    with Echo() as double:
        assert call(double, "DELETE", "/").status == 501


def test_drop_hangs_up_without_an_answer():
    with Echo() as double, pytest.raises(http.client.RemoteDisconnected):
        call(double, "GET", "/drop")


def test_stop_drops_open_connections_and_start_listens_again_on_the_same_port():
    double = Echo().start()
    connection = http.client.HTTPConnection(double.host, double.port, timeout=10)
    connection.request("GET", "/")
    assert connection.getresponse().read()  # the connection stays open (HTTP/1.1)
    port = double.port
    double.stop()
    assert not double.listening
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        connection.request("GET", "/")
        connection.getresponse()
    double.start()
    try:
        assert double.port == port and call(double, "GET", "/").status == 200
    finally:
        double.stop()


def request(method: str = "GET", path: str = "/") -> HttpRequest:
    return HttpRequest(method, path, path, {}, http.client.HTTPMessage(), b"")


def is_post(request: HttpRequest) -> bool:
    return request.method == "POST"


def test_faults_apply_to_the_requests_they_match_lowest_rank_first():
    queue = FaultQueue()
    queue.add(Fault(503, count=2, kind="fail", rank=1))
    queue.add(Fault(DISCONNECT, count=1, kind="disconnect", rank=0))
    queue.add(Fault(500, count=1, matches=is_post, kind="posts", rank=0))
    taken = [queue.take(request(method)) for method in ("GET", "POST", "GET", "GET")]
    assert [fault.status if fault else None for fault in taken] == [DISCONNECT, 500, 503, 503]
    assert queue.take(request()) is None


def test_a_fault_of_the_same_kind_replaces_the_earlier_one_when_asked():
    queue = FaultQueue()
    queue.add(Fault(503, count=5, kind="fail"))
    queue.add(Fault(429, count=1, kind="fail"), replace=True)
    queue.add(Fault(500, count=1, kind="other"))
    assert [getattr(queue.take(request()), "status", None) for _ in range(3)] == [429, 500, None]


def test_an_nth_fault_applies_to_that_request_only_and_never_later():
    queue = FaultQueue()
    queue.add(Fault(500, nth=2, matches=is_post, rank=2))
    assert queue.take(request("POST")) is None  # the first POST
    assert queue.take(request("GET")) is None  # not counted
    assert queue.take(request("POST")).status == 500  # the second POST
    assert queue.take(request("POST")) is None

    queue.add(Fault(500, nth=1, rank=2))
    queue.add(Fault(DISCONNECT, count=1, rank=0))  # takes the n-th request's turn
    assert queue.take(request()).status == DISCONNECT
    assert queue.take(request()) is None  # the n-th went by: it never applies later
