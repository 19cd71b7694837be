"""A loopback InfluxDB sink for benchmarks: answers what the parser asks, discards the data.

It knows just enough of the API for tsv_parser.py to run: the organization lookup, bucket
lookups and creations, and writes, which it reads to the end and answers 204 without
decompressing or parsing (so the figure measures PowerView, not a server).

    .venv/bin/python bench/sink.py --port 8099
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

ORG = {"id": "0000000000000001", "name": "bench"}


class SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    buckets: ClassVar[dict[str, str]] = {}
    bytes_received = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: object | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bucket(self, name: str) -> dict[str, object]:
        return {"id": self.buckets[name], "name": name, "orgID": ORG["id"], "retentionRules": []}

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/api/v2/orgs":
            self._reply(200, {"orgs": [ORG]})
        elif url.path == "/api/v2/buckets":
            names = [n for n in query.get("name", []) if n in self.buckets]
            self._reply(200, {"buckets": [self._bucket(name) for name in names]})
        else:
            self._reply(200, {"status": "pass"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        url = urlsplit(self.path)
        if url.path == "/api/v2/write":
            SinkHandler.bytes_received += len(body)
            self._reply(204)
        elif url.path == "/api/v2/buckets":
            name = json.loads(body)["name"]
            self.buckets.setdefault(name, f"{len(self.buckets) + 2:016x}")
            self._reply(201, self._bucket(name))
        else:
            self._reply(404, {"code": "not found", "message": url.path})


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), SinkHandler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="loopback InfluxDB sink for benchmarks")
    parser.add_argument("--port", type=int, default=8099)
    server = serve(parser.parse_args().port)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
