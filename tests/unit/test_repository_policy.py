"""Repository policies, pure: what `parse_policy` accepts and refuses, what a policy decides for a
key (`RepositoryPolicy.decision`), what `permissions.policy_verdict` makes of it for a key of the
owning registry or of another one, and how `permissions.authorize` reads the policies (once)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from registry import errors, operations
from registry.auth.permissions import authorize, policy_verdict
from registry.auth.repository_policy import ALLOW, DENY, PolicyInvalid, parse_policy, principals_of
from registry.errors import AccessDeniedException
from registry.operations import Context
from registry.records import Grant

OWNER, OTHER, THIRD = "111111111111", "222222222222", "333333333333"


@dataclass(frozen=True)
class Key:
    registry_id: str
    name: str = "ci"
    grants: tuple[Grant, ...] = ()

    @property
    def principal_arn(self) -> str:
        return f"arn:aws:iam::{self.registry_id}:user/{self.name}"


def statement(effect="Allow", principal=None, action="ecr:BatchGetImage", **extra):
    member = extra.pop("member", "Action")
    return {"Effect": effect, "Principal": principal or {"AWS": OTHER}, member: action, **extra}


def policy(*statements, version="2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def decide(text: str, key: Key, action: str) -> str | None:
    return parse_policy(text).decision(principals_of(key.registry_id, key.principal_arn), action)


@pytest.mark.parametrize(
    "principal, key, expected",
    [
        ({"AWS": OTHER}, Key(OTHER), ALLOW),  # an account id: every key of that registry
        ({"AWS": f"arn:aws:iam::{OTHER}:root"}, Key(OTHER, "any"), ALLOW),
        ({"AWS": [THIRD, OTHER]}, Key(OTHER), ALLOW),
        ({"AWS": f"arn:aws:iam::{OTHER}:user/ci"}, Key(OTHER, "ci"), ALLOW),  # one key, by name
        ({"AWS": f"arn:aws:iam::{OTHER}:user/ci"}, Key(OTHER, "other"), None),
        ({"AWS": f"arn:aws:iam::{OTHER}:user/ci"}, Key(THIRD, "ci"), None),  # same name, another registry
        ("*", Key(THIRD), ALLOW),
        ({"AWS": "*"}, Key(THIRD), ALLOW),
        ({"AWS": THIRD}, Key(OTHER), None),
        ({"Service": "codebuild.amazonaws.com"}, Key(OTHER), None),  # no key is a service
    ],
)
def test_principals(principal, key, expected):
    assert decide(policy(statement(principal=principal)), key, "ecr:BatchGetImage") == expected


@pytest.mark.parametrize(
    "action, asked, expected",
    [
        ("ecr:BatchGetImage", "ecr:BatchGetImage", ALLOW),
        ("ecr:batchgetimage", "ecr:BatchGetImage", ALLOW),  # IAM's action names ignore case
        (["ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], "ecr:BatchGetImage", ALLOW),
        ("ecr:Batch*", "ecr:BatchGetImage", ALLOW),
        ("ecr:*", "ecr:PutImage", ALLOW),
        ("*", "ecr:PutImage", ALLOW),
        ("ecr:BatchGetImage", "ecr:PutImage", None),
        ("ecr:Get*", "ecr:BatchGetImage", None),
    ],
)
def test_actions(action, asked, expected):
    assert decide(policy(statement(action=action)), Key(OTHER), asked) == expected


def test_not_action_applies_to_every_other_action():
    text = policy(statement(action=["ecr:PutImage", "ecr:Delete*"], member="NotAction"))
    assert decide(text, Key(OTHER), "ecr:BatchGetImage") == ALLOW
    assert decide(text, Key(OTHER), "ecr:PutImage") is None
    assert decide(text, Key(OTHER), "ecr:DeleteRepository") is None


def test_an_explicit_deny_wins_over_any_allow():
    text = policy(
        statement(principal="*", action="ecr:*"),
        statement("Deny", principal={"AWS": f"arn:aws:iam::{OTHER}:user/ci"}, action="ecr:BatchGetImage"),
    )
    assert decide(text, Key(OTHER, "ci"), "ecr:BatchGetImage") == DENY
    assert decide(text, Key(OTHER, "ci"), "ecr:ListImages") == ALLOW
    assert decide(text, Key(OTHER, "other"), "ecr:BatchGetImage") == ALLOW


def test_a_single_statement_object_and_either_version():
    text = json.dumps({"Version": "2008-10-17", "Statement": statement()})
    assert decide(text, Key(OTHER), "ecr:BatchGetImage") == ALLOW
    assert decide(json.dumps({"Statement": [statement()]}), Key(OTHER), "ecr:BatchGetImage") == ALLOW


@pytest.mark.parametrize(
    "policy_text, key, expected",
    [
        (None, Key(OWNER), ALLOW),  # the owner's keys: their grants decide
        (None, Key(OTHER), None),  # another registry's: nothing shares the repository
        (policy(statement()), Key(OTHER), ALLOW),
        (policy(statement(action="ecr:ListImages")), Key(OTHER), None),
        (policy(statement("Deny", principal="*")), Key(OWNER), DENY),  # a Deny binds the owner too
        (policy(statement("Deny", principal={"AWS": OWNER})), Key(OWNER), DENY),
        (policy(statement(principal={"AWS": THIRD})), Key(OWNER), ALLOW),
    ],
)
def test_verdict_for_the_owner_and_for_others(policy_text, key, expected):
    parsed = parse_policy(policy_text) if policy_text else None
    assert policy_verdict(parsed, key, OWNER, "BatchGetImage") == expected


INVALID = {
    "empty text": ("", "not valid JSON"),
    "not JSON": ("{", "not valid JSON"),
    "deep nesting": ("[" * 5000 + "]" * 5000, "not valid JSON"),
    "a list": ("[]", "must be a JSON object"),
    "no statement": (json.dumps({"Version": "2012-10-17"}), "Statement"),
    "empty statement list": (json.dumps({"Statement": []}), "Statement"),
    "statement is a string": (json.dumps({"Statement": ["x"]}), "statement 1 must be a JSON object"),
    "bad version": (policy(statement(), version="2020-01-01"), "Version"),
    "unknown top-level element": (json.dumps({"Statement": [statement()], "Extra": 1}), "'Extra'"),
    "no effect": (json.dumps({"Statement": [{"Principal": "*", "Action": "ecr:*"}]}), "Effect"),
    "bad effect": (policy(statement("allow")), "Effect"),
    "no principal": (json.dumps({"Statement": [{"Effect": "Allow", "Action": "ecr:*"}]}), "Principal is required"),
    "principal not an object": (policy(statement(principal=["*"])), "Principal must be"),
    "federated principal": (policy(statement(principal={"Federated": "cognito-identity.amazonaws.com"})), "Principal"),
    "role principal": (policy(statement(principal={"AWS": f"arn:aws:iam::{OTHER}:role/r"})), "Principal not found"),
    "wildcard user": (policy(statement(principal={"AWS": f"arn:aws:iam::{OTHER}:user/*"})), "Principal not found"),
    "short account": (policy(statement(principal={"AWS": "12345"})), "Principal not found"),
    "bad service": (policy(statement(principal={"Service": "evil"})), "not a service principal"),
    "empty principal list": (policy(statement(principal={"AWS": []})), "names no principal"),
    "principal number": (policy(statement(principal={"AWS": 111111111111})), "string or a list of strings"),
    "no action": (json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*"}]}), "Action"),
    "action and not action": (policy(statement(NotAction="ecr:PutImage")), "exactly one of Action and NotAction"),
    "another service": (policy(statement(action="s3:GetObject")), "not an ECR action"),
    "unknown operation": (policy(statement(action="ecr:FlyToTheMoon")), "names no action of Amazon ECR"),
    "empty action list": (policy(statement(action=[])), "names no action"),
    "condition": (policy(statement(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})), "conditions are not"),
    "not principal": (policy(statement(NotPrincipal={"AWS": OTHER})), "NotPrincipal"),
    "resource": (policy(statement(Resource="*")), "Resource is not allowed"),
    "unknown statement element": (policy(statement(Colour="blue")), "'Colour'"),
    "duplicate sid": (policy(statement(Sid="a"), statement(Sid="a")), "Sid must be unique"),
    "sid number": (policy(statement(Sid=1)), "Sid must be a string"),
}


@pytest.mark.parametrize("text, problem", INVALID.values(), ids=INVALID.keys())
def test_invalid_policies_name_the_problem(text, problem, ecr_model):
    with pytest.raises(PolicyInvalid) as refused:
        parse_policy(text, ecr_model.operation_names)
    assert problem in refused.value.problem


def test_actions_of_any_ecr_operation_are_accepted(ecr_model):
    """Policies often list operations this registry does not serve (StartImageScan...): they are ECR's."""
    parse_policy(
        policy(statement(action=["ecr:StartImageScan", "ecr:Describe*", "ECR:LISTIMAGES"])), ecr_model.operation_names
    )


class PolicyReads:
    """The storage side of `authorize`: the texts it holds, and every read made of them."""

    def __init__(self, texts: dict[str, str]):
        self.texts, self.reads = texts, []

    def __call__(self, registry_id, names):
        self.reads.append((registry_id, list(names)))
        return {n: self.texts[n] for n in names if n in self.texts}


ADMIN = (Grant(("admin",), ("*",)),)


def test_authorize_reads_the_policies_once_and_returns_the_registry_acted_in():
    reads = PolicyReads({"a": policy(statement(principal={"AWS": OTHER}, action="ecr:DescribeRepositories"))})
    key = Key(OTHER, grants=ADMIN)
    with pytest.raises(AccessDeniedException, match=r"repository/b because no resource-based policy allows"):
        authorize(key, "DescribeRepositories", {"registryId": OWNER, "repositoryNames": ["a", "b"]}, "r", reads)
    assert reads.reads == [(OWNER, ["a", "b"])]
    reads.texts["b"] = reads.texts["a"]
    params = {"registryId": OWNER, "repositoryNames": ["a", "b"]}
    assert authorize(key, "DescribeRepositories", params, "r", reads) == OWNER
    assert authorize(key, "DescribeRepositories", {"repositoryNames": ["a"]}, "r", reads) == OTHER  # its own


def test_authorize_checks_the_grants_before_reading_and_never_reads_for_listings_or_creation():
    reads = PolicyReads({"a": policy(statement(principal="*", action="ecr:*"))})
    reader = Key(OTHER, grants=(Grant(("pull",), ("*",)),))
    with pytest.raises(AccessDeniedException):  # shared by the policy, not allowed by the key's grants
        authorize(reader, "PutImage", {"registryId": OWNER, "repositoryName": "a"}, "r", reads)
    for operation, params in [
        ("DescribeRepositories", {"registryId": OWNER}),
        ("CreateRepository", {"registryId": OWNER, "repositoryName": "a"}),
    ]:
        with pytest.raises(AccessDeniedException):
            authorize(Key(OTHER, grants=ADMIN), operation, params, "r", reads)
    authorize(Key(OWNER, grants=ADMIN), "CreateRepository", {"repositoryName": "a"}, "r", reads)
    assert reads.reads == []


def context_of(key: Key, reads: PolicyReads) -> Context:
    """A BatchGetImage of repository `a` of OWNER whose policy is unchecked; its store has only the
    policies' texts (what Context.check_policies reads), its settings only a Region."""
    store = SimpleNamespace(repositories=SimpleNamespace(policy_texts=reads))
    settings = SimpleNamespace(region="us-east-1")
    return Context("BatchGetImage", key, store, settings, OWNER, unchecked_policies=("a",))  # type: ignore[arg-type]


def test_run_refuses_what_an_operation_found_before_reading_its_policy(monkeypatch):
    """Fail closed: an operation that reads its own policy but fails (or returns) without handing it
    to the context is checked by `run` all the same, and the refusal replaces its answer."""

    def not_found(params, ctx):
        raise errors.repository_not_found(OWNER, "a")

    def forgetful(params, ctx):
        return {"images": ["secret"]}

    monkeypatch.setattr(operations, "READ_THEIR_POLICY", frozenset({not_found, forgetful}))
    for operation in (not_found, forgetful):
        reads = PolicyReads({})
        with pytest.raises(AccessDeniedException, match="because no resource-based policy allows"):
            operations.run(operation, {}, context_of(Key(OTHER, grants=ADMIN), reads))
        assert reads.reads == [(OWNER, ["a"])]


def test_run_checks_the_policy_before_other_operations_and_with_the_read_of_those_that_read_it(monkeypatch):
    shared = policy(statement(principal={"AWS": OTHER}))
    ran = []

    def writing(params, ctx):  # not one of READ_THEIR_POLICY: refused before it runs
        ran.append("writing")
        return {}

    reads = PolicyReads({})
    with pytest.raises(AccessDeniedException):
        operations.run(writing, {}, context_of(Key(OTHER, grants=ADMIN), reads))
    assert ran == [] and reads.reads == [(OWNER, ["a"])]

    def reading(params, ctx):
        ctx.policy_read(shared)  # read with its data: no read of its own
        return {"ok": True}

    monkeypatch.setattr(operations, "READ_THEIR_POLICY", frozenset({reading}))
    reads = PolicyReads({})
    assert operations.run(reading, {}, context_of(Key(OTHER, grants=ADMIN), reads)) == {"ok": True}
    assert reads.reads == []
