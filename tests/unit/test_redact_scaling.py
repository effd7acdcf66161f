"""The redactor masks exactly what a longest-first alternation of its secrets would, and its
cost does not grow with the number of secrets (the figure is in docs/performance.md)."""

import re

from hypothesis import given
from hypothesis import strategies as st

from harness.safety.redact import MASK, Redactor

ALPHABET = "ab-x"  # a tiny alphabet, so secrets overlap and nest often


def reference(secrets: list[str], text: str) -> str:
    kept = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    if not kept:
        return text
    return re.compile("|".join(re.escape(s) for s in kept)).sub(MASK, text)


@given(
    st.lists(st.text(ALPHABET, min_size=1, max_size=7), max_size=6),
    st.text(ALPHABET, max_size=40),
)
def test_masks_like_a_longest_first_alternation(secrets: list[str], text: str) -> None:
    redactor = Redactor()
    for secret in secrets:
        redactor.add_secret(secret)
    assert redactor.text(text) == reference(secrets, text)


def test_thousands_of_secrets_are_all_masked() -> None:
    redactor = Redactor()
    values = [f"token-{i:05d}-value" for i in range(5000)]
    for value in values:
        redactor.add_secret(value)
    text = " | ".join(values[::250])
    assert redactor.text(text) == " | ".join([MASK] * 20)
