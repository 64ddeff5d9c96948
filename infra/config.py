"""The deployment's settings: stack props with defaults, readable from CDK context.

Every field can be set in `cdk.json` ("context") or on the command line with
`-c registry:<key>=<value>` (command-line values arrive as strings and are parsed here).

    key                          default                  meaning
    registry:stackName           ServerlessEcrRegistry    CloudFormation stack name
    registry:removalPolicy       retain                   retain | destroy (test stacks only: data goes)
    registry:stageName           prod                     API Gateway stage (the URL's first segment)
    registry:throttleRateLimit   100                      stage steady-state requests per second
    registry:throttleBurstLimit  200                      stage burst
    registry:memorySize          1024                     Lambda MB (CPU and network scale with it)
    registry:integrationTimeout  29                       API Gateway -> Lambda, seconds (Regional REST
                                                          APIs may go above 29 after a quota increase)
    registry:logRetentionDays    30                       Lambda and access logs
    registry:architecture        arm64                    arm64 | x86_64
    registry:bundlePlatform      (from architecture)      pip --platform of the bundled wheels
    registry:bundlePythonVersion (from the runtime)       pip --python-version of the bundled wheels
    registry:bytecodePython      auto                     interpreter that precompiles the bundle's .pyc:
                                                          auto (one of the bundle's Python version found
                                                          on this machine, else none) | none | a path
    registry:trimBotocore        true                     drop botocore models of unused services
    registry:keyCacheSeconds     60                       how long a warm function trusts an access key
                                                          it has read: the revocation delay (0-900)
    registry:directUploadMaxBytes 2147483648              the largest layer a client may upload straight
                                                          to S3 (GetLayerPartUploadUrls): Complete hashes
                                                          it within the integration timeout; 0: off
    registry:sweepGraceSeconds   86400                    the sweep reclaims only what is older than this
                                                          (keep it far above the function timeout)
    registry:usageMetrics        repository               the usage metrics the sweep writes (each a
                                                          billed custom metric): repository (each
                                                          repository's and registry's) | registry
                                                          (each registry's only) | off
    registry:quotas              {}                       {"max_images_per_repository": 1000, ...}
                                                          (field names of registry.config.Quotas)
    registry:allowedSourceCidrs  []                       if set: an API resource policy denying others
    registry:webAclArn           ""                       if set: associate this WAFv2 web ACL
    registry:alarmTopicArn       ""                       if set: alarms notify this SNS topic
    registry:concurrencyAlarmThreshold 800                alarm when the account's Lambda concurrency
                                                          reaches this (set ~80% of the account quota)
    registry:apiGatewayLogs      false                    the account's API Gateway CloudWatch role is
                                                          set (e.g. centrally): write the stage's access
                                                          log and execution log (ERROR); without the
                                                          role a stage with either fails to deploy
    registry:apiGatewayCloudWatchRole false               this stack creates that role and sets it as the
                                                          account's (AWS::ApiGateway::Account: replaces
                                                          any role set before, kept after destroy);
                                                          implies apiGatewayLogs
    registry:operatorPrincipalArns []                     if set: IAM principals (registryctl users) that
                                                          alone may encrypt access keys' secrets; the
                                                          account then only administers that KMS key
    registry:domainName          ""                       if set: the registry's host name (no scheme), a
                                                          Regional custom domain mapped at its root to
                                                          the stage: the URL docker logs in to
    registry:certificateArn      ""                       the ACM certificate of domainName, in the
                                                          stack's Region (required with domainName)
    registry:hostedZoneId        ""                       if set (with hostedZoneName): the Route 53
    registry:hostedZoneName      ""                       hosted zone that gets the domain's A alias
                                                          (and the registry hosts' wildcard alias)
    registry:registryHostnames   false                    each registry gets a host of its own,
                                                          <registry id>.<domainName>, as on ECR: a
                                                          wildcard custom domain *.<domainName> (needs
                                                          domainName); repositoryUri names it
    registry:wildcardCertificateArn (certificateArn)      the ACM certificate of *.<domainName>, in the
                                                          stack's Region (default: certificateArn, which
                                                          must then cover both names)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from constructs import Node

from registry.config import DEFAULT_DIRECT_UPLOAD_MAX_BYTES, DEFAULT_KEY_CACHE_SECONDS, MAX_KEY_CACHE_SECONDS, Quotas
from registry.distribution.routes import registry_in_host
from registry.sweep import DEFAULT_GRACE_SECONDS
from registry.sweep.usage import DEFAULT_USAGE_METRICS, UsageMetrics

PREFIX = "registry:"
# Roles and users (incl. paths); assumed-role session ARNs are not principals a key policy can name.
_IAM_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")
# A host name of at least two labels (RFC 1123), lower-cased, without the root's trailing dot.
_HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ACM_CERTIFICATE = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+")
_MAX_HOST_NAME = 253


@dataclass(frozen=True)
class RegistryProps:
    stack_name: str = "ServerlessEcrRegistry"
    removal_policy: str = "retain"
    stage_name: str = "prod"
    throttle_rate_limit: float = 100
    throttle_burst_limit: int = 200
    memory_size: int = 1024
    integration_timeout: int = 29
    log_retention_days: int = 30
    architecture: str = "arm64"
    bundle_platform: str = ""
    bundle_python_version: str = ""
    bytecode_python: str = "auto"
    trim_botocore: bool = True
    key_cache_seconds: int = int(DEFAULT_KEY_CACHE_SECONDS)
    direct_upload_max_bytes: int = DEFAULT_DIRECT_UPLOAD_MAX_BYTES
    sweep_grace_seconds: int = int(DEFAULT_GRACE_SECONDS)
    usage_metrics: str = DEFAULT_USAGE_METRICS.value
    quotas: dict[str, int] = field(default_factory=dict)
    allowed_source_cidrs: tuple[str, ...] = ()
    web_acl_arn: str = ""
    alarm_topic_arn: str = ""
    concurrency_alarm_threshold: int = 800
    api_gateway_logs: bool = False
    api_gateway_cloud_watch_role: bool = False
    operator_principal_arns: tuple[str, ...] = ()
    domain_name: str = ""
    certificate_arn: str = ""
    hosted_zone_id: str = ""
    hosted_zone_name: str = ""
    registry_hostnames: bool = False
    wildcard_certificate_arn: str = ""

    def __post_init__(self) -> None:
        if self.removal_policy not in ("retain", "destroy"):
            raise ValueError(f"registry:removalPolicy must be retain or destroy, not {self.removal_policy!r}")
        if self.architecture not in ("arm64", "x86_64"):
            raise ValueError(f"registry:architecture must be arm64 or x86_64, not {self.architecture!r}")
        if not 1 <= self.integration_timeout <= 900:
            raise ValueError("registry:integrationTimeout must be between 1 and 900 seconds")
        if not 0 <= self.key_cache_seconds <= MAX_KEY_CACHE_SECONDS:
            raise ValueError(
                f"registry:keyCacheSeconds must be between 0 and {MAX_KEY_CACHE_SECONDS:.0f}, "
                f"not {self.key_cache_seconds}"
            )
        if self.direct_upload_max_bytes < 0:
            raise ValueError(f"registry:directUploadMaxBytes must not be negative, not {self.direct_upload_max_bytes}")
        if self.sweep_grace_seconds < 0:
            raise ValueError(f"registry:sweepGraceSeconds must not be negative, not {self.sweep_grace_seconds}")
        if self.usage_metrics not in set(UsageMetrics):
            raise ValueError(f"registry:usageMetrics must be {' | '.join(UsageMetrics)}, not {self.usage_metrics!r}")
        if self.concurrency_alarm_threshold < 1:
            raise ValueError("registry:concurrencyAlarmThreshold must be at least 1")
        for arn in self.operator_principal_arns:
            if not _IAM_PRINCIPAL.fullmatch(arn):
                raise ValueError(
                    f"registry:operatorPrincipalArns must be IAM role or user ARNs "
                    f"(arn:<partition>:iam::<account>:role/<name>), not {arn!r}"
                )
        Quotas(**self.quotas)  # unknown quota names fail here, at synth
        self._check_domain()

    def _check_domain(self) -> None:
        # Host names are case-insensitive and may be written fully qualified: kept in one form.
        object.__setattr__(self, "domain_name", self.domain_name.strip().lower().removesuffix("."))
        object.__setattr__(self, "hosted_zone_name", self.hosted_zone_name.strip().lower().removesuffix("."))
        domain, zone = self.domain_name, self.hosted_zone_name
        if not domain:
            for name, value in (
                ("certificateArn", self.certificate_arn),
                ("hostedZoneId", self.hosted_zone_id),
                ("hostedZoneName", zone),
                ("registryHostnames", self.registry_hostnames),
            ):
                if value:
                    raise ValueError(f"registry:{name} is set without registry:domainName")
        if self.wildcard_certificate_arn and not self.registry_hostnames:
            raise ValueError("registry:wildcardCertificateArn is set without registry:registryHostnames")
        if not domain:
            return
        if "://" in domain:
            raise ValueError(f"registry:domainName must be a host name, without a scheme: not {domain!r}")
        if not _HOST_NAME.fullmatch(domain):
            raise ValueError(
                f"registry:domainName must be a host name of at least two labels (no path, no port): not {domain!r}"
            )
        named = registry_in_host(domain)
        if named:  # the function would act in that registry on every request to the domain
            raise ValueError(
                f"registry:domainName must not begin with a 12-digit label: {domain!r} names registry {named}"
            )
        if not self.certificate_arn:
            raise ValueError("registry:domainName needs registry:certificateArn (an ACM certificate in the Region)")
        certificates = {"certificateArn": self.certificate_arn, "wildcardCertificateArn": self.wildcard_certificate_arn}
        for name, arn in certificates.items():
            if arn and not _ACM_CERTIFICATE.fullmatch(arn):
                raise ValueError(
                    f"registry:{name} must be an ACM certificate ARN "
                    f"(arn:aws:acm:<region>:<account>:certificate/<id>), not {arn!r}"
                )
        if self.registry_hostnames and len(domain) > _MAX_HOST_NAME - len("123456789012."):
            raise ValueError(
                f"registry:registryHostnames needs registry:domainName of at most "
                f"{_MAX_HOST_NAME - len('123456789012.')} characters: <registry id>.{domain} is too long a host name"
            )
        if bool(self.hosted_zone_id) != bool(zone):
            raise ValueError("registry:hostedZoneId and registry:hostedZoneName go together: set both or neither")
        if zone and not (domain == zone or domain.endswith("." + zone)):
            raise ValueError(f"registry:domainName {domain!r} is not in the hosted zone {zone!r}")

    @property
    def destroy(self) -> bool:
        return self.removal_policy == "destroy"

    @property
    def api_gateway_logging(self) -> bool:
        """API Gateway may write CloudWatch logs for this account: its role is set, by us or before."""
        return self.api_gateway_logs or self.api_gateway_cloud_watch_role

    @property
    def registry_hosts_domain(self) -> str:
        """The domain under which each registry has its own host (`<registry id>.<domain>`), or ""."""
        return self.domain_name if self.registry_hostnames else ""

    @property
    def registry_hosts_certificate_arn(self) -> str:
        return self.wildcard_certificate_arn or self.certificate_arn

    @property
    def public_url(self) -> str:
        """The registry's URL on its custom domain, or "" (then: the stage's URL)."""
        return f"https://{self.domain_name}" if self.domain_name else ""

    def quota_values(self) -> Quotas:
        return Quotas(**self.quotas)

    @classmethod
    def from_context(cls, node: Node, **overrides: Any) -> RegistryProps:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = node.try_get_context(PREFIX + _camel(f.name))
            if raw is not None and raw != "":
                values[f.name] = _parse(raw, cls.__dataclass_fields__[f.name].default, f.name)
        values.update(overrides)
        return cls(**values)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _parse(raw: Any, default: Any, name: str) -> Any:
    """Context from cdk.json keeps its JSON type; from `-c key=value` it is a string."""
    if name == "quotas":
        value = json.loads(raw) if isinstance(raw, str) else raw
        return {k: int(v) for k, v in dict(value).items()}
    if name in ("allowed_source_cidrs", "operator_principal_arns"):
        if isinstance(raw, str):
            raw = json.loads(raw) if raw.lstrip().startswith("[") else raw.split(",")
        return tuple(c.strip() for c in raw if c.strip())
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return str(raw)
