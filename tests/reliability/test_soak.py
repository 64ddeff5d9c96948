"""A bounded soak: many concurrent clients push, retag, read and delete against the local stack
while the sweep runs beside them; afterwards every invariant holds and no client saw an error it
should not have.

`make test` runs it for REGISTRY_SOAK_SECONDS=30 with 12 clients; `make soak` for minutes with more.

Errors a client may legitimately get in a race (everything else -- any 5xx above all -- fails the
test):
    PutImage             ImageTagAlreadyExistsException  an immutable tag someone else took
                         ImageAlreadyExistsException     the same image and tag, pushed by another
                         ReferencedImagesNotFoundException  an index whose child was just deleted
                         LayersNotFoundException         only for layers older than the sweep's grace
                                                         that no image used (the sweep took them)
    CompleteLayerUpload  LayerAlreadyExistsException     the same layer, completed by another client
    DescribeImages       ImageNotFoundException          an image deleted between list and describe
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import traceback
from collections import Counter, defaultdict

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from harness import IsolatedRegistry
from invariants import ObjectReader, assert_invariants, garbage
from support import OCI_INDEX, image_manifest, new_blobs, sha256

pytestmark = [pytest.mark.local_only, pytest.mark.soak]
SECONDS = float(os.environ.get("REGISTRY_SOAK_SECONDS") or 30)
CLIENTS = int(os.environ.get("REGISTRY_SOAK_CLIENTS") or 12)
SWEEP_GRACE = float(os.environ.get("REGISTRY_SOAK_SWEEP_GRACE") or 20)
SHARED = ["soak/mutable", "soak/immutable", "soak/excluded"]
TAGS = [f"t{i}" for i in range(6)] + ["latest", "latest-dev"]
EXPECTED = {
    "PutImage": {
        "ImageTagAlreadyExistsException",
        "ImageAlreadyExistsException",
        "ReferencedImagesNotFoundException",
        "LayersNotFoundException",
    },
    "CompleteLayerUpload": {"LayerAlreadyExistsException"},
    "DescribeImages": {"ImageNotFoundException"},
}
LAYER_POOL = [os.urandom(random.choice([100, 2000, 40_000])) for _ in range(8)]  # shared by all clients


class Ledger:
    """What the clients did and saw, shared between their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()
        self.unexpected: list[str] = []
        self.tagged: dict[tuple[str, str], set[str]] = defaultdict(set)  # (repo, tag) -> digests pushed with it
        self.completed_at: dict[tuple[str, str], float] = {}  # (repo, layer digest) -> when completed

    def count(self, operation: str, outcome: str) -> None:
        with self.lock:
            self.outcomes[(operation, outcome)] += 1

    def wrong(self, message: str) -> None:
        with self.lock:
            self.unexpected.append(message)


class Client:
    def __init__(self, stack, number: int, ledger: Ledger, deadline: float):
        self.ecr, self.number, self.ledger, self.deadline = stack.ecr(), number, ledger, deadline
        self.random = random.Random(number)
        self.ephemeral = 0

    def call(self, operation: str, **params):
        """One request; returns the response, or None for an expected error (anything else is noted)."""
        method = getattr(self.ecr, xform_name(operation))
        try:
            response = method(**params)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            self.ledger.count(operation, code)
            if code == "LayersNotFoundException" and not self._old_layers(params, error):
                self.ledger.wrong(f"{operation}: {code} for layers this client just uploaded: {error}")
            elif code not in EXPECTED.get(operation, ()):
                self.ledger.wrong(f"{operation} {json.dumps(params, default=str)[:200]}: {code}: {error}")
            return None
        self.ledger.count(operation, "OK")
        return response

    def _old_layers(self, params, error) -> bool:
        """The sweep may take layers no image used, once older than its grace period."""
        missing = re.findall(r"sha256:[0-9a-f]{64}", str(error))
        now = time.time()
        return all(now - self.ledger.completed_at.get((params["repositoryName"], d), 0) > SWEEP_GRACE for d in missing)

    # --- actions -------------------------------------------------------------------------------

    def upload(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        found = self.call("BatchCheckLayerAvailability", repositoryName=repo, layerDigests=[digest])
        if found and found["layers"]:
            return digest
        upload = self.call("InitiateLayerUpload", repositoryName=repo)
        part = self.random.choice([len(data), 1000, 30_000])
        for first in range(0, len(data), part):
            chunk = data[first : first + part]
            self.call(
                "UploadLayerPart",
                repositoryName=repo,
                uploadId=upload["uploadId"],
                partFirstByte=first,
                partLastByte=first + len(chunk) - 1,
                layerPartBlob=chunk,
            )
        if self.call("CompleteLayerUpload", repositoryName=repo, uploadId=upload["uploadId"], layerDigests=[digest]):
            with self.ledger.lock:
                self.ledger.completed_at[(repo, digest)] = time.time()
        return digest

    def push(self, repo: str) -> None:
        config, _ = new_blobs(0)
        layers = self.random.sample(LAYER_POOL, self.random.randint(0, 2))
        for blob in (config, *layers):
            self.upload(repo, blob)
        tag = self.random.choice([*TAGS, None])
        manifest = image_manifest(config, layers, oci=self.random.random() < 0.5)
        params = {"repositoryName": repo, "imageManifest": manifest, **({"imageTag": tag} if tag else {})}
        if self.call("PutImage", **params) and tag:
            with self.ledger.lock:
                self.ledger.tagged[(repo, tag)].add(sha256(manifest.encode()))

    def retag(self, repo: str) -> None:
        got = self.call("BatchGetImage", repositoryName=repo, imageIds=[{"imageTag": self.random.choice(TAGS)}])
        if not got or not got["images"]:
            return
        image = got["images"][0]
        tag = self.random.choice(TAGS)
        if self.call("PutImage", repositoryName=repo, imageManifest=image["imageManifest"], imageTag=tag):
            with self.ledger.lock:
                self.ledger.tagged[(repo, tag)].add(image["imageId"]["imageDigest"])

    def push_index(self, repo: str) -> None:
        listed = self.call("ListImages", repositoryName=repo, maxResults=20)
        digests = list(dict.fromkeys(i["imageDigest"] for i in (listed or {}).get("imageIds", [])))
        if len(digests) < 2:
            return
        chosen = self.random.sample(digests, 2)
        got = self.call("BatchGetImage", repositoryName=repo, imageIds=[{"imageDigest": d} for d in chosen])
        if not got or len(got["images"]) < 2:
            return
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": i["imageManifestMediaType"],
                        "digest": i["imageId"]["imageDigest"],
                        "size": len(i["imageManifest"].encode()),
                        "platform": {"architecture": a, "os": "linux"},
                    }
                    for i, a in zip(got["images"], ["amd64", "arm64"], strict=False)
                ],
            }
        )
        self.call("PutImage", repositoryName=repo, imageManifest=index)

    def read(self, repo: str) -> None:
        pages = self.ecr.get_paginator("describe_images").paginate(
            repositoryName=repo, PaginationConfig={"PageSize": self.random.choice([3, 50])}
        )
        try:
            details = [d for page in pages for d in page["imageDetails"]]
            self.ledger.count("DescribeImages", "OK")
        except ClientError as error:
            self.ledger.count("DescribeImages", error.response["Error"]["Code"])
            self.ledger.wrong(f"DescribeImages (paginated): {error}")
            return
        if details:
            some = self.random.sample(details, min(3, len(details)))
            self.call("DescribeImages", repositoryName=repo, imageIds=[{"imageDigest": d["imageDigest"]} for d in some])
        got = self.call(
            "BatchGetImage", repositoryName=repo, imageIds=[{"imageTag": t} for t in self.random.sample(TAGS, 3)]
        )
        for image in (got or {}).get("images", []):
            if sha256(image["imageManifest"].encode()) != image["imageId"]["imageDigest"]:
                self.ledger.wrong(
                    f"BatchGetImage returned a manifest that does not hash to its digest: {image['imageId']}"
                )
            document = json.loads(image["imageManifest"])
            for layer in document.get("layers", [])[:1]:
                url = self.call("GetDownloadUrlForLayer", repositoryName=repo, layerDigest=layer["digest"])
                if url:
                    import urllib.request

                    if sha256(urllib.request.urlopen(url["downloadUrl"]).read()) != layer["digest"]:
                        self.ledger.wrong(f"layer {layer['digest']} downloads other bytes")

    def delete(self, repo: str) -> None:
        target = self.random.choice([{"imageTag": self.random.choice(TAGS)}, "digest"])
        if target == "digest":
            listed = self.call("ListImages", repositoryName=repo, maxResults=10)
            if not listed or not listed["imageIds"]:
                return
            target = {"imageDigest": self.random.choice(listed["imageIds"])["imageDigest"]}
        result = self.call("BatchDeleteImage", repositoryName=repo, imageIds=[target])
        for failure in (result or {}).get("failures", []):
            if failure["failureCode"] not in ("ImageNotFound", "ImageReferencedByManifestList"):
                self.ledger.wrong(f"BatchDeleteImage failure {failure}")

    def lifecycle(self) -> None:
        """A repository of this client's own: created, pushed to, deleted with force."""
        self.ephemeral += 1
        repo = f"soak/eph-{self.number}-{self.ephemeral}"
        if self.call("CreateRepository", repositoryName=repo):
            self.push(repo)
            self.call("DeleteRepository", repositoryName=repo, force=True)

    def abandon(self, repo: str) -> None:
        """An upload that never completes (the sweep's to reclaim)."""
        upload = self.call("InitiateLayerUpload", repositoryName=repo)
        if upload:
            self.call(
                "UploadLayerPart",
                repositoryName=repo,
                uploadId=upload["uploadId"],
                partFirstByte=0,
                partLastByte=9,
                layerPartBlob=os.urandom(10),
            )

    def run(self) -> None:
        actions = [
            (self.push, 30),
            (self.retag, 15),
            (self.read, 25),
            (self.delete, 12),
            (self.push_index, 5),
            (self.abandon, 5),
        ]
        try:
            while time.time() < self.deadline:
                if self.random.random() < 0.03:
                    self.lifecycle()
                    continue
                action = self.random.choices([a for a, _ in actions], [w for _, w in actions])[0]
                # deletions only where tags are mutable: an immutable tag may then go to one image, ever
                repo = SHARED[0] if action == self.delete else self.random.choice(SHARED)
                action(repo)
        except Exception:  # noqa: BLE001 - a client crash is a finding too
            self.ledger.wrong(f"client {self.number} crashed:\n{traceback.format_exc()}")


@pytest.fixture
def stack(backends, monkeypatch):
    registry = IsolatedRegistry(backends, workers=8)
    for name, value in registry.backends.environment().items():
        monkeypatch.setenv(name, value)
    yield registry
    registry.stop()


def test_soak(stack):
    from registry.config import Settings
    from registry.storage import RegistryStore
    from registry.sweep import Sweeper

    ecr = stack.ecr()
    ecr.create_repository(repositoryName=SHARED[0])
    ecr.create_repository(repositoryName=SHARED[1], imageTagMutability="IMMUTABLE")
    ecr.create_repository(
        repositoryName=SHARED[2],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest*"}],
    )
    ledger, started = Ledger(), time.time()
    deadline = started + SECONDS
    clients = [Client(stack, n, ledger, deadline) for n in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, name=f"soak-{c.number}") for c in clients]
    sweeps: list[dict] = []

    def sweeping():
        sweeper = Sweeper(RegistryStore(Settings.from_environment()), grace_seconds=SWEEP_GRACE)
        while time.time() < deadline:
            try:
                sweeps.append(sweeper.run())
            except Exception:  # noqa: BLE001
                ledger.wrong(f"the sweep failed:\n{traceback.format_exc()}")
            time.sleep(2)

    threads.append(threading.Thread(target=sweeping, name="sweep"))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    elapsed = time.time() - started
    total = sum(ledger.outcomes.values())
    print(f"\nsoak: {total} requests by {CLIENTS} clients in {elapsed:.0f}s ({total / elapsed:.1f}/s)")
    for (operation, outcome), count in sorted(ledger.outcomes.items()):
        print(f"  {operation:28} {outcome:36} {count}")
    reclaimed = Counter()
    for report in sweeps:
        reclaimed.update({k: v for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)})
    print(f"  sweeps: {len(sweeps)}, reclaimed {dict(reclaimed)}")
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert ledger.unexpected == [], f"{len(ledger.unexpected)} unexpected outcomes:\n" + "\n".join(
        ledger.unexpected[:20]
    )
    assert ledger.outcomes[("PutImage", "OK")] > 0

    reader = ObjectReader(stack.backends)
    state = assert_invariants(stack.backends, reader)
    # An immutable tag was given to one image at most, ever; every tag is on an image that was pushed
    # with it (no phantom moves).
    for (repo, tag), digests in ledger.tagged.items():
        if repo == "soak/immutable" or (repo == "soak/excluded" and not tag.startswith("latest")):
            assert len(digests) <= 1, f"{repo}:{tag} was given to {len(digests)} images"
    for item in state.tags:
        repo = item["repository"].split("/", 1)[1]
        assert item["digest"] in ledger.tagged[(repo, item["tag"])], item

    # A week later, everything abandoned is reclaimable, and the sweep leaves the invariants intact.
    Sweeper(RegistryStore(Settings.from_environment()), grace_seconds=SWEEP_GRACE).run(now=time.time() + 8 * 86400)
    state = assert_invariants(stack.backends, reader)
    left = garbage(state)
    assert left.total() == 0, left
    assert state.uploads == []
