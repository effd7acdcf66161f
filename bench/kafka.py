"""The sandbox on Kafka: its start time, publish → ``expect_event`` latency, the JVMs' memory.

Starts ``python -m harness.sandbox --bus kafka`` (a real Apache Kafka broker and Apicurio
Registry) through the harness's launcher, median of ``--starts`` starts; on the last one
publishes ``--events`` contract-valid events through the harness's Kafka transport (wire
format, through the registry) and times each from the publish call to ``expect_event``
returning it; then reads the broker's and the registry's resident memory from /proc.
Needs java. Usage: ``.venv/bin/python -m bench.kafka [--starts N] [--events N]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from bench._common import emit, median, note, sandbox
from harness.events.contracts import Contracts
from harness.events.kafka import KafkaTransport, client_config
from harness.events.stream import EventStream, Expectations, LatencyRecorder, percentile
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId, worker_part

REPO = Path(__file__).resolve().parents[1]


def rss_mb(parent: int) -> dict[str, float]:
    """Resident memory (MB) of the sandbox's JVM children: ``{"broker": …, "registry": …}``."""
    found: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0").strip()) != parent or b"java" not in cmdline:
            continue
        kb = int(fields.get("VmRSS", "0 kB").split()[0])
        name = "registry" if b"apicurio" in cmdline else "broker"
        found[name] = kb / 1024
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="sandbox starts (3)")
    parser.add_argument("--events", type=int, default=100, help="events timed (100)")
    args = parser.parse_args()
    if shutil.which("java") is None:
        note("java not found: install a Java 17+ runtime and Maven to bench the Kafka sandbox")
        return 0
    starts = []
    for number in range(args.starts):
        started = time.perf_counter()
        with sandbox("kafka-start", ["--bus", "kafka"]) as box:
            starts.append(time.perf_counter() - started)
            note(f"kafka sandbox start {number + 1}: {starts[-1]:.2f}s")
            if number < args.starts - 1:
                continue
            profile = load_profile("sandbox", REPO / "environments.toml", environ=box.exports)
            namespace = Namespace(RunId.generate(), worker_part())
            transport = KafkaTransport(
                client_config(profile),
                profile.kafka_topic,
                str(namespace),
                profile.schema_registry_url,
            )
            contracts = Contracts.for_registry_or_directory(profile.schema_registry_url)
            stream = EventStream(transport, contracts, keep=str(namespace)).start()
            view = Expectations(stream, lambda: set(), LatencyRecorder())
            latencies = []
            try:
                for i in range(args.events):
                    email = namespace.email(f"b{i}")
                    began = time.perf_counter()
                    view.publish("user.created", {"uid": 10_000 + i, "email": email, "name": "B"})
                    view.expect_event("user.created", where={"email": email}, timeout=15)
                    latencies.append((time.perf_counter() - began) * 1000)
                memory = rss_mb(box.process.pid)
            finally:
                stream.close()
                transport.close()
    emit("kafka_sandbox_start_seconds", median(starts), ".2f")
    emit("kafka_publish_to_expect_event_p50_ms", percentile(latencies, 50), ".1f")
    emit("kafka_publish_to_expect_event_p95_ms", percentile(latencies, 95), ".1f")
    emit("kafka_broker_rss_mb", memory.get("broker", 0.0), ".0f")
    emit("kafka_registry_rss_mb", memory.get("registry", 0.0), ".0f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
