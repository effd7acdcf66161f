"""The redactor masks exactly what a longest-first alternation of its secrets would, and its
work does not grow with the number of secrets: counted in set lookups, not timed (the time
figure is in docs/performance.md, from the benchmark)."""

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


class CountingSet(set[str]):
    lookups = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.lookups += 1
        return super().__contains__(item)


def lookups_to_mask(secrets: list[str], text: str) -> int:
    redactor = Redactor()
    for secret in secrets:
        redactor.add_secret(secret)
    redactor._secrets = CountingSet(redactor._secrets)
    CountingSet.lookups = 0
    redactor.text(text)
    return CountingSet.lookups


def test_masking_work_depends_on_distinct_lengths_not_on_the_number_of_secrets() -> None:
    text = "user token-00003-value logged in; " * 20  # a secret in both sets
    few = [f"token-{i:05d}-value" for i in range(10)]
    many = [f"token-{i:05d}-value" for i in range(5000)]
    assert lookups_to_mask(few, text) == lookups_to_mask(many, text) > 0
    # each distinct length is one more probe per position: the cost the class documents
    assert lookups_to_mask([*few, "pw-short"], text) > lookups_to_mask(few, text)
