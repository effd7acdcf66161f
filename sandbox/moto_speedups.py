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

Must never be imported outside the emulator child (it patches moto's module state) and must
never change a response: when in doubt, fall back to moto.
"""

from __future__ import annotations

import functools
from typing import Any

SCALAR_STRING_TYPES = frozenset({"S", "N"})
SCALAR_FLAG_TYPES = frozenset({"BOOL", "NULL"})

_installed = False


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
    _installed = True
