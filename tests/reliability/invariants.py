"""The registry's invariants, checked on its stored state: DynamoDB Local and moto read directly,
never through the API under test.

`read_state(backends)` takes one consistent snapshot of every table, object and multipart upload;
`violations(state, reader)` lists every broken invariant (empty: all hold); `garbage(state)` lists
what is merely unreachable and reclaimable (the sweep's work, not an error).

Invariants (the conditions in storage/*.py are what keeps each of them):

    R1  the per-registry counter item `#registry` counts the repository items of its registry
    R2  a live repository's image_count is the number of its image items
    R3  no tag, image or layer item lives in a partition without a repository item
    R4  a repository has at most 50 resource tags (ECR's limit), each key once
    P1  a lifecycle policy or preview item (`#lifecycle:<name>`, `#preview:<name>`, its parts) or a
        repository policy item (`#policy:<name>`) has the repository item of its name beside it
    P2  a COMPLETE preview's parts (its attempt, 0 .. parts-1) are all there, and hold
        expiring_count results
    T1  every tag item names an image item of its repository whose tag set holds the tag
    T2  every tag in an image's tag set has its tag item, pointing at that image
    I1  an image's manifest (inline, or the S3 object of manifest_key) hashes to its digest
    I2  every blob a manifest references is a layer item of the repository marked `referenced`;
        every image a list/index references is an image item; `children` lists exactly those
    I3  parent_count is the number of images in the repository whose children include the image
    L1  a layer item's blob_key is an S3 object of the layer's size whose SHA-256 is its digest,
        and the registry's `blobs` index (scope = registry/encryption) names that same object
    B1  a `blobs` entry's object exists, has its size and hashes to its digest
    U1  an upload in progress: its staged tail object exists with tail_size bytes, its multipart
        upload exists with exactly the recorded parts, the bytes add up to last_byte + 1, and for
        an upload held in one tail the saved hash state is the SHA-256 state of those bytes
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from registry import manifests
from registry.records import Encryption
from registry.storage import codec
from registry.storage.lifecycle import decode_results
from registry.storage.schema import (
    LIFECYCLE_POLICY_PREFIX,
    PREVIEW_PREFIX,
    REGISTRY_ITEM,
    REPOSITORY_POLICY_PREFIX,
    is_repository_item,
    preview_part_item,
)

MAX_RESOURCE_TAGS = 50  # ECR's documented limit, written here apart from the code under test


@dataclass
class RegistryState:
    repositories: list[dict]
    images: list[dict]
    tags: list[dict]
    layers: list[dict]
    blobs: list[dict]
    uploads: list[dict]
    objects: dict[str, dict]  # key -> {"size", "etag", "modified"}
    multipart: dict[str, dict]  # S3 multipart upload id -> {"key", "initiated"}

    def counts(self) -> dict[str, int]:
        return {
            "repositories": len([r for r in self.repositories if is_repository_item(r["name"])]),
            "images": len(self.images),
            "tags": len(self.tags),
            "layers": len(self.layers),
            "blobs": len(self.blobs),
            "uploads": len(self.uploads),
            "objects": len(self.objects),
            "multipart": len(self.multipart),
        }

    def fingerprint(self) -> dict:
        """Everything stored, comparable before/after a request (the fuzz tests' "no change")."""

        def rows(items):
            return sorted(repr(sorted(i.items())) for i in items)

        return {
            "repositories": rows(self.repositories),
            "images": rows(self.images),
            "tags": rows(self.tags),
            "layers": rows(self.layers),
            "blobs": rows(self.blobs),
            "uploads": rows(self.uploads),
            "objects": sorted((k, v["etag"]) for k, v in self.objects.items()),
            "multipart": sorted(self.multipart),
        }


DATA_TABLES = ("repositories", "images", "tags", "layers", "blobs", "uploads")
_clients: dict[tuple[int, str], object] = {}


def client(backends, service: str):
    """One client per stand-in and service (making a boto3 client costs more than a request)."""
    key = (id(backends), service)
    if key not in _clients:
        _clients[key] = backends.client(service)
    return _clients[key]


def _scan(dynamodb, table: str) -> list[dict]:
    items, request = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        items.extend(codec.plain(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _objects(s3, bucket: str) -> dict[str, dict]:
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            objects[obj["Key"]] = {"size": obj["Size"], "etag": obj["ETag"], "modified": obj["LastModified"]}
    return objects


def _multipart(s3, bucket: str) -> dict[str, dict]:
    multipart = {}
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            multipart[upload["UploadId"]] = {"key": upload["Key"], "initiated": upload["Initiated"]}
    return multipart


def read_state(backends) -> RegistryState:
    """Every data table, object and multipart upload of the registry, read in parallel."""
    dynamodb, s3 = client(backends, "dynamodb"), client(backends, "s3")
    with ThreadPoolExecutor(len(DATA_TABLES) + 2) as pool:
        tables = {name: pool.submit(_scan, dynamodb, backends.tables[name]) for name in DATA_TABLES}
        objects, multipart = pool.submit(_objects, s3, backends.bucket), pool.submit(_multipart, s3, backends.bucket)
        tables = {name: future.result() for name, future in tables.items()}
        return RegistryState(
            tables["repositories"],
            tables["images"],
            tables["tags"],
            tables["layers"],
            tables["blobs"],
            tables["uploads"],
            objects.result(),
            multipart.result(),
        )


class ObjectReader:
    """SHA-256 of S3 objects, each read once per (key, ETag)."""

    def __init__(self, backends):
        self.s3, self.bucket = client(backends, "s3"), backends.bucket
        self._hashes: dict[tuple[str, str], str] = {}

    def parts(self, key: str, multipart_id: str) -> list[tuple[int, str, int]]:
        """(number, ETag, size) of the parts of a multipart upload in progress."""
        listed = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        return [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.get("Parts", [])]

    def body(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def sha256(self, key: str, etag: str) -> str:
        if (key, etag) not in self._hashes:
            self._hashes[(key, etag)] = "sha256:" + hashlib.sha256(self.body(key)).hexdigest()
        return self._hashes[(key, etag)]


def _partition(repo: dict) -> str:
    return f"{repo['registry_id']}/{repo['name']}"


def violations(
    state: RegistryState, reader: ObjectReader, *, verify_bytes: bool = True, repositories: set[str] | None = None
) -> list[str]:
    """Every broken invariant; with `repositories` ("<registry>/<name>"), only those that concern
    these repositories (their items, the blobs their layers use, their uploads)."""
    found: list[str] = []
    repos = {_partition(r): r for r in state.repositories if is_repository_item(r["name"])}
    counters = {r["registry_id"]: r for r in state.repositories if r["name"] == REGISTRY_ITEM}
    found.extend(_check_lifecycle(state, repos, repositories))
    per_registry = Counter(r["registry_id"] for r in repos.values())
    for registry_id in (set(per_registry) | set(counters)) if repositories is None else ():
        counted = (counters.get(registry_id) or {}).get("repository_count", 0)
        if counted != per_registry[registry_id]:
            found.append(
                f"R1 registry {registry_id}: repository_count {counted} but "
                f"{per_registry[registry_id]} repository items"
            )

    images, tags, layers = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    for item in state.images:
        images[item["repository"]][item["digest"]] = item
    for item in state.tags:
        tags[item["repository"]][item["tag"]] = item
    for item in state.layers:
        layers[item["repository"]][item["digest"]] = item
    blobs = {(b["scope"], b["digest"]): b for b in state.blobs}

    in_scope = (lambda partition: True) if repositories is None else repositories.__contains__
    used_blobs = set()
    for partition in set(images) | set(tags) | set(layers):
        if partition not in repos and in_scope(partition):
            found.append(
                f"R3 {partition}: {len(images[partition])} images, {len(tags[partition])} tags, "
                f"{len(layers[partition])} layers without a repository item"
            )

    for partition, repo in repos.items():
        keys = [t["Key"] for t in repo.get("resource_tags") or ()]
        if in_scope(partition) and (len(keys) > MAX_RESOURCE_TAGS or len(set(keys)) != len(keys)):
            found.append(f"R4 {partition}: resource tag keys {keys}")

    for partition, repo in repos.items():
        if "deleting" in repo or not in_scope(
            partition
        ):  # a deletion in progress may have removed any part of the contents
            continue
        repo_images, repo_tags, repo_layers = images[partition], tags[partition], layers[partition]
        if repo.get("image_count", 0) != len(repo_images):
            found.append(f"R2 {partition}: image_count {repo.get('image_count', 0)} but {len(repo_images)} image items")
        for tag, item in repo_tags.items():
            image = repo_images.get(item["digest"])
            if image is None:
                found.append(f"T1 {partition}:{tag} -> {item['digest']}: no such image")
            elif tag not in (image.get("tags") or ()):
                found.append(
                    f"T1 {partition}:{tag} -> {item['digest']}: not in the image's tag set "
                    f"{sorted(image.get('tags') or ())}"
                )
        parents = Counter()
        for digest, image in repo_images.items():
            for tag in image.get("tags") or ():
                item = repo_tags.get(tag)
                if item is None or item["digest"] != digest:
                    found.append(f"T2 {partition}@{digest}: tag {tag!r} -> {item['digest'] if item else 'no tag item'}")
            found.extend(_check_manifest(partition, digest, image, state, reader, repo_images, repo_layers))
            for child in image.get("children") or ():
                parents[child] += 1
        for digest, image in repo_images.items():
            if image.get("parent_count", 0) != parents[digest]:
                found.append(
                    f"I3 {partition}@{digest}: parent_count {image.get('parent_count', 0)} but "
                    f"{parents[digest]} lists reference it"
                )
        scope = f"{repo['registry_id']}/{Encryption(repo.get('encryption_type', 'AES256'), repo.get('kms_key')).scope}"
        for digest, layer in repo_layers.items():
            found.extend(
                _check_object(
                    f"L1 {partition} layer {digest}",
                    layer["blob_key"],
                    digest,
                    layer["size"],
                    state,
                    reader,
                    verify_bytes,
                )
            )
            entry = blobs.get((scope, digest))
            used_blobs.add((scope, digest))
            if entry is None or entry["blob_key"] != layer["blob_key"]:
                found.append(
                    f"L1 {partition} layer {digest}: blobs index {scope} names "
                    f"{entry['blob_key'] if entry else 'nothing'}, the layer {layer['blob_key']}"
                )

    for (scope, digest), entry in blobs.items():
        if repositories is not None and (scope, digest) not in used_blobs:
            continue
        found.extend(
            _check_object(
                f"B1 blob {scope} {digest}", entry["blob_key"], digest, entry["size"], state, reader, verify_bytes
            )
        )

    for upload in state.uploads:
        if not upload.get("completed_digest") and in_scope(upload["repository"]):
            found.extend(_check_upload(upload, state, reader))
    return found


def _lifecycle_owner(name: str) -> str | None:
    """The repository a lifecycle or policy item of `repositories` belongs to (by its sort key), if it is one."""
    for prefix in (LIFECYCLE_POLICY_PREFIX, PREVIEW_PREFIX, REPOSITORY_POLICY_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix) :].split("#", 1)[0]
    return None


def _check_lifecycle(state: RegistryState, repos: dict, repositories: set[str] | None) -> list[str]:
    found = []
    items = {(r["registry_id"], r["name"]): r for r in state.repositories}
    for (registry_id, name), item in items.items():
        owner = _lifecycle_owner(name)
        if owner is None or (repositories is not None and f"{registry_id}/{owner}" not in repositories):
            continue
        if f"{registry_id}/{owner}" not in repos:
            found.append(f"P1 {registry_id} {name}: no repository {owner}")
        if name == PREVIEW_PREFIX + owner and item.get("status") == "COMPLETE":
            keys = [(registry_id, preview_part_item(owner, item["attempt"], n)) for n in range(item["parts"])]
            parts = [items.get(key) for key in keys]
            if any(part is None for part in parts):
                found.append(f"P2 {registry_id} {name}: parts of attempt {item['attempt']} missing")
            elif sum(len(decode_results(part["results"])) for part in parts) != item["expiring_count"]:
                found.append(f"P2 {registry_id} {name}: the parts do not hold expiring_count results")
    return found


def _check_object(
    what: str, key: str, digest: str, size: int, state: RegistryState, reader: ObjectReader, verify_bytes: bool
) -> list[str]:
    obj = state.objects.get(key)
    if obj is None:
        return [f"{what}: object {key} is missing"]
    if obj["size"] != size:
        return [f"{what}: object {key} has {obj['size']} bytes, {size} recorded"]
    if verify_bytes and reader.sha256(key, obj["etag"]) != digest:
        return [f"{what}: object {key} hashes to {reader.sha256(key, obj['etag'])}"]
    return []


def _check_manifest(
    partition: str,
    digest: str,
    image: dict,
    state: RegistryState,
    reader: ObjectReader,
    repo_images: dict,
    repo_layers: dict,
) -> list[str]:
    where = f"{partition}@{digest}"
    raw = image.get("manifest")
    if raw is None:
        obj = state.objects.get(image.get("manifest_key") or "")
        if obj is None:
            return [f"I1 {where}: manifest object {image.get('manifest_key')} is missing"]
        raw = reader.body(image["manifest_key"])
    if "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
        return [f"I1 {where}: the stored manifest does not hash to the digest"]
    parsed = manifests.parse(raw.decode("utf-8"), image["media_type"])
    found = []
    for blob in parsed.blob_digests:
        layer = repo_layers.get(blob)
        if layer is None:
            found.append(f"I2 {where}: references layer {blob}, which is not in the repository")
        elif not layer.get("referenced"):
            found.append(f"I2 {where}: references layer {blob}, which is not marked referenced")
    for child in parsed.child_digests:
        if child not in repo_images:
            found.append(f"I2 {where}: references image {child}, which is not in the repository")
    if sorted(image.get("children") or ()) != sorted(parsed.child_digests):
        found.append(f"I2 {where}: children {image.get('children')} but the manifest lists {parsed.child_digests}")
    return found


def _check_upload(upload: dict, state: RegistryState, reader: ObjectReader) -> list[str]:
    where = f"U1 upload {upload['upload_id']}"
    found, received = [], 0
    tail = upload.get("tail_key")
    if tail:
        obj = state.objects.get(tail)
        if obj is None:
            return [f"{where}: staged tail {tail} is missing"]
        if obj["size"] != upload.get("tail_size", 0):
            found.append(f"{where}: staged tail {tail} has {obj['size']} bytes, {upload.get('tail_size')} recorded")
        received += obj["size"]
    elif upload.get("tail_size", 0):
        found.append(f"{where}: tail_size {upload['tail_size']} without a tail object")
    recorded = [(p["n"], p["etag"]) for p in upload.get("s3_parts") or ()]
    if upload.get("multipart_id"):
        multipart = state.multipart.get(upload["multipart_id"])
        if multipart is None:
            # Completed by a CompleteLayerUpload that stopped before registering the object: the
            # object holds every byte, and the next CompleteLayerUpload registers it.
            done = state.objects.get(upload["blob_key"])
            if done is not None and done["size"] == upload["last_byte"] + 1:
                return []
            return [*found, f"{where}: multipart upload {upload['multipart_id']} is gone"]
        if multipart["key"] != upload["blob_key"]:
            found.append(f"{where}: multipart upload is for {multipart['key']}, not {upload['blob_key']}")
        # S3 may hold more parts than recorded (the tail copied by a CompleteLayerUpload that then
        # failed): completing names the recorded parts only, the others are dropped.
        parts = {n: (e, size) for n, e, size in reader.parts(multipart["key"], upload["multipart_id"])}
        if any(parts.get(n, (None,))[0] != e for n, e in recorded):
            found.append(f"{where}: S3 holds parts {parts}, the upload records {recorded}")
        received += sum(parts.get(n, ("", 0))[1] for n, _ in recorded)
    elif recorded:
        found.append(f"{where}: parts {recorded} recorded without a multipart upload")
    if received != upload["last_byte"] + 1:
        found.append(f"{where}: {received} bytes staged, last_byte {upload['last_byte']}")
    if tail and not upload.get("multipart_id") and not found and upload.get("hash_state"):
        from rehashes import PySha256

        if PySha256.deserialize(upload["hash_state"]).finalize() != hashlib.sha256(reader.body(tail)).hexdigest():
            found.append(f"{where}: the saved hash state is not the SHA-256 of the staged bytes")
    return found


@dataclass
class Garbage:
    """Stored things nothing reaches any more: harmless, reclaimed by the sweep or S3 lifecycle."""

    objects: list[str] = field(default_factory=list)
    multipart: list[str] = field(default_factory=list)
    unused_blobs: list[tuple[str, str]] = field(default_factory=list)
    unreferenced_layers: list[tuple[str, str]] = field(default_factory=list)
    preview_parts: list[tuple[str, str]] = field(default_factory=list)  # of no attempt a preview names

    def total(self) -> int:
        return (
            len(self.objects)
            + len(self.multipart)
            + len(self.unused_blobs)
            + len(self.unreferenced_layers)
            + len(self.preview_parts)
        )


def garbage(state: RegistryState) -> Garbage:
    live_uploads = [u for u in state.uploads if not u.get("completed_digest")]
    used_keys = (
        {layer["blob_key"] for layer in state.layers}
        | {b["blob_key"] for b in state.blobs}
        | {i["manifest_key"] for i in state.images if i.get("manifest_key")}
        | {u["tail_key"] for u in live_uploads if u.get("tail_key")}
        # the object a Complete that stopped before registering it wrote: the next
        # CompleteLayerUpload of that upload registers it
        | {u["blob_key"] for u in live_uploads}
    )
    used_multipart = {u["multipart_id"] for u in live_uploads if u.get("multipart_id")}
    layer_keys = {layer["blob_key"] for layer in state.layers}
    previews = [(r["registry_id"], r["name"][len(PREVIEW_PREFIX) :], r) for r in state.repositories]
    previews = [(registry_id, rest, r) for registry_id, rest, r in previews if r["name"].startswith(PREVIEW_PREFIX)]
    attempts = {(registry_id, rest): r.get("attempt") for registry_id, rest, r in previews if "#" not in rest}
    stale_parts = [
        (registry_id, r["name"])
        for registry_id, rest, r in previews
        if "#" in rest and attempts.get((registry_id, rest.split("#")[0])) != rest.split("#")[1]
    ]
    return Garbage(
        preview_parts=sorted(stale_parts),
        objects=sorted(k for k in state.objects if k not in used_keys),
        multipart=sorted(m for m in state.multipart if m not in used_multipart),
        unused_blobs=sorted((b["scope"], b["digest"]) for b in state.blobs if b["blob_key"] not in layer_keys),
        unreferenced_layers=sorted(
            (layer["repository"], layer["digest"]) for layer in state.layers if not layer.get("referenced")
        ),
    )


def assert_invariants(
    backends, reader: ObjectReader | None = None, *, verify_bytes: bool = True, repositories: set[str] | None = None
) -> RegistryState:
    state = read_state(backends)
    problems = violations(state, reader or ObjectReader(backends), verify_bytes=verify_bytes, repositories=repositories)
    assert not problems, "registry invariants violated:\n  " + "\n  ".join(problems)
    return state
