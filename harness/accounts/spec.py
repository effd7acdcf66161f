"""An account pool as a profile declares it: the ``[NAME.accounts]`` table.

Owns reading and checking that table into one immutable :class:`AccountsSpec`: where each
account's credentials live (``secrets``: AWS Secrets Manager secret ids; ``parameters``: SSM
Parameter Store names — the names only, never the credentials), how an account logs in
(``login``: an HTTP route such as ``"POST /login"``, or ``"cognito"`` with a ``client_id``),
how requests carry its session (``auth``: ``bearer`` or ``uid-token``, from the login
answer's ``token_field`` and ``uid_field``), and how long a worker waits for a free account
(``wait``). A field that holds or names a credential (``password``, ``token`` …) is refused
with one line saying where credentials go. Pure: no I/O, and it imports neither the config
nor any client, so :mod:`harness.config` can call it while loading a profile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.safety.protect import parse_route
from harness.safety.redact import SENSITIVE_WORDS

#: ``login = "cognito"``: Cognito's InitiateAuth (USER_PASSWORD_AUTH) through ``client_id``.
COGNITO = "cognito"
DEFAULT_LOGIN = "POST /login"
#: How requests carry the session: ``Authorization: Bearer <token>``, or the reference
#: service's ``uid`` and ``token`` headers.
AUTH_MODES = ("bearer", "uid-token")
#: Where credentials live: the field of the table → the store.
STORES = {"secrets": "secretsmanager", "parameters": "ssm"}
FIELDS = ("secrets", "parameters", "login", "auth", "token_field", "uid_field", "client_id", "wait")
#: Every lease item of an account starts with this (never a run's namespace: the sweeper and
#: the liveness authority read only ``itest-…`` leases).
LEASE_PREFIX = "account-lease:"
_WHERE_CREDENTIALS = (
    'keep each account\'s credentials in AWS Secrets Manager (secrets = ["…"]) or SSM '
    'Parameter Store (parameters = ["…"]) and name them here'
)


@dataclass(frozen=True)
class AccountEntry:
    """One account of the pool: where its credentials are (``store``, ``name``)."""

    store: str
    name: str

    @property
    def lease_key(self) -> str:
        """Its lease item's key in the lease table (``account-lease:secretsmanager:NAME``)."""
        return f"{LEASE_PREFIX}{self.store}:{self.name}"

    @property
    def where(self) -> str:
        """``secret prod/smoke/1`` or ``parameter /prod/smoke/1``, for messages."""
        return f"{'secret' if self.store == 'secretsmanager' else 'parameter'} {self.name}"


@dataclass(frozen=True)
class AccountsSpec:
    entries: tuple[AccountEntry, ...]
    login: str = DEFAULT_LOGIN
    auth: str = "bearer"
    #: The login answer's field holding the token ("" = ``token``; Cognito: ``IdToken``).
    token_field: str = ""
    uid_field: str = "uid"
    client_id: str = ""
    #: Seconds a worker waits for a free account before the pool counts as exhausted.
    wait: float = 0.0

    @property
    def is_cognito(self) -> bool:
        return self.login == COGNITO

    @property
    def route(self) -> tuple[str, str]:
        """The login route's (method, path); only for an HTTP login."""
        return parse_route(self.login)

    @property
    def token_key(self) -> str:
        return self.token_field or ("IdToken" if self.is_cognito else "token")


def _credential_fields(value: Any, path: str = "") -> list[str]:
    """Every key, at any depth, whose name carries a sensitive word (``password`` …) — but
    the table's own fields (``token_field`` names a field, it holds no token)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            normal = str(key).replace("_", "").replace("-", "").lower()
            own = not path and key in FIELDS
            if not own and any(word in normal for word in SENSITIVE_WORDS):
                found.append(f"{path}{key}")
            found.extend(_credential_fields(inner, f"{path}{key}."))
    elif isinstance(value, list):
        for inner in value:
            found.extend(_credential_fields(inner, path))
    return found


def _names(table: Mapping[str, Any], field: str, where: str) -> list[str]:
    names = table.get(field, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(
            f'{where}: {field} must be a list of names, like {field} = ["prod/smoke/account-1"]'
        )
    return [n.strip() for n in names]


def parse_accounts(
    table: Any, where: str, profile: str, duration: Callable[[Any], float]
) -> AccountsSpec:
    """The pool ``table`` declares (``where`` names it in messages: ``FILE: [prod.accounts]``);
    ``duration`` parses ``wait`` (``"30s"``, ``"2m"``). A :class:`ConfigError` naming the fix
    for anything else."""
    if not isinstance(table, Mapping):
        raise ConfigError(
            f'{where}: accounts must be a table, like [{profile}.accounts] with secrets = ["…"]'
        )
    credentials = _credential_fields(table)
    if credentials:
        raise ConfigError(
            f"{where} has {', '.join(credentials)}: credentials never go in this file; "
            f"{_WHERE_CREDENTIALS}"
        )
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    entries = [
        AccountEntry(store, name)
        for field, store in STORES.items()
        for name in _names(table, field, where)
    ]
    if not entries:
        raise ConfigError(f"{where} names no account: {_WHERE_CREDENTIALS}")
    seen: set[AccountEntry] = set()
    for entry in entries:
        if entry in seen:
            raise ConfigError(f"{where} names {entry.where} twice: an account is in a pool once")
        seen.add(entry)
    texts = {}
    for field in ("login", "auth", "token_field", "uid_field", "client_id"):
        value = table.get(field, "")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {field} must be a string, not {value!r}")
        texts[field] = value.strip()
    login = texts["login"] or DEFAULT_LOGIN
    if login != COGNITO:
        try:
            method, path = parse_route(login)
        except ValueError as error:
            raise ConfigError(f'{where}: login: {error}, or login = "cognito"') from None
        if re.search(r"[{}*]", path):
            raise ConfigError(f"{where}: login {login!r} names one route, with no wildcard")
        login = f"{method} {path}"
    elif not texts["client_id"]:
        raise ConfigError(
            f'{where}: login = "cognito" needs client_id = "…": the user pool\'s app client '
            f"(with ALLOW_USER_PASSWORD_AUTH) the accounts log in through"
        )
    if texts["client_id"] and login != COGNITO:
        raise ConfigError(f'{where}: client_id is for login = "cognito" only')
    auth = texts["auth"] or "bearer"
    if auth not in AUTH_MODES:
        raise ConfigError(f"{where}: auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
    if auth == "uid-token" and login == COGNITO:
        raise ConfigError(f'{where}: a Cognito login gives a bearer token: use auth = "bearer"')
    raw_wait = table.get("wait", 0)
    try:
        if isinstance(raw_wait, bool):
            raise ValueError(f"{raw_wait!r} is not a duration (use e.g. 30s, 2m)")
        wait = duration(raw_wait)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: wait: {error}") from None
    if wait < 0:
        raise ConfigError(f"{where}: wait must not be negative, not {raw_wait!r}")
    return AccountsSpec(
        entries=tuple(entries),
        login=login,
        auth=auth,
        token_field=texts["token_field"],
        uid_field=texts["uid_field"] or "uid",
        client_id=texts["client_id"],
        wait=wait,
    )
