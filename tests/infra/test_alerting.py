"""Alerting: an encrypted topic that emails the administrators, and the alarms on it."""

from __future__ import annotations

import json
import re

from aws_cdk.assertions import Annotations, Capture, Match

from runtime.observability import METRIC_NAMES
from tests.infra.conftest import build_stack, resources_of


def _alarms(template_json):
    return list(resources_of(template_json, "AWS::CloudWatch::Alarm").values())


def test_topic_encrypted_with_a_rotated_customer_key_and_tls_only(template):
    key = Capture()
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    assert template.to_json()["Resources"][key.as_string()]["Type"] == "AWS::KMS::Key"


def test_only_this_stages_alarms_may_publish_and_use_the_key(template_json):
    # No confused deputy: CloudWatch acting for another account's (or stage's) alarm is refused.
    (policy,) = resources_of(template_json, "AWS::SNS::TopicPolicy").values()
    (key,) = resources_of(template_json, "AWS::KMS::Key").values()
    for statements, action in ((policy["Properties"]["PolicyDocument"]["Statement"], "sns:Publish"),
                               (key["Properties"]["KeyPolicy"]["Statement"], ["kms:Decrypt", "kms:GenerateDataKey*"])):
        (allowed,) = [s for s in statements if s["Effect"] == "Allow"
                      and s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
        assert allowed["Action"] == action
        assert allowed["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        source_arn = json.dumps(allowed["Condition"]["ArnLike"]["aws:SourceArn"])
        assert ":alarm:totesys-dev-*" in source_arn and ":cloudwatch:" in source_arn


def test_an_email_subscription_per_administrator(template, synth):
    for email in ("data-oncall@example.com", "lead@example.com"):
        template.has_resource_properties(
            "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": email, "TopicArn": {"Ref": Match.any_value()}}
        )
    synth(alarm_emails="a@example.com,b@example.com,c@example.com").resource_count_is("AWS::SNS::Subscription", 3)


def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(template_json):
    (topic,) = resources_of(template_json, "AWS::SNS::Topic")
    alarms = _alarms(template_json)
    assert alarms
    for alarm in alarms:
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": topic}]
        assert properties["OKActions"] == [{"Ref": topic}]
        # Missing data is silence: only the freshness alarm treats it as a failure.
        expected = "breaching" if properties["AlarmName"] == "totesys-dev-no-invocations" else "notBreaching"
        assert properties["TreatMissingData"] == expected
        assert properties["AlarmDescription"]


def _alarm(template_json, name: str) -> dict:
    """The alarm whose construct id is `name` (logical ids are AlertingName + a hash)."""
    pattern = re.compile(rf"^Alerting{name}[0-9A-F]{{8}}$")
    (found,) = [r["Properties"] for k, r in resources_of(template_json, "AWS::CloudWatch::Alarm").items()
                if pattern.match(k)]  # fmt: skip
    return found


def test_failure_alarms_only_after_the_last_retry(template_json):
    # An event reaches the dead-letter queue only after its last attempt failed (or it
    # expired): one datapoint of "a message was sent to it" is a failure that lasted.
    alarm = _alarm(template_json, "EventFailedAllAttempts")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/SQS", "NumberOfMessagesSent", "Sum")
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (1, 1)
    (dimension,) = alarm["Dimensions"]
    assert dimension["Name"] == "QueueName" and dimension["Value"]["Fn::GetAtt"][1] == "QueueName"
    # No alarm watches a metric that every failed attempt emits, the first included.
    watched = json.dumps([r["Properties"] for r in resources_of(template_json, "AWS::CloudWatch::Alarm").values()])
    assert "ProcessingFailed" not in watched
    assert '"MetricName": "Errors"' not in watched


def test_dead_letters_left_waiting(template_json):
    alarm = _alarm(template_json, "DeadLettersWaiting")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Statistic"] == "Maximum" and alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 12


def test_event_age_dropped_events_and_lost_dead_letters(template_json):
    age = _alarm(template_json, "AsyncEventAge")
    assert (age["Namespace"], age["MetricName"], age["Statistic"]) == ("AWS/Lambda", "AsyncEventAge", "Maximum")
    assert age["Threshold"] == 3_600_000 and age["ComparisonOperator"] == "GreaterThanThreshold"
    for name in ("AsyncEventsDropped", "DestinationDeliveryFailures"):
        alarm = _alarm(template_json, name)
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", name, "Sum")
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        (dimension,) = alarm["Dimensions"]
        assert dimension["Name"] == "FunctionName" and set(dimension["Value"]) == {"Ref"}


def test_duration_near_the_timeout(template, synth):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"Namespace": "AWS/Lambda", "MetricName": "Duration", "Statistic": "Maximum",
         "Threshold": 480_000, "ComparisonOperator": "GreaterThanThreshold"},
    )
    synth(timeout_seconds=900).has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Duration", "Threshold": 720_000}
    )


def test_runtime_metrics_alarm_across_every_table_in_the_stage_namespace(template_json, synth):
    from cdk_app.alerting import DASHBOARD_ONLY_METRICS, RUNTIME_METRIC_ALARMS, SPECIALLY_ALARMED_METRICS

    # Every metric the runtime emits is alarmed or shown on purpose, none forgotten
    # (RowsWaiting is alarmed on its own rule, whether the runtime lists it yet or not).
    covered = set(RUNTIME_METRIC_ALARMS) | set(DASHBOARD_ONLY_METRICS) | set(SPECIALLY_ALARMED_METRICS)
    assert covered in (set(METRIC_NAMES), set(METRIC_NAMES) | set(SPECIALLY_ALARMED_METRICS))
    assert set(RUNTIME_METRIC_ALARMS) == {"RowsRejected", "PacketGap", "LatePacket", "SchemaDrift", "SilentMutation"}
    for stage, template in (("dev", template_json), ("prod", synth(stage="prod").to_json())):
        expressions = {}
        for alarm in _alarms(template):
            for query in alarm["Properties"].get("Metrics", []):
                if "Expression" in query:
                    expressions[query["Expression"]] = alarm["Properties"]
        assert len(expressions) == len(RUNTIME_METRIC_ALARMS) + 1  # and the overdue waits
        for name in RUNTIME_METRIC_ALARMS:
            assert name in METRIC_NAMES  # the runtime emits it under this very name
            expression = f'SELECT SUM({name}) FROM "TotesysProcessing/{stage}"'
            assert expression in expressions, sorted(expressions)
            properties = expressions[expression]
            assert properties["Threshold"] == 1
            assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            (query,) = properties["Metrics"]
            assert query["ReturnData"] is True and query["Period"] == 300


def _alarm_names(template_json) -> set[str]:
    return {a["Properties"]["AlarmName"] for a in _alarms(template_json)}


def test_every_alarm_has_a_stable_name_and_links_its_runbook_entry(template_json, synth):
    from tests.infra.test_docs import DOCS, markdown_anchors

    names = _alarm_names(template_json)
    assert len(names) == len(_alarms(template_json)) == 13
    anchors = markdown_anchors((DOCS / "operations.md").read_text())
    for alarm in _alarms(template_json):
        name, description = alarm["Properties"]["AlarmName"], alarm["Properties"]["AlarmDescription"]
        assert re.fullmatch(r"totesys-dev-[a-z]+(-[a-z]+)*", name), name
        slug = name.removeprefix("totesys-dev-")
        assert description.endswith(f"Runbook: docs/operations.md#{slug}"), description
        assert slug in anchors, f"docs/operations.md has no runbook entry for {name}"
    prod = synth(stage="prod", runbook_url="https://example.com/totesys/blob/main/docs/operations.md")
    prod_alarms = _alarms(prod.to_json())
    assert {a["Properties"]["AlarmName"] for a in prod_alarms} == {n.replace("-dev-", "-prod-") for n in names}
    assert all("Runbook: https://example.com/totesys/blob/main/docs/operations.md#" in a["Properties"]
               ["AlarmDescription"] for a in prod_alarms)


def test_the_alarm_table_in_the_deploy_guide_names_every_alarm(template_json):
    from tests.infra.test_docs import DOCS, _table_rows

    documented = {row[0].strip("`") for row in _table_rows((DOCS / "deploy.md").read_text(), "alarm")}
    synthesized = {n.replace("totesys-dev-", "totesys-<stage>-") for n in _alarm_names(template_json)}
    assert synthesized == documented


def test_overdue_waits_alarm_and_freshness_alarm(template_json, synth):
    (waits,) = [a["Properties"] for a in _alarms(template_json)
                if a["Properties"]["AlarmName"] == "totesys-dev-facts-waiting-too-long"]
    (query,) = waits["Metrics"]
    assert query["Expression"] == 'SELECT SUM(RowsWaiting) FROM "TotesysProcessing/dev" WHERE wait = \'overdue\''
    (fresh,) = [a["Properties"] for a in _alarms(template_json)
                if a["Properties"]["AlarmName"] == "totesys-dev-no-invocations"]
    assert (fresh["Namespace"], fresh["MetricName"], fresh["Statistic"], fresh["Period"]) == (
        "AWS/Lambda", "Invocations", "Sum", 3600)
    assert fresh["ComparisonOperator"] == "LessThanThreshold" and fresh["Threshold"] == 1
    assert fresh["EvaluationPeriods"] == fresh["DatapointsToAlarm"] == 24
    assert "totesys-dev-no-invocations" not in _alarm_names(synth(freshness_hours=0).to_json())


def _dashboard_body(template_json) -> dict:
    (dashboard,) = resources_of(template_json, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, dict):  # Fn::Join of text and references: references become "REF"
        body = "".join(part if isinstance(part, str) else "REF" for part in body["Fn::Join"][1])
    return json.loads(body)


def test_dashboard_graphs_every_runtime_metric_by_table_and_the_function(template_json):
    widgets = _dashboard_body(template_json)["widgets"]
    expressions, metric_names = set(), set()
    for widget in widgets:
        for metric in widget["properties"].get("metrics", []):
            for item in metric:
                if isinstance(item, dict) and "expression" in item:
                    expressions.add(item["expression"])
            metric_names.update(item for item in metric if isinstance(item, str))
    for name in (*METRIC_NAMES, "RowsWaiting"):
        assert f'SELECT SUM({name}) FROM "TotesysProcessing/dev" GROUP BY "table"' in expressions, name
    for name in ("Errors", "AsyncEventAge", "Duration", "AsyncEventsDropped", "DestinationDeliveryFailures",
                 "NumberOfMessagesSent"):  # fmt: skip
        assert name in metric_names, name
    (dashboard,) = resources_of(template_json, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "totesys-processing-dev"
    # At the top: every alarm's state, the dead-letter queue's depth, the runbook.
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == 13
    assert "ApproximateNumberOfMessagesVisible" in metric_names
    (text,) = [w for w in widgets if w["type"] == "text"]
    assert "docs/operations.md" in text["properties"]["markdown"]


def test_no_alarm_emails_is_allowed_but_warned(synth):
    _, stack = build_stack({"alarm_emails": []})
    Annotations.from_stack(stack).has_warning("*", Match.string_like_regexp("alarm_emails is empty"))
    assert json.dumps(synth(alarm_emails=[]).to_json()).count("AWS::SNS::Subscription") == 0
