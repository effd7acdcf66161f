"""The generic fixtures every installed harness gives plain pytest, for any service.

``harness_session`` (this worker's engine objects), ``env`` (the profile), ``api`` (the
recorded, redacted HTTP client on the base URL), ``namespace``, ``ledger`` (one test's view:
everything created through it is cleaned after the test), ``module_ledger`` /
``session_ledger`` (the same for module- and session-scoped fixtures: shared resources,
cleaned when their scope ends), ``cognito_user`` (a factory of namespaced, logged-in users of
a declared Cognito kind), ``fake`` (seeded Faker), and the
events fixtures ``event_stream`` / ``events`` (a per-worker subscription to the profile's
topic, and one test's assertions on it). Thin glue: no environment logic lives here, and no
kind of any particular service — those are an adapter's (the reference one is ``fixtures/``).

PYTEST_DONT_REWRITE: engine code, no test assertions (:mod:`harness.pytest_plugin.rewriting`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from harness.cleanup.journal import Resource
from harness.cleanup.ledger import CreateRefused, Ledger
from harness.clients.http import ApiClient
from harness.config import Profile
from harness.events.contracts import Contracts
from harness.events.quiescence import wait_for_quiescence
from harness.events.stream import EventStream, Expectations, SnsSqsTransport
from harness.kinds.queue import QueueKind, queue_name
from harness.namespace import TEST_DOMAIN, Namespace
from harness.pytest_plugin.attempts import ATTEMPT
from harness.reporting.events import render_timeline
from harness.run.session import HarnessSession
from harness.safety.protect import refusal

if TYPE_CHECKING:
    from faker import Faker


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest) -> HarnessSession:
    """The engine objects of this worker (profile, namespace, clients, ledger)."""
    from harness.pytest_plugin.plugin import get_state

    return get_state(request.config).harness_session()


@pytest.fixture(scope="session")
def env(harness_session: HarnessSession) -> Profile:
    """The target environment's profile (base URL, region, resource names, protection)."""
    return harness_session.profile


@pytest.fixture(scope="session")
def api(harness_session: HarnessSession) -> ApiClient:
    """A requests.Session on the target: ``api.get("/health")``; recorded and redacted."""
    return harness_session.api


@pytest.fixture(scope="session")
def namespace(harness_session: HarnessSession) -> Namespace:
    """This worker's namespace; ``namespace.email()`` and ``namespace.name()`` make names."""
    return harness_session.namespace


@dataclass
class TestLedger:
    """The ledger as one scope sees it — a test (``ledger``), a module (``module_ledger``) or
    the session (``session_ledger``): everything created here is cleaned when it ends."""

    __test__: ClassVar[bool] = False

    ledger: Ledger
    scope: str

    def create(
        self, kind: str, intent: Mapping[str, Any], fn: Callable[[], Mapping[str, Any]]
    ) -> Resource:
        """Journal ``intent`` (the ids known before the request), call ``fn`` (the request),
        journal the ids it returns; the :class:`Resource` (``.ids``: intent and answer
        merged). A refused create fails the test with one line, the service not called."""
        try:
            return self.ledger.create(kind, intent, fn, scope=self.scope)
        except CreateRefused as error:
            refused = str(error)
        pytest.fail(f"harness: {refused}", pytrace=False)  # outside: one line, no chain

    def put(self, kind: str, item: Mapping[str, Any]) -> Resource:
        """Write ``item`` straight into the kind's store, the way the service would (a
        declared DynamoDB kind: a conditional ``PutItem``), recorded like ``create``: its ids
        (key and marker, from the item) journaled and gated first, cleaned after the scope."""
        try:
            return self.ledger.put(kind, item, scope=self.scope)
        except CreateRefused as error:
            refused = str(error)
        pytest.fail(f"harness: {refused}", pytrace=False)

    @property
    def resources(self) -> list[Resource]:
        return self.ledger.live(self.scope)


@pytest.fixture
def ledger(request: pytest.FixtureRequest, harness_session: HarnessSession) -> Iterator[TestLedger]:
    """Records what the test creates; on teardown — pass, fail, setup error, ``-x`` or
    Ctrl-C — deletes it newest first (or keeps it with ``--keep-on-failure``)."""
    scope = request.node.nodeid
    view = TestLedger(harness_session.ledger, scope)
    yield view
    from harness.pytest_plugin.plugin import keeps_on_failure

    if keeps_on_failure(request.node):
        kept = harness_session.ledger.keep(scope)
        if kept:
            listing = ", ".join(r.describe() for r in kept)
            request.node.add_report_section(
                "teardown",
                "harness",
                f"kept {len(kept)} resource(s) of this failed test: {listing}; "
                f"`harness sweep` removes them later",
            )
        return
    _clean(harness_session, scope)


def _clean(harness_session: HarnessSession, scope: str) -> None:
    """Delete a scope's resources; a failure fails the teardown as a cleanup failure."""
    result = harness_session.ledger.cleanup(scope)
    if not result.ok:
        problems = "; ".join(f"{r.describe()}: {r.error}" for r in result.failed + result.refused)
        pytest.fail(f"harness cleanup failed: {harness_session.redactor.text(problems)}")


#: The journal's scope of a module's shared resources (``module:<module node id>``) and of
#: the session's.
MODULE_SCOPE_PREFIX = "module:"
SESSION_SCOPE = "session:ledger"


def _end_shared_scope(
    request: pytest.FixtureRequest,
    harness_session: HarnessSession,
    scope: str,
    fixture: str,
    within: pytest.Module | None,
) -> None:
    """A shared scope ended: its resources are cleaned — or, with ``--keep-on-failure``,
    kept when a test that used them (``fixture`` in its closure: directly or through a
    fixture built on it) failed on this worker; listed by the run's summary, left to the
    sweeper."""
    from harness.pytest_plugin.plugin import keeps_on_failure

    users = [
        item
        for item in request.session.items
        if fixture in getattr(item, "fixturenames", ())
        and (within is None or item.getparent(pytest.Module) is within)
    ]
    if any(keeps_on_failure(item) for item in users):
        harness_session.ledger.keep(scope)
        return
    _clean(harness_session, scope)


@pytest.fixture(scope="module")
def module_ledger(
    request: pytest.FixtureRequest, harness_session: HarnessSession
) -> Iterator[TestLedger]:
    """``ledger`` for module-scoped fixtures: what they create (one account read by every
    test of the module, say) is journaled before the request like everything else, shared
    by the module's tests and deleted after the last of them — or kept with
    ``--keep-on-failure`` when a test that used it failed."""
    module = request.node if isinstance(request.node, pytest.Module) else None
    scope = MODULE_SCOPE_PREFIX + request.node.nodeid
    yield TestLedger(harness_session.ledger, scope)
    _end_shared_scope(request, harness_session, scope, "module_ledger", module)


@pytest.fixture(scope="session")
def session_ledger(
    request: pytest.FixtureRequest, harness_session: HarnessSession
) -> Iterator[TestLedger]:
    """``ledger`` for session-scoped fixtures: what they create is shared by every test of
    this worker and deleted after its last test — or kept with ``--keep-on-failure`` when a
    test that used it failed."""
    yield TestLedger(harness_session.ledger, SESSION_SCOPE)
    _end_shared_scope(request, harness_session, SESSION_SCOPE, "session_ledger", None)


def cognito_users(harness_session: HarnessSession, ledger: TestLedger) -> Callable[..., Any]:
    """The ``cognito_user`` factory over ``ledger`` (its scope is the user's)."""
    import secrets

    from harness.kinds.cognito import CognitoKind, CognitoUser, create_user, log_in

    def make(
        kind: str = "",
        *,
        label: str = "",
        attributes: dict[str, str] | None = None,
        login: bool = True,
    ) -> CognitoUser:
        pools = {n: k for n, k in harness_session.kinds.items() if isinstance(k, CognitoKind)}
        if not kind and len(pools) == 1:
            kind = next(iter(pools))
        if kind not in pools:
            raise pytest.UsageError(
                f"cognito_user({kind!r}): the profile's Cognito kinds are "
                f'{", ".join(sorted(pools)) or "none"}; declare one (type = "cognito") or name it'
            )
        pool = pools[kind]
        ns = harness_session.namespace
        username = ns.name(label) if label else ns.name()
        wanted = dict(attributes or {})
        if pool.marker_attribute == "email":
            wanted.setdefault("email", f"{username}@{TEST_DOMAIN}")
            wanted.setdefault("email_verified", "true")
        elif pool.marker_attribute != "username":
            wanted.setdefault(pool.marker_attribute, username)
        # Cognito's default policy: upper and lower case, a digit and a symbol.
        password = f"{secrets.token_urlsafe(12)}Aa1!"
        harness_session.redactor.add_secret(password)
        intent = {"username": username}
        if pool.marker_attribute != "username":
            intent[pool.marker_attribute] = wanted[pool.marker_attribute]
        ledger.create(kind, intent, lambda: create_user(pool, username, password, wanted))
        user = CognitoUser(username, password, wanted)
        if login:
            tokens = log_in(pool, username, password)
            for value in tokens.values():
                harness_session.redactor.add_secret(value)
            user.access_token = tokens["access_token"]
            user.id_token = tokens["id_token"]
            user.refresh_token = tokens["refresh_token"]
        return user

    return make


@pytest.fixture
def cognito_user(harness_session: HarnessSession, ledger: TestLedger) -> Callable[..., Any]:
    """A factory: ``cognito_user()`` signs a namespaced user up in the profile's Cognito kind
    (``AdminCreateUser`` with no invitation, then a permanent password), recorded in the
    ledger before the call, and logs it in through the kind's ``client_id``
    (``InitiateAuth``): a :class:`~harness.kinds.cognito.CognitoUser` with its tokens
    (``user.auth`` is a ``BearerAuth`` of the access token, ``user.id_auth`` the ID token
    Chalice's Cognito authorizer reads). ``cognito_user("member", label="ann",
    attributes={...}, login=False)`` when the profile has several pools."""
    return cognito_users(harness_session, ledger)


@cache
def _faker() -> Faker:
    """Imported on first use, and past pytest's assertion rewriter: faker ships a pytest
    plugin, so pytest marks its whole package for assertion rewriting, which turns a 0.1 s
    import into 0.6 s (its large unicode tables re-parsed) in every xdist worker. Faker's own
    asserts are no test of ours, so the plain import is the right one.

    Choices are uniform (``use_weighting=False``, Faker's documented speed option): a name
    costs ~0.01 ms instead of ~0.1 ms, every test that makes a user pays it, and test data
    gains nothing from names drawn by their frequency in a census."""
    rewriters = [f for f in sys.meta_path if type(f).__name__ == "AssertionRewritingHook"]
    for finder in rewriters:
        sys.meta_path.remove(finder)
    try:
        from faker import Faker
    finally:
        sys.meta_path[0:0] = rewriters
    return Faker(use_weighting=False)


@pytest.fixture
def fake(request: pytest.FixtureRequest, harness_session: HarnessSession) -> Faker:
    """Faker seeded from the run seed and this test's id (``--harness-seed`` replays it)."""
    faker = _faker()
    attempt = request.node.stash.get(ATTEMPT, 1)  # a retried test's data is new each time
    faker.seed_instance(harness_session.test_seed(request.node.nodeid, attempt))
    return faker


STREAM_SCOPE = "session:events"
#: A test's events timeline rows (the ``events`` fixture's), shown as a table under the test.
EVENT_ROWS = pytest.StashKey[list[dict[str, Any]]]()


def contracts_directory(profile: Profile) -> str:
    """The profile's ``contracts_dir`` (relative to its profiles file), else
    ``<profiles folder>/contracts``."""
    configured = Path(profile.contracts_dir or "contracts")
    if not configured.is_absolute() and profile.config_dir:
        configured = Path(profile.config_dir) / configured
    return str(configured)


@pytest.fixture(scope="session")
def event_stream(harness_session: HarnessSession) -> Iterator[EventStream]:
    """This worker's subscription to the events topic, polled in the background: on the
    profile's ``events_bus`` — SNS (a namespaced queue subscribed to the topic, through the
    ledger) or Kafka (the topic read from its end by manual assignment: nothing to clean)."""
    profile = harness_session.profile
    contracts = Contracts.for_registry_or_directory(
        profile.schema_registry_url, contracts_directory(profile)
    )
    if profile.events_bus == "kafka":
        yield from _kafka_stream(harness_session, contracts)
        return
    if not profile.events_topic_arn:
        pytest.skip(f"profile [{profile.name}] names no events_topic_arn")
    if profile.is_protected:
        raise refusal(
            profile.name,
            "the events fixtures",
            "they subscribe a queue of their own to the topic and publish to it, and a "
            "protected profile gets neither",
        )
    kind = harness_session.kinds["queue"]
    assert isinstance(kind, QueueKind)
    name = queue_name(str(harness_session.namespace))
    resource = harness_session.ledger.create(
        "queue",
        {"name": name},
        lambda: kind.create(name, profile.events_topic_arn),
        scope=STREAM_SCOPE,
    )
    transport = SnsSqsTransport(
        harness_session.aws.sqs,
        harness_session.aws.sns,
        resource.ids["queue_url"],
        profile.events_topic_arn,
        profile.processor_queue_url,
    )
    stream = _start_stream(harness_session, transport, contracts)
    try:
        yield stream
    finally:
        # Not waiting out the poller's long poll (up to its wait time): it ends by itself
        # once its queue is deleted, and a run should not pay that second at every finish.
        stream.close(timeout=0.05)
        harness_session.ledger.cleanup(STREAM_SCOPE)


def _start_stream(
    harness_session: HarnessSession, transport: Any, contracts: Contracts
) -> EventStream:
    """This worker's background poller on ``transport``: keeps only what carries its
    namespace, refuses to publish on a protected profile."""
    profile = harness_session.profile
    return EventStream(
        transport,
        contracts,
        keep=str(harness_session.namespace),
        protected=profile.name if profile.is_protected else "",
    ).start()


def _kafka_stream(harness_session: HarnessSession, contracts: Contracts) -> Iterator[EventStream]:
    from harness.events.kafka import KafkaTransport, KafkaUnavailable, client_config

    profile = harness_session.profile
    if not profile.kafka_bootstrap_servers or not profile.kafka_topic:
        pytest.skip(f"profile [{profile.name}] names no kafka_bootstrap_servers / kafka_topic")
    try:
        transport = KafkaTransport(
            client_config(profile),
            profile.kafka_topic,
            str(harness_session.namespace),
            profile.schema_registry_url,
        )
    except KafkaUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    stream = _start_stream(harness_session, transport, contracts)
    try:
        yield stream
    finally:
        stream.close(timeout=2.0)  # its poll waits at most a second; then the consumer closes
        transport.close()


class TestEvents(Expectations):
    """``events`` as a test sees it (adds waiting for the service's consumer to go idle)."""

    __test__ = False

    consumer_queue_url: str = ""
    sqs: object = None

    profile: Profile | None = None

    def wait_until_processed(self, timeout: float = 20.0) -> None:
        """Block until the service's consumer has nothing pending (everything sent so far,
        including what this test delivered, has been processed) or fail: the processor
        queue drained on SNS/SQS, the service's consumer group at lag 0 on Kafka."""
        if self.profile is not None and self.profile.events_bus == "kafka":
            self._wait_for_group(self.profile, timeout)
            return
        if not self.consumer_queue_url:
            pytest.skip("the profile names no processor_queue_url")
        if not wait_for_quiescence(self.sqs, self.consumer_queue_url, timeout=timeout):
            raise AssertionError(f"the consumer's queue did not drain within {timeout:g}s")

    def _wait_for_group(self, profile: Profile, timeout: float) -> None:
        from harness.events.kafka import KafkaTransport, client_config, wait_for_group_caught_up

        if not profile.kafka_consumer_group:
            pytest.skip(f"profile [{profile.name}] names no kafka_consumer_group")
        deadline = time.monotonic() + timeout
        transport = self.stream.transport
        if isinstance(transport, KafkaTransport) and not transport.wait_for_delayed(timeout):
            raise AssertionError(f"delayed deliveries were not written within {timeout:g}s")
        group, topic = profile.kafka_consumer_group, profile.kafka_topic
        if not wait_for_group_caught_up(
            client_config(profile), topic, group, timeout=max(0.0, deadline - time.monotonic())
        ):
            raise AssertionError(
                f"consumer group {group} did not catch up on {topic} within {timeout:g}s"
            )


@pytest.fixture
def events(
    request: pytest.FixtureRequest,
    event_stream: EventStream,
    ledger: TestLedger,
    harness_session: HarnessSession,
) -> Iterator[TestEvents]:
    """``events.expect_event("user.created", where={"uid": user.uid})`` and friends."""

    def correlation() -> set[str]:
        """Every id value of what this test recorded (a uid, an email, a namespaced name):
        an event about any of them is this test's."""
        keys: set[str] = set()
        for resource in ledger.resources:
            keys.update(
                str(v) for v in resource.ids.values() if isinstance(v, str | int) and v != ""
            )
        return keys

    view = TestEvents(event_stream, correlation, harness_session.event_latency)
    view.trace = harness_session.trace
    view.consumer_queue_url = harness_session.profile.processor_queue_url
    view.sqs = harness_session.aws.sqs
    view.profile = harness_session.profile
    # Keys are read before the ledger tears down, so the check below still sees them.
    yield view
    timeline = view.timeline()
    for row in timeline:
        if row["action"] == "saw" and row["latency"] is not None:
            harness_session.event_seen.add(row["type"], row["latency"])
    if timeline:
        request.node.stash[EVENT_ROWS] = timeline
        request.node.add_report_section("teardown", "harness events", render_timeline(timeline))
    late = view.unreported_violations()
    if late:
        listing = "; ".join(e.violation for e in late)
        pytest.fail(f"events about this test's data broke their contracts: {listing}")
