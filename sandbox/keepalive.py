"""A threaded HTTP/1.1 keep-alive server base that answers each request in one write.

Owns: the socket-level behaviour both local servers (the gateway and the AWS emulator) need
to be fast for one keep-alive client: ``TCP_NODELAY``, a buffered ``wfile`` and a response
sent as one ``write`` (status line, headers and body together, with ``Content-Length``), so
Nagle's algorithm never meets a delayed ACK (the ~40 ms stall of stock ``chalice local``).
Must never know what is being served: subclasses map requests to responses.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_REQUEST_BODY = 8 * 1024 * 1024


class KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    # Never share a port with another listener; a taken port must fail loudly.
    allow_reuse_address = False

    def server_bind(self) -> None:
        # TIME_WAIT sockets of a previous run must not block a restart on the same port
        # (SO_REUSEADDR on Linux still refuses a port another socket *listens* on).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


class BodyTooLarge(Exception):
    pass


class KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # buffered: handle_one_request flushes once per response
    timeout = 120  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request logging belongs to what is served, not to the socket layer."""

    def read_body(self, limit: int = MAX_REQUEST_BODY) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > limit:
            raise BodyTooLarge
        return self.rfile.read(length) if length else None

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise BodyTooLarge
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def send_whole(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """Status line, headers and body in one write; Content-Length always set."""
        reason = self.responses.get(status, ("",))[0]
        lines = [f"{self.protocol_version} {status} {reason}"]
        for name, value in headers:
            lower = name.lower()
            if lower in ("content-length", "connection", "transfer-encoding"):
                continue
            lines.append(f"{name}: {value}")
        if self.command == "HEAD" or status in (204, 304) or 100 <= status < 200:
            payload = b""
            if status not in (204, 304):
                lines.append(f"Content-Length: {len(body)}")
        else:
            payload = body
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + payload)
        self.wfile.flush()

    def send_too_large(self) -> None:
        self.close_connection = True
        self.send_whole(
            413, [("Content-Type", "application/json")], b'{"error": "Request body too large"}'
        )
