"""registryctl finds the keys table and KMS key: flags, then environment, then the stack (its
outputs, or its function's environment). No AWS: the clients are fakes."""

from __future__ import annotations

import pytest

from registry.storage.access_keys import AccessKeyError
from registryctl.connection import KeyTarget, resolve


class Fake:
    def __init__(self, outputs: dict, variables: dict | None = None):
        self.outputs, self.variables, self.calls = outputs, variables or {}, []

    def __call__(self, service: str):
        self.calls.append(service)
        return self

    def describe_stacks(self, StackName):
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}

    def get_function_configuration(self, FunctionName):
        assert FunctionName == self.outputs["FunctionName"]
        return {"Environment": {"Variables": self.variables}}


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    monkeypatch.delenv("REGISTRY_KEYS_TABLE", raising=False)
    monkeypatch.delenv("REGISTRY_KEYS_KMS_KEY", raising=False)


def test_flags_first_and_no_stack_call():
    fake = Fake({})
    assert resolve(table="t", kms_key="k", stack="S", client=fake) == KeyTarget("t", "k")
    assert fake.calls == []


def test_environment(monkeypatch):
    monkeypatch.setenv("REGISTRY_KEYS_TABLE", "env-table")
    monkeypatch.setenv("REGISTRY_KEYS_KMS_KEY", "env-key")
    assert resolve(table=None, kms_key=None, stack=None, client=Fake({})) == KeyTarget("env-table", "env-key")


def test_stack_outputs():
    fake = Fake({"KeysTableName": "out-table", "KeysKmsKeyArn": "arn:kms"})
    assert resolve(table=None, kms_key=None, stack="S", client=fake) == KeyTarget("out-table", "arn:kms")
    assert fake.calls == ["cloudformation"]


def test_stack_function_environment():
    fake = Fake({"FunctionName": "fn"}, {"REGISTRY_KEYS_TABLE": "fn-table", "REGISTRY_KEYS_KMS_KEY": "fn-key"})
    assert resolve(table=None, kms_key=None, stack="S", client=fake) == KeyTarget("fn-table", "fn-key")
    assert fake.calls == ["cloudformation", "lambda"]


def test_nothing_to_go_by():
    with pytest.raises(AccessKeyError, match="--table"):
        resolve(table=None, kms_key=None, stack=None, client=Fake({}))
    with pytest.raises(AccessKeyError, match="REGISTRY_KEYS_TABLE"):
        resolve(table=None, kms_key=None, stack="S", client=Fake({"FunctionName": "fn"}, {}))
