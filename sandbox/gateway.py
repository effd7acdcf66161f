"""The local API Gateway: serves a Chalice app over HTTP/1.1 keep-alive on loopback.

Owns: mapping HTTP requests to Chalice's ``LocalGateway`` (the same event conversion and
routing ``chalice local`` uses) and its answers back to HTTP, on the fast ``keepalive``
server, with the app's ``current_request`` made thread-local so concurrent requests never
see each other's request. Must never contain service logic, and never write to stdout.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalChalice, LocalGateway, LocalGatewayException

from .keepalive import BodyTooLarge, KeepAliveHandler, KeepAliveServer

log = logging.getLogger("sandbox.gateway")


def make_thread_local(app: Chalice) -> None:
    """Give the app a thread-local ``current_request`` (what ``chalice local`` does)."""
    if not isinstance(app, LocalChalice):
        app.__class__ = type("ThreadLocalChalice", (LocalChalice, app.__class__), {})


class GatewayHandler(KeepAliveHandler):
    server: GatewayServer

    def _handle(self) -> None:
        try:
            body = self.read_body()
        except (BodyTooLarge, ValueError):
            self.send_too_large()
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.server.local_gateway.handle_request(
                method=self.command, path=self.path, headers=headers, body=body
            )
        except LocalGatewayException as exc:
            raw = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            self.send_whole(exc.CODE, list(exc.headers.items()), raw)
            return
        except Exception:
            log.exception("gateway failed on %s %s", self.command, self.path)
            self.send_whole(
                502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'
            )
            return
        self.send_whole(*self._convert(response))

    @staticmethod
    def _convert(response: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        pairs: list[tuple[str, str]] = []
        for name, value in (response.get("headers") or {}).items():
            pairs.append((name, value if isinstance(value, str) else str(value)))
        for name, values in (response.get("multiValueHeaders") or {}).items():
            pairs.extend((name, str(v)) for v in values)
        if not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
        raw = response.get("body")
        if raw is None:
            data = b""
        elif response.get("isBase64Encoded"):
            data = base64.b64decode(raw)
        else:
            data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        return int(response["statusCode"]), pairs, data

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class GatewayServer(KeepAliveServer):
    def __init__(self, address: tuple[str, int], app: Chalice) -> None:
        make_thread_local(app)
        self.local_gateway = LocalGateway(app, Config(chalice_stage="local"))
        super().__init__(address, GatewayHandler)


class Gateway:
    """The gateway server and the thread serving it."""

    def __init__(self, app: Chalice, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = GatewayServer((host, port), app)  # binds now: a taken port fails here
        self.host = str(self.server.server_address[0])
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-gateway",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()
