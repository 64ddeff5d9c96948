"""Repository resource tags (TagResource, UntagResource, ListTagsForResource), named by the repository's
ARN; PutImageScanningConfiguration; DescribeRegistry; and the registry-level operations left unserved.

Every refusal is checked against the state after it: the tags a repository had, it still has."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError
from support import NO_RETRIES, error_code, unique_name

REGION = "us-east-1"


def arn_of(ecr, name: str) -> str:
    return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryArn"]


def tags_of(ecr, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=arn)["tags"]}


def as_tags(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in mapping.items()]


@pytest.fixture
def tagged(ecr, request):
    """A repository created with the tags team=platform and tier=gold: (its name, its ARN)."""
    name = unique_name(request.node.name)
    ecr.create_repository(repositoryName=name, tags=as_tags({"team": "platform", "tier": "gold"}))
    return name, arn_of(ecr, name)


def test_create_repository_tags_are_listed(ecr, tagged):
    _, arn = tagged
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == as_tags({"team": "platform", "tier": "gold"})


def test_tag_resource_adds_and_overwrites(ecr, tagged):
    _, arn = tagged
    result = ecr.tag_resource(resourceArn=arn, tags=as_tags({"tier": "silver", "owner": "ops"}))
    assert result.keys() == {"ResponseMetadata"}  # TagResource's output has no members
    assert tags_of(ecr, arn) == {"team": "platform", "tier": "silver", "owner": "ops"}


def test_untag_resource_removes_and_ignores_absent_keys(ecr, tagged):
    _, arn = tagged
    ecr.untag_resource(resourceArn=arn, tagKeys=["tier", "never-there"])
    assert tags_of(ecr, arn) == {"team": "platform"}
    ecr.untag_resource(resourceArn=arn, tagKeys=["never-there"])
    assert tags_of(ecr, arn) == {"team": "platform"}


def test_a_repository_without_tags_lists_none(ecr, repo):
    assert ecr.list_tags_for_resource(resourceArn=arn_of(ecr, repo))["tags"] == []


def test_fifty_tags_fit_and_a_fifty_first_does_not(ecr, tagged):
    _, arn = tagged
    ecr.tag_resource(resourceArn=arn, tags=as_tags({f"k{i}": "v" for i in range(48)}))
    assert len(tags_of(ecr, arn)) == 50
    before = tags_of(ecr, arn)
    with pytest.raises(ecr.exceptions.TooManyTagsException):
        ecr.tag_resource(resourceArn=arn, tags=as_tags({"one-more": "v"}))
    assert tags_of(ecr, arn) == before
    ecr.tag_resource(resourceArn=arn, tags=as_tags({"team": "apps"}))  # overwriting adds no tag
    assert len(tags_of(ecr, arn)) == 50 and tags_of(ecr, arn)["team"] == "apps"


@pytest.mark.parametrize(
    "tags,code",
    [
        ([{"Key": f"k{i}", "Value": "v"} for i in range(51)], "TooManyTagsException"),
        ([{"Key": "aws:reserved", "Value": "v"}], "InvalidTagParameterException"),
        ([{"Key": "AWS:Reserved", "Value": "v"}], "InvalidTagParameterException"),
        ([{"Key": "", "Value": "v"}], "InvalidTagParameterException"),
        ([{"Key": "k" * 129, "Value": "v"}], "InvalidTagParameterException"),
        ([{"Key": "k", "Value": "v" * 257}], "InvalidTagParameterException"),
        ([{"Key": "k", "Value": "a"}, {"Key": "k", "Value": "b"}], "InvalidTagParameterException"),
    ],
)
def test_invalid_tags_are_refused_and_change_nothing(ecr, tagged, tags, code):
    _, arn = tagged
    before = tags_of(ecr, arn)
    with pytest.raises(ClientError) as excinfo:
        ecr.tag_resource(resourceArn=arn, tags=[*tags, {"Key": "fine", "Value": "v"}])
    assert (error_code(excinfo), excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 400)
    assert tags_of(ecr, arn) == before


def test_longest_keys_and_values_are_accepted(ecr, tagged):
    _, arn = tagged
    ecr.tag_resource(resourceArn=arn, tags=as_tags({"k" * 128: "v" * 256, "empty": ""}))
    assert tags_of(ecr, arn)["k" * 128] == "v" * 256 and tags_of(ecr, arn)["empty"] == ""


@pytest.mark.parametrize("key", ["aws:reserved", "", "k" * 129])
def test_invalid_keys_to_untag_are_refused_and_change_nothing(ecr, tagged, key):
    _, arn = tagged
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.untag_resource(resourceArn=arn, tagKeys=["team", key])
    assert tags_of(ecr, arn) == {"team": "platform", "tier": "gold"}


def calls(arn: str) -> list[tuple[str, dict]]:
    """Each tagging operation, aimed at `arn`."""
    return [
        ("tag_resource", {"resourceArn": arn, "tags": as_tags({"new": "v"})}),
        ("untag_resource", {"resourceArn": arn, "tagKeys": ["team"]}),
        ("list_tags_for_resource", {"resourceArn": arn}),
    ]


@pytest.mark.parametrize(
    "arn_for",
    [
        lambda name: f"arn:aws:ecr:eu-west-1:000000000000:repository/{name}",  # another region
        lambda name: f"arn:aws:ecr:{REGION}:000000000000:registry/{name}",  # not a repository
        lambda name: f"arn:aws:s3:::{name}",  # another service
        lambda name: f"arn:aws:ecr:{REGION}:000000000000:repository/{name.upper()}",  # not a repository name
        lambda name: f"arn:aws:ecr:{REGION}:0000:repository/{name}",  # not an account
        lambda name: name,  # a name, not an ARN
    ],
    ids=["other-region", "not-a-repository", "other-service", "invalid-name", "invalid-account", "bare-name"],
)
def test_an_arn_that_names_no_repository_here_is_an_invalid_parameter(ecr, tagged, arn_for):
    name, arn = tagged
    for operation, params in calls(arn_for(name)):
        with pytest.raises(ecr.exceptions.InvalidParameterException):
            getattr(ecr, operation)(**params)
    assert tags_of(ecr, arn) == {"team": "platform", "tier": "gold"}


def test_a_repository_that_does_not_exist_is_not_found(ecr, tagged):
    _, arn = tagged
    for operation, params in calls(arn + "-missing"):
        with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
            getattr(ecr, operation)(**params)
    assert tags_of(ecr, arn) == {"team": "platform", "tier": "gold"}


def test_another_registrys_repository_is_access_denied(ecr, tagged):
    _, arn = tagged
    other = arn.replace(":000000000000:", ":111111111111:")
    for operation, params in calls(other):
        with pytest.raises(ClientError) as excinfo:
            getattr(ecr, operation)(**params)
        assert error_code(excinfo) == "AccessDeniedException"
        action = f"ecr:{ecr.meta.method_to_api_mapping[operation]}"
        assert excinfo.value.response["Error"]["Message"].endswith(
            f"{action} on resource: {other} because no resource-based policy allows the {action} action"
        )
    assert tags_of(ecr, arn) == {"team": "platform", "tier": "gold"}


def test_tags_go_with_their_repository(ecr, tagged):
    name, arn = tagged
    ecr.delete_repository(repositoryName=name)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.list_tags_for_resource(resourceArn=arn)
    ecr.create_repository(repositoryName=name)  # the name again: a new repository, without tags
    assert tags_of(ecr, arn) == {}


def test_concurrent_tagging_never_passes_fifty_tags(registry, repo):
    """Ten clients add ten tags each, at once, to an untagged repository: five fit, five are refused
    with TooManyTagsException, whatever the interleaving."""
    arn = arn_of(registry.ecr(config=NO_RETRIES), repo)
    start = threading.Barrier(10)
    outcomes: dict[int, str] = {}

    def add_ten(client: int) -> None:
        ecr = registry.ecr(config=NO_RETRIES)
        start.wait()
        try:
            ecr.tag_resource(resourceArn=arn, tags=as_tags({f"c{client}-{i}": str(client) for i in range(10)}))
            outcomes[client] = "OK"
        except ClientError as error:
            outcomes[client] = error.response["Error"]["Code"]

    threads = [threading.Thread(target=add_ten, args=(c,)) for c in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["OK"] * 5 + ["TooManyTagsException"] * 5
    winners = {str(c) for c, outcome in outcomes.items() if outcome == "OK"}
    tags = tags_of(registry.ecr(config=NO_RETRIES), arn)
    assert len(tags) == 50 and set(tags.values()) == winners


@pytest.mark.local_only
def test_a_lost_write_resent_by_botocore_tags_once(faults):
    """The tags' write lands, its response is lost and botocore sends it again: that copy's condition
    fails on the version the first one moved, and the request reads again and finds its work done."""
    ecr = faults.ecr
    name = unique_name("lost-tags")
    ecr.create_repository(repositoryName=name, tags=as_tags({"team": "platform"}))
    arn = arn_of(ecr, name)
    faults.set({"service": "dynamodb", "operation": "UpdateItem", "when": "send", "error": "lost", "times": 1})
    ecr.tag_resource(resourceArn=arn, tags=as_tags({"tier": "gold"}))
    assert faults.ecr.list_tags_for_resource(resourceArn=arn)["tags"] == as_tags({"team": "platform", "tier": "gold"})


@pytest.mark.local_only
def test_a_failed_write_is_a_server_exception_and_changes_nothing(faults):
    ecr = faults.ecr
    name = unique_name("failed-tags")
    ecr.create_repository(repositoryName=name, tags=as_tags({"team": "platform"}))
    arn = arn_of(ecr, name)
    faults.set({"service": "dynamodb", "operation": "UpdateItem", "code": "InternalServerError", "status": 500})
    with pytest.raises(ClientError) as excinfo:
        ecr.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert (error_code(excinfo), excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ServerException",
        500,
    )
    faults.set()
    assert tags_of(ecr, arn) == {"team": "platform"}


def test_put_image_scanning_configuration(ecr, repo):
    assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageScanningConfiguration"] == {
        "scanOnPush": False
    }
    result = ecr.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
    assert {k: v for k, v in result.items() if k != "ResponseMetadata"} == {
        "registryId": "000000000000",
        "repositoryName": repo,
        "imageScanningConfiguration": {"scanOnPush": True},
    }
    described = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}
    ecr.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={})  # scanOnPush absent
    assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageScanningConfiguration"] == {
        "scanOnPush": False
    }


def test_put_image_scanning_configuration_refusals_change_nothing(ecr, repo):
    ecr.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
    before = ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.put_image_scanning_configuration(
            repositoryName=repo + "-missing", imageScanningConfiguration={"scanOnPush": False}
        )
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image_scanning_configuration(
            repositoryName=repo, registryId="12345", imageScanningConfiguration={"scanOnPush": False}
        )
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image_scanning_configuration(
            repositoryName=repo, registryId="111111111111", imageScanningConfiguration={"scanOnPush": False}
        )
    assert error_code(excinfo) == "AccessDeniedException"
    assert ecr.describe_repositories(repositoryNames=[repo])["repositories"] == before


def test_describe_registry_has_no_replication(ecr):
    result = ecr.describe_registry()
    assert result["registryId"] == "000000000000"
    assert result["replicationConfiguration"] == {"rules": []}


@pytest.mark.parametrize(
    "operation,params",
    [
        ("get_registry_policy", {}),
        ("put_registry_policy", {"policyText": "{}"}),
        ("delete_registry_policy", {}),
        ("start_image_scan", {"repositoryName": "test/any", "imageId": {"imageTag": "v1"}}),
        ("describe_image_scan_findings", {"repositoryName": "test/any", "imageId": {"imageTag": "v1"}}),
    ],
)
def test_registry_policies_and_scans_are_not_served(ecr, operation, params):
    with pytest.raises(ClientError) as excinfo:
        getattr(ecr, operation)(**params)
    assert error_code(excinfo) == "UnknownOperationException"
