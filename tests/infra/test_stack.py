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
    (_, key) = only(destroyed, "AWS::KMS::Key")
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
    (_, method) = only(template, "AWS::ApiGateway::Method")
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
    (_, method) = only(synthesized.template, "AWS::ApiGateway::Method")
    assert method["Properties"]["Integration"]["TimeoutInMillis"] == 60_000


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
    assert sorted(_actions(statement)) == ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    bucket_id = blob_bucket(template)[0]
    assert statement["Resource"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{prefix}/*"]]}
        for prefix in ("blobs", "manifests", "uploads")
    ]


def test_kms_data_keys_only_through_s3_for_this_bucket(template):
    key_arn = {"Fn::GetAtt": [keys_key(template)[0], "Arn"]}
    statements = [
        s
        for s in function_policy_statements(template)
        if any(a.startswith("kms:") for a in _actions(s)) and s["Resource"] != key_arn
    ]
    data_keys = next(s for s in statements if "kms:GenerateDataKey" in _actions(s))
    assert sorted(_actions(data_keys)) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert data_keys["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
    }
    contexts = data_keys["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
    assert {"Fn::GetAtt": [blob_bucket(template)[0], "Arn"]} in contexts
    describe = next(s for s in statements if "kms:DescribeKey" in _actions(s))
    assert _actions(describe) == ["kms:DescribeKey"]
    assert len(statements) == 2


# --- KMS: the access keys' secrets ------------------------------------------------------------------


def keys_key(template) -> tuple[str, dict]:
    return only(template, "AWS::KMS::Key")


def test_access_key_secrets_have_their_own_rotating_retained_key(template):
    (_, key) = keys_key(template)
    props = key["Properties"]
    assert props["Description"] == "Encrypts the secrets of the registry's access keys"
    assert props["EnableKeyRotation"] is True
    assert props.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    assert props.get("KeyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT"
    assert key["DeletionPolicy"] == "Retain" and key["UpdateReplacePolicy"] == "Retain"
    assert "PendingWindowInDays" not in props
    # The key policy delegates to IAM in this account (the default policy); no one else is named.
    (statement,) = props["KeyPolicy"]["Statement"]
    assert statement["Action"] == "kms:*" and statement["Effect"] == "Allow"
    assert json.dumps(statement["Principal"]) == json.dumps(
        {"AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}}
    )


def test_function_may_only_decrypt_access_key_secrets_with_that_key(template):
    key_arn = {"Fn::GetAtt": [keys_key(template)[0], "Arn"]}
    statements = [s for s in function_policy_statements(template) if key_arn in _resources(s)]
    (statement,) = statements
    assert _actions(statement) == ["kms:Decrypt"] and statement["Resource"] == key_arn
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["access_key_id", "registry_id"]},
        "Null": {"kms:EncryptionContext:access_key_id": "false", "kms:EncryptionContext:registry_id": "false"},
    }


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
    from infra.api import SECRET_CONTEXT_KEYS
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
    assert not resources(template, "AWS::ApiGateway::Resource"), "POST / is the only route"
    (_, method) = only(template, "AWS::ApiGateway::Method")
    props = method["Properties"]
    assert props["HttpMethod"] == "POST"
    assert props["ResourceId"] == {"Fn::GetAtt": [api_id, "RootResourceId"]}
    assert props["AuthorizationType"] == "NONE"
    assert props["Integration"]["Type"] == "AWS_PROXY"
    assert props["Integration"]["IntegrationHttpMethod"] == "POST"
    assert "BinaryMediaTypes" not in api["Properties"], "application/x-amz-json-1.1 must arrive as text"


def test_stage_throttling_access_logs_tracing(template):
    (_, stage) = only(template, "AWS::ApiGateway::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "prod"
    assert props["TracingEnabled"] is True
    (setting,) = props["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == 100 and setting["ThrottlingBurstLimit"] == 200
    assert setting["DataTraceEnabled"] is False
    fields = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "integrationStatus", "ip"} <= set(fields)
    destination = json.dumps(props["AccessLogSetting"]["DestinationArn"])
    groups = resources(template, "AWS::Logs::LogGroup")
    (access_group,) = [g for g in groups if g in destination]
    assert groups[access_group]["Properties"]["RetentionInDays"] == 30


def test_execution_log_group_is_ours_with_retention(template):
    (api_id, _) = only(template, "AWS::ApiGateway::RestApi")
    groups = [
        g["Properties"]
        for g in resources(template, "AWS::Logs::LogGroup").values()
        if "API-Gateway-Execution-Logs_" in json.dumps(g["Properties"].get("LogGroupName", ""))
    ]
    (group,) = groups
    assert group["LogGroupName"] == {"Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api_id}, "/prod"]]}
    assert group["RetentionInDays"] == 30


def test_only_the_stage_may_invoke_the_function(template):
    api_id = function_by_handler(template, API_HANDLER)[0]
    (props,) = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [api_id, "Arn"]}
    ]
    assert props["Principal"] == "apigateway.amazonaws.com"
    assert props["SourceArn"]["Fn::Join"][1][-1] == "/POST/"


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


def test_alarms_on_function_errors_throttles_duration_api_5xx_and_sweep_errors(template):
    api_id = function_by_handler(template, API_HANDLER)[0]
    sweep_id = function_by_handler(template, SWEEP_HANDLER)[0]
    names = {json.dumps({"Ref": api_id}): "api", json.dumps({"Ref": sweep_id}): "sweep"}

    def subject(props) -> str:
        dimensions = {d["Name"]: json.dumps(d["Value"]) for d in props.get("Dimensions", [])}
        return names.get(dimensions.get("FunctionName"), "rest-api")

    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    by_metric = {(subject(a), a["Namespace"], a["MetricName"]): a for a in alarms}
    assert len(by_metric) == len(alarms)
    assert set(by_metric) == {
        ("api", "AWS/Lambda", "Errors"),
        ("api", "AWS/Lambda", "Throttles"),
        ("api", "AWS/Lambda", "Duration"),
        ("rest-api", "AWS/ApiGateway", "5XXError"),
        ("sweep", "AWS/Lambda", "Errors"),
    }
    assert by_metric[("sweep", "AWS/Lambda", "Errors")]["Period"] == 3600
    assert by_metric[("sweep", "AWS/Lambda", "Errors")]["Threshold"] == 1
    by_metric = {(namespace, metric): props for (who, namespace, metric), props in by_metric.items() if who != "sweep"}
    for props in by_metric.values():
        assert props["TreatMissingData"] == "notBreaching"
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert by_metric[("AWS/Lambda", "Duration")]["ExtendedStatistic"] == "p99"
    assert by_metric[("AWS/Lambda", "Duration")]["Threshold"] == 28_000 * 0.8


def test_dashboard(template):
    (_, dashboard) = only(template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("5XXError", "Errors", "Throttles", "Duration", "Faults", "ServerlessEcrRegistry"):
        assert metric in body


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
