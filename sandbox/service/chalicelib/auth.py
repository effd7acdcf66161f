"""Authentication: the design notes' ``login_required`` decorator, mended.

Owns: reading the ``uid`` and ``token`` headers, checking them against the token table, and
issuing sessions. A request is authorised only if the token item for ``Uid`` exists, its
``Token`` matches (``hmac.compare_digest``, constant time) and its ``TimeToLive`` is in the
future *now* (DynamoDB deletes expired items up to days late; the emulator never does).
Missing/garbled headers, wrong or expired tokens all answer 403 ``{"error": "Not
authorized"}``. Must never answer 403 for a storage error: that propagates to
``web.guarded`` (500, logged), unlike the notes' ``except ClientError: return False``.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response

from chalicelib import store, web

SESSION_SECONDS = 30 * 60


def parse_uid(raw: str | None) -> int | None:
    """A positive integer uid from a header or path segment, else None."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 16:
        return None
    uid = int(raw)
    return uid if 0 < uid <= store.MAX_UID else None


def token_valid(session: tuple[str, int] | None, token: str, now: float | None = None) -> bool:
    """The presented token matches the stored session and the session has not expired."""
    if session is None:
        return False
    stored, expires_at = session
    now = time.time() if now is None else now
    if expires_at <= now:
        return False
    return hmac.compare_digest(stored.encode("utf-8"), token.encode("utf-8"))


def new_session(uid: int) -> tuple[str, int]:
    token = secrets.token_urlsafe(32)
    expires_at = int(time.time()) + SESSION_SECONDS
    store.put_token(uid, token, expires_at)
    return token, expires_at


def login_required(app: Chalice) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorator for views: passes ``auth_uid``, ``auth_token`` and ``auth_user`` (the
    caller's user item, None if it no longer exists) as keywords. Token and user are read in
    one round trip."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            headers = app.current_request.headers if app.current_request else {}
            uid = parse_uid(headers.get("uid"))
            token = headers.get("token")
            if uid is None or not token:
                return web.forbidden()
            session, user = store.get_session(uid)
            if not token_valid(session, token):
                return web.forbidden()
            return view(*args, auth_uid=uid, auth_token=token, auth_user=user, **kwargs)

        return wrapper

    return decorate
