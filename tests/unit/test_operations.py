"""The on-call commands: status, skipping a poison packet, redriving the dead-letter queue."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import keys
from runtime.errors import UnreadableObjectError
from runtime.operations import OperationRefused, redrive, skip, status
from tests.support.harness import PREFIX, Harness, sales_order


@pytest.fixture
def poisoned():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.ingestion.put("sales_order/sales_order_packet_1_x.jsonl.gz", b"\x1f\x8b truncated")
    h.upload("sales_order", 2, [sales_order(2)])
    with pytest.raises(UnreadableObjectError):
        h.invoke("sales_order:1")
    with pytest.raises(UnreadableObjectError):
        h.invoke("sales_order:2")
    return h


def test_status_shows_what_is_held_back(poisoned):
    report = status(poisoned.processed, poisoned.ids, PREFIX)
    assert report["consumed"]["sales_order"] == 0 and report["consumed"]["staff"] == 1
    assert [p["packets"] for p in report["pending"]] == [["sales_order:1"], ["sales_order:2"]]


def test_skipping_the_poison_packet_lets_the_next_invocation_resume(poisoned, caplog):
    skip(poisoned.processed, poisoned.ids, PREFIX, "sales_order", 1, "truncated upload, re-sent as 2", "alice")
    summary = poisoned.invoke()
    assert [o.status for o in summary.outcomes] == ["skipped", "committed"]
    assert poisoned.consumed("sales_order") == 2
    assert [r["sales_order_id"] for r in poisoned.rows("fact_sales_order")] == [2]
    record = json.loads(poisoned.processed.read(keys.commit_key("sales_order", 1)))
    assert record["skipped"] == {"reason": "truncated upload, re-sent as 2", "by": "alice"}
    assert any("skipped by an operator" in r.getMessage() for r in caplog.records)
    poisoned.check_invariants()


@pytest.mark.parametrize(
    "table, packet, reason, by, says",
    [
        ("sales_order", 2, "r", "me", "not the next packet"),
        ("staff", 1, "r", "me", "not the next packet"),
        ("payments", 1, "r", "me", "not a consumed source table"),
        ("sales_order", 1, " ", "me", "needs a --reason"),
    ],
)
def test_a_skip_that_would_break_an_invariant_is_refused(poisoned, table, packet, reason, by, says):
    with pytest.raises(OperationRefused, match=says):
        skip(poisoned.processed, poisoned.ids, PREFIX, table, packet, reason, by)


def test_a_packet_that_got_as_far_as_writing_outputs_cannot_be_skipped():
    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.processed.put("fact_sales_order/fact_sales_order_packet_1_processed_x.parquet", b"partial")
    with pytest.raises(OperationRefused, match="without a commit record"):
        skip(h.processed, h.ids, PREFIX, "sales_order", 1, "r", "me")


class FakeSqs:
    """Just enough of SQS for the redrive: messages as the on-failure destination sends them."""

    def __init__(self, bodies):
        self.messages = {str(i): json.dumps(b) for i, b in enumerate(bodies)}

    def receive_message(self, **_):
        return {"Messages": [{"MessageId": k, "ReceiptHandle": k, "Body": v} for k, v in list(self.messages.items())[:10]]}

    def delete_message(self, QueueUrl, ReceiptHandle):
        self.messages.pop(ReceiptHandle)

    made_visible: list

    def change_message_visibility(self, QueueUrl, ReceiptHandle, VisibilityTimeout):
        self.made_visible = [*getattr(self, "made_visible", []), ReceiptHandle]


def test_redrive_re_invokes_each_parked_event_once_and_leaves_bad_ones():
    good = {"packets": [{"table": "staff", "id": 3}]}
    sqs = FakeSqs([{"requestPayload": good, "responsePayload": {"errorType": "MissingPacketError"}},
                   {"requestPayload": {"packets": "nope"}}])
    invoked = []
    assert redrive(sqs, "url", invoked.append) == [good]
    assert invoked == [good] and list(sqs.messages) == ["1"]
    assert redrive(sqs, "url", invoked.append) == []  # safe to run again


def test_listing_the_dead_letter_queue_changes_nothing_and_says_why_each_failed():
    from runtime.operations import dlq_messages

    good = {"packets": [{"table": "staff", "id": 3}]}
    sqs = FakeSqs([{"requestPayload": good, "requestContext": {"condition": "RetriesExhausted",
                                                               "approximateInvokeCount": 3},
                    "responsePayload": {"errorType": "MissingPacketError", "errorMessage": "staff:3 has no objects"}},
                   {"requestPayload": {"packets": "nope"}}])
    listed = dlq_messages(sqs, "url")
    assert [m["event"] for m in listed] == [good, {"packets": "nope"}]
    assert listed[0]["error"] == "MissingPacketError: staff:3 has no objects" and listed[0]["attempts"] == 3
    assert [m["valid_event"] for m in listed] == [True, False] and list(sqs.messages) == ["0", "1"]
    assert sqs.made_visible == ["0", "1"]
    assert redrive(sqs, "url", lambda e: None, dry_run=True) == [good] and len(sqs.messages) == 2


def test_status_names_the_packet_that_blocks_the_others(poisoned):
    report = status(poisoned.processed, poisoned.ids, PREFIX)
    assert report["blocking"] == "sales_order:1"
    assert report["open_waits"] == {} and report["open_gaps"] == []


def test_a_dry_run_skip_checks_everything_and_writes_nothing(poisoned):
    before = {k: poisoned.processed.read(k) for k in poisoned.processed.list_keys("")}
    plan = skip(poisoned.processed, poisoned.ids, PREFIX, "sales_order", 1, "lost", "me", dry_run=True)
    assert plan.to_dict()["would_write"] == keys.commit_key("sales_order", 1) and not plan.done
    with pytest.raises(OperationRefused, match="not the next packet"):
        skip(poisoned.processed, poisoned.ids, PREFIX, "sales_order", 2, "lost", "me", dry_run=True)
    assert {k: poisoned.processed.read(k) for k in poisoned.processed.list_keys("")} == before


# Any text for any option: argparse's refusal is one bounded ASCII line and exit 2,
# before anything is read. (The same over moto, state compared, is in
# tests/integration/test_operations_over_moto.py.)
_ANY = st.one_of(
    st.text(max_size=30), st.sampled_from(["0", "-1", "abc", "1e3", "NaN", "\u0661", "9" * 5000, "x" * 100_000,
                                           "s\u0430les_order", "sales_order\u200b", "_quarantine/\u0430"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--table", "--packet", "--reason", "--by"]), value=_ANY)
def test_a_bad_argument_is_one_bounded_line_and_exit_2(option, value, capsys):
    from runtime.operations import build_parser
    from runtime.tables import SOURCES

    args = {"--table": "sales_order", "--packet": "1", "--reason": "r", "--by": "me"} | {option: value}
    argv = ["skip"] + [x for pair in args.items() for x in pair]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        err = capsys.readouterr().err
        assert exit_.code == 2
        assert len(err.strip().splitlines()) == 1 and len(err) <= 1100 and err.isascii(), err[:2000]
    else:  # accepted: then it is a valid value of that option
        accepted = value.strip()
        assert (option == "--packet" and accepted.isdigit() and int(accepted) >= 1) or (
            option in ("--reason", "--by") and accepted and value.isprintable()
        ) or (option == "--table" and value in SOURCES), value


def test_every_command_and_option_says_what_it_is_for_in_whole_sentences():
    import argparse

    from runtime.operations import build_parser

    parser = build_parser()
    assert parser.description.endswith("(docs/operations.md)")
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"status", "quarantine", "dlq", "skip", "late", "redrive", "replay"}
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help and not action.help.endswith((",", " and", " or")), (name, action.dest)


def test_the_runbooks_logs_insights_query_selects_the_summary_fields():
    from pathlib import Path

    runbook = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    assert "fields @timestamp, level, message, summary.failed_packet, summary.error" in runbook
    assert "message, failed_packet" not in runbook


def test_a_dry_run_late_and_replay_check_everything_and_write_nothing():
    from runtime.operations import late, replay

    h = Harness()
    h.invoke(*h.upload_dimensions())
    h.upload("sales_order", 1, [sales_order(1)])
    h.upload("sales_order", 3, [sales_order(3)])
    h.invoke("sales_order:1", "sales_order:3")  # 2 is passed over
    h.upload("sales_order", 2, [sales_order(2)])
    before = {k: h.processed.read(k) for k in h.processed.list_keys("")}
    assert late(h.processed, h.ingestion, "sales_order", 2, dry_run=True) == ""
    with pytest.raises(OperationRefused, match="not passed over"):
        late(h.processed, h.ingestion, "sales_order", 3, dry_run=True)
    assert replay(h.processed, dry_run=True).detail["files"] == []
    assert replay(h.processed).done is False  # nothing open: no replay number claimed
    assert {k: h.processed.read(k) for k in h.processed.list_keys("")} == before
    assert late(h.processed, h.ingestion, "sales_order", 2).startswith("_pending/")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.sampled_from([["--stage", "{}", "status"], ["--stack", "{}", "dlq"], ["quarantine", "--file", "{}"],
                             ["quarantine", "--limit", "{}"], ["late", "--table", "staff", "--packet", "{}"],
                             ["redrive", "--queue-url", "{}"], ["replay", "--function", "{}"], ["{}"]]),
       value=_ANY)
def test_any_value_of_any_other_option_is_one_bounded_line_or_a_valid_value(argv, value, capsys):
    from runtime.operations import build_parser

    try:
        build_parser().parse_args([value if a == "{}" else a for a in argv])
    except SystemExit as exit_:
        err = capsys.readouterr().err
        assert exit_.code in (0, 2)  # 0: "--help" itself
        if exit_.code == 2:
            assert len(err.strip().splitlines()) == 1 and len(err) <= 1100 and err.isascii(), err[:2000]
    else:
        assert value.isascii() and len(value) <= 200, value  # accepted values are short and plain


@pytest.mark.parametrize("error, says, code", [
    ("NoRegionError", "no AWS region", 2),
    ("NoCredentialsError", "no AWS credentials", 2),
    ("EndpointConnectionError", "unreachable", 1),
    ("ExpiredToken", "credentials refused (ExpiredToken)", 2),
    ("AccessDenied", "denied by IAM (AccessDenied)", 1),
    ("NoSuchBucket", "not found (NoSuchBucket)", 2),
    ("SlowDown", "AWS refused the call (SlowDown)", 1),
])
def test_aws_failures_are_named_for_what_they_are_even_behind_the_adapters(error, says, code):
    from botocore import exceptions as bx

    from runtime.adapters.aws import translated
    from runtime.operations_where import explain

    raw = {
        "NoRegionError": bx.NoRegionError(),
        "NoCredentialsError": bx.NoCredentialsError(),
        "EndpointConnectionError": bx.EndpointConnectionError(endpoint_url="https://s3.example"),
    }.get(error) or bx.ClientError({"Error": {"Code": error, "Message": "m"}}, "GetObject")
    assert (explain(raw).exit_code, says in str(explain(raw))) == (code, True)
    with pytest.raises(Exception) as translated_error:  # noqa: B017 - whatever the adapter makes of it
        with translated("s3", "GetObject"):
            raise raw
    failure = explain(translated_error.value)
    assert failure is not None and says in str(failure) and failure.exit_code == code
    assert explain(ValueError("a bug")) is None  # not an AWS failure: shown as the bug it is
