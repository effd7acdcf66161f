"""The redactor's rules (harness/safety/redact.py), one by one: which keys are sensitive,
which values are learned as secrets, and how text is masked."""

from __future__ import annotations

import pytest

from harness.safety.redact import MASK, SENSITIVE_WORDS, Redactor


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "Token",
        "PASSWORD",
        "Pass_Word",
        "password-hash",
        "passwordHash",
        "Authorization",
        "secret",
        "x-api-key",
        "X_API_KEY",
        "xapikey",
        "Cookie",
    ],
)
def test_sensitive_keys_ignore_case_underscores_and_dashes(key: str) -> None:
    assert Redactor().is_sensitive(key)


@pytest.mark.parametrize("key", ["uid", "email", "pass", "api", "name", ""])
def test_other_keys_are_not_sensitive(key: str) -> None:
    assert not Redactor().is_sensitive(key)


def test_the_sensitive_word_list() -> None:
    assert {"token", "password", "authorization", "secret", "apikey", "cookie"} <= set(
        SENSITIVE_WORDS
    )


def test_secrets_shorter_than_four_characters_are_not_registered() -> None:
    redactor = Redactor()
    for value in (None, "", "a", "abc"):
        redactor.add_secret(value)
    assert redactor.text("a abc") == "a abc"
    redactor.add_secret("abcd")
    assert redactor.text("xabcdx abc") == f"x{MASK}x abc"


def test_a_secret_registered_twice_is_masked_once_per_occurrence() -> None:
    redactor = Redactor()
    redactor.add_secret("s3cret")
    redactor.add_secret("s3cret")
    assert redactor.text("s3cret s3cret") == f"{MASK} {MASK}"


def test_the_longest_secret_wins_at_each_position() -> None:
    redactor = Redactor()
    redactor.add_secret("abcd")
    redactor.add_secret("abcdefgh")
    redactor.add_secret("wxyz12")
    assert redactor.text("abcdefgh") == MASK
    assert redactor.text("abcdefghi abcdX wxyz12") == f"{MASK}i {MASK}X {MASK}"
    assert redactor.text("abc") == "abc"  # shorter than every secret
    assert redactor.text("") == "" and Redactor().text("abcd") == "abcd"


def test_a_secret_at_the_very_end_of_the_text_is_masked() -> None:
    redactor = Redactor()
    redactor.add_secret("tail-secret")
    assert redactor.text("x tail-secret") == f"x {MASK}"
    assert redactor.text("tail-secre") == "tail-secre"


def test_learn_registers_long_values_of_sensitive_keys_at_any_depth() -> None:
    redactor = Redactor()
    redactor.learn(
        {
            "token": "tok-12345678",
            "nested": [{"password": "pw-abcdefgh"}, ("x", {"secret": "sec-87654321"})],
            "Password": "short7x",  # 7 characters: not learned (would mask ordinary text)
            "uid": "not-a-secret-value",
            "token_meta": {"token": "deep-token-1"},
            "authorization": 12345678,  # not a string
            "secret": {"token": "inside-secret"},  # a mapping under a sensitive key
        }
    )
    text = "tok-12345678 pw-abcdefgh sec-87654321 deep-token-1 inside-secret"
    assert redactor.text(text) == " ".join([MASK] * 5)
    assert redactor.text("short7x not-a-secret-value 12345678") == (
        "short7x not-a-secret-value 12345678"
    )
    redactor.learn({"password": "exactly8"})
    assert redactor.text("exactly8") == MASK
    redactor.learn("a plain string")
    redactor.learn(None)


def test_data_masks_sensitive_keys_whatever_their_value_and_secrets_in_strings() -> None:
    redactor = Redactor()
    redactor.add_secret("tok-abcdef")
    masked = redactor.data(
        {
            "token": 7,
            "Password": None,
            "note": "header tok-abcdef",
            "items": ("tok-abcdef", 3, 1.5, True),
            1: "tok-abcdef",
        }
    )
    assert masked == {
        "token": MASK,
        "Password": MASK,
        "note": f"header {MASK}",
        "items": [MASK, 3, 1.5, True],
        1: MASK,
    }


def test_headers_mask_sensitive_names_and_secret_values() -> None:
    redactor = Redactor()
    redactor.add_secret("tok-abcdef")
    assert redactor.headers(
        {"Authorization": "Bearer x", "X-Api-Key": "k", "X-Trace": "id tok-abcdef", "uid": "7"}
    ) == {"Authorization": MASK, "X-Api-Key": MASK, "X-Trace": f"id {MASK}", "uid": "7"}
