"""Speed-ups for moto inside the emulator process: same responses, less work per request.

Owns: two measured hot spots of moto's server mode, fixed without changing one byte of
what it answers (``tests/sandbox/test_moto_speedups.py`` compares against stock moto):

- DynamoDB responses: moto serialises every attribute value by walking the
  ``AttributeValue`` shape's ten members and trying several attribute-name aliases for
  each, ~45% of the emulator's time for a two-item ``BatchGetItem``. Moto's item values are
  already wire-shaped (``{"S": "..."}``), so a value of one ``S``/``N`` string or one
  ``BOOL``/``NULL`` flag is copied as it is, and an item made only of such values is copied
  in one go; so is a structure of plain scalar members (``ConsumedCapacity``). Anything
  else takes moto's own path.
- ``method_names_from_class``: moto lists a response class's methods with
  ``inspect.getmembers`` on every request (~6%); the answer depends only on the class.
- S3 ``ListObjectVersions`` with a prefix: moto deep-copies every version of every key in
  the bucket before it filters by the prefix (~0.4 s a call at 2,000 objects, growing with
  the bucket); the keys outside the prefix are left out before the copy. (Not when only a
  key marker is given: moto then skips the first key past it, which the prefix may change.)
- Cognito ``ListUsers`` filtered on the username (``username ^= "…"`` or ``= "…"``): moto
  walks each user's attributes and a lambda per user; the username is compared directly.

Must never be imported outside the emulator child (it patches moto's module state) and must
never change a response: when in doubt, fall back to moto.
"""

from __future__ import annotations

import functools
import re
from typing import Any

SCALAR_STRING_TYPES = frozenset({"S", "N"})
SCALAR_FLAG_TYPES = frozenset({"BOOL", "NULL"})

_installed = False
#: moto's own methods that ``install`` replaced (the tests compare against them).
STOCK: dict[str, Any] = {}


def plain_attribute_value(value: Any) -> dict[str, Any] | None:
    """A copy of ``value`` if it is a one-member S/N string or BOOL/NULL flag, else None."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in SCALAR_STRING_TYPES and type(inner) is str:
        return {kind: inner}
    if kind in SCALAR_FLAG_TYPES and type(inner) is bool:
        return {kind: inner}
    return None


# Scalar shape types: the Python types taken as they are, and moto's conversion for each.
_PLAIN_MEMBER_TYPES: dict[str, tuple[tuple[type, ...], Any]] = {
    "string": ((str,), str),
    "boolean": ((bool,), bool),
    "integer": ((int,), int),
    "long": ((int,), int),
    "double": ((int, float), float),  # moto writes an int given for a double as 1.0
    "float": ((int, float), float),
}


def plain_structure(value: Any, shape: Any) -> dict[str, Any] | None:
    """What moto would make of a dict whose keys are all scalar members of ``shape``.

    E.g. DynamoDB's ``ConsumedCapacity`` entries; None for anything else (an unknown key, a
    nested shape, a timestamp or blob, a string member given a number, ...).
    """
    if type(value) is not dict:
        return None
    members = shape.members
    for name, inner in value.items():
        member = members.get(name)
        if member is None or inner is None or member.serialization:
            return None
        plain = _PLAIN_MEMBER_TYPES.get(member.type_name)
        if plain is None or type(inner) not in plain[0]:
            return None
        if member.type_name == "string" and not inner:
            return None
    return {  # in moto's member order, converted as moto converts
        name: _PLAIN_MEMBER_TYPES[member.type_name][1](value[name])
        for name, member in members.items()
        if name in value
    }


def dynamodb_serializer_class() -> type[Any]:
    from moto.core.serialize import JSONSerializer

    class DynamoDBJSONSerializer(JSONSerializer):
        """moto's JSON serializer with a short cut for plain attribute values."""

        def _serialize_type_structure(
            self, serialized: Any, value: Any, shape: Any, key: str
        ) -> None:
            if key and shape.name == "AttributeValue":
                plain = plain_attribute_value(value)
                if plain is not None:
                    self._default_serialize(serialized, plain, shape, key)
                    return
            elif key and not shape.is_document_type:
                plain = plain_structure(value, shape)
                if plain is not None:
                    self._default_serialize(serialized, plain, shape, key)
                    return
            super()._serialize_type_structure(serialized, value, shape, key)

        def _serialize_type_map(self, serialized: Any, value: Any, shape: Any, key: str) -> None:
            # A whole item (or key) of plain values in one go, skipping a _serialize round
            # per attribute; one value that is not plain sends the item down moto's path.
            if shape.value.name == "AttributeValue" and type(value) is dict:
                plain_item = {}
                for name, attribute in value.items():
                    plain = plain_attribute_value(attribute)
                    if plain is None:
                        break
                    plain_item[name] = plain
                else:
                    self._default_serialize(serialized, plain_item, shape, key)
                    return
            super()._serialize_type_map(serialized, value, shape, key)

    return DynamoDBJSONSerializer


class _PrefixKeys:
    """A bucket's key store seen through a prefix (only ``iterlists``, what the listing
    reads)."""

    def __init__(self, keys: Any, prefix: str) -> None:
        self._keys = keys
        self._prefix = prefix

    def iterlists(self) -> Any:
        keys = self._keys
        names = keys._self_iterable() if hasattr(keys, "_self_iterable") else dict(keys.iterlists())
        return ((k, keys.getlist(k)) for k in list(names) if k.startswith(self._prefix))


class _PrefixBucket:
    def __init__(self, bucket: Any, prefix: str) -> None:
        self.keys = _PrefixKeys(bucket.keys, prefix)


class _OneBucket:
    """What moto's ``list_object_versions`` asks of its backend: the bucket."""

    def __init__(self, bucket: Any) -> None:
        self._bucket = bucket

    def get_bucket(self, name: str) -> Any:
        return self._bucket


def prefix_list_object_versions(original: Any) -> Any:
    """moto's ``list_object_versions``, copying only the versions under ``prefix``."""

    @functools.wraps(original)
    def list_object_versions(
        self: Any,
        bucket_name: str,
        delimiter: str | None = None,
        key_marker: str | None = None,
        max_keys: int | None = 1000,
        prefix: str = "",
        version_id_marker: str | None = None,
    ) -> Any:
        if not prefix or (key_marker is not None and not version_id_marker):
            return original(
                self, bucket_name, delimiter, key_marker, max_keys, prefix, version_id_marker
            )
        narrowed = _OneBucket(_PrefixBucket(self.get_bucket(bucket_name), prefix))
        return original(
            narrowed, bucket_name, delimiter, key_marker, max_keys, prefix, version_id_marker
        )

    return list_object_versions


USERNAME_FILTER = re.compile(r'username\s*(=|\^=)\s*"(.*)"')


def username_list_users(original: Any, paginate: Any, model: Any) -> Any:
    """moto's ``list_users`` (under its paginator), comparing the username directly when the
    filter is on it; any other filter takes moto's own path."""
    inner = original.__wrapped__

    @paginate(pagination_model=model)
    @functools.wraps(inner)
    def list_users(self: Any, user_pool_id: str, filt: str) -> Any:
        match = USERNAME_FILTER.fullmatch(filt or "")
        if match is None:
            return inner(self, user_pool_id, filt)
        pool = self.describe_user_pool(user_pool_id)
        op, value = match.groups()
        users = list(pool.users.values())
        if op == "=":
            return [u for u in users if u.username == value]
        return [u for u in users if u.username.startswith(value)]

    return list_users


def install() -> None:
    """Patch moto (idempotent). Call before the first request."""
    global _installed
    if _installed:
        return
    import moto.core.responses as responses
    from moto.core import serialize

    serialize.SERVICE_SPECIFIC_SERIALIZERS.setdefault("dynamodb", {})["json"] = (
        dynamodb_serializer_class()
    )
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        responses.method_names_from_class
    )
    from moto.cognitoidp.models import CognitoIdpBackend
    from moto.cognitoidp.utils import PAGINATION_MODEL
    from moto.s3.models import S3Backend
    from moto.utilities.paginator import paginate

    STOCK["s3.list_object_versions"] = S3Backend.list_object_versions
    STOCK["cognito-idp.list_users"] = CognitoIdpBackend.list_users
    S3Backend.list_object_versions = prefix_list_object_versions(  # type: ignore[method-assign]
        S3Backend.list_object_versions
    )
    CognitoIdpBackend.list_users = username_list_users(  # type: ignore[method-assign]
        CognitoIdpBackend.list_users, paginate, PAGINATION_MODEL
    )
    _installed = True
