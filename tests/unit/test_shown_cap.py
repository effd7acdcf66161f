"""Long bodies and messages are cut before they are masked, in every artifact: the redactor's
``shown`` (harness/safety/redact.py: where the cut falls, that it never splits a secret or
leaves a sensitive value open, its marker), ``shorten`` for text already masked, and what the
transcript (harness/clients/http.py) and the failure representation
(harness/reporting/plugin.py) make of a 10 MB string: at most the cap, masked — and only the
cap's worth of characters ever reaches the masking (counted, not timed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.clients.http import _MAX_BODY, Recorded, _shown_body
from harness.reporting.plugin import _scrub_lines, failure_line, redact_report
from harness.safety.redact import (
    MASK,
    SHOWN,
    SHOWN_TEXT,
    Redactor,
    cut_marker,
    shorten,
)

SECRET = "S3cret-Token-0001"  # 17 characters
OTHER = "S3cret-Token-0002"


def redactor(*secrets: str) -> Redactor:
    masking = Redactor()
    for secret in secrets:
        masking.add_secret(secret)
    return masking


def test_the_marker_says_how_many_characters_are_not_shown() -> None:
    assert cut_marker(9_999_000) == "… [9999000 characters cut]"


def test_a_value_within_the_limit_is_masked_whole_as_a_form() -> None:
    masking = redactor(SECRET)
    assert masking.shown(f"a={SECRET}&token=a,b", SHOWN) == f"a={MASK}&token={MASK}"
    exact = "x" * (SHOWN - len(SECRET)) + SECRET  # exactly the limit: not cut
    assert masking.shown(exact, SHOWN) == "x" * (SHOWN - len(SECRET)) + MASK


def test_a_longer_value_is_its_head_and_the_marker_within_the_limit() -> None:
    masking = redactor()
    assert masking.shown("x" * 100, 50) == "x" * 28 + "… [72 characters cut]"  # 49 in all
    assert masking.shown("x" * 100, 5) == "… [100 characters cut]"  # no room for a head
    assert len(masking.shown("y" * 10_000_000, SHOWN)) <= SHOWN


def test_the_cut_moves_back_to_the_start_of_a_secret_it_would_split() -> None:
    masking = redactor(SECRET)
    room = 50 - len(cut_marker(100))  # 28: where the cut would fall
    for start, shown_head in [
        (20, "x" * 20),  # 20..37 straddles 28: cut at its start
        (12, "x" * 12),  # 12..29, by one character: still cut at its start
        (11, "x" * 11 + MASK),  # 11..28 ends at the cut: masked whole
        (28, "x" * 28),  # starts at the cut: not shown at all
    ]:
        value = "x" * start + SECRET + "x" * (100 - start - len(SECRET))
        shown_of_value = len(shown_head) + (len(SECRET) - len(MASK)) * shown_head.endswith(MASK)
        assert masking.shown(value, 50) == shown_head + cut_marker(100 - shown_of_value), start
    assert room == 28


def test_a_chain_of_straddling_secrets_is_followed_back_to_the_start() -> None:
    overlapping = redactor("0123456789ab", "abcdefghijkl")  # at 0..12 and 10..22
    text = "0123456789abcdefghijkl" + "x" * 50
    assert overlapping._clear_cut(text, 15) == 0  # 10..22 moves it to 10, then 0..12 to 0
    assert overlapping.shown(text, 15 + len(cut_marker(len(text)))) == cut_marker(len(text))
    assert redactor(SECRET)._clear_cut(SECRET + "x" * 100, 5) == 0  # a secret at the start
    assert redactor(SECRET)._clear_cut("x" * 40, 20) == 20
    assert redactor()._clear_cut(SECRET * 3, 20) == 20  # no secret known: nothing moves


def test_secrets_of_several_lengths_are_all_looked_for_behind_the_cut() -> None:
    long_secret = "L" * 30
    masking = redactor("abcd", long_secret)
    value = "x" * 5 + long_secret + "y" * 100  # 5..35
    assert masking._clear_cut(value, 20) == 5
    assert masking._clear_cut(value, 35) == 35  # ends at the cut
    assert masking._clear_cut(value, 36) == 36


def test_a_sensitive_value_the_cut_leaves_open_is_masked_to_the_end() -> None:
    masking = redactor()
    value = "x" * 30 + '"Password": "' + "p" * 100 + '"}'
    limit = 60 + len(cut_marker(len(value)))
    assert masking.shown(value, limit) == (
        "x" * 30 + f'"Password": "{MASK}' + cut_marker(len(value) - 60)
    )
    closed = "x" * 30 + "{'token': 'abc'} " + "z" * 100  # closed before the cut: as always
    assert masking.shown(closed, 60 + len(cut_marker(len(closed)))).startswith(
        "x" * 30 + f"{{'token': '{MASK}'}} zz"
    )
    lines = "note\n" + "token = 'abcdef" + "g" * 100
    assert masking.shown(lines, 30 + len(cut_marker(len(lines)))) == (
        f"note\ntoken = '{MASK}" + cut_marker(len(lines) - 30)
    )


def test_masks_longer_than_what_they_hide_shorten_the_head_to_fit() -> None:
    masking = redactor("abcd")
    value = "abcd" * 50  # masked, each 4 characters become 10
    shown = masking.shown(value, 50)
    assert shown == MASK * 2 + "… [192 characters cut]"
    assert len(shown) <= 50


def test_shorten_cuts_masked_text_and_counts_an_earlier_cut_too() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd" * 25, 30) == "abcdabcd" + "… [92 characters cut]"
    once = "a" * 300 + cut_marker(9_000)  # cut before: 9,000 not shown already
    assert shorten(once, 40) == "a" * 17 + "… [9283 characters cut]"
    assert shorten("a" * 100, 3) == "… [100 characters cut]"


def test_masked_keys_masks_sensitive_keys_only_at_any_depth() -> None:
    masking = redactor(SECRET)
    data = {"user": {"Password": {"nested": 1}, "name": SECRET}, 7: ["x", ("y",)]}
    assert masking.masked_keys(data) == {
        "user": {"Password": MASK, "name": SECRET},  # values are left to the text masking
        7: ["x", ["y"]],
    }


def test_the_transcript_shows_a_long_string_body_cut_then_masked() -> None:
    masking = redactor(SECRET)
    body = "Z" * 1990 + SECRET + "Z" * 10_000_000
    shown = _shown_body(masking, body)
    assert len(shown) <= _MAX_BODY and shown.endswith("characters cut]")
    assert SECRET[:5] not in shown
    assert _shown_body(masking, f"a=1&token={SECRET}") == f"a=1&token={MASK}"


def test_the_transcript_masks_a_short_structure_as_data_and_a_long_one_by_key_then_text() -> None:
    masking = redactor(SECRET)
    small = {"q": "a=1&token=a,b", "n": 3}
    assert _shown_body(masking, small) == {"q": f"a=1&token={MASK}", "n": 3}
    pad = _MAX_BODY - len(json.dumps({"n": 3, "pad": "", "q": "a=1&token=a,b"}))
    exact = {"q": "a=1&token=a,b", "n": 3, "pad": "p" * pad}  # its JSON: exactly the cap
    assert _shown_body(masking, exact) == {"q": f"a=1&token={MASK}", "n": 3, "pad": "p" * pad}
    big = {"credentials": {"user": "alice"}, "items": ["Z" * 100] * 100_000, "id": SECRET}
    shown = _shown_body(masking, big)
    assert isinstance(shown, str) and len(shown) <= _MAX_BODY
    assert shown.startswith(f'{{"credentials": "{MASK}", "id": "{MASK}", "items": ["ZZZ')
    assert shown.endswith("characters cut]") and "alice" not in shown
    assert _shown_body(masking, [1, 2]) == [1, 2] and _shown_body(masking, 5) == 5
    assert _shown_body(masking, None) is None


def test_a_recorded_exchange_shows_its_error_capped() -> None:
    masking = redactor(SECRET)
    recorded = Recorded(
        masking, "GET", "/a", None, 1.0, None, None, "boom " * 1000 + SECRET, None, None
    )
    exchange = recorded.shown()
    assert len(exchange.error) <= SHOWN and exchange.error.endswith("characters cut]")


class Counting(Redactor):
    """Counts the characters the masking by value is asked to look at."""

    looked_at = 0

    def _by_value(self, value: str) -> str:
        Counting.looked_at += len(value)
        return super()._by_value(value)


def _failed_report(message: str) -> pytest.TestReport:
    try:
        raise AssertionError(message)
    except AssertionError:
        info = pytest.ExceptionInfo.from_current()
    longrepr = info.getrepr(style="long")
    return pytest.TestReport(
        "test_x.py::test_x",
        ("test_x.py", 1, "test_x"),
        {},
        "failed",
        longrepr,
        "call",
        sections=[("Captured stdout call", "P" * 3_000_000)],
    )


def test_a_10_mb_assertion_message_is_cut_before_it_is_masked_everywhere_in_the_report() -> None:
    masking = Counting()
    masking.add_secret(SECRET)
    report = _failed_report("Z" * 1950 + (SECRET + "-") * 10 + "Z" * 10_000_000)
    Counting.looked_at = 0
    redact_report(report, masking)
    assert Counting.looked_at < 20 * SHOWN_TEXT  # not the 10 MB, not the 3 MB section
    text = str(report.longrepr)
    assert SECRET not in text and "S3cret-Tok" not in text and "characters cut]" in text
    assert max(len(line) for line in text.splitlines()) <= SHOWN
    assert len(report.longrepr.reprcrash.message) <= SHOWN  # type: ignore[union-attr]
    [(_title, section)] = report.sections
    assert len(section) <= SHOWN_TEXT and section.endswith("characters cut]")
    line = failure_line(report)
    assert line.startswith("AssertionError: ZZZ") and len(line) <= 240
    assert line.endswith("characters cut]")
    assert int(line.rpartition("[")[2].split()[0]) > 10_000_000  # the whole cut, counted


def test_a_failures_lines_together_stay_within_the_text_cap() -> None:
    masking = redactor(SECRET)
    lines: list[Any] = ["E   " + "L" * 1000 for _ in range(200)] + [("kept", SECRET)]
    kept = _scrub_lines(lines, masking, set())
    strings = [v for v in kept if isinstance(v, str)]
    assert sum(len(v) for v in strings) <= SHOWN_TEXT + SHOWN
    assert strings[-1] == cut_marker(sum(len(v) for v in lines[len(strings) - 1 : 200]))
    assert kept[-1] == ("kept", MASK)  # what is not a line is still scrubbed, and kept
    assert _scrub_lines(["a", SECRET], masking, set()) == ["a", MASK]


def test_a_skip_reason_is_capped_too() -> None:
    report = pytest.TestReport(
        "t.py::t", ("t.py", 1, "t"), {}, "skipped", ("t.py", 1, "Z" * 100_000), "setup"
    )
    redact_report(report, redactor())
    assert len(report.longrepr[2]) <= SHOWN  # type: ignore[index]
