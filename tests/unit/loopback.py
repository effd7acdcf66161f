"""A real HTTP server on loopback for the fast tier: canned answers per path, and a record of
every request it received (method, path, headers, body). No mocking of the client: the
requests go over a real socket."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Loopback:
    """``routes[path] = (status, body, extra headers)``; unknown paths answer 404."""

    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    queued: dict[str, list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, path: str, status: int, body: Any = None, **headers: str) -> None:
        self.routes[path] = (status, body, headers)

    def once(self, path: str, status: int, body: Any = None, **headers: str) -> None:
        """Answer the next request to ``path`` this way, once (then the route's answer)."""
        self.queued.setdefault(path, []).append((status, body, headers))


@contextmanager
def loopback(host: str = "127.0.0.1") -> Iterator[Loopback]:
    state = Loopback(host=host)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.received.append(Received(self.command, self.path, dict(self.headers), body))
            status, payload, headers = state.routes.get(self.path, (404, {"error": "no"}, {}))
            queued = state.queued.get(self.path)
            if queued:  # answers given once each, before the route's standing answer
                status, payload, headers = queued.pop(0)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
