"""Secrets through the real HTTP client's recording: short, never registered secrets sent by
every route (JSON body at any depth, form data as a dict and as a string, ``params=``, the
URL's own query, headers) and answered by the server (JSON body, Set-Cookie) never show in
the transcript; a profile's own sensitive keys count too; long ones are learned and masked by
value elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from harness.clients.http import ApiClient
from harness.safety.redact import MASK, Redactor
from tests.unit.test_protect import Server

#: Short and unregistered: only their keys say they are secret.
SENT = {
    "body": "Qa1zp",
    "nested": "Wb2xo",
    "list": "Ec3wn",
    "form-dict": "Rd4vm",
    "form-text": "Tf5ul",
    "params": "Yg6tk",
    "url-query": "Uh7sj",
    "header": "Ij8ri",
    "cookie": "Ok9qh",
    "custom-key": "Pl0pg",
}
#: What the loopback server answers (see tests.unit.test_protect.Server).
ANSWERED = {"response-body": "Rr5tz", "response-nested": "Yy6uv", "set-cookie": "Cc8qw"}


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def test_the_transcript_masks_secrets_by_key_on_every_route(server: Server) -> None:
    api = ApiClient(server.url, "run-1", Redactor(sensitive_keys=["pin_code"]))
    api.patch(
        "/users/7",
        json={
            "name": "Ada",
            "password": SENT["body"],
            "profile": {"settings": {"client_secret": SENT["nested"]}},
            "devices": [{"access_token": SENT["list"], "pinCode": SENT["custom-key"]}],
        },
    )
    api.post("/form", data={"email": "a@b.test", "Password": SENT["form-dict"]})
    api.post("/form-text", data=f"email=a%40b.test&api_key={SENT['form-text']}")
    api.get("/search", params={"q": "ada", "token": SENT["params"]})
    api.get(f"/reset?session_id={SENT['url-query']}&lang=en")
    api.get(
        "/me", headers={"X-Api-Key": SENT["header"], "Cookie": f"theme=dark; sid={SENT['cookie']}"}
    )
    rendered = api.transcript.render()
    for route, secret in {**SENT, **ANSWERED}.items():
        assert secret not in rendered and quote(secret) not in rendered, (route, rendered)
    # what is not secret is still there to read
    assert '"name": "Ada"' in rendered and "q=ada" in rendered and "lang=en" in rendered
    assert "theme=dark" not in rendered  # the whole Cookie header is masked
    assert f"token={MASK}" in rendered and f"session_id={MASK}" in rendered
    assert '"X-Api-Key": "' + MASK in rendered and '"Set-Cookie": "' + MASK in rendered
    # the sent bodies reached the server unmasked: masking is for the record only
    assert SENT["body"].encode() in server.received[0][3]
    assert [e.path for e in api.transcript.exchanges][3] == f"/search?q=ada&token={MASK}"


def test_long_secrets_under_a_key_are_then_masked_anywhere(server: Server) -> None:
    redactor = Redactor()
    api = ApiClient(server.url, "run-1", redactor)
    api.patch("/users/7", json={"password": "An0ther-Secret-Pw"})
    api.get("/me", headers={"Authorization": "Bearer long-bearer-token-1"})
    text = "failed: sent An0ther-Secret-Pw with long-bearer-token-1"
    assert redactor.text(text) == f"failed: sent {MASK} with {MASK}"
    assert "An0ther-Secret-Pw" not in api.transcript.render()
