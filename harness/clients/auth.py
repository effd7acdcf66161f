"""Auth strategies for the ``api`` client, as ``requests`` auth objects.

``api.get("/me", auth=BearerAuth(token))``. Owns only putting credentials on a request; the
values are secrets the caller registers with the run's redactor. ``repr`` never shows them.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests


class UidTokenAuth(requests.auth.AuthBase):
    """The design notes' auth: ``uid`` and ``token`` request headers."""

    def __init__(self, uid: int | str, token: str) -> None:
        self.uid = str(uid)
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["uid"] = self.uid
        request.headers["token"] = self.token
        return request

    def __repr__(self) -> str:
        return f"UidTokenAuth(uid={self.uid}, token=«redacted»)"


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(«redacted»)"


class HeaderAuth(requests.auth.AuthBase):
    """Any fixed headers, e.g. ``HeaderAuth({"x-api-key": key})``."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.headers)
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth({', '.join(self.headers)}: «redacted»)"
