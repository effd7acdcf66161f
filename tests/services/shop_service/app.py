"""The shop service's HTTP API over its three stores, and the process around them.

- Users live in a Cognito user pool: ``POST /signup`` (``AdminCreateUser`` + a permanent
  password; the service then writes a welcome file for the user by itself), ``POST /login``
  (``InitiateAuth``: an access token), and every other route takes ``Authorization: Bearer
  <access token>`` (checked with Cognito's ``GetUser``). ``DELETE /me`` deletes the Cognito
  user only — it forgets the user's files and orders (sloppy on purpose: they belong to it).
- Files live in a *versioned* S3 bucket under ``files/<username>/<name>``: ``PUT``, ``GET``,
  ``DELETE /files/<name>`` (a delete marker: the versions stay, as S3 keeps them).
- Orders live in PostgreSQL, table ``orders`` (``id`` bigserial key, ``owner`` the username,
  indexed for prefix ``LIKE``): ``POST /orders``, ``GET /orders``, ``DELETE /orders/<id>``.

``main`` parses the command line, starts the AWS emulator (moto in server mode, its own
process: ``sandbox.emulator``) and a PostgreSQL server (``sandbox.postgres``) when asked,
creates the pool, its app client, the bucket and the table, serves, prints its protocol
(``SERVICE_URL=``, ``AWS_ENDPOINT_URL=``, ``USER_POOL_ID=``, ``USER_POOL_CLIENT_ID=``,
``BUCKET=``, ``DATABASE_URL=``, ``READY``) and stops everything on SIGTERM/SIGINT (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import psycopg
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.handlers import add_expect_header

USERNAME_RE = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
Response = tuple[int, Any]
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    owner text NOT NULL,
    item text NOT NULL,
    qty integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_owner ON orders (owner text_pattern_ops);
"""


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Stores:
    """The pool, the bucket and the database, and every call the service makes to them."""

    def __init__(self, endpoint: str, region: str, database_url: str) -> None:
        config = Config(
            retries={"mode": "standard", "max_attempts": 3}, s3={"addressing_style": "path"}
        )
        session = boto3.session.Session(region_name=region)
        self.cognito = session.client("cognito-idp", endpoint_url=endpoint, config=config)
        self.s3 = session.client("s3", endpoint_url=endpoint, config=config)
        # An emulator never answers "100 Continue": botocore would wait a second per PUT.
        self.s3.meta.events.unregister("before-call.s3", add_expect_header)
        self.database_url = database_url
        self._local = threading.local()
        self.pool_id = ""
        self.client_id = ""
        self.bucket = ""

    def db(self) -> Any:
        """This thread's connection (autocommit)."""
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg.connect(self.database_url, autocommit=True)
            self._local.connection = connection
        return connection

    def provision(self, pool_name: str, bucket: str) -> None:
        pools = self.cognito.list_user_pools(MaxResults=60)["UserPools"]
        found = [p["Id"] for p in pools if p["Name"] == pool_name]
        self.pool_id = (
            found[0]
            if found
            else self.cognito.create_user_pool(
                PoolName=pool_name, AutoVerifiedAttributes=["email"]
            )["UserPool"]["Id"]
        )
        clients = self.cognito.list_user_pool_clients(UserPoolId=self.pool_id, MaxResults=60)
        mine = [c["ClientId"] for c in clients["UserPoolClients"] if c["ClientName"] == "shop"]
        self.client_id = (
            mine[0]
            if mine
            else self.cognito.create_user_pool_client(
                UserPoolId=self.pool_id,
                ClientName="shop",
                ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            )["UserPoolClient"]["ClientId"]
        )
        self.bucket = bucket
        try:
            self.s3.create_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response["Error"]["Code"] not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.db().execute(SCHEMA)


class ShopApp:
    ROUTES: list[tuple[str, re.Pattern[str], str, bool]] = [
        ("GET", re.compile(r"/status"), "status", False),
        ("POST", re.compile(r"/signup"), "signup", False),
        ("POST", re.compile(r"/login"), "login", False),
        ("GET", re.compile(r"/me"), "get_me", True),
        ("DELETE", re.compile(r"/me"), "delete_me", True),
        ("GET", re.compile(r"/files"), "list_files", True),
        ("PUT", re.compile(r"/files/(?P<name>[^/]+)"), "put_file", True),
        ("GET", re.compile(r"/files/(?P<name>[^/]+)"), "get_file", True),
        ("DELETE", re.compile(r"/files/(?P<name>[^/]+)"), "delete_file", True),
        ("GET", re.compile(r"/orders"), "list_orders", True),
        ("POST", re.compile(r"/orders"), "create_order", True),
        ("DELETE", re.compile(r"/orders/(?P<order_id>[0-9]+)"), "delete_order", True),
    ]

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Response:
        path = unquote(urlsplit(target).path)
        matches = [(r, m) for r in self.ROUTES if (m := r[1].fullmatch(path))]
        if not matches:
            return 404, {"message": "not found"}
        found = [(route, match) for route, match in matches if route[0] == method]
        if not found:
            return 405, {"message": "method not allowed"}
        (_, _, name, needs_user), match = found[0]
        try:
            user = self.authenticate(authorization) if needs_user else ""
            route = getattr(self, name)
            result: Response = route(user, body, **match.groupdict())
            return result
        except HttpError as exc:
            return exc.status, {"message": exc.message}

    def authenticate(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HttpError(401, "unauthorized")
        try:
            return str(self.stores.cognito.get_user(AccessToken=token.strip())["Username"])
        except ClientError:
            raise HttpError(401, "unauthorized") from None

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "body must be a JSON object")
        return data

    def _key(self, user: str, name: str = "") -> str:
        return f"files/{user}/{name}"

    # --- users ------------------------------------------------------------------------

    def status(self, user: str, body: bytes) -> Response:
        return 200, {"ok": True}

    def signup(self, user: str, body: bytes) -> Response:
        data = self._json(body)
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
            raise HttpError(400, "username must be 1-128 characters of A-Z a-z 0-9 . _ @ + -")
        if not isinstance(password, str) or not 8 <= len(password) <= 256:
            raise HttpError(400, "password must be a string of 8-256 characters")
        attributes = []
        if isinstance(data.get("email"), str):
            attributes.append({"Name": "email", "Value": data["email"]})
        stores = self.stores
        try:
            stores.cognito.admin_create_user(
                UserPoolId=stores.pool_id,
                Username=username,
                MessageAction="SUPPRESS",
                TemporaryPassword=password,
                UserAttributes=attributes,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "UsernameExistsException":
                raise HttpError(409, "username already taken") from None
            raise
        stores.cognito.admin_set_user_password(
            UserPoolId=stores.pool_id, Username=username, Password=password, Permanent=True
        )
        # The service's own doing: every new user gets a welcome file.
        stores.s3.put_object(
            Bucket=stores.bucket, Key=self._key(username, "welcome.txt"), Body=b"Welcome!"
        )
        return 201, {"username": username}

    def login(self, user: str, body: bytes) -> Response:
        data = self._json(body)
        try:
            answer = self.stores.cognito.initiate_auth(
                ClientId=self.stores.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={
                    "USERNAME": str(data.get("username")),
                    "PASSWORD": str(data.get("password")),
                },
            )["AuthenticationResult"]
        except ClientError:
            raise HttpError(401, "invalid username or password") from None
        return 200, {"access_token": answer["AccessToken"], "token_type": "Bearer"}

    def get_me(self, user: str, body: bytes) -> Response:
        return 200, {"username": user}

    def delete_me(self, user: str, body: bytes) -> Response:
        # Deliberately sloppy: the user's files and orders are left behind.
        self.stores.cognito.admin_delete_user(UserPoolId=self.stores.pool_id, Username=user)
        return 204, None

    # --- files ------------------------------------------------------------------------

    def _name(self, name: str) -> str:
        if not NAME_RE.fullmatch(name):
            raise HttpError(400, "a file name is 1-100 characters of A-Z a-z 0-9 . _ -")
        return name

    def list_files(self, user: str, body: bytes) -> Response:
        prefix = self._key(user)
        listing = self.stores.s3.list_objects_v2(Bucket=self.stores.bucket, Prefix=prefix)
        return 200, {"files": sorted(o["Key"][len(prefix) :] for o in listing.get("Contents", []))}

    def put_file(self, user: str, body: bytes, name: str) -> Response:
        key = self._key(user, self._name(name))
        self.stores.s3.put_object(Bucket=self.stores.bucket, Key=key, Body=body)
        return 201, {"key": key}

    def get_file(self, user: str, body: bytes, name: str) -> Response:
        try:
            got = self.stores.s3.get_object(
                Bucket=self.stores.bucket, Key=self._key(user, self._name(name))
            )
        except ClientError:
            raise HttpError(404, "no such file") from None
        return 200, {"content": got["Body"].read().decode(errors="replace")}

    def delete_file(self, user: str, body: bytes, name: str) -> Response:
        key = self._key(user, self._name(name))
        try:
            self.stores.s3.head_object(Bucket=self.stores.bucket, Key=key)
        except ClientError:
            raise HttpError(404, "no such file") from None
        self.stores.s3.delete_object(Bucket=self.stores.bucket, Key=key)  # a delete marker
        return 204, None

    # --- orders -----------------------------------------------------------------------

    def list_orders(self, user: str, body: bytes) -> Response:
        rows = (
            self.stores.db()
            .execute("SELECT id, item, qty FROM orders WHERE owner = %s ORDER BY id", [user])
            .fetchall()
        )
        return 200, {"orders": [{"id": i, "item": item, "qty": qty} for i, item, qty in rows]}

    def create_order(self, user: str, body: bytes) -> Response:
        data = self._json(body)
        item, qty = data.get("item"), data.get("qty", 1)
        if not isinstance(item, str) or not 1 <= len(item) <= 200:
            raise HttpError(400, "item must be a string of 1-200 characters")
        if not isinstance(qty, int) or not 1 <= qty <= 1000:
            raise HttpError(400, "qty must be an integer from 1 to 1000")
        row = (
            self.stores.db()
            .execute(
                "INSERT INTO orders (owner, item, qty) VALUES (%s, %s, %s) RETURNING id",
                [user, item, qty],
            )
            .fetchone()
        )
        return 201, {"id": row[0]}

    def delete_order(self, user: str, body: bytes, order_id: str) -> Response:
        deleted = (
            self.stores.db()
            .execute("DELETE FROM orders WHERE id = %s AND owner = %s", [int(order_id), user])
            .rowcount
        )
        if not deleted:
            raise HttpError(404, "no such order")
        return 204, None


# --- HTTP -----------------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: ShopApp) -> None:
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

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: whoever started us may not be draining stderr


# --- the process ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.services.shop_service",
        description="A small shop API on Cognito, S3 and PostgreSQL, for the project's tests.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    aws = parser.add_mutually_exclusive_group(required=True)
    aws.add_argument("--aws-endpoint", metavar="URL", help="Cognito and S3 endpoint (an emulator)")
    aws.add_argument("--with-emulator", action="store_true", help="start moto (server mode)")
    db = parser.add_mutually_exclusive_group(required=True)
    db.add_argument("--database-url", metavar="URL", help="a PostgreSQL database")
    db.add_argument("--with-postgres", action="store_true", help="start a PostgreSQL server")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--pool-name", default="shop-users")
    parser.add_argument("--bucket", default="shop-files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    # The emulator takes any credentials; never send real ones to it.
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "test"

    emulator: Any = None
    postgres: Any = None
    server: Server | None = None
    try:
        endpoint = args.aws_endpoint
        if args.with_emulator:
            from sandbox.emulator import EmulatorProcess

            emulator = EmulatorProcess("127.0.0.1", 0, dict(os.environ))
            emulator.start()
            endpoint = emulator.url
        database_url = args.database_url
        if args.with_postgres:
            from sandbox.postgres import PostgresServer

            postgres = PostgresServer()
            postgres.start()
            database_url = postgres.create_database("shop")
        stores = Stores(endpoint, args.region, database_url)
        stores.provision(args.pool_name, args.bucket)
        server = Server(("127.0.0.1", args.port), ShopApp(stores))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
        print(f"SERVICE_URL=http://127.0.0.1:{server.server_address[1]}", flush=True)
        print(f"AWS_ENDPOINT_URL={endpoint}", flush=True)
        print(f"USER_POOL_ID={stores.pool_id}", flush=True)
        print(f"USER_POOL_CLIENT_ID={stores.client_id}", flush=True)
        print(f"BUCKET={stores.bucket}", flush=True)
        print(f"DATABASE_URL={database_url}", flush=True)
        print("READY", flush=True)
        while not stop:
            time.sleep(0.2)
        return 0
    except Exception as exc:
        print(f"shop service failed to start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if emulator is not None:
            emulator.stop()
        if postgres is not None:
            postgres.stop()
