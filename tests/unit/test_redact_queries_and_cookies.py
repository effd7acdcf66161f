"""Masking and learning of secrets in query strings, form bodies and cookies
(harness/safety/redact.py): a sensitive field's value is masked whole, whatever characters it
holds; everything else is shown as it was sent; what is learned from a query string, a link
in a body or a cookie is exactly the secret (not its neighbours, not a cookie's attributes)."""

from __future__ import annotations

import pytest

from harness.safety import redact
from harness.safety.redact import MASK, Redactor

SECRET = "abcdefgh12"  # long enough to be learned


def learned_from(value: object) -> Redactor:
    redactor = Redactor()
    redactor.learn(value)
    return redactor


def masks(redactor: Redactor, secret: str = SECRET) -> bool:
    return redactor.text(f"saw {secret} here") == f"saw {MASK} here"


# -- masking by key in URLs and forms -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # the whole value goes, up to the next field, though free text would stop at "," or ";"
        ("/r?token=ab,cd;ef&lang=en", f"/r?token={MASK}&lang=en"),
        ("/r?lang=en&Password=x1", f"/r?lang=en&Password={MASK}"),
        # the other fields exactly as sent: no re-encoding of "+", "%2F" or a blank value
        (
            "/s?q=ada+lovelace&next=%2Fhome&a=&token=x1",
            f"/s?q=ada+lovelace&next=%2Fhome&a=&token={MASK}",
        ),
        ("/r?token=&b", f"/r?token={MASK}&b"),  # a blank secret is not shown as blank
        ("/r?token&a=1", "/r?token&a=1"),  # a name without a value hides nothing
        ("/r?api%5Fkey=x1", f"/r?api%5Fkey={MASK}"),  # the name is read decoded
        ("/r?token=YWJjZA==", f"/r?token={MASK}"),  # base64 padding is part of the value
        ("/r?token=k1;v=2&a=1", f"/r?token={MASK}&a=1"),  # so is any later "="
        # the query runs from the first "?"; a fragment goes with the value it follows
        ("/r?token=x1,x2?y", f"/r?token={MASK}"),
        ("/r?token=x1,x2&lang=en#top", f"/r?token={MASK}&lang=en#top"),
        ("https://other.test/x?session_id=x1,x2#top", f"https://other.test/x?session_id={MASK}"),
        # nothing sensitive: as it was
        ("/users/7", "/users/7"),
        ("/r?lang=en&q=a%20b", "/r?lang=en&q=a%20b"),
        ("", ""),
    ],
)
def test_a_url_shows_its_query_with_each_sensitive_value_masked_whole(url: str, shown: str) -> None:
    assert Redactor().url(url) == shown


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("email=a%40b.test&password=ab,cd", f"email=a%40b.test&password={MASK}"),
        ("user=a+b&next=%2Fhome&pin_code=1;2", f"user=a+b&next=%2Fhome&pin_code={MASK}"),
        ("a=b+c", "a=b+c"),
        # not a form (spaces): free text, where the value after the key is masked
        ("sent token=x1 today", f"sent token={MASK} today"),
        ("total = 3", "total = 3"),
    ],
)
def test_a_form_body_masks_its_sensitive_fields_and_other_text_reads_as_text(
    body: str, shown: str
) -> None:
    redactor = Redactor(sensitive_keys=["pin_code"])
    assert redactor.form(body) == shown
    assert redactor.data(body) == shown  # a string in data is read the same way
    assert redactor.data([body]) == [shown]


def test_data_keeps_values_that_are_not_text_or_containers() -> None:
    marker = object()
    redactor = Redactor()
    assert redactor.data([3, 1.5, True, None, marker]) == [3, 1.5, True, None, marker]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("{'Password': 'x1', 'n': 1}", f"{{'Password': '{MASK}', 'n': 1}}"),
        ('{"CLIENT_SECRET": "x1"}', f'{{"CLIENT_SECRET": "{MASK}"}}'),
        ("called with API_KEY=x1 then", f"called with API_KEY={MASK} then"),
        ("Session-Id=x1; theme=dark", f"Session-Id={MASK}; theme=dark"),
        ("TOKEN: x1", f"TOKEN: {MASK}"),
    ],
)
def test_keys_in_free_text_are_found_in_any_case(text: str, masked: str) -> None:
    assert Redactor().text(text) == masked


# -- learning from strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"token={SECRET}",  # a form body
        f"/reset?session_id={SECRET}&lang=en",  # a path with its query
        f"Reset link: https://app.test/reset?token={SECRET}",  # a link inside a message
        f"see https://app.test/r?next=/a?b&token={SECRET}",  # a "?" inside the query
        f"https://app.test/r?token={SECRET}#top",  # the fragment is not part of the value
        f"https://app.test/r?token={SECRET}#a#b",
        {"next": f"/reset?session_id={SECRET}"},  # a link in a body
        [f"a=1&refresh_token={SECRET}"],
    ],
)
def test_secrets_in_query_strings_and_forms_are_learned(value: object) -> None:
    redactor = learned_from(value)
    assert masks(redactor)
    assert redactor.text("the text around it stays") == "the text around it stays"


@pytest.mark.parametrize(
    "value",
    [
        f"a=1&note={SECRET}",  # nothing sensitive
        f"sent token={SECRET} today",  # free text, not a form: its value is not learned
        SECRET,  # no key at all
        f"token={SECRET[:7]}",  # below the learning length
        {"note": f"token: {SECRET}"},
    ],
)
def test_values_that_no_sensitive_field_holds_are_not_learned(value: object) -> None:
    assert not masks(learned_from(value))


# -- learning from headers ------------------------------------------------------------------


def test_a_scheme_token_is_learned_from_eight_characters() -> None:
    redactor = Redactor()
    redactor.learn_headers({"Authorization": "Bearer abcdefgh"})
    assert redactor.text("token abcdefgh") == f"token {MASK}"
    redactor = Redactor()
    redactor.learn_headers({"Authorization": "Bearer abcdefg"})
    assert redactor.text("token abcdefg") == "token abcdefg"  # seven: not on its own
    assert redactor.text("Bearer abcdefg") == MASK  # the whole header value is


def test_only_sensitive_headers_with_text_values_are_learned() -> None:
    redactor = Redactor()
    redactor.learn_headers({"X-Request-Id": "req-1234567890", "token": 12345678})  # type: ignore[dict-item]
    assert redactor.text("req-1234567890 12345678") == "req-1234567890 12345678"


def test_a_cookie_value_is_learned_but_not_its_attributes() -> None:
    attributes = {
        "path": "/api/v1/users",
        "domain": "app.example.test",
        "expires": "Wed, 21 Oct 2026 07:28:00 GMT",
        "max-age": "31536000",
    }
    header = "; ".join(
        ["sid=YWJjZGVmZ2g=", *(f"{name.title()}={v}" for name, v in attributes.items()), "HttpOnly"]
    )
    redactor = Redactor()
    redactor.learn_headers({"Set-Cookie": header})
    assert redactor.text("sid YWJjZGVmZ2g= again") == f"sid {MASK} again"  # "=" and all
    for name, value in attributes.items():
        assert redactor.text(f"[{value}]") == f"[{value}]", name


def test_every_cookie_of_a_cookie_header_is_learned() -> None:
    redactor = Redactor()
    redactor.learn_headers({"Cookie": "theme=dark-mode-on; sid=abcdefgh12"})
    assert redactor.text("dark-mode-on abcdefgh12") == f"{MASK} {MASK}"


# -- the key cache --------------------------------------------------------------------------


def test_a_key_is_read_once_then_answered_from_the_cache_of_4096_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redactor = Redactor()  # built before the count: its own words are normalised too
    normalised: list[str] = []
    normalise = redact._normalise

    def counting(key: str) -> str:
        normalised.append(key)
        return normalise(key)

    monkeypatch.setattr(redact, "_normalise", counting)
    for _ in range(3):
        assert redactor.is_sensitive("Access-Token") and not redactor.is_sensitive("uid")
    assert normalised == ["Access-Token", "uid"]
    for i in range(4094):  # the cache is full at 4096 keys
        assert not redactor.is_sensitive(f"k{i}")
    normalised.clear()
    for _ in range(2):
        assert redactor.is_sensitive("k-token") and not redactor.is_sensitive("k4094")
        assert redactor.is_sensitive("Access-Token")  # still cached
    assert normalised == ["k-token", "k4094", "k-token", "k4094"]  # past the bound: every time
