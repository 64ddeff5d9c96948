"""Repository policies through a real boto3 client and the AWS CLI: SetRepositoryPolicy (and its
`force`), GetRepositoryPolicy, DeleteRepositoryPolicy, each modeled error, invalid texts refused
with nothing stored, a fuzz of texts that never gets a 5xx, and a policy gone with its repository.

Sharing with other registries (the policies enforced, on both APIs) is in
tests/auth/test_repository_sharing.py; the policy's grammar and decisions, pure, in
tests/unit/test_repository_policy.py.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import aws, error_code

OWNER = "000000000000"  # the suite's key `test` is the admin of this registry
PREFIX = "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided: "


def share(*accounts: str, actions=("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"), effect="Allow", **extra):
    statement = {"Sid": "share", "Effect": effect, "Principal": {"AWS": list(accounts)}, "Action": list(actions)}
    return json.dumps({"Version": "2012-10-17", "Statement": [{**statement, **extra}]}, indent=2)


PULL_FOR_ANOTHER = share("123456789012")


def stored_policy(ecr, repo) -> str | None:
    try:
        return ecr.get_repository_policy(repositoryName=repo)["policyText"]
    except ecr.exceptions.RepositoryPolicyNotFoundException:
        return None


def test_set_get_and_delete_a_policy(ecr, repo):
    set_ = ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER)
    assert (set_["registryId"], set_["repositoryName"], set_["policyText"]) == (OWNER, repo, PULL_FOR_ANOTHER)
    got = ecr.get_repository_policy(repositoryName=repo, registryId=OWNER)
    assert (got["registryId"], got["repositoryName"], got["policyText"]) == (OWNER, repo, PULL_FOR_ANOTHER)
    replacement = share("123456789012", "arn:aws:iam::210987654321:root", actions=("ecr:*",))
    ecr.set_repository_policy(repositoryName=repo, policyText=replacement)
    assert stored_policy(ecr, repo) == replacement  # verbatim: spacing and order kept
    deleted = ecr.delete_repository_policy(repositoryName=repo)
    assert (deleted["registryId"], deleted["repositoryName"], deleted["policyText"]) == (OWNER, repo, replacement)
    assert stored_policy(ecr, repo) is None


def test_no_policy_is_repository_policy_not_found(ecr, repo):
    for call in (ecr.get_repository_policy, ecr.delete_repository_policy):
        with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException) as excinfo:
            call(repositoryName=repo)
        assert excinfo.value.response["Error"]["Message"] == (
            f"Repository policy does not exist for the repository with name '{repo}' in the registry with id '{OWNER}'"
        )
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("operation", ["set_repository_policy", "get_repository_policy", "delete_repository_policy"])
def test_a_missing_repository_is_repository_not_found(ecr, operation):
    params = {"policyText": PULL_FOR_ANOTHER} if operation == "set_repository_policy" else {}
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        getattr(ecr, operation)(repositoryName="no/such-repository", **params)


@pytest.mark.parametrize(
    "params",
    [
        {"repositoryName": "UPPER"},
        {"repositoryName": "x" * 257},
        {"repositoryName": "ok-name", "registryId": "12345"},
    ],
)
def test_model_constraints_are_invalid_parameter(ecr, params):
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.get_repository_policy(**params)


def test_the_size_limit_is_the_models(ecr, repo):
    padding = " " * (10240 - len(PULL_FOR_ANOTHER))
    ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER + padding)  # 10,240: accepted
    with pytest.raises(ecr.exceptions.InvalidParameterException) as excinfo:
        ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER + padding + " ")
    assert "policyText" in excinfo.value.response["Error"]["Message"]
    assert stored_policy(ecr, repo) == PULL_FOR_ANOTHER + padding


STATEMENT = {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "ecr:BatchGetImage"}
INVALID = {
    "empty": ("", "not valid JSON"),
    "not JSON": ("{'Statement': []}", "not valid JSON"),
    "a JSON list": ("[]", "must be a JSON object"),
    "bad version": (json.dumps({"Version": "2024-01-01", "Statement": [STATEMENT]}), "Version"),
    "no statement": (json.dumps({"Version": "2012-10-17"}), "Statement"),
    "bad effect": (json.dumps({"Statement": {**STATEMENT, "Effect": "Permit"}}), "Effect must be Allow or Deny"),
    "no principal": (json.dumps({"Statement": {"Effect": "Allow", "Action": "ecr:*"}}), "Principal is required"),
    "role principal": (
        json.dumps({"Statement": {**STATEMENT, "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}}}),
        "Principal not found",
    ),
    "another service's action": (json.dumps({"Statement": {**STATEMENT, "Action": "s3:GetObject"}}), "not an ECR"),
    "no such action": (json.dumps({"Statement": {**STATEMENT, "Action": "ecr:Teleport"}}), "names no action"),
    "condition": (
        json.dumps({"Statement": {**STATEMENT, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}}),
        "conditions are not evaluated",
    ),
    "resource": (json.dumps({"Statement": {**STATEMENT, "Resource": "*"}}), "Resource is not allowed"),
    "duplicate sids": (
        json.dumps({"Statement": [{**STATEMENT, "Sid": "a"}, {**STATEMENT, "Sid": "a"}]}),
        "Sid must be unique",
    ),
}


@pytest.mark.parametrize("text, problem", INVALID.values(), ids=INVALID.keys())
def test_invalid_policies_are_refused_and_nothing_is_stored(ecr, repo, text, problem):
    ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER)
    with pytest.raises(ecr.exceptions.InvalidParameterException) as excinfo:
        ecr.set_repository_policy(repositoryName=repo, policyText=text)
    message = excinfo.value.response["Error"]["Message"]
    assert message.startswith(PREFIX) and problem in message, message
    assert stored_policy(ecr, repo) == PULL_FOR_ANOTHER


def test_a_policy_that_locks_the_caller_out_needs_force(ecr, repo):
    """ECR's guard: a policy that would keep you from setting the next one is set only with force."""
    lockout = share("*", actions=("ecr:SetRepositoryPolicy",), effect="Deny")
    with pytest.raises(ecr.exceptions.InvalidParameterException) as excinfo:
        ecr.set_repository_policy(repositoryName=repo, policyText=lockout)
    assert "would prevent you from setting another policy" in excinfo.value.response["Error"]["Message"]
    assert stored_policy(ecr, repo) is None
    ecr.set_repository_policy(repositoryName=repo, policyText=lockout, force=True)
    assert stored_policy(ecr, repo) == lockout
    # ... and it holds: the owner's admin key may set no other policy now, only read and delete it
    with pytest.raises(ClientError) as refused:
        ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER, force=True)
    assert error_code(refused) == "AccessDeniedException"
    assert refused.value.response["Error"]["Message"].endswith("with an explicit deny in a resource-based policy")
    ecr.delete_repository_policy(repositoryName=repo)
    ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER)


def test_a_policy_goes_with_its_repository(ecr, repo):
    ecr.set_repository_policy(repositoryName=repo, policyText=PULL_FOR_ANOTHER)
    ecr.delete_repository(repositoryName=repo)
    ecr.create_repository(repositoryName=repo)
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.get_repository_policy(repositoryName=repo)


@pytest.mark.local_only
def test_a_policy_set_on_a_repository_deleted_since_it_was_read_is_not_stored(backends, ecr, repo, monkeypatch):
    """The race of SetRepositoryPolicy with DeleteRepository, made deterministic at the storage
    boundary: the repository read live, then deleted, then the policy written for it. The write's
    condition (the repository live) refuses it, so no policy outlives its repository."""
    from registry.config import Settings
    from registry.storage import RegistryStore, RepositoryGone

    for name, value in backends.environment().items():  # the function's own settings
        monkeypatch.setenv(name, value)
    store = RegistryStore(Settings.from_environment(), backends.client)
    read = store.repositories.get(OWNER, repo)
    ecr.delete_repository(repositoryName=repo)
    with pytest.raises(RepositoryGone):
        store.repositories.set_policy(read, PULL_FOR_ANOTHER)
    ecr.create_repository(repositoryName=repo)
    assert stored_policy(ecr, repo) is None


def test_the_aws_cli_sets_gets_and_deletes(registry, repo, tmp_path):
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(PULL_FOR_ANOTHER)
    set_ = aws(registry, "set-repository-policy", "--repository-name", repo, "--policy-text", f"file://{policy_file}")
    assert set_["policyText"] == PULL_FOR_ANOTHER
    got = aws(registry, "get-repository-policy", "--repository-name", repo)
    assert json.loads(got["policyText"]) == json.loads(PULL_FOR_ANOTHER)
    aws(registry, "delete-repository-policy", "--repository-name", repo)
    with pytest.raises(AssertionError, match="RepositoryPolicyNotFoundException"):
        aws(registry, "get-repository-policy", "--repository-name", repo)


# --- fuzz ------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
GOOD_PRINCIPALS = st.sampled_from(
    ["*", "123456789012", "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/x"]
)
PRINCIPALS = GOOD_PRINCIPALS | st.sampled_from(["arn:aws:iam::123456789012:user/ci", "x", "", "arn:aws:iam::*:root"])
GOOD_ACTIONS = st.sampled_from(["ecr:*", "*", "ecr:BatchGetImage", "ecr:Get*", "ECR:ListImages"])
# Allow only: a Deny the test's own key falls under could lock it out of the repository it checks.
GOOD_STATEMENTS = st.fixed_dictionaries(
    {
        "Effect": st.just("Allow"),
        "Principal": st.just("*") | st.fixed_dictionaries({"AWS": GOOD_PRINCIPALS | st.lists(GOOD_PRINCIPALS)}),
        "Action": GOOD_ACTIONS | st.lists(GOOD_ACTIONS, min_size=1, max_size=3),
    },
    optional={"Sid": st.text("abc", min_size=1, max_size=2)},
)
NEAR_STATEMENTS = st.fixed_dictionaries(
    {
        "Effect": st.sampled_from(["Allow", "allow", ""]) | JSON_VALUES,
        "Principal": st.fixed_dictionaries({"AWS": PRINCIPALS | st.lists(PRINCIPALS, max_size=3)}) | JSON_VALUES,
        "Action": st.sampled_from(["ecr:*", "s3:*", "ecr:", "ecr:Teleport"])
        | st.lists(st.text(max_size=30), max_size=3)
        | JSON_VALUES,
    },
    optional={"Sid": JSON_VALUES, "Condition": JSON_VALUES, "NotAction": JSON_VALUES, "Resource": JSON_VALUES},
)
GOOD_DOCUMENTS = st.fixed_dictionaries(
    {"Statement": GOOD_STATEMENTS | st.lists(GOOD_STATEMENTS, min_size=1, max_size=3)},
    optional={"Version": st.sampled_from(["2012-10-17", "2008-10-17"]), "Id": st.text(max_size=5)},
)
NEAR_DOCUMENTS = st.fixed_dictionaries(
    {"Statement": NEAR_STATEMENTS | st.lists(GOOD_STATEMENTS | NEAR_STATEMENTS, max_size=3) | JSON_VALUES},
    optional={"Version": st.sampled_from(["2012-10-17", "2020-01-01"]) | JSON_VALUES, "Id": JSON_VALUES},
)


def texts_near_the_grammar():
    """Policies in the grammar, and near it; some cut short or with one character changed."""
    documents = (GOOD_DOCUMENTS | NEAR_DOCUMENTS).map(json.dumps)
    cut = st.tuples(documents, st.integers(0, 200)).map(lambda d: d[0][: d[1]])
    changed = st.tuples(documents, st.integers(0, 200), st.characters()).map(
        lambda d: d[0][: d[1]] + d[2] + d[0][d[1] + 1 :]
    )
    return GOOD_DOCUMENTS.map(json.dumps) | documents | cut | changed | st.text(max_size=50)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts_near_the_grammar())
def test_fuzzed_policy_texts_never_get_a_5xx(ecr, repo, text):
    before = stored_policy(ecr, repo)
    try:
        ecr.set_repository_policy(repositoryName=repo, policyText=text, force=True)
        refusal = None
    except ClientError as error:
        refusal = error.response["Error"]
    if refusal is None:
        assert stored_policy(ecr, repo) == text
        return
    assert refusal["Code"] == "InvalidParameterException", refusal
    assert refusal["Message"].startswith(PREFIX), refusal
    assert stored_policy(ecr, repo) == before
