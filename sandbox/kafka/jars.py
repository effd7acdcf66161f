"""The Kafka broker's and the schema registry's jars: fetched from Maven Central once, cached.

Owns: the cache (``$SANDBOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/env-harness``, else
``~/.cache/env-harness``; never the repository), one folder per pinned Maven file, named by
its version and a hash of the file, so that editing a pin fetches again; running ``mvn``
into a temporary folder that is renamed into place only when complete (an interrupted fetch
leaves nothing half-made), under a file lock (two sandboxes starting at once fetch once).
Must fail with one clear line when ``java`` or ``mvn`` is missing or Maven fails, and must
never fetch from anywhere but the repositories Maven is configured with.

Also, once per JDK, a training run of each program writes its class-data-sharing archive
beside its jars (``jvm.ClassArchive``): later starts map it, about twice as fast.

``python -m harness.sandbox.kafka.jars`` (``make kafka-jars``) does all of it ahead of time.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from .jvm import JavaError, java_binary

log = logging.getLogger("sandbox.kafka")
#: The launcher's progress lines (a fetch is the longest wait of a first start).
progress = logging.getLogger("sandbox.progress")

HERE = Path(__file__).resolve().parent
BROKER_POM = HERE / "pom.xml"
REGISTRY_POM = HERE / "registry" / "pom.xml"
COMPLETE = ".complete"
INSTALL_MAVEN = "install Maven 3.8+ (e.g. `apt-get install maven`)"
MVN_TIMEOUT = 900.0


class JarsError(JavaError):
    """The jars could not be fetched; the message is one line for the user."""


def cache_root() -> Path:
    configured = os.environ.get("SANDBOX_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "env-harness"


def pom_version(pom: Path) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(pom).getroot().find("m:version", ns)
    if version is None or not version.text:
        raise JarsError(f"{pom} has no <version>")
    return version.text.strip()


def cache_dir(kind: str, pom: Path) -> Path:
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:10]
    return cache_root() / kind / f"{pom_version(pom)}-{digest}"


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsError(
            f"`mvn` is not on PATH (the sandbox fetches its jars with it): {INSTALL_MAVEN}"
        )
    return mvn


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


NO_PERF_DATA = "-XX:-UsePerfData"


def _run_mvn(args: list[str], cwd: Path, what: str) -> None:
    command = [_mvn(), "-B", "-q", *args]
    progress.info(
        "fetching %s from Maven Central (once, cached in %s; a minute or two)…", what, cache_root()
    )
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MVN_TIMEOUT,
            # Maven's JVM leaves no /tmp/hsperfdata_<user> behind
            env={**os.environ, "MAVEN_OPTS": f"{os.environ.get('MAVEN_OPTS', '')} {NO_PERF_DATA}"},
        )
    except subprocess.TimeoutExpired:
        raise JarsError(f"fetching {what} with Maven took over {MVN_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        output = (done.stdout + "\n" + done.stderr).splitlines()
        errors = [line.strip() for line in output if "ERROR" in line and line.strip() != "[ERROR]"]
        detail = errors[0] if errors else (output[-1] if output else "no output")
        raise JarsError(
            f"fetching {what} with Maven failed (exit {done.returncode}): {detail[:500]}"
        )
    progress.info("fetched %s in %.1f s", what, time.monotonic() - started)


def _ensure(kind: str, pom: Path, build: str, what: str) -> Path:
    """The complete cache folder for ``pom``, made with ``build`` if missing."""
    target = cache_dir(kind, pom)
    if (target / COMPLETE).exists():
        return target
    java_binary()  # no point fetching what cannot run
    with _locked(target.parent):
        if (target / COMPLETE).exists():
            return target
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            shutil.copyfile(pom, work / "pom.xml")
            out = work / "out"
            if build == "copy-dependencies":
                _run_mvn(
                    [
                        "dependency:copy-dependencies",
                        "-DincludeScope=runtime",
                        f"-DoutputDirectory={out}",
                    ],
                    work,
                    what,
                )
            else:
                _run_mvn(["package", f"-Dsandbox.build.dir={out}"], work, what)
            (out / COMPLETE).write_text(pom_version(pom) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            out.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def broker_classpath(prepare: bool = True) -> str:
    """The Kafka broker's classpath (``<dir>/*``), fetching the jars first if needed, and
    (``prepare``) its class archives made once (``archive_dir``)."""
    folder = _ensure(
        "kafka", BROKER_POM, "copy-dependencies", f"Apache Kafka {pom_version(BROKER_POM)}"
    )
    classpath = str(folder / "*")
    if prepare:
        from .broker import prepare_class_archives

        prepare_class_archives(classpath, archive_dir(classpath))
    return classpath


def archive_dir(classpath_or_jar: str | Path) -> Path:
    """Where the class archives of the program with these jars live (beside them)."""
    return Path(classpath_or_jar).parent / "cds"


def registry_jar(prepare: bool = True) -> Path:
    """The schema registry's runnable jar, building it from Maven Central jars if needed, and
    (``prepare``) its class archive made once."""
    folder = _ensure(
        "apicurio", REGISTRY_POM, "package", f"Apicurio Registry {pom_version(REGISTRY_POM)}"
    )
    runners = sorted(folder.glob("*-runner.jar"))
    if not runners:
        raise JarsError(f"no *-runner.jar in {folder}; remove that folder and fetch again")
    if prepare:
        from .registry import prepare_class_archive

        prepare_class_archive(runners[0])
    return runners[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.sandbox.kafka.jars",
        description="Fetch the Kafka broker's and the schema registry's jars from Maven "
        "Central into the cache (once), and print where they are.",
    )
    parser.add_argument("--broker-only", action="store_true", help="skip the schema registry")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        print(f"kafka broker classpath: {broker_classpath()}")
        if not args.broker_only:
            print(f"schema registry jar: {registry_jar()}")
    except JavaError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
