"""The rules of harness/safety/protect.py taken one by one, each at its edges: how a route is
written and read, what a route pattern matches, where the path ends, the exact one-line
refusals, and the AWS rule on botocore's own event system (installed once however often it
is asked). Pure logic: no client and no environment (tests/unit/test_protect.py drives the
doors themselves)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from botocore.hooks import HierarchicalEmitter

from harness.safety.protect import (
    HttpGuard,
    ProtectedTargetError,
    install_aws_guard,
    parse_route,
    refuse_create,
    refuse_publish,
    validate_routes,
)

HINT = "set protected = false only for a test environment"


def test_a_route_is_a_method_and_a_path() -> None:
    assert parse_route("POST /login") == ("POST", "/login")
    assert parse_route("  delete\t/users/{id} ") == ("DELETE", "/users/{id}")
    assert validate_routes(["post /login", "PUT /a/{id}/**"]) == ("POST /login", "PUT /a/{id}/**")
    assert validate_routes([]) == ()


@pytest.mark.parametrize(
    "text", ["/login", "POST", "POST /a /b", "P0ST /login", "POST login", "", "POST */x"]
)
def test_anything_else_is_refused_naming_the_form(text: str) -> None:
    expected = f'{text!r} is not a route; write it as "METHOD /path", e.g. "POST /login"'
    with pytest.raises(ValueError) as refused:
        parse_route(text)
    assert str(refused.value) == expected
    with pytest.raises(ValueError) as refused:
        validate_routes(["POST /fine", text])
    assert str(refused.value) == expected


def test_a_segment_wildcard_is_one_segment_and_a_tail_wildcard_is_the_rest() -> None:
    guard = HttpGuard("production", ("PUT /users/{uid}/avatar", "POST /files/*", "POST /blobs/**"))
    assert guard.allows("PUT", "/users/7/avatar") and guard.allows("PUT", "/users/7/avatar/")
    assert not guard.allows("PUT", "/users//avatar")  # a segment is never empty
    assert guard.allows("POST", "/files/a") and not guard.allows("POST", "/files/a/b")
    assert guard.allows("POST", "/blobs/a/b/c") and guard.allows("POST", "/blobs/")
    assert not guard.allows("POST", "/blobs")


def test_braces_are_a_wildcard_only_around_a_whole_name() -> None:
    guard = HttpGuard("production", ("POST /a}", "POST /b/{id}{x"))
    assert guard.allows("POST", "/a}") and not guard.allows("POST", "/z")
    assert guard.allows("POST", "/b/7{x") and not guard.allows("POST", "/b/7ab")


def test_the_path_ends_at_the_query_string_or_the_fragment_the_first_of_each() -> None:
    guard = HttpGuard("production", ("POST /login",))
    assert guard.allows("POST", "/login?a=1?b=2")
    assert guard.allows("POST", "/login#top") and guard.allows("POST", "/login#a#b")
    assert guard.allows("POST", "/login?next=/home#x")
    assert not guard.allows("POST", "/login2?x=/login")


def test_a_url_anywhere_in_the_request_is_never_allowed() -> None:
    """ "host: never" — an absolute URL, or a URL in the query string of an allowed route."""
    guard = HttpGuard("production", ("POST /login", "POST /**"))
    assert not guard.allows("POST", "https://api.example.com/login")
    assert not guard.allows("POST", "/login?next=https://elsewhere.example/")
    assert guard.allows("GET", "/login?next=https://elsewhere.example/")  # reads pass


def test_the_refusal_is_one_exact_line_naming_the_route_to_allow() -> None:
    guard = HttpGuard("production")
    with pytest.raises(ProtectedTargetError) as refused:
        guard.check("post", "/users?x=1#f")
    assert str(refused.value) == (
        "protected target [production]: POST /users refused — only GET/HEAD/OPTIONS are sent "
        'to a protected profile; to allow this route, add allow_writes = ["POST /users"] to '
        "the profile"
    )
    with pytest.raises(ProtectedTargetError) as refused:
        guard.check("PUT", "?only=query")  # no path before the query: the whole of it
    assert str(refused.value).startswith("protected target [production]: PUT ?only=query refused")
    assert str(refused.value).endswith('add allow_writes = ["PUT /"] to the profile')  # the root
    guard.check("get", "/users")  # a read: no refusal


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/todos/0b8e4c6a-6d1f-4f57-9a8e-4f1f2b0c9d11", "/todos/{id}"),
        ("/users/4503599627370495/notifications?x=1", "/users/{id}/notifications"),
        ("/notes/itest-20261127t172503-k3f9-gw0-k2m9qa", "/notes/{id}"),
        ("/me", "/me"),
    ],
)
def test_the_refusal_suggests_the_routes_template_which_then_allows_it(
    path: str, template: str
) -> None:
    """Not the literal path with its id (which would allow that one request only)."""
    with pytest.raises(ProtectedTargetError) as refused:
        HttpGuard("production").check("delete", path)
    literal = path.partition("?")[0]
    assert str(refused.value) == (
        f"protected target [production]: DELETE {literal} refused — only GET/HEAD/OPTIONS "
        f'are sent to a protected profile; to allow this route, add allow_writes = ["DELETE '
        f'{template}"] to the profile'
    )
    assert HttpGuard("production", (f"DELETE {template}",)).allows("DELETE", path)


@pytest.mark.parametrize(
    "path", ["https://api.example.com/login", "/login?next=https://x.example/"]
)
def test_a_request_naming_a_url_is_refused_without_a_route_to_allow(path: str) -> None:
    with pytest.raises(ProtectedTargetError) as refused:
        HttpGuard("production", ("POST /login",)).check("POST", path)
    assert str(refused.value) == (
        f"protected target [production]: POST {path.partition('?')[0]} refused — a request "
        "naming a URL (another host, or one in its query string) is never sent to a "
        "protected profile"
    )


def test_the_ledger_and_publisher_refusals_are_exact() -> None:
    assert str(refuse_create("production", "user")) == (
        "protected target [production]: creating a user refused — the ledger and its "
        f"factories create nothing on a protected profile; {HINT}"
    )
    assert str(refuse_publish("production", "publishing an event")) == (
        "protected target [production]: publishing an event refused — the event publisher "
        f"sends nothing to a protected profile; {HINT}"
    )


def _operation(service: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, service_model=SimpleNamespace(service_name=service))


def test_the_aws_rule_is_installed_once_and_refuses_writes_in_one_exact_line() -> None:
    events = HierarchicalEmitter()
    install_aws_guard(events, "production")
    install_aws_guard(events, "production")  # a sibling's clients copy it: still one
    answers = events.emit(
        "provide-client-params.dynamodb.GetItem",
        model=_operation("dynamodb", "GetItem"),
        params={},
        context={},
    )
    assert answers == [(answers[0][0], None)]  # one handler, and it let the read through
    assert events.emit("provide-client-params.dynamodb.GetItem", params={}, context={}) == [
        (answers[0][0], None)
    ]  # no model given: nothing to judge
    with pytest.raises(ProtectedTargetError) as refused:
        events.emit(
            "provide-client-params.sqs.DeleteQueue",
            model=_operation("sqs", "DeleteQueue"),
            params={},
            context={},
        )
    assert str(refused.value) == (
        "protected target [production]: AWS sqs DeleteQueue refused — a protected profile's "
        "AWS clients only read (Get*, Describe*, List*, Head*, Query, Scan, FilterLogEvents, "
        f"AdminGetUser); {HINT}"
    )
