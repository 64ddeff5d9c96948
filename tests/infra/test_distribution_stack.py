"""The Docker/OCI `/v2` API in the stack: its routes behind the REQUEST authorizer, the binary media
types, the gateway responses that speak OCI (the 401 challenge above all), and the optional custom
domain that docker needs -- what local/gateway.py does to `/v2` requests, as API Gateway is told to."""

from __future__ import annotations

import json
import re

import pytest
from stack_synth import API_HANDLER, function_by_handler

from registry.config import AUTHORIZER_CACHE_SECONDS, PUBLIC_URL_ENV, REGISTRY_HOSTS_DOMAIN_ENV
from registry.distribution import http as distribution_http

ECR_CONTENT_TYPE = "application/x-amz-json-1.1"
DOMAIN = "registry.example.com"
CERTIFICATE = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-0000-4000-8000-000000000000"
ZONE = {"registry:hostedZoneId": "Z0123456789ABCDEFGHIJ", "registry:hostedZoneName": "example.com"}
WILDCARD_CERTIFICATE = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-0000-4000-8000-00000000002a"
OCI_CODES = {"UNAUTHORIZED": "UNAUTHORIZED", "ACCESS_DENIED": "DENIED", "REQUEST_TOO_LARGE": "SIZE_INVALID"}
# What the tokens of the template stand for, to read the values they build (render()).
REFS = {"AWS::Region": "us-east-1", "AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws"}


def resources(template, kind: str) -> dict[str, dict]:
    return template.find_resources(kind)


def rest_api_id(template) -> str:
    (api_id,) = resources(template, "AWS::ApiGateway::RestApi")
    return api_id


def render(value, refs: dict[str, str]):
    """A template value with its Ref / Fn::Join / Fn::GetAtt resolved from `refs`."""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        return [render(v, refs) for v in value]
    if set(value) == {"Ref"}:
        return refs[value["Ref"]]
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(render(p, refs)) for p in parts)
    if set(value) == {"Fn::GetAtt"}:
        return refs[".".join(value["Fn::GetAtt"])]
    raise AssertionError(f"cannot render {value}")


def refs_of(template) -> dict[str, str]:
    """The stack's pseudo parameters, the API's id as API, its stage's name."""
    (stage_id, stage) = next(iter(resources(template, "AWS::ApiGateway::Stage").items()))
    return {**REFS, rest_api_id(template): "API", stage_id: stage["Properties"]["StageName"]}


def stage_url(stage: str = "prod") -> str:
    return f"https://API.execute-api.us-east-1.amazonaws.com/{stage}"


def v2_resources(template) -> dict[str, str]:
    """path part -> logical id: /v2 and /v2/{proxy+}."""
    api_id = rest_api_id(template)
    found = resources(template, "AWS::ApiGateway::Resource")
    under = {i: (r["Properties"]["ParentId"], r["Properties"]["PathPart"]) for i, r in found.items()}
    (v2_id,) = [i for i, at in under.items() if at == ({"Fn::GetAtt": [api_id, "RootResourceId"]}, "v2")]
    (proxy_id,) = [i for i, at in under.items() if at == ({"Ref": v2_id}, "{proxy+}")]
    assert set(found) == {v2_id, proxy_id}, "the API's only resources: / (its root), /v2 and /v2/{proxy+}"
    return {"v2": v2_id, "{proxy+}": proxy_id}


def methods(template) -> dict[str, dict]:
    """'/', '/v2', '/v2/{proxy+}' -> the properties of the one method of each."""
    api_id = rest_api_id(template)
    paths = {json.dumps({"Fn::GetAtt": [api_id, "RootResourceId"]}): "/"}
    for part, logical_id in v2_resources(template).items():
        paths[json.dumps({"Ref": logical_id})] = "/v2" if part == "v2" else "/v2/{proxy+}"
    found: dict[str, dict] = {}
    for method in resources(template, "AWS::ApiGateway::Method").values():
        path = paths[json.dumps(method["Properties"]["ResourceId"])]
        assert path not in found, f"one method per resource: {path}"
        found[path] = method["Properties"]
    return found


def authorizer(template) -> tuple[str, dict]:
    (found,) = resources(template, "AWS::ApiGateway::Authorizer").items()
    return found


def gateway_responses(template) -> dict[str, dict]:
    """response type -> properties."""
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()
    }


def function_id(template) -> str:
    return function_by_handler(template, API_HANDLER)[0]


def environment(template) -> dict:
    return function_by_handler(template, API_HANDLER)[1]["Properties"]["Environment"]["Variables"]


@pytest.fixture(scope="module")
def domain_stack(variant):
    """The stack with a custom domain in a Route 53 zone."""
    return variant({"registry:domainName": DOMAIN, "registry:certificateArn": CERTIFICATE, **ZONE})


@pytest.fixture(scope="module")
def with_domain(domain_stack):
    return domain_stack.template


# --- routes and the authorizer -----------------------------------------------------------------------


def test_v2_and_everything_under_it_serve_every_method_through_the_function(template):
    """ANY: GET and HEAD (pulls), POST, PATCH and PUT (uploads), DELETE -- one route for each path."""
    found = methods(template)
    assert set(found) == {"/", "/v2", "/v2/{proxy+}"}
    for path in ("/v2", "/v2/{proxy+}"):
        props = found[path]
        assert props["HttpMethod"] == "ANY", path
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY" and integration["IntegrationHttpMethod"] == "POST"
        uri = json.dumps(integration["Uri"])
        assert json.dumps({"Fn::GetAtt": [function_id(template), "Arn"]}) in uri, "the same function"
        assert integration["TimeoutInMillis"] == found["/"]["Integration"].get("TimeoutInMillis", 29_000)


def test_v2_routes_are_behind_the_request_authorizer(template):
    (authorizer_id, _) = authorizer(template)
    for path in ("/v2", "/v2/{proxy+}"):
        props = methods(template)[path]
        assert props["AuthorizationType"] == "CUSTOM", path
        assert props["AuthorizerId"] == {"Ref": authorizer_id}, path
        assert "RequestParameters" not in props and "RequestValidatorId" not in props, (
            "the authorizer, not a validator, answers a request without a login: with the 401 challenge"
        )


def test_the_ecr_api_keeps_its_required_signature_and_no_authorizer(template):
    props = methods(template)["/"]
    assert props["HttpMethod"] == "POST" and props["AuthorizationType"] == "NONE"
    assert props["RequestParameters"] == {"method.request.header.Authorization": True}
    assert "RequestValidatorId" in props


def test_the_authorizer_is_the_function_keyed_on_the_authorization_header_and_cached(template):
    (_, props) = authorizer(template)
    props = props["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert props["AuthorizerResultTtlInSeconds"] == AUTHORIZER_CACHE_SECONDS
    assert props["RestApiId"] == {"Ref": rest_api_id(template)}
    uri = json.dumps(props["AuthorizerUri"])
    assert json.dumps({"Fn::GetAtt": [function_id(template), "Arn"]}) in uri
    assert "AuthorizerCredentials" not in props, "API Gateway invokes it under the function's resource policy"


def test_api_gateway_may_invoke_the_function_as_the_authorizer_and_on_each_route(template):
    refs = {**refs_of(template), "AWS::AccountId": "111122223333"}
    (authorizer_id, _) = authorizer(template)
    refs[authorizer_id] = "AUTH"
    sources = set()
    for permission in resources(template, "AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["FunctionName"] != {"Fn::GetAtt": [function_id(template), "Arn"]}:
            continue
        assert props["Action"] == "lambda:InvokeFunction" and props["Principal"] == "apigateway.amazonaws.com"
        sources.add(render(props["SourceArn"], refs))
    api = "arn:aws:execute-api:us-east-1:111122223333:API"
    assert sources == {f"{api}/prod/POST/", f"{api}/prod/*/v2", f"{api}/prod/*/v2/*", f"{api}/authorizers/AUTH"}


def test_the_authorizers_policy_covers_every_v2_route_of_the_stage_and_nothing_else():
    """API Gateway caches the authorizer's policy per Authorization header, not per path, and checks
    each later request of that login against it: the function's Allow must name every /v2 route of
    the stage (any method), and nothing else of the API."""
    import time
    from types import SimpleNamespace

    from registry.auth import login
    from registry.auth.access_key_cache import AccessKeyCache
    from registry.distribution import authorize
    from registry.records import AccessKey

    token_key = b"k" * 32
    key = AccessKey("AKIDEXAMPLE", "111122223333", "me", (), time.time())
    keys = AccessKeyCache({key.access_key_id: key}.get, ttl=60)
    store = SimpleNamespace(token_key=SimpleNamespace(get=lambda: token_key))
    password, _ = login.issue(token_key, key, time.time())
    api = "arn:aws:execute-api:us-east-1:111122223333:API"
    event = {
        "type": "REQUEST",
        "methodArn": f"{api}/prod/GET/v2/",
        "headers": {"Authorization": "Basic " + login.basic_credentials("AWS", password)},
    }
    (statement,) = authorize(event, store, keys)["policyDocument"]["Statement"]  # type: ignore[arg-type]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    pattern = "^" + re.escape(statement["Resource"]).replace(r"\*", ".*") + "$"
    for route in ("GET/v2", "GET/v2/", "HEAD/v2/a/b/manifests/v1", "PATCH/v2/a/blobs/uploads/u", "DELETE/v2/a/x"):
        assert re.match(pattern, f"{api}/prod/{route}"), route
    assert not re.match(pattern, f"{api}/prod/POST/"), "not the ECR API"
    assert not re.match(pattern, f"{api}/test/GET/v2/"), "not another stage"
    for headers in ({}, {"Authorization": "Basic " + login.basic_credentials("AWS", "not-a-login")}):
        # Denied, never raised: a raised Unauthorized would count in the function's error alarm
        (denied,) = authorize({**event, "headers": headers}, store, keys)["policyDocument"]["Statement"]  # type: ignore[arg-type]
        assert denied["Effect"] == "Deny" and denied["Resource"] == statement["Resource"]


# --- bodies: binary media types ----------------------------------------------------------------------


def test_layer_bytes_reach_the_function_byte_for_byte_and_ecr_api_bodies_as_text(template):
    (api,) = resources(template, "AWS::ApiGateway::RestApi").values()
    binary = api["Properties"]["BinaryMediaTypes"]
    # application/json: API Gateway's type for a body without Content-Type (docker's PATCH)
    assert binary == list(distribution_http.BINARY_MEDIA_TYPES) == ["application/octet-stream", "application/json"]
    # No wildcard: the ECR API's bodies stay text, so its 4 MiB parts still fit Lambda's payload.
    assert not any("*" in media_type for media_type in binary)
    assert ECR_CONTENT_TYPE not in binary


# --- gateway responses: what API Gateway answers itself, in OCI terms --------------------------------


@pytest.mark.parametrize("kind", sorted(distribution_http.GATEWAY_RESPONSES))
def test_gateway_responses_speak_oci(template, kind):
    status, body = distribution_http.GATEWAY_RESPONSES[kind]
    props = gateway_responses(template)[kind]
    assert props["RestApiId"] == {"Ref": rest_api_id(template)}
    assert props["StatusCode"] == str(status)
    templates = props["ResponseTemplates"]
    assert "application/json" in templates, "the template API Gateway renders whatever the client accepts"
    for rendered in templates.values():
        assert rendered == body
        # A gateway response's template is VTL: no reference ($) nor directive (#) may hide in it.
        assert "$" not in rendered and "#" not in rendered
    headers = props["ResponseParameters"]
    assert headers["gatewayresponse.header.Content-Type"] == "'application/json'"
    for name, value in distribution_http.API_VERSION.items():
        assert headers[f"gatewayresponse.header.{name}"] == f"'{value}'"
    # CloudFormation's static header values are single-quoted, and hold no quote of their own.
    for value in headers.values():
        text = render(value, refs_of(template))
        assert text[0] == text[-1] == "'" and "'" not in text[1:-1], text
    assert json.loads(body)["errors"][0]["code"] == OCI_CODES[kind]


def test_the_401_challenges_for_basic_login_at_the_registrys_url(template):
    """API Gateway renames a function's WWW-Authenticate: the gateway's UNAUTHORIZED response carries
    ECR's challenge, whose realm is the registry's URL (here the stage's, as EndpointUrl says)."""
    headers = gateway_responses(template)["UNAUTHORIZED"]["ResponseParameters"]
    challenge = render(headers["gatewayresponse.header.WWW-Authenticate"], refs_of(template))
    assert challenge == f"'{distribution_http.challenge(stage_url())}'"
    assert (
        challenge
        == '\'Basic realm="https://API.execute-api.us-east-1.amazonaws.com/prod/",service="ecr.amazonaws.com"\''
    )
    endpoint = render(template.find_outputs("EndpointUrl")["EndpointUrl"]["Value"], refs_of(template))
    assert challenge.removeprefix("'Basic realm=\"").startswith(endpoint)
    for kind in ("ACCESS_DENIED", "REQUEST_TOO_LARGE"):
        assert "gatewayresponse.header.WWW-Authenticate" not in gateway_responses(template)[kind]["ResponseParameters"]


def test_the_stage_is_deployed_after_every_gateway_response(synthesized):
    """A gateway response takes effect with the next deployment of the stage."""
    template = synthesized.template_json["Resources"]
    responses = {i for i, r in template.items() if r["Type"] == "AWS::ApiGateway::GatewayResponse"}
    assert len(responses) == 1 + len(distribution_http.GATEWAY_RESPONSES)  # and BAD_REQUEST_PARAMETERS
    (deployment,) = [r for r in template.values() if r["Type"] == "AWS::ApiGateway::Deployment"]
    assert responses <= set(deployment.get("DependsOn", []))


def test_a_changed_gateway_response_redeploys_the_stage(variant, monkeypatch):
    def deployment_id(template) -> str:
        (found,) = resources(template, "AWS::ApiGateway::Deployment")
        return found

    before = deployment_id(variant({}).template)
    monkeypatch.setitem(distribution_http.GATEWAY_RESPONSES, "ACCESS_DENIED", (403, '{"errors":[]}'))
    assert deployment_id(variant({}).template) != before


# --- the custom domain -------------------------------------------------------------------------------


def test_no_custom_domain_by_default(template):
    assert not resources(template, "AWS::ApiGateway::DomainName")
    assert not resources(template, "AWS::ApiGateway::BasePathMapping")
    assert not resources(template, "AWS::Route53::RecordSet")
    assert PUBLIC_URL_ENV not in environment(template), "the function takes its URL from each request"
    assert "DockerLogin" not in template.find_outputs("*"), "docker cannot address a registry under a stage path"


def test_a_custom_domain_is_regional_and_maps_the_stage_at_its_root(with_domain):
    ((domain_id, domain),) = resources(with_domain, "AWS::ApiGateway::DomainName").items()
    props = domain["Properties"]
    assert props["DomainName"] == DOMAIN
    assert props["RegionalCertificateArn"] == CERTIFICATE
    assert props["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert props["SecurityPolicy"] == "TLS_1_2"
    ((_, mapping),) = resources(with_domain, "AWS::ApiGateway::BasePathMapping").items()
    mapping = mapping["Properties"]
    # docker addresses a registry at the host's root (https://host/v2/...): no base path
    assert "BasePath" not in mapping or mapping["BasePath"] in ("", "(none)")
    assert mapping["DomainName"] == {"Ref": domain_id}
    assert mapping["RestApiId"] == {"Ref": rest_api_id(with_domain)}
    (stage_id,) = resources(with_domain, "AWS::ApiGateway::Stage")
    assert mapping["Stage"] == {"Ref": stage_id}


def test_a_hosted_zone_gets_an_alias_record_for_the_domain(with_domain):
    ((domain_id, _),) = resources(with_domain, "AWS::ApiGateway::DomainName").items()
    ((_, record),) = resources(with_domain, "AWS::Route53::RecordSet").items()
    props = record["Properties"]
    assert props["HostedZoneId"] == ZONE["registry:hostedZoneId"]
    assert props["Name"] == DOMAIN + "."
    assert props["Type"] == "A"
    alias = props["AliasTarget"]
    assert alias["DNSName"] == {"Fn::GetAtt": [domain_id, "RegionalDomainName"]}
    assert alias["HostedZoneId"] == {"Fn::GetAtt": [domain_id, "RegionalHostedZoneId"]}


def test_without_a_hosted_zone_the_dns_record_is_left_to_the_operator(variant):
    template = variant({"registry:domainName": DOMAIN, "registry:certificateArn": CERTIFICATE}).template
    assert resources(template, "AWS::ApiGateway::DomainName")
    assert not resources(template, "AWS::Route53::RecordSet")
    assert "RegionalDomainName" in json.dumps(template.find_outputs("*")), "the target of the operator's record"


def test_a_custom_domain_is_the_registrys_url_everywhere(with_domain):
    """GetAuthorizationToken's proxyEndpoint and the realm of the 401 name the domain; the outputs
    print the endpoint and the docker login line."""
    assert environment(with_domain)[PUBLIC_URL_ENV] == f"https://{DOMAIN}"
    headers = gateway_responses(with_domain)["UNAUTHORIZED"]["ResponseParameters"]
    assert headers["gatewayresponse.header.WWW-Authenticate"] == f"'{distribution_http.challenge('https://' + DOMAIN)}'"
    outputs = with_domain.find_outputs("*")
    assert outputs["EndpointUrl"]["Value"] == f"https://{DOMAIN}"
    refs = refs_of(with_domain)
    assert render(outputs["DockerLogin"]["Value"], refs) == (
        f"aws ecr get-login-password --region us-east-1 --endpoint-url https://{DOMAIN} "
        f"| docker login -u AWS --password-stdin {DOMAIN}"
    )
    assert render(outputs["TryIt"]["Value"], refs).endswith(f"--endpoint-url https://{DOMAIN}")


@pytest.mark.parametrize(
    "context, message",
    [
        ({"registry:domainName": "https://" + DOMAIN, "registry:certificateArn": CERTIFICATE}, "without a scheme"),
        ({"registry:domainName": DOMAIN + "/v2", "registry:certificateArn": CERTIFICATE}, "host name"),
        ({"registry:domainName": DOMAIN + ":443", "registry:certificateArn": CERTIFICATE}, "host name"),
        ({"registry:domainName": "registry", "registry:certificateArn": CERTIFICATE}, "host name"),
        ({"registry:domainName": DOMAIN}, "certificateArn"),
        ({"registry:domainName": DOMAIN, "registry:certificateArn": "arn:aws:iam::1:role/x"}, "ACM certificate"),
        ({"registry:certificateArn": CERTIFICATE}, "domainName"),
        (
            {"registry:domainName": DOMAIN, "registry:certificateArn": CERTIFICATE, "registry:hostedZoneId": "Z1"},
            "together",
        ),
        (
            {"registry:domainName": DOMAIN, "registry:certificateArn": CERTIFICATE, "registry:hostedZoneName": "x.com"},
            "together",
        ),
        ({**ZONE}, "domainName"),
        (
            {
                "registry:domainName": "registry.example.org",
                "registry:certificateArn": CERTIFICATE,
                **ZONE,
            },
            "not in the hosted zone",
        ),
    ],
)
def test_custom_domain_settings_are_checked_at_synth(context, message):
    from infra.config import RegistryProps

    values = {key.removeprefix("registry:"): value for key, value in context.items()}
    names = {"domainName": "domain_name", "certificateArn": "certificate_arn"}
    names |= {"hostedZoneId": "hosted_zone_id", "hostedZoneName": "hosted_zone_name"}
    with pytest.raises(ValueError, match=re.escape(message)):
        RegistryProps(**{names[k]: v for k, v in values.items()})


def test_custom_domain_settings_are_normalized():
    from infra.config import RegistryProps

    props = RegistryProps(domain_name=DOMAIN.upper() + ".", certificate_arn=CERTIFICATE)
    assert props.domain_name == DOMAIN, "a host name is case-insensitive and may end in the root's dot"
    assert props.public_url == f"https://{DOMAIN}"
    assert RegistryProps().public_url == ""
    zone = RegistryProps(
        domain_name=DOMAIN, certificate_arn=CERTIFICATE, hosted_zone_id="Z1", hosted_zone_name="Example.com."
    )
    assert zone.hosted_zone_name == "example.com"
    apex = RegistryProps(
        domain_name="example.com", certificate_arn=CERTIFICATE, hosted_zone_id="Z1", hosted_zone_name="example.com"
    )
    assert apex.domain_name == "example.com", "the zone's apex is in the zone"


def test_custom_domain_settings_are_normalized_too_with_registry_hosts():
    from infra.config import RegistryProps

    props = RegistryProps(domain_name=DOMAIN.upper() + ".", certificate_arn=CERTIFICATE, registry_hostnames=True)
    assert props.registry_hosts_domain == DOMAIN
    assert props.registry_hosts_certificate_arn == CERTIFICATE, "one certificate may cover both names"
    assert RegistryProps(domain_name=DOMAIN, certificate_arn=CERTIFICATE).registry_hosts_domain == ""


@pytest.mark.parametrize("stack", ["domain_stack", "registry_hosts_stack"])
def test_cfn_lint_reports_no_error_with_a_custom_domain(stack, request):
    """The default stack is linted in test_checks.py; the domains, their mappings and records here."""
    import subprocess
    import sys
    from pathlib import Path

    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", str(request.getfixturevalue(stack).template_path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(re.findall(r"^([EWI]\d{4})", result.stdout, flags=re.MULTILINE)) <= {"W3005"}, result.stdout


# --- each registry's own host (registry:registryHostnames) ---------------------------------------------


@pytest.fixture(scope="module")
def registry_hosts_stack(variant):
    """The custom domain in a Route 53 zone, and below it each registry's host, with a certificate of its own."""
    return variant(
        {
            "registry:domainName": DOMAIN,
            "registry:certificateArn": CERTIFICATE,
            "registry:registryHostnames": "true",
            "registry:wildcardCertificateArn": WILDCARD_CERTIFICATE,
            **ZONE,
        }
    )


@pytest.fixture(scope="module")
def with_registry_hosts(registry_hosts_stack):
    return registry_hosts_stack.template


def domains_by_name(template) -> dict[str, tuple[str, dict]]:
    """domain name -> (logical id, properties) of each custom domain name."""
    found = resources(template, "AWS::ApiGateway::DomainName").items()
    return {props["Properties"]["DomainName"]: (logical_id, props["Properties"]) for logical_id, props in found}


def test_no_registry_hosts_by_default(with_domain):
    assert set(domains_by_name(with_domain)) == {DOMAIN}
    assert REGISTRY_HOSTS_DOMAIN_ENV not in environment(with_domain), "repositoryUri keeps ECR's host"
    assert "RegistryHost" not in with_domain.find_outputs("*")


def test_registry_hosts_are_a_regional_wildcard_domain_with_its_certificate_mapped_at_its_root(with_registry_hosts):
    domains = domains_by_name(with_registry_hosts)
    assert set(domains) == {DOMAIN, f"*.{DOMAIN}"}
    wildcard_id, wildcard = domains[f"*.{DOMAIN}"]
    assert wildcard["RegionalCertificateArn"] == WILDCARD_CERTIFICATE
    assert wildcard["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert wildcard["SecurityPolicy"] == "TLS_1_2"
    assert domains[DOMAIN][1]["RegionalCertificateArn"] == CERTIFICATE
    mappings = {
        m["Properties"]["DomainName"]["Ref"]: m["Properties"]
        for m in resources(with_registry_hosts, "AWS::ApiGateway::BasePathMapping").values()
    }
    assert set(mappings) == {wildcard_id, domains[DOMAIN][0]}
    mapping = mappings[wildcard_id]
    assert "BasePath" not in mapping or mapping["BasePath"] in ("", "(none)"), "the stage at every host's root"
    assert mapping["RestApiId"] == {"Ref": rest_api_id(with_registry_hosts)}
    (stage_id,) = resources(with_registry_hosts, "AWS::ApiGateway::Stage")
    assert mapping["Stage"] == {"Ref": stage_id}


def test_the_root_domain_keeps_its_logical_ids_beside_the_registry_hosts(with_domain, with_registry_hosts):
    """Turning registry hosts on adds resources and replaces none: a domain name cannot be created
    again while it exists, so a replacement would fail the update."""
    before = set(resources(with_domain, "AWS::ApiGateway::DomainName"))
    before |= set(resources(with_domain, "AWS::Route53::RecordSet"))
    before |= set(resources(with_domain, "AWS::ApiGateway::BasePathMapping"))
    after = set(resources(with_registry_hosts, "AWS::ApiGateway::DomainName"))
    after |= set(resources(with_registry_hosts, "AWS::Route53::RecordSet"))
    after |= set(resources(with_registry_hosts, "AWS::ApiGateway::BasePathMapping"))
    assert before < after


def test_a_hosted_zone_gets_a_wildcard_alias_record_for_the_registry_hosts(with_registry_hosts):
    wildcard_id, _ = domains_by_name(with_registry_hosts)[f"*.{DOMAIN}"]
    records = {
        r["Properties"]["Name"]: r["Properties"]
        for r in resources(with_registry_hosts, "AWS::Route53::RecordSet").values()
    }
    assert set(records) == {DOMAIN + ".", f"*.{DOMAIN}."}
    record = records[f"*.{DOMAIN}."]
    assert (record["Type"], record["HostedZoneId"]) == ("A", ZONE["registry:hostedZoneId"])
    assert record["AliasTarget"] == {
        "DNSName": {"Fn::GetAtt": [wildcard_id, "RegionalDomainName"]},
        "HostedZoneId": {"Fn::GetAtt": [wildcard_id, "RegionalHostedZoneId"]},
    }


def test_registry_hosts_reach_the_function_and_the_outputs(with_registry_hosts):
    assert environment(with_registry_hosts)[REGISTRY_HOSTS_DOMAIN_ENV] == DOMAIN
    assert environment(with_registry_hosts)[PUBLIC_URL_ENV] == f"https://{DOMAIN}", "the ECR API's URL stays"
    outputs = with_registry_hosts.find_outputs("*")
    assert outputs["RegistryHost"]["Value"] == f"<registry>.{DOMAIN}"
    assert f"docker pull <registry>.{DOMAIN}/" in outputs["RegistryHost"]["Description"]
    assert outputs["EndpointUrl"]["Value"] == f"https://{DOMAIN}"
    assert "RegistryHostsTarget" not in outputs, "the zone has the record"


def test_without_a_hosted_zone_the_wildcard_record_is_left_to_the_operator(variant):
    template = variant(
        {"registry:domainName": DOMAIN, "registry:certificateArn": CERTIFICATE, "registry:registryHostnames": True}
    ).template
    wildcard_id, wildcard = domains_by_name(template)[f"*.{DOMAIN}"]
    assert wildcard["RegionalCertificateArn"] == CERTIFICATE, "by default the domain's certificate covers both"
    assert not resources(template, "AWS::Route53::RecordSet")
    target = template.find_outputs("*")["RegistryHostsTarget"]
    assert target["Value"] == {"Fn::GetAtt": [wildcard_id, "RegionalDomainName"]}
    assert f"*.{DOMAIN}" in target["Description"]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"registry_hostnames": True}, "registry:registryHostnames is set without registry:domainName"),
        (
            {"domain_name": DOMAIN, "certificate_arn": CERTIFICATE, "wildcard_certificate_arn": WILDCARD_CERTIFICATE},
            "registry:wildcardCertificateArn is set without registry:registryHostnames",
        ),
        (
            {
                "domain_name": DOMAIN,
                "certificate_arn": CERTIFICATE,
                "registry_hostnames": True,
                "wildcard_certificate_arn": "arn:aws:iam::111122223333:role/x",
            },
            "registry:wildcardCertificateArn must be an ACM certificate ARN",
        ),
        (
            {"domain_name": "123456789012.example.com", "certificate_arn": CERTIFICATE},
            "must not begin with a 12-digit label: '123456789012.example.com' names registry 123456789012",
        ),
        (
            {
                "domain_name": "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 55 + ".com",
                "certificate_arn": CERTIFICATE,
                "registry_hostnames": True,
            },
            "<registry id>." + "a" * 60,
        ),
    ],
)
def test_registry_hosts_settings_are_checked_at_synth(settings, message):
    from infra.config import RegistryProps

    with pytest.raises(ValueError, match=re.escape(message)):
        RegistryProps(**settings)


def test_registry_hosts_settings_are_read_from_context(variant):
    props = variant(
        {"registry:domainName": DOMAIN, "registry:certificateArn": CERTIFICATE, "registry:registryHostnames": "false"}
    ).stack.props
    assert props.registry_hosts_domain == "", "a -c value is a string: 'false' is off"
