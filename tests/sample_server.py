"""A real local HTTP server that answers fixed routes with recorded API responses."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Routes = Mapping[str, tuple[int, bytes]]


class SampleServer(ThreadingHTTPServer):
    """Serves `routes` (path -> (status, body)); records (path, query) of every request."""

    routes: Routes
    content_type: str
    requests: list[tuple[str, dict[str, list[str]]]]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: SampleServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.requests.append((url.path, parse_qs(url.query)))
        status, body = self.server.routes.get(url.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@contextmanager
def serve(routes: Routes, content_type: str) -> Iterator[SampleServer]:
    """Run a `SampleServer` on 127.0.0.1 (free port) for the duration of the block."""
    srv = SampleServer(("127.0.0.1", 0), _Handler)
    srv.routes, srv.content_type, srv.requests = routes, content_type, []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
