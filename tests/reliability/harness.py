"""What the reliability tests share: a registry with tables and a bucket of its own, and a client
that sends raw SigV4-signed requests.

An `IsolatedRegistry` lives in the session's DynamoDB Local and moto (started once by the
`backends` fixture) but under table and bucket names of its own, so the invariant checker can read
*its whole state* -- every table, every object, every multipart upload -- cheaply and without the
leftovers of other tests.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from support import NO_RETRIES

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CREDENTIALS = Credentials("test", "test")
REGION = "us-east-1"
REGISTRY_ID = "000000000000"
# The backend operations that change state (the journal's "did a refusal write?")
WRITES = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "DeleteObject",
}


class IsolatedRegistry:
    def __init__(
        self, backends, *, workers: int = 4, overrides: dict[str, str] | None = None, faults_dir: Path | None = None
    ):
        from local.registry import LocalRegistry

        suffix = uuid.uuid4().hex[:8]
        self.backends = dataclasses.replace(
            backends, tables={name: f"rel-{suffix}-{name}" for name in backends.tables}, bucket=f"rel-{suffix}"
        )
        self.backends.create_resources()
        overrides = dict(overrides or {})
        self.faults_path = self.journal_path = None
        if faults_dir is not None:
            self.faults_path = faults_dir / f"faults-{suffix}.json"
            self.journal_path = faults_dir / f"journal-{suffix}.jsonl"
            self.faults_path.write_text("[]")
            overrides |= {
                "REGISTRY_FAULTS_FILE": str(self.faults_path),
                "REGISTRY_FAULTS_JOURNAL": str(self.journal_path),
            }
        self.local = LocalRegistry(self.backends, overrides=overrides, workers=workers)
        self.endpoint = self.local.endpoint

    def ecr(self, retries: bool = False):
        """A boto3 ECR client; without retries one call is one request."""
        return self.local.ecr() if retries else self.local.ecr(config=NO_RETRIES)

    # --- fault rules (local/faults.py) ----------------------------------------------------------

    def set_faults(self, *rules: dict) -> None:
        self.faults_path.write_text(json.dumps(list(rules)))

    def faults(self) -> list[dict]:
        return json.loads(self.faults_path.read_text() or "[]")

    def clear_journal(self) -> None:
        self.journal_path.write_text("")

    def journal(self) -> list[dict]:
        if not self.journal_path.exists():
            return []
        return [json.loads(line) for line in self.journal_path.read_text().splitlines() if line]

    def stop(self) -> None:
        self.local.stop()
        dynamodb = self.backends.client("dynamodb")
        for table in self.backends.tables.values():
            try:
                dynamodb.delete_table(TableName=table)
            except Exception:  # noqa: BLE001 - best effort: DynamoDB Local is in memory anyway
                pass


def use_function_environment(stack: IsolatedRegistry, monkeypatch) -> None:
    """The environment the function has, for this test: `Settings.from_environment()` is the stack's."""
    for name, value in stack.backends.environment().items():
        monkeypatch.setenv(name, value)


def sweeper_for(stack: IsolatedRegistry, monkeypatch, grace_seconds: float = 3600, **kwargs):
    """A Sweeper of `stack` built as the scheduled Lambda builds it: from the function's environment."""
    use_function_environment(stack, monkeypatch)
    from registry.config import Settings
    from registry.storage import RegistryStore
    from registry.sweep import Sweeper

    return Sweeper(RegistryStore(Settings.from_environment()), grace_seconds=grace_seconds, **kwargs)


class SignedClient:
    """Raw AWS JSON 1.1 requests, signed as any AWS SDK signs them (SigV4, service `ecr`)."""

    def __init__(self, endpoint: str, credentials: Credentials = CREDENTIALS):
        self.endpoint = endpoint.rstrip("/") + "/"
        self.credentials = credentials
        self.http = urllib3.PoolManager(maxsize=8, retries=False, timeout=urllib3.Timeout(60))

    def send(
        self, operation: str | None, body: bytes, headers: dict[str, str] | None = None, target: str | None = None
    ) -> tuple[int, dict, bytes]:
        all_headers = {"Content-Type": "application/x-amz-json-1.1"}
        if target is not None or operation is not None:
            all_headers["X-Amz-Target"] = target if target is not None else TARGET_PREFIX + operation
        all_headers.update(headers or {})
        request = AWSRequest(method="POST", url=self.endpoint, data=body, headers=all_headers)
        SigV4Auth(self.credentials, "ecr", REGION).add_auth(request)
        response = self.http.request("POST", self.endpoint, body=body, headers=dict(request.headers.items()))
        return response.status, dict(response.headers.items()), response.data

    def call(self, operation: str, params: dict) -> tuple[int, dict]:
        status, _, body = self.send(operation, json.dumps(params).encode())
        return status, json.loads(body) if body else {}
