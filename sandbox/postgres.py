"""A real PostgreSQL server for the sandbox and the tests: started when a profile needs one.

Owns: finding the server's programs (Debian's ``/usr/lib/postgresql/<version>/bin``, or
``pg_config --bindir``), a fresh cluster in a temporary folder (``initdb`` with a random
superuser password: the URL carries the credentials, nothing else does), the server process
on a loopback port (``postgres`` itself, a direct child that dies with its parent:
``PR_SET_PDEATHSIG``; its socket in the cluster's folder), a database per caller, and always
stopping it and removing the folder. PostgreSQL refuses to run as root: as root it runs as
the Debian package's ``postgres`` user, or creates an unprivileged system user
(``env-harness-pg``) once. Imports nothing of the engine.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
SERVICE_USER = "env-harness-pg"
INSTALL_HINT = "install the PostgreSQL server (Debian: apt-get install postgresql)"


class PostgresError(RuntimeError):
    """The server could not be found or started; the message says what to do."""


def find_bindir() -> Path | None:
    """The folder of ``initdb`` and ``postgres``, or None when the server is not installed."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0)
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "postgres").is_file() and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout
        folder = Path(found.strip())
        if (folder / "postgres").is_file() and (folder / "initdb").is_file():
            return folder
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def _service_account() -> pwd.struct_passwd | None:
    """As root, the unprivileged account to run as (created when there is none); else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVICE_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        [
            *("useradd", "--system", "--user-group", "--no-create-home"),
            *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVICE_USER),
        ],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SERVICE_USER)


def _as(account: pwd.struct_passwd | None, die_with_parent: bool) -> Callable[[], None]:
    """What the child does between fork and exec: drop to ``account``, and ask for SIGTERM
    when its parent dies (after the drop: a change of credentials clears that request)."""

    def become() -> None:
        if account is not None:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        if die_with_parent and sys.platform.startswith("linux"):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        os.setsid()

    return become


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster and server: ``start()`` then, always, ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, base: Path | None = None) -> None:
        self.host = host
        self.requested_port = port
        self.base = base
        self.port = 0
        self.user = "harness"
        self._password = secrets.token_urlsafe(18)
        self.folder: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def data(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        """``postgresql://harness:<password>@127.0.0.1:<port>/<database>``."""
        return f"postgresql://{self.user}:{self._password}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresError(f"no PostgreSQL server here: {INSTALL_HINT}")
        account = _service_account()
        self.folder = Path(tempfile.mkdtemp(prefix="env-harness-pg-", dir=self.base))
        secret = self.folder / "pw"
        secret.write_text(self._password)
        if account is not None:
            for path in (self.folder, secret):
                os.chown(path, account.pw_uid, account.pw_gid)
        initdb = subprocess.run(
            [
                *(str(bindir / "initdb"), "-D", str(self.data), "-U", self.user),
                *("--pwfile", str(secret), "--auth", "scram-sha-256", "-E", "UTF8"),
                *("--locale", "C.UTF-8", "--no-sync"),
            ],
            capture_output=True,
            preexec_fn=_as(account, die_with_parent=False),
        )
        secret.unlink()
        if initdb.returncode != 0:
            detail = initdb.stderr.decode(errors="replace").strip().splitlines()
            raise PostgresError(f"initdb failed: {detail[-1] if detail else initdb.returncode}")
        for attempt in range(5):
            self.port = self.requested_port or _free_port(self.host)
            if self._serve(bindir, account, timeout):
                return
            if self.requested_port or attempt == 4:
                break
        raise PostgresError(f"PostgreSQL did not start: {self._last_log_line()}")

    def _serve(self, bindir: Path, account: pwd.struct_passwd | None, timeout: float) -> bool:
        assert self.folder is not None
        self._log = (self.folder / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *(str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                *("-c", f"listen_addresses={self.host}"),
                *("-c", f"unix_socket_directories={self.folder}"),
                *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
            ],
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_as(account, die_with_parent=True),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if (self.data / "postmaster.pid").exists() and self._accepts():
                return True
            time.sleep(0.05)
        self._stop_process()
        return False

    def _accepts(self) -> bool:
        bindir = find_bindir()
        assert bindir is not None
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
            capture_output=True,
        )
        return ready.returncode == 0

    def _last_log_line(self) -> str:
        try:
            assert self.folder is not None
            lines = (self.folder / "server.log").read_text(errors="replace").strip().splitlines()
        except (OSError, AssertionError):
            return "no log"
        return lines[-1] if lines else "no log"

    def create_database(self, name: str) -> str:
        """A new database (``CREATE DATABASE``); its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def _stop_process(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: sessions ended, no waiting
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None

    def stop(self) -> None:
        """Stop the server and remove its cluster; safe at any point, and twice."""
        self._stop_process()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
