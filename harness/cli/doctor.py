"""``harness doctor``: is this environment ready for a run? One row per check, each with a fix.

Owns checking — without stopping at the first problem — configuration (the adapters load),
reachability of the service, its identity (as the profile's ``identity`` says), AWS
credentials, every table the kinds declare (adapter settings and declared kinds), each
declared kind's key and indexes against its table, TTL where a setting asks for it, the lease
table, the events topic and the processor queue, this machine's runs of the target (alive, or
dead with something left, as the liveness authority says), that every account of the
profile's pool can log in, and rendering
them as an OK / FAIL / SKIP table. It reuses preflight's
checks and reads only: it never writes to the environment — but for the pool's check, which
leases each account for the moment of one login through the route the profile allows (a
session for the account, never a change to it) and skips an account a live run holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from harness.cleanup.journal import default_state_dir
from harness.clients.aws import Aws
from harness.config import (
    ConfigError,
    Profile,
    describe_target,
    provenance,
    refuse_env_overrides,
)
from harness.kinds.base import Setting
from harness.kinds.declared import DeclaredKind
from harness.kinds.lease import EXPIRES
from harness.kinds.registry import load_kinds, load_profile, settings_tables
from harness.kinds.stores import StoreKind, store_checks
from harness.run import outcome
from harness.run.local_sandbox import LocalSandbox, SandboxError
from harness.safety import preflight

OK, FAIL, SKIP, WARN = "OK", "FAIL", "SKIP", "WARN"
#: Fail fast: a doctor that retries an unreachable endpoint for a minute helps nobody.
DOCTOR_AWS_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str = ""
    fix: str = ""
    #: A FAIL because the target cannot be reached (an AWS endpoint that does not answer):
    #: the run's 7, not 1.
    unreachable: bool = False
    #: A FAIL the run refuses to start on as bad configuration (a declared kind that does
    #: not fit its table): the run's 8, not 1.
    config: bool = False


def _aws_failure(name: str, error: Exception, profile: Profile, aws: Aws, fix: str) -> Check:
    if isinstance(error, NoCredentialsError):
        return Check(
            name,
            FAIL,
            "no AWS credentials found",
            "set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) for this account",
        )
    if isinstance(error, NoRegionError):
        return Check(
            name, FAIL, "no AWS region", f"set aws_region in [{profile.name}] or AWS_REGION"
        )
    if isinstance(error, EndpointConnectionError):
        return Check(
            name,
            FAIL,
            f"cannot reach the AWS endpoint {aws.endpoint_url or '(default)'}",
            f"check aws_endpoint_url of [{profile.name}] or HARNESS_AWS_ENDPOINT_URL",
            unreachable=True,
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return Check(name, FAIL, f"{code}: {error.response.get('Error', {}).get('Message')}", fix)
    return Check(name, FAIL, f"{type(error).__name__}: {error}", fix)


def _aws_check(
    name: str, profile: Profile, aws: Aws, fix: str, probe: Callable[[], tuple[str, str]]
) -> Check:
    """``probe`` returns (status, detail); any AWS error becomes a FAIL row with ``fix``."""
    try:
        status, detail = probe()
    except (BotoCoreError, ClientError) as error:
        return _aws_failure(name, error, profile, aws, fix)
    return Check(name, status, detail, fix if status == FAIL else "")


def check_reachable(profile: Profile, http: requests.Session) -> Check:
    path = {"health": profile.health_path, "route": profile.identity_route[4:]}.get(
        profile.identity, "/"
    )
    url = profile.base_url.rstrip("/") + "/" + path.lstrip("/")
    started = time.perf_counter()
    try:
        response = http.get(url, timeout=(3.05, 10), allow_redirects=True)
    except requests.RequestException as error:
        return Check(
            "reachability",
            FAIL,
            f"cannot reach {url} ({type(error).__name__})",
            f"is the environment up? check base_url of [{profile.name}] or HARNESS_BASE_URL",
        )
    ms = (time.perf_counter() - started) * 1000
    return Check("reachability", OK, f"GET {url} answered {response.status_code} in {ms:.0f} ms")


def check_identity(profile: Profile, http: requests.Session) -> Check:
    if profile.identity == "none":
        return Check(
            "identity",
            WARN,
            'identity = "none": nothing proves this URL is the profile\'s environment',
            'set identity = "health" (with health_path), "route" (with identity_route) or '
            '"aws-account"',
        )
    if profile.identity == "aws-account":
        return Check("identity", OK, f"by the AWS account {profile.aws_account_id} (below)")
    route = profile.identity_route if profile.identity == "route" else f"GET {profile.health_path}"
    try:
        body = preflight.check_service(profile, http)
    except ConfigError as error:
        return Check("identity", FAIL, f"{route} does not name this profile", str(error))
    if profile.identity == "route":
        part = (
            f"header {profile.identity_header}"
            if profile.identity_header
            else f"field {profile.identity_field}"
        )
        return Check("identity", OK, f"environment {body['environment']!r} ({route}, {part})")
    version = f", version {body['version']}" if body.get("version") else ""
    return Check("identity", OK, f"environment {body['environment']!r}{version}")


def aws_checks(profile: Profile, aws: Aws) -> list[Check]:
    def caller() -> tuple[str, str]:
        who = aws.sts.get_caller_identity()
        return OK, f"account {who.get('Account')} ({who.get('Arn')})"

    rows = [
        _aws_check(
            "credentials",
            profile,
            aws,
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            caller,
        )
    ]
    if rows[0].status == FAIL:
        return [*rows, Check("AWS resources", SKIP, "skipped: AWS is not usable (see above)")]
    try:
        kinds = load_kinds(profile, aws)
    except ConfigError as error:
        return [*rows, Check("kinds", FAIL, "the adapters' kinds cannot be loaded", str(error))]
    rows.append(Check("kinds", OK, ", ".join(sorted(kinds)) or "(none)"))
    tables = settings_tables(kinds)
    if profile.lease_table:
        tables.append(
            ("lease_table", profile.lease_table, Setting("lease_table", ttl_attribute=EXPIRES))
        )
    described: dict[str, Mapping[str, Any]] = {}
    for field, name, setting in tables:

        def table(name: str = name) -> tuple[str, str]:
            description = aws.dynamodb_client.describe_table(TableName=name)["Table"]
            described[name] = description
            return OK, f"{name} ({description.get('TableStatus', '?')})"

        fix = (
            f"create table {name!r}, or fix table under [{profile.name}.kinds.{field[5:]}]"
            if field.startswith("kind ")
            else f"create table {name!r}, or fix {field} in [{profile.name}] / "
            f"HARNESS_{field.upper()}"
        )
        rows.append(_aws_check(f"table {field}", profile, aws, fix, table))
        if setting is not None and setting.ttl_attribute:
            rows.append(_ttl_check(profile, aws, field, name, setting.ttl_attribute))
    for kind in kinds.values():
        if isinstance(kind, DeclaredKind) and kind.table_name in described:
            rows.extend(kind_checks(kind, described[kind.table_name]))
    for kind in kinds.values():  # Cognito pools, S3 buckets, SQL tables and their markers
        if isinstance(kind, StoreKind):
            rows += [
                Check(c.name, c.status, c.detail, c.fix, c.unreachable) for c in store_checks(kind)
            ]
    if profile.events_bus == "kafka":
        rows.extend(kafka_checks(profile))
    else:
        rows.append(_topic_check(profile, aws))
        rows.append(_queue_check(profile, aws))
    rows.append(runs_check(profile, kinds))
    return rows


def runs_check(profile: Profile, kinds: Mapping[str, Any]) -> Check:
    """This machine's journal folders of the target, as the liveness authority judges them
    (:mod:`harness.cleanup.liveness`): how many runs are alive, and whether a dead one left
    something for ``harness recover``. Reads only: each dead folder's locks are taken and
    given back at once."""
    from harness.cleanup.liveness import Liveness, run_folders
    from harness.kinds.lease import LeaseKind

    lease = kinds.get("lease")
    state_dir = default_state_dir(profile.project_root)
    liveness = Liveness(lease if isinstance(lease, LeaseKind) else None, state_dir)
    alive = dead = 0
    for folder in run_folders(state_dir):
        if folder.owner.get("base_url") not in (None, profile.base_url):
            continue
        if liveness.verdict(folder).alive:
            alive += 1
        elif folder.unsettled():
            dead += 1
    detail = f"{alive} alive, {dead} dead with something left, under {state_dir}/runs"
    if dead:
        return Check("runs here", WARN, detail, f"harness recover --env {profile.name}")
    return Check("runs here", OK, detail)


def kind_checks(kind: DeclaredKind, table: Mapping[str, Any]) -> list[Check]:
    """A declared kind against its described table (preflight's :func:`kind_misfits`): a
    FAIL row per field that does not fit, naming the real key or index and the TOML to
    write; else OK, or WARN when finding what belongs to a resource has to scan."""
    misfits = preflight.kind_misfits(kind, table)
    if misfits:
        return [
            Check(f"kind {kind.name} {m.field}", FAIL, m.problem, m.fix, config=True)
            for m in misfits
        ]
    if not kind.related_by_key:
        on_marker = preflight.indexes_on(table, kind.marker_attribute)
        return [
            Check(
                f"kind {kind.name}",
                WARN,
                f"marker {kind.marker_attribute!r} is neither the hash key nor indexed: "
                f"finding what belongs to a resource scans {kind.table_name}",
                f'write index = "{on_marker[0]}" under {preflight.where_declared(kind, "index")}'
                if on_marker
                else f'declare index = "<GSI with hash key {kind.marker_attribute}>"',
            )
        ]
    fits = f"key {', '.join(kind.key)}"
    fits += f"; index {kind.index}" if kind.index else ""
    fits += f"; run_index {kind.run_index}" if kind.run_index else ""
    return [Check(f"kind {kind.name}", OK, f"{fits}: fit table {kind.table_name}")]


def _ttl_check(profile: Profile, aws: Aws, field: str, name: str, attribute: str) -> Check:
    fix = (
        f"aws dynamodb update-time-to-live --table-name {name} --time-to-live-specification "
        f"Enabled=true,AttributeName={attribute}"
    )

    def probe() -> tuple[str, str]:
        ttl = aws.dynamodb_client.describe_time_to_live(TableName=name)
        description: Mapping[str, Any] = ttl.get("TimeToLiveDescription", {})
        status = description.get("TimeToLiveStatus", "DISABLED")
        found = description.get("AttributeName")
        if status in ("ENABLED", "ENABLING") and found == attribute:
            return OK, f"{name}: TTL {status.lower()} on {found}"
        return FAIL, f"{name}: TTL {status.lower()} (attribute {found or 'none'})"

    return _aws_check(f"{field} TTL", profile, aws, fix, probe)


def kafka_checks(profile: Profile) -> list[Check]:
    """The service's Kafka topic (readable, its partitions) and its consumer group's lag."""
    from harness.events.kafka import KafkaUnavailable, client_config, group_lag

    topic, group = profile.kafka_topic, profile.kafka_consumer_group
    fix = (
        f"check kafka_bootstrap_servers / kafka_topic (and the security settings) in "
        f"[{profile.name}], and $HARNESS_KAFKA_SASL_USERNAME / _PASSWORD"
    )
    probe_group = group or f"{topic}-doctor"  # read-only: OffsetFetch never creates a group
    try:
        lag = group_lag(client_config(profile), topic, probe_group)
    except KafkaUnavailable as error:
        return [Check("Kafka topic", FAIL, str(error), fix)]
    except Exception as error:
        return [Check("Kafka topic", FAIL, f"{type(error).__name__}: {error}", fix)]
    rows = [Check("Kafka topic", OK, f"{topic}: {len(lag)} partition(s)")]
    if not group:
        rows.append(
            Check(
                "consumer group",
                SKIP,
                "not configured: set kafka_consumer_group (HARNESS_KAFKA_CONSUMER_GROUP) to "
                "wait for the service's consumer before the residue check",
            )
        )
    else:
        rows.append(Check("consumer group", OK, f"{group}: lag {sum(lag.values())}"))
    return rows


def _topic_check(profile: Profile, aws: Aws) -> Check:
    arn = profile.events_topic_arn
    if not arn:
        return Check(
            "events topic",
            SKIP,
            "not configured: set events_topic_arn (HARNESS_EVENTS_TOPIC_ARN) to check it",
        )

    def probe() -> tuple[str, str]:
        aws.sns.get_topic_attributes(TopicArn=arn)
        return OK, arn

    fix = f"create the topic, or fix events_topic_arn in [{profile.name}]"
    return _aws_check("events topic", profile, aws, fix, probe)


def _queue_check(profile: Profile, aws: Aws) -> Check:
    url = profile.processor_queue_url
    if not url:
        return Check(
            "processor queue",
            SKIP,
            "not configured: set processor_queue_url (HARNESS_PROCESSOR_QUEUE_URL) to check it",
        )

    def probe() -> tuple[str, str]:
        aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return OK, url

    fix = f"create the queue, or fix processor_queue_url in [{profile.name}]"
    return _aws_check("processor queue", profile, aws, fix, probe)


def diagnose(profile: Profile, http: requests.Session | None = None) -> list[Check]:
    """Every check after configuration, for a profile that loaded."""
    http = http or requests.Session()
    rows = [check_reachable(profile, http)]
    if rows[0].status == OK or profile.identity in ("aws-account", "none"):  # no answer needed
        rows.append(check_identity(profile, http))
    else:
        rows.append(Check("identity", SKIP, "skipped: the service is not reachable"))
    rows += aws_checks(profile, Aws(profile, config=DOCTOR_AWS_CONFIG))
    if profile.accounts is not None:
        usable = rows[0].status == OK and not any(
            r.name == "credentials" and r.status == FAIL for r in rows
        )
        skipped = Check("account pool", SKIP, "skipped: the service or AWS is not usable (above)")
        rows += account_checks(profile) if usable else [skipped]
    return rows


def account_checks(profile: Profile) -> list[Check]:
    """The pool of ``[NAME.accounts]``: one row per account, OK when it logged in — a
    read-only login through the route the profile allows (or Cognito) — and SKIP for one a
    live run holds (logging in would end that run's session)."""
    from harness.accounts.pool import AccountError, AccountPool
    from harness.clients.http import ApiClient
    from harness.safety.protect import http_guard
    from harness.safety.redact import Redactor

    redactor = Redactor(profile.sensitive_keys)
    api = ApiClient(profile.base_url, "harness-doctor", redactor, guard=http_guard(profile))
    state_dir = default_state_dir(profile.project_root)
    try:
        pool = AccountPool(
            profile, api, redactor, state_dir, "harness doctor", aws_config=DOCTOR_AWS_CONFIG
        )
    except AccountError as error:
        return [Check("account pool", FAIL, str(error))]
    rows = [
        Check("account pool", OK, f"{len(pool.spec.entries)} account(s), {pool.describe_leasing()}")
    ]
    try:
        for entry, verdict, detail in pool.probe():
            name = f"account {entry.name}"
            if verdict == "ok":
                note = " (a read-only login: the one write the profile allows; the account"
                rows.append(Check(name, OK, f"{detail}{note} is not changed)"))
            elif verdict == "busy":
                rows.append(Check(name, SKIP, detail))
            else:
                rows.append(Check(name, FAIL, redactor.text(detail)))  # the line names the fix
    except Exception as error:  # never a traceback: what went wrong, as a row
        text = redactor.text(" ".join(f"{type(error).__name__}: {error}".split()))
        rows.append(Check("account pool", FAIL, text))
    finally:
        pool.close()
        api.close()
    return rows


def failed(rows: list[Check]) -> bool:
    return any(row.status == FAIL for row in rows)


def render(rows: list[Check]) -> str:
    width = max(len(row.name) for row in rows)
    lines = []
    for row in rows:
        lines.append(f"{row.status:4}  {row.name:{width}}  {row.detail}")
        if row.status in (FAIL, WARN) and row.fix:
            lines.append(f"{'':4}  {'':{width}}  fix: {row.fix}")
    verdict = "FAIL: fix the rows above before a run" if failed(rows) else "all checks OK"
    return "\n".join([*lines, "", verdict])


def status(rows: list[Check]) -> int:
    """The exit status (:mod:`harness.run.outcome`), as ``harness run`` would end for the
    same target: 8 the configuration cannot be used, 7 the service or the AWS endpoint is
    unreachable or is not the profile's environment, 8 a declared kind does not fit its
    table (found after the target, as the run would), 1 another check failed, 0 all OK."""
    failing = {row.name for row in rows if row.status == FAIL}
    if "configuration" in failing:
        return outcome.CONFIG
    if failing & {"reachability", "identity", "sandbox"}:
        return outcome.UNREACHABLE
    if any(row.unreachable for row in rows if row.status == FAIL):
        return outcome.UNREACHABLE
    if any(row.config for row in rows if row.status == FAIL):
        return outcome.CONFIG
    return outcome.FAILED if failing else outcome.PASSED


def run(
    env_name: str | None,
    config_path: str | None,
    start_sandbox: bool = True,
    allow_env_override: bool = False,
) -> int:
    """The command: load the profile (starting a local sandbox for the sandbox profile with
    no base URL, as ``harness run`` would), check everything, print the table."""
    environ = dict(os.environ)
    rows: list[Check] = []
    sandbox = None
    try:
        try:
            profile = load_profile(env_name, config_path, environ=environ)
            refuse_env_overrides(profile, allow_env_override, environ)
            if profile.needs_local_sandbox and start_sandbox:
                print("harness doctor: starting a local sandbox to check…", flush=True)
                from harness.run.lifecycle import sandbox_arguments

                try:
                    sandbox = LocalSandbox.start(
                        default_state_dir(profile.project_root) / "sandbox" / "doctor.log",
                        sandbox_arguments(profile),
                    )
                except SandboxError as error:
                    rows.append(Check("sandbox", FAIL, "could not start", str(error)))
                    print(render(rows))
                    return status(rows)
                environ.update(sandbox.exports)
                profile = load_profile(env_name, config_path, environ=environ)
                rows.append(Check("sandbox", OK, f"started for this check at {profile.base_url}"))
            elif profile.needs_local_sandbox:
                raise ConfigError(
                    "the sandbox profile names no running sandbox: run "
                    '`eval "$(harness env up --detach)"` (it exports HARNESS_BASE_URL and '
                    "friends), or pass --env NAME"
                )
        except ConfigError as error:
            rows.append(Check("configuration", FAIL, "the profile cannot be used", str(error)))
            print(render(rows))
            return status(rows)
        where = profile.config_file or config_path or "environments.toml"
        rows.insert(0, Check("configuration", OK, f"profile [{profile.name}] ({where})"))
        rows.insert(1, Check("target", OK, describe_target(provenance(profile))))
        rows += diagnose(profile)
    finally:
        if sandbox is not None:
            sandbox.stop()
    print(render(rows))
    return status(rows)
