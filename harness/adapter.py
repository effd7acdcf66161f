"""The public adapter API: everything a team needs to teach the harness its own service.

Import from here, never from the engine's inner modules::

    from harness.adapter import Kind, Found, Setting, Outcome, OwnershipError

- :class:`Kind` — subclass it per resource kind: ``marker``, ``delete``, ``find`` (and
  ``exists``, ``related``, ``delete_many`` where the store allows better than the defaults);
- :class:`Setting` — a profile field the kind needs (a table name), checked by doctor;
- :class:`Found` — what ``find`` returns; :class:`OwnershipError` — refuse a delete;
  :class:`CreateRefused` — refuse an item ``intent`` cannot take; :class:`NotCreated` — what
  ``put`` raises when it wrote nothing (the key is taken);
- DynamoDB helpers: :func:`batch_get`, :func:`batch_delete`, :func:`scan_prefix` (and its
  :class:`ScanControl`), :func:`is_condition_failed`;
- naming: :func:`parse_email`, :func:`find_namespace`, ``TEST_DOMAIN``;
- auth strategies for ``api`` requests: :class:`BearerAuth`, :class:`HeaderAuth`,
  :class:`UidTokenAuth` (any ``requests.auth.AuthBase`` works too).

See docs/adapters.md for a worked example.
"""

from harness.cleanup.ledger import CreateRefused, NotCreated, OwnershipError
from harness.clients.auth import BearerAuth, HeaderAuth, UidTokenAuth
from harness.kinds.base import Found, Kind, Outcome, Setting
from harness.kinds.dynamo import (
    ScanControl,
    batch_delete,
    batch_get,
    is_condition_failed,
    scan_prefix,
)
from harness.namespace import TEST_DOMAIN, Namespace, find_namespace, parse_email

__all__ = [
    "TEST_DOMAIN",
    "BearerAuth",
    "CreateRefused",
    "Found",
    "HeaderAuth",
    "Kind",
    "Namespace",
    "NotCreated",
    "Outcome",
    "OwnershipError",
    "ScanControl",
    "Setting",
    "UidTokenAuth",
    "batch_delete",
    "batch_get",
    "find_namespace",
    "is_condition_failed",
    "parse_email",
    "scan_prefix",
]
