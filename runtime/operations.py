"""What the on-call engineer runs (docs/operations.md):

    python -m runtime.operations --stage prod status [--json]
    python -m runtime.operations --stage prod quarantine [--file KEY]
    python -m runtime.operations --stage prod dlq
    python -m runtime.operations --stage prod skip --table T --packet N --reason "..." --by NAME [--dry-run] [--yes]
    python -m runtime.operations --stage prod late --table T --packet N [--dry-run] [--invoke]
    python -m runtime.operations --stage prod redrive [--dry-run] [--yes]
    python -m runtime.operations --stage prod replay [--dry-run] [--invoke]

`--stage` (or `--stack`) reads the buckets, the packet-id prefix, the function and the
dead-letter queue from the deployed stack's outputs; without it they come from the
environment (INGESTION_BUCKET, PROCESSED_BUCKET, SSM_PREFIX, PROCESSING_FUNCTION,
DEAD_LETTER_QUEUE_URL), as in a local sandbox. Every refusal is one line and exit 2;
AWS unreachable or refusing is one line and exit 1; nothing is changed by either.

This module is the composition: the AWS clients are made here and nowhere else.
"""

from __future__ import annotations

import warnings

# pandera warns about the installed typeguard at import, on every command; it concerns
# pandera's own type checks of generic collections, which this project does not use.
warnings.filterwarnings("ignore", message="Using typeguard < 3", category=UserWarning)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from dataclasses import asdict  # noqa: E402

from runtime.operations_args import ArgumentRefused, one_line  # noqa: E402
from runtime.operations_core import (  # noqa: E402,F401  (re-exported: the commands' functions)
    OperationRefused,
    dlq_messages,
    late,
    open_waits,
    quarantine_rows,
    quarantine_summary,
    redrive,
    replay,
    skip,
    status,
)
from runtime.operations_where import NO_CREDENTIALS, NO_REGION, Location, SettingMissing, locate  # noqa: E402

EXIT_REFUSED = 2  # bad argument, missing setting, an invariant: nothing changed
EXIT_AWS = 1  # AWS unreachable or refusing: nothing changed, try again when fixed


class Parser(argparse.ArgumentParser):
    """argparse, with every usage error as one bounded line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # Our own checks name the option already: "argument --table: --table '...'" says it twice.
        message = re.sub(r"^argument (--[a-z-]+): (?=\1 )", "", message)
        prog = self.prog.replace("python -m runtime.", "")
        print(f"{prog}: refused: {one_line(message)} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_REFUSED)


def build_parser() -> argparse.ArgumentParser:
    from runtime import operations_args as a

    parser = Parser(prog="python -m runtime.operations", description=__doc__.split("\n\n")[0].rstrip(":"),
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stage", type=_checked(a.stage), help="read everything from stack TotesysProcessing-STAGE")
    where.add_argument("--stack", type=_checked(a.stack_name), help="read everything from this stack's outputs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    cmd = commands.add_parser("status", help="ids, pending packets and what blocks them, open gaps and waits", description="ids, pending packets and what blocks them, open gaps and waits")
    cmd.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    cmd = commands.add_parser("quarantine", help="quarantined rows by table: counts, reasons, open waits", description="quarantined rows by table: counts, reasons, open waits")
    cmd.add_argument("--file", type=_checked(a.file_key), help="show this quarantine file's rows")
    cmd.add_argument("--limit", type=_checked(a.limit), default=20, help="rows shown with --file (default 20)")
    cmd.add_argument("--json", action="store_true", help="as JSON, for scripts")
    cmd = commands.add_parser("dlq", help="list the dead-letter queue: each event and why it failed", description="list the dead-letter queue: each event and why it failed")
    cmd.add_argument("--json", action="store_true", help="as JSON, for scripts")
    _with_location(cmd, a)

    cmd = commands.add_parser("skip", help="commit the packet holding its table back as passed over, for good", description="commit the packet holding its table back as passed over, for good")
    cmd.add_argument("--table", type=_checked(a.source_table), required=True, help="its source table")
    cmd.add_argument("--packet", type=_checked(a.packet_id), required=True, help="its packet id")
    cmd.add_argument("--reason", type=_checked(a.recorded_text("--reason")), required=True,
                     help="why it is skipped (recorded in its commit record)")
    cmd.add_argument("--by", type=_checked(a.recorded_text("--by")), required=True, help="who decided (recorded)")
    _changes(cmd, confirm=True)
    _invokes(cmd, a)
    cmd = commands.add_parser("late", help="process a passed-over packet whose objects have arrived", description="process a passed-over packet whose objects have arrived")
    cmd.add_argument("--table", type=_checked(a.source_table), required=True, help="its source table")
    cmd.add_argument("--packet", type=_checked(a.packet_id), required=True, help="its packet id")
    _changes(cmd, confirm=False)
    _invokes(cmd, a)
    cmd = commands.add_parser("redrive", help="re-invoke the events in the dead-letter queue, oldest first", description="re-invoke the events in the dead-letter queue, oldest first")
    _changes(cmd, confirm=True)
    _with_location(cmd, a)
    cmd.add_argument("--function", type=_checked(a.function_name), help="the function (default: the stack's)")
    cmd = commands.add_parser("replay", help="offer the open fact quarantine to today's dimensions again", description="offer the open fact quarantine to today's dimensions again")
    _changes(cmd, confirm=False)
    _invokes(cmd, a)
    return parser


def _checked(check: Callable[[str], object]) -> Callable[[str], object]:
    def wrapped(text: str) -> object:
        try:
            return check(text)
        except ArgumentRefused as exc:
            # argparse shows ArgumentTypeError's message alone, without the raw value.
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = check.__name__
    return wrapped


def _changes(cmd: argparse.ArgumentParser, *, confirm: bool) -> None:
    cmd.add_argument("--dry-run", action="store_true", help="run every check, show what it would do, change nothing")
    if confirm:
        cmd.add_argument("--yes", action="store_true", help="do it without asking (for scripts)")


def _invokes(cmd: argparse.ArgumentParser, a) -> None:
    cmd.add_argument("--invoke", action="store_true", help="invoke the function now to run it (else: the next invocation)")
    cmd.add_argument("--function", type=_checked(a.function_name), help="the function (default: the stack's)")


def _with_location(cmd: argparse.ArgumentParser, a) -> None:
    cmd.add_argument("--queue-url", type=_checked(a.queue_url), help="the dead-letter queue (default: the stack's)")


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None, session=None,
         confirm: Callable[[str], bool] | None = None) -> int:
    """Run one command; returns the exit code. `session` (a boto3 Session) and `confirm`
    are for tests; by default the ordinary credentials and a question on the terminal."""
    from runtime.observability import logger
    from runtime.operations_where import AwsFailure, explain

    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    prog = f"operations {args.command}"
    # The runtime's JSON log lines go to stderr while the command runs: stdout is its answer.
    log_handler = logger.registered_handler
    log_stream, log_handler.stream = log_handler.stream, sys.stderr
    try:
        clients = Clients(session, env)
        where = locate(args, env, clients)
        return _run(args, where, clients, confirm or _ask)
    except (ArgumentRefused, OperationRefused, SettingMissing) as exc:
        print(f"{prog}: refused: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_REFUSED
    except AwsFailure as exc:
        print(f"{prog}: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - anything from AWS, told for what it is
        failure = explain(exc)
        if failure is None:
            raise
        print(f"{prog}: {one_line(str(failure))}", file=sys.stderr)
        return failure.exit_code
    finally:
        log_handler.stream = log_stream


def _run(args, where: Location, clients, confirm: Callable[[str], bool]) -> int:
    from runtime import operations_show as show

    command = args.command
    if command == "dlq":
        messages = dlq_messages(clients.sqs(), where.need("dead_letter_queue_url"))
        _print(json.dumps(messages, indent=1) if args.json else show.dlq_text(messages))
        return 0
    if command == "redrive":
        queue = where.need("dead_letter_queue_url")
        if args.dry_run:
            events = redrive(clients.sqs(), queue, _no_invoke, dry_run=True)
            _print(json.dumps({"dry_run": True, "would_redrive": events}, indent=1))
            return 0
        function = where.need("function")
        if not args.yes and not confirm(f"re-invoke {function} with every event in {queue}?"):
            raise OperationRefused("not confirmed: nothing redriven (pass --yes in scripts)")
        done = redrive(clients.sqs(), queue, clients.invoker(function))
        _print(json.dumps({"redriven": done}, indent=1))
        return 0

    store = clients.processed(where.need("processed_bucket"))
    if getattr(args, "invoke", False):
        where.need("function")  # refused before anything changes, not after
    if command == "status":
        report = status(store, clients.packet_ids(), where.need("ssm_prefix"))
        last_error = _last_error(clients, where) if report["blocking"] else None
        report["last_error"] = last_error
        _print(json.dumps(report, indent=1) if args.json else show.status_text(report, where.description, last_error))
        return 0
    if command == "quarantine":
        if args.file:
            rows = quarantine_rows(store, args.file, args.limit)
            _print(json.dumps(rows, indent=1) if args.json else show.rows_text(args.file, rows))
        else:
            summary, waits = quarantine_summary(store), open_waits(store)
            _print(json.dumps({"tables": summary, "open_waits": waits}, indent=1) if args.json
                   else show.quarantine_text(summary, waits))
        return 0
    if command == "skip":
        ids, prefix = clients.packet_ids(), where.need("ssm_prefix")
        plan = skip(store, ids, prefix, args.table, args.packet, args.reason, args.by, dry_run=True)
        if args.dry_run:
            _print(json.dumps({"dry_run": True, **plan.to_dict()}, indent=1))
            return 0
        if not args.yes and not confirm(f"commit {args.table}:{args.packet} as skipped, for good, "
                                        f"in {where.description}?"):
            raise OperationRefused("not confirmed: nothing skipped (pass --yes in scripts)")
        record = skip(store, ids, prefix, args.table, args.packet, args.reason, args.by)
        _print(json.dumps(asdict(record), indent=1))
        _then_invoke(args, where, clients, f"{args.table}:{args.packet} is committed as skipped "
                     "(the ids move on and processing resumes)")
        return 0
    if command == "late":
        ingestion = clients.ingestion(where.need("ingestion_bucket"))
        key = late(store, ingestion, args.table, args.packet, dry_run=args.dry_run)
        if args.dry_run:
            _print(json.dumps({"dry_run": True, "action": "late", "packet": f"{args.table}:{args.packet}",
                               "would_queue": "a pending record after everything pending now"}, indent=1))
            return 0
        _then_invoke(args, where, clients, f"{args.table}:{args.packet} is pending as {key}")
        return 0
    # replay
    plan = replay(store, dry_run=args.dry_run)
    _print(json.dumps({"dry_run": args.dry_run, **plan.to_dict()}, indent=1))
    if plan.done:
        _then_invoke(args, where, clients, f"replay {plan.detail['replay']} is pending")
    return 0


class Clients:
    """The AWS clients of one command, made on first use from one session.

    A missing region or credentials is refused here, before any call, with what to set."""

    def __init__(self, session, env: Mapping[str, str]) -> None:
        import boto3

        # boto3 reads AWS_DEFAULT_REGION (or the profile's); AWS_REGION, which Lambda and
        # many shells set, is honoured too.
        self.session = session or boto3.session.Session(region_name=env.get("AWS_REGION") or None)
        self.region = self.session.region_name
        if not self.region:
            raise SettingMissing(NO_REGION)
        if self.session.get_credentials() is None:
            raise SettingMissing(NO_CREDENTIALS)
        self._made: dict[str, object] = {}

    def _client(self, service: str):
        from botocore.config import Config

        if service not in self._made:
            # A person is waiting: a few retries and short timeouts, then say what failed.
            config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)
            self._made[service] = self.session.client(service, config=config)
        return self._made[service]

    def sqs(self):
        return self._client("sqs")

    def processed(self, bucket: str):
        from runtime.adapters.s3 import S3Bucket

        return S3Bucket(self._client("s3"), bucket)

    ingestion = processed

    def packet_ids(self):
        from runtime.adapters.ssm import SsmPacketIds

        return SsmPacketIds(self._client("ssm"))

    def stack_outputs(self, stack: str) -> dict[str, str]:
        try:
            [found] = self._client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
        except Exception as exc:  # noqa: BLE001 - told as "not found" or for what it is
            if "does not exist" in str(exc):
                raise SettingMissing(f"stack {stack} does not exist in {self.region}: check --stage/--stack "
                                     "and AWS_REGION") from None
            raise
        return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", ())}

    def invoker(self, function: str) -> Callable[[dict], None]:
        lambda_client = self._client("lambda")

        def invoke(event: dict) -> None:
            lambda_client.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event))

        return invoke


def _then_invoke(args, where: Location, clients, what: str) -> None:
    if args.invoke:
        clients.invoker(where.need("function"))({"packets": []})
        _note(f"{what}: the invocation just started carries it out.")
    else:
        _note(f"{what}: the next invocation carries it out (or pass --invoke to start one now).")


def _last_error(clients, where: Location) -> str | None:
    """The newest dead-letter message's error, when the queue is known and readable."""
    from runtime.operations_where import explain

    if where.dead_letter_queue_url is None:
        return None
    try:
        messages = dlq_messages(clients.sqs(), where.dead_letter_queue_url)
    except Exception as exc:  # noqa: BLE001 - status still shows the rest
        failure = explain(exc)
        if failure is None:
            raise
        return f"(the dead-letter queue could not be read: {failure})"
    dated = [m for m in messages if m["error"]]
    return max(dated, key=lambda m: int(m["sent"] or 0))["error"] if dated else None


def _no_invoke(event: dict) -> None:
    raise AssertionError("a dry run invokes nothing")


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise OperationRefused(f"{question} needs a confirmation: pass --yes (no terminal to ask on)")
    return input(f"{question} Type 'yes' to go on: ").strip().lower() == "yes"


def _print(text: str) -> None:
    print(text, flush=True)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
