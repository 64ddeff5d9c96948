"""Where the access keys live, and an AccessKeyStore on them made with the operator's credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3

from registry.config import ACCESS_KEYS_KMS_KEY_ENV, TABLE_ENV, Settings
from registry.storage.access_keys import TABLE as ACCESS_KEYS_TABLE
from registry.storage.access_keys import AccessKeyError, AccessKeyStore
from registry.storage.backend import Backend

TABLE_ENV_NAME = TABLE_ENV[ACCESS_KEYS_TABLE]
# Stack outputs that name them, if the stack has them; otherwise the function's environment is read.
TABLE_OUTPUT, KMS_KEY_OUTPUT, FUNCTION_OUTPUT = "KeysTableName", "KeysKmsKeyArn", "FunctionName"


@dataclass(frozen=True)
class KeyTarget:
    table: str
    kms_key: str | None


def connect(
    *,
    table: str | None = None,
    kms_key: str | None = None,
    stack: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    verify: str | bool | None = None,
    session: boto3.session.Session | None = None,
) -> AccessKeyStore:
    """An AccessKeyStore on the registry's access keys table and KMS key, with the operator's credentials.
    `verify` is boto3's (a CA bundle path, or False); AWS_CA_BUNDLE works too."""
    session = session or boto3.session.Session(profile_name=profile, region_name=region)
    clients = {}

    def client(service: str):
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=endpoint_url, verify=verify)
        return clients[service]

    target = resolve(table=table, kms_key=kms_key, stack=stack, client=client)
    settings = Settings(region=session.region_name or "", tables={ACCESS_KEYS_TABLE: target.table})
    return AccessKeyStore(Backend(settings, client), target.kms_key)


def resolve(*, table: str | None, kms_key: str | None, stack: str | None, client) -> KeyTarget:
    table = table or os.environ.get(TABLE_ENV_NAME)
    kms_key = kms_key or os.environ.get(ACCESS_KEYS_KMS_KEY_ENV)
    if stack and not (table and kms_key):
        found = _from_stack(stack, client)
        table, kms_key = table or found.table, kms_key or found.kms_key
    if not table:
        raise AccessKeyError(f"which keys table? Give --table, {TABLE_ENV_NAME} or --stack <name>")
    return KeyTarget(table, kms_key)


def _from_stack(stack: str, client) -> KeyTarget:
    described = client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    if TABLE_OUTPUT in outputs:
        return KeyTarget(outputs[TABLE_OUTPUT], outputs.get(KMS_KEY_OUTPUT))
    if FUNCTION_OUTPUT not in outputs:
        raise AccessKeyError(f"stack {stack} has neither a {TABLE_OUTPUT} nor a {FUNCTION_OUTPUT} output")
    environment = (
        client("lambda")
        .get_function_configuration(FunctionName=outputs[FUNCTION_OUTPUT])
        .get("Environment", {})
        .get("Variables", {})
    )
    if TABLE_ENV_NAME not in environment:
        raise AccessKeyError(f"the function of stack {stack} has no {TABLE_ENV_NAME}: is the stack up to date?")
    return KeyTarget(environment[TABLE_ENV_NAME], environment.get(ACCESS_KEYS_KMS_KEY_ENV))
