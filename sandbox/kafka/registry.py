"""Apicurio Registry in memory, for one sandbox, with its Confluent-compatible API.

Owns: the registry's JVM (bounded heap, loopback only, a free port, quiet logs, working
folder removed at stop), readiness (its Confluent-compatible ``/subjects`` answers), and
registering the service's event contracts at start: each ``<type>/v<N>.json`` under the
subject ``<type>-value`` in version order, so the subject's version N is the contract's vN.
Must never leave a JVM or its folder behind.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from .broker import jvm_options
from .jvm import ClassArchive, JavaError, JavaProcess, free_port, make_workdir

log = logging.getLogger("sandbox.kafka")
#: The launcher's progress lines (a training run is a long wait of a first start).
progress = logging.getLogger("sandbox.progress")

CCOMPAT_PATH = "/apis/ccompat/v7"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(JavaError):
    """The registry could not be started or refused a schema."""


def _request(method: str, url: str, body: object | None = None, timeout: float = 5.0) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", CONTENT_TYPE)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class SchemaRegistry:
    """``start()`` spawns, ``wait_ready()`` waits, ``register()``; ``stop()`` always."""

    def __init__(
        self,
        runner_jar: Path,
        host: str = "127.0.0.1",
        heap_mb: int = 192,
        write_archive: bool = False,
    ) -> None:
        self.runner_jar = runner_jar
        self.archive = ClassArchive("apicurio-registry", runner_jar.parent / "cds", write_archive)
        self.host = host
        self.heap_mb = heap_mb
        self.port = 0
        self.workdir: Path | None = None
        self.process: JavaProcess | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        """The Confluent-compatible base URL (what a Confluent client calls its registry URL)."""
        return f"http://{self.host}:{self.port}{CCOMPAT_PATH}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.workdir = make_workdir("registry")
        self.port = free_port(self.host)
        self.process = JavaProcess(
            "registry",
            [
                *jvm_options(self.heap_mb),
                f"-Dquarkus.http.host={self.host}",
                f"-Dquarkus.http.port={self.port}",
                "-Dquarkus.log.level=WARN",
                '-Dquarkus.log.category."io.apicurio".level=WARN',
                "-Dquarkus.http.access-log.enabled=false",
                # Vert.x's file cache in the JVM's own folder (removed with it), not /tmp
                f"-Dvertx.cacheDirBase={self.workdir / 'vertx-cache'}",
                "-jar",
                str(self.runner_jar),
            ],
            self.workdir,
            self.archive,
        )
        self.process.start()
        log.info(
            "schema registry pid %s starting on %s in %s", self.process.pid, self.url, self.workdir
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if not self.process.running():
                raise RegistryError(
                    "the schema registry exited during start-up: "
                    + self.process.failure("no error in its log")
                )
            try:
                _request("GET", f"{self.url}/subjects", timeout=1.0)
                break
            except (OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"the schema registry did not answer on {self.url} within "
                        f"{timeout:.0f}s: {exc}"
                    ) from None
            time.sleep(0.1)
        log.info(
            "schema registry ready on %s in %.2fs", self.url, time.monotonic() - self.started_at
        )

    def register(self, contracts: Path) -> dict[str, int]:
        """Register every ``<type>/v<N>.json`` as ``<type>-value``; subject → latest schema id."""
        ids: dict[str, int] = {}
        for type_dir in sorted(p for p in contracts.iterdir() if p.is_dir()):
            files = sorted(type_dir.glob("v*.json"), key=lambda p: int(p.stem[1:]))
            subject = f"{type_dir.name}-value"
            for path in files:
                body = {"schemaType": "JSON", "schema": path.read_text(encoding="utf-8")}
                where = f"{self.url}/subjects/{quote(subject, safe='')}/versions"
                try:
                    answer = _request("POST", where, body)
                except urllib.error.HTTPError as exc:
                    detail = exc.read().decode(errors="replace")[:300]
                    raise RegistryError(
                        f"the schema registry refused {path.name} of {subject}: {exc.code} {detail}"
                    ) from None
                assert isinstance(answer, dict)
                ids[subject] = int(answer["id"])
                log.info("registered %s %s as schema id %s", subject, path.name, answer["id"])
        return ids

    def request_stop(self) -> None:
        if self.process is not None:
            self.process.request_stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def prepare_class_archive(runner_jar: Path) -> None:
    """Once per JDK: run the registry so that it writes the class archive later starts map."""
    if ClassArchive("apicurio-registry", runner_jar.parent / "cds").exists():
        return
    progress.info("a training run of the schema registry writes its class archive (once)…")
    registry = SchemaRegistry(runner_jar, write_archive=True)
    try:
        registry.start()
        registry.wait_ready(120.0)
    finally:
        registry.stop(timeout=120.0)
