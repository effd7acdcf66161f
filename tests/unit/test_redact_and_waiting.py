import json

import pytest

from harness.clients.http import ApiClient
from harness.safety.redact import MASK, Redactor
from harness.waiting import EventuallyTimeout, eventually, wait_until
from tests.unit.loopback import loopback


def test_sensitive_keys_and_registered_values_are_masked() -> None:
    redactor = Redactor()
    redactor.add_secret("s3cr3t-token-value")
    data = {
        "uid": 7,
        "token": "anything",
        "Password": "pw",
        "nested": [{"note": "header was s3cr3t-token-value"}],
    }
    masked = redactor.data(data)
    text = json.dumps(masked)
    assert "s3cr3t-token-value" not in text and "anything" not in text and '"pw"' not in text
    assert masked["uid"] == 7 and masked["token"] == MASK
    assert redactor.headers({"token": "t", "uid": "7"}) == {"token": MASK, "uid": "7"}


def test_keys_that_end_like_a_secret_are_masked_and_learned() -> None:
    """Bearer-token services answer ``access_token`` / ``refresh_token``, not ``token``."""
    redactor = Redactor()
    login = {"access_token": "abc.def-123456", "token_type": "Bearer", "refreshToken": "r" * 12}
    redactor.learn(login)
    masked = redactor.data(login)
    assert masked["access_token"] == MASK and masked["refreshToken"] == MASK
    assert "abc.def-123456" not in redactor.text("Authorization: Bearer abc.def-123456")
    assert redactor.data({"client_secret": "x", "apiKey": "y", "note_id": "z"}) == {
        "client_secret": MASK,
        "apiKey": MASK,
        "note_id": "z",
    }


def test_transcript_lines_carry_no_secret() -> None:
    """Through the client's own recording over real HTTP: what the test passes is raw, what
    the transcript shows is masked by the client (remove its redaction and this fails)."""
    with loopback() as service:
        service.route("/login", 200, {"token": "tok-123456"})
        api = ApiClient(service.url, "itest-20261127t172503-k3f9")
        api.redactor.add_secret("hunter2-hunter2")
        body = json.dumps({"email": "a@b.test", "password": "hunter2-hunter2"})
        api.request("POST", "/login", data=body)
        api.close()
    rendered = api.transcript.render()
    assert "hunter2" not in rendered and "tok-123456" not in rendered
    assert "POST /login -> 200" in rendered
    assert rendered.count("redacted") == 2  # the password and the token, each under its key
    assert b"hunter2-hunter2" in service.received[0].body  # the service got the real one


def test_eventually_returns_once_the_condition_holds() -> None:
    calls = []

    def condition() -> str:
        calls.append(1)
        assert len(calls) >= 3, "not yet"
        return "done"

    assert eventually(condition, timeout=5, interval=0.001) == "done"
    assert len(calls) == 3


def test_eventually_times_out_with_the_last_error() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def never() -> None:
        raise AssertionError(f"still 0 at t={now[0]:.2f}")

    with pytest.raises(EventuallyTimeout, match=r"after 1.0s and \d+ attempts.*still 0") as err:
        eventually(never, timeout=1, interval=0.1, clock=lambda: now[0], sleep=sleep)
    assert isinstance(err.value.__cause__, AssertionError)
    assert now[0] == pytest.approx(1.0)


def test_wait_until_waits_for_truth_not_for_silence() -> None:
    values = iter([False, 0, None, "yes"])
    wait_until(lambda: next(values), timeout=5)
    with pytest.raises(EventuallyTimeout, match="waiting for never-true"):
        wait_until(lambda: False, timeout=0.2, description="never-true")


def test_keys_count_by_the_word_they_contain_plus_the_profiles_own() -> None:
    redactor = Redactor(sensitive_keys=["PIN-code"])
    for key in ("access_token", "X-Api-Key", "api_key", "Set-Cookie", "newPassword", "pin_code"):
        assert redactor.is_sensitive(key), key
    for key in ("uid", "email", "name", "expires_at", "pin"):
        assert not redactor.is_sensitive(key), key
    assert not Redactor().is_sensitive("pin_code")  # the profile's words are its own


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("{'password': 'x1', 'name': 'Ada'}", f"{{'password': '{MASK}', 'name': 'Ada'}}"),
        ('{"client_secret":"x1","n":1}', f'{{"client_secret":"{MASK}","n":1}}'),
        ("GET /a?q=1&api_key=x1&b=2", f"GET /a?q=1&api_key={MASK}&b=2"),
        ("Cookie: theme=dark; session=x1", f"Cookie: {MASK}"),  # a header line: all of it
        ("sent theme=dark; session=x1", f"sent theme=dark; session={MASK}"),
        ("Authorization: Bearer x1\nnext", f"Authorization: {MASK}\nnext"),
        ("TestUser(password='x1')", f"TestUser(password='{MASK}')"),
        ('"{\\"token\\": \\"x1\\"}"', f'"{{\\"token\\": \\"{MASK}\\"}}"'),
        # what merely mentions a word keeps its meaning
        ("token_factory(user) made 2 tokens", "token_factory(user) made 2 tokens"),
        ("test session starts", "test session starts"),
    ],
)
def test_free_text_masks_the_value_after_a_sensitive_key(text: str, masked: str) -> None:
    assert Redactor().text(text) == masked


def test_bodies_are_masked_as_forms_and_queries_too() -> None:
    redactor = Redactor()
    assert redactor.data("email=a%40b.test&password=x1") == f"email=a%40b.test&password={MASK}"
    assert redactor.data("a=b+c") == "a=b+c"  # no sensitive field: left exactly as it was
    assert redactor.url("/r?session_id=x1&lang=en") == f"/r?session_id={MASK}&lang=en"
    redactor.learn({"outer": [{"refresh_token": "long-enough-value"}]})
    redactor.learn_headers({"Set-Cookie": "sid=cookie-value-123; Path=/; HttpOnly"})
    assert redactor.text("saw long-enough-value and cookie-value-123") == f"saw {MASK} and {MASK}"
