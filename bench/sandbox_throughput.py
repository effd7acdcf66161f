"""Throughput of the local sandbox for one client, measured side by side in one run.

Starts its own sandbox (``python -m sandbox --quiet``) and, for comparison, the same app under
stock ``chalice local`` (same emulator), sends bounded numbers of requests over loopback,
prints ``name: value`` lines, and stops everything it started. Not a test: figures, no
assertions. Usage: ``.venv/bin/python bench/sandbox_throughput.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
READY = "# sandbox ready: pid "
STOCK_READY = "stock chalice local on port "


def read_lines_until(
    proc: subprocess.Popen[bytes], prefix: str, deadline_s: float = 30.0
) -> list[str]:
    """Lines of the child's unbuffered stdout up to one starting with ``prefix``.

    Byte by byte from the raw pipe: a buffered readline would pull later lines into a
    Python buffer where select() cannot see them.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    lines: list[str] = []
    current = bytearray()
    end = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < end:
            if not sel.select(timeout=max(0.0, end - time.monotonic())):
                continue
            byte = os.read(fd, 1)
            if not byte:
                break
            if byte != b"\n":
                current += byte
                continue
            lines.append(current.decode())
            current.clear()
            if lines[-1].startswith(prefix):
                return lines
    raise RuntimeError(f"child did not print {prefix!r}; got {lines}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def rate(count: int, one: Callable[[], None]) -> float:
    one()  # warm-up: connection, first-use imports
    started = time.perf_counter()
    for _ in range(count):
        one()
    return count / (time.perf_counter() - started)


def expect(resp: requests.Response, status: int) -> None:
    if resp.status_code != status:
        raise RuntimeError(f"{resp.request.method} {resp.url} -> {resp.status_code} {resp.text}")


def stock_chalice_local_child() -> int:
    """Serve the service with chalice's own LocalDevServer (the stock `chalice local`)."""
    from chalice.config import Config
    from chalice.local import create_local_server

    sys.path.insert(0, str(REPO / "sandbox" / "service"))
    import app as service

    service.app.log.handlers.clear()
    server = create_local_server(service.app, Config(chalice_stage="local"), "127.0.0.1", 0)
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    print(f"{STOCK_READY}{server.server.server_address[1]}", flush=True)
    server.server.serve_forever()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="requests per keep-alive measurement (default 2000)",
    )
    parser.add_argument("--stock-chalice-local-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stock_chalice_local_child:
        return stock_chalice_local_child()

    n = args.requests
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--quiet"], cwd=REPO, stdout=subprocess.PIPE, bufsize=0
    )
    stock: subprocess.Popen[bytes] | None = None
    try:
        exports: dict[str, str] = {}
        for line in read_lines_until(sandbox, READY):
            if line.startswith("export "):
                key, _, value = shlex.split(line[7:])[0].partition("=")
                exports[key] = value
        base = exports["HARNESS_BASE_URL"]

        keep = requests.Session()
        health_keepalive = rate(n, lambda: expect(keep.get(f"{base}/health"), 200))

        def fresh() -> None:
            with requests.Session() as s:  # a new TCP connection per request
                expect(s.get(f"{base}/health"), 200)

        health_new_conn = rate(max(1, n // 4), fresh)

        email = f"bench-{os.getpid()}-{time.time_ns()}@bench.example.test"
        expect(
            keep.post(
                f"{base}/users",
                json={"email": email, "name": "Bench", "password": "bench-password"},
            ),
            201,
        )
        login = keep.post(f"{base}/login", json={"email": email, "password": "bench-password"})
        expect(login, 200)
        uid, token = login.json()["uid"], login.json()["token"]
        auth = {"uid": str(uid), "token": token}
        user_keepalive = rate(
            max(1, n // 2), lambda: expect(keep.get(f"{base}/users/{uid}", headers=auth), 200)
        )
        expect(keep.delete(f"{base}/users/{uid}", headers=auth), 204)

        env = dict(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "sandbox",
                "AWS_SECRET_ACCESS_KEY": "sandbox",
                "AWS_DEFAULT_REGION": exports["HARNESS_AWS_REGION"],
                "ENDPOINT_URL": exports["HARNESS_AWS_ENDPOINT_URL"],
                "ENVIRONMENT_NAME": "stock-chalice-local",
                "USERS_TABLE_NAME": exports["HARNESS_USERS_TABLE"],
                "TOKEN_TABLE_NAME": exports["HARNESS_TOKENS_TABLE"],
                "NOTIFICATIONS_TABLE_NAME": exports["HARNESS_NOTIFICATIONS_TABLE"],
                "EVENTS_TOPIC_ARN": exports["HARNESS_EVENTS_TOPIC_ARN"],
            }
        )
        stock = subprocess.Popen(
            [sys.executable, __file__, "--stock-chalice-local-child"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        port = int(read_lines_until(stock, STOCK_READY)[-1][len(STOCK_READY) :])
        stock_session = requests.Session()
        stock_url = f"http://127.0.0.1:{port}/health"
        # ~40 ms a request: a small bounded count is plenty.
        stock_keepalive = rate(50, lambda: expect(stock_session.get(stock_url), 200))

        print(f"requests_per_keepalive_run: {n}")
        print(f"health_keepalive_req_per_s: {health_keepalive:.0f}")
        print(f"health_new_connection_req_per_s: {health_new_conn:.0f}")
        print(f"health_keepalive_over_new_connection: {health_keepalive / health_new_conn:.2f}")
        print(f"get_user_authenticated_keepalive_req_per_s: {user_keepalive:.0f}")
        print(f"stock_chalice_local_health_keepalive_req_per_s: {stock_keepalive:.1f}")
        over_stock = health_keepalive / stock_keepalive
        print(f"health_keepalive_over_stock_chalice_local: {over_stock:.1f}")
    finally:
        if stock is not None:
            stop(stock)
        stop(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
