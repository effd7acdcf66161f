"""Kinds declared in a Cognito user pool: test users, found and deleted with no code.

```toml
[local.kinds.member]
type = "cognito"
user_pool_id = "us-east-1_AbCdEf"
marker = "username"            # or a standard attribute that carries the namespace: "email"
client_id = "…"                # optional: the app client the cognito_user fixture logs in with
```

Owns finding (``ListUsers`` with a filter ``<marker> ^= "prefix"`` — Cognito answers it from
its own index, so a run's look costs what it finds — and a full listing only where no filter
can answer: a custom attribute, which ``doctor`` warns of), telling what exists by key
(``AdminGetUser``, one call a user: Cognito has no batch read), what belongs to a resource
(:func:`~harness.namespace.belongs`: ``…-ann`` and ``…-ann-admin``, never ``…-ann1``), and
deleting (``AdminDeleteUser``, only after the gate; with an attribute marker, which a user
may change, only while the user still carries the marker the gate checked — Cognito has no
conditional delete, so it reads the user first). It never creates a user: the
``cognito_user`` fixture does, through the ledger (:func:`create_user`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import OwnershipError
from harness.kinds.base import Found, Outcome
from harness.kinds.stores import FAIL, OK, WARN, StoreCheck, StoreKind, paged
from harness.namespace import belongs

if TYPE_CHECKING:
    from harness.clients.aws import Aws
    from harness.config import Profile
    from harness.kinds.dynamo import ScanControl

#: Attributes ListUsers can filter on (the others need a full listing).
FILTERABLE = frozenset(
    {
        "username",
        "email",
        "phone_number",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "sub",
    }
)
#: ListUsers' largest page.
PAGE = 60


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def _quoted(value: str) -> str:
    """A value inside a ListUsers filter's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


class CognitoKind(StoreKind):
    """One ``[profile.kinds.NAME]`` with ``type = "cognito"``."""

    store = "cognito"

    def __init__(
        self,
        name: str,
        profile: Profile,
        aws: Aws,
        *,
        user_pool_id: str,
        marker: str,
        client_id: str,
        sweep_order: int,
    ) -> None:
        super().__init__(name, profile, aws, sweep_order=sweep_order)
        self.user_pool_id = user_pool_id
        self.marker_attribute = marker
        self.client_id = client_id
        # A filter answers by prefix: the residue check may look namespace-wide every run.
        filterable = marker in FILTERABLE
        self.__dict__["find_is_cheap"] = filterable
        self.__dict__["related_by_key"] = filterable

    @classmethod
    def from_spec(
        cls, name: str, spec: Mapping[str, Any], profile: Profile, aws: Aws
    ) -> CognitoKind:
        return cls(
            name,
            profile,
            aws,
            user_pool_id=str(spec["user_pool_id"]),
            marker=str(spec["marker"]),
            client_id=str(spec.get("client_id", "")),
            sweep_order=int(spec.get("sweep_order", 50)),
        )

    @property
    def client(self) -> Any:
        return self.aws.cognito_idp

    # --- what a user is ---------------------------------------------------------------

    def _value(self, user: Mapping[str, Any]) -> str:
        """The user's marker: its username, or the marker attribute's value."""
        if self.marker_attribute == "username":
            return str(user["Username"])
        # ListUsers and AdminCreateUser say "Attributes", AdminGetUser "UserAttributes"
        attributes = [*user.get("Attributes", ()), *user.get("UserAttributes", ())]
        values = [a["Value"] for a in attributes if a["Name"] == self.marker_attribute]
        return str(values[0]) if values else ""

    def _found(self, user: Mapping[str, Any]) -> Found:
        username = str(user["Username"])
        marker = self._value(user)
        ids = {"username": username, self.marker_attribute: marker}
        return Found(
            self.name,
            ids,
            f"{self.name} user {username} in {self.user_pool_id}",
            marker=marker,
        )

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        value = ids.get(self.marker_attribute)
        return None if value is None else str(value)

    def _get(self, username: str) -> dict[str, Any] | None:
        try:
            user = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)
        except ClientError as error:
            if _code(error) == "UserNotFoundException":
                return None
            raise
        return dict(user)

    # --- finding ----------------------------------------------------------------------

    def _list(self, prefix: str, *, scan: ScanControl | None) -> list[Found]:
        """Every user whose marker starts with ``prefix``, as ``ListUsers`` pages them: with
        the filter ``<marker> ^= "prefix"``, or — a marker no filter can answer — all of
        them."""
        filter_text = (
            f'{self.marker_attribute} ^= "{_quoted(prefix)}"' if self.find_is_cheap else None
        )

        def fetch(token: Any) -> tuple[list[dict[str, Any]], Any, int]:
            kwargs: dict[str, Any] = {"UserPoolId": self.user_pool_id, "Limit": PAGE}
            if filter_text is not None:
                kwargs["Filter"] = filter_text
            if token is not None:
                kwargs["PaginationToken"] = token
            page = self.client.list_users(**kwargs)
            users = page["Users"]
            items = [{"Username": u["Username"], "Attributes": u["Attributes"]} for u in users]
            return items, page.get("PaginationToken"), len(users)

        users = paged(
            fetch,
            store=self.user_pool_id,
            scope=f"{self.marker_attribute}\0{prefix}",
            scan=scan,
            total=self._estimated,
        )
        return [self._found(user) for user in users]

    def _estimated(self) -> int:
        pool = self.client.describe_user_pool(UserPoolId=self.user_pool_id)["UserPool"]
        return int(pool["EstimatedNumberOfUsers"])

    def find(self, prefix: str, scan: ScanControl | None = None) -> list[Found]:
        """Users whose marker starts with ``prefix``: ``ListUsers`` filtered by
        ``<marker> ^= "prefix"``; a full listing (read in pages, within the sweeper's
        budget) only where the marker is not filterable."""
        return [f for f in self._list(prefix, scan=scan) if f.marker.startswith(prefix)]

    def related(self, owner_marker: str) -> list[Found]:
        """Users whose marker belongs to ``owner_marker`` (equal, or continued after a
        separator; never a look-alike's, which the prefix filter also finds)."""
        return [f for f in self.find(owner_marker) if belongs(f.marker, owner_marker)]

    def exists(self, ids: Mapping[str, Any]) -> Found | None:
        username = ids.get("username")
        if username is None:  # the create's answer was lost: only the marker is known
            marker = self.marker(ids)
            same = [f for f in self.find(marker) if f.marker == marker] if marker else []
            return same[0] if same else None
        user = self._get(str(username))
        return self._found(user) if user is not None else None

    # --- deleting ---------------------------------------------------------------------

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        """``AdminDeleteUser`` of a user the gate has checked: by its username (which a
        user cannot change); with an attribute marker, only while the user still carries
        the marker the gate checked."""
        marker = str(self.marker(ids))  # the gate has seen it
        username = ids.get("username")
        if username is None:
            deleted = [self.delete(f.ids) for f in self.find(marker) if f.marker == marker]
            return "deleted" if "deleted" in deleted else "absent"
        if self.marker_attribute != "username":
            user = self._get(str(username))
            if user is None:
                return "absent"
            if self._value(user) != marker:
                raise OwnershipError(
                    f"{self.name} user {username} in {self.user_pool_id} no longer carries "
                    f"{marker!r}; left alone"
                )
        try:
            self.client.admin_delete_user(UserPoolId=self.user_pool_id, Username=str(username))
        except ClientError as error:
            if _code(error) == "UserNotFoundException":
                return "absent"
            raise
        return "deleted"

    def store_sizes(self) -> list[tuple[str, int]]:
        return [(self.user_pool_id, self._estimated())]

    # --- doctor -----------------------------------------------------------------------

    def checks(self) -> list[StoreCheck]:
        name = f"kind {self.name}"
        fix = f"create the pool, or fix user_pool_id under [{self.profile.name}.kinds.{self.name}]"
        try:
            pool = self.client.describe_user_pool(UserPoolId=self.user_pool_id)["UserPool"]
        except ClientError as error:
            return [StoreCheck(name, FAIL, f"user pool {self.user_pool_id}: {_code(error)}", fix)]
        rows = [
            StoreCheck(
                name,
                OK,
                f"user pool {self.user_pool_id} ({pool['Name']}, "
                f"~{pool['EstimatedNumberOfUsers']} users)",
            )
        ]
        if not self.find_is_cheap:
            rows.append(
                StoreCheck(
                    f"kind {self.name} marker",
                    WARN,
                    f"ListUsers cannot filter on {self.marker_attribute!r}: finding a run's "
                    f"users lists the whole pool",
                    f"carry the namespace in one of {', '.join(sorted(FILTERABLE))} "
                    f'(marker = "username" or "email")',
                )
            )
        return rows


# --- the cognito_user fixture's work --------------------------------------------------


@dataclass
class CognitoUser:
    """A test user made in a Cognito pool by the ``cognito_user`` fixture, logged in."""

    username: str
    password: str = field(repr=False)
    attributes: dict[str, str] = field(default_factory=dict)
    access_token: str = field(default="", repr=False)
    id_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    @property
    def auth(self) -> Any:
        """``Authorization: Bearer <access token>`` for ``api`` requests."""
        from harness.clients.auth import BearerAuth

        return BearerAuth(self.access_token)

    @property
    def id_auth(self) -> Any:
        """``Authorization: <id token>``: what Chalice's ``CognitoUserPoolAuthorizer`` reads."""
        from harness.clients.auth import HeaderAuth

        return HeaderAuth({"Authorization": self.id_token})


def create_user(
    kind: CognitoKind, username: str, password: str, attributes: Mapping[str, str]
) -> dict[str, Any]:
    """``AdminCreateUser`` (no invitation message) and a permanent password: the ids the
    ledger deletes the user by. Called inside ``ledger.create``, after the intent is
    journaled."""
    client = kind.client
    user = client.admin_create_user(
        UserPoolId=kind.user_pool_id,
        Username=username,
        MessageAction="SUPPRESS",
        TemporaryPassword=password,
        UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
    )["User"]
    client.admin_set_user_password(
        UserPoolId=kind.user_pool_id, Username=user["Username"], Password=password, Permanent=True
    )
    return kind._found(user).ids


def log_in(kind: CognitoKind, username: str, password: str) -> dict[str, str]:
    """The user's tokens from the pool's app client (``InitiateAuth``, USER_PASSWORD_AUTH)."""
    if not kind.client_id:
        from harness.errors import ConfigError

        raise ConfigError(
            f'kind {kind.name} has no client_id: add client_id = "<app client id>" under '
            f"[{kind.profile.name}.kinds.{kind.name}] to log its users in"
        )
    answer = kind.client.initiate_auth(
        ClientId=kind.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )["AuthenticationResult"]
    return {
        "access_token": answer["AccessToken"],
        "id_token": answer["IdToken"],
        "refresh_token": answer["RefreshToken"],
    }
