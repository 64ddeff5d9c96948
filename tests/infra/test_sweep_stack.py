"""The scheduled sweep in the stack: its function, schedule, role (list and delete only) and settings."""

from __future__ import annotations

import json

import pytest
from stack_synth import SWEEP_HANDLER, function_by_handler, role_policy_statements

from registry.config import ACCESS_KEYS_KMS_KEY_ENV, BUCKET_ENV, TABLE_ENV
from registry.storage.schema import TABLES
from registry.sweep import DEFAULT_GRACE_SECONDS, GRACE_ENV
from registry.sweep.usage import USAGE_METRICS_ENV

DATA_TABLES = sorted(set(TABLES) - {"keys"})


def sweep(template) -> tuple[str, dict]:
    return function_by_handler(template, SWEEP_HANDLER)


def by_sid(template) -> dict[str, dict]:
    return {s["Sid"]: s for s in role_policy_statements(template, sweep(template)[1])}


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def ref_of(template, resource_type: str, logical_prefix: str) -> str:
    (found,) = [i for i in template.find_resources(resource_type) if i.startswith(logical_prefix)]
    return found


def test_runs_hourly_from_a_rule_without_retries(template):
    sweep_id = sweep(template)[0]
    (rule,) = template.find_resources("AWS::Events::Rule").values()
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 hour)" and props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [sweep_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    (config,) = template.find_resources("AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert config["Properties"]["FunctionName"] == {"Ref": sweep_id}


def test_only_its_rule_may_invoke_it(template):
    sweep_id = sweep(template)[0]
    (rule_id,) = template.find_resources("AWS::Events::Rule")
    (permission,) = [
        p["Properties"]
        for p in template.find_resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [sweep_id, "Arn"]}
    ]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_function_timeout_memory_and_no_reserved_concurrency(template):
    props = sweep(template)[1]["Properties"]
    assert props["Timeout"] == 900 and props["MemorySize"] == 1024
    # A reservation would fail to deploy in accounts at the new-account concurrency limit (10).
    assert "ReservedConcurrentExecutions" not in props


def test_environment_names_the_data_tables_bucket_and_grace_but_no_keys(template):
    env = sweep(template)[1]["Properties"]["Environment"]["Variables"]
    assert {logical for logical, variable in TABLE_ENV.items() if variable in env} == set(DATA_TABLES)
    assert ACCESS_KEYS_KMS_KEY_ENV not in env and TABLE_ENV["keys"] not in env
    assert "Ref" in env[BUCKET_ENV]
    assert env[GRACE_ENV] == str(DEFAULT_GRACE_SECONDS) == "86400"


def test_grace_comes_from_context_and_a_short_one_warns(variant):
    short = variant({"registry:sweepGraceSeconds": "0"})
    env = sweep(short.template)[1]["Properties"]["Environment"]["Variables"]
    assert env[GRACE_ENV] == "0"
    messages = [
        entry.data
        for construct in short.stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == "aws:cdk:warning"
    ]
    assert any("sweepGraceSeconds=0" in str(m) for m in messages), messages
    with pytest.raises(Exception, match="sweepGraceSeconds"):
        variant({"registry:sweepGraceSeconds": "-1"})


def test_usage_metrics_come_from_context_and_an_unknown_value_is_refused(template, variant):
    def setting(synthesized_template) -> str:
        return sweep(synthesized_template)[1]["Properties"]["Environment"]["Variables"][USAGE_METRICS_ENV]

    assert setting(template) == "repository"
    for chosen in ("repository", "registry", "off"):
        assert setting(variant({"registry:usageMetrics": chosen}).template) == chosen
    with pytest.raises(ValueError, match=r"registry:usageMetrics must be repository \| registry \| off, not 'none'"):
        variant({"registry:usageMetrics": "none"})


def test_role_may_only_list_and_delete_in_its_own_tables_and_prefixes(template):
    statements = by_sid(template)
    assert set(statements) == {
        "OwnLogGroup",
        "DataTables",
        "ListSweptPrefixes",
        "ListMultipartUploads",
        "DeleteSweptObjects",
    }
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in _list(statement["Action"])), statement

    tables = statements["DataTables"]
    assert sorted(_list(tables["Action"])) == sorted(
        [
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            # lifecycle expiries and preview results assert what they were decided on (no PutItem)
            "dynamodb:ConditionCheckItem",
        ]
    )
    keys_table = ref_of(template, "AWS::DynamoDB::Table", "StorageKeys")
    arns = [json.dumps(r) for r in _list(tables["Resource"])]
    assert len(arns) == len(DATA_TABLES)
    assert json.dumps({"Fn::GetAtt": [keys_table, "Arn"]}) not in arns, "the sweep never reads access keys"

    bucket = ref_of(template, "AWS::S3::Bucket", "StorageBlobs")
    listing = statements["ListSweptPrefixes"]
    assert listing["Action"] == "s3:ListBucket" and listing["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["uploads/*", "blobs/*", "manifests/*"]}}
    deletes = statements["DeleteSweptObjects"]
    assert sorted(_list(deletes["Action"])) == ["s3:AbortMultipartUpload", "s3:DeleteObject"]
    assert sorted(json.dumps(r) for r in _list(deletes["Resource"])) == sorted(
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{prefix}*"]]})
        for prefix in ("uploads/", "blobs/", "manifests/")
    )
    assert not any(a.startswith("kms:") for s in statements.values() for a in _list(s["Action"]))


def test_role_has_no_managed_policies_and_is_not_the_api_functions(template):
    from stack_synth import API_HANDLER

    sweep_role = sweep(template)[1]["Properties"]["Role"]
    api_role = function_by_handler(template, API_HANDLER)[1]["Properties"]["Role"]
    assert sweep_role != api_role
    role = template.find_resources("AWS::IAM::Role")[sweep_role["Fn::GetAtt"][0]]["Properties"]
    assert "ManagedPolicyArns" not in role


# --- a run that ran out of time is visible -----------------------------------------------------------


@pytest.mark.parametrize(("complete", "dry_run", "emitted"), [(False, False, 1), (True, False, 0), (False, True, None)])
def test_the_handler_emits_sweep_incomplete(monkeypatch, capsys, complete, dry_run, emitted):
    """SweepIncomplete (EMF, the namespace, name and service dimension the alarm watches) is 1 when the
    run stopped early, 0 when it finished; a dry run (an operator's look) emits nothing."""
    from infra.sweep import INCOMPLETE_METRIC
    from registry.config import METRICS_NAMESPACE
    from registry.config import SWEEP_SERVICE_NAME as SERVICE_NAME
    from registry.sweep import Sweeper
    from registry.sweep import handler as sweep_module

    def run(self, now=None, budget_seconds=None):
        assert budget_seconds == 900 - 30
        return {"complete": complete, "dry_run": self.dry_run}

    monkeypatch.setattr(sweep_module.Settings, "from_environment", classmethod(lambda cls: None))
    monkeypatch.setattr(sweep_module, "RegistryStore", lambda settings: type("Store", (), {"backend": None})())
    monkeypatch.setattr(Sweeper, "run", run)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)  # without the stack's environment

    class Context:
        @staticmethod
        def get_remaining_time_in_millis():
            return 900_000

    capsys.readouterr()
    report = sweep_module.lambda_handler({"dryRun": dry_run}, Context())
    assert report["complete"] is complete
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{") and '"_aws"' in line
    ]
    if emitted is None:
        assert not metrics
        return
    (document,) = metrics
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert directive["Metrics"] == [{"Name": INCOMPLETE_METRIC, "Unit": "Count"}]
    assert directive["Dimensions"] == [["service"]] and document["service"] == SERVICE_NAME
    assert document[INCOMPLETE_METRIC] in (emitted, [emitted])
