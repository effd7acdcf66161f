"""``identity = "route"`` (issue 21, item 7): a service without an identity endpoint proves
which environment it is with any read it has — a JSON field (a dotted path) or a header of
``identity_route``'s answer must name the profile's environment. The config refuses a route
that is not a read, no part or two, and — on a protected profile — an expected answer that
every environment's status route may give (``ok``, ``200``); preflight asks the route over
real HTTP on loopback; doctor shows the proof."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.cli import doctor
from harness.config import (
    GUARDED,
    ConfigError,
    Profile,
    TargetError,
    load_profile,
    refuse_env_overrides,
)
from harness.safety.preflight import check_route, check_service
from tests.conftest import REPO
from tests.unit.loopback import Loopback, loopback

# -- the config -----------------------------------------------------------------------------

BASE = '[prod]\nbase_url = "https://api.example.com"\nidentity = "route"\n'


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Profile:
    path = tmp_path / "environments.toml"
    path.write_text(text)
    return load_profile("prod", path, environ=environ or {}, declared={})


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    return str(error.value)


def test_a_route_profile_loads_with_a_field_or_a_header(tmp_path: Path) -> None:
    field = load(tmp_path, BASE + 'identity_route = "GET /version"\nidentity_field = "build.env"\n')
    assert (field.identity, field.identity_route, field.identity_field) == (
        "route",
        "GET /version",
        "build.env",
    )
    header = load(tmp_path, BASE + 'identity_route = "GET /"\nidentity_header = "X-Environment"\n')
    assert (header.identity_header, header.identity_field) == ("X-Environment", "")


@pytest.mark.parametrize(
    "route", ["GET /meta?fields=env", "GET /", "GET /v1/stage-info", "GET /a/{b}"]
)
def test_any_get_route_is_a_read(tmp_path: Path, route: str) -> None:
    text = BASE + f'identity_route = "{route}"\nidentity_field = "env"\n'
    assert load(tmp_path, text).identity_route == route


@pytest.mark.parametrize(
    "route", ["", "/version", "POST /version", "get /version", "GET version", "GET /a b", "GET  /v"]
)
def test_a_route_that_is_not_a_read_is_refused(tmp_path: Path, route: str) -> None:
    text = BASE + f'identity_route = "{route}"\nidentity_field = "env"\n'
    assert refusal(tmp_path, text) == (
        f'profile [prod] has identity = "route" but identity_route = {route!r} is not a read '
        f'like "GET /version": write identity_route = "GET /path" (the route whose answer names '
        f"the environment)"
    )


@pytest.mark.parametrize(
    ("parts", "said"),
    [("", "neither"), ('identity_field = "env"\nidentity_header = "X-Env"\n', "both")],
)
def test_exactly_one_part_of_the_answer_is_named(tmp_path: Path, parts: str, said: str) -> None:
    text = BASE + 'identity_route = "GET /version"\n' + parts
    assert refusal(tmp_path, text) == (
        f'profile [prod] has identity = "route" and {said} identity_field and identity_header: '
        f"name exactly one part of the answer that names the environment — identity_field = "
        f'"env" (a JSON field, a dotted path like "build.env") or identity_header = '
        f'"X-Environment"'
    )


@pytest.mark.parametrize("field", ["a..b", ".env", "env.", "build env", "a.b c"])
def test_a_field_is_a_dotted_path(tmp_path: Path, field: str) -> None:
    text = BASE + f'identity_route = "GET /v"\nidentity_field = "{field}"\n'
    assert refusal(tmp_path, text) == (
        f'profile [prod] has identity = "route" but identity_field = {field!r} is not a dotted '
        f'path of JSON object keys like "env" or "build.env"'
    )


@pytest.mark.parametrize("field", ["env", "build.env", "a-b_c.d1", "x.y.z"])
def test_dotted_paths_of_keys_are_fields(tmp_path: Path, field: str) -> None:
    text = BASE + f'identity_route = "GET /v"\nidentity_field = "{field}"\n'
    assert load(tmp_path, text).identity_field == field


@pytest.mark.parametrize(("header", "ok"), [("X Env", False), ("X-Env:", False), ("x_env.1", True)])
def test_a_header_is_a_header_name(tmp_path: Path, header: str, ok: bool) -> None:
    text = BASE + f'identity_route = "GET /v"\nidentity_header = "{header}"\n'
    if ok:
        assert load(tmp_path, text).identity_header == header
    else:
        assert refusal(tmp_path, text) == (
            f'profile [prod] has identity = "route" but identity_header = {header!r} is not a '
            f'header name like "X-Environment"'
        )


ROUTE = 'identity_route = "GET /status"\nidentity_field = "status"\n'


@pytest.mark.parametrize("answer", ["ok", "OK", "healthy", "up", "true", "200", "1.0", "unknown"])
def test_a_protected_profile_must_expect_a_name(tmp_path: Path, answer: str) -> None:
    assert refusal(tmp_path, BASE + ROUTE + f'environment = "{answer}"\n') == (
        f'profile [prod] has identity = "route" and is protected, but expects the answer '
        f"{answer!r}, which every environment's status route may give: it cannot tell this "
        f"environment from another. Name a field or header whose value is the environment's own "
        f'name, and set environment = "<that name>" under [prod]'
    )


@pytest.mark.parametrize("name", ["production", "PROD", "prod-eu-1", "v2"])
def test_a_protected_profile_expecting_a_name_loads(tmp_path: Path, name: str) -> None:
    assert load(tmp_path, BASE + ROUTE + f'environment = "{name}"\n').expected_environment == name


def test_the_profiles_own_name_is_a_name_and_unprotected_profiles_may_expect_anything(
    tmp_path: Path,
) -> None:
    assert load(tmp_path, BASE + ROUTE).expected_environment == "prod"
    relaxed = load(tmp_path, BASE + ROUTE + 'environment = "ok"\nprotected = false\n')
    assert relaxed.expected_environment == "ok"


def test_a_route_without_identity_route_is_refused_where_the_default_would_ask_health(
    tmp_path: Path,
) -> None:
    text = '[dev]\nbase_url = "http://x"\nprotected = false\nidentity_route = "GET /v"\n'
    path = tmp_path / "environments.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_profile("dev", path, environ={}, declared={})
    assert str(error.value) == (
        'profile [dev] names identity_route but not identity = "route" (the default is '
        '"health": GET /health); add identity = "route"'
    )
    path.write_text(text + 'identity = "none"\n')  # said otherwise: the route is not used
    assert load_profile("dev", path, environ={}, declared={}).identity == "none"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HARNESS_IDENTITY_ROUTE", "GET /other"),
        ("HARNESS_IDENTITY_FIELD", "other"),
        ("HARNESS_IDENTITY_HEADER", "X-Other"),
    ],
)
def test_a_variable_changing_the_proof_of_a_named_profile_is_refused(
    tmp_path: Path, variable: str, value: str
) -> None:
    text = BASE + 'identity_route = "GET /v"\nidentity_header = "X-Env"\n'
    if variable == "HARNESS_IDENTITY_FIELD":
        text = BASE + 'identity_route = "GET /v"\nidentity_field = "env"\n'
    profile = load(tmp_path, text, environ={variable: value})
    with pytest.raises(ConfigError, match=rf"^profile \[prod\] was named explicitly .* {variable}"):
        refuse_env_overrides(profile, environ={})


# -- preflight, over real HTTP -----------------------------------------------------------------


@pytest.fixture
def service() -> Iterator[Loopback]:
    with loopback() as server:
        yield server


def route_profile(url: str, **fields: Any) -> Profile:
    return Profile(
        name="staging",
        base_url=url,
        identity="route",
        identity_route=fields.pop("route", "GET /version"),
        **fields,
    )


def test_a_json_field_names_the_environment(service: Loopback) -> None:
    service.route("/version", 200, {"build": {"env": "staging", "sha": "abc"}})
    proof = check_service(route_profile(service.url, identity_field="build.env"))
    assert proof == {
        "identity": "route",
        "identity_route": "GET /version",
        "identity_field": "build.env",
        "environment": "staging",
    }
    assert [r.path for r in service.received] == ["/version"]


def test_a_header_names_the_environment_whatever_its_case(service: Loopback) -> None:
    service.route("/", 200, {"hello": "world"}, **{"x-environment": " staging "})
    proof = check_route(route_profile(service.url, route="GET /", identity_header="X-Environment"))
    assert proof == {
        "identity": "route",
        "identity_route": "GET /",
        "identity_header": "X-Environment",
        "environment": "staging",
    }


def test_another_environment_is_refused_naming_the_part_that_said_it(service: Loopback) -> None:
    service.route("/version", 200, {"env": "production"})
    with pytest.raises(TargetError) as error:
        check_service(route_profile(service.url, identity_field="env"))
    assert str(error.value) == (
        f"{service.url}/version says (its field env) it is environment 'production', but profile "
        f"[staging] expects 'staging': refusing to run against the wrong target. Fix base_url, or "
        f"the profile's `environment` field if the name changed."
    )


def test_a_padded_value_is_the_name_it_pads(service: Loopback) -> None:
    service.route("/version", 200, {"env": "  staging\n"})
    assert check_route(route_profile(service.url, identity_field="env"))["environment"] == "staging"


@pytest.mark.parametrize("value", [True, 1, None, {"name": "staging"}, ["staging"]])
def test_a_value_that_is_not_a_string_names_no_environment(service: Loopback, value: Any) -> None:
    service.route("/version", 200, {"env": value})
    with pytest.raises(TargetError) as error:
        check_route(route_profile(service.url, identity_field="env"))
    assert str(error.value) == (
        f"{service.url}/version's field env is {value!r}, not a name: it cannot say which "
        f"environment this is; point identity_field / identity_header of profile [staging] at "
        f"the environment's name"
    )


@pytest.mark.parametrize(
    "body", [{"other": 1}, {"build": "staging"}, {"build": ["env"]}, ["build"], "build", None]
)
def test_a_missing_field_is_named(service: Loopback, body: Any) -> None:
    service.route("/version", 200, body)
    with pytest.raises(TargetError) as error:
        check_route(route_profile(service.url, identity_field="build.env"))
    assert str(error.value).startswith(f"{service.url}/version answered 200 with ")
    assert str(error.value).endswith(
        ", without the field 'build.env': fix identity_field of profile [staging]"
    )


def test_a_body_that_is_not_json_is_named(service: Loopback) -> None:
    service.route("/version", 200, b"<html><title>Sign in</title>")
    with pytest.raises(TargetError) as error:
        check_route(route_profile(service.url, identity_field="env"))
    assert str(error.value) == (
        f"{service.url}/version answered 200 with an HTML page ('Sign in'), not JSON with a "
        f"'env' field: fix identity_route of profile [staging]"
    )


def test_a_missing_header_is_named(service: Loopback) -> None:
    service.route("/version", 200, {"env": "staging"})
    with pytest.raises(TargetError) as error:
        check_route(route_profile(service.url, identity_header="X-Environment"))
    assert str(error.value) == (
        f"{service.url}/version answered 200 without a X-Environment header: fix "
        f"identity_header (or identity_route) of profile [staging]"
    )


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (299, True), (300, False)])
def test_the_route_must_answer_2xx(service: Loopback, status: int, ok: bool) -> None:
    service.route("/version", status, b"", **{"X-Env": "staging"})
    profile = route_profile(service.url, identity_header="X-Env")
    if ok:
        assert check_route(profile, requests.Session())["environment"] == "staging"
        return
    with pytest.raises(TargetError) as error:
        check_route(profile, requests.Session())
    assert str(error.value) == (
        f"{service.url}/version answered 300 with an empty body: the identity route "
        f"'GET /version' must answer 2xx; check base_url and identity_route of profile [staging]"
    )


def test_a_404_is_refused(service: Loopback) -> None:
    with pytest.raises(TargetError, match=r"/version answered 404 with '\{\"error\": \"no\"\}'"):
        check_route(route_profile(service.url, identity_field="env"), requests.Session())


def test_a_redirect_to_another_host_is_refused_as_for_health(service: Loopback) -> None:
    with loopback("127.0.0.2") as elsewhere:
        elsewhere.route("/version", 200, {"env": "staging"})
        service.route("/version", 302, b"", Location=elsewhere.url + "/version")
        with pytest.raises(TargetError, match=r"redirected to .*: the final host 127\.0\.0\.2"):
            check_route(route_profile(service.url, identity_field="env"))


def test_the_route_is_joined_to_the_base_url_with_its_query(service: Loopback) -> None:
    service.route("/v1/meta?f=env", 200, {"env": "staging"})
    profile = route_profile(service.url + "/v1/", route="GET /meta?f=env", identity_field="env")
    assert check_route(profile)["environment"] == "staging"
    assert [r.path for r in service.received] == ["/v1/meta?f=env"]


# -- doctor ------------------------------------------------------------------------------------


def test_doctor_asks_the_route_and_shows_the_proof(service: Loopback) -> None:
    service.route("/version", 200, {"env": "staging"}, **{"X-Env": "staging"})
    http = requests.Session()
    by_field = route_profile(service.url, identity_field="env")
    assert doctor.check_reachable(by_field, http).detail.startswith(f"GET {service.url}/version ")
    row = doctor.check_identity(by_field, http)
    assert (row.status, row.detail) == (
        doctor.OK,
        "environment 'staging' (GET /version, field env)",
    )
    by_header = route_profile(service.url, identity_header="X-Env")
    row = doctor.check_identity(by_header, http)
    assert row.detail == "environment 'staging' (GET /version, header X-Env)"
    wrong = route_profile(service.url, identity_field="env", environment="production")
    row = doctor.check_identity(wrong, http)
    assert (row.status, row.detail) == (doctor.FAIL, "GET /version does not name this profile")
    assert "says (its field env) it is environment 'staging'" in row.fix


def test_doctor_skips_the_route_when_the_service_is_unreachable() -> None:
    with loopback() as gone:
        url = gone.url
    profile = route_profile(url, identity_field="env", aws_endpoint_url=url, aws_region="x")
    rows = doctor.diagnose(profile, requests.Session())
    assert [(r.name, r.status) for r in rows[:2]] == [
        ("reachability", doctor.FAIL),
        ("identity", doctor.SKIP),
    ]


# -- the documents -----------------------------------------------------------------------------

documents = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)


@documents
def test_the_guides_route_profile_is_what_preflight_proves(
    tmp_path: Path, service: Loopback
) -> None:
    guide = (REPO / "docs" / "adapters.md").read_text(encoding="utf-8")
    [block] = [
        b
        for b in re.findall(r"```toml\n(.*?)```", guide, re.S)
        if b.startswith("# environments.toml, proving staging by a route")
    ]
    path = tmp_path / "environments.toml"
    path.write_text(block)
    profile = load_profile("staging", path, environ={}, declared={})
    assert profile.is_protected and profile.identity == "route"
    assert (profile.identity_route, profile.identity_field) == ("GET /version", "build.env")
    service.route("/version", 200, {"build": {"env": "staging", "sha": "abc"}})
    assert check_route(replace(profile, base_url=service.url))["environment"] == "staging"
    header = block.replace('identity_field = "build.env"', "").replace(
        "# identity_header", "identity_header"
    )
    path.write_text(header)
    profile = load_profile("staging", path, environ={}, declared={})
    service.route("/version", 200, {}, **{"X-Environment": "staging"})
    assert check_route(replace(profile, base_url=service.url))["environment"] == "staging"


@documents
def test_the_readme_names_every_field_a_variable_may_not_change() -> None:
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    shown = re.search(
        r"changes its `base_url`, `aws_endpoint_url`, `environment` or identity \(([^)]*)\)", readme
    )
    assert shown is not None
    named = re.findall(r"`([a-z_]+)`", shown[1])
    assert ["base_url", "aws_endpoint_url", "environment", *named] == list(GUARDED)


def test_a_session_given_is_used_as_is_a_flaky_gateway_retried_otherwise(
    service: Loopback,
) -> None:
    profile = route_profile(service.url, identity_field="env")
    service.route("/version", 200, {"env": "staging"})
    service.once("/version", 503, {"busy": True})
    with pytest.raises(TargetError, match=r"/version answered 503 with"):
        check_service(profile, session=requests.Session())  # no retries mounted
    service.once("/version", 503, {"busy": True})
    assert check_service(profile)["environment"] == "staging"  # retried
    assert [r.path for r in service.received] == ["/version"] * 3


def test_a_header_naming_another_environment_is_named_as_the_header(service: Loopback) -> None:
    service.route("/version", 200, {}, **{"X-Env": "production"})
    with pytest.raises(TargetError) as error:
        check_route(route_profile(service.url, identity_header="X-Env"))
    assert str(error.value).startswith(
        f"{service.url}/version says (its header X-Env) it is environment 'production', but"
    )
