"""The registry's domain records and the pure rules over them. No boto3, no HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

MUTABLE = "MUTABLE"
IMMUTABLE = "IMMUTABLE"
IMMUTABLE_WITH_EXCLUSION = "IMMUTABLE_WITH_EXCLUSION"
MUTABLE_WITH_EXCLUSION = "MUTABLE_WITH_EXCLUSION"
WITH_EXCLUSION = (IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION)


# A tag as the OCI distribution spec writes it (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`), up to the 300
# characters ECR allows: nothing a docker reference cannot say (no `@`, `:` or `/`, no spaces, control
# or non-ASCII characters), so a tag never spoofs a reference or injects into a log line.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,299}")


def is_tag(value: str) -> bool:
    return TAG.fullmatch(value) is not None


def wildcard_matches(pattern: str, text: str) -> bool:
    """Whether `text` is matched whole by `pattern`, where `*` is any run of characters (also none)
    and every other character is literal.

    Greedy and without backtracking: the literal pieces between the stars are found left to right,
    each at its first place after the one before -- if some placement matches, the leftmost one
    does. The pieces are searched once each, from an advancing position, so the work is linear:
    O(len(pattern) + len(text)) characters compared with a linear substring search (`str.find`),
    at most len(pattern) x len(text) with the naive one -- never exponential, as a backtracking
    regular expression is on `*a*a*a*...b`."""
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return pattern == text
    first, *middle, last = pieces
    if len(first) + len(last) > len(text) or not text.startswith(first) or not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def tag_is_immutable(mutability: str, exclusion_filters: tuple[str, ...], tag: str) -> bool:
    """Whether an existing `tag` may NOT be moved to another image under this setting."""
    if mutability == MUTABLE:
        return False
    if mutability == IMMUTABLE:
        return True
    excluded = any(wildcard_matches(f, tag) for f in exclusion_filters)
    if mutability == IMMUTABLE_WITH_EXCLUSION:
        return not excluded
    return excluded  # MUTABLE_WITH_EXCLUSION: the matching tags are the locked ones


class Quota(Enum):
    """The limits a conditional write enforces (config.Quotas holds their values)."""

    REPOSITORIES = "repositories per registry"
    IMAGES = "images per repository"
    TAGS_PER_IMAGE = "tags per image"
    LAYER_PARTS = "layer parts per upload"
    LIST_CHILDREN = "images per manifest list"  # DynamoDB's 100 actions per transaction


@dataclass(frozen=True)
class Encryption:
    type: str = "AES256"  # AES256 | KMS | KMS_DSSE
    kms_key: str | None = None

    @property
    def scope(self) -> str:
        """Objects are shared (content-addressed) only between repositories with the same key."""
        if self.type == "AES256":
            return "aes256"
        return f"{self.type.lower()}-{_short_hash(self.kms_key or 'aws-managed')}"


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Repository:
    registry_id: str
    name: str
    created_at: float
    tag_mutability: str = MUTABLE
    exclusion_filters: tuple[str, ...] = ()
    encryption: Encryption = field(default_factory=Encryption)
    scan_on_push: bool = False
    resource_tags: tuple[tuple[str, str], ...] = ()
    tags_version: int = 0  # counts changes of resource_tags: TagResource writes on the version it read
    image_count: int = 0
    config_version: int = 0
    deleting_since: float | None = None  # a DeleteRepository began then: the repository takes no writer

    @property
    def deleting(self) -> bool:
        return self.deleting_since is not None

    @property
    def partition(self) -> str:
        """The DynamoDB partition of everything that lives inside this repository."""
        return repository_partition(self.registry_id, self.name)

    def tag_is_immutable(self, tag: str) -> bool:
        return tag_is_immutable(self.tag_mutability, self.exclusion_filters, tag)


def repository_partition(registry_id: str, name: str) -> str:
    return f"{registry_id}/{name}"


@dataclass(frozen=True)
class Image:
    digest: str
    media_type: str
    size: int
    pushed_at: float
    tags: frozenset[str] = frozenset()
    artifact_media_type: str | None = None
    subject_digest: str | None = None
    manifest: bytes | None = None  # inline manifest bytes, when small enough
    manifest_object_key: str | None = None  # where the manifest bytes are in S3 otherwise
    children: tuple[str, ...] = ()  # images a manifest list / index references


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    object_key: str  # the S3 object holding the bytes (shared by every layer of this digest and scope)
    referenced: bool = False  # set once an image in the repository references it


@dataclass(frozen=True)
class Upload:
    upload_id: str
    repository_partition: str
    encryption: Encryption
    last_byte: int  # last byte received; -1 before the first part
    part_count: int
    hash_state: bytes | None
    tail_object_key: str | None  # staged bytes not yet in an S3 multipart part
    tail_size: int
    multipart_id: str | None
    object_key: str  # the blob object the upload writes (an S3 multipart upload until complete)
    s3_parts: tuple[tuple[int, str], ...]  # (part number, ETag) of parts already in S3
    completed_digest: str | None = None
    expires_at: float | None = None  # epoch seconds; past it the upload is gone (DynamoDB TTL)
    direct_size: int | None = None  # a direct upload (S3 parts from the client): the layer's size


@dataclass(frozen=True)
class Grant:
    """Some ECR actions on the repositories whose names match some patterns (`*` = any run of
    characters). An action is a role (`pull`, `push`, `admin`) or `ecr:<Operation>` (`*` allowed)."""

    actions: tuple[str, ...]
    repositories: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class AccessKey:
    """An access key issued by the registry: it belongs to exactly one registry (tenant)."""

    access_key_id: str
    registry_id: str
    name: str
    grants: tuple[Grant, ...]
    created_at: float
    active: bool = True
    secret: str | None = field(default=None, repr=False)  # only in memory, never stored in clear

    @property
    def principal_arn(self) -> str:
        return f"arn:aws:iam::{self.registry_id}:user/{self.name}"


@dataclass(frozen=True)
class LifecyclePolicy:
    """A repository's lifecycle policy: the text as it was put, and which version of it this is."""

    registry_id: str
    repository: str
    text: str
    policy_id: str  # new at every PutLifecyclePolicy: a run asserts the policy it applies is still this one
    last_evaluated_at: float | None = None  # when a run last applied it


PREVIEW_IN_PROGRESS, PREVIEW_COMPLETE, PREVIEW_FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"


@dataclass(frozen=True)
class PreviewResult:
    """An image a previewed policy expires, as it was when the preview was computed."""

    digest: str
    tags: tuple[str, ...]  # sorted
    pushed_at: float
    rule_priority: int


@dataclass(frozen=True)
class Preview:
    """A repository's lifecycle policy preview (one at a time): IN_PROGRESS until its results are stored."""

    registry_id: str
    repository: str
    preview_id: str
    status: str
    policy_text: str
    started_at: float
    attempt: str | None = None  # which computation's stored results are the preview's
    parts: int = 0  # items its results are stored in
    expiring_count: int = 0
    evaluated_at: float | None = None  # the clock the results were computed for
