"""The stage's CloudWatch dashboard, built from the runtime's one list of metric names.

One graph per runtime metric (runtime.observability.METRIC_NAMES), split by table with a
Metrics Insights query over the stage's namespace, so a new table or metric appears
without a change here; then the function's own: failures (errors, the dead-letter queue),
how long events waited (AsyncEventAge: the packets' lag behind the ingestion), and
duration against the timeout. At the top: every alarm's state, the dead-letter queue's
depth, and the runbook.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.names import METRIC_NAMES

# Graphed like the runtime's metrics even where runtime/observability.py does not list it yet.
ROWS_WAITING = "RowsWaiting"

PERIOD = Duration.minutes(5)


def runtime_metric_by_table(namespace: str, metric_name: str) -> cloudwatch.MathExpression:
    return cloudwatch.MathExpression(
        # A Metrics Insights query over our own constant names, not SQL on data.
        expression=f'SELECT SUM({metric_name}) FROM "{namespace}" GROUP BY "table"',  # nosec B608
        label=metric_name,
        period=PERIOD,
    )


def processing_dashboard(
    scope: Construct,
    construct_id: str,
    *,
    stage: str,
    namespace: str,
    function: lambda_.IFunction,
    dead_letter_queue: sqs.IQueue,
    alarm_names: list[str],
    runbook_url: str,
) -> cloudwatch.Dashboard:
    dashboard = cloudwatch.Dashboard(
        scope,
        construct_id,
        dashboard_name=f"totesys-processing-{stage}",
        default_interval=Duration.days(1),
    )
    runtime_graphs = [
        cloudwatch.GraphWidget(
            title=f"{name} by table",
            left=[runtime_metric_by_table(namespace, name)],
            width=8,
            height=6,
        )
        for name in dict.fromkeys((*METRIC_NAMES, ROWS_WAITING))
    ]
    function_graphs = [
        cloudwatch.GraphWidget(
            title="Failures",
            left=[
                function.metric_errors(period=PERIOD, statistic="Sum", label="Errors (every attempt)"),
                dead_letter_queue.metric_number_of_messages_sent(
                    period=PERIOD, statistic="Sum", label="Events into the dead-letter queue"
                ),
                function.metric("AsyncEventsDropped", period=PERIOD, statistic="Sum"),
                function.metric("DestinationDeliveryFailures", period=PERIOD, statistic="Sum"),
            ],
            width=8,
            height=6,
        ),
        cloudwatch.GraphWidget(
            title="Packet lag: how long events waited before running (ms)",
            left=[function.metric("AsyncEventAge", period=PERIOD, statistic="Maximum", label="AsyncEventAge max")],
            width=8,
            height=6,
        ),
        cloudwatch.GraphWidget(
            title="Duration (ms)",
            left=[
                function.metric_duration(period=PERIOD, statistic="Maximum", label="max"),
                function.metric_duration(period=PERIOD, statistic="Average", label="average"),
            ],
            width=8,
            height=6,
        ),
    ]
    dashboard.add_widgets(
        # By name (ARNs made from the stable names), not by reference to the alarm
        # resources: the dashboard does not depend on them, and an emulator that
        # creates no alarms (make deploy-local) still deploys it.
        cloudwatch.AlarmStatusWidget(
            title="Alarms (each description links its runbook entry)",
            alarms=[cloudwatch.Alarm.from_alarm_name(scope, f"{construct_id}Alarm{i}", name)
                    for i, name in enumerate(alarm_names)],
            width=12,
            height=6,
        ),
        cloudwatch.GraphWidget(
            title="Dead-letter queue: events waiting for a redrive",
            left=[dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic="Maximum", label="messages visible")],
            width=8,
            height=6,
        ),
        cloudwatch.TextWidget(
            markdown=f"**Runbook**: [{runbook_url}]({runbook_url})\n\n"
            f"`python -m runtime.operations --stage {stage} status` shows what blocks, "
            "`quarantine` what waits, `dlq` what failed.",
            width=4,
            height=6,
        ),
    )
    widgets = runtime_graphs + function_graphs
    for row in range(0, len(widgets), 3):
        dashboard.add_widgets(*widgets[row : row + 3])
    return dashboard
