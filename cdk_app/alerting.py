"""Alarms on the processing function, and the encrypted SNS topic that emails them."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.observability import (
    DEFAULT_NAMESPACE,
    PACKET_GAP,
    PROCESSING_FAILED,
    ROWS_REJECTED,
    SCHEMA_DRIFT,
)

# Alarm when the longest invocation in a period used this share of the timeout.
DURATION_WARNING_SHARE = 0.8

# The runtime's own metrics (runtime/observability.py), alarmed on with a Metrics
# Insights query over the whole namespace: the query sums every series of that metric
# whatever its dimensions, so a table added to runtime/tables.py, or a dimension added
# to the metrics, is covered without touching the stack. A plain metric alarm would
# have to name the exact dimension set of each series, one alarm per table, and would
# silently watch nothing if the runtime's dimensions changed. The log line the runtime
# writes with each of these names the table and packet.
RUNTIME_METRIC_ALARMS: tuple[tuple[str, str], ...] = (
    (
        ROWS_REJECTED,
        "Rows were quarantined under _quarantine/ in the processed bucket. The function's "
        "validation report log line names the table, the source packet and the failed checks.",
    ),
    (
        PACKET_GAP,
        "A packet named by the ingestion was missing while a later one existed; it was passed "
        "over. The warning log line names the table and packet id.",
    ),
    (
        SCHEMA_DRIFT,
        "A source packet's columns differ from the declaration in runtime/tables.py (unknown, "
        "missing or retyped columns). The warning log line 'schema drift' names the table, "
        "the packet and the columns.",
    ),
    (
        PROCESSING_FAILED,
        "An invocation failed; Lambda retries it twice, then the event goes to the dead-letter "
        "queue. The error log line 'invocation summary' names the packet that failed.",
    ),
)


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
    ) -> None:
        super().__init__(scope, construct_id)

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
        # Lets CloudWatch alarms publish: the topic policy, and use of the key.
        self.topic.grant_publish(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        if not emails:
            Annotations.of(self).add_warning_v2(
                "totesys:noAlarmEmails",
                "alarm_emails is empty: the alarms will notify nobody",
            )

        self.alarms: dict[str, cloudwatch.Alarm] = {}
        timeout_ms = timeout.to_milliseconds()

        self._alarm(
            "Errors",
            function.metric_errors(period=Duration.minutes(10), statistic="Sum"),
            threshold=1,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description="The function failed in 2 of the last 3 ten-minute periods: failures "
            "that persist across Lambda's retries (a single error that a retry fixes does not "
            "alarm). See the function's log group for the failing packet.",
        )
        self._alarm(
            "DeadLetters",
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=1,
            description="An event failed all its attempts (or expired) and is in the dead-letter "
            "queue. Fix the cause, then redrive it (docs/deploy.md).",
        )
        self._alarm(
            "Throttles",
            function.metric_throttles(period=Duration.minutes(10), statistic="Sum"),
            threshold=1,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            description="Invocations were throttled for 30 minutes on end. With reserved "
            "concurrency 1 a throttle only means an event waits its turn; throttling that "
            "does not stop means a backlog that may reach the 6-hour maximum event age.",
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
        for metric_name, description in RUNTIME_METRIC_ALARMS:
            self._alarm(
                metric_name,
                cloudwatch.MathExpression(
                    # A Metrics Insights query over our own constant names, not SQL on data.
                    expression=f'SELECT SUM({metric_name}) FROM "{DEFAULT_NAMESPACE}"',  # nosec B608
                    label=f"{metric_name} (all tables)",
                    period=Duration.minutes(5),
                ),
                threshold=1,
                description=f"{metric_name} > 0 in namespace {DEFAULT_NAMESPACE}. {description}",
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
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        action = actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms[name] = alarm
