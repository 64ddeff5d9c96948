"""The registry's custom domain (optional): the host name that docker logs in to.

docker (and every container tool) addresses a registry at the root of a host, `https://<host>/v2/...`;
a REST API's own URL carries its stage (`https://<api>.execute-api.<region>.amazonaws.com/prod`), which
no `docker login` can name. A Regional custom domain with its base path mapping at the root serves the
stage there: `/v2/...` for container tools and `POST /` for the ECR API, on one host.

With registry hostnames (`registry:registryHostnames`), a second, wildcard custom domain
`*.<domain>` serves the same stage at the root of every host below it: `<registry id>.<domain>` is
that registry's own host, as ECR's `<registry>.dkr.ecr.<region>.amazonaws.com` (the function reads the
registry from the host's first label), so docker can pull a repository another registry shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from .config import RegistryProps


@dataclass(frozen=True)
class MappedDomain:
    """One Regional custom domain name, its base path mapping, and its alias record (if any)."""

    domain: apigw.DomainName
    mapping: apigw.BasePathMapping
    record: route53.ARecord | None

    @property
    def target(self) -> str:
        """Where the domain's DNS record must point (an alias or CNAME to this name)."""
        return self.domain.domain_name_alias_domain_name


def mapped_domain(
    scope: Construct,
    prefix: str,
    *,
    name: str,
    certificate_arn: str,
    api: apigw.RestApi,
    zone: route53.IHostedZone | None,
) -> MappedDomain:
    """A Regional custom domain name (TLS 1.2) with the stage mapped at its root, and its alias A
    record when a hosted zone is given; the constructs' ids begin with `prefix`."""
    domain = apigw.DomainName(
        scope,
        f"{prefix}Domain",
        domain_name=name,
        certificate=acm.Certificate.from_certificate_arn(scope, f"{prefix}Certificate", certificate_arn),
        endpoint_type=apigw.EndpointType.REGIONAL,
        security_policy=apigw.SecurityPolicy.TLS_1_2,
    )
    # No base path: the stage answers at the host's root.
    mapping = domain.add_base_path_mapping(api, stage=api.deployment_stage)
    record = None
    if zone is not None:
        record = route53.ARecord(
            scope,
            f"{prefix}Alias",
            zone=zone,
            record_name=name + ".",  # fully qualified: not relative to the zone
            target=route53.RecordTarget.from_alias(targets.ApiGatewayDomain(domain)),
        )
    return MappedDomain(domain, mapping, record)


class RegistryDomain(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RegistryProps, api: apigw.RestApi) -> None:
        super().__init__(scope, construct_id)
        zone = None
        if props.hosted_zone_id:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=props.hosted_zone_id, zone_name=props.hosted_zone_name
            )
        # The root domain's ids are those it had before registry hosts existed: a deployed domain stays.
        self.root = mapped_domain(
            self, "", name=props.domain_name, certificate_arn=props.certificate_arn, api=api, zone=zone
        )
        self.registry_hosts: MappedDomain | None = None
        if props.registry_hosts_domain:
            self.registry_hosts = mapped_domain(
                self,
                "RegistryHosts",
                name=f"*.{props.registry_hosts_domain}",
                certificate_arn=props.registry_hosts_certificate_arn,
                api=api,
                zone=zone,
            )
