"""The scheduled sweep (lambdas/registry/sweep/, docs/sweep.md): a second function from the registry's own asset,
run every hour by an EventBridge rule, that reclaims what abandoned work leaves behind (expired
uploads, layers no image ever referenced, unused blobs, orphaned objects, half-done repository
deletions), applies the repositories' lifecycle policies (and completes their previews), and
measures what each repository and registry holds (EMF metrics in its log: registry.sweep.usage,
graphed by monitoring.py; which of them, registry:usageMetrics says).

It has its own role: it lists and deletes, where the API function reads and writes. It never sees the
access keys table nor any KMS key (deleting an SSE-KMS object needs no key).

No reserved concurrency: runs an hour apart never overlap (timeout 15 min), a manual invocation may,
and two sweeps racing are safe by design (every delete is conditional on what was judged); while a
reservation of even 1 fails to deploy in accounts at Lambda's new-account concurrency limit of 10.
No retries either: a failed run is finished by the next one, an hour later.
"""

from __future__ import annotations

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from registry import sweep
from registry.config import BUCKET_ENV, SWEEP_SERVICE_NAME, TABLE_ENV
from registry.storage.schema import BLOBS_PREFIX, MANIFESTS_PREFIX, STAGED_PARTS_PREFIX
from registry.sweep import GRACE_ENV
from registry.sweep.usage import USAGE_METRICS_ENV

from .api import TABLE_ACCESS, RegistryApi, log_retention
from .bundling import lambda_code
from .config import RegistryProps
from .storage import RegistryStorage

HANDLER = "registry.sweep.handler.lambda_handler"
SCHEDULE = Duration.hours(1)
TIMEOUT = Duration.minutes(15)  # the run stops itself 30 s before; the next run carries on
MEMORY_MB = 1024  # it holds the blobs table's entries while it judges them
# The handler's metric (EMF, namespace config.METRICS_NAMESPACE, dimension service=SWEEP_SERVICE_NAME):
# 1 for a run that stopped before it was done, 0 for one that finished (dry runs emit nothing).
INCOMPLETE_METRIC = sweep.INCOMPLETE_METRIC
# Below this the sweep could judge work a request is still doing (see the sweep's module docstring).
SAFE_GRACE_SECONDS = 3600
SWEPT_PREFIXES = (STAGED_PARTS_PREFIX, BLOBS_PREFIX, MANIFESTS_PREFIX)
TABLE_ACTIONS = (
    # Scan: every phase judges whole tables. Query + BatchWriteItem: purging a half-deleted
    # repository's images, tags, layers and preview results. UpdateItem: stamping old items, and the
    # repository counter in the transaction that finishes a deletion (with DeleteItem). BatchGetItem:
    # whether the images that claimed a layer exist (storage/images.py). Lifecycle policies: an
    # expiry is BatchDeleteImage's transaction (DeleteItem, UpdateItem) with ConditionCheckItem on
    # the policy item; a preview's results are UpdateItems (an Update creates the item: no PutItem)
    # with ConditionCheckItem on the repository and the preview (storage/lifecycle.py).
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)


class RegistrySweep(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, props: RegistryProps, storage: RegistryStorage, api: RegistryApi
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if props.destroy else RemovalPolicy.RETAIN
        bucket = storage.bucket

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention(props.log_retention_days), removal_policy=removal
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The registry's sweep: deletes abandoned uploads, layers and blobs; applies lifecycle policies",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        data_tables = [
            table.table_arn for logical, table in storage.tables.items() if TABLE_ACCESS[logical] == "ReadWrite"
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(sid="DataTables", actions=list(TABLE_ACTIONS), resources=data_tables)
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListSweptPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [prefix + "*" for prefix in SWEPT_PREFIXES]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListMultipartUploads", actions=["s3:ListBucketMultipartUploads"], resources=[bucket.bucket_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteSweptObjects",
                actions=["s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(prefix + "*") for prefix in SWEPT_PREFIXES],
            )
        )

        self.function = lambda_.Function(
            self,
            "Function",
            description="ECR registry sweep: reclaims abandoned uploads, layers, blobs; applies lifecycle policies",
            runtime=api.function.runtime,
            architecture=api.function.architecture,
            handler=HANDLER,
            code=lambda_code(api.bundle),  # the API function's asset: same hash, uploaded once
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            role=self.role,
            log_group=self.log_group,
            retry_attempts=0,
            environment={
                BUCKET_ENV: bucket.bucket_name,
                **{
                    TABLE_ENV[logical]: table.table_name
                    for logical, table in storage.tables.items()
                    if TABLE_ACCESS[logical] == "ReadWrite"
                },
                GRACE_ENV: str(props.sweep_grace_seconds),
                USAGE_METRICS_ENV: props.usage_metrics,
                "POWERTOOLS_SERVICE_NAME": SWEEP_SERVICE_NAME,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )
        if props.sweep_grace_seconds < SAFE_GRACE_SECONDS:
            Annotations.of(self.function).add_warning_v2(
                "registry:sweep-grace-too-short",
                f"registry:sweepGraceSeconds={props.sweep_grace_seconds}: the sweep may delete what a "
                f"request is still using. Below {SAFE_GRACE_SECONDS} s only for a registry nobody uses.",
            )

        self.rule = events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(SCHEDULE),
            description="Runs the registry's sweep",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
