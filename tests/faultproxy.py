"""A fault-injecting HTTP proxy for tests and benchmarks (loopback only).

Sits in front of one upstream (the sandbox service or the AWS emulator) and, on a chosen
fraction of requests, injects a fault: ``5xx`` (answers 503 without forwarding), ``reset``
(drops the connection before forwarding), ``drop_response`` (forwards — the upstream acts —
then drops the connection instead of answering: the classic lost answer), ``timeout`` (holds
the request ``hang`` seconds, then drops it), and ``latency`` (adds ``latency`` seconds, then
forwards). ``delay`` adds a fixed latency to every request (a remote-like environment).
``routes`` counts the requests it received by ``METHOD /path`` (with no faults: a counter of
what a client asked of the upstream).
Decisions come from a seeded RNG, so a run's fault pattern is reproducible.

No maintained tool for this is installable here (toxiproxy is a Go binary outside the package
registries; its PyPI package is only a client), hence this small one.

    python -m tests.faultproxy --upstream http://127.0.0.1:8000 --faults 5xx=0.1,reset=0.1
"""

from __future__ import annotations

import argparse
import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

FAULTS = ("5xx", "reset", "drop_response", "timeout", "latency")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    delay: float = 0.0
    latency: float = 0.2
    hang: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {', '.join(FAULTS)}")
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, text: str, **kwargs: float) -> FaultPlan:
        rates = {}
        for part in filter(None, text.split(",")):
            name, _, rate = part.partition("=")
            rates[name.strip()] = float(rate)
        return cls(rates=rates, **kwargs)  # type: ignore[arg-type]

    def draw(self) -> str | None:
        with self._lock:
            roll = self._rng.random()
        for name in FAULTS:
            rate = self.rates.get(name, 0.0)
            if roll < rate:
                return name
            roll -= rate
        return None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # dropped connections are the point, not an error worth a traceback


class FaultProxy:
    """``with FaultProxy(upstream, plan) as proxy: ... proxy.url ...``"""

    def __init__(self, upstream: str, plan: FaultPlan, port: int = 0) -> None:
        target = urlparse(upstream)
        self.upstream_host = target.hostname or "127.0.0.1"
        self.upstream_port = target.port or 80
        self.plan = plan
        self.counts: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = -1  # one buffered write per response

            def log_message(self, format: str, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.upstream: http.client.HTTPConnection | None = None

            def _count(self, what: str) -> None:
                with proxy._counts_lock:
                    proxy.counts[what] += 1

            def _drop(self) -> None:
                # RST, not FIN: the client sees a reset, as on a broken network
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                for attempt in range(2):  # a stale upstream keep-alive connection is re-opened
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection(
                            proxy.upstream_host, proxy.upstream_port, timeout=60
                        )
                    try:
                        self.upstream.request(self.command, self.path, body=body, headers=headers)
                        response = self.upstream.getresponse()
                        data = response.read()
                        return response.status, response.getheaders(), data
                    except (ConnectionError, http.client.HTTPException):
                        self.upstream.close()
                        self.upstream = None
                        if attempt:
                            raise
                raise AssertionError("unreachable")

            def _handle(self) -> None:
                if proxy.plan.delay:
                    time.sleep(proxy.plan.delay)
                fault = proxy.plan.draw()
                with proxy._counts_lock:
                    proxy.routes[f"{self.command} {urlparse(self.path).path}"] += 1
                self._count(fault or "forwarded")
                if fault == "reset":
                    return self._drop()
                if fault == "timeout":
                    time.sleep(proxy.plan.hang)
                    return self._drop()
                if fault == "5xx":
                    length = int(self.headers.get("Content-Length") or 0)
                    if length:
                        self.rfile.read(length)
                    body = b'{"message": "injected fault"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                if fault == "latency":
                    time.sleep(proxy.plan.latency)
                status, headers, data = self._forward()
                if fault == "drop_response":
                    return self._drop()
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self.server = _QuietServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--faults", default="", help=f"NAME=RATE,… with NAME in {FAULTS}")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    plan = FaultPlan.parse(options.faults, delay=options.delay, seed=options.seed)
    with FaultProxy(options.upstream, plan, options.port) as proxy:
        print(f"proxy {proxy.url} -> {options.upstream}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
