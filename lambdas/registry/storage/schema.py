"""The tables of the registry: their key attributes, shared by the store, infra/ and the local runner.

    table         partition key                  sort key   one item per ...
    repositories  registry_id                    name       repository; plus one `#registry` item
                                                            per registry holding repository_count,
                                                            and a repository's lifecycle items:
                                                            `#lifecycle:<name>` (its policy),
                                                            `#preview:<name>` (its preview) and
                                                            `#preview:<name>#<attempt>#<n>` (the
                                                            preview's results, in parts); and its
                                                            repository policy, `#policy:<name>`
    images        repository ("<registry>/<name>") digest   image (manifest) in a repository
    tags          repository                     tag        tag in a repository (with a copy of its
                                                            image's manifest when that is small)
    layers        repository                     digest     blob (layer or config) available to it
    blobs         scope ("<registry>/<encryption>") digest  stored blob object (content-addressed)
    uploads       upload_id                      -          layer upload in progress (TTL expires_at)
    keys          access_key_id                  -          access key issued by the registry; its
                                                            registry_id is the caller's tenant

Repository names match [a-z0-9]..., so the `#registry` counter item, the lifecycle and policy items sort
before every repository and a query from "0" upwards lists repositories only; and a name has no
`#`, so `#preview:<name>#` begins the keys of that one repository's preview results.

The bucket's objects, by prefix (the function and the sweep may touch only these three):

    blobs/<registry>/<encryption scope>/<upload id>       a layer's bytes: the object (or the S3
                                                          multipart upload) an upload writes to;
                                                          shared by every layer of that digest
    uploads/<upload id>/<offset>-<random>                 staged bytes of an upload, below S3's 5 MiB
                                                          minimum part size (a fresh key per state)
    manifests/<registry>/<encryption scope>/<alg>/<hex>/<random>
                                                          a manifest too big for its image item, one
                                                          object per PutImage that wrote it (so that
                                                          an object no image names is the garbage of
                                                          one finished request; older keys have no
                                                          <random>)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TableSpec:
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None


TABLES: dict[str, TableSpec] = {
    "repositories": TableSpec("registry_id", "name"),
    "images": TableSpec("repository", "digest"),
    "tags": TableSpec("repository", "tag"),
    "layers": TableSpec("repository", "digest"),
    "blobs": TableSpec("scope", "digest"),
    "uploads": TableSpec("upload_id", ttl_attribute="expires_at"),
    "keys": TableSpec("access_key_id"),
}

BLOBS_PREFIX = "blobs/"
STAGED_PARTS_PREFIX = "uploads/"
MANIFESTS_PREFIX = "manifests/"
OBJECT_PREFIXES = (BLOBS_PREFIX, STAGED_PARTS_PREFIX, MANIFESTS_PREFIX)


def blob_scope(registry_id: str, encryption_scope: str) -> str:
    """The `blobs` partition of a registry's blobs under one encryption scope (records.Encryption.scope)."""
    return f"{registry_id}/{encryption_scope}"


def blob_object_key(registry_id: str, encryption_scope: str, upload_id: str) -> str:
    return f"{BLOBS_PREFIX}{registry_id}/{encryption_scope}/{upload_id}"


def upload_of_blob_object(object_key: str) -> str:
    """The upload that wrote a blob object (the last segment of its key)."""
    return object_key.rsplit("/", 1)[-1]


def staged_part_prefix(upload_id: str) -> str:
    return f"{STAGED_PARTS_PREFIX}{upload_id}/"


def upload_of_staged_part(object_key: str) -> str:
    return object_key[len(STAGED_PARTS_PREFIX) :].split("/", 1)[0]


def manifest_object_key(registry_id: str, encryption_scope: str, digest: str, writer: str) -> str:
    """Where one PutImage (`writer`: unique to it) keeps the manifest of its new image."""
    return f"{MANIFESTS_PREFIX}{registry_id}/{encryption_scope}/{digest.replace(':', '/')}/{writer}"


REGISTRY_ITEM = "#registry"  # sort key of the per-registry counter item in `repositories`
FIRST_REPOSITORY_NAME = "0"  # lowest possible repository name: start of a repository listing
LIFECYCLE_POLICY_PREFIX = "#lifecycle:"  # + repository name: its lifecycle policy
PREVIEW_PREFIX = "#preview:"  # + repository name: its lifecycle policy preview
REPOSITORY_POLICY_PREFIX = "#policy:"  # + repository name: its repository policy


def lifecycle_policy_item(name: str) -> str:
    return LIFECYCLE_POLICY_PREFIX + name


def repository_policy_item(name: str) -> str:
    return REPOSITORY_POLICY_PREFIX + name


def preview_item(name: str) -> str:
    return PREVIEW_PREFIX + name


def preview_part_prefix(name: str) -> str:
    """What the sort keys of every part of a repository's preview results begin with."""
    return f"{PREVIEW_PREFIX}{name}#"


def preview_part_item(name: str, attempt: str, number: int) -> str:
    return f"{preview_part_prefix(name)}{attempt}#{number:06d}"


def is_repository_item(name: str) -> bool:
    """Whether an item of `repositories` (by its sort key) is a repository, not one of the others."""
    return not name.startswith("#")


def create_table_request(logical_name: str, physical_name: str) -> dict[str, Any]:
    """CreateTable parameters for a table, as the local runner and the tests create them."""
    spec = TABLES[logical_name]
    keys = [(spec.partition_key, "HASH")] + ([(spec.sort_key, "RANGE")] if spec.sort_key else [])
    return {
        "TableName": physical_name,
        "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n, _ in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }
