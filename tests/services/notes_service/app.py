"""The notes service's HTTP API, its welcome-note worker, and the process around them.

``NotesApp.handle`` is the whole API (method, path, Authorization header, body in; status and
JSON out); ``Handler`` only moves bytes. ``main`` parses the command line, optionally starts
moto in-process, creates the tables, serves, prints the stdout protocol and stops on
SIGTERM/SIGINT with exit status 0.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import queue
import re
import secrets
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from .store import Store, TableNames

USERNAME_RE = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
MAX_TEXT = 10_000
SESSION_TTL_S = 3600
WELCOME_DELAY_S = 0.3
PBKDF2_ITERATIONS = 1000  # deliberately cheap: this service only ever holds test accounts

Response = tuple[int, dict[str, Any] | None]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    _, iterations, salt, digest = stored.split("$")
    actual = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(actual.hex(), digest)


class WelcomeWorker:
    """Writes each new account's welcome note a moment after it registers, on its own thread."""

    def __init__(self, store: Store, delay: float = WELCOME_DELAY_S) -> None:
        self.store = store
        self.delay = delay
        self._queue: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="welcome-worker", daemon=True)
        self._thread.start()

    def enqueue(self, username: str) -> None:
        self._queue.put((time.monotonic() + self.delay, username))

    def stop(self) -> None:
        """Stop now; notes not yet written are dropped."""
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            due, username = item
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            try:
                # Skipped if the account was deleted meanwhile.
                text = f"Welcome, {username}!"
                self.store.put_note_if_account(username, "welcome", text, _now())
            except Exception:
                traceback.print_exc()


class NotesApp:
    # method, path, handler name, whether a valid session is required
    ROUTES: list[tuple[str, re.Pattern[str], str, bool]] = [
        ("GET", re.compile(r"/status"), "status", False),
        ("POST", re.compile(r"/register"), "register", False),
        ("POST", re.compile(r"/login"), "login", False),
        ("GET", re.compile(r"/me"), "get_me", True),
        ("DELETE", re.compile(r"/me"), "delete_me", True),
        ("GET", re.compile(r"/notes"), "list_notes", True),
        ("POST", re.compile(r"/notes"), "create_note", True),
        ("DELETE", re.compile(r"/notes/(?P<note_id>[^/]+)"), "delete_note", True),
    ]

    def __init__(self, store: Store, worker: WelcomeWorker, secret: bytes) -> None:
        self.store = store
        self.worker = worker
        self.secret = secret

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Response:
        path = urlsplit(target).path
        matches = [(r, m) for r in self.ROUTES if (m := r[1].fullmatch(path))]
        if not matches:
            return 404, {"message": "not found"}
        found = [(route, match) for route, match in matches if route[0] == method]
        if not found:
            return 405, {"message": "method not allowed"}
        (_, _, name, needs_session), match = found[0]
        try:
            account = self.authenticate(authorization) if needs_session else None
            data = self._json(body) if method == "POST" else {}
            route: Callable[..., Response] = getattr(self, name)
            return route(account, data, **match.groupdict())
        except HttpError as exc:
            return exc.status, {"message": exc.message}

    # --- auth -------------------------------------------------------------------------

    def _sign(self, session_id: str) -> str:
        return hmac.new(self.secret, session_id.encode(), hashlib.sha256).hexdigest()

    def authenticate(self, authorization: str | None) -> dict[str, Any]:
        """The caller's account; 401 for a missing, forged, expired or orphaned token."""
        scheme, _, token = (authorization or "").partition(" ")
        session_id, _, signature = token.strip().partition(".")
        if (
            scheme.lower() != "bearer"
            or not session_id
            or not hmac.compare_digest(signature.encode(), self._sign(session_id).encode())
        ):
            raise HttpError(401, "unauthorized")
        session = self.store.get_session(session_id)
        if session is None or int(session["expires_at"]) <= time.time():
            raise HttpError(401, "unauthorized")
        account = self.store.get_account(str(session["username"]))
        if account is None:
            raise HttpError(401, "unauthorized")
        return account

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "body must be a JSON object")
        return data

    @staticmethod
    def _credentials(data: dict[str, Any]) -> tuple[str, str]:
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
            raise HttpError(400, "username must be 1-128 characters of A-Z a-z 0-9 . _ @ + -")
        if not isinstance(password, str) or not 1 <= len(password) <= 256:
            raise HttpError(400, "password must be a string of 1-256 characters")
        return username, password

    # --- routes -----------------------------------------------------------------------

    def status(self, account: None, data: dict[str, Any]) -> Response:
        return 200, {"ok": True}

    def register(self, account: None, data: dict[str, Any]) -> Response:
        username, password = self._credentials(data)
        if not self.store.create_account(username, hash_password(password), _now()):
            raise HttpError(409, "username already taken")
        self.worker.enqueue(username)
        return 201, {"username": username}

    def login(self, account: None, data: dict[str, Any]) -> Response:
        username, password = self._credentials(data)
        found = self.store.get_account(username)
        if found is None or not check_password(password, str(found["password_hash"])):
            raise HttpError(401, "invalid username or password")
        session_id = secrets.token_hex(16)
        self.store.create_session(session_id, username, int(time.time()) + SESSION_TTL_S)
        token = f"{session_id}.{self._sign(session_id)}"
        return 200, {"access_token": token, "token_type": "Bearer"}

    def get_me(self, account: dict[str, Any], data: dict[str, Any]) -> Response:
        return 200, {"username": account["username"], "created_at": account["created_at"]}

    def delete_me(self, account: dict[str, Any], data: dict[str, Any]) -> Response:
        # Deliberately sloppy: the caller's notes and sessions are left behind.
        self.store.delete_account(str(account["username"]))
        return 204, None

    def list_notes(self, account: dict[str, Any], data: dict[str, Any]) -> Response:
        notes = self.store.list_notes(str(account["username"]))
        fields = ("note_id", "text", "created_at")
        return 200, {"notes": [{k: note[k] for k in fields if k in note} for note in notes]}

    def create_note(self, account: dict[str, Any], data: dict[str, Any]) -> Response:
        text = data.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            raise HttpError(400, f"text must be a string of 1-{MAX_TEXT} characters")
        note_id = uuid.uuid4().hex
        self.store.put_note(str(account["username"]), note_id, text, _now())
        return 201, {"note_id": note_id}

    def delete_note(self, account: dict[str, Any], data: dict[str, Any], note_id: str) -> Response:
        if not self.store.delete_note(str(account["username"]), note_id):
            raise HttpError(404, "no such note")
        return 204, None


# --- HTTP -----------------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: NotesApp) -> None:
        self.app = app
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            auth = self.headers.get("Authorization")
            status, payload = self.server.app.handle(self.command, self.path, auth, body)
        except ValueError:
            status, payload = 400, {"message": "bad Content-Length"}
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            status, payload = 500, {"message": "internal error"}
        self.send_response(status)
        data = b""
        if payload is not None:
            data = json.dumps(payload).encode()
            self.send_header("Content-Type", "application/json")
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: whoever started us may not be draining stderr


# --- the process ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.services.notes_service",
        description="A small notes API on DynamoDB, for the project's own tests.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    aws = parser.add_mutually_exclusive_group(required=True)
    aws.add_argument("--aws-endpoint", metavar="URL", help="DynamoDB endpoint (an emulator)")
    aws.add_argument(
        "--with-emulator", action="store_true", help="start moto in-process on a free port"
    )
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--accounts-table", default="accounts")
    parser.add_argument("--notes-table", default="notes")
    parser.add_argument("--sessions-table", default="sessions")
    return parser.parse_args(argv)


def isolate_dynamodb_calls() -> None:
    """One DynamoDB call at a time in the in-process emulator. moto rolls a failed transaction
    back by restoring whole tables from a copy taken when the transaction began, so a write
    another request made meanwhile is undone: the welcome worker's cancelled note (its
    account was just deleted) could bring back an account a test's cleanup had deleted a
    millisecond before. DynamoDB isolates transactions; serialising the calls gives the
    emulator the same guarantee."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return unlocked(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def start_emulator() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    isolate_dynamodb_calls()

    # werkzeug would log every request to stderr; nobody may be reading it.
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.WARNING)
    werkzeug.addHandler(logging.NullHandler())
    emulator = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    emulator.start()
    host, port = emulator.get_host_and_port()
    return emulator, f"http://{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain flag: a handler taking an Event's lock while the main thread is inside wait()
    # deadlocks when a second signal arrives.
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))

    if args.with_emulator:  # never send real credentials to our own emulator
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
    elif "AWS_ACCESS_KEY_ID" not in os.environ:
        os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "test"

    emulator: Any = None
    endpoint: str = args.aws_endpoint
    worker: WelcomeWorker | None = None
    server: Server | None = None
    try:
        if args.with_emulator:
            emulator, endpoint = start_emulator()
        client = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name=args.region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        names = TableNames(args.accounts_table, args.notes_table, args.sessions_table)
        store = Store(client, names)
        store.ensure_tables()
        worker = WelcomeWorker(store)
        server = Server(("127.0.0.1", args.port), NotesApp(store, worker, secrets.token_bytes(32)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
        port = server.server_address[1]
        print(f"SERVICE_URL=http://127.0.0.1:{port}", flush=True)
        print(f"AWS_ENDPOINT_URL={endpoint}", flush=True)
        print("READY", flush=True)
        while not stop:
            time.sleep(0.2)
        return 0
    except Exception as exc:
        print(f"notes service failed to start: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if worker is not None:
            worker.stop()
        if emulator is not None:
            emulator.stop()
