"""The tables of the registry: their key attributes, shared by the store, infra/ and the local runner.

    table         partition key                  sort key   one item per ...
    repositories  registry_id                    name       repository; plus one `#registry` item
                                                            per registry holding repository_count
    images        repository ("<registry>/<name>") digest   image (manifest) in a repository
    tags          repository                     tag        tag in a repository
    layers        repository                     digest     blob (layer or config) available to it
    blobs         scope ("<registry>/<encryption>") digest  stored blob object (content-addressed)
    uploads       upload_id                      -          layer upload in progress (TTL expires_at)
    keys          access_key_id                  -          access key issued by the registry; its
                                                            registry_id is the caller's tenant

Repository names match [a-z0-9]..., so the `#registry` counter item sorts before every repository
and a query from "0" upwards lists repositories only.
"""

from __future__ import annotations

from dataclasses import dataclass


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

REGISTRY_ITEM = "#registry"  # sort key of the per-registry counter item in `repositories`
FIRST_REPOSITORY_NAME = "0"  # lowest possible repository name: start of a repository listing


def create_table_request(logical_name: str, physical_name: str) -> dict:
    """CreateTable parameters for a table, as the local runner and the tests create them."""
    spec = TABLES[logical_name]
    keys = [(spec.partition_key, "HASH")] + ([(spec.sort_key, "RANGE")] if spec.sort_key else [])
    return {
        "TableName": physical_name,
        "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n, _ in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }
