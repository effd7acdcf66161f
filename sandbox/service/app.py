"""The reference service: users, sessions and notifications on Chalice + DynamoDB + SNS/SQS
(or Kafka: ``EVENTS_BUS=kafka``, see ``chalicelib.settings``).

Routes and contract: docs/service-contract.md. Deployed to AWS with ``chalice deploy``, or
locally by ``python -m sandbox``, which serves this very module. Configuration comes only from
environment variables (``chalicelib.settings``). This module wires routes to the library
code; it holds no storage or validation logic of its own.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from chalice import Chalice, Response
from chalice.app import SQSEvent
from chalicelib import (
    auth,
    events,
    logs,
    passwords,
    processing,
    settings,
    store,
    validation,
    web,
)

VERSION = os.environ.get("SERVICE_VERSION", "1.0.0")
# Bodies are parsed by chalicelib.validation, so a wrong Content-Type is a 400 that names the
# body, not Chalice's 415.
BODY_TYPES = [
    "application/json",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
]

app = Chalice(app_name="reference-service")
# One logger for the service's own lines (request log, storage errors, events handled), as
# structured JSON keyed on the caller's trace (chalicelib.logs); on Lambda it reaches
# CloudWatch through the runtime's root handler, locally the sandbox's shipping handler.
log = logging.getLogger("service")
log.setLevel(logging.INFO)
logs.configure(log)


@app.middleware("http")
def log_request(event: Any, get_response: Any) -> Response:
    """Every request in its caller's trace (``traceparent``), and one line for it."""
    headers = event.headers or {}
    with logs.traced(headers.get("traceparent")):
        started = time.perf_counter()
        response: Response = get_response(event)
        original = event.to_original_event()  # API Gateway: "path"; chalice local: its context's
        path = original.get("path") or original["requestContext"].get("path") or event.path
        log.info(
            "%s %s -> %s",
            event.method,
            path,
            response.status_code,
            extra=logs.fields(
                method=event.method,
                path=path,
                route=event.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                run=headers.get("x-harness-run", ""),
            ),
        )
    return response


def _body() -> bytes | None:
    request = app.current_request
    raw = request.raw_body if request is not None else None
    return raw.encode("utf-8") if isinstance(raw, str) else raw


@app.route("/health", methods=["GET"])
def health() -> Response:
    environment = os.environ.get("ENVIRONMENT_NAME", "unknown")
    return web.json_response(200, {"status": "ok", "environment": environment, "version": VERSION})


@app.route("/users", methods=["POST"], content_types=BODY_TYPES)
@web.guarded
def sign_up() -> Response:
    email, name, password = validation.signup(_body())
    user = store.User(
        uid=store.uid_for(email),
        email=email,
        name=name,
        password_hash=passwords.hash_password(password),
        created_at=events.now_iso(),
    )
    if not store.create_user(user):
        return web.error(409, "Email already registered")
    event = events.build(events.USER_CREATED, {"uid": user.uid, "email": email, "name": name})
    try:
        events.publish(event)
    except Exception:
        # No user without its event: undo the sign-up so a retry starts clean.
        log.exception("publishing user.created failed; undoing sign-up of uid %s", user.uid)
        store.delete_user_only(user.uid, email)
        return web.error(500, "Internal error")
    return web.json_response(201, {"uid": user.uid})


@app.route("/login", methods=["POST"], content_types=BODY_TYPES)
@web.guarded
def login() -> Response:
    email, password = validation.login(_body())
    user = store.get_user(store.uid_for(email))
    if user is None:
        passwords.burn_time(password)
        return web.error(401, "Invalid credentials")
    if not passwords.verify_password(password, user.password_hash):
        return web.error(401, "Invalid credentials")
    token, expires_at = auth.new_session(user.uid)
    return web.json_response(200, {"uid": user.uid, "token": token, "expires_at": expires_at})


@app.route("/logout", methods=["POST"], content_types=BODY_TYPES)
@web.guarded
@auth.login_required(app)
def logout(auth_uid: int, auth_token: str, auth_user: store.User | None) -> Response:
    store.delete_token(auth_uid, auth_token)
    return web.no_content()


def _self_only(uid: str, auth_uid: int) -> bool:
    return auth.parse_uid(uid) == auth_uid


@app.route("/users/{uid}", methods=["GET"])
@web.guarded
@auth.login_required(app)
def get_user(uid: str, auth_uid: int, auth_token: str, auth_user: store.User | None) -> Response:
    if not _self_only(uid, auth_uid):
        return web.forbidden()
    if auth_user is None:
        return web.error(404, "User not found")
    return web.json_response(200, auth_user.public())


@app.route("/users/{uid}", methods=["PATCH"], content_types=BODY_TYPES)
@web.guarded
@auth.login_required(app)
def update_user(uid: str, auth_uid: int, auth_token: str, auth_user: store.User | None) -> Response:
    if not _self_only(uid, auth_uid):
        return web.forbidden()
    changes = validation.patch(_body())
    password = changes.get("password")
    user = store.update_user(
        auth_uid,
        name=changes.get("name"),
        password_hash=passwords.hash_password(password) if password is not None else None,
    )
    if user is None:
        return web.error(404, "User not found")
    return web.json_response(200, user.public())


@app.route("/users/{uid}", methods=["DELETE"])
@web.guarded
@auth.login_required(app)
def delete_user(uid: str, auth_uid: int, auth_token: str, auth_user: store.User | None) -> Response:
    if not _self_only(uid, auth_uid):
        return web.forbidden()
    user = auth_user
    if user is not None and store.delete_user_and_token(user):
        events.publish(events.build(events.USER_DELETED, {"uid": user.uid, "email": user.email}))
    return web.no_content()


@app.route("/users/{uid}/notifications", methods=["GET"])
@web.guarded
@auth.login_required(app)
def notifications(
    uid: str, auth_uid: int, auth_token: str, auth_user: store.User | None
) -> Response:
    if not _self_only(uid, auth_uid):
        return web.forbidden()
    return web.json_response(200, {"notifications": store.list_notifications(auth_uid)})


@app.on_sqs_message(queue=settings.queue_name(), batch_size=10)
def process_user_events(event: SQSEvent) -> None:
    """Consume the user-events queue. Raising leaves the whole batch for redelivery."""
    for record in event:
        raw = record.to_dict()
        with logs.traced(logs.event_traceparent(raw.get("messageAttributes"))):
            outcome = processing.handle_message(record.body)
            log.info(
                "processed message %s: %s",
                raw.get("messageId"),
                outcome,
                extra=logs.fields(message_id=raw.get("messageId"), outcome=outcome),
            )


@app.lambda_function(name="process_user_events_kafka")
def process_user_events_kafka(event: dict[str, Any], context: Any) -> None:
    """Consume the user-events topic, as a Lambda behind a Kafka event-source mapping (MSK or
    self-managed; Chalice cannot declare one, so it is made next to the topic). Raising
    leaves the batch uncommitted, to be delivered again."""
    for record in events.kafka_records(event):
        with logs.traced(logs.event_traceparent(record.get("headers"))):
            outcome = processing.handle_message(events.kafka_record_body(record))
            where = f"{record.get('topic')}-{record.get('partition')}@{record.get('offset')}"
            log.info(
                "processed record %s: %s",
                where,
                outcome,
                extra=logs.fields(record=where, outcome=outcome),
            )
