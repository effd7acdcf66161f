"""Profile fields one by one (harness/config.py): how each is read from the file or its
HARNESS_* variable, and the exact message that names the fix when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import ConfigError, Profile, load_profile, parse_rate

BASE = '[staging]\nbase_url = "https://api.staging.example.com"\n'


def load(tmp_path: Path, extra: str = "", environ: dict[str, str] | None = None) -> Profile:
    path = tmp_path / "environments.toml"
    path.write_text(BASE + extra)
    return load_profile("staging", path, environ=environ or {}, declared={})


def refused(tmp_path: Path, extra: str = "", environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, extra, environ)
    return str(error.value)


def in_file(tmp_path: Path) -> str:
    """How a message names the profile's table in the file."""
    return f"{tmp_path / 'environments.toml'} [staging]"


# -- sweep_max_rate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1", (1.0, "items")),
        ("0.5cu", (0.5, "cu")),
        ("500item", (500.0, "items")),
        ("500 ITEM/s", (500.0, "items")),
        ("50 cu / s", (50.0, "cu")),  # spaces anywhere
        ("2 r c u", (2.0, "cu")),
    ],
)
def test_a_read_budget_in_every_spelling(text: str, rate: tuple[float, str]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["cu", "rcu", "items", "/s", "5cuitems", "1e999", "-inf", "0.0"])
def test_a_read_budget_is_a_positive_finite_number_of_one_unit(text: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_rate(text)
    assert str(error.value) == (
        "a read budget is a positive number of items or capacity units per second, e.g. 500 "
        f"(items/s) or 50cu, not {text!r}"
    )


def test_sweep_max_rate_is_checked_and_kept_as_written(tmp_path: Path) -> None:
    assert load(tmp_path).sweep_max_rate == ""  # no budget
    assert load(tmp_path, 'sweep_max_rate = ""\n').sweep_max_rate == ""
    assert load(tmp_path, "sweep_max_rate = 500\n").sweep_max_rate == "500"  # a TOML number
    assert load(tmp_path, 'sweep_max_rate = "50 cu/s"\n').sweep_max_rate == "50 cu/s"
    environ = {"HARNESS_SWEEP_MAX_RATE": " 50cu "}
    assert load(tmp_path, 'sweep_max_rate = "500"\n', environ).sweep_max_rate == "50cu"


@pytest.mark.parametrize("bad", ["fast", "0", "-5cu"])
def test_a_bad_sweep_max_rate_names_the_accepted_forms(tmp_path: Path, bad: str) -> None:
    assert refused(tmp_path, environ={"HARNESS_SWEEP_MAX_RATE": bad}) == (
        "$HARNESS_SWEEP_MAX_RATE: sweep_max_rate: a read budget is a positive number of items "
        f"or capacity units per second, e.g. 500 (items/s) or 50cu, not {bad!r}"
    )


# -- sensitive_keys and allow_writes -----------------------------------------------------------


def test_sensitive_keys_from_a_list_or_a_separated_variable(tmp_path: Path) -> None:
    assert load(tmp_path).sensitive_keys == ()
    assert load(tmp_path, 'sensitive_keys = ["pin"]\n').sensitive_keys == ("pin",)
    environ = {"HARNESS_SENSITIVE_KEYS": "pin, otp  cvv,,member-no"}
    assert load(tmp_path, environ=environ).sensitive_keys == ("pin", "otp", "cvv", "member-no")


@pytest.mark.parametrize("bad", ["[1]", '["pin", ""]', '{pin = "x"}', "5"])
def test_sensitive_keys_must_be_a_list_of_words(tmp_path: Path, bad: str) -> None:
    assert refused(tmp_path, f"sensitive_keys = {bad}\n") == (
        f'{in_file(tmp_path)}: sensitive_keys must be a list like ["pin", "otp"]'
    )


def test_allow_writes_from_a_comma_separated_variable(tmp_path: Path) -> None:
    environ = {"HARNESS_ALLOW_WRITES": " post /login , , PUT /b "}
    extra = "protected = false\n"  # the file leaves it open: a variable may name any routes
    assert load(tmp_path, extra, environ).allow_writes == ("POST /login", "PUT /b")


@pytest.mark.parametrize("bad", ["[1]", '{"POST /login" = true}', "5"])
def test_allow_writes_must_be_a_list_of_routes(tmp_path: Path, bad: str) -> None:
    assert refused(tmp_path, f"allow_writes = {bad}\n") == (
        f'{in_file(tmp_path)}: allow_writes must be a list like ["POST /login"]'
    )


# -- events bus and Kafka ----------------------------------------------------------------------


def test_events_bus_is_one_of_the_buses_in_any_case(tmp_path: Path) -> None:
    assert load(tmp_path).events_bus == "sns"
    assert load(tmp_path, 'events_bus = " SNS "\n').events_bus == "sns"
    assert refused(tmp_path, 'events_bus = ""\n') == (
        f"{in_file(tmp_path)}: events_bus must be one of sns, kafka, not ''"
    )


def test_kafka_without_its_cluster_and_topic_names_both_fixes(tmp_path: Path) -> None:
    assert refused(tmp_path, 'events_bus = "kafka"\n') == (
        'profile [staging] has events_bus = "kafka" but no kafka_bootstrap_servers, '
        'kafka_topic: set kafka_bootstrap_servers = "…" or HARNESS_KAFKA_BOOTSTRAP_SERVERS; '
        'kafka_topic = "…" or HARNESS_KAFKA_TOPIC'
    )
    environ = {"HARNESS_KAFKA_BOOTSTRAP_SERVERS": "b:9092", "HARNESS_KAFKA_TOPIC": "events"}
    profile = load(tmp_path, 'events_bus = "kafka"\n', environ)
    assert (profile.kafka_bootstrap_servers, profile.kafka_topic) == ("b:9092", "events")


def test_kafka_credentials_in_the_file_name_their_variables(tmp_path: Path) -> None:
    extra = 'kafka_sasl_username = "svc"\nschema_registry_password = "x"\n'
    assert refused(tmp_path, extra) == (
        f"{tmp_path / 'environments.toml'}: profile [staging] has kafka_sasl_username, "
        "schema_registry_password: credentials never go in this file; remove them and set "
        "HARNESS_KAFKA_SASL_USERNAME, HARNESS_SCHEMA_REGISTRY_PASSWORD in the environment "
        "instead"
    )


# -- declared kinds' run index -----------------------------------------------------------------

KIND = '[staging.kinds.note]\ntable = "notes"\nkey = ["owner"]\nmarker = "owner"\n'


def test_a_declared_kinds_run_index_comes_with_its_attribute(tmp_path: Path) -> None:
    both = 'run_index = "by-run"\nrun_attribute = "RunId"\n'
    note = load(tmp_path, KIND + both).kinds["note"]
    assert (note["run_index"], note["run_attribute"]) == ("by-run", "RunId")
    expected = (
        f'{tmp_path / "environments.toml"}: [staging.kinds.note]: run_index = "<sparse GSI>" '
        'and run_attribute = "<its hash key, holding the run id>" go together'
    )
    for half in (
        'run_index = "by-run"\n',
        'run_attribute = "RunId"\n',
        'run_index = 5\nrun_attribute = "RunId"\n',
        'run_index = ""\nrun_attribute = "RunId"\n',
    ):
        assert refused(tmp_path, KIND + half) == expected, half
