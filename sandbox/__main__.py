"""``python -m harness.sandbox``: run the reference service locally (what ``harness env up``
execs).

Owns only the command line: parse options, hand them to ``launcher.run``. A bad option is one
line (``PROG: MESSAGE (see `PROG --help`)``) and exit 2, before anything starts. A front
command that execs this one names itself in the help and in that line with
``$SANDBOX_PROG`` (``harness env up`` does), and may give the exit status of a bad option
with ``$SANDBOX_USAGE_STATUS``; both are read once and removed from the environment, so the
processes the sandbox starts never see them. A front command's help also lists its own
``--detach`` (``harness env up`` offers it and takes it off the command line before it execs
this one). ``--check-options`` parses the options and exits 0 without starting anything, so a
front command can ask whether a command line is good before it compares it with a running
sandbox's. Must never start anything itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from .launcher import BUSES, EXPORT_NAMES, Options, run
from .provision import ResourceNames

#: argparse's own status for a bad command line, unless the front command asks for another.
USAGE_STATUS = 2


class _Parser(argparse.ArgumentParser):
    """A bad command line is one line naming the fix, not a usage block."""

    usage_status = USAGE_STATUS

    def error(self, message: str) -> NoReturn:
        self.exit(self.usage_status, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a port: give 1-65535, or 0 for a free one"
        )
    return value


def _at_least(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: give at least {least}")
        return value

    return parse


def _front() -> tuple[str, int, bool]:
    """The program name and the bad-option status: this package's own (``python -m
    harness.sandbox`` installed, ``python -m sandbox`` in the repository), or the front
    command's; and whether a front command named itself."""
    front = os.environ.pop("SANDBOX_PROG", "")
    prog = front or f"python -m {__package__ or 'sandbox'}"
    try:
        status = int(os.environ.pop("SANDBOX_USAGE_STATUS", "") or USAGE_STATUS)
    except ValueError:
        status = USAGE_STATUS
    return prog, status, bool(front)


def parse_args(argv: list[str] | None = None) -> Options:
    defaults = ResourceNames()
    prog, status, fronted = _front()
    parser = _Parser(
        prog=prog,
        # `--bu kafka` would be `--bus kafka`: a caller comparing two command lines (a second
        # `harness env up --detach`) could not tell; every option is spelt out.
        allow_abbrev=False,
        description=(
            "Start the reference service locally: moto (DynamoDB, SNS, SQS) in server mode, "
            "the tables, topic, queue and subscription, the event processor, and the Chalice "
            "app over HTTP, all on loopback (with --bus kafka: a real Apache Kafka broker and "
            "a schema registry instead of SNS/SQS for the events; they need java, and mvn "
            "to fetch their jars once). The first stdout lines are shell exports ("
            + ", ".join(EXPORT_NAMES)
            + "), then '# sandbox ready: pid PID; ...'; nothing else is written to stdout. "
            "While it starts, progress lines ('sandbox progress: [SECONDS s] WHAT') go to "
            "stderr, and logs go there too (or to --log-file). Runs until SIGINT (Ctrl-C) or "
            "SIGTERM, then stops everything it started."
        ),
        epilog="In the foreground it serves until Ctrl-C. To get its variables into your shell "
        'and keep it running in the background, use `eval "$(harness env up --detach)"` '
        '(stop it with `eval "$(harness env down)"`), or let `harness run` start one.',
    )
    if fronted:
        parser.add_argument(
            "--detach",
            action="store_true",
            help="start it in the background: print the exports once it is ready and return "
            '(stop it with `eval "$(harness env down)"`)',
        )
    parser.add_argument("--check-options", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument(
        "--port", type=_port, default=0, help="port of the service (0 = a free port, the default)"
    )
    parser.add_argument(
        "--aws-port",
        type=_port,
        default=0,
        help="port of the AWS emulator (0 = a free port, the default)",
    )
    parser.add_argument("--region", default="us-east-1", help="AWS region (default us-east-1)")
    parser.add_argument(
        "--environment-name",
        default="sandbox",
        help="name GET /health answers as 'environment' (default sandbox)",
    )
    parser.add_argument("--users-table", default=defaults.users_table)
    parser.add_argument("--tokens-table", default=defaults.tokens_table)
    parser.add_argument("--notifications-table", default=defaults.notifications_table)
    parser.add_argument("--events-topic", default=defaults.events_topic)
    parser.add_argument("--processor-queue", default=defaults.processor_queue)
    parser.add_argument(
        "--bus",
        choices=BUSES,
        default="sns",
        help="where the service publishes its events: sns (SNS topic -> SQS queue, the "
        "default) or kafka (a local Apache Kafka broker in KRaft mode)",
    )
    parser.add_argument(
        "--kafka-port", type=_port, default=0, help="broker port (0 = a free port, the default)"
    )
    parser.add_argument(
        "--kafka-topic", default="sandbox-user-events", help="topic of the user events"
    )
    parser.add_argument(
        "--kafka-partitions",
        type=_at_least(1),
        default=3,
        help="partitions of that topic (default 3)",
    )
    parser.add_argument(
        "--kafka-consumer-group",
        default="sandbox-notifications-processor",
        help="consumer group of the notifications processor",
    )
    parser.add_argument(
        "--kafka-heap-mb",
        type=_at_least(64),
        default=256,
        help="the broker's maximum heap (default 256)",
    )
    parser.add_argument(
        "--no-schema-registry",
        action="store_true",
        help="with --bus kafka: no schema registry (plain JSON values; starts faster)",
    )
    parser.add_argument(
        "--smoke-accounts",
        type=_at_least(0),
        default=4,
        metavar="N",
        help="accounts signed up at start for smoke runs, their credentials in the "
        "emulator's Secrets Manager as sandbox/smoke-accounts/1..N (default 4; 0: none)",
    )
    parser.add_argument(
        "--postgres-url-variable",
        action="append",
        default=[],
        metavar="NAME",
        help="start a PostgreSQL server (the machine's own packages) with a database for the "
        "tests, and export its URL as NAME (repeatable: every name gets the same URL)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    parser.add_argument("--log-file", help="append logs to this file instead of stderr")
    parser.usage_status = status
    args = parser.parse_args(argv)
    if args.check_options:
        sys.exit(0)
    return Options(
        host=args.host,
        port=args.port,
        aws_port=args.aws_port,
        region=args.region,
        environment_name=args.environment_name,
        names=ResourceNames(
            users_table=args.users_table,
            tokens_table=args.tokens_table,
            notifications_table=args.notifications_table,
            events_topic=args.events_topic,
            processor_queue=args.processor_queue,
        ),
        quiet=args.quiet,
        log_file=args.log_file,
        bus=args.bus,
        kafka_port=args.kafka_port,
        kafka_topic=args.kafka_topic,
        kafka_partitions=args.kafka_partitions,
        kafka_group=args.kafka_consumer_group,
        kafka_heap_mb=args.kafka_heap_mb,
        schema_registry=not args.no_schema_registry,
        smoke_accounts=args.smoke_accounts,
        postgres_variables=tuple(args.postgres_url_variable),
    )


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
