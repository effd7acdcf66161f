"""Write protection: on a protected target, nothing the harness hands out can write.

Owns the rules and the one error they raise. Each door asks here:

- HTTP (:class:`~harness.clients.http.ApiClient`): only GET, HEAD and OPTIONS are sent; any
  other method is refused unless its route is named in the profile's ``allow_writes``
  (``"POST /login"``; ``{name}`` or ``*`` stands for one path segment, ``**`` for the rest of
  the path).
- AWS (:class:`~harness.clients.aws.Aws`): a botocore ``provide-client-params`` hook on every
  client refuses every operation that is not a read — reads are ``Get*``, ``Describe*``,
  ``List*``, ``Head*``, ``Query``, ``Scan``, ``BatchGetItem``, ``TransactGetItems`` and
  CloudWatch Logs' ``FilterLogEvents`` (a failed test's service log lines), Cognito's
  ``AdminGetUser``.
  ``ReceiveMessage`` is refused too: receiving hides a message from the service's own
  consumer for the visibility timeout, which is a change to the target. The only writes
  let through are those an :class:`AwsAllowance` names exactly, for the account pool
  (:mod:`harness.accounts`): a conditional put or delete of an account's lease item in the
  profile's ``lease_table``, and a Cognito ``InitiateAuth`` (a login) through the pool's app
  client.
- SQL (:mod:`harness.kinds.sql`): only a ``SELECT`` is sent (:func:`check_sql`), on a
  connection whose transactions are read-only.
- The ledger (so every factory built on it), the event stream's subscription queue and the
  event publisher refuse outright.

A refusal raises :class:`ProtectedTargetError` before anything is sent; its message is one
line naming the profile and the rule. It is not an ``AssertionError`` on purpose: retry
helpers (``eventually``) retry assertion errors, and a refusal must never be retried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from harness.reporting.latency import route_template

#: The HTTP methods that reach a protected target without being named in ``allow_writes``.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: AWS operations that read: by prefix, and a few by name.
READ_OPERATION_PREFIXES = ("Get", "Describe", "List", "Head")
READ_OPERATIONS = frozenset(
    {"Query", "Scan", "BatchGetItem", "TransactGetItems", "FilterLogEvents", "AdminGetUser"}
)
_SETTING_HINT = "set protected = false only for a test environment"
#: The AWS rule's handler id: installed twice on one event system, it is there once.
AWS_GUARD_ID = "harness-protect"


class ProtectedTargetError(Exception):
    """A write to a protected target was refused; nothing was sent."""


def refusal(profile: str, what: str, rule: str) -> ProtectedTargetError:
    return ProtectedTargetError(f"protected target [{profile}]: {what} refused — {rule}")


def is_read_operation(name: str) -> bool:
    return name in READ_OPERATIONS or name.startswith(READ_OPERATION_PREFIXES)


def parse_route(text: str) -> tuple[str, str]:
    """``"POST /login"`` → ``("POST", "/login")``; ValueError naming the form otherwise."""
    parts = text.split()
    if len(parts) != 2 or not parts[0].isalpha() or not parts[1].startswith("/"):
        raise ValueError(f'{text!r} is not a route; write it as "METHOD /path", e.g. "POST /login"')
    return parts[0].upper(), parts[1]


def _bare(path: str) -> str:
    """A request path without its query string and fragment."""
    return path.partition("?")[0].partition("#")[0]


def _route_regex(path: str) -> re.Pattern[str]:
    pieces: list[str] = []
    for token in re.split(r"(\{[^/{}]*\}|\*\*|\*)", path):
        if token == "**":
            pieces.append(".*")
        elif token == "*" or (token.startswith("{") and token.endswith("}")):
            pieces.append("[^/]+")
        else:
            pieces.append(re.escape(token))
    return re.compile("".join(pieces) + "/?")


@dataclass(frozen=True)
class HttpGuard:
    """The HTTP rule of one protected profile: reads pass, named routes pass, nothing else."""

    profile: str
    allow_writes: tuple[str, ...] = ()

    @cached_property
    def _routes(self) -> list[tuple[str, re.Pattern[str]]]:
        routes = []
        for text in self.allow_writes:
            method, path = parse_route(text)
            routes.append((method, _route_regex(path)))
        return routes

    def allows(self, method: str, path: str) -> bool:
        method = method.upper()
        if method in READ_METHODS:
            return True
        if "://" in path:  # another host (or a URL in the query string): never
            return False
        bare = _bare(path)
        return any(m == method and pattern.fullmatch(bare) for m, pattern in self._routes)

    def check(self, method: str, path: str) -> None:
        """Raise :class:`ProtectedTargetError` unless ``method path`` may be sent. The fix it
        names is the route's template (``DELETE /todos/{id}`` for ``DELETE /todos/0f3c…``:
        segments that look like ids, as the latency report groups them), which allows every
        such request and no other route."""
        if self.allows(method, path):
            return
        method = method.upper()
        bare = _bare(path)
        route = f"{method} {bare or path}"
        if "://" in path:
            rule = (
                "a request naming a URL (another host, or one in its query string) is never "
                "sent to a protected profile"
            )
        else:
            template = f"{method} {route_template(bare)}"  # "?x=1" alone: the root, "/"
            rule = (
                f"only GET/HEAD/OPTIONS are sent to a protected profile; to allow this route, "
                f'add allow_writes = ["{template}"] to the profile'
            )
        raise refusal(self.profile, route, rule)


def http_guard(profile: Any) -> HttpGuard | None:
    """The profile's HTTP rule, or None when it is not protected."""
    if not profile.is_protected:
        return None
    return HttpGuard(profile.name, tuple(profile.allow_writes))


@dataclass(frozen=True)
class AwsAllowance:
    """The AWS writes a protected profile still lets through, each named exactly — for the
    account pool, which must lease an account and may log in as it, and nothing else:

    - DynamoDB ``PutItem`` / ``DeleteItem`` in ``lease_table`` of an item whose key
      ``lease_key`` starts with ``lease_prefix`` (an account's lease, never a run's lease
      or any other item), and only with a ``ConditionExpression`` (the lease's rules);
    - Cognito ``InitiateAuth`` with ``USER_PASSWORD_AUTH`` through ``cognito_client_id``.

    Empty fields allow nothing."""

    lease_table: str = ""
    lease_prefix: str = ""
    lease_key: str = "Marker"
    cognito_client_id: str = ""

    def allows(self, service: str, operation: str, params: Mapping[str, Any]) -> bool:
        if service == "dynamodb" and operation in ("PutItem", "DeleteItem"):
            if not (self.lease_table and self.lease_prefix) or not params.get(
                "ConditionExpression"
            ):
                return False
            if params.get("TableName") != self.lease_table:
                return False
            key = params.get("Item" if operation == "PutItem" else "Key")
            marker = key.get(self.lease_key) if isinstance(key, Mapping) else None
            if isinstance(marker, Mapping):  # the low-level client's typed form: {"S": ...}
                marker = marker.get("S")
            return isinstance(marker, str) and marker.startswith(self.lease_prefix)
        if service == "cognito-idp" and operation == "InitiateAuth":
            return (
                bool(self.cognito_client_id)
                and params.get("ClientId") == self.cognito_client_id
                and params.get("AuthFlow") == "USER_PASSWORD_AUTH"
            )
        return False


def install_aws_guard(events: Any, profile_name: str, allow: AwsAllowance | None = None) -> None:
    """Refuse every AWS operation but reads (and what ``allow`` names) on clients built with
    ``events`` (a boto3 session's event system; its clients copy the handlers they find
    when built)."""

    def refuse_writes(model: Any = None, params: Any = None, **_: Any) -> None:
        if model is None or is_read_operation(model.name):
            return
        service = model.service_model.service_name
        if allow is not None and allow.allows(service, model.name, params or {}):
            return
        raise refusal(
            profile_name,
            f"AWS {service} {model.name}",
            f"a protected profile's AWS clients only read (Get*, Describe*, List*, Head*, "
            f"Query, Scan, FilterLogEvents, AdminGetUser); {_SETTING_HINT}",
        )

    events.register("provide-client-params.*.*", refuse_writes, unique_id=AWS_GUARD_ID)


def refuse_create(profile: str, kind: str) -> ProtectedTargetError:
    return refusal(
        profile,
        f"creating a {kind}",
        f"the ledger and its factories create nothing on a protected profile; {_SETTING_HINT}",
    )


def refuse_publish(profile: str, what: str) -> ProtectedTargetError:
    return refusal(
        profile,
        what,
        f"the event publisher sends nothing to a protected profile; {_SETTING_HINT}",
    )


def validate_routes(routes: Iterable[str]) -> tuple[str, ...]:
    """Each ``allow_writes`` entry parsed once (ValueError naming the bad one)."""
    checked = []
    for text in routes:
        method, path = parse_route(text)
        checked.append(f"{method} {path}")
    return tuple(checked)


def check_sql(profile: str, statement: str) -> None:
    """A SQL statement may reach a protected target only when it is a ``SELECT`` (one
    statement; the connection is read-only too). Raises before anything is sent."""
    text = statement.strip()
    words = text.split(None, 1)
    if words and words[0].upper() == "SELECT" and ";" not in text.rstrip(";"):
        return
    raise refusal(
        profile,
        f"SQL {' '.join(text.split()[:2]) or '(empty)'}",
        f"the harness's SQL connections only SELECT on a protected profile; {_SETTING_HINT}",
    )
