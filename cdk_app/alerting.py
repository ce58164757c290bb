"""Alarms on the processing function, and the encrypted SNS topic that emails them.

Every alarm has a stable name, `totesys-<stage>-<slug>`, and its description ends with
a link to its runbook entry, `docs/operations.md#<slug>` (docs/design.md#observability):
tests/infra/test_alerting.py checks that every alarm in the template has one.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.names import (
    LATE_PACKET,
    PACKET_GAP,
    PACKETS_PROCESSED,
    PROCESSING_FAILED,
    ROWS_REJECTED,
    ROWS_WRITTEN,
    SCHEMA_DRIFT,
    SILENT_MUTATION,
)

# Alarm when the longest invocation in a period used this share of the timeout.
DURATION_WARNING_SHARE = 0.8
# An event that waited this long in Lambda's queue means a backlog behind concurrency 1,
# well before the 6-hour maximum event age would drop it into the dead-letter queue.
EVENT_AGE_WARNING = Duration.hours(1)

# Rows waiting for a dimension key (docs/design.md#waits-and-replays): the runtime counts
# new waits by table, and, with dimension wait="overdue", the rows that have waited longer
# than its WAIT_ALARM_HOURS. Only the overdue ones are alarmed: a wait heals itself when
# the key arrives; one that lasts means the source is wrong, not late.
ROWS_WAITING = "RowsWaiting"
# The slug of each alarm: its name is totesys-<stage>-<slug>, its runbook entry the
# heading of that slug in docs/operations.md.
SLUGS: dict[str, str] = {
    "EventFailedAllAttempts": "event-failed-all-attempts",
    "DeadLettersWaiting": "dead-letters-waiting",
    "AsyncEventAge": "async-event-age",
    "AsyncEventsDropped": "async-events-dropped",
    "DestinationDeliveryFailures": "destination-delivery-failures",
    "DurationNearTimeout": "duration-near-timeout",
    "NoInvocations": "no-invocations",
    ROWS_REJECTED: "rows-rejected",
    PACKET_GAP: "packet-gap",
    LATE_PACKET: "late-packet",
    SCHEMA_DRIFT: "schema-drift",
    SILENT_MUTATION: "silent-mutation",
    "FactsWaitingTooLong": "facts-waiting-too-long",
}

# The runtime's own metrics (runtime/observability.py), alarmed on with a Metrics
# Insights query over the stage's namespace: the query sums every series of that metric
# whatever its dimensions, so a table added to runtime/tables.py, or a dimension added
# to the metrics, is covered without touching the stack. A plain metric alarm would
# have to name the exact dimension set of each series, one alarm per table, and would
# silently watch nothing if the runtime's dimensions changed. The log line the runtime
# writes with each of these names the table and packet.
RUNTIME_METRIC_ALARMS: dict[str, str] = {
    ROWS_REJECTED: "Rows were quarantined under _quarantine/ in the processed bucket. The function's "
    "validation report log line names the table, the source packet and the failed checks.",
    PACKET_GAP: "A packet named by the ingestion was missing while a later one existed; it was passed "
    "over. The error log line names the table and packet id.",
    LATE_PACKET: "Objects of a packet that was passed over as missing have appeared. They are not "
    "processed by themselves: the operator command processes the late packet once (docs/operations.md).",
    SCHEMA_DRIFT: "A source packet's columns differ from the declared ones (a column added, dropped or "
    "retyped upstream). The log line names the table, packet and columns.",
    SILENT_MUTATION: "A fact version already written came back with other values under the same "
    "last_updated: the source changed a row without recording it. The log line names the rows.",
}
# Counted, shown on the dashboard, never alarmed by themselves. ProcessingFailed is
# emitted on every failed attempt, including the first one that a retry then fixes: the
# alarm for a failure that lasts is the dead-letter queue's (the event's last attempt
# failed), not this metric.
DASHBOARD_ONLY_METRICS = (PACKETS_PROCESSED, ROWS_WRITTEN, PROCESSING_FAILED)
# Alarmed by its own rule (only the overdue waits), graphed like the others.
SPECIALLY_ALARMED_METRICS = (ROWS_WAITING,)


def alarm_name(stage: str, construct_id: str) -> str:
    return f"totesys-{stage}-{SLUGS[construct_id]}"


class Alerting(Construct):
    """An SNS topic (KMS-encrypted, TLS only) with email subscriptions, and the alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        emails: Sequence[str],
        function: lambda_.Function,
        timeout: Duration,
        dead_letter_queue: sqs.IQueue,
        namespace: str,
        stage: str,
        runbook_url: str,
        freshness_hours: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage, self.runbook_url = stage, runbook_url

        # A customer managed key: the AWS managed SNS key's policy cannot let CloudWatch
        # use it, and alarms must be able to publish to the topic. It protects only
        # messages in flight, so it is deleted (after the waiting period) with the stack.
        self.key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the Totesys processing alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Totesys processing alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        # Lets this stage's CloudWatch alarms publish, and only them (no confused deputy:
        # an alarm of another account, or another stage, cannot use the topic or the key).
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        only_our_alarms = {
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}"
                                          f":alarm:totesys-{stage}-*"},
        }
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(actions=["sns:Publish"], principals=[cloudwatch_principal],
                                resources=[self.topic.topic_arn], conditions=only_our_alarms)
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey*"], principals=[cloudwatch_principal],
                                resources=["*"], conditions=only_our_alarms)
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        if not emails:
            Annotations.of(self).add_warning_v2(
                "totesys:noAlarmEmails",
                "alarm_emails is empty: the alarms will notify nobody",
            )

        self.alarms: dict[str, cloudwatch.Alarm] = {}
        # The names as plain text: what refers to the alarms by name needs no reference
        # to the resources (the dashboard's alarm widget).
        self.alarm_names: list[str] = []
        timeout_ms = timeout.to_milliseconds()

        # Failure that lasts: the event's last attempt failed (or it expired), so Lambda
        # delivered it to the dead-letter queue. One email per event that arrives there,
        # not for a first attempt that a retry fixes.
        self._alarm(
            "EventFailedAllAttempts",
            dead_letter_queue.metric_number_of_messages_sent(period=Duration.minutes(1), statistic="Sum"),
            threshold=1,
            description="An event failed its first attempt and both retries (or waited past the "
            "6-hour maximum age) and is now in the dead-letter queue. `operations status` names the "
            "packet that blocks and its error; fix the cause, then `operations redrive`.",
        )
        self._alarm(
            "DeadLettersWaiting",
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=12,
            datapoints_to_alarm=12,
            description="Events have been waiting in the dead-letter queue for an hour: a failed "
            "event was not redriven. They are kept 14 days, then lost.",
        )
        self._alarm(
            "AsyncEventAge",
            function.metric("AsyncEventAge", period=Duration.minutes(5), statistic="Maximum"),
            threshold=EVENT_AGE_WARNING.to_milliseconds(),
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=f"An event waited more than {EVENT_AGE_WARNING.to_hours()} hour in Lambda's "
            "queue before it ran: a backlog behind reserved concurrency 1 (slow or failing "
            "invocations). At 6 hours events expire into the dead-letter queue.",
        )
        self._alarm(
            "AsyncEventsDropped",
            function.metric("AsyncEventsDropped", period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            description="Lambda dropped events without running them to success (expired or failed "
            "every attempt). Each should be in the dead-letter queue; if DestinationDeliveryFailures "
            "alarms too, it is lost and must be re-sent by the ingestion side.",
        )
        self._alarm(
            "DestinationDeliveryFailures",
            function.metric("DestinationDeliveryFailures", period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            description="Lambda could not deliver a failed event to the dead-letter queue (queue "
            "deleted, policy or permission changed): that event is lost. Check the queue and the "
            "role's sqs:SendMessage, then re-send the ingestion run's event.",
        )
        self._alarm(
            "DurationNearTimeout",
            function.metric_duration(period=Duration.minutes(5), statistic="Maximum"),
            threshold=round(timeout_ms * DURATION_WARNING_SHARE),
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=f"An invocation ran longer than {DURATION_WARNING_SHARE:.0%} of the "
            f"function's {timeout.to_seconds()} s timeout; raise timeout_seconds or memory_mb "
            "before packets start timing out.",
        )
        for metric_name, description in RUNTIME_METRIC_ALARMS.items():
            self._alarm(
                metric_name,
                cloudwatch.MathExpression(
                    # A Metrics Insights query over our own constant names, not SQL on data.
                    expression=f'SELECT SUM({metric_name}) FROM "{namespace}"',  # nosec B608
                    label=f"{metric_name} (all tables)",
                    period=Duration.minutes(5),
                ),
                threshold=1,
                description=f"{metric_name} > 0 in namespace {namespace}. {description}",
            )
        self._alarm(
            "FactsWaitingTooLong",
            cloudwatch.MathExpression(
                # Metrics Insights over our own constant names, not SQL on data.
                expression=f'SELECT SUM({ROWS_WAITING}) FROM "{namespace}" WHERE wait = \'overdue\'',  # nosec B608
                label=f"{ROWS_WAITING} overdue (all tables)",
                period=Duration.minutes(5),
            ),
            threshold=1,
            description="Fact rows have waited longer than the configured age (default 24 h) for a "
            "dimension key that never came: the source is wrong, not late. `operations quarantine` "
            "lists the keys they need.",
        )
        if freshness_hours:
            # Silence is a failure too: the ingestion stopped, or its invoke permission broke.
            self._alarm(
                "NoInvocations",
                function.metric_invocations(period=Duration.hours(1), statistic="Sum"),
                threshold=1,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=freshness_hours,
                datapoints_to_alarm=freshness_hours,
                treat_missing=cloudwatch.TreatMissingData.BREACHING,
                description=f"The function was not invoked for {freshness_hours} hours: the ingestion "
                "stopped invoking it (or cannot). Nothing is processed until it does.",
            )

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
        treat_missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        slug = SLUGS[name]
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=alarm_name(self.stage, name),
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=treat_missing,
            alarm_description=f"{description} Runbook: {self.runbook_url}#{slug}",
        )
        action = actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms[name] = alarm
        self.alarm_names.append(alarm_name(self.stage, name))
