"""The whole deployment: storage, the API (function + REST API), monitoring, outputs.

Composition only; each construct module says what it builds and why. cdk-nag findings that stay
are acknowledged below, next to the construct they concern, each with its reason.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, CfnOutput, Stack, Tags, Validations
from constructs import Construct

from .api import OBJECT_PREFIXES, RegistryApi
from .config import RegistryProps
from .domain import MappedDomain, RegistryDomain
from .monitoring import RegistryMonitoring
from .storage import RegistryStorage
from .sweep import SWEPT_PREFIXES, RegistrySweep


class RegistryStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, props: RegistryProps, acknowledge_findings: bool = True, **kwargs
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Amazon ECR-compatible container registry API (API Gateway -> Lambda -> DynamoDB + S3)",
            **kwargs,
        )
        self.props = props
        self.storage = RegistryStorage(self, "Storage", props=props)
        self.api = RegistryApi(self, "Registry", props=props, storage=self.storage)
        self.sweep = RegistrySweep(self, "Sweep", props=props, storage=self.storage, api=self.api)
        self.monitoring = RegistryMonitoring(
            self, "Monitoring", props=props, storage=self.storage, api=self.api, sweep=self.sweep
        )
        self.domain = RegistryDomain(self, "Domain", props=props, api=self.api.api) if props.domain_name else None
        Tags.of(self).add("application", "serverless-ecr-registry")

        endpoint = props.public_url or self.api.stage_url
        CfnOutput(
            self,
            "EndpointUrl",
            value=endpoint,
            description="The ECR API endpoint: pass it as --endpoint-url / endpoint_url",
        )
        if self.domain is not None:
            CfnOutput(
                self,
                "DockerLogin",
                value=f"aws ecr get-login-password --region {Aws.REGION} --endpoint-url {endpoint} "
                f"| docker login -u AWS --password-stdin {props.domain_name}",
                description="Log docker in (add --profile <the profile registryctl printed> to get-login-password)",
            )
            if self.domain.root.record is None:
                CfnOutput(
                    self,
                    "DomainTarget",
                    value=self.domain.root.target,
                    description=f"Point {props.domain_name} here: a CNAME, or an alias A record in Route 53",
                )
            if self.domain.registry_hosts is not None:
                self._registry_hosts_outputs(self.domain.registry_hosts)
        CfnOutput(
            self,
            "TryIt",
            value=f"aws ecr describe-repositories --region {Aws.REGION} --endpoint-url {endpoint}",
            description="Copy, paste, run (with a profile registryctl printed: --profile <name>)",
        )
        CfnOutput(self, "RestApiId", value=self.api.api.rest_api_id)
        CfnOutput(self, "FunctionName", value=self.api.function.function_name)
        CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name)
        # registryctl --stack reads these two (registryctl/keys.py: TABLE_OUTPUT, KMS_KEY_OUTPUT).
        CfnOutput(
            self,
            "KeysTableName",
            value=self.storage.tables["keys"].table_name,
            description="The access keys table: python -m registryctl --stack <this stack> keys ...",
        )
        CfnOutput(
            self,
            "KeysKmsKeyArn",
            value=self.storage.keys_key.key_arn,
            description="The KMS key that encrypts the access keys' secrets",
        )
        CfnOutput(
            self,
            "SweepFunctionName",
            value=self.sweep.function.function_name,
            description='The hourly sweep; invoke it with {"dryRun": true} to see what it would reclaim',
        )
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)

        if acknowledge_findings:  # False only in the test proving every acknowledgment is needed
            self._acknowledge()

    def _registry_hosts_outputs(self, hosts: MappedDomain) -> None:
        domain = self.props.registry_hosts_domain
        CfnOutput(
            self,
            "RegistryHost",
            value=f"<registry>.{domain}",
            description=f"Each registry's own host, as ECR's <registry>.dkr.ecr.<region>.amazonaws.com: "
            f"docker login <registry>.{domain}; docker pull <registry>.{domain}/<repository>:<tag>",
        )
        if hosts.record is None:
            CfnOutput(
                self,
                "RegistryHostsTarget",
                value=hosts.target,
                description=f"Point *.{domain} here: a CNAME, or an alias A record in Route 53",
            )

    def _acknowledge(self) -> None:
        """cdk-nag (AwsSolutions) findings we accept, each on the narrowest construct, with why."""

        def ack(scope: Construct, rule: str, reason: str) -> None:
            Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))

        api, storage = self.api, self.storage
        ack(
            api.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray (Tracing.ACTIVE): xray:PutTraceSegments/PutTelemetryRecords support no resource restriction.",
        )
        bucket_id = self.get_logical_id(storage.bucket.node.default_child)
        for prefix in OBJECT_PREFIXES:
            ack(
                api.role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                "Object keys are content digests and upload ids known only at runtime; the grant is "
                f"limited to the function's own bucket and its {prefix} prefix.",
            )
        ack(
            api.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:*:key/*]",
            "Repositories name their customer KMS keys at runtime (CreateRepository "
            "encryptionConfiguration). kms:GenerateDataKey/Decrypt are limited by kms:ViaService to S3 in "
            "this Region and by encryption context to this bucket's objects; kms:DescribeKey and "
            "kms:ListResourceTags only read a key's metadata and tags to check its assignment; every "
            "statement requires the key to carry the ecr-registry:registry-id tag (an operator's assignment).",
        )
        for prefix in SWEPT_PREFIXES:
            ack(
                self.sweep.role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                f"The sweep deletes abandoned objects of the {prefix} prefix, whose keys (upload ids, "
                "digests) it learns by listing; it may touch no other prefix of its bucket.",
            )
        python_runtime = (
            "Python 3.13, one minor version behind the newest Lambda runtime, on purpose: the bundle ships "
            "bytecode precompiled by an interpreter of the runtime's version (Lambda's /var/task is "
            "read-only, so without it every cold start compiles every module, about twice as slow), and "
            "3.13 is the newest the deploying machines have. CPython 3.13 gets security fixes until 2029."
        )
        for function in (api.function, self.sweep.function):
            ack(function, "AwsSolutions-L1", python_runtime)
        ack(
            api.api,
            "AwsSolutions-APIG2",
            "The request validator checks parameters only (the ECR API's required Authorization header, so "
            "unsigned requests never invoke the function; on /v2 the authorizer plays that part); bodies are "
            "validated by the function: ECR API bodies against the botocore ECR model (members, types, "
            "lengths, patterns, enums), /v2 bodies against their digests and manifest schemas, which an API "
            "Gateway model could only duplicate or, for layer bytes, not express.",
        )
        # POST / (the ECR API); the /v2 routes have the REQUEST authorizer.
        ack(
            api.ecr_method,
            "AwsSolutions-APIG4",
            "ECR clients sign requests with SigV4 for the 'ecr' service, which API Gateway IAM "
            "authorization (execute-api) cannot verify. The function verifies every signature itself, "
            "before any other work, against access keys the registry issued (keys table, secrets "
            "encrypted with the stack's KMS key), and checks the key's grants per operation.",
        )
        ack(
            api.ecr_method,
            "AwsSolutions-COG4",
            "ECR clients (AWS SDKs, the AWS CLI) sign with SigV4 access keys and cannot present Cognito "
            "tokens; the function authenticates every request by its signature (see AwsSolutions-APIG4).",
        )
        for method in api.v2_methods:
            ack(
                method,
                "AwsSolutions-COG4",
                "Container tools (docker, containerd, skopeo) log in with HTTP Basic, user AWS and the "
                "password of GetAuthorizationToken, as to Amazon ECR; they cannot present Cognito tokens. "
                "The REQUEST authorizer (the registry function) verifies that login before any /v2 request "
                "reaches the function, which verifies it again with the key's grants.",
            )
        if not self.props.web_acl_arn:
            ack(
                api.api,
                "AwsSolutions-APIG3",
                "WAF is optional (a web ACL costs at least 5 USD/month plus requests): set "
                "registry:webAclArn to associate one; stage throttling limits request floods meanwhile.",
            )
        if self.props.api_gateway_cloud_watch_role:
            # API Gateway's account-level CloudWatch role: AWS's own managed policy is the documented one.
            ack(
                api.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-wide logging role must push to log groups of every API of the "
                "account; AWS maintains this managed policy for exactly that.",
            )
        if not self.props.api_gateway_logging:
            stage = api.api.deployment_stage
            no_account_role = (
                "A REST API stage's CloudWatch logs (access and execution alike) need the account-wide API "
                "Gateway CloudWatch role, which this stack sets only when asked "
                "(registry:apiGatewayCloudWatchRole: it would replace a centrally managed role); set "
                "registry:apiGatewayLogs=true where the account has one. The function's log and X-Ray "
                "record every request that reaches it."
            )
            ack(stage, "AwsSolutions-APIG1", no_account_role)
            ack(stage, "AwsSolutions-APIG6", no_account_role)
