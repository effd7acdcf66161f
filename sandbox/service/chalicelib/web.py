"""JSON responses and the mapping of failures to HTTP answers.

Owns: the response shapes (``{"error": ...}``), and ``guarded``, the decorator that turns a
ValidationError into a 400 and any storage error into a logged 500 ``{"error": "Internal
error"}``. Must never turn a storage error into a 4xx (that would hide an outage as "bad
credentials") and never put exception text, which may hold data, into a response.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice import Response

from chalicelib.events import PublishError
from chalicelib.validation import ValidationError

log = logging.getLogger("service")

NOT_AUTHORIZED = {"error": "Not authorized"}
JSON = {"Content-Type": "application/json"}


def json_response(status: int, body: Any) -> Response:
    return Response(body=body, status_code=status, headers=dict(JSON))


def error(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"error": message, **extra})


def no_content() -> Response:
    return Response(body="", status_code=204)


def forbidden() -> Response:
    return json_response(403, dict(NOT_AUTHORIZED))


class StorageError(Exception):
    """Storage answered in an unexpected way (not a failed condition we handle)."""


def guarded(view: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except ValidationError as exc:
            return error(400, exc.message, field=exc.field)
        except (BotoCoreError, ClientError, StorageError, PublishError):
            log.exception("storage error in %s", view.__name__)
            return error(500, "Internal error")

    return wrapper
