"""The registry's custom domain (optional): the host name that docker logs in to.

docker (and every container tool) addresses a registry at the root of a host, `https://<host>/v2/...`;
a REST API's own URL carries its stage (`https://<api>.execute-api.<region>.amazonaws.com/prod`), which
no `docker login` can name. A Regional custom domain with its base path mapping at the root serves the
stage there: `/v2/...` for container tools and `POST /` for the ECR API, on one host.
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from .config import RegistryProps


class RegistryDomain(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RegistryProps, api: apigw.RestApi) -> None:
        super().__init__(scope, construct_id)
        self.domain = apigw.DomainName(
            self,
            "Domain",
            domain_name=props.domain_name,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", props.certificate_arn),
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
        )
        # No base path: the stage answers at the host's root.
        self.mapping = self.domain.add_base_path_mapping(api, stage=api.deployment_stage)
        self.record: route53.ARecord | None = None
        if props.hosted_zone_id:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=props.hosted_zone_id, zone_name=props.hosted_zone_name
            )
            self.record = route53.ARecord(
                self,
                "Alias",
                zone=zone,
                record_name=props.domain_name + ".",  # fully qualified: not relative to the zone
                target=route53.RecordTarget.from_alias(targets.ApiGatewayDomain(self.domain)),
            )

    @property
    def target(self) -> str:
        """Where the domain's DNS record must point (an alias or CNAME to this name)."""
        return self.domain.domain_name_alias_domain_name
