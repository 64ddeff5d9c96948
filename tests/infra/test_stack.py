"""The synthesized template has every resource and property the deployment promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aws_cdk.assertions import Match
from stack_synth import API_HANDLER, SWEEP_HANDLER, function_by_handler, role_policy_statements

from registry.config import (
    ACCESS_KEY_CACHE_SECONDS_ENV,
    ACCESS_KEYS_KMS_KEY_ENV,
    BUCKET_ENV,
    METRICS_NAMESPACE,
    QUOTA_ENV,
    SERVICE_NAME,
    TABLE_ENV,
    Quotas,
)
from registry.storage.schema import TABLES

WRITE_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}


def resources(template, kind: str) -> dict[str, dict]:
    return template.find_resources(kind)


def only(template, kind: str) -> tuple[str, dict]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.items()))


def logical_id_of_table(template, logical: str) -> str:
    spec = TABLES[logical]
    for logical_id, table in resources(template, "AWS::DynamoDB::Table").items():
        keys = {k["KeyType"]: k["AttributeName"] for k in table["Properties"]["KeySchema"]}
        if logical_id.startswith("Storage" + logical.capitalize()) and keys["HASH"] == spec.partition_key:
            return logical_id
    raise AssertionError(f"no table for {logical}")


def function(template) -> dict:
    """The API function (the stack's other one is the sweep)."""
    return function_by_handler(template, API_HANDLER)[1]


def ecr_method(template) -> dict:
    """The ECR API's one method, POST / (the others are the /v2 routes)."""
    (api_id, _) = only(template, "AWS::ApiGateway::RestApi")
    (method,) = [
        m
        for m in resources(template, "AWS::ApiGateway::Method").values()
        if m["Properties"]["ResourceId"] == {"Fn::GetAtt": [api_id, "RootResourceId"]}
    ]
    return method


def function_policy_statements(template) -> list[dict]:
    return role_policy_statements(template, function(template))


# --- DynamoDB ---------------------------------------------------------------------------------------


def test_one_table_per_schema_entry(template):
    assert len(resources(template, "AWS::DynamoDB::Table")) == len(TABLES)


@pytest.mark.parametrize("logical", sorted(TABLES))
def test_table_keys_billing_recovery_encryption_retention(template, logical):
    spec = TABLES[logical]
    table = resources(template, "AWS::DynamoDB::Table")[logical_id_of_table(template, logical)]
    props = table["Properties"]
    expected_keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        expected_keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    assert props["KeySchema"] == expected_keys
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        ({"AttributeName": k["AttributeName"], "AttributeType": "S"} for k in expected_keys),
        key=lambda a: a["AttributeName"],
    )
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props


def test_destroy_variant_removes_data_with_the_stack(variant):
    destroyed = variant({"registry:removalPolicy": "destroy"}).template
    (_, key) = keys_key(destroyed)
    assert key["DeletionPolicy"] == "Delete" and key["Properties"]["PendingWindowInDays"] == 7
    for table in resources(destroyed, "AWS::DynamoDB::Table").values():
        assert table["DeletionPolicy"] == "Delete"
        assert table["Properties"]["DeletionProtectionEnabled"] is False
    for bucket in resources(destroyed, "AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Delete"
    for group in resources(destroyed, "AWS::Logs::LogGroup").values():
        assert group["DeletionPolicy"] == "Delete"
    # No Node.js custom resource (autoDeleteObjects would add one): the emulator cannot run them.
    assert not resources(destroyed, "Custom::S3AutoDeleteObjects")


# --- S3 --------------------------------------------------------------------------------------------


def blob_bucket(template) -> tuple[str, dict]:
    for logical_id, bucket in resources(template, "AWS::S3::Bucket").items():
        if "LoggingConfiguration" in bucket["Properties"]:
            return logical_id, bucket
    raise AssertionError("no blob bucket")


def test_blob_bucket_private_encrypted_unversioned_retained(template):
    _, bucket = blob_bucket(template)
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert "VersioningConfiguration" not in props
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["DeletionPolicy"] == "Retain"


def test_blob_bucket_lifecycle_clears_staged_parts_and_incomplete_uploads(template):
    _, bucket = blob_bucket(template)
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert "Prefix" not in rules["abort-incomplete-multipart"]
    assert rules["expire-staged-parts"]["Prefix"] == "uploads/"
    assert rules["expire-staged-parts"]["ExpirationInDays"] == 7
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_every_bucket_denies_plain_http(template):
    policies = resources(template, "AWS::S3::BucketPolicy").values()
    covered = {
        p["Properties"]["Bucket"]["Ref"]
        for p in policies
        if any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert covered == set(resources(template, "AWS::S3::Bucket"))


def test_blob_bucket_access_logs_go_to_the_log_bucket(template):
    _, bucket = blob_bucket(template)
    target = bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    log_bucket = resources(template, "AWS::S3::Bucket")[target]["Properties"]
    assert log_bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert any("ExpirationInDays" in r for r in log_bucket["LifecycleConfiguration"]["Rules"])


# --- Lambda ----------------------------------------------------------------------------------------


def test_function_runtime_architecture_handler_tracing(template):
    props = function(template)["Properties"]
    runtime = props["Runtime"]
    assert runtime.startswith("python3.")
    assert tuple(int(x) for x in runtime.removeprefix("python").split(".")) >= (3, 12)
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "registry.handler.lambda_handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["MemorySize"] == 1024


def test_handler_named_in_the_template_exists():
    from registry import handler

    assert callable(handler.lambda_handler)


def test_function_times_out_before_api_gateway(template):
    props = function(template)["Properties"]
    method = ecr_method(template)
    integration_ms = method["Properties"]["Integration"].get("TimeoutInMillis", 29_000)
    assert props["Timeout"] * 1000 < integration_ms


def test_function_environment_names_every_table_bucket_registry_and_quota(template):
    env = function(template)["Properties"]["Environment"]["Variables"]
    for logical, variable in TABLE_ENV.items():
        assert env[variable] == {"Ref": logical_id_of_table(template, logical)}
    assert set(TABLE_ENV) == set(TABLES), "every table of the schema has its environment variable"
    assert env[BUCKET_ENV] == {"Ref": blob_bucket(template)[0]}
    assert env[ACCESS_KEYS_KMS_KEY_ENV] == {"Fn::GetAtt": [keys_key(template)[0], "Arn"]}
    assert env[ACCESS_KEY_CACHE_SECONDS_ENV] == "60"
    defaults = Quotas()
    for field, variable in QUOTA_ENV.items():
        assert env[variable] == str(getattr(defaults, field))
    assert env["POWERTOOLS_SERVICE_NAME"] == "ecr-registry"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ServerlessEcrRegistry"


def test_powertools_names_match_the_handler(template):
    """The dashboard reads the handler's metrics: the handler takes its service and namespace from
    the environment the stack sets (nothing hard-coded on either side)."""
    env = function(template)["Properties"]["Environment"]["Variables"]
    probe = "from registry import handler; print(handler.logger.service, handler.metrics.namespace)"
    names = {k: env[k] for k in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")}
    printed = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **names}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert printed == [names["POWERTOOLS_SERVICE_NAME"], names["POWERTOOLS_METRICS_NAMESPACE"]]


def test_quotas_and_throttling_come_from_context(variant):
    synthesized = variant(
        {
            "registry:quotas": json.dumps({"max_images_per_repository": 50}),
            "registry:throttleRateLimit": "7",
            "registry:throttleBurstLimit": "9",
            "registry:integrationTimeout": "60",
            "registry:memorySize": "2048",
        }
    )
    env = function(synthesized.template)["Properties"]["Environment"]["Variables"]
    assert env[QUOTA_ENV["max_images_per_repository"]] == "50"
    assert env[QUOTA_ENV["max_tags_per_image"]] == str(Quotas().max_tags_per_image)
    assert function(synthesized.template)["Properties"]["MemorySize"] == 2048
    assert function(synthesized.template)["Properties"]["Timeout"] == 59
    (_, stage) = only(synthesized.template, "AWS::ApiGateway::Stage")
    (setting,) = stage["Properties"]["MethodSettings"]
    assert (setting["ThrottlingRateLimit"], setting["ThrottlingBurstLimit"]) == (7, 9)
    for method in resources(synthesized.template, "AWS::ApiGateway::Method").values():  # POST / and /v2
        assert method["Properties"]["Integration"]["TimeoutInMillis"] == 60_000


def test_direct_upload_limit_comes_from_context(variant):
    from registry.config import DIRECT_UPLOAD_MAX_BYTES_ENV, Settings

    env = function(variant({"registry:directUploadMaxBytes": "0"}).template)["Properties"]["Environment"]["Variables"]
    assert env[DIRECT_UPLOAD_MAX_BYTES_ENV] == "0"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DIRECT_UPLOAD_MAX_BYTES_ENV, env[DIRECT_UPLOAD_MAX_BYTES_ENV])
        assert Settings.from_environment().direct_upload_max_bytes == 0, "the function reads what the stack sets"
    with pytest.raises(Exception, match="directUploadMaxBytes"):
        variant({"registry:directUploadMaxBytes": "-1"})


def test_key_cache_seconds_come_from_context(variant):
    env = function(variant({"registry:keyCacheSeconds": "15"}).template)["Properties"]["Environment"]["Variables"]
    assert env[ACCESS_KEY_CACHE_SECONDS_ENV] == "15"
    from registry.config import _key_cache_seconds

    assert _key_cache_seconds(env[ACCESS_KEY_CACHE_SECONDS_ENV]) == 15, "the function accepts what the stack sets"
    with pytest.raises(Exception, match="keyCacheSeconds"):
        variant({"registry:keyCacheSeconds": "901"})


def test_unknown_quota_fails_at_synth(variant):
    with pytest.raises(Exception, match=r"unexpected keyword|max_nonsense"):
        variant({"registry:quotas": {"max_nonsense": 1}})


def test_function_log_group_has_retention(template):
    group = function(template)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources(template, "AWS::Logs::LogGroup")[group]["Properties"]["RetentionInDays"] == 30


# --- IAM: least privilege --------------------------------------------------------------------------


def test_function_role_has_no_managed_policies(template):
    role_id = function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    role = resources(template, "AWS::IAM::Role")[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]


def _actions(statement) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def _resources(statement) -> list:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def table_actions(template) -> dict[str, set[str]]:
    """logical table -> every DynamoDB action the function's policies allow on it."""
    arns = {json.dumps({"Fn::GetAtt": [logical_id_of_table(template, t), "Arn"]}): t for t in TABLES}
    allowed: dict[str, set[str]] = {t: set() for t in TABLES}
    for statement in function_policy_statements(template):
        actions = {a for a in _actions(statement) if a.startswith("dynamodb:")}
        if not actions:
            continue
        assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
        for resource in _resources(statement):
            assert json.dumps(resource) in arns, f"DynamoDB actions on something else than a table: {resource}"
            allowed[arns[json.dumps(resource)]] |= actions
    return allowed


def test_function_may_use_only_its_own_tables(template):
    read_write = {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    }
    assert table_actions(template) == {t: read_write for t in TABLES if t != "keys"} | {"keys": {"dynamodb:GetItem"}}


def test_function_cannot_write_the_keys_table(template):
    """Keys are issued and revoked by the operator (registryctl); the function only looks them up,
    so a compromised function cannot mint itself a key or revive a revoked one."""
    assert table_actions(template)["keys"] == {"dynamodb:GetItem"}
    assert not table_actions(template)["keys"] & WRITE_ACTIONS


def test_every_table_has_an_explicit_access_level(variant, monkeypatch):
    from infra import api

    assert set(api.TABLE_ACCESS) == set(TABLES)
    assert set(api.TABLE_ACCESS.values()) <= set(api.ACCESS_LEVELS)
    monkeypatch.delitem(api.TABLE_ACCESS, "uploads")
    with pytest.raises(Exception, match="no access level"):
        variant({})


def test_function_may_use_only_its_own_object_prefixes(template):
    (statement,) = [s for s in function_policy_statements(template) if any(a.startswith("s3:") for a in _actions(s))]
    assert sorted(_actions(statement)) == [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    ]
    bucket_id = blob_bucket(template)[0]
    assert statement["Resource"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{prefix}/*"]]}
        for prefix in ("blobs", "manifests", "uploads")
    ]


def test_kms_data_keys_only_through_s3_for_this_bucket(template):
    own_keys = [{"Fn::GetAtt": [key(template)[0], "Arn"]} for key in (keys_key, token_key)]
    statements = [
        s
        for s in function_policy_statements(template)
        if any(a.startswith("kms:") for a in _actions(s)) and s["Resource"] not in own_keys
    ]
    data_keys = next(s for s in statements if "kms:GenerateDataKey" in _actions(s))
    assert sorted(_actions(data_keys)) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert data_keys["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
    }
    contexts = data_keys["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
    assert {"Fn::GetAtt": [blob_bucket(template)[0], "Arn"]} in contexts
    describe = next(s for s in statements if "kms:DescribeKey" in _actions(s))
    assert sorted(_actions(describe)) == ["kms:DescribeKey", "kms:ListResourceTags"]  # reads the assignment tag
    assert len(statements) == 2


def test_repository_keys_are_only_keys_assigned_to_a_registry(template):
    """The role may touch no customer key that was not assigned to some registry (the tag); which
    registry is the function's check (CreateRepository), since one role serves every tenant."""
    from registry.config import KMS_KEY_REGISTRY_TAG

    own_keys = [{"Fn::GetAtt": [key(template)[0], "Arn"]} for key in (keys_key, token_key)]
    repository_key_statements = [
        s
        for s in function_policy_statements(template)
        if any(a.startswith("kms:") for a in _actions(s)) and s["Resource"] not in own_keys
    ]
    assert repository_key_statements
    for statement in repository_key_statements:
        assert statement["Condition"]["Null"] == {f"aws:ResourceTag/{KMS_KEY_REGISTRY_TAG}": "false"}, statement


def test_kms_repository_objects_are_written_with_an_s3_bucket_key():
    """SSE-KMS objects ask S3 for a bucket key (one KMS call per bucket key, not per object write);
    DSSE-KMS does not support bucket keys, and SSE-S3 needs no KMS at all."""
    from registry.records import Encryption
    from registry.storage.backend import sse_arguments

    key = "arn:aws:kms:us-east-1:111122223333:key/k"
    assert sse_arguments(Encryption("KMS", key)) == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": key,
        "BucketKeyEnabled": True,
    }
    assert sse_arguments(Encryption("KMS"))["BucketKeyEnabled"] is True  # aws/s3
    assert "BucketKeyEnabled" not in sse_arguments(Encryption("KMS_DSSE", key))
    assert "BucketKeyEnabled" not in sse_arguments(Encryption("AES256"))


def test_bucket_key_encryption_context_is_allowed(template):
    """With a bucket key, S3 passes the bucket's ARN (not the object's) as KMS encryption context."""
    (statement,) = [s for s in function_policy_statements(template) if "kms:GenerateDataKey" in _actions(s)]
    contexts = statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
    bucket_id = blob_bucket(template)[0]
    assert {"Fn::GetAtt": [bucket_id, "Arn"]} in contexts


# --- KMS: the access keys' secrets ------------------------------------------------------------------


ACCOUNT_ROOT = {
    "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
}
# What KMS key administrators may do (AWS's default key policy for key administrators): manage the
# key, its policy, grants, rotation and deletion, but not use it on data.
KEY_ADMINISTRATION = {
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
}
SECRET_CONDITION = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["access_key_id", "registry_id"]},
    "Null": {"kms:EncryptionContext:access_key_id": "false", "kms:EncryptionContext:registry_id": "false"},
}


def keys_key(template) -> tuple[str, dict]:
    """The access keys' KMS key (the stack's other key is the HMAC token key)."""
    from infra.storage import KEYS_KEY_DESCRIPTION

    (found,) = [
        (logical_id, key)
        for logical_id, key in resources(template, "AWS::KMS::Key").items()
        if key["Properties"]["Description"] == KEYS_KEY_DESCRIPTION
    ]
    return found


def token_key(template) -> tuple[str, dict]:
    from infra.storage import TOKEN_KEY_DESCRIPTION

    (found,) = [
        (logical_id, key)
        for logical_id, key in resources(template, "AWS::KMS::Key").items()
        if key["Properties"]["Description"] == TOKEN_KEY_DESCRIPTION
    ]
    return found


def test_the_token_key_is_an_hmac_key_the_function_may_only_derive_from(template):
    """Page tokens (and GetAuthorizationToken's passwords) are signed with a key derived from an HMAC
    key that never leaves KMS: the function may call GenerateMac with it, nothing else."""
    from registry.config import TOKEN_KMS_KEY_ENV

    logical_id, key = token_key(template)
    assert key["Properties"]["KeySpec"] == "HMAC_256" and key["Properties"]["KeyUsage"] == "GENERATE_VERIFY_MAC"
    arn = {"Fn::GetAtt": [logical_id, "Arn"]}
    assert function(template)["Properties"]["Environment"]["Variables"][TOKEN_KMS_KEY_ENV] == arn
    uses = [s for s in function_policy_statements(template) if json.dumps(arn) in json.dumps(s["Resource"])]
    assert [(s["Action"], s.get("Condition")) for s in uses] == [("kms:GenerateMac", None)]


def key_policy(template) -> list[dict]:
    return keys_key(template)[1]["Properties"]["KeyPolicy"]["Statement"]


def test_access_key_secrets_have_their_own_rotating_retained_key(template):
    (_, key) = keys_key(template)
    props = key["Properties"]
    assert props["Description"] == "Encrypts the secrets of the registry's access keys"
    assert props["EnableKeyRotation"] is True
    assert props.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    assert props.get("KeyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT"
    assert key["DeletionPolicy"] == "Retain" and key["UpdateReplacePolicy"] == "Retain"
    assert "PendingWindowInDays" not in props
    # By default the key policy still delegates to IAM in this account (the account root may do
    # anything with the key), so that nobody is locked out of it.
    (statement,) = [s for s in props["KeyPolicy"]["Statement"] if s["Principal"] == ACCOUNT_ROOT]
    assert statement["Action"] == "kms:*" and statement["Effect"] == "Allow"


def test_function_may_only_decrypt_access_key_secrets_with_that_key(template):
    key_arn = {"Fn::GetAtt": [keys_key(template)[0], "Arn"]}
    statements = [s for s in function_policy_statements(template) if key_arn in _resources(s)]
    (statement,) = statements
    assert _actions(statement) == ["kms:Decrypt"] and statement["Resource"] == key_arn
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["access_key_id", "registry_id"]},
        "Null": {"kms:EncryptionContext:access_key_id": "false", "kms:EncryptionContext:registry_id": "false"},
    }


def test_key_policy_names_the_function_role_for_decrypt_only(template):
    """The key policy itself says who decrypts secrets: the function's role, for ciphertexts bound to
    an access key (the encryption context of storage/keys.py), nothing else."""
    role_id = function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    (statement,) = [s for s in key_policy(template) if s["Principal"] == {"AWS": {"Fn::GetAtt": [role_id, "Arn"]}}]
    assert statement["Effect"] == "Allow" and _actions(statement) == ["kms:Decrypt"]
    assert statement["Resource"] == "*"  # in a key policy, "*" is this key
    assert statement["Condition"] == SECRET_CONDITION


def test_named_operators_encrypt_and_the_account_only_administers_the_key(variant):
    operators = "arn:aws:iam::111122223333:role/registry-operator,arn:aws:iam::111122223333:user/alice"
    template = variant({"registry:operatorPrincipalArns": operators}).template
    statements = key_policy(template)
    (root,) = [s for s in statements if s["Principal"] == ACCOUNT_ROOT]
    assert set(_actions(root)) == KEY_ADMINISTRATION, "the account keeps managing the key, but not using it"
    assert not {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*", "kms:*"} & set(_actions(root))
    (operator,) = [s for s in statements if "registry-operator" in json.dumps(s["Principal"])]
    assert operator["Principal"] == {"AWS": operators.split(",")}
    assert sorted(_actions(operator)) == ["kms:Decrypt", "kms:Encrypt"]
    assert operator["Condition"] == SECRET_CONDITION
    role_id = function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    assert [s for s in statements if s["Principal"] == {"AWS": {"Fn::GetAtt": [role_id, "Arn"]}}]
    # Nobody else may use the key.
    users = [s for s in statements if s not in (root, operator)]
    assert all(_actions(s) == ["kms:Decrypt"] for s in users)


def test_operator_principals_must_be_iam_arns(variant):
    with pytest.raises(Exception, match="operatorPrincipalArns"):
        variant({"registry:operatorPrincipalArns": "alice"})


class _RecordingKms:
    """Records the encryption context of every call; 'encrypts' by prefixing."""

    def __init__(self):
        self.contexts = []

    def encrypt(self, KeyId, Plaintext, EncryptionContext):
        self.contexts.append(dict(EncryptionContext))
        return {"CiphertextBlob": b"x" + Plaintext}

    def decrypt(self, CiphertextBlob, EncryptionContext, KeyId=None):
        self.contexts.append(dict(EncryptionContext))
        return {"Plaintext": CiphertextBlob[1:]}


class _OneItemTable:
    class exceptions:
        class ConditionalCheckFailedException(Exception):
            pass

    def __init__(self):
        self.item = None

    def put_item(self, TableName, Item, ConditionExpression):
        self.item = Item
        return {}

    def get_item(self, TableName, Key, ConsistentRead):
        return {"Item": self.item}


def test_the_decrypt_condition_matches_the_context_the_code_uses():
    """registryctl's encrypt and the function's decrypt send exactly the keys the policy requires."""
    from infra.storage import SECRET_CONTEXT_KEYS
    from registry.config import Settings
    from registry.records import Grant
    from registry.storage.access_keys import AccessKeyStore
    from registry.storage.backend import Backend

    kms = _RecordingKms()
    clients = {"dynamodb": _OneItemTable(), "kms": kms}
    backend = Backend(Settings(region="us-east-1", tables={"keys": "keys"}), clients.__getitem__)
    store = AccessKeyStore(backend, "arn:aws:kms:us-east-1:111122223333:key/k")
    store.create("111122223333", "ci", (Grant(("pull",), ("*",)),), 0.0, access_key_id="AKIDX", secret="s")
    assert store.get("AKIDX").secret == "s"
    assert [sorted(c) for c in kms.contexts] == [sorted(SECRET_CONTEXT_KEYS)] * 2


def test_no_wildcard_actions_and_only_xray_on_every_resource(template):
    for statement in function_policy_statements(template):
        assert all("*" not in action for action in _actions(statement)), statement
        if statement["Resource"] == "*":
            assert sorted(_actions(statement)) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]


def test_logs_only_to_its_own_log_group(template):
    (statement,) = [s for s in function_policy_statements(template) if any(a.startswith("logs:") for a in _actions(s))]
    group = function(template)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert statement["Resource"] == {"Fn::GetAtt": [group, "Arn"]}
    assert sorted(_actions(statement)) == ["logs:CreateLogStream", "logs:PutLogEvents"]


# --- API Gateway -----------------------------------------------------------------------------------


def test_regional_rest_api_with_one_post_on_root(template):
    (api_id, api) = only(template, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    props = ecr_method(template)["Properties"]  # the /v2 routes: tests/infra/test_distribution_stack.py
    assert props["HttpMethod"] == "POST"
    assert props["ResourceId"] == {"Fn::GetAtt": [api_id, "RootResourceId"]}
    assert props["AuthorizationType"] == "NONE"
    assert props["Integration"]["Type"] == "AWS_PROXY"
    assert props["Integration"]["IntegrationHttpMethod"] == "POST"
    # application/x-amz-json-1.1 must arrive as text (the binary media types are the /v2 API's)
    assert "application/x-amz-json-1.1" not in api["Properties"]["BinaryMediaTypes"]


@pytest.fixture(scope="module")
def logged(variant):
    """The stack for an account whose API Gateway CloudWatch role is already set (centrally)."""
    return variant({"registry:apiGatewayLogs": "true"}).template


def execution_log_groups(template) -> list[dict]:
    return [
        g["Properties"]
        for g in resources(template, "AWS::Logs::LogGroup").values()
        if "API-Gateway-Execution-Logs_" in json.dumps(g["Properties"].get("LogGroupName", ""))
    ]


def api_gateway_roles(template) -> dict[str, dict]:
    return {
        logical_id: role
        for logical_id, role in resources(template, "AWS::IAM::Role").items()
        if "apigateway.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    }


def test_stage_throttling_access_logs_tracing(template, logged):
    """Throttling and tracing always; the access log where the account lets API Gateway write logs."""
    (_, stage) = only(template, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "prod"
    assert props["TracingEnabled"] is True
    (setting,) = props["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == 100 and setting["ThrottlingBurstLimit"] == 200
    assert setting["DataTraceEnabled"] is False
    (_, stage) = only(logged, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    fields = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "integrationStatus", "ip"} <= set(fields)
    destination = json.dumps(props["AccessLogSetting"]["DestinationArn"])
    groups = resources(logged, "AWS::Logs::LogGroup")
    (access_group,) = [g for g in groups if g in destination]
    assert groups[access_group]["Properties"]["RetentionInDays"] == 30


def test_execution_log_group_is_ours_with_retention(logged):
    (api_id, _) = only(logged, "AWS::ApiGateway::RestApi")
    (group,) = execution_log_groups(logged)
    assert group["LogGroupName"] == {"Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api_id}, "/prod"]]}
    assert group["RetentionInDays"] == 30
    (_, stage) = only(logged, "AWS::ApiGateway::Stage")
    (setting,) = stage["Properties"]["MethodSettings"]
    assert setting["LoggingLevel"] == "ERROR" and setting["DataTraceEnabled"] is False


def test_the_account_wide_api_gateway_role_is_left_alone_by_default(template):
    """AWS::ApiGateway::Account is one setting per account and Region: creating it replaces a role set
    centrally, and it outlives the stack. Without that role a REST API stage can have neither
    execution logs nor CloudWatch access logs (the deploy fails), so by default it has neither."""
    assert not resources(template, "AWS::ApiGateway::Account")
    assert not api_gateway_roles(template)
    (_, stage) = only(template, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" not in stage["Properties"]
    (setting,) = stage["Properties"]["MethodSettings"]
    assert setting.get("LoggingLevel", "OFF") == "OFF"
    assert not execution_log_groups(template)


def test_an_account_with_its_role_set_gets_the_logs_and_keeps_its_role(logged):
    assert not resources(logged, "AWS::ApiGateway::Account")
    assert not api_gateway_roles(logged)
    (_, stage) = only(logged, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage["Properties"]


def test_the_stack_sets_the_account_role_only_when_asked(variant):
    opted_in = variant({"registry:apiGatewayCloudWatchRole": "true"}).template
    (_, account) = only(opted_in, "AWS::ApiGateway::Account")
    ((role_id, role),) = api_gateway_roles(opted_in).items()
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    assert role["DeletionPolicy"] == "Retain", "other APIs of the account may rely on it"
    (_, stage) = only(opted_in, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage["Properties"]
    (setting,) = stage["Properties"]["MethodSettings"]
    assert setting["LoggingLevel"] == "ERROR"
    assert execution_log_groups(opted_in)


# --- API Gateway: unsigned requests stop at the gateway ----------------------------------------------


def test_unsigned_requests_are_refused_before_the_function(template):
    """Every request without an Authorization header would otherwise invoke (and bill) the function."""
    (api_id, _) = only(template, "AWS::ApiGateway::RestApi")
    props = ecr_method(template)["Properties"]
    assert props["RequestParameters"] == {"method.request.header.Authorization": True}
    validator = resources(template, "AWS::ApiGateway::RequestValidator")[props["RequestValidatorId"]["Ref"]]
    assert validator["Properties"]["RestApiId"] == {"Ref": api_id}
    assert validator["Properties"]["ValidateRequestParameters"] is True
    # Bodies are the function's to check, against the botocore model.
    assert validator["Properties"].get("ValidateRequestBody", False) is False


def test_the_gateway_refuses_an_unsigned_request_as_the_function_does(template):
    """Same status, body and content type as the function's own refusal (wire.py), so boto3 raises
    MissingAuthenticationTokenException whichever of the two answered."""
    from registry import wire
    from registry.errors import MissingAuthenticationTokenException

    expected = wire.error_response(MissingAuthenticationTokenException("Missing Authentication Token"), "id")
    assert json.loads(expected["body"]) == {
        "__type": "MissingAuthenticationTokenException",
        "message": "Missing Authentication Token",
    }
    (api_id, _) = only(template, "AWS::ApiGateway::RestApi")
    (response,) = [
        r
        for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()
        if r["Properties"]["ResponseType"] == "BAD_REQUEST_PARAMETERS"
    ]
    props = response["Properties"]
    assert props["RestApiId"] == {"Ref": api_id}
    assert props["StatusCode"] == str(expected["statusCode"]) == "403"
    templates = props["ResponseTemplates"]
    assert "application/json" in templates, "the template API Gateway renders whatever the client accepts"
    for body in templates.values():
        assert json.loads(body) == json.loads(expected["body"])
    headers = props["ResponseParameters"]
    assert headers["gatewayresponse.header.x-amzn-ErrorType"] == "'MissingAuthenticationTokenException'"
    assert headers["gatewayresponse.header.Content-Type"] == f"'{expected['headers']['Content-Type']}'"


def test_only_the_api_may_invoke_the_function(template):
    """Its stage (POST / and the /v2 routes) and its authorizer: which, tests/infra/test_distribution_stack.py."""
    api_id = function_by_handler(template, API_HANDLER)[0]
    (rest_api_id, _) = only(template, "AWS::ApiGateway::RestApi")
    permissions = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [api_id, "Arn"]}
    ]
    assert len(permissions) == 4
    for props in permissions:
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert {"Ref": rest_api_id} in props["SourceArn"]["Fn::Join"][1]
    assert sum(p["SourceArn"]["Fn::Join"][1][-1] == "/POST/" for p in permissions) == 1


def test_optional_source_ip_policy_and_waf(variant):
    synthesized = variant(
        {
            "registry:allowedSourceCidrs": "10.0.0.0/8,192.0.2.0/24",
            "registry:webAclArn": "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/x/1",
        }
    )
    (_, api) = only(synthesized.template, "AWS::ApiGateway::RestApi")
    deny = [s for s in api["Properties"]["Policy"]["Statement"] if s["Effect"] == "Deny"]
    assert deny[0]["Condition"] == {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]}}
    only(synthesized.template, "AWS::WAFv2::WebACLAssociation")


# --- Monitoring and outputs ------------------------------------------------------------------------


def single_metric_alarms(template) -> dict[tuple[str, str, str], dict]:
    """(subject, namespace, metric) -> properties of every alarm on one metric."""
    api_id = function_by_handler(template, API_HANDLER)[0]
    sweep_id = function_by_handler(template, SWEEP_HANDLER)[0]
    names = {json.dumps({"Ref": api_id}): "api", json.dumps({"Ref": sweep_id}): "sweep"}

    def subject(props) -> str:
        dimensions = {d["Name"]: json.dumps(d["Value"]) for d in props.get("Dimensions", [])}
        if "FunctionName" in dimensions:
            return names[dimensions["FunctionName"]]
        if "service" in dimensions:
            return json.loads(dimensions["service"])
        return "rest-api" if "ApiName" in dimensions else "account"

    alarms = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if "Metrics" not in a["Properties"]
    ]
    by_metric = {(subject(a), a["Namespace"], a["MetricName"]): a for a in alarms}
    assert len(by_metric) == len(alarms)
    return by_metric


def math_alarms(template) -> dict[str, dict]:
    """logical id -> properties of every alarm on a metric math expression or a Metrics Insights query."""
    return {
        i: a["Properties"]
        for i, a in resources(template, "AWS::CloudWatch::Alarm").items()
        if "Metrics" in a["Properties"]
    }


def test_alarms_on_function_errors_throttles_duration_api_5xx_and_sweep_errors(template):
    by_metric = single_metric_alarms(template)
    assert set(by_metric) == {
        ("api", "AWS/Lambda", "Errors"),
        ("api", "AWS/Lambda", "Throttles"),
        ("api", "AWS/Lambda", "Duration"),
        ("rest-api", "AWS/ApiGateway", "5XXError"),
        ("sweep", "AWS/Lambda", "Errors"),
        # Hardening: client-error spikes, account concurrency, a sweep that never completes.
        ("rest-api", "AWS/ApiGateway", "4XXError"),
        ("account", "AWS/Lambda", "ConcurrentExecutions"),
        ("ecr-registry-sweep", "ServerlessEcrRegistry", "SweepIncomplete"),
    }
    assert by_metric[("sweep", "AWS/Lambda", "Errors")]["Period"] == 3600
    assert by_metric[("sweep", "AWS/Lambda", "Errors")]["Threshold"] == 1
    by_metric = {
        (namespace, metric): props
        for (who, namespace, metric), props in by_metric.items()
        if who in ("api", "rest-api", "account")
    }
    for props in by_metric.values():
        assert props["TreatMissingData"] == "notBreaching"
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert by_metric[("AWS/Lambda", "Duration")]["ExtendedStatistic"] == "p99"
    assert by_metric[("AWS/Lambda", "Duration")]["Threshold"] == 28_000 * 0.8


def test_dynamodb_throttle_alarms_watch_every_table(template):
    """Read and write throttle events of the seven tables, summed (a metric math alarm reads at most
    10 metrics: one alarm for reads, one for writes)."""
    tables = {json.dumps({"Ref": logical_id_of_table(template, t)}) for t in TABLES}
    watched = {}
    for props in math_alarms(template).values():
        stats = [q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q]
        names = {s["Metric"]["MetricName"] for s in stats}
        if names & {"ReadThrottleEvents", "WriteThrottleEvents"}:
            (name,) = names
            assert len(stats) <= 10
            assert {s["Metric"]["Namespace"] for s in stats} == {"AWS/DynamoDB"}
            assert {json.dumps(d["Value"]) for s in stats for d in s["Metric"]["Dimensions"]} == tables
            assert {s["Stat"] for s in stats} == {"Sum"} and {s["Period"] for s in stats} == {300}
            (result,) = [q for q in props["Metrics"] if q.get("ReturnData", True) and "Expression" in q]
            # FILL: a table without throttles has no data points; a plain m1+m2 would then be empty.
            assert result["Expression"].startswith("SUM([FILL(")
            assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert props["TreatMissingData"] == "notBreaching"
            watched[name] = props
    assert set(watched) == {"ReadThrottleEvents", "WriteThrottleEvents"}


def test_dynamodb_system_errors_alarm_is_one_metrics_insights_query(template):
    """SystemErrors is published per table AND operation (dozens of series): one Metrics Insights query
    sums them all."""
    queries = [
        q
        for props in math_alarms(template).values()
        for q in props["Metrics"]
        if "SystemErrors" in q.get("Expression", "")
    ]
    (query,) = queries
    assert query["Expression"] == 'SELECT SUM(SystemErrors) FROM SCHEMA("AWS/DynamoDB", Operation, TableName)'
    assert query["Period"] == 300 and query.get("ReturnData", True)


def test_api_client_error_alarm_scales_with_the_stage_throttle(template, variant):
    """429 (stage throttle) counts as 4XXError, as do unsigned requests refused by the gateway: the
    threshold is 5% of what the stage lets through in 5 minutes."""
    alarm = single_metric_alarms(template)[("rest-api", "AWS/ApiGateway", "4XXError")]
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    assert alarm["Threshold"] == 100 * 300 * 0.05 == 1500
    smaller = variant({"registry:throttleRateLimit": "10"}).template
    assert single_metric_alarms(smaller)[("rest-api", "AWS/ApiGateway", "4XXError")]["Threshold"] == 150


def test_account_concurrency_alarm_threshold_from_context(template, variant):
    alarm = single_metric_alarms(template)[("account", "AWS/Lambda", "ConcurrentExecutions")]
    assert alarm["Statistic"] == "Maximum" and alarm["Threshold"] == 800
    assert "Dimensions" not in alarm, "the account-wide metric"
    lower = variant({"registry:concurrencyAlarmThreshold": "8"}).template
    assert single_metric_alarms(lower)[("account", "AWS/Lambda", "ConcurrentExecutions")]["Threshold"] == 8


def test_sweep_incomplete_alarm_fires_when_three_runs_in_a_row_ran_out_of_time(template):
    alarm = single_metric_alarms(template)[("ecr-registry-sweep", "ServerlessEcrRegistry", "SweepIncomplete")]
    assert alarm["Period"] == 3600 and alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["EvaluationPeriods"] == 3 and alarm["DatapointsToAlarm"] == 3
    assert alarm["TreatMissingData"] == "notBreaching"


def test_every_alarm_notifies_the_topic(template, variant):
    for props in resources(template, "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in props["Properties"]
    topic = "arn:aws:sns:us-east-1:111122223333:registry-alarms"
    alarms = resources(variant({"registry:alarmTopicArn": topic}).template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 11
    for props in alarms.values():
        assert props["Properties"]["AlarmActions"] == [topic]


def test_dashboard(template):
    (_, dashboard) = only(template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("5XXError", "Errors", "Throttles", "Duration", "Faults", "ServerlessEcrRegistry"):
        assert metric in body
    for alarm_id in resources(template, "AWS::CloudWatch::Alarm"):
        assert json.dumps({"Fn::GetAtt": [alarm_id, "Arn"]}) in body, f"{alarm_id} is not on the dashboard"


def dashboard_widgets(template) -> list[dict]:
    """The dashboard's widgets, its body's CloudFormation tokens (ARNs, the Region) as placeholders."""
    (_, dashboard) = only(template, "AWS::CloudWatch::Dashboard")
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        (separator, parts) = body["Fn::Join"]
        body = separator.join(part if isinstance(part, str) else "token" for part in parts)
    return json.loads(body)["widgets"]


def usage_graphs(template) -> dict[str, dict]:
    """The dashboard's usage graphs by their one query (a Metrics Insights query of the sweep's metrics)."""
    graphs = {}
    for widget in dashboard_widgets(template):
        queries = [m[0] for m in widget["properties"].get("metrics", []) if "expression" in m[0]]
        if any(METRICS_NAMESPACE in q["expression"] and "SCHEMA" in q["expression"] for q in queries):
            (query,) = queries
            graphs[query["expression"]] = widget["properties"] | {"query": query, "width": widget["width"]}
    return graphs


def test_dashboard_graphs_the_usage_the_sweep_emits_against_the_quotas(template, variant):
    """The names are the sweep's own (registry.sweep.usage): the same metrics, the same dimensions."""
    from infra.monitoring import REGISTRY_SERIES, REPOSITORY_SERIES, USAGE_TOP, usage_query
    from registry.sweep.usage import (
        IMAGE_COUNT_METRIC,
        REGISTRY_DIMENSION,
        REPOSITORY_COUNT_METRIC,
        REPOSITORY_DIMENSION,
        STORED_BYTES_METRIC,
    )

    images = usage_query(IMAGE_COUNT_METRIC, REPOSITORY_SERIES)
    repositories = usage_query(REPOSITORY_COUNT_METRIC, REGISTRY_SERIES)
    registry_bytes = usage_query(STORED_BYTES_METRIC, REGISTRY_SERIES)
    repository_bytes = usage_query(STORED_BYTES_METRIC, REPOSITORY_SERIES)
    assert images == (
        f'SELECT MAX({IMAGE_COUNT_METRIC}) FROM SCHEMA("{METRICS_NAMESPACE}", {REGISTRY_DIMENSION}, '
        f"{REPOSITORY_DIMENSION}) GROUP BY {REGISTRY_DIMENSION}, {REPOSITORY_DIMENSION} "
        f"ORDER BY MAX() DESC LIMIT {USAGE_TOP}"
    )
    graphs = usage_graphs(template)
    assert set(graphs) == {images, repositories, registry_bytes, repository_bytes}
    for graph in graphs.values():
        assert graph["query"]["period"] == 3600, "one point per hourly sweep"
        assert "label" not in graph["query"], "each series keeps its own label: its registry (and repository)"
        assert graph["yAxis"]["left"]["min"] == 0
        assert graph["width"] == 6, "four in a full row"

    def quota_lines(graphs) -> dict[str, list[float]]:
        return {
            query: [a["value"] for a in graph.get("annotations", {}).get("horizontal", [])]
            for query, graph in graphs.items()
        }

    defaults = Quotas()
    assert quota_lines(graphs) == {
        images: [defaults.max_images_per_repository],
        repositories: [defaults.max_repositories],
        registry_bytes: [],  # ECR has no storage quota
        repository_bytes: [],
    }
    lower = variant({"registry:quotas": json.dumps({"max_images_per_repository": 50, "max_repositories": 7})})
    lines = quota_lines(usage_graphs(lower.template))
    assert (lines[images], lines[repositories]) == ([50], [7])


def test_the_usage_row_graphs_only_what_the_usage_metrics_setting_has_written(variant):
    """registry: the registries' metrics, the fullest repository of each against the images quota;
    off: no graph (a query of metrics never written is an empty graph), a note where the usage is."""
    from infra.monitoring import REGISTRY_SERIES, USAGE_OFF_TEXT, usage_query
    from registry.sweep.usage import MAX_IMAGES_METRIC, REPOSITORY_COUNT_METRIC, STORED_BYTES_METRIC

    per_registry = variant({"registry:usageMetrics": "registry"}).template
    graphs = usage_graphs(per_registry)
    most_images = usage_query(MAX_IMAGES_METRIC, REGISTRY_SERIES)
    assert set(graphs) == {
        most_images,
        usage_query(REPOSITORY_COUNT_METRIC, REGISTRY_SERIES),
        usage_query(STORED_BYTES_METRIC, REGISTRY_SERIES),
    }
    assert [a["value"] for a in graphs[most_images]["annotations"]["horizontal"]] == [
        Quotas().max_images_per_repository
    ]
    assert {graph["width"] for graph in graphs.values()} == {8}, "the row stays full"

    off = variant({"registry:usageMetrics": "off"}).template
    assert usage_graphs(off) == {}
    notes = [w["properties"]["markdown"] for w in dashboard_widgets(off) if w["type"] == "text"]
    assert notes == [USAGE_OFF_TEXT] and "registry:usageMetrics" in USAGE_OFF_TEXT


def test_outputs_endpoint_and_copy_paste_command(template):
    outputs = template.find_outputs("*")
    endpoint = json.dumps(outputs["EndpointUrl"]["Value"])
    assert "execute-api" in endpoint
    try_it = json.dumps(outputs["TryIt"]["Value"])
    assert "aws ecr describe-repositories --region " in try_it and "--endpoint-url https://" in try_it
    assert "RegistryApiEndpoint" not in "".join(outputs), "RestApi's own duplicate output is removed"


def test_outputs_name_the_keys_table_and_key_for_registryctl(template):
    from registryctl.connection import KMS_KEY_OUTPUT, TABLE_OUTPUT

    outputs = template.find_outputs("*")
    assert outputs[TABLE_OUTPUT]["Value"] == {"Ref": logical_id_of_table(template, "keys")}
    assert outputs[KMS_KEY_OUTPUT]["Value"] == {"Fn::GetAtt": [keys_key(template)[0], "Arn"]}


def test_no_custom_resources_nor_docker(template, synthesized):
    """Everything is plain CloudFormation (deployable to the emulator) and no asset is a Docker image."""
    types = {r["Type"] for r in synthesized.template_json["Resources"].values()}
    assert not {t for t in types if t.startswith("Custom::") or t == "AWS::CloudFormation::CustomResource"}
    assets = json.loads((synthesized.outdir / f"{synthesized.stack.artifact_id}.assets.json").read_text())
    assert not assets.get("dockerImages")


def test_template_matches_object_like(template):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        Match.object_like({"Environment": {"Variables": Match.object_like({"POWERTOOLS_SERVICE_NAME": SERVICE_NAME})}}),
    )
