"""The AWS emulator: moto's server-mode WSGI app in its own process, on keep-alive HTTP/1.1.

Owns: hosting ``moto.server.DomainDispatcherApplication`` on the ``keepalive`` server (stock
``python -m moto.server`` closes the connection after every response, which caps boto3 at
~200 calls/s), and the child process's lifecycle: it binds, reports its port on stdout, dies
with its parent (``PR_SET_PDEATHSIG``) and exits quietly on SIGTERM/SIGINT. The parent side
(``EmulatorProcess``) starts it, waits for the port with a deadline and always stops it.
Must never outlive the process that started it, and never print credentials.

Run as a child: ``python -m sandbox.emulator --host 127.0.0.1 --port 0 --parent-pid PID``.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import unquote

from .keepalive import BodyTooLarge, KeepAliveHandler, KeepAliveServer

PR_SET_PDEATHSIG = 1
READY_PREFIX = "emulator listening on port "


class EmulatorError(RuntimeError):
    """The emulator could not be started."""


# --- the child -----------------------------------------------------------------------


class WSGIHandler(KeepAliveHandler):
    """Runs one WSGI app; the whole response body is collected and sent in one write."""

    server: WSGIServer

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                wsgi_key = "HTTP_" + key
                environ[wsgi_key] = (
                    environ[wsgi_key] + "," + value if wsgi_key in environ else value
                )
        return environ

    def _handle(self) -> None:
        try:
            body = self.read_body() or b""
        except (BodyTooLarge, ValueError):
            self.send_too_large()
            return
        started: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started["status"], started["headers"] = status, headers
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.server.app(self._environ(body), start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status = int(str(started["status"]).split(" ", 1)[0])
        self.send_whole(status, started["headers"], b"".join(chunks))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class WSGIServer(KeepAliveServer):
    def __init__(self, address: tuple[str, int], app: Any) -> None:
        self.app = app
        super().__init__(address, WSGIHandler)


def moto_app() -> Any:
    # Imported here: moto is heavy, and only the child needs it.
    from moto.server import DomainDispatcherApplication, create_backend_app

    from . import moto_bounds, moto_speedups, moto_transactions

    moto_speedups.install()
    moto_bounds.install()
    moto_transactions.install()

    class Dispatcher(DomainDispatcherApplication):
        """moto's dispatcher, with the host -> backend lookup memoised.

        That lookup is a pure function of the host name but scans every moto module and URL
        pattern on each request (~20% of a DynamoDB GetItem's server time); it is called under
        the dispatcher's lock, so a plain dict is safe.
        """

        _backend_for_host: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            try:
                return self._backend_for_host[host]
            except KeyError:
                backend = super().get_backend_for_host(host)
                self._backend_for_host[host] = backend
                return backend

    return Dispatcher(create_backend_app)


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if parent_pid and os.getppid() != parent_pid:
        sys.exit(0)  # the parent died before prctl took effect


def serve(host: str, port: int, parent_pid: int) -> int:
    _die_with_parent(parent_pid)
    # A plain flag, not a threading.Event: a signal handler that takes the Event's lock while
    # the main thread holds it (inside wait()) deadlocks when a second signal arrives (the
    # parent-death SIGTERM and the parent's own SIGTERM): the emulator then never exited.
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        server = WSGIServer((host, port), moto_app())
    except OSError as exc:
        print(f"emulator: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    print(f"{READY_PREFIX}{server.server_address[1]}", flush=True)
    while not stop:
        if parent_pid and os.getppid() != parent_pid:
            break
        time.sleep(0.1)
    server.shutdown()
    server.server_close()
    # Nothing to flush or save (moto's state is meant to die with it); skipping the
    # interpreter's teardown of moto's modules saves ~0.3 s at every stop.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.emulator", description="moto in server mode on keep-alive HTTP/1.1"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--parent-pid", type=int, default=0, help="exit when this process is no longer the parent"
    )
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.parent_pid)


# --- the parent ----------------------------------------------------------------------


class EmulatorProcess:
    """Starts the emulator child, waits until it listens, and always stops it."""

    def __init__(self, host: str, port: int, env: dict[str, str], start_timeout: float = 20.0):
        self.host = host
        self.requested_port = port
        self.env = env
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        # The child's stderr goes to a file, not a pipe nobody drains while serving (a full
        # pipe would block it); it is read back only to explain a failed start.
        self._stderr: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"{__package__}.emulator",
                "--host",
                self.host,
                "--port",
                str(self.requested_port),
                "--parent-pid",
                str(os.getpid()),
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=self.env,
            # Its own session: a terminal's Ctrl-C reaches only the launcher, which stops
            # this child in order; PDEATHSIG covers a launcher that is killed outright.
            start_new_session=True,
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not sel.select(timeout=left):
                    continue
                line = self.proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    return int(line[len(READY_PREFIX) :])
                if line == "":
                    break
        if self.proc.poll() is None:
            raise EmulatorError(f"AWS emulator did not listen within {self.start_timeout:.0f}s")
        self.proc.wait()
        detail: list[str] = []
        if self._stderr is not None:
            self._stderr.seek(0)
            detail = self._stderr.read().strip().splitlines()
        raise EmulatorError(detail[-1] if detail else f"exited with {self.proc.returncode}")

    def request_stop(self) -> None:
        """Send SIGTERM without waiting (``stop`` then waits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self, timeout: float = 5.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        for stream in (proc.stdout, self._stderr):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    sys.exit(main())
