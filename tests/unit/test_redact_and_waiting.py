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
