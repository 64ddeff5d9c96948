"""The whole registry on one machine: DynamoDB Local, moto (S3 + KMS), the tables and bucket,
and the gateway in front of the handler. Used by `make run` and by the test suite alike."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import boto3

from registry.config import (
    ACCESS_KEYS_KMS_KEY_ENV,
    BUCKET_ENV,
    METRICS_NAMESPACE,
    SERVICE_NAME,
    TABLE_ENV,
    TOKEN_KMS_KEY_ENV,
    Settings,
)
from registry.records import Grant
from registry.storage.access_keys import AccessKeyStore
from registry.storage.backend import Backend
from registry.storage.schema import TABLES, create_table_request

from .gateway import Gateway
from .services import STATE_DIR, Service, free_port, start_dynamodb_local, start_moto

REGION = "us-east-1"
REGISTRY_ID = "000000000000"
BACKEND_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
# The registry's own access key that `make run` and the test suite start with: admin of REGISTRY_ID.
DEFAULT_KEY = {"access_key_id": "test", "secret": "test", "name": "local-admin"}


@dataclass
class Backends:
    """DynamoDB Local and moto, with the registry's tables and bucket created in them."""

    dynamodb: Service
    moto: Service
    tables: dict[str, str] = field(default_factory=lambda: {n: f"registry-{n}" for n in TABLES})
    bucket: str = "registry-layers"
    access_keys_kms_key: str | None = None  # the moto KMS key that encrypts access key secrets
    token_kms_key: str | None = None  # the moto KMS HMAC key the registry's token key is derived from

    @classmethod
    def start(cls, host: str = "127.0.0.1") -> Backends:
        """Both reached at `host`: loopback, or an address of this host that containers reach too."""
        dynamodb = start_dynamodb_local(host=host)
        try:
            moto = start_moto(host=host)
        except BaseException:
            dynamodb.stop()
            raise
        backends = cls(dynamodb, moto)
        backends.create_resources()
        return backends

    def client(self, service: str):
        endpoint = self.dynamodb.endpoint if service == "dynamodb" else self.moto.endpoint
        return boto3.client(
            service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
        )

    def create_resources(self) -> None:
        dynamodb = self.client("dynamodb")
        for logical, physical in self.tables.items():
            dynamodb.create_table(**create_table_request(logical, physical))
        self.client("s3").create_bucket(Bucket=self.bucket)
        self.access_keys_kms_key = self.client("kms").create_key(Description="registry access key secrets (local)")[
            "KeyMetadata"
        ]["Arn"]
        self.token_kms_key = self.client("kms").create_key(
            Description="registry token key (local)", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC"
        )["KeyMetadata"]["Arn"]
        self.access_key_store().create(
            REGISTRY_ID,
            DEFAULT_KEY["name"],
            (Grant(("admin",), ("*",)),),
            time.time(),
            access_key_id=DEFAULT_KEY["access_key_id"],
            secret=DEFAULT_KEY["secret"],
        )

    def access_key_store(self) -> AccessKeyStore:
        """The access keys table and KMS key, as `registryctl` sees them (operator credentials)."""
        backend = Backend(Settings(region=REGION, tables=self.tables), self.client)
        return AccessKeyStore(backend, self.access_keys_kms_key)

    def registryctl_environment(self) -> dict[str, str]:
        """What `python -m registryctl` needs to manage the local stack's keys."""
        return {
            **BACKEND_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            "AWS_ENDPOINT_URL_KMS": self.moto.endpoint,
            TABLE_ENV["keys"]: self.tables["keys"],
            ACCESS_KEYS_KMS_KEY_ENV: self.access_keys_kms_key,
        }

    def environment(self) -> dict[str, str]:
        """What the Lambda's environment carries, pointed at the local stand-ins."""
        env = {
            **BACKEND_CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            "AWS_ENDPOINT_URL_S3": self.moto.endpoint,
            "AWS_ENDPOINT_URL_KMS": self.moto.endpoint,
            BUCKET_ENV: self.bucket,
            ACCESS_KEYS_KMS_KEY_ENV: self.access_keys_kms_key,
            TOKEN_KMS_KEY_ENV: self.token_kms_key,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        env.update({TABLE_ENV[logical]: physical for logical, physical in self.tables.items()})
        return env

    def function_environment(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        """The function's environment: the stand-ins', then every REGISTRY_* variable of the caller's
        environment (but the port and keys that are the stand-ins' own), then `overrides`."""
        environment = self.environment()
        environment.update(
            {
                k: v
                for k, v in os.environ.items()
                if k.startswith("REGISTRY_") and k not in ("REGISTRY_PORT", ACCESS_KEYS_KMS_KEY_ENV, TOKEN_KMS_KEY_ENV)
            }
        )
        environment.update(overrides or {})
        return environment

    def stop(self) -> None:
        self.moto.stop()
        self.dynamodb.stop()


class LocalRegistry:
    """Backends plus a gateway; every REGISTRY_* variable of the caller's environment (or of
    `overrides`) reaches the handler."""

    def __init__(
        self,
        backends: Backends,
        port: int | None = None,
        overrides: dict[str, str] | None = None,
        workers: int | None = None,
        access_log: bool = False,
    ):
        environment = backends.function_environment(overrides)
        STATE_DIR.mkdir(exist_ok=True)
        self.backends = backends
        self.gateway = Gateway(
            port if port is not None else free_port(),
            environment,
            workers=workers or int(os.environ.get("REGISTRY_LOCAL_WORKERS") or 8),
            log_path=str(STATE_DIR / "handler.log"),
            access_log=access_log,
        ).start()

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    def ecr(self, **config):
        return boto3.client(
            "ecr",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            **config,
        )

    def stop(self) -> None:
        self.gateway.stop()
