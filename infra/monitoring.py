"""Alarms on what users would notice (faults, throttling, near-timeouts), on what costs money or
capacity before they do (client-error floods, account concurrency, DynamoDB throttling), on a sweep
that cannot keep up, and a one-screen dashboard, with the usage the sweep measures against the quotas.

Every alarm notifies registry:alarmTopicArn when set. CloudWatch bills alarms per metric they read:
a metric math alarm over seven tables counts seven (see Costs in docs/deploying.md).
"""

from __future__ import annotations

from typing import NamedTuple

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from registry.config import METRICS_NAMESPACE, SERVICE_NAME, SWEEP_SERVICE_NAME
from registry.sweep.usage import (
    IMAGE_COUNT_METRIC,
    MAX_IMAGES_METRIC,
    REGISTRY_DIMENSION,
    REPOSITORY_COUNT_METRIC,
    REPOSITORY_DIMENSION,
    STORED_BYTES_METRIC,
    UsageMetrics,
)

from .api import RegistryApi
from .config import RegistryProps
from .storage import RegistryStorage
from .sweep import INCOMPLETE_METRIC, SCHEDULE, RegistrySweep

PERIOD = Duration.minutes(5)
API_5XX_THRESHOLD = 5  # per 5 minutes: one transient fault pages nobody, a burst does
NEAR_TIMEOUT_FRACTION = 0.8  # p99 duration above 80% of the timeout: time to raise memory or timeout
# 4XXError counts what clients got wrong (ECR errors such as LayerAlreadyExists, a few per push),
# the gateway's refusals of unsigned requests, and 429s of the stage throttle (API Gateway has no
# separate 429 metric). 5% of what the stage lets through in 5 minutes (1,500 at the default 100/s)
# is far above what honest pushes and pulls produce and well below a flood or a throttled fleet;
# the threshold follows registry:throttleRateLimit.
API_4XX_FRACTION = 0.05
# SDKs retry a throttled or failed DynamoDB request (the function: 4 attempts), so a few go unnoticed;
# ten in 5 minutes is a hot key, traffic above what on-demand capacity has adapted to, or an incident.
DYNAMODB_THROTTLE_THRESHOLD = 10
DYNAMODB_SYSTEM_ERRORS_THRESHOLD = 10
# One run that ran out of time is finished by the next; three in a row means the sweep cannot keep up.
SWEEP_INCOMPLETE_RUNS = 3
# SystemErrors is published per table and operation (dozens of series, where a metric math alarm
# reads at most 10): one Metrics Insights query sums them. Its WHERE can't list several tables, so
# it sums the DynamoDB 500s of every table of the account and Region: a DynamoDB fault, not ours.
DYNAMODB_SYSTEM_ERRORS_QUERY = 'SELECT SUM(SystemErrors) FROM SCHEMA("AWS/DynamoDB", Operation, TableName)'
# The usage graphs show the fullest repositories and registries: one series each of thousands would
# be unreadable (a Metrics Insights query ranks up to 10,000 series, the first it finds).
USAGE_TOP = 10
REPOSITORY_SERIES = (REGISTRY_DIMENSION, REPOSITORY_DIMENSION)
REGISTRY_SERIES = (REGISTRY_DIMENSION,)
USAGE_OFF_TEXT = (
    "**Usage metrics are off** (`registry:usageMetrics` is `off`): the result of each sweep run, in the "
    "sweep's log group, holds each registry's repositories, images, most images in a repository and "
    "bytes stored."
)


def usage_query(metric: str, series: tuple[str, ...]) -> str:
    """The USAGE_TOP highest series of a usage metric of the sweep (one point per hourly run)."""
    keys = ", ".join(series)
    return (
        f'SELECT MAX({metric}) FROM SCHEMA("{METRICS_NAMESPACE}", {keys}) '
        f"GROUP BY {keys} ORDER BY MAX() DESC LIMIT {USAGE_TOP}"
    )


class RegistryMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: RegistryProps,
        storage: RegistryStorage,
        api: RegistryApi,
        sweep: RegistrySweep,
    ) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.alarms: list[cloudwatch.Alarm] = []
        self._failure_alarms(api, sweep)
        self._cost_alarms(api, storage)
        self._dashboard(api, sweep)

    def _alarm(
        self, alarm_id: str, metric: cloudwatch.IMetric, threshold: float, description: str, *, periods: int = 1
    ) -> cloudwatch.Alarm:
        created = cloudwatch.Alarm(
            self,
            alarm_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods if periods > 1 else None,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        if self.props.alarm_topic_arn:
            created.add_alarm_action(
                actions.SnsAction(sns.Topic.from_topic_arn(self, f"{alarm_id}Topic", self.props.alarm_topic_arn))
            )
        self.alarms.append(created)
        return created

    # --- what users would notice ------------------------------------------------------------------

    def _failure_alarms(self, api: RegistryApi, sweep: RegistrySweep) -> None:
        function, rest_api = api.function, api.api
        self.function_errors = self._alarm(
            "FunctionErrors",
            function.metric_errors(period=PERIOD, statistic="Sum"),
            1,
            "The registry function crashed or timed out (handled faults are ServerException responses, "
            "counted by the API 5XX alarm)",
        )
        self.function_throttles = self._alarm(
            "FunctionThrottles",
            function.metric_throttles(period=PERIOD, statistic="Sum"),
            1,
            "Lambda throttled the registry function: account or reserved concurrency reached",
        )
        self.api_server_errors = self._alarm(
            "ApiServerErrors",
            rest_api.metric_server_error(period=PERIOD, statistic="Sum"),
            API_5XX_THRESHOLD,
            f"At least {API_5XX_THRESHOLD} HTTP 5xx answers in 5 minutes (ServerException, crashes, timeouts)",
        )
        timeout_ms = api.timeout.to_milliseconds()
        self.near_timeout = self._alarm(
            "FunctionNearTimeout",
            function.metric_duration(period=PERIOD, statistic="p99"),
            round(timeout_ms * NEAR_TIMEOUT_FRACTION),
            f"p99 duration above {int(NEAR_TIMEOUT_FRACTION * 100)}% of the {timeout_ms // 1000} s timeout",
        )
        # One failed run is finished by the next; a sweep failing for hours lets storage grow.
        self.sweep_errors = self._alarm(
            "SweepErrors",
            sweep.function.metric_errors(period=SCHEDULE, statistic="Sum"),
            1,
            "The registry's hourly sweep failed (see its log group); abandoned uploads and unused blobs "
            "are not being reclaimed until it succeeds",
        )

    # --- what costs money or capacity before users notice -----------------------------------------

    def _cost_alarms(self, api: RegistryApi, storage: RegistryStorage) -> None:
        function, rest_api, props = api.function, api.api, self.props
        client_error_threshold = round(props.throttle_rate_limit * PERIOD.to_seconds() * API_4XX_FRACTION)
        self.api_client_errors = self._alarm(
            "ApiClientErrors",
            rest_api.metric_client_error(period=PERIOD, statistic="Sum"),
            client_error_threshold,
            f"At least {client_error_threshold} HTTP 4xx answers in 5 minutes ({API_4XX_FRACTION:.0%} of what the "
            "stage throttle lets through): clients throttled (429), a flood of unsigned or badly signed "
            "requests, or a client stuck in an error loop. See the access log or the function's log.",
        )
        self.account_concurrency = self._alarm(
            "AccountConcurrency",
            function.metric_all_concurrent_executions(period=PERIOD, statistic="Maximum"),
            props.concurrency_alarm_threshold,
            f"The account's Lambda functions ran {props.concurrency_alarm_threshold} or more instances at "
            "once: near the account's concurrency quota, beyond which every function of the account "
            "(this registry included) is throttled. Raise the quota or find the consumer.",
        )
        tables = list(storage.tables.values())

        def tables_sum(metric_name: str) -> cloudwatch.MathExpression:
            prefix = metric_name[0].lower()  # ids unique on a graph that shows reads and writes
            using = {
                f"{prefix}{i}": t.metric(metric_name, period=PERIOD, statistic="Sum") for i, t in enumerate(tables)
            }
            # FILL: a table without throttles publishes no data point, and m1+m2 of a gap is a gap.
            return cloudwatch.MathExpression(
                expression="SUM([" + ",".join(f"FILL({key},0)" for key in using) + "])",
                using_metrics=using,
                period=PERIOD,
                label=f"{metric_name} (registry tables)",
            )

        self.table_read_throttles = self._alarm(
            "TableReadThrottles",
            tables_sum("ReadThrottleEvents"),
            DYNAMODB_THROTTLE_THRESHOLD,
            f"DynamoDB throttled at least {DYNAMODB_THROTTLE_THRESHOLD} reads of the registry's tables in 5 "
            "minutes (a hot item, or traffic above what on-demand capacity has adapted to).",
        )
        self.table_write_throttles = self._alarm(
            "TableWriteThrottles",
            tables_sum("WriteThrottleEvents"),
            DYNAMODB_THROTTLE_THRESHOLD,
            f"DynamoDB throttled at least {DYNAMODB_THROTTLE_THRESHOLD} writes to the registry's tables in 5 "
            "minutes (a hot item, or traffic above what on-demand capacity has adapted to).",
        )
        self.table_system_errors = self._alarm(
            "TableSystemErrors",
            cloudwatch.MathExpression(
                expression=DYNAMODB_SYSTEM_ERRORS_QUERY,
                using_metrics={},
                period=PERIOD,
                label="DynamoDB system errors (account)",
            ),
            DYNAMODB_SYSTEM_ERRORS_THRESHOLD,
            f"DynamoDB answered HTTP 500 at least {DYNAMODB_SYSTEM_ERRORS_THRESHOLD} times in 5 minutes, to "
            "any table of this account and Region: a DynamoDB incident (see the AWS Health Dashboard).",
        )
        self.sweep_incomplete = self._alarm(
            "SweepIncomplete",
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=INCOMPLETE_METRIC,
                dimensions_map={"service": SWEEP_SERVICE_NAME},
                period=SCHEDULE,
                statistic="Maximum",
            ),
            1,
            f"The sweep ran out of time {SWEEP_INCOMPLETE_RUNS} runs in a row: it cannot reclaim abandoned "
            "uploads and unused blobs as fast as they appear (see its log: the report of each run).",
            periods=SWEEP_INCOMPLETE_RUNS,
        )

    # --- one screen -------------------------------------------------------------------------------

    def _dashboard(self, api: RegistryApi, sweep: RegistrySweep) -> None:
        function, rest_api = api.function, api.api

        def outcome(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": SERVICE_NAME},
                period=PERIOD,
                statistic="Sum",
            )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Requests by outcome",
                width=8,
                stacked=True,
                left=[outcome("Successes"), outcome("ClientErrors"), outcome("Faults")],
            ),
            cloudwatch.GraphWidget(
                title="API Gateway 4xx / 5xx",
                width=8,
                left=[
                    rest_api.metric_client_error(period=PERIOD, statistic="Sum"),
                    rest_api.metric_server_error(period=PERIOD, statistic="Sum"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                width=8,
                left=[
                    rest_api.metric_latency(period=PERIOD, statistic="p50"),
                    rest_api.metric_latency(period=PERIOD, statistic="p99"),
                    rest_api.metric_integration_latency(period=PERIOD, statistic="p99"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function invocations, errors, throttles",
                width=8,
                left=[
                    function.metric_invocations(period=PERIOD, statistic="Sum"),
                    function.metric_errors(period=PERIOD, statistic="Sum"),
                    function.metric_throttles(period=PERIOD, statistic="Sum"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Function duration (ms)",
                width=8,
                left=[
                    function.metric_duration(period=PERIOD, statistic="p50"),
                    function.metric_duration(period=PERIOD, statistic="p99"),
                    function.metric_duration(period=PERIOD, statistic="Maximum"),
                ],
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", width=8, height=8, alarms=self.alarms),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="DynamoDB throttles and system errors",
                width=8,
                left=[
                    self.table_read_throttles.metric,
                    self.table_write_throttles.metric,
                    self.table_system_errors.metric,
                ],
            ),
            cloudwatch.GraphWidget(
                title="Lambda concurrency (account)",
                width=8,
                left=[self.account_concurrency.metric],
                left_annotations=[self.account_concurrency.to_annotation()],
            ),
            cloudwatch.GraphWidget(
                title="Sweep: errors, runs out of time",
                width=8,
                left=[
                    sweep.function.metric_errors(period=SCHEDULE, statistic="Sum"),
                    self.sweep_incomplete.metric,
                ],
            ),
        )
        self.dashboard.add_widgets(*self._usage_widgets())

    def _usage_widgets(self) -> list[cloudwatch.IWidget]:
        """What the sweep measures each hour (registry.sweep.usage), as far as registry:usageMetrics has
        it written as metrics: the counts against their quotas."""
        written = UsageMetrics(self.props.usage_metrics)
        if written is UsageMetrics.OFF:  # a graph of metrics never written would only look broken
            return [cloudwatch.TextWidget(markdown=USAGE_OFF_TEXT, width=24, height=2)]
        quotas = self.props.quota_values()
        images_quota = ("quota: images per repository", quotas.max_images_per_repository)
        per_repository = written is UsageMetrics.REPOSITORY
        images = (
            UsageGraph(f"Images per repository (top {USAGE_TOP})", IMAGE_COUNT_METRIC, REPOSITORY_SERIES, images_quota)
            if per_repository
            else UsageGraph(
                f"Most images in a repository, by registry (top {USAGE_TOP})",
                MAX_IMAGES_METRIC,
                REGISTRY_SERIES,
                images_quota,
            )
        )
        graphs = [
            images,
            UsageGraph(
                f"Repositories per registry (top {USAGE_TOP})",
                REPOSITORY_COUNT_METRIC,
                REGISTRY_SERIES,
                ("quota: repositories per registry", quotas.max_repositories),
            ),
            UsageGraph(
                f"Bytes stored per registry, each blob once (top {USAGE_TOP})", STORED_BYTES_METRIC, REGISTRY_SERIES
            ),
        ]
        if per_repository:
            graphs.append(
                UsageGraph(
                    f"Bytes of each repository's layers, shared ones in each (top {USAGE_TOP})",
                    STORED_BYTES_METRIC,
                    REPOSITORY_SERIES,
                )
            )
        width = 24 // len(graphs)  # the row stays full
        return [graph.widget(width) for graph in graphs]


class UsageGraph(NamedTuple):
    """The USAGE_TOP highest series of one usage metric, with a line at its quota if it has one."""

    title: str
    metric: str
    series: tuple[str, ...]
    quota: tuple[str, int] | None = None  # (label, value)

    def widget(self, width: int) -> cloudwatch.GraphWidget:
        # label "": each series keeps its own, its registry and repository (not the query's text)
        query = cloudwatch.MathExpression(
            expression=usage_query(self.metric, self.series), using_metrics={}, period=SCHEDULE, label=""
        )
        quota = self.quota
        return cloudwatch.GraphWidget(
            title=self.title,
            width=width,
            left=[query],
            left_annotations=[cloudwatch.HorizontalAnnotation(value=quota[1], label=quota[0])] if quota else None,
            left_y_axis=cloudwatch.YAxisProps(min=0),
        )
