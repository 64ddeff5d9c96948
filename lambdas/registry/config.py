"""Settings read once from the environment.

The variable names below are the contract between the deployment (infra/ sets them on the Lambda),
the local runner (which sets them for its workers) and this package: same names everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

MiB = 1024 * 1024
# What a function may return to API Gateway: the proxy response as the Lambda runtime serializes it,
# in which the body -- already JSON -- is a JSON string, escaped a second time.
MAX_RETURNED_BYTES = 6 * 1024 * 1024

# Powertools reads these names from the environment (POWERTOOLS_SERVICE_NAME,
# POWERTOOLS_METRICS_NAMESPACE); the stack and the local runner set them from here.
SERVICE_NAME = "ecr-registry"
SWEEP_SERVICE_NAME = "ecr-registry-sweep"
METRICS_NAMESPACE = "ServerlessEcrRegistry"

BUCKET_ENV = "REGISTRY_BUCKET"
# logical table name -> environment variable carrying the physical name
TABLE_ENV = {
    "repositories": "REGISTRY_REPOSITORIES_TABLE",
    "images": "REGISTRY_IMAGES_TABLE",
    "tags": "REGISTRY_TAGS_TABLE",
    "layers": "REGISTRY_LAYERS_TABLE",
    "blobs": "REGISTRY_BLOBS_TABLE",
    "uploads": "REGISTRY_UPLOADS_TABLE",
    "keys": "REGISTRY_KEYS_TABLE",
}
# The KMS key that encrypts the secrets of access keys (registryctl encrypts with it; the function
# only decrypts, and names it so that a ciphertext under any other key is refused).
ACCESS_KEYS_KMS_KEY_ENV = "REGISTRY_KEYS_KMS_KEY"
# The KMS HMAC key from which the registry derives the key that signs its tokens (storage/signing.py).
TOKEN_KMS_KEY_ENV = "REGISTRY_TOKEN_KMS_KEY"
# A repository may be encrypted with a customer KMS key only if the key carries this tag with the
# registry's id as its value: the operator assigns keys to tenants (and the function's role may use
# only keys that carry the tag at all).
KMS_KEY_REGISTRY_TAG = "ecr-registry:registry-id"
# The registry's URL as clients reach it (the stack's custom domain): GetAuthorizationToken's
# proxyEndpoint and the realm of the `/v2` challenge. Unset: the URL each request came to.
PUBLIC_URL_ENV = "REGISTRY_PUBLIC_URL"
# The domain under which each registry has a host of its own, `<registry id>.<domain>` (the stack's
# wildcard custom domain): as ECR's `<registry>.dkr.ecr.<region>.amazonaws.com`, the host that
# repositoryUri and GetAuthorizationToken's proxyEndpoint name. Unset: they keep ECR's own host.
REGISTRY_HOSTS_DOMAIN_ENV = "REGISTRY_HOSTS_DOMAIN"
# How long API Gateway reuses the `/v2` authorizer's answer for one Authorization header (the local
# gateway does the same). The function checks every login itself too, so a revoked key's logins
# stop within the key cache bound whatever this is.
AUTHORIZER_CACHE_SECONDS = 300
# How long a warm function trusts a key it has read: the bound on how late a revocation takes effect.
ACCESS_KEY_CACHE_SECONDS_ENV = "REGISTRY_KEY_CACHE_SECONDS"
DEFAULT_KEY_CACHE_SECONDS = 60.0
MAX_KEY_CACHE_SECONDS = 900.0
PREVIEW_BUDGET_ENV = "REGISTRY_PREVIEW_BUDGET_SECONDS"
# The largest layer the direct upload extension takes (CompleteLayerUpload hashes it within one
# request, so API Gateway's 29 s bound it); 0 turns the extension off.
DIRECT_UPLOAD_MAX_BYTES_ENV = "REGISTRY_DIRECT_UPLOAD_MAX_BYTES"
DEFAULT_DIRECT_UPLOAD_MAX_BYTES = 2 * 1024 * MiB


@dataclass(frozen=True)
class Quotas:
    """ECR's default service quotas; each is overridable through its environment variable."""

    max_images_per_repository: int = 100_000
    max_tags_per_image: int = 1_000
    max_repositories: int = 100_000
    max_layer_parts: int = 4_200

    @classmethod
    def from_environment(cls) -> Quotas:
        values = {}
        for f in fields(cls):
            raw = os.environ.get(QUOTA_ENV[f.name])
            if raw not in (None, ""):
                values[f.name] = int(raw)
        return cls(**values)


QUOTA_ENV = {
    "max_images_per_repository": "REGISTRY_MAX_IMAGES_PER_REPOSITORY",
    "max_tags_per_image": "REGISTRY_MAX_TAGS_PER_IMAGE",
    "max_repositories": "REGISTRY_MAX_REPOSITORIES",
    "max_layer_parts": "REGISTRY_MAX_LAYER_PARTS",
}


@dataclass(frozen=True)
class Settings:
    region: str
    tables: dict[str, str] = field(default_factory=dict)  # logical name (storage/schema.py) -> physical
    bucket: str = ""
    quotas: Quotas = field(default_factory=Quotas)
    # The part size we ask clients for. A part travels base64 in JSON (4/3 bigger) and a Lambda
    # request is at most 6 MB, so ECR's own 5-10 MiB parts cannot reach us; 4 MiB leaves headroom.
    part_size: int = 4 * MiB
    download_url_seconds: int = 3600
    upload_ttl_seconds: int = 7 * 24 * 3600
    access_keys_kms_key: str | None = None
    access_key_cache_seconds: float = DEFAULT_KEY_CACHE_SECONDS
    token_kms_key: str | None = None
    public_url: str | None = None  # where clients reach the registry (a custom domain), if not as they asked
    registry_hosts_domain: str | None = None  # `<registry id>.<this>` is each registry's host
    # How long StartLifecyclePolicyPreview computes the preview within its request (API Gateway
    # waits 29 s); a repository too big for that is left IN_PROGRESS, and the sweep completes it.
    preview_budget_seconds: float = 20.0
    direct_upload_max_bytes: int = DEFAULT_DIRECT_UPLOAD_MAX_BYTES
    # The S3 part size of a direct upload (S3's minimum is 5 MiB): parts go to S3 in parallel.
    direct_part_size: int = 16 * MiB
    direct_url_seconds: int = 15 * 60

    def registry_host(self, registry_id: str) -> str:
        """The host that names a registry: its own under the registry hosts' domain, else ECR's."""
        if self.registry_hosts_domain:
            return f"{registry_id}.{self.registry_hosts_domain}"
        return f"{registry_id}.dkr.ecr.{self.region}.amazonaws.com"

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            tables={name: env.get(var, f"registry-{name}") for name, var in TABLE_ENV.items()},
            bucket=env.get(BUCKET_ENV, "registry-layers"),
            quotas=Quotas.from_environment(),
            part_size=int(env.get("REGISTRY_PART_SIZE") or 4 * MiB),
            download_url_seconds=int(env.get("REGISTRY_DOWNLOAD_URL_SECONDS") or 3600),
            access_keys_kms_key=env.get(ACCESS_KEYS_KMS_KEY_ENV) or None,
            access_key_cache_seconds=_key_cache_seconds(env.get(ACCESS_KEY_CACHE_SECONDS_ENV)),
            token_kms_key=env.get(TOKEN_KMS_KEY_ENV) or None,
            public_url=(env.get(PUBLIC_URL_ENV) or "").rstrip("/") or None,
            registry_hosts_domain=(env.get(REGISTRY_HOSTS_DOMAIN_ENV) or "").strip().lower().strip(".") or None,
            preview_budget_seconds=float(env.get(PREVIEW_BUDGET_ENV) or 20.0),
            direct_upload_max_bytes=int(env.get(DIRECT_UPLOAD_MAX_BYTES_ENV) or DEFAULT_DIRECT_UPLOAD_MAX_BYTES),
            # Never below S3's minimum part size, or every direct upload of more than one part would fail.
            direct_part_size=max(5 * MiB, int(env.get("REGISTRY_DIRECT_PART_SIZE") or 16 * MiB)),
        )


def _key_cache_seconds(raw: str | None) -> float:
    if raw in (None, ""):
        return DEFAULT_KEY_CACHE_SECONDS
    seconds = float(raw)
    if not 0 <= seconds <= MAX_KEY_CACHE_SECONDS:
        raise ValueError(f"{ACCESS_KEY_CACHE_SECONDS_ENV} must be between 0 and {MAX_KEY_CACHE_SECONDS:.0f}, not {raw}")
    return seconds
