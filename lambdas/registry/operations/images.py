"""PutImage, BatchGetImage, DescribeImages, ListImages, BatchDeleteImage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from .. import errors, manifests
from ..manifests.common import is_digest
from ..records import TAG, Image, Repository, is_tag
from ..storage import (
    EncryptionKeyUnusable,
    ImageCommit,
    ManifestPlace,
    PushView,
    QuotaReached,
    ReferencedByManifestList,
    StoredManifest,
)
from .common import (
    Context,
    Params,
    ResponseBudget,
    Result,
    existing_repository,
    issue_page_token,
    no_paging_with_ids,
    page_position,
    page_size,
    retrying,
)

T = TypeVar("T")


def manifest_digest(manifest: bytes) -> str:
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


# --- PutImage -------------------------------------------------------------------------------------


def put_image(params: Params, ctx: Context) -> Result:
    registry_id = ctx.registry_id
    name = params["repositoryName"]
    text = params["imageManifest"]
    raw = text.encode("utf-8")  # the bytes as sent: hashed and stored, never re-serialized
    digest = manifest_digest(raw)
    if "imageDigest" in params and params["imageDigest"] != digest:
        raise errors.ImageDigestDoesNotMatchException(
            f"The provided image digest '{params['imageDigest']}' does not match the digest '{digest}' "
            f"calculated for the image manifest"
        )
    manifest = manifests.parse(text, params.get("imageManifestMediaType"))
    tag = params.get("imageTag")
    if tag is not None and not is_tag(tag):
        raise errors.InvalidParameterException(
            f"Invalid parameter at 'imageTag' failed to satisfy constraint: 'must match {TAG.pattern}'"
        )
    placed: list[ManifestPlace] = []  # where the manifest went (written to S3 once across attempts)

    def attempt() -> Result:
        view = ctx.store.images.push_view(registry_id, name, digest, tag, manifest.blob_digests, manifest.child_digests)
        repo = view.repository
        if repo is None:
            raise errors.repository_not_found(registry_id, name)
        if view.image is not None and (tag is None or view.tag_digest == digest):
            raise errors.ImageAlreadyExistsException(_already_exists(repo, digest, tag))
        if tag is not None and view.tag_digest not in (None, digest) and repo.tag_is_immutable(tag):
            raise errors.ImageTagAlreadyExistsException(
                f"The image tag '{tag}' already exists in the '{name}' repository and cannot be "
                f"overwritten because the tag is immutable."
            )
        image = view.image or _new_image(repo, manifest, view, digest, raw, placed, ctx)
        commit = ImageCommit(
            repository=repo,
            image=image,
            new=view.image is None,
            tag=tag,
            tag_was=view.tag_digest,
            manifest=raw,
            blobs_to_mark=tuple(d for d, layer in view.layers.items() if not layer.referenced)
            if view.image is None
            else (),
            children=image.children if view.image is None else (),
        )
        quotas = ctx.settings.quotas
        try:
            ctx.store.images.commit(commit, quotas.max_images_per_repository, quotas.max_tags_per_image)
        except QuotaReached as reached:
            raise errors.limit_exceeded(
                reached.quota, reached.limit, registry_id=registry_id, name=name, digest=digest
            ) from None
        image_id = {"imageDigest": digest, **({"imageTag": tag} if tag is not None else {})}
        return {
            "image": {
                "registryId": registry_id,
                "repositoryName": name,
                "imageId": image_id,
                "imageManifest": text,
                "imageManifestMediaType": manifest.media_type,
            }
        }

    return retrying(attempt)


def _new_image(
    repo: Repository,
    manifest: manifests.Manifest,
    view: PushView,
    digest: str,
    raw: bytes,
    placed: list[ManifestPlace],
    ctx: Context,
) -> Image:
    missing = [d for d in manifest.blob_digests if d not in view.layers]
    if missing:
        raise errors.LayersNotFoundException(
            f"Layers with digests {missing} required by the manifest were not found in the repository "
            f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
        )
    missing = [d for d in manifest.child_digests if d not in view.children]
    if missing:
        raise errors.ReferencedImagesNotFoundException(
            f"The manifest list references images {missing} that are not in the repository with "
            f"name '{repo.name}' in the registry with id '{repo.registry_id}'"
        )
    if not placed:
        placed.append(ctx.store.images.place_manifest(repo, digest, raw))
    return Image(
        digest=digest,
        media_type=manifest.media_type,
        size=_image_size(manifest, view),
        pushed_at=ctx.now(),
        artifact_media_type=manifest.artifact_media_type,
        subject_digest=manifest.subject_digest,
        manifest=placed[0].inline,
        manifest_object_key=placed[0].object_key,
        children=tuple(manifest.child_digests),
    )


def _image_size(manifest: manifests.Manifest, view: PushView) -> int:
    """Compressed layer bytes of an image; for a list, the largest image it references (as ECR)."""
    if manifest.children:
        return max((view.children[d].size for d in manifest.child_digests), default=0)
    return sum(
        view.layers[layer.digest].size if layer.digest in view.layers else layer.size for layer in manifest.layers
    )


def _already_exists(repo: Repository, digest: str, tag: str | None) -> str:
    tagged = f" and tag '{tag}'" if tag is not None else ""
    return (
        f"Image with digest '{digest}'{tagged} already exists in the repository with name "
        f"'{repo.name}' in registry with id '{repo.registry_id}'"
    )


# --- image identifiers ---------------------------------------------------------------------------


def _failure(image_id: dict[str, Any], code: str, reason: str) -> Result:
    return {"imageId": image_id, "failureCode": code, "failureReason": reason}


def _invalid_id(image_id: dict[str, Any]) -> Result | None:
    """The failure entry of an image id that names nothing, or None when it is well-formed."""
    if "imageDigest" not in image_id and "imageTag" not in image_id:
        return _failure(
            image_id, "MissingDigestAndTag", "Invalid request parameters: image digest and tag cannot both be null"
        )
    if "imageDigest" in image_id and not is_digest(image_id["imageDigest"]):
        return _failure(
            image_id,
            "InvalidImageDigest",
            "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
        )
    return None


def _resolve(
    repo: Repository, image_ids: list[dict[str, Any]], ctx: Context
) -> Iterator[tuple[dict[str, Any], Image | Result]]:
    """Each well-formed image id with its image, or with the failure entry saying why there is none."""
    tags = ctx.store.images.resolve_tags(repo, [i["imageTag"] for i in image_ids if "imageTag" in i])
    digests = [i.get("imageDigest") or tags.get(i["imageTag"]) for i in image_ids]
    images = ctx.store.images.get(repo, [d for d in digests if d])
    return _match(image_ids, tags, images)


def _match(
    image_ids: list[dict[str, Any]], tags: dict[str, str], images: Mapping[str, T]
) -> Iterator[tuple[dict[str, Any], T | Result]]:
    """Each image id with what `images` has for it, given where `tags` point, or its failure entry."""
    for image_id in image_ids:
        digest = image_id.get("imageDigest") or tags.get(image_id["imageTag"])
        if (
            "imageTag" in image_id
            and "imageDigest" in image_id
            and tags.get(image_id["imageTag"]) not in (None, image_id["imageDigest"])
        ):
            reason = "Invalid request parameters: given tag does not match the image digest"
            yield image_id, _failure(image_id, "ImageTagDoesNotMatchDigest", reason)
        elif ("imageTag" in image_id and image_id["imageTag"] not in tags) or digest is None or digest not in images:
            yield image_id, _failure(image_id, "ImageNotFound", "Requested image not found")
        else:
            yield image_id, images[digest]


# --- BatchGetImage ---------------------------------------------------------------------------------


def batch_get_image(params: Params, ctx: Context) -> Result:
    accepted = params.get("acceptedMediaTypes")
    images, failures, seen = [], [], set()
    budget = ResponseBudget()
    wanted = []
    for image_id in params["imageIds"]:
        failure = _invalid_id(image_id)
        if failure:
            failures.append(failure)
        else:
            wanted.append(image_id)
    # One read for the repository, its policy, the tags and the manifests (a pull's every manifest request)
    lookup = ctx.store.images.manifests(
        ctx.registry_id,
        params["repositoryName"],
        digests=[i["imageDigest"] for i in wanted if "imageDigest" in i],
        tags=[i["imageTag"] for i in wanted if "imageTag" in i],
    )
    ctx.policy_read(lookup.policy_text)
    repo = lookup.repository
    if repo is None:
        raise errors.repository_not_found(ctx.registry_id, params["repositoryName"])
    for image_id, image in _match(wanted, lookup.tag_digests, lookup.manifests):
        if not isinstance(image, StoredManifest):
            failures.append(image)
            continue
        if accepted and image.media_type not in accepted:
            failures.append(
                _failure(
                    image_id,
                    "ImageNotFound",
                    f"Requested image not found in an accepted media type (it is {image.media_type})",
                )
            )
            continue
        returned_id = {
            "imageDigest": image.digest,
            **({"imageTag": image_id["imageTag"]} if "imageTag" in image_id else {}),
        }
        key = (returned_id["imageDigest"], returned_id.get("imageTag"))
        if key in seen:
            continue
        seen.add(key)
        try:
            manifest = ctx.store.images.manifest_bytes(image).decode("utf-8")
        except EncryptionKeyUnusable as error:  # BatchGetImage reports KMS trouble per image
            failures.append(_failure(image_id, "KmsError", error.message))
            continue
        found = {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageId": returned_id,
            "imageManifest": manifest,
            "imageManifestMediaType": image.media_type,
        }
        if not budget.take(found):
            raise errors.response_too_large("The requested manifests", budget.limit)
        images.append(found)
    return {"images": images, "failures": failures}


# --- DescribeImages / ListImages ------------------------------------------------------------------


def _detail(repo: Repository, image: Image) -> Result:
    detail = {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageDigest": image.digest,
        "imageSizeInBytes": image.size,
        "imagePushedAt": image.pushed_at,
        "imageManifestMediaType": image.media_type,
        "imageStatus": "ACTIVE",
    }
    if image.tags:
        detail["imageTags"] = sorted(image.tags)
    if image.artifact_media_type:
        detail["artifactMediaType"] = image.artifact_media_type
    if image.subject_digest:
        detail["subjectManifestDigest"] = image.subject_digest
    return detail


def _filters(params: Params) -> tuple[str, bool]:
    """(the tagStatus filter, whether the imageStatus filter can match anything)."""
    chosen = params.get("filter") or {}
    # Nothing here is ever archived: every image is ACTIVE.
    return chosen.get("tagStatus", "ANY"), chosen.get("imageStatus", "ACTIVE") in ("ACTIVE", "ANY")


def describe_images(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    no_paging_with_ids(params, "imageIds")
    tag_status, active = _filters(params)
    if params.get("imageIds"):
        details: list[Result] = []
        seen: set[str] = set()
        for image_id in params["imageIds"]:
            invalid = _invalid_id(image_id)
            if invalid:
                raise errors.InvalidParameterException(invalid["failureReason"])
        for image_id, image in _resolve(repo, params["imageIds"], ctx):
            if not isinstance(image, Image):
                raise errors.ImageNotFoundException(
                    f"The image with imageId {json.dumps(image_id, sort_keys=True)} does not exist within the "
                    f"repository with name '{repo.name}' in the registry with id '{repo.registry_id}'"
                )
            if image.digest not in seen:
                seen.add(image.digest)
                details.append(_detail(repo, image))
        return {"imageDetails": details}
    position = page_position(params, ctx)
    limit = page_size(params)
    page: list[Result] = []
    if not active:
        return {"imageDetails": []}
    budget = ResponseBudget()  # a page of images with many long tags could pass what a function returns
    for image in ctx.store.images.iterate(repo, start=position["after"] if position else None, tag_status=tag_status):
        detail = _detail(repo, image)
        if len(page) == limit or not budget.take(detail):
            return {
                "imageDetails": page,
                "nextToken": issue_page_token(params, ctx, {"after": page[-1]["imageDigest"]}),
            }
        page.append(detail)
    return {"imageDetails": page}


def list_images(params: Params, ctx: Context) -> Result:
    """One entry per (digest, tag) pair; an untagged image is one entry with its digest only."""
    repo = existing_repository(params, ctx)
    tag_status, active = _filters(params)
    position = page_position(params, ctx)
    limit = page_size(params)
    page: list[Result] = []
    if not active:
        return {"imageIds": []}
    start, skip = (position["at"], position["skip"]) if position else (None, 0)
    for image in ctx.store.images.iterate(repo, start=start, inclusive=True, tag_status=tag_status):
        entries = [{"imageDigest": image.digest, "imageTag": t} for t in sorted(image.tags)] or [
            {"imageDigest": image.digest}
        ]
        if image.digest == start:
            entries, offset = entries[skip:], skip
        else:
            offset = 0
        for entry in entries:
            if len(page) == limit:
                return {
                    "imageIds": page,
                    "nextToken": issue_page_token(params, ctx, {"at": image.digest, "skip": offset}),
                }
            page.append(entry)
            offset += 1
    return {"imageIds": page}


# --- BatchDeleteImage -----------------------------------------------------------------------------


def batch_delete_image(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    deleted: list[Result] = []
    failures: list[Result] = []
    for image_id in params["imageIds"]:
        failure = _invalid_id(image_id)
        if failure is None:
            failure = retrying(partial(_delete_one, repo, image_id, deleted, ctx))
        if failure:
            failures.append(failure)
    return {"imageIds": deleted, "failures": failures}


def _delete_one(
    repo: Repository, image_id: dict[str, Any], deleted: list[dict[str, Any]], ctx: Context
) -> Result | None:
    ((_, image),) = _resolve(repo, [image_id], ctx)
    if not isinstance(image, Image):
        return image
    tag = image_id.get("imageTag")
    try:
        if tag is not None and len(image.tags) > 1:
            ctx.store.images.untag(repo, tag, image.digest)
            deleted.append({"imageDigest": image.digest, "imageTag": tag})
        else:  # by digest, or by the image's last tag: the image goes with all its tags
            ctx.store.images.delete(repo, image)
            deleted.extend(
                [{"imageDigest": image.digest, "imageTag": t} for t in sorted(image.tags)]
                or [{"imageDigest": image.digest}]
            )
    except ReferencedByManifestList:
        return _failure(
            image_id,
            "ImageReferencedByManifestList",
            "Requested image is referenced by a manifest list or image index in the repository",
        )
    return None


# --- what the `/v2` API adds (not operations of the ECR API) ------------------------------------


def list_tags(params: Params, ctx: Context) -> Result:
    """A page of the repository's tags in lexical order, after `last`: `maxResults` of them, and
    whether more follow."""
    repo = existing_repository(params, ctx)
    tags, more = ctx.store.images.tags(repo, params.get("last"), params.get("maxResults") or 100)
    return {"tags": tags, "more": more}


def list_referrers(params: Params, ctx: Context) -> Result:
    """The descriptors of the images whose manifest names `subjectDigest` (OCI 1.1 referrers),
    optionally only those of `artifactType`."""
    repo = existing_repository(params, ctx)
    wanted = params.get("artifactType")
    descriptors = []
    for image in ctx.store.images.referrers(repo, params["subjectDigest"]):
        if wanted and image.artifact_media_type != wanted:
            continue
        manifest = ctx.store.images.manifest_bytes(image)
        descriptor: Result = {"mediaType": image.media_type, "digest": image.digest, "size": len(manifest)}
        if image.artifact_media_type:
            descriptor["artifactType"] = image.artifact_media_type
        annotations = json.loads(manifest).get("annotations")
        if annotations:
            descriptor["annotations"] = annotations
        descriptors.append(descriptor)
    return {"manifests": sorted(descriptors, key=lambda d: d["digest"])}
