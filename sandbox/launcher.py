"""The sandbox's lifecycle: start everything, print the exports, stop everything.

Owns: the order of start-up and the reverse order of shutdown, the dummy credentials given to
its own processes (never printed), the service's environment variables, where its functions'
log lines go (CloudWatch Logs on the emulator, a log group per function as Lambda writes
them: ``lambda_logs``), the bus the events travel on
(SNS/SQS, or with ``--bus kafka`` a real Kafka broker and a schema registry, see
``kafka/``), its pre-provisioned smoke accounts (signed up once the service serves, their
credentials in the emulator's Secrets Manager: ``smoke_accounts.py``), the export lines on
stdout (``HARNESS_*``, then the ready marker, then
nothing more on stdout: logs go to stderr or ``--log-file``), and the progress lines of a
start on stderr (``sandbox progress: [SECONDS s] WHAT``, the last one ``ready in …``: what
a caller may relay to its user while it waits; the ``sandbox.progress`` logger). Must never
leave a process or server running once it returns, whether start-up failed half-way, a
signal arrived, or the service crashed.
"""

from __future__ import annotations

import http.client
import importlib
import logging
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

import boto3
from botocore.config import Config

from .emulator import EmulatorError, EmulatorProcess
from .lambda_logs import LambdaLogs, as_function, function_name
from .provision import Provisioned, ResourceNames, provision
from .smoke_accounts import ProvisionError, provision_accounts

log = logging.getLogger("sandbox")
#: Steps of a start a user waits for; always on stderr (also in ``--log-file``), see
#: ``configure_logging``. Messages end with "…" while the step runs.
progress = logging.getLogger("sandbox.progress")
PROGRESS_PREFIX = "sandbox progress: "

SERVICE_DIR = Path(__file__).resolve().parent / "service"
READY_MARKER = "# sandbox ready: pid {pid}; Ctrl-C or SIGTERM stops it"
# The emulator accepts any credentials; these keep real ones away from it.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
}
EXPORT_NAMES = (
    "HARNESS_BASE_URL",
    "HARNESS_AWS_ENDPOINT_URL",
    "HARNESS_AWS_REGION",
    "HARNESS_ENVIRONMENT",
    "HARNESS_USERS_TABLE",
    "HARNESS_TOKENS_TABLE",
    "HARNESS_NOTIFICATIONS_TABLE",
    "HARNESS_EVENTS_TOPIC_ARN",
    "HARNESS_PROCESSOR_QUEUE_URL",
    "HARNESS_CONTRACTS_DIR",
    "HARNESS_LEASE_TABLE",
    # The bus: always printed, empty where they do not apply (sns has no Kafka settings; on
    # kafka the SNS topic and SQS queue above are empty: the service does not use them).
    "HARNESS_EVENTS_BUS",
    "HARNESS_KAFKA_BOOTSTRAP_SERVERS",
    "HARNESS_KAFKA_TOPIC",
    "HARNESS_KAFKA_CONSUMER_GROUP",
    "HARNESS_SCHEMA_REGISTRY_URL",
    # The service's functions' log groups (CloudWatch Logs on the emulator), comma-separated.
    "HARNESS_LOG_GROUPS",
)
BUSES = ("sns", "kafka")
# The name of the service's Kafka handler (``@app.lambda_function``) the processor invokes.
KAFKA_HANDLER = "process_user_events_kafka"
# The name of the service's SQS handler (``@app.on_sqs_message``): its function's log group.
SQS_HANDLER = "process_user_events"


class _QuietService(logging.Filter):
    """``--quiet``: the console shows no per-request lines of the service (its log groups
    still get every line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("service") and record.levelno < logging.WARNING)


class StartError(RuntimeError):
    """The sandbox could not start; the message is for the user."""


class Stop(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM (a BaseException so nothing swallows it)."""


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 0
    aws_port: int = 0
    region: str = "us-east-1"
    environment_name: str = "sandbox"
    names: ResourceNames = field(default_factory=ResourceNames)
    quiet: bool = False
    log_file: str | None = None
    bus: str = "sns"
    kafka_port: int = 0
    kafka_topic: str = "sandbox-user-events"
    kafka_partitions: int = 3
    kafka_group: str = "sandbox-notifications-processor"
    kafka_heap_mb: int = 256
    schema_registry: bool = True
    #: Accounts signed up at start for smoke runs (credentials in Secrets Manager only).
    smoke_accounts: int = 4
    #: Start a PostgreSQL server and export its database's URL under each of these names.
    postgres_variables: tuple[str, ...] = ()


def export_lines(values: dict[str, str]) -> list[str]:
    """The fixed exports, then any a profile asked for (a PostgreSQL URL's variable)."""
    names = [*EXPORT_NAMES, *(name for name in values if name not in EXPORT_NAMES)]
    return [f"export {name}={shlex.quote(values[name])}" for name in names]


def _check_health(host: str, port: int, timeout: float = 3.0) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise StartError(f"service health check answered {resp.status}")
    finally:
        conn.close()


class Sandbox:
    """Everything one sandbox runs. ``start()`` then, always, ``stop()``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.emulator: EmulatorProcess | None = None
        self.gateway: Any = None
        self.processor: Any = None
        self.provisioned: Provisioned | None = None
        self.app_module: ModuleType | None = None
        self.broker: Any = None
        self.registry: Any = None
        self.lambda_logs: Any = None
        self.postgres: Any = None

    # -- the Kafka bus -------------------------------------------------------------

    def _spawn_kafka(self) -> None:
        """Spawn the registry and the broker (each boots while the emulator starts)."""
        opts = self.options
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            raise StartError(
                "--bus kafka needs the Kafka client: pip install 'env-harness[sandbox]' "
                "(or confluent-kafka)"
            ) from None
        from .kafka import jars
        from .kafka.broker import KafkaBroker
        from .kafka.jvm import JavaError
        from .kafka.registry import SchemaRegistry

        try:
            classpath = jars.broker_classpath()
            if opts.schema_registry:
                runner = jars.registry_jar()
                progress.info("starting the schema registry (a JVM)…")
                self.registry = SchemaRegistry(runner, opts.host)
                self.registry.start()
            progress.info("starting the Kafka broker (a JVM)…")
            self.broker = KafkaBroker(
                classpath,
                opts.host,
                opts.kafka_heap_mb,
                opts.kafka_port,
                archives=jars.archive_dir(classpath),
            )
            self.broker.start()
        except JavaError as exc:
            raise StartError(str(exc)) from None

    def _finish_kafka(self, module: ModuleType) -> None:
        """Wait for the broker, create the topic, start the processor (it joins its group
        while the registry finishes booting), register the schemas."""
        from .kafka.jvm import JavaError
        from .kafka.processor import KafkaProcessor, find_lambda_handler

        opts = self.options
        try:
            progress.info("waiting for the Kafka broker…")
            self.broker.wait_ready()
            warm_up = threading.Thread(target=self.broker.warm_up_producer_ids, daemon=True)
            warm_up.start()
            progress.info("creating the topic %s, starting its consumer…", opts.kafka_topic)
            self.broker.create_topic(opts.kafka_topic, opts.kafka_partitions)
            self.processor = KafkaProcessor(
                self.broker.bootstrap_servers,
                opts.kafka_topic,
                opts.kafka_group,
                as_function(
                    self._function(module, KAFKA_HANDLER),
                    find_lambda_handler(module, module.app, KAFKA_HANDLER),
                ),
            )
            self.processor.start()
            if self.registry is not None:
                progress.info("waiting for the schema registry…")
                self.registry.wait_ready()
                progress.info("registering the event schemas…")
                self.registry.register(SERVICE_DIR / "chalicelib" / "contracts")
            warm_up.join(30.0)
        except JavaError as exc:
            raise StartError(str(exc)) from None

    # -- start ---------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        opts = self.options
        os.environ.update(DUMMY_CREDENTIALS)
        os.environ["AWS_DEFAULT_REGION"] = opts.region
        started = time.monotonic()
        kafka = opts.bus == "kafka"
        if kafka:
            self._spawn_kafka()

        progress.info("starting the AWS emulator…")
        self.emulator = EmulatorProcess(opts.host, opts.aws_port, dict(os.environ))
        try:
            self.emulator.start()
        except EmulatorError as exc:
            raise StartError(
                f"cannot start the AWS emulator on {opts.host}:{opts.aws_port}: {exc}"
            ) from None
        log.info("emulator pid %s on %s", self.emulator.pid, self.emulator.url)

        session = boto3.session.Session(region_name=opts.region)
        progress.info("creating the tables, topic and queue…")
        self.provisioned = provision(session, self.emulator.url, opts.names)

        names = opts.names
        os.environ.update(
            {
                "ENVIRONMENT_NAME": opts.environment_name,
                "USERS_TABLE_NAME": names.users_table,
                "TOKEN_TABLE_NAME": names.tokens_table,
                "NOTIFICATIONS_TABLE_NAME": names.notifications_table,
                "EVENTS_TOPIC_ARN": self.provisioned.events_topic_arn,
                "NOTIFICATIONS_QUEUE_NAME": names.processor_queue,
                "ENDPOINT_URL": self.emulator.url,
                # Local only: a cheaper scrypt (~2 ms instead of ~50 ms per sign-up and login);
                # deployed stages keep the interactive-login default.
                "PASSWORD_SCRYPT_N": os.environ.get("PASSWORD_SCRYPT_N") or str(2**10),
                "EVENTS_BUS": opts.bus,
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers if kafka else "",
                "KAFKA_TOPIC": opts.kafka_topic if kafka else "",
                "SCHEMA_REGISTRY_URL": self.registry.url if self.registry else "",
            }
        )
        progress.info("starting the service…")
        module = self._import_service()
        self._ship_logs(module, session, SQS_HANDLER if not kafka else KAFKA_HANDLER)
        if kafka:
            self._finish_kafka(module)

        from .gateway import Gateway

        try:
            self.gateway = Gateway(module.app, opts.host, opts.port)
        except OSError as exc:
            raise StartError(
                f"cannot serve the service on {opts.host}:{opts.port}: {exc.strerror}"
            ) from None
        self.gateway.start()

        if kafka:
            # Ready means consuming: a test's first event does not wait for a rebalance.
            progress.info("waiting for the consumer's partitions…")
            if not self.processor.wait_assigned(30.0):
                raise StartError(
                    f"the Kafka processor was given no partitions of {opts.kafka_topic} within 30s"
                )
        else:
            self._start_sqs_processor(module, session)

        if opts.smoke_accounts:
            progress.info("signing up %d smoke account(s)…", opts.smoke_accounts)
            secretsmanager = session.client("secretsmanager", endpoint_url=self.emulator.url)
            try:
                provision_accounts(
                    self.gateway.url, secretsmanager, names.smoke_accounts, opts.smoke_accounts
                )
            except ProvisionError as exc:
                raise StartError(str(exc)) from None

        _check_health(opts.host, self.gateway.port)
        log.info(
            "sandbox started in %.2fs: service %s", time.monotonic() - started, self.gateway.url
        )
        database = self._start_postgres()
        progress.info("ready in %.1f s", time.monotonic() - started)
        provisioned = self.provisioned
        return {
            **dict.fromkeys(opts.postgres_variables, database),
            "HARNESS_BASE_URL": self.gateway.url,
            "HARNESS_AWS_ENDPOINT_URL": self.emulator.url,
            "HARNESS_AWS_REGION": opts.region,
            "HARNESS_ENVIRONMENT": opts.environment_name,
            "HARNESS_USERS_TABLE": names.users_table,
            "HARNESS_TOKENS_TABLE": names.tokens_table,
            "HARNESS_NOTIFICATIONS_TABLE": names.notifications_table,
            "HARNESS_EVENTS_TOPIC_ARN": "" if kafka else provisioned.events_topic_arn,
            "HARNESS_PROCESSOR_QUEUE_URL": "" if kafka else provisioned.processor_queue_url,
            # The service's event contracts, shipped with it: the harness validates against them.
            "HARNESS_CONTRACTS_DIR": str(SERVICE_DIR / "chalicelib" / "contracts"),
            "HARNESS_LEASE_TABLE": names.test_leases_table,
            "HARNESS_EVENTS_BUS": opts.bus,
            "HARNESS_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers if kafka else "",
            "HARNESS_KAFKA_TOPIC": opts.kafka_topic if kafka else "",
            "HARNESS_KAFKA_CONSUMER_GROUP": opts.kafka_group if kafka else "",
            "HARNESS_SCHEMA_REGISTRY_URL": self.registry.url if self.registry else "",
            "HARNESS_LOG_GROUPS": ",".join(self.lambda_logs.log_groups),
        }

    def _function(self, module: ModuleType, handler: str = "") -> str:
        """A function's name as ``chalice deploy --stage <environment name>`` gives it."""
        return function_name(module.app.app_name, self.options.environment_name, handler)

    def _ship_logs(self, module: ModuleType, session: Any, processor: str) -> None:
        """The service's lines, in its own format, to its functions' log groups."""
        assert self.emulator is not None
        formatter = importlib.import_module("chalicelib.logs").JsonFormatter()
        shipping = LambdaLogs(
            session.client("logs", endpoint_url=self.emulator.url),
            [self._function(module, processor)],
            default=self._function(module),
        )
        shipping.setFormatter(formatter)
        shipping.start()
        self.lambda_logs = shipping
        for name in ("service", module.app.log.name):
            logging.getLogger(name).addHandler(shipping)

    def _start_postgres(self) -> str:
        """A real PostgreSQL server and a database ``sandbox`` when a profile needs one (its
        SQL kinds' URL variables); the database's URL, or "" when none was asked for."""
        if not self.options.postgres_variables:
            return ""
        from .postgres import PostgresError, PostgresServer

        progress.info("starting PostgreSQL…")
        self.postgres = PostgresServer(self.options.host)
        try:
            self.postgres.start()
            return str(self.postgres.create_database("sandbox"))
        except PostgresError as exc:
            raise StartError(str(exc)) from None

    def _start_sqs_processor(self, module: ModuleType, session: Any) -> None:
        from .processor import Processor, find_sqs_handler

        opts = self.options
        assert self.emulator is not None and self.provisioned is not None
        names = opts.names
        handler, batch_size = find_sqs_handler(module, module.app, names.processor_queue)
        # The poll loop is the retry (it logs and polls again), so botocore need not retry:
        # at shutdown the last poll then ends at once instead of backing off.
        sqs = session.client(
            "sqs",
            endpoint_url=self.emulator.url,
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        self.processor = Processor(
            sqs,
            self.provisioned.processor_queue_url,
            self.provisioned.processor_queue_arn,
            opts.region,
            as_function(self._function(module, SQS_HANDLER), handler),
            batch_size,
        )
        self.processor.start()

    def _import_service(self) -> ModuleType:
        if str(SERVICE_DIR) not in sys.path:
            sys.path.insert(0, str(SERVICE_DIR))
        module = importlib.import_module("app")
        importlib.import_module("chalicelib.settings").reset()
        # Chalice sends app.log to stdout; stdout carries only the exports here.
        module.app.log.handlers.clear()
        module.app.log.propagate = True
        logging.getLogger("service").setLevel(logging.INFO)
        if self.options.quiet:  # the console only: the log groups still get every line
            for handler in logging.getLogger().handlers:
                handler.addFilter(_QuietService())
        self.app_module = module
        return module

    # -- stop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop what was started, newest first; safe to call at any point, and twice.

        SNS/SQS: the processor is told first but joined last: its long poll ends at once when
        the emulator goes, instead of running out its wait. Kafka: the processor and then the
        gateway are stopped first, and the service's producer let go, while the broker is
        still there to hear them leave (the consumer leaves its group at once; a producer
        whose broker has gone would try to reconnect until the process ends). The JVMs and
        the emulator are then sent SIGTERM together and each is waited for (killed after a
        deadline)."""
        kafka = self.broker is not None or self.registry is not None
        if self.lambda_logs is not None:  # what the service logged, while the emulator is up
            self.lambda_logs.stop()
            app = getattr(self.app_module, "app", None)
            for name in ("service", getattr(app, "log", log).name):
                logging.getLogger(name).removeHandler(self.lambda_logs)
            self.lambda_logs = None
        if self.processor is not None:
            self.processor.request_stop()
        if kafka:
            self._stop_part("processor", self.processor)
            self._stop_part("gateway", self.gateway)
            self.processor = self.gateway = None
            if self.app_module is not None:
                importlib.import_module("chalicelib.settings").reset()
            for jvm in (self.broker, self.registry):
                if jvm is not None:
                    jvm.request_stop()
        if self.emulator is not None:
            self.emulator.request_stop()  # it winds down while the gateway does
        for name, part in (
            ("gateway", self.gateway),
            ("emulator", self.emulator),
            ("processor", self.processor),
            ("kafka broker", self.broker),
            ("schema registry", self.registry),
            ("PostgreSQL server", self.postgres),
        ):
            self._stop_part(name, part)
        self.processor = self.gateway = self.postgres = None
        self.emulator = None
        self.broker = self.registry = None

    @staticmethod
    def _stop_part(name: str, part: Any) -> None:
        if part is None:
            return
        started = time.monotonic()
        try:
            part.stop()
        except Exception:
            log.exception("stopping the %s failed", name)
        log.info("stopped the %s in %.2fs", name, time.monotonic() - started)


class ProgressFormatter(logging.Formatter):
    """``sandbox progress: [12.3 s] starting the Kafka broker…``: seconds since ``started``."""

    def __init__(self, started: float) -> None:
        super().__init__()
        self.started = started

    def format(self, record: logging.LogRecord) -> str:
        elapsed = max(0.0, record.created - self.started)
        return f"{PROGRESS_PREFIX}[{elapsed:.1f} s] {record.getMessage()}"


def configure_logging(options: Options, started: float | None = None) -> None:
    """Logs to stderr (or ``--log-file``); progress lines always to stderr, timed from
    ``started`` (``time.time()``, default now), and to the log file as well when there is one."""
    # The log file stays open for the life of the process.
    stream: TextIO = (
        open(options.log_file, "a", encoding="utf-8")  # noqa: SIM115
        if options.log_file
        else sys.stderr
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    shown = logging.StreamHandler(sys.stderr)
    shown.setFormatter(ProgressFormatter(time.time() if started is None else started))
    progress.handlers[:] = [shown, handler] if options.log_file else [shown]
    progress.propagate = False
    # boto and moto chatter is not the sandbox's story.
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(options: Options, out: TextIO = sys.stdout) -> int:
    """Start, print exports and the ready marker, serve until a signal, stop. Exit status."""
    configure_logging(options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Further signals while stopping are ignored: the stop must finish.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(options)
    try:
        try:
            values = sandbox.start()
        except StartError as exc:
            print(f"sandbox: {exc}", file=sys.stderr, flush=True)
            return 1
        except Exception as exc:
            log.debug("start failed", exc_info=True)
            print(
                f"sandbox: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
            )
            return 1
        for line in export_lines(values):
            out.write(line + "\n")
        out.write(READY_MARKER.format(pid=os.getpid()) + "\n")
        out.flush()
        while True:
            time.sleep(3600)
    except Stop as stop:
        log.info("stopping on %s", stop)
        return 0
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
