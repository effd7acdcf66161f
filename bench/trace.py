"""What trace context costs: the ``traceparent`` header per request, the log lookup per failure.

Two figures for issue 23, against a sandbox of its own:

- ``trace_header_cpu_ms``: the client CPU the trace adds to one request — a new span's
  ``traceparent`` (and the dict the API client merges it into), timed over ``--headers``
  calls (target ≤ 0.02 ms). Beside it, for scale, ``trace_request_cpu_ms_with`` /
  ``_without``: the API client's whole CPU per ``GET /health`` with and without a trace, in
  ABBA rounds of ``--requests`` requests (the difference is within the socket's noise).
- ``service_log_lookup_seconds``: the wall time one failed test's log lookup adds (median of
  ``--failures`` lookups, each for a trace whose test signed up a user and read it: ~6
  lines in two log groups, shipped by the sandbox every 0.1 s), with its client CPU
  (``service_log_lookup_cpu_ms``) and its FilterLogEvents calls
  (``service_log_lookup_calls``). The lookup waits until two reads agree, so most of the wall
  time is that wait, not work. A passing test makes none of these calls.

Usage: ``.venv/bin/python -m bench.trace [--headers N] [--requests N] [--failures N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from bench._common import REPO, emit, load_average, note, sandbox
from harness.clients.aws import Aws
from harness.clients.http import ApiClient
from harness.clients.logs import ServiceLogs
from harness.clients.trace import TestTrace
from harness.kinds.registry import load_profile
from harness.safety.redact import Redactor


def header_cpu_ms(calls: int) -> float:
    trace = TestTrace(xray=False)
    trace.begin()
    given = {"uid": "1", "token": "t"}
    started = time.process_time()
    for _ in range(calls):
        _ = {**trace.headers(), **given}
    return (time.process_time() - started) * 1000 / calls


def request_cpu_ms(base_url: str, requests: int, rounds: int) -> tuple[float, float]:
    """Median client CPU per request with a trace and without, ABBA."""
    with_trace = ApiClient(base_url, "itest-bench", trace=TestTrace())
    without = ApiClient(base_url, "itest-bench")
    samples: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(rounds):
        order = (True, False) if round_ % 2 == 0 else (False, True)
        for traced in order:
            client = with_trace if traced else without
            client.new_transcript()
            started = time.process_time()
            for _ in range(requests):
                client.get("/health")
            samples[traced].append((time.process_time() - started) * 1000 / requests)
    return statistics.median(samples[True]), statistics.median(samples[False])


def lookups(base_url: str, environ: dict[str, str], failures: int) -> tuple[float, float, float]:
    profile = load_profile("sandbox", REPO / "environments.toml", environ=environ)
    aws = Aws(profile)
    aws.logs  # noqa: B018 - built before timing: a run builds it once, at its first lookup
    walls, cpus, calls = [], [], []
    for i in range(failures):
        trace = TestTrace()
        trace_id = trace.begin()
        api = ApiClient(base_url, "itest-bench", trace=trace)
        email = f"itest-bench-{uuid.uuid4().hex[:10]}-{i}@env-harness.example.test"
        created = api.post("/users", json={"email": email, "name": "B", "password": "bench-pw-1"})
        uid = created.json()["uid"]
        login = api.post("/login", json={"email": email, "password": "bench-pw-1"}).json()
        auth = {"uid": str(uid), "token": login["token"]}
        api.get(f"/users/{uid}", headers=auth)
        api.delete(f"/users/{uid}", headers=auth)  # leaves nothing behind
        logs = ServiceLogs(lambda: aws.logs, profile.log_groups, Redactor(), wait=profile.log_wait)
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        found = logs.lookup(trace_id, trace.started)
        walls.append(time.perf_counter() - started_wall)
        cpus.append((time.process_time() - started_cpu) * 1000)
        calls.append(logs.calls)
        if not found:
            note(f"lookup {i}: no line found ({logs.error or 'none arrived'})")
    return statistics.median(walls), statistics.median(cpus), statistics.median(calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headers", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--failures", type=int, default=10)
    options = parser.parse_args()
    emit("trace_header_cpu_ms", header_cpu_ms(options.headers), ".4f")
    with sandbox("trace") as box:
        note(f"load average {load_average():.1f}")
        base = box.exports["HARNESS_BASE_URL"]
        traced, plain = request_cpu_ms(base, options.requests, options.rounds)
        emit("trace_request_cpu_ms_with", traced, ".3f")
        emit("trace_request_cpu_ms_without", plain, ".3f")
        environ = {**box.exports}
        wall, cpu, calls = lookups(base, environ, options.failures)
        emit("service_log_lookup_seconds", wall, ".2f")
        emit("service_log_lookup_cpu_ms", cpu, ".1f")
        emit("service_log_lookup_calls", calls, ".0f")


if __name__ == "__main__":
    main()
