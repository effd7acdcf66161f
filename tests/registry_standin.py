"""A tiny Confluent-compatible Schema Registry stand-in on loopback, for tests only.

Serves ``GET /subjects/<subject>/versions/<latest|N>`` → ``{"subject", "version", "id",
"schema": "<JSON string>"}`` from a dict of subjects, and records every path asked for, so a
test can prove the harness really took its schemas from the registry.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote


class RegistryStandIn:
    def __init__(self, subjects: dict[str, dict[int, dict[str, Any]]]) -> None:
        self.subjects = subjects
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                parts = [unquote(p) for p in self.path.strip("/").split("/")]
                versions = (
                    registry.subjects.get(parts[1])
                    if len(parts) == 4 and parts[0] == "subjects" and parts[2] == "versions"
                    else None
                )
                if not versions:
                    return self._answer(404, {"error_code": 40401, "message": "Subject not found"})
                wanted = max(versions) if parts[3] == "latest" else int(parts[3])
                if wanted not in versions:
                    return self._answer(404, {"error_code": 40402, "message": "Version not found"})
                body = {
                    "subject": parts[1],
                    "version": wanted,
                    "id": wanted,
                    "schema": json.dumps(versions[wanted]),
                }
                return self._answer(200, body)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @classmethod
    def from_contracts(cls, directory: Path) -> RegistryStandIn:
        """Every ``<type>/v<N>.json`` as subject ``<type>-value`` version N."""
        subjects: dict[str, dict[int, dict[str, Any]]] = {}
        for path in sorted(directory.glob("*/v*.json")):
            version = int(path.stem[1:])
            schema = json.loads(path.read_text(encoding="utf-8"))
            subjects.setdefault(f"{path.parent.name}-value", {})[version] = schema
        return cls(subjects)

    def __enter__(self) -> RegistryStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
