"""Alarms on what users would notice (faults, throttling, near-timeouts) and a one-screen dashboard."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from registry.config import METRICS_NAMESPACE, SERVICE_NAME

from .api import RegistryApi
from .config import RegistryProps
from .sweep import SCHEDULE, RegistrySweep

PERIOD = Duration.minutes(5)
API_5XX_THRESHOLD = 5  # per 5 minutes: one transient fault pages nobody, a burst does
NEAR_TIMEOUT_FRACTION = 0.8  # p99 duration above 80% of the timeout: time to raise memory or timeout


class RegistryMonitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, props: RegistryProps, api: RegistryApi, sweep: RegistrySweep
    ) -> None:
        super().__init__(scope, construct_id)
        function, rest_api = api.function, api.api

        def alarm(alarm_id: str, metric: cloudwatch.IMetric, threshold: float, description: str):
            created = cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            if props.alarm_topic_arn:
                created.add_alarm_action(
                    actions.SnsAction(sns.Topic.from_topic_arn(self, f"{alarm_id}Topic", props.alarm_topic_arn))
                )
            return created

        self.function_errors = alarm(
            "FunctionErrors",
            function.metric_errors(period=PERIOD, statistic="Sum"),
            1,
            "The registry function crashed or timed out (handled faults are ServerException responses, "
            "counted by the API 5XX alarm)",
        )
        self.function_throttles = alarm(
            "FunctionThrottles",
            function.metric_throttles(period=PERIOD, statistic="Sum"),
            1,
            "Lambda throttled the registry function: account or reserved concurrency reached",
        )
        self.api_server_errors = alarm(
            "ApiServerErrors",
            rest_api.metric_server_error(period=PERIOD, statistic="Sum"),
            API_5XX_THRESHOLD,
            f"At least {API_5XX_THRESHOLD} HTTP 5xx answers in 5 minutes (ServerException, crashes, timeouts)",
        )
        timeout_ms = api.timeout.to_milliseconds()
        self.near_timeout = alarm(
            "FunctionNearTimeout",
            function.metric_duration(period=PERIOD, statistic="p99"),
            round(timeout_ms * NEAR_TIMEOUT_FRACTION),
            f"p99 duration above {int(NEAR_TIMEOUT_FRACTION * 100)}% of the {timeout_ms // 1000} s timeout",
        )
        # One failed run is finished by the next; a sweep failing for hours lets storage grow.
        self.sweep_errors = alarm(
            "SweepErrors",
            sweep.function.metric_errors(period=SCHEDULE, statistic="Sum"),
            1,
            "The registry's hourly sweep failed (see its log group); abandoned uploads and unused blobs "
            "are not being reclaimed until it succeeds",
        )

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
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                width=8,
                alarms=[
                    self.function_errors,
                    self.function_throttles,
                    self.api_server_errors,
                    self.near_timeout,
                    self.sweep_errors,
                ],
            ),
        )
