"""The one Lambda function, its least-privilege role, and the REST API in front of it: the ECR API
(`POST /`) and the Docker/OCI Distribution API (`/v2`, behind a REQUEST authorizer that is the same
function), with the gateway responses that speak OCI to container tools.

Why a REST API (v1) rather than an HTTP API, and why /v2 needs what it has: see infra/README.md.
"""

from __future__ import annotations

import json

from aws_cdk import Annotations, Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from registry.config import (
    ACCESS_KEY_CACHE_SECONDS_ENV,
    ACCESS_KEYS_KMS_KEY_ENV,
    AUTHORIZER_CACHE_SECONDS,
    BUCKET_ENV,
    DIRECT_UPLOAD_MAX_BYTES_ENV,
    KMS_KEY_REGISTRY_TAG,
    METRICS_NAMESPACE,
    PUBLIC_URL_ENV,
    QUOTA_ENV,
    REGISTRY_HOSTS_DOMAIN_ENV,
    SERVICE_NAME,
    TABLE_ENV,
    TOKEN_KMS_KEY_ENV,
)
from registry.distribution import http as distribution_http
from registry.storage import schema

from .bundling import BOTOCORE_SERVICES, PLATFORMS, BundleSpec, bytecode_compiler, lambda_code, python_version_of
from .config import RegistryProps
from .storage import RegistryStorage, secret_context_condition

# 3.13, not the newest (3.14): the bundle ships bytecode precompiled by an interpreter of the
# runtime's minor version, and 3.13 is the newest this project's machines have (pyenv). Without
# bytecode every cold start compiles every module (/var/task is read-only): about twice as slow.
RUNTIME = lambda_.Runtime.PYTHON_3_13
HANDLER = "registry.handler.lambda_handler"

# The function's S3 keys (lambdas/registry/storage): it may touch nothing else in its bucket.
OBJECT_PREFIXES = schema.OBJECT_PREFIXES

READ_WRITE = (
    # TransactWriteItems is no IAM action: each of its Put/Update/Delete/ConditionCheck is
    # authorized as PutItem/UpdateItem/DeleteItem/ConditionCheckItem.
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
GET_ITEM_ONLY = ("dynamodb:GetItem",)
ACCESS_LEVELS: dict[str, tuple[str, ...]] = {"ReadWrite": READ_WRITE, "GetItemOnly": GET_ITEM_ONLY}
# What the function may do to each table of the schema: chosen per table, never by default, so a
# table added to storage/schema.py fails the synth until it is listed here. The access keys are
# written by the operator (registryctl) only: the function reads one item per key id it verifies.
TABLE_ACCESS: dict[str, str] = {
    "repositories": "ReadWrite",
    "images": "ReadWrite",
    "tags": "ReadWrite",
    "layers": "ReadWrite",
    "blobs": "ReadWrite",
    "uploads": "ReadWrite",
    "keys": "GetItemOnly",
}
OBJECT_ACTIONS = [
    # GetObject also authorizes HeadObject and presigned GETs (signed with the function's role);
    # PutObject authorizes CreateMultipartUpload, UploadPart, CompleteMultipartUpload and the write
    # half of CopyObject/UploadPartCopy (their read half is GetObject on the source).
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    # ListParts: CompleteLayerUpload of a direct upload completes exactly the parts S3 lists (the
    # client PUTs them through UploadPart URLs presigned with this role: PutObject above)
    "s3:ListMultipartUploadParts",
]
# Objects of KMS-encrypted repositories: S3 asks KMS for data keys on the caller's behalf.
KMS_DATA_KEY_ACTIONS = ["kms:GenerateDataKey", "kms:Decrypt"]

# Every ECR API request is signed (SigV4): a request without an Authorization header is refused by
# API Gateway, before it can invoke (and bill) the function, with the answer the function gives it
# (wire.py: MissingAuthenticationTokenException, HTTP 403), so that boto3 raises the same error
# whichever of the two answered. BAD_REQUEST_PARAMETERS is the gateway response of a missing required
# request parameter; this header is the API's only required one (on /v2, the authorizer does the same).
REQUIRED_HEADER = "Authorization"
UNSIGNED_STATUS = "403"
UNSIGNED_ERROR = "MissingAuthenticationTokenException"
UNSIGNED_BODY = json.dumps({"__type": UNSIGNED_ERROR, "message": "Missing Authentication Token"}, separators=(",", ":"))
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

# The /v2 API (lambdas/registry/distribution; local/gateway.py does the same to its requests):
# - every method of /v2 and below, so HEAD and PATCH too;
# - a REQUEST authorizer keyed on the Authorization header: a request without a valid login gets the
#   UNAUTHORIZED gateway response, whose WWW-Authenticate challenge docker, skopeo and containerd
#   need before they send credentials. The function cannot send it itself: API Gateway renames a
#   function's WWW-Authenticate (x-amzn-Remapped-WWW-Authenticate);
# - ACCESS_DENIED and REQUEST_TOO_LARGE as OCI errors too (DENIED, SIZE_INVALID: what to do instead).
# Gateway responses belong to the whole REST API: the ECR API gets them too, in the same situations.
V2_PATH = "v2"
V2_ANSWER_HEADERS = {"Content-Type": "application/json", **distribution_http.API_VERSION}


class RegistryApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RegistryProps, storage: RegistryStorage) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if props.destroy else RemovalPolicy.RETAIN
        retention = log_retention(props.log_retention_days)
        self._function(props, storage, removal, retention)
        self._rest_api(props, removal, retention)
        integration = apigw.LambdaIntegration(
            self.function, proxy=True, allow_test_invoke=False, timeout=Duration.seconds(props.integration_timeout)
        )
        self._ecr_api(integration)
        # The registry's URL: the realm of the 401 challenge. The stage's URL, built from the stage's
        # name (a reference to the stage itself would make the deployment depend on what it deploys).
        stage_url = f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{props.stage_name}"
        self.public_url = props.public_url or stage_url
        self._distribution_api(integration)

        self._stage_extras(props, removal, retention)

    def _function(
        self, props: RegistryProps, storage: RegistryStorage, removal: RemovalPolicy, retention: logs.RetentionDays
    ) -> None:
        """The registry function, its role (its own data and log group only) and its environment."""
        architecture = lambda_.Architecture.ARM_64 if props.architecture == "arm64" else lambda_.Architecture.X86_64
        python_version = props.bundle_python_version or python_version_of(RUNTIME)
        self.bundle = BundleSpec(
            platform=props.bundle_platform or PLATFORMS[architecture.name],
            python_version=python_version,
            keep_botocore_services=BOTOCORE_SERVICES if props.trim_botocore else None,
            compiler=bytecode_compiler(props.bytecode_python, python_version),
        )

        self.log_group = logs.LogGroup(self, "FunctionLogs", retention=retention, removal_policy=removal)
        self.role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The ECR registry function: its own tables, bucket prefixes and log group only",
        )
        # Instead of AWSLambdaBasicExecutionRole (logs:* on every log group): its own log group only.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self._grant_data(storage)

        quotas = props.quota_values()
        environment = {
            BUCKET_ENV: storage.bucket.bucket_name,
            **{TABLE_ENV[logical]: table.table_name for logical, table in storage.tables.items()},
            ACCESS_KEYS_KMS_KEY_ENV: storage.keys_key.key_arn,
            TOKEN_KMS_KEY_ENV: storage.token_key.key_arn,
            ACCESS_KEY_CACHE_SECONDS_ENV: str(props.key_cache_seconds),
            DIRECT_UPLOAD_MAX_BYTES_ENV: str(props.direct_upload_max_bytes),
            **{env: str(getattr(quotas, name)) for name, env in QUOTA_ENV.items()},
            # GetAuthorizationToken's proxyEndpoint and the /v2 URLs: the custom domain, when there is one
            **({PUBLIC_URL_ENV: props.public_url} if props.public_url else {}),
            # repositoryUri and proxyEndpoint: each registry's own host, when registries have one
            **({REGISTRY_HOSTS_DOMAIN_ENV: props.registry_hosts_domain} if props.registry_hosts_domain else {}),
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        # Lambda stops the function 1 s before API Gateway gives up, so the log says why it was slow.
        self.timeout = Duration.seconds(max(props.integration_timeout - 1, 3))
        self.function = lambda_.Function(
            self,
            "Function",
            description="Amazon ECR-compatible registry: the ECR API (AWS JSON 1.1) and the Docker/OCI /v2 API",
            runtime=RUNTIME,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_code(self.bundle),
            memory_size=props.memory_size,
            timeout=self.timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
        )
        if self.bundle.compiler is None:
            Annotations.of(self.function).add_warning_v2(
                "registry:bundle-without-bytecode",
                f"No CPython {python_version} on this machine to precompile the bundle: every cold start "
                f"will compile every module (about twice as slow). Install Python {python_version}, or "
                f"set -c registry:bytecodePython=<its path>.",
            )

    def _rest_api(self, props: RegistryProps, removal: RemovalPolicy, retention: logs.RetentionDays) -> None:
        """The REST API and its stage: throttling, tracing; logs only where the account allows them."""
        # API Gateway writes a REST API's CloudWatch logs, access logs and execution logs alike, with the
        # role set for the whole account and Region (AWS::ApiGateway::Account); a stage asking for
        # either fails to deploy where none is set. Setting it is an account-wide change (it replaces a
        # role managed centrally, and outlives the stack), so this stack does it only when asked
        # (registry:apiGatewayCloudWatchRole); where the account has one, registry:apiGatewayLogs turns
        # the logs on. Otherwise the stage logs nothing: the function's own log and X-Ray still record
        # every request that reaches it. See infra/README.md.
        logging = props.api_gateway_logging
        self.access_logs = (
            logs.LogGroup(self, "AccessLogs", retention=retention, removal_policy=removal) if logging else None
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{Aws.STACK_NAME}-ecr",
            description="Amazon ECR-compatible registry: POST / with X-Amz-Target (the ECR API), /v2 (Docker/OCI)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Bodies of these types reach the function base64-encoded, byte for byte (layer bytes; a
            # body without Content-Type, docker's PATCH, is application/json to API Gateway). The ECR
            # API's application/x-amz-json-1.1 stays text: base64 would not fit its 4 MiB parts.
            binary_media_types=list(distribution_http.BINARY_MEDIA_TYPES),
            cloud_watch_role=props.api_gateway_cloud_watch_role,
            # other APIs of the account may use it
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if props.api_gateway_cloud_watch_role else None,
            policy=_source_ip_policy(props.allowed_source_cidrs),
            deploy_options=apigw.StageOptions(
                stage_name=props.stage_name,
                throttling_rate_limit=props.throttle_rate_limit,
                throttling_burst_limit=props.throttle_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs) if self.access_logs else None,
                access_log_format=(
                    apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)) if self.access_logs else None
                ),
                # execution log: failures only
                logging_level=apigw.MethodLoggingLevel.ERROR if logging else apigw.MethodLoggingLevel.OFF,
                data_trace_enabled=False,  # never log bodies (they carry layers)
                tracing_enabled=True,
                metrics_enabled=False,  # the API-level metrics suffice for one route
            ),
        )
        # RestApi adds an "Endpoint" output of its own; the stack's EndpointUrl output replaces it.
        self.api.node.try_remove_child("Endpoint")

    def _ecr_api(self, integration: apigw.LambdaIntegration) -> None:
        """POST /, refused at the gateway when unsigned (with the function's own answer to that)."""
        self.ecr_method = self.api.root.add_method(
            "POST",
            integration,
            request_parameters={f"method.request.header.{REQUIRED_HEADER}": True},
            request_validator=self.api.add_request_validator("RequireSignature", validate_request_parameters=True),
        )
        self.unsigned_response = self.api.add_gateway_response(
            "UnsignedRequest",
            type=apigw.ResponseType.BAD_REQUEST_PARAMETERS,
            status_code=UNSIGNED_STATUS,
            response_headers={"x-amzn-ErrorType": f"'{UNSIGNED_ERROR}'", "Content-Type": f"'{JSON_CONTENT_TYPE}'"},
            # API Gateway renders the application/json template whatever the client accepts.
            templates={"application/json": UNSIGNED_BODY, JSON_CONTENT_TYPE: UNSIGNED_BODY},
        )
        # A gateway response takes effect with the next deployment of the stage.
        self.api.latest_deployment.node.add_dependency(self.unsigned_response)
        self.api.latest_deployment.add_to_logical_id(
            {"unsignedRequest": [UNSIGNED_STATUS, UNSIGNED_ERROR, JSON_CONTENT_TYPE, UNSIGNED_BODY]}
        )

    def _stage_extras(self, props: RegistryProps, removal: RemovalPolicy, retention: logs.RetentionDays) -> None:
        """The execution log group (when logging) and the web ACL (when given)."""
        logging = props.api_gateway_logging
        self.execution_logs = None
        if logging:
            # API Gateway writes execution logs (level ERROR above) to a group it would create itself,
            # kept forever; created here first, it gets the same retention and goes with the stack.
            self.execution_logs = logs.LogGroup(
                self,
                "ExecutionLogs",
                retention=retention,
                removal_policy=removal,
                log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{props.stage_name}",
            )
            self.api.deployment_stage.node.add_dependency(self.execution_logs)

        if props.web_acl_arn:
            wafv2.CfnWebACLAssociation(
                self, "WebAcl", web_acl_arn=props.web_acl_arn, resource_arn=self.api.deployment_stage.stage_arn
            )

    @property
    def stage_url(self) -> str:
        return self.api.url

    def _distribution_api(self, integration: apigw.LambdaIntegration) -> None:
        """/v2 and everything under it, every method, behind the authorizer; the OCI gateway responses."""
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "V2Authorizer",
            handler=self.function,  # lambdas/registry/handler.py: an event of type REQUEST
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            # Per Authorization header; the function checks each login again (and the key's grants),
            # so a revoked key's logins stop within the key cache bound whatever this is.
            results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_SECONDS),
        )
        v2 = self.api.root.add_resource(V2_PATH)
        self.v2_methods = [
            resource.add_method("ANY", integration, authorizer=self.authorizer)
            for resource in (v2, v2.add_resource("{proxy+}"))
        ]
        self.v2_responses = []
        for kind, (status, body) in distribution_http.GATEWAY_RESPONSES.items():
            headers = dict(V2_ANSWER_HEADERS)
            if kind == "UNAUTHORIZED":
                headers["WWW-Authenticate"] = distribution_http.challenge(self.public_url)
            response = self.api.add_gateway_response(
                f"V2{kind.title().replace('_', '')}",
                type=apigw.ResponseType.of(kind),
                status_code=str(status),
                # CloudFormation takes static header values single-quoted
                response_headers={name: f"'{value}'" for name, value in headers.items()},
                templates={"application/json": body},
            )
            self.api.latest_deployment.node.add_dependency(response)
            self.api.latest_deployment.add_to_logical_id({kind: [status, headers, body]})
            self.v2_responses.append(response)

    def _grant_data(self, storage: RegistryStorage) -> None:
        unlisted = sorted(set(storage.tables) - set(TABLE_ACCESS))
        if unlisted:
            raise ValueError(
                f"tables {unlisted} of storage/schema.py have no access level in infra/api.py "
                f"TABLE_ACCESS: say what the function may do to them"
            )
        for level, actions in ACCESS_LEVELS.items():
            tables = [table.table_arn for logical, table in storage.tables.items() if TABLE_ACCESS[logical] == level]
            if tables:
                self.role.add_to_policy(
                    iam.PolicyStatement(sid=f"Tables{level}", actions=list(actions), resources=tables)
                )
        # The secrets of access keys: decrypt only, with this key only, and only ciphertexts bound to
        # an access key: the encryption context must have both keys storage/keys.py writes, no other.
        # Granted twice: by the role's policy, and by the key's own policy, which names the role (and
        # alone grants it when registry:operatorPrincipalArns takes the key's use away from IAM).
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="AccessKeySecretsDecrypt",
                actions=["kms:Decrypt"],
                resources=[storage.keys_key.key_arn],
                conditions=secret_context_condition(),
            )
        )
        storage.keys_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FunctionDecryptsSecrets",
                principals=[self.role],
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions=secret_context_condition(),
            )
        )
        # The token key: the one derivation (storage/signing.py), nothing else -- an HMAC key can do
        # nothing but GenerateMac/VerifyMac anyway.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="TokenKeyDerivation", actions=["kms:GenerateMac"], resources=[storage.token_key.key_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RegistryObjects",
                actions=OBJECT_ACTIONS,
                resources=[storage.bucket.arn_for_objects(prefix + "*") for prefix in OBJECT_PREFIXES],
            )
        )
        # Repositories name their KMS keys at runtime: any key of this Region, but only through S3,
        # and only for objects of this bucket (S3 passes the object's ARN as encryption context, or
        # the bucket's when the object has an S3 Bucket Key, as those of KMS repositories do).
        keys = f"arn:{Aws.PARTITION}:kms:{Aws.REGION}:*:key/*"
        # ... and only keys the operator assigned to some registry (the tag): never the access keys'
        # or any other key of the account. Which registry is the function's check at CreateRepository.
        assigned = {"Null": {f"aws:ResourceTag/{KMS_KEY_REGISTRY_TAG}": "false"}}
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RepositoryKeysThroughS3",
                actions=KMS_DATA_KEY_ACTIONS,
                resources=[keys],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"},
                    "StringLike": {
                        "kms:EncryptionContext:aws:s3:arn": [
                            storage.bucket.bucket_arn,
                            storage.bucket.arn_for_objects("*"),
                        ]
                    },
                    **assigned,
                },
            )
        )
        # CreateRepository checks the key it is given (assigned to the caller's registry, enabled);
        # these are called on KMS directly, so kms:ViaService cannot restrict them.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RepositoryKeysDescribe",
                actions=["kms:DescribeKey", "kms:ListResourceTags"],
                resources=[keys],
                conditions=assigned,
            )
        )


ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTimeEpoch",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integration.latency",
    "integrationStatus": "$context.integration.status",
    "integrationError": "$context.integration.error",
    "errorMessage": "$context.error.message",
    "xrayTraceId": "$context.xrayTraceId",
}


def _source_ip_policy(cidrs: tuple[str, ...]) -> iam.PolicyDocument | None:
    """Optional resource policy: only these source ranges may call the API."""
    if not cidrs:
        return None
    invoke = "execute-api:/*"
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                effect=iam.Effect.ALLOW,
                principals=[iam.AnyPrincipal()],
                actions=["execute-api:Invoke"],
                resources=[invoke],
            ),
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["execute-api:Invoke"],
                resources=[invoke],
                conditions={"NotIpAddress": {"aws:SourceIp": list(cidrs)}},
            ),
        ]
    )


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The log retention setting (registry:logRetentionDays) as CloudWatch Logs accepts it."""
    if days not in _RETENTION:
        raise ValueError(f"registry:logRetentionDays must be one of {sorted(_RETENTION)}, not {days}")
    return _RETENTION[days]
