"""Throughput of the local sandbox for one client, measured side by side in one run.

Starts its own sandbox (``python -m sandbox --quiet``) and, for comparison, the same app under
stock ``chalice local`` (same emulator), sends bounded numbers of requests over loopback,
prints ``name: value`` lines, and stops everything it started. Not a test: figures, no
assertions. Usage: ``.venv/bin/python bench/sandbox_throughput.py [--requests N] [--rounds R]``.

The sandbox measurements (health over one keep-alive connection, health with a new
connection per request, the authenticated ``GET /users/{uid}``) use the standard library's
``http.client`` — a lean keep-alive client, so the figures are the sandbox's; the same
keep-alive measurements through ``requests`` (what tests use, ~0.8 ms of client CPU per
request) are printed beside them. They run interleaved, ``--rounds``
times, and each figure is the median over the rounds; the keep-alive/new-connection ratio is
the median of the per-round ratios (the two halves of a ratio run back to back, so a burst of
load from another process moves both). Wall-clock rates depend on what else the machine is
doing, so the load average and the sandbox's own CPU time per request (gateway + emulator,
from /proc; Linux only) are printed too: the CPU figure barely moves with outside load.
"""

from __future__ import annotations

import argparse
import http.client
import os
import selectors
import shlex
import signal
import statistics
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


def process_tree(root: int) -> list[int]:
    """``root`` and its children (the gateway process and the emulator), from /proc."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == root:
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time of the processes (all threads), or None off Linux."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    return total


def measured(count: int, one: Callable[[], None], pids: list[int]) -> tuple[float, float | None]:
    """(requests per second, sandbox CPU milliseconds per request or None)."""
    before = cpu_seconds(pids)
    per_second = rate(count, one)
    after = cpu_seconds(pids)
    if before is None or after is None:
        return per_second, None
    return per_second, (after - before) * 1000 / (count + 1)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _fmt(values: list[float], digits: int) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values)


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
        default=1000,
        help="health keep-alive requests per round; a quarter of it with a new connection each, "
        "half of it authenticated (default 1000)",
    )
    parser.add_argument(
        "--rounds", type=int, default=7, help="interleaved rounds; medians are printed (default 7)"
    )
    parser.add_argument("--stock-chalice-local-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stock_chalice_local_child:
        return stock_chalice_local_child()

    n = args.requests
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "harness.sandbox", "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        bufsize=0,
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

        # Two clients, measured side by side: the standard library's http.client (a lean
        # keep-alive client: the figures are the sandbox's) and requests (what tests use;
        # it spends ~0.8 ms of its own CPU per request).
        host, service_port = base.rsplit("//", 1)[1].split(":")
        lean = http.client.HTTPConnection(host, int(service_port))

        def lean_get(connection: http.client.HTTPConnection, path: str, headers: dict) -> None:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} -> {response.status}")

        def health() -> None:
            lean_get(lean, "/health", {})

        def fresh() -> None:
            connection = http.client.HTTPConnection(host, int(service_port))  # a new connection
            try:
                lean_get(connection, "/health", {})
            finally:
                connection.close()

        def get_user() -> None:
            lean_get(lean, f"/users/{uid}", auth)

        def health_requests() -> None:
            expect(keep.get(f"{base}/health"), 200)

        def get_user_requests() -> None:
            expect(keep.get(f"{base}/users/{uid}", headers=auth), 200)

        pids = process_tree(sandbox.pid)
        load_before = load_average()
        health_rates: list[float] = []
        new_conn_rates: list[float] = []
        ratios: list[float] = []
        user_rates: list[float] = []
        user_cpu: list[float] = []
        health_requests_rates: list[float] = []
        user_requests_rates: list[float] = []
        for _ in range(args.rounds):
            keep_rate, _cpu = measured(n, health, pids)
            new_rate, _cpu = measured(max(1, n // 4), fresh, pids)
            user_rate, cpu = measured(max(1, n // 2), get_user, pids)
            health_requests_rates.append(measured(n, health_requests, pids)[0])
            user_requests_rates.append(measured(max(1, n // 2), get_user_requests, pids)[0])
            health_rates.append(keep_rate)
            new_conn_rates.append(new_rate)
            ratios.append(keep_rate / new_rate)
            user_rates.append(user_rate)
            if cpu is not None:
                user_cpu.append(cpu)
        load_after = load_average()
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

        health_keepalive = statistics.median(health_rates)
        print(f"rounds: {args.rounds}")
        print(f"requests_per_round_health_keepalive: {n}")
        print(f"requests_per_round_health_new_connection: {max(1, n // 4)}")
        print(f"requests_per_round_get_user_authenticated: {max(1, n // 2)}")
        print(f"load_average_before: {load_before}")
        print(f"health_keepalive_req_per_s: {health_keepalive:.0f}")
        print(f"health_new_connection_req_per_s: {statistics.median(new_conn_rates):.0f}")
        print(f"health_keepalive_over_new_connection: {statistics.median(ratios):.2f}")
        print(f"health_keepalive_over_new_connection_per_round: {_fmt(ratios, 2)}")
        print(f"get_user_authenticated_keepalive_req_per_s: {statistics.median(user_rates):.0f}")
        print(f"get_user_authenticated_keepalive_per_round: {_fmt(user_rates, 0)}")
        if user_cpu:
            print(f"get_user_sandbox_cpu_ms_per_req: {statistics.median(user_cpu):.2f}")
        print(
            "health_keepalive_requests_client_req_per_s: "
            f"{statistics.median(health_requests_rates):.0f}"
        )
        print(
            "get_user_authenticated_keepalive_requests_client_req_per_s: "
            f"{statistics.median(user_requests_rates):.0f}"
        )
        print(f"stock_chalice_local_health_keepalive_req_per_s: {stock_keepalive:.1f}")
        over_stock = health_keepalive / stock_keepalive
        print(f"health_keepalive_over_stock_chalice_local: {over_stock:.1f}")
        print(f"load_average_after: {load_after}")
    finally:
        if stock is not None:
            stop(stock)
        stop(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
